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
    """The tokenizer, generator, discriminator and mask rate of a finished pre-training run."""
    final = run_dir / "final"
    tokenizer = Tokenizer.from_vocab_file(final / "discriminator" / "vocab.txt")
    generator = em.load_hf_checkpoint(final / "generator", kind="generator")
    discriminator = em.load_hf_checkpoint(final / "discriminator", kind="discriminator")
    em.tie_generator_to(generator, discriminator)          # as in training: one embedding block
    mask_prob = json.loads((run_dir / "args.json").read_text())["mask_prob"]
    return tokenizer, generator, discriminator, mask_prob


@torch.no_grad()
def rtd_step(text, tokenizer, generator, discriminator, mask_prob, seed):
    """Returns the tokens and, per token, the masked input, the corrupted input, labels and scores."""
    ids = torch.tensor([[tokenizer.cls_id, *tokenizer.encode_text(text), tokenizer.sep_id]])    # (1, L)
    rng = torch.Generator().manual_seed(seed)
    n = tp.num_predictions(mask_prob, ids.shape[1])
    specials = (tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id)
    counts = tp.count_targets(ids, specials, tokenizer.pad_id, mask_prob, n)
    masked, positions, weights, _ = tp.mask_tokens(ids, counts, torch.rand(ids.shape, generator=rng),
                                                   torch.rand(1, n, generator=rng), specials,
                                                   tokenizer.pad_id, tokenizer.mask_id)
    logits = generator(masked, positions=positions)                                        # (1, N, V)
    sampled = tp.sample_replacements(logits, torch.rand(1, n, generator=rng, dtype=torch.float64))
    corrupted, replaced = tp.replace_tokens(ids, positions, weights, sampled)
    scores = torch.sigmoid(discriminator(corrupted))                                       # (1, L)
    return ids[0], masked[0], corrupted[0], replaced[0], scores[0], set(positions[0][weights[0]].tolist())


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
    tokenizer, generator, discriminator, mask_prob = load_run(args.run_dir)
    print(f"{args.run_dir}: mask rate {mask_prob}, seed {args.seed}")
    print_table(tokenizer, *rtd_step(args.text, tokenizer, generator, discriminator, mask_prob, args.seed))


if __name__ == "__main__":
    main()
