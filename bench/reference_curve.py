"""
An independent pre-training curve beside ours: the same ELECTRA recipe built from
transformers' ElectraForMaskedLM (generator) + ElectraForPreTraining (discriminator), trained step by
step next to our ReplacedTokenDetection on the very same batches, masks and samples.

What is shared and what is not:
  - shared: the packed corpus and batch order (data.prepare_corpus, data.PretrainingData), the
    per-example noise (train_pretrain.example_seeds, draw_noise), masking, sampling and labels
    (count_targets, mask_tokens, sample_replacements, replace_tokens), the optimizer
    (train_pretrain.AdamWeightDecay, decay on matrices only), the schedule (learning_rate), clip 1.0,
    dropout 0 (so that nothing random is left outside the shared noise),
    and the initial weights: ours are copied into the HF modules through electramed's HF key map
    (to_hf_state_dict), so the two runs start identical and differ only by their model code;
  - the reference's own: every layer (transformers' Electra classes, embeddings shared by the
    generator and discriminator, the MLM output tied to the shared word embeddings) and the loss
    code below (mlm + disc_weight * rtd, token means), written from google-research/electra's
    pretrain/pretrain_helpers.py and run_pretraining.py, not from train_pretrain.py's module.
Early on the two curves agree to float noise; later the chaotic training dynamics let them drift
apart by about one seed's noise, which is what "the implementation learns as the reference does" means.

    OMP_NUM_THREADS=1 python bench/reference_curve.py --size tiny --seq-len 64 --batch-size 32 --steps 40 --log-every 10
    python bench/reference_curve.py --size mini --steps 2000 --log-every 50     # the probe shape, ~2 x 35 min

Writes to --out-dir (default runs/reference_curve): ours.jsonl and reference.jsonl (one line per log
step: step, lr, mlm_loss, gen_acc, rtd_loss, disc_acc, disc_baseline_acc, rtd_base_entropy, disc_auc,
over the log interval), comparison.md (the two side by side at every log step), args.json (with the commit).
bench/plots.py --log OUT/ours.jsonl=ours --reference OUT/reference.jsonl draws them.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))   # bench scripts run from anywhere; the library itself never does this
import electramed as em  # noqa: E402
import train_pretrain as tp  # noqa: E402
from data import PretrainingData, default_data_dir, prepare_corpus  # noqa: E402
from tokenizer import Tokenizer  # noqa: E402
from train_pretrain import (STATS, AdamWeightDecay, ReplacedTokenDetection, count_targets,  # noqa: E402
                            draw_noise, example_seeds, learning_rate, mask_tokens, replace_tokens,
                            sample_replacements)
from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining  # noqa: E402

# Named to match train_pretrain.STATS, so the two runs' sums read the same way.
STAT_NAMES = ("mlm_sum", "rtd_sum", "masked", "real", "gen_correct", "disc_correct", "replaced")


# ---------------------------------------------------------------------------------------------
# 1. The reference model: transformers' ELECTRA classes, with ELECTRA's sharing
# ---------------------------------------------------------------------------------------------
def hf_config(config: em.ModelConfig) -> ElectraConfig:
    """Our ModelConfig as transformers' ElectraConfig (the field names are the same)."""
    return ElectraConfig(**asdict(config), hidden_act="gelu", position_embedding_type="absolute",
                         tie_word_embeddings=True)


