"""
Does the gradient all-reduce overlap the backward? Two gloo processes of train_pretrain.py, traced.

DDP all-reduces a bucket of gradients as soon as the backward has produced all of them, so the
communication of the last layers runs while the first layers' gradients are still being computed.
Under torch.compile that only happens if the compiled backward is cut into pieces at the buckets'
boundaries (Dynamo's DDP optimizer, which needs DDP inside compile: torch.compile(DDP(model)), the
order train_pretrain.wrap_model uses). One uncut graph hands every gradient to DDP at its very end.

This script runs `train_pretrain.py --size mini` with 2 processes under torchrun, three ways, and
records one optimizer step of each with `--profile`:
  compile(DDP)           ours: the graph cut at DDP's buckets
  compile(DDP), one graph  the same with torch._dynamo.config.optimize_ddp = False (the control)
  DDP, eager             no compile: DDP's hooks fire per parameter
The buckets are 1 MB (--ddp-bucket-mb 1), so the mini model's 4 layers fill several. From rank 0's trace it
reports when each all-reduce was launched relative to the backward's compute. No timing is asserted:
the question is the order of events, which a busy CPU does not change.

    python bench/ddp_overlap.py                   # embedded sample; ~3-6 min on 2 cores (compiles twice)
    python bench/ddp_overlap.py --out runs/ddp_overlap --variants ours control

Writes OUT/ddp_overlap.json, OUT/ddp_overlap.md and each variant's run (with profile/rank*.json).
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

VARIANTS = {                                 # name: (label, train_pretrain flags, split the graph at buckets)
    "ours": ("compile(DDP)", ["--compile"], True),
    "control": ("compile(DDP), one graph (optimize_ddp off)", ["--compile"], False),
    "eager": ("DDP, eager", ["--no-compile"], True),
}
PROFILED_STEP = 3                            # steps 1-2 compile and warm up


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/ddp_overlap", help="output directory")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--corpus", default=str(REPO / "sample_data" / "pubmed" / "corpus.txt"))
    p.add_argument("--vocab", default=str(REPO / "sample_data" / "vocab" / "scivocab_uncased.txt"))
    p.add_argument("--bucket-mb", type=float, default=1.0)
    p.add_argument("--port", type=int, default=29533)
    return p.parse_args(argv)


def train_args(args, variant) -> list[str]:
    return ["--size", "mini", "--corpus", args.corpus, "--vocab", args.vocab, "--seq-len", "64",
            "--batch-size", "16", "--steps", str(PROFILED_STEP), "--warmup-steps", "0", "--log-every", "1",
            "--save-every", str(PROFILED_STEP), "--heldout-every", "0", "--data-workers", "1",
            "--ddp-bucket-mb", str(args.bucket_mb), "--profile", str(PROFILED_STEP), str(PROFILED_STEP),
            "--out-dir", str(Path(args.out) / variant), *VARIANTS[variant][1]]


def run_variant(args, variant):
    """torchrun with 2 processes, each running this file in --worker mode (which sets the Dynamo flag)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(args.port),
           __file__, "--worker", variant, *train_args(args, variant)]
    print(f"== {variant}: {VARIANTS[variant][0]}", flush=True)
    subprocess.run(cmd, env=env, cwd=REPO, check=True)


def worker(variant, rest):
    import torch._dynamo
    sys.path.insert(0, str(REPO))
    import train_pretrain as tp
    torch._dynamo.config.optimize_ddp = VARIANTS[variant][2]
    tp.main(tp.parse_args(rest))


def analyse(trace_path) -> dict:
    """When the DDP all-reduces were launched, relative to the backward's compute, on one rank.

    Backward compute = the autograd engine's node evaluations (one per compiled graph piece under
    compile), less AccumulateGrad (it only stores a gradient). An all-reduce overlaps if compute nodes
    still start after its launch. All-reduces launched before the backward began (the step's token
    counts) are not DDP's and are left out."""
    events = [e for e in json.loads(Path(trace_path).read_text())["traceEvents"] if e.get("ph") == "X"]
    backward = [e for e in events if e["name"].startswith("autograd::engine::evaluate_function")
                and "AccumulateGrad" not in e["name"]]
    begin, last_start = min(e["ts"] for e in backward), max(e["ts"] for e in backward)
    reduces = sorted(e["ts"] for e in events if "allreduce" in e["name"] and e["ts"] >= begin)
    compute = sum(e["dur"] for e in backward)
    after_first = sum(e["dur"] for e in backward if reduces and e["ts"] > reduces[0])
    return {"compiled_backward_pieces": sum("CompiledFunctionBackward" in e["name"] for e in backward),
            "allreduces": len(reduces),
            "launched_while_backward_runs": sum(t < last_start for t in reduces),
            "backward_compute_after_first_allreduce": after_first / compute if compute else 0.0,
            "overlap": any(t < last_start for t in reduces) and after_first > 0}


def report(results) -> str:
    rows = ["| variant | compiled backward pieces | DDP all-reduces | launched while backward compute remained | "
            "backward compute after the first all-reduce | overlap |", "|---|---|---|---|---|---|"]
    for variant, r in results.items():
        rows.append(f"| {VARIANTS[variant][0]} | {r['compiled_backward_pieces']} | {r['allreduces']} | "
                    f"{r['launched_while_backward_runs']} | {100 * r['backward_compute_after_first_allreduce']:.0f}% | "
                    f"{'yes' if r['overlap'] else 'no'} |")
    return "\n".join(rows)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:                     # one torchrun process: --worker VARIANT train args...
        return worker(argv[1], argv[2:])
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"output directory: {out}")
    results = {}
    for variant in args.variants:
        run_variant(args, variant)
        results[variant] = analyse(out / variant / "profile" / "rank0.json")
    table = report(results)
    (out / "ddp_overlap.json").write_text(json.dumps(results, indent=2))
    (out / "ddp_overlap.md").write_text(table + "\n")
    print(table)
    return results


if __name__ == "__main__":
    main()
