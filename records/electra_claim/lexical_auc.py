"""
How much of the RTD discriminator's held-out AUC a guess without context already reaches
(RESULTS.md section 2, "why RTD does not pay here").

    python records/electra_claim/lexical_auc.py runs/rtd10m/checkpoints/step_0006000.pt [more checkpoints]

For each checkpoint, the run's own generator corrupts the held-out examples exactly as the training log's
held-out evaluation does (train_pretrain.evaluate_heldout: the same masks and samples), and two scores
are compared on every real token:
  discriminator  the checkpoint's discriminator logit (its AUC is the log's heldout_disc_auc);
  token only     P(replaced | the token's id), counted on the first 4,096 training examples corrupted
                 by the same generator with other noise (add-one smoothing towards the base rate).
The token-only score knows which words the generator tends to put in (and which it replaces) but sees
no context: the discriminator's margin over it is what it learned from context.
Writes lexical_auc.md beside this script (one row per checkpoint) and prints it.
"""
import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
import electramed as em  # noqa: E402
import train_pretrain as tp  # noqa: E402
from data import PretrainingData  # noqa: E402

COUNT_EXAMPLES = 4096
COUNT_STEP = tp.HELDOUT_STEP - 1      # noise for the counting slice: neither a training step nor the held-out's


def special_ids(args) -> dict:
    """{token: id} of [CLS], [SEP], [MASK] and [PAD] in the run's vocabulary."""
    vocab = Path(args.vocab).read_text(encoding="utf-8").splitlines()
    return {token: vocab.index(token) for token in ("[CLS]", "[SEP]", "[MASK]", "[PAD]")}


def heldout_batches(raw, examples, args, step, batch_size=64):
    """The batches of `examples` with the noise of `step`, as evaluate_heldout prepares them."""
    for first in range(0, len(examples["input_ids"]), batch_size):
        b = {k: v[first:first + batch_size] for k, v in examples.items()}
        b["counts"] = tp.count_targets(b["input_ids"], raw.special_ids, raw.pad_id, args.mask_prob,
                                       args.num_predictions)
        batch = tp.prepare_batch(b, args, step, first, torch.device("cpu"))
        batch.update(mlm_denominator=torch.tensor(1.0), rtd_denominator=torch.tensor(1.0))
        yield batch


def load_run(path):
    """The checkpoint's generator and discriminator as one ReplacedTokenDetection, and its arguments."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    args = SimpleNamespace(**state["args"])
    ids = special_ids(args)
    config = em.ModelConfig(**state["model_config"])
    raw = tp.ReplacedTokenDetection(em.Generator(em.ModelConfig(**state["generator_config"])),
                                    em.Discriminator(config), (ids["[CLS]"], ids["[SEP]"], ids["[MASK]"]),
                                    ids["[PAD]"], ids["[MASK]"])
    raw.load_state_dict(state["model"])
    return raw.eval(), args, state["step"]


@torch.no_grad()
def corrupt_and_score(raw, examples, args, step, batch_size=64):
    """(corrupted ids, labels, discriminator logits) at every real token, flattened, for `examples` corrupted
    with the noise of `step`, as evaluate_heldout does; the corrupted ids are caught on their way in."""
    caught = []
    hook = raw.discriminator.register_forward_pre_hook(lambda module, inputs: caught.append(inputs[0]))
    tokens, labels, logits = [], [], []
    for batch in heldout_batches(raw, examples, args, step, batch_size):
        out = raw(batch)
        real = out["real"]
        tokens.append(caught.pop()[real])
        labels.append(out["labels"][real])
        logits.append(out["disc_logits"][real])
    hook.remove()
    return torch.cat(tokens), torch.cat(labels), torch.cat(logits)


def token_only_scores(count_tokens, count_labels, tokens, vocab_size):
    """P(replaced | token id), counted on one slice and looked up for `tokens`, add-one towards the base rate."""
    seen = torch.bincount(count_tokens, minlength=vocab_size).double()
    replaced = torch.bincount(count_tokens, weights=count_labels.double(), minlength=vocab_size)
    base = count_labels.double().mean()
    return ((replaced + base) / (seen + 1))[tokens]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="training checkpoints (runs/<run>/checkpoints/step_*.pt)")
    parser.add_argument("--out", default=str(HERE / "lexical_auc.md"), help="the table (markdown)")
    args = parser.parse_args()
    rows = ["| checkpoint | step | discriminator AUC | token-only AUC | margin |", "|---|---|---|---|---|"]
    for path in args.checkpoints:
        raw, run, step = load_run(path)
        shards = Path(run.out_dir) / "shards"
        heldout = tp.load_heldout(shards, run)
        counting = PretrainingData(shards, batch_size=1).first_examples(COUNT_EXAMPLES)
        count_tokens, count_labels, _ = corrupt_and_score(raw, counting, run, COUNT_STEP)
        tokens, labels, logits = corrupt_and_score(raw, heldout, run, tp.HELDOUT_STEP)
        vocab_size = raw.discriminator.config.vocab_size
        disc = tp.roc_auc(logits, labels)
        lexical = tp.roc_auc(token_only_scores(count_tokens, count_labels, tokens, vocab_size), labels)
        rows.append(f"| {path} | {step:,} | {disc:.4f} | {lexical:.4f} | {disc - lexical:+.4f} |")
        print(rows[-1], flush=True)
    Path(args.out).write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    print(f"=> wrote {args.out}")


if __name__ == "__main__":
    main()