class ReferenceELECTRA(nn.Module):
    """ElectraForMaskedLM + ElectraForPreTraining, starting from our models' weights.

    The generator uses the discriminator's embedding module (word, position, type, LayerNorm), and
    its MLM output matrix is that module's word-embedding matrix: one parameter, as in ELECTRA."""

    def __init__(self, ours: ReplacedTokenDetection):
        super().__init__()
        self.generator = ElectraForMaskedLM(hf_config(ours.generator.config))
        self.discriminator = ElectraForPreTraining(hf_config(ours.discriminator.config))
        for hf, mine in ((self.generator, ours.generator), (self.discriminator, ours.discriminator)):
            missing, unexpected = hf.load_state_dict(em.to_hf_state_dict(mine), strict=False)
            missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
            if missing or unexpected:
                raise RuntimeError(f"HF key map mismatch: missing {missing}, unexpected {unexpected}")
        self.generator.electra.embeddings = self.discriminator.electra.embeddings
        self.generator.generator_lm_head.weight = self.discriminator.electra.embeddings.word_embeddings.weight

    def generator_logits(self, input_ids, token_type_ids, attention_mask, positions):
        """(B, N, V) MLM logits at the masked positions (the HF head applied to the gathered states)."""
        h = self.generator.electra(input_ids, attention_mask=attention_mask,
                                   token_type_ids=token_type_ids).last_hidden_state       # (B, L, D)
        h = h.gather(1, positions[:, :, None].expand(-1, -1, h.shape[-1]))                 # (B, N, D)
        return self.generator.generator_lm_head(self.generator.generator_predictions(h))

    def discriminator_logits(self, input_ids, token_type_ids, attention_mask):
        return self.discriminator(input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).logits                     # (B, L)


def reference_step(model: ReferenceELECTRA, batch, special_ids, pad_id, mask_id, disc_weight):
    """ELECTRA's objective on one batch for the reference model: loss, stats in STAT_NAMES order, and
    the discriminator's logits and labels at the non-pad tokens (for the AUC)."""
    ids, types, attn = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
    masked, positions, weights, originals = mask_tokens(ids, batch["counts"], batch["position_noise"],
                                                        batch["keep_noise"], special_ids, pad_id, mask_id)
    gen_logits = model.generator_logits(masked, types, attn, positions).float()     # (B, N, V)
    sampled = sample_replacements(gen_logits, batch["sample_noise"])                # (B, N), no gradient
    corrupted, labels = replace_tokens(ids, positions, weights, sampled)            # (B, L) x 2
    disc_logits = model.discriminator_logits(corrupted, types, attn).float()        # (B, L)
    real = ids != pad_id
    mlm_sum = (F.cross_entropy(gen_logits.transpose(1, 2), originals, reduction="none") * weights).sum()
    rtd_sum = (F.binary_cross_entropy_with_logits(disc_logits, labels.float(), reduction="none") * real).sum()
    loss = mlm_sum / batch["mlm_denominator"] + disc_weight * rtd_sum / batch["rtd_denominator"]
    with torch.no_grad():
        stats = torch.stack([x.float() for x in (
            mlm_sum, rtd_sum, weights.sum(), real.sum(), ((gen_logits.argmax(-1) == originals) & weights).sum(),
            (((disc_logits > 0) == labels) & real).sum(), labels.sum())])
    return loss, stats, (disc_logits.detach()[real], labels[real])


# ---------------------------------------------------------------------------------------------
# 2. Both runs, one batch at a time
# ---------------------------------------------------------------------------------------------
def build_ours(args, tokenizer) -> ReplacedTokenDetection:
    """Our generator + discriminator exactly as train_pretrain.py builds them (seeded first, as its
    setup_torch), without dropout."""
    torch.manual_seed(args.seed)
    return tp.build_model(argparse.Namespace(**{**vars(args), "dropout": 0.0}), tokenizer)


def make_optimizer(model, args) -> AdamWeightDecay:
    """ELECTRA's groups, as train_pretrain.build_optimizer: decay on matrices, none on biases/LayerNorms."""
    params = list(model.parameters())                      # a shared tensor appears once
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": args.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return AdamWeightDecay(groups, lr=0.0, bias_correction=args.bias_correction)


def noisy_batch(raw_batch, args, step, special_ids, pad_id):
    """A data batch with its masking counts, noise and loss denominators (train_pretrain's prepare_batch)."""
    batch = dict(raw_batch)
    if batch["attention_mask"].all():
        batch["attention_mask"] = None
    ids = batch["input_ids"]
    batch["counts"] = count_targets(ids, special_ids, pad_id, args.mask_prob, args.num_predictions)
    seeds = example_seeds(args.seed, step, range(len(ids)))
    batch["position_noise"], batch["keep_noise"], batch["sample_noise"] = draw_noise(
        seeds, args.seq_len, args.num_predictions, ids.device)
    batch["mlm_denominator"] = batch["counts"].sum().float()
    batch["rtd_denominator"] = (ids != pad_id).sum().float()
    return batch


