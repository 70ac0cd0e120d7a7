"""
Does the gradient all-reduce overlap the backward? Two gloo processes of train_pretrain.py, traced.

DDP all-reduces a bucket of gradients as soon as the backward has produced all of them, so the
communication of the last layers runs while the first layers' gradients are still being computed.
Under torch.compile that only happens if the compiled backward is cut into pieces at the buckets'
boundaries (Dynamo's DDP optimizer, which needs DDP inside compile: torch.compile(DDP(model)), the
order train_pretrain.wrap_model uses). One uncut graph hands every gradient to DDP at its very end.

This script runs `train_pretrain.py --size mini` with 2 processes under torchrun, three ways, and
records one optimizer step of each with torch.profiler (recording_steps, below):
  compile(DDP)           ours: the graph cut at DDP's buckets
  compile(DDP), one graph  the same with torch._dynamo.config.optimize_ddp = False (the control)
  DDP, eager             no compile: DDP's hooks fire per parameter
The buckets are 1 MB (--bucket-mb sets train_pretrain.DDP_BUCKET_MB), so the mini model's 4 layers fill
several. From rank 0's trace it reports when each all-reduce was launched relative to the backward's
compute. No timing is asserted: the question is the order of events, which a busy CPU does not change.

    python bench/ddp_overlap.py                   # embedded sample; ~3-6 min on 2 cores (compiles twice)
    python bench/ddp_overlap.py --out runs/ddp_overlap --variants ours control

Writes OUT/ddp_overlap.json, OUT/ddp_overlap.md and each variant's run (with profile/rank*.json).
"""
import argparse
import contextlib
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
            "--out-dir", str(Path(args.out) / variant), *VARIANTS[variant][1]]


def run_variant(args, variant):
    """torchrun with 2 processes, each running this file in --worker mode (which sets the Dynamo flag, the
    bucket size and the profiler)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(args.port),
           __file__, "--worker", variant, str(args.bucket_mb), *train_args(args, variant)]
    print(f"== {variant}: {VARIANTS[variant][0]}", flush=True)
    subprocess.run(cmd, env=env, cwd=REPO, check=True)


def worker(variant, bucket_mb, rest):
    import torch._dynamo
    sys.path.insert(0, str(REPO))
    import train_pretrain as tp
    torch._dynamo.config.optimize_ddp = VARIANTS[variant][2]
    tp.DDP_BUCKET_MB = bucket_mb
    args = tp.parse_args(rest)
    with recording_steps(tp, PROFILED_STEP, PROFILED_STEP, Path(args.out_dir) / "profile", int(os.environ["RANK"])):
        tp.main(args)


@contextlib.contextmanager
def recording_steps(tp, first, last, out_dir, rank=0):
    """torch.profiler around optimizer steps first..last of a train_pretrain run in this process: it starts
    when the run asks for step `first`'s learning rate and stops after step `last`'s zero_grad. Writes
    out_dir/rank<r>.json (open in Perfetto or chrome://tracing) and rank<r>.txt (the costliest ops).
    Why a trace: it shows what no counter does, e.g. whether DDP's all-reduces run while the backward
    still computes, or where a GPU step waits on the host. The run's functions are restored on exit."""
    import torch
    learning_rate, optimizer_class, state = tp.learning_rate, tp.AdamWeightDecay, {"profiler": None, "step": 0}
    own_zero_grad = "zero_grad" in vars(optimizer_class)
    zero_grad = optimizer_class.zero_grad
    cuda = torch.cuda.is_available()

    def start(step, *rest):                    # called once at the start of every step (step = steps done)
        state["step"] = step + 1
        if state["step"] == first:
            kinds = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
            state["profiler"] = torch.profiler.profile(activities=kinds)
            state["profiler"].start()
        return learning_rate(step, *rest)

    def stop_after(optimizer, *a, **k):
        zero_grad(optimizer, *a, **k)
        if state["profiler"] is not None and state["step"] == last:
            profiler, state["profiler"] = state["profiler"], None
            profiler.stop()
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            profiler.export_chrome_trace(str(Path(out_dir) / f"rank{rank}.json"))
            sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
            (Path(out_dir) / f"rank{rank}.txt").write_text(profiler.key_averages().table(sort_by=sort, row_limit=40))
            print(f"=> profile of steps {first}-{last} written to {out_dir}/rank{rank}.json")

    tp.learning_rate, optimizer_class.zero_grad = start, stop_after
    try:
        yield
    finally:
        tp.learning_rate = learning_rate
        if own_zero_grad:
            optimizer_class.zero_grad = zero_grad
        else:
            del optimizer_class.zero_grad
        if state["profiler"] is not None:         # a run that stopped inside the span
            state["profiler"].stop()


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
    if argv[:1] == ["--worker"]:                # one torchrun process: --worker VARIANT BUCKET_MB train args...
        return worker(argv[1], float(argv[2]), argv[3:])
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
