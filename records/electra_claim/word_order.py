"""
Does a pre-trained model use word order? Its held-out score with the position embeddings of each
example's real tokens shuffled, against the score as trained (RESULTS.md section 2, "why RTD does not
pay here").

    python records/electra_claim/word_order.py runs/rtd10m/checkpoints/step_0006000.pt \
        runs/mlm10m/checkpoints/step_0008006.pt

Shuffling which position vector each real token gets shows the encoder the same words in a random order
(attention itself is blind to order), while every output stays at its token, so labels need no change.
  RTD: the discriminator's AUC on the held-out examples corrupted by the run's own generator exactly as
       the training log's held-out evaluation (lexical_auc.py); only the discriminator sees the shuffle.
  MLM: masked-LM accuracy at the held-out examples' masked positions (the log's heldout_mlm_acc).
A model that ignores word order scores the same both ways. Writes word_order.md beside this script.
"""
import argparse
import sys
from pathlib import Path
from types import MethodType, SimpleNamespace

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
import electramed as em  # noqa: E402
import train_pretrain as tp  # noqa: E402
from lexical_auc import corrupt_and_score, heldout_batches, load_run, special_ids  # noqa: E402

SEED = 0


def shuffled_positions(embeddings, pad_id, generator):
    """A forward for `embeddings` that gives each row's real tokens its real positions in a random order."""
    def forward(self, input_ids, token_type_ids=None):
        index = torch.arange(input_ids.shape[1]).repeat(input_ids.shape[0], 1)
        for row, ids in enumerate(input_ids):
            real = (ids != pad_id).nonzero().squeeze(1)
            index[row, real] = real[torch.randperm(len(real), generator=generator)]
        x = self.word_embeddings(input_ids) + self.position_embeddings.weight[index]
        x = x + (self.token_type_embeddings.weight[0] if token_type_ids is None
                 else self.token_type_embeddings(token_type_ids))
        return self.dropout(self.LayerNorm(x))
    return MethodType(forward, embeddings)


@torch.no_grad()
def rtd_aucs(path) -> tuple[float, float, int]:
    """(AUC as trained, AUC with shuffled positions, step) of an RTD checkpoint's discriminator."""
    raw, run, step = load_run(path)
    heldout = tp.load_heldout(Path(run.out_dir) / "shards", run)
    caught = []
    hook = raw.discriminator.register_forward_pre_hook(lambda m, a, kw: caught.append((a, kw)), with_kwargs=True)
    _, labels, logits = corrupt_and_score(raw, heldout, run, tp.HELDOUT_STEP)
    hook.remove()
    embeddings = raw.discriminator.encoder.embeddings
    embeddings.forward = shuffled_positions(embeddings, raw.pad_id, torch.Generator().manual_seed(SEED))
    shuffled = []
    for a, kw in caught:                                       # the corrupted inputs, batch by batch
        shuffled.append(raw.discriminator(*a, **kw)[a[0] != raw.pad_id])
    return tp.roc_auc(logits, labels), tp.roc_auc(torch.cat(shuffled), labels), step


@torch.no_grad()
def mlm_accuracies(path) -> tuple[float, float, int]:
    """(accuracy as trained, accuracy with shuffled positions, step) of an MLM checkpoint at its masks."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    run = SimpleNamespace(**state["args"])
    ids = special_ids(run)
    raw = tp.MaskedLanguageModel(em.Generator(em.ModelConfig(**state["model_config"])),
                                 (ids["[CLS]"], ids["[SEP]"], ids["[MASK]"]), ids["[PAD]"], ids["[MASK]"])
    raw.load_state_dict(state["model"])
    raw.eval()
    heldout = tp.load_heldout(Path(run.out_dir) / "shards", run)
    scores = []
    for shuffle in (False, True):
        if shuffle:
            embeddings = raw.masked_lm.encoder.embeddings
            embeddings.forward = shuffled_positions(embeddings, raw.pad_id, torch.Generator().manual_seed(SEED))
        correct = slots = 0.0
        for batch in heldout_batches(raw, heldout, run, tp.HELDOUT_STEP):
            stats = raw(batch)["stats"]
            correct, slots = correct + stats[4].item(), slots + stats[2].item()
        scores.append(correct / slots)
    return scores[0], scores[1], state["step"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="training checkpoints (runs/<run>/checkpoints/step_*.pt)")
    parser.add_argument("--out", default=str(HERE / "word_order.md"), help="the table (markdown)")
    args = parser.parse_args()
    rows = ["| checkpoint | step | held-out score | as trained | positions shuffled | change |",
            "|---|---|---|---|---|---|"]
    for path in args.checkpoints:
        objective = torch.load(path, map_location="cpu", weights_only=False)["args"].get("objective", "rtd")
        name, (intact, shuffled, step) = (("discriminator AUC", rtd_aucs(path)) if objective == "rtd"
                                          else ("masked-LM accuracy", mlm_accuracies(path)))
        rows.append(f"| {path} | {step:,} | {name} | {intact:.4f} | {shuffled:.4f} | {shuffled - intact:+.4f} |")
        print(rows[-1], flush=True)
    Path(args.out).write_text("\n".join(rows) + "\n")
    print(f"=> wrote {args.out}")


if __name__ == "__main__":
    main()
