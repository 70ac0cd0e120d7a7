"""One replaced-token-detection step on one real sentence, printed token by token (docs/paper.md §3).

It loads the generator and the discriminator that a pre-training run exported (OUT_DIR/final/), masks
the sentence as training does, lets the generator fill the masked positions, and shows what the
discriminator then thinks of every token. The README's worked example is this script's output.

    python docs/rtd_step.py runs/pretrain                     # after the README's first command
    python docs/rtd_step.py runs/pretrain --text "..." --seed 3
"""
import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from anywhere, as bench/ scripts do
import electramed as em  # noqa: E402
import train_pretrain as tp  # noqa: E402
from tokenizer import Tokenizer  # noqa: E402

DEFAULT_TEXT = "Mutations in the BRCA1 gene increase the risk of breast and ovarian cancer."


def load_run(run_dir: Path):
    """The tokenizer, generator, discriminator, mask rate and example length of a finished pre-training run."""
    final = run_dir / "final"
    tokenizer = Tokenizer.from_vocab_file(final / "discriminator" / "vocab.txt")
    generator = em.load_hf_checkpoint(final / "generator", kind="generator")
    discriminator = em.load_hf_checkpoint(final / "discriminator", kind="discriminator")
    em.tie_generator_to(generator, discriminator)          # as in training: one embedding block
    args = json.loads((run_dir / "args.json").read_text())
    return tokenizer, generator, discriminator, args["mask_prob"], args["seq_len"]


@torch.no_grad()
def rtd_step(text, tokenizer, generator, discriminator, mask_prob, seq_len, seed):
    """Returns the tokens and, per token, the masked input, the corrupted input, labels and scores.

    The sentence is one example padded to the run's length L, so N = int((p + 0.005) * L) as in training."""
    pieces = tokenizer.encode_text(text)[:seq_len - 2]
    real = torch.tensor([[tokenizer.cls_id, *pieces, tokenizer.sep_id]])
    ids = torch.full((1, seq_len), tokenizer.pad_id).index_copy(1, torch.arange(real.shape[1]), real)   # (1, L)
    attention_mask = ids != tokenizer.pad_id
    rng = torch.Generator().manual_seed(seed)
    n = tp.num_predictions(mask_prob, seq_len)
    specials = (tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id)
    counts = tp.count_targets(ids, specials, tokenizer.pad_id, mask_prob, n)
    masked, positions, weights, _ = tp.mask_tokens(ids, counts, torch.rand(ids.shape, generator=rng),
                                                   torch.rand(1, n, generator=rng), specials,
                                                   tokenizer.pad_id, tokenizer.mask_id)
    logits = generator(masked, attention_mask=attention_mask, positions=positions)          # (1, N, V)
    sampled = tp.sample_replacements(logits, torch.rand(1, n, generator=rng, dtype=torch.float64))
    corrupted, replaced = tp.replace_tokens(ids, positions, weights, sampled)
    scores = torch.sigmoid(discriminator(corrupted, attention_mask=attention_mask))         # (1, L)
    keep = slice(0, real.shape[1])                                                         # the padding is not shown
    chosen = set(positions[0][weights[0]].tolist())
    return ids[0, keep], masked[0, keep], corrupted[0, keep], replaced[0, keep], scores[0, keep], chosen


def print_table(tokenizer, ids, masked, corrupted, replaced, scores, chosen):
    """A markdown table: one row per token."""
    def names(ids):
        return [tokenizer.id_to_token[i] for i in ids]

    print("| # | token | masked input | generator's sample | label | discriminator P(replaced) |")
    print("|---|---|---|---|---|---|")
    for i, (a, b, c) in enumerate(zip(names(ids.tolist()), names(masked.tolist()), names(corrupted.tolist()))):
        sample = c if i in chosen else ""
        label = "**replaced**" if replaced[i] else "original"
        print(f"| {i} | `{a}` | `{b}` | {f'`{sample}`' if sample else ''} | {label} | {scores[i]:.2f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, help="a pre-training --out-dir that holds final/ and args.json")
    p.add_argument("--text", default=DEFAULT_TEXT, help="one sentence")
    p.add_argument("--seed", type=int, default=0, help="seeds the masking and the generator's draw")
    args = p.parse_args()
    tokenizer, generator, discriminator, mask_prob, seq_len = load_run(args.run_dir)
    print(f"{args.run_dir}: mask rate {mask_prob}, example length {seq_len}, seed {args.seed}")
    print_table(tokenizer, *rtd_step(args.text, tokenizer, generator, discriminator, mask_prob, seq_len, args.seed))


if __name__ == "__main__":
    main()