def metrics(sums: dict, scores: list, step: int, lr: float) -> dict:
    """Means over the log interval; disc_auc over every non-pad token of the interval (scikit-learn)."""
    logits, labels = (torch.cat([part[i] for part in scores]).numpy() for i in (0, 1))
    base = sums["replaced"] / sums["real"]
    entropy = 0.0 if base in (0, 1) else -(base * math.log(base) + (1 - base) * math.log(1 - base))
    return {"step": step, "lr": lr, "mlm_loss": sums["mlm_sum"] / sums["masked"],
            "gen_acc": sums["gen_correct"] / sums["masked"], "rtd_loss": sums["rtd_sum"] / sums["real"],
            "disc_acc": sums["disc_correct"] / sums["real"], "disc_baseline_acc": 1 - base,
            "rtd_base_entropy": entropy,
            "disc_auc": float(roc_auc_score(labels, logits)) if 0 < labels.sum() < len(labels) else float("nan")}


def first_batch_check(ours, reference, batch, tokenizer):
    """Max |difference| of the two models' logits on the first batch, before any update."""
    with torch.no_grad():
        ids, types, attn = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
        masked, positions, _, _ = mask_tokens(ids, batch["counts"], batch["position_noise"], batch["keep_noise"],
                                              ours.special_ids, ours.pad_id, ours.mask_id)
        gen = (ours.generator(masked, types, attn, positions=positions)
               - reference.generator_logits(masked, types, attn, positions)).abs().max().item()
        disc = (ours.discriminator(ids, types, attn) - reference.discriminator_logits(ids, types, attn))
        disc = disc[ids != tokenizer.pad_id].abs().max().item()
    return gen, disc


def train_side_by_side(args, out_dir: Path):
    tokenizer = Tokenizer.from_vocab_file(args.vocab)
    shards = prepare_corpus(args.corpus, args.vocab, out_dir / "shards", max_len=args.seq_len, seed=args.seed,
                            progress=True, heldout_every=args.heldout_every)
    data = PretrainingData(shards, args.batch_size, seed=args.seed)
    ours = build_ours(args, tokenizer)
    reference = ReferenceELECTRA(ours)
    print(f"=> parameters: ours {em.count_parameters(ours):,}, reference {em.count_parameters(reference):,}")
    runs = {"ours": (ours, make_optimizer(ours, args)), "reference": (reference, make_optimizer(reference, args))}
    sums, scores = {name: torch.zeros(len(STAT_NAMES)) for name in runs}, {name: [] for name in runs}
    keep = [STATS.index(name) for name in STAT_NAMES]            # our module's stats, in STAT_NAMES order
    logs = {name: open(out_dir / f"{name}.jsonl", "w") for name in runs}
    rows, start = {name: [] for name in runs}, time.time()
    specials = ours.special_ids
    for step in range(args.steps):
        batch = noisy_batch(data.next_batch(), args, step, specials, tokenizer.pad_id)
        if step == 0:
            gen, disc = first_batch_check(ours, reference, batch, tokenizer)
            print(f"=> before training, max |ours - reference|: generator logits {gen:.2e}, "
                  f"discriminator logits {disc:.2e}")
        lr = learning_rate(step, args.lr, args.steps, args.warmup)
        for name, (model, optimizer) in runs.items():
            for group in optimizer.param_groups:
                group["lr"] = lr
            if name == "ours":
                out = model(batch)
                loss, stats = out["loss"], out["stats"][keep]
                disc = (out["disc_logits"][out["real"]], out["labels"][out["real"]])
            else:
                loss, stats, disc = reference_step(model, batch, specials, tokenizer.pad_id, tokenizer.mask_id,
                                             args.disc_weight)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            sums[name] += stats
            scores[name].append(disc)
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            for name in runs:
                row = metrics(dict(zip(STAT_NAMES, sums[name].tolist())), scores[name], step + 1, lr)
                rows[name].append(row)
                logs[name].write(json.dumps(row) + "\n")
                logs[name].flush()
                sums[name].zero_()
                scores[name] = []
            o, r = rows["ours"][-1], rows["reference"][-1]
            print(f"step {step + 1}/{args.steps} | mlm {o['mlm_loss']:.4f} / {r['mlm_loss']:.4f} | gen acc "
                  f"{o['gen_acc']:.4f} / {r['gen_acc']:.4f} | rtd {o['rtd_loss']:.4f} / {r['rtd_loss']:.4f} | "
                  f"disc acc {o['disc_acc']:.4f} / {r['disc_acc']:.4f} | AUC {o['disc_auc']:.4f} / {r['disc_auc']:.4f} "
                  f"(ours / reference) | "
                  f"{time.time() - start:.0f} s", flush=True)
    for f in logs.values():
        f.close()
    return rows, time.time() - start


