"""
One fine-tuning job run as separate processes, put back together (queue.sh's `sweep` step).

A job of finetune.py with `--lr 5e-4,1e-3,2e-3 --seeds 1,2,3` trains seed 1 at each lr, keeps the lr with
the best dev score, then trains seeds 2 and 3 at that lr. queue.sh runs the same five trainings as five
processes, each with one lr and one seed, under JOB/parts/, so that a session which ends mid-job loses one
training, not the whole job. train_seed seeds every generator from the seed alone, so each part trains
exactly as it would inside the one process.

    python records/electra_claim/merge_parts.py best-lr JOB 5e-4 1e-3 2e-3   # prints the lr, or fails
    python records/electra_claim/merge_parts.py merge JOB                    # writes JOB/summary.json

best-lr picks as finetune.py's sweep_lr does: the first lr with the highest dev score of seed 1.
merge writes JOB/sweep.json and JOB/summary.json in finetune.py's own layout, so collect.py reads both
kinds of job alike.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path


def part(job: Path, name: str) -> dict:
    path = job / "parts" / name / "summary.json"
    if not path.exists():
        sys.exit(f"{path}: not finished yet")
    return json.loads(path.read_text())


def dev_score(summary: dict) -> float:
    """Seed 1's dev score in the metric the sweep compares (MRR for BioASQ, else F1)."""
    dev = summary["dev"]["1"]
    return dev["mrr"] if "mrr" in dev else dev["f1"]


def best_lr(job: Path, lrs: list[str]) -> str:
    best = None
    for lr in lrs:
        score = dev_score(part(job, f"lr_{lr}"))
        if best is None or score > best[1]:          # strictly greater: ties keep the earlier lr
            best = (lr, score)
    return best[0]


def merge(job: Path) -> dict:
    sweep_parts = {float(p.name.removeprefix("lr_")): part(job, p.name)
                   for p in sorted((job / "parts").glob("lr_*")) if p.is_dir()}
    lr = json.loads((job / "parts" / "best_lr").read_text())
    runs = {"1": part(job, f"lr_{lr}"), "2": part(job, "seed_2"), "3": part(job, "seed_3")}
    seeds = {seed: s["seeds"][seed] for seed, s in sorted(runs.items())}
    per_seed = lambda key: {seed: s[key][seed] for seed, s in sorted(runs.items())}
    summary = {**runs["1"], "seeds": seeds, "mean": statistics.mean(seeds.values()),
               "std": statistics.stdev(seeds.values()) if len(seeds) > 1 else 0.0,
               "dev": per_seed("dev"), "best_epoch": per_seed("best_epoch"), "lr": per_seed("lr"),
               "parts": "one process per lr and seed (records/electra_claim/merge_parts.py)"}
    sweep = {"seed": 1, "dev_metric": "mrr" if "mrr" in runs["1"]["dev"]["1"] else "f1",
             "dev": {f"{x:g}": dev_score(s) for x, s in sorted(sweep_parts.items())}, "best_lr": float(lr)}
    (job / "sweep.json").write_text(json.dumps(sweep, indent=2))
    (job / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=["best-lr", "merge"])
    p.add_argument("job", type=Path)
    p.add_argument("lrs", nargs="*")
    args = p.parse_args()
    if args.step == "best-lr":
        lr = best_lr(args.job, args.lrs)
        (args.job / "parts" / "best_lr").write_text(json.dumps(lr))
        print(lr)
    else:
        s = merge(args.job)
        print(f"{args.job}: {100 * s['mean']:.2f} +- {100 * s['std']:.2f} over seeds {list(s['seeds'])}")


if __name__ == "__main__":
    main()