# ---------------------------------------------------------------------------------------------
# 3. The comparison table, command line
# ---------------------------------------------------------------------------------------------
def comparison_table(rows, args, seconds) -> str:
    keys = (("mlm_loss", "MLM", 4), ("gen_acc", "gen acc", 4), ("rtd_loss", "RTD BCE", 4), ("disc_acc", "disc acc", 4),
            ("disc_auc", "AUC", 4))
    head = "| step | " + " | ".join(f"{label} ours | {label} ref." for _, label, _ in keys) + " | base-rate entropy (ours) |"
    lines = [head, "|" + "---|" * (2 + 2 * len(keys))]
    for o, r in zip(rows["ours"], rows["reference"]):
        cells = " | ".join(f"{o[k]:.{d}f} | {r[k]:.{d}f}" for k, _, d in keys)
        lines.append(f"| {o['step']} | {cells} | {o['rtd_base_entropy']:.4f} |")
    worst = {label: max(abs(o[k] - r[k]) for o, r in zip(rows["ours"], rows["reference"])) for k, label, _ in keys}
    return "\n".join([
        "# Our ELECTRA beside transformers' ELECTRA classes, same batches, masks, samples and optimizer", "",
        f"Command: `{args.command}`  ", f"Date: {time.strftime('%Y-%m-%d %H:%M')}, commit {args.git_commit}"
        f"{' (dirty tree)' if args.git_dirty else ''}, torch {torch.__version__}, wall time {seconds:.0f} s "
        "for both runs together.", "",
        "Values are means over each log interval (the reference's loss code is this script's own).", "",
        *lines, "",
        "Largest |ours - reference| over the log steps: " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()),
        ""])


def git(*cmd) -> str:
    return subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True).stdout.strip()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=("tiny", "mini", "small"), default="mini")
    p.add_argument("--generator-fraction", type=float, default=1 / 4)
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--corpus", nargs="+", default=None, help="default: DATA_DIR/pubmed/corpus.txt")
    p.add_argument("--vocab", default=None, help="default: DATA_DIR/vocab/scivocab_uncased.txt")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--mask-prob", type=float, default=0.15)
    p.add_argument("--disc-weight", type=float, default=50.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=300, help="warmup steps")
    p.add_argument("--bias-correction", action=argparse.BooleanOptionalAction, default=True,
                   help="Adam bias correction (default on: the probe shape's setting, a short warmup)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--heldout-every", type=int, default=100,
                   help="leave out documents 0, k, 2k, ... as train_pretrain.py does (same training batches)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default="runs/reference_curve")
    args = p.parse_args(argv)
    args.corpus = args.corpus or [os.path.join(args.data_dir, "pubmed", "corpus.txt")]
    args.vocab = args.vocab or os.path.join(args.data_dir, "vocab", "scivocab_uncased.txt")
    args.num_predictions = tp.num_predictions(args.mask_prob, args.seq_len)
    args.command = "python bench/reference_curve.py " + " ".join(argv if argv is not None else sys.argv[1:])
    return args


def main(args):
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"=> writing to {out_dir}")
    args.git_commit, args.git_dirty = git("rev-parse", "HEAD") or None, bool(git("status", "--porcelain"))
    (out_dir / "args.json").write_text(json.dumps(vars(args), indent=1))
    rows, seconds = train_side_by_side(args, out_dir)
    table = comparison_table(rows, args, seconds)
    (out_dir / "comparison.md").write_text(table)
    print(table)
    print(f"=> wrote {out_dir}/ours.jsonl, reference.jsonl, comparison.md")


if __name__ == "__main__":
    main(parse_args())
