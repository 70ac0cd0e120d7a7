"""
Training speed of train_pretrain.py's full step (noise, masking, generator, Gumbel sampling,
discriminator, losses + metrics, backward, clip, ELECTRA's AdamWeightDecay), side by side with the
transformers-based step of bench/bench_model.py (imported, not rewritten), on the same sizes.

Each measurement runs in its own child process (interleaved, best of --repeats) and reports the
median s/step of --steps timed steps, CPU s/step, seq/s and MFU from train_pretrain.flops_per_sequence
(the useful FLOPs of docs/paper.md §5, the same for both implementations).

    OMP_NUM_THREADS=2 python bench/bench_pretrain.py                        # CPU, small, L=128
    python bench/bench_pretrain.py --device cuda --sweep                    # base, L=128/512, compile on/off
    python bench/bench_pretrain.py --shards DIR --vocab V --seq-len 512 [--unpad]   # real (padded) batches

Writes OUT_DIR/bench_pretrain.json and prints a markdown table for bench/results_pretrain.md.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]   # bench scripts run from anywhere; the library never does this
import bench_model  # noqa: E402  (the model issue's transformers-based step and matmul peak)
import electramed as em  # noqa: E402
import train_pretrain as tp  # noqa: E402


def real_batches(args, pad_id):
    """Real packed PubMed examples from --shards (data.py's layout), batch after batch, on the host;
    None when benchmarking the synthetic padding-free batch."""
    if not args.shards:
        return None
    loader = bench_model.open_shards(args)
    if loader.pad_id != pad_id:
        sys.exit(f"{args.shards}: [PAD] is id {loader.pad_id}, not {pad_id}: pack with the benchmark's vocabulary")
    return loader


def layout_flops(disc, gen, attention_mask, counts, n) -> dict:
    """One real batch's step FLOPs as laid out by: the padded step (N MLM slots per example, used or
    not, as ELECTRA); --unpad with attention re-padded to the longest sequence (CPU, fp32, or attention
    dropout); --unpad with varlen flash attention, which removes every padding FLOP (ModernBERT's
    reference point: linear layers, attention and the MLM head see real, masked tokens only)."""
    lengths = attention_mask.sum(-1).double()
    B, L = attention_mask.shape
    T, M, P = lengths.sum().item(), lengths.max().item(), counts.sum().item()
    return {"padded": tp.matmul_flops(disc, gen, B * L, B * L * L, B * n),
            "unpadded_repadded_attention": tp.matmul_flops(disc, gen, T, B * M * M, P),
            "unpadded_varlen": tp.matmul_flops(disc, gen, T, (lengths ** 2).sum().item(), P)}


def write_profile(profiler, out_dir, device):
    """The op table of the profiled steps, costliest first (device time on CUDA), and the trace."""
    profiler.stop()
    out_dir.mkdir(parents=True, exist_ok=True)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    (out_dir / "ours_ops.txt").write_text(profiler.key_averages().table(sort_by=sort, row_limit=30))
    profiler.export_chrome_trace(str(out_dir / "ours_trace.json"))


def run_ours(args):
    """Time our training step in this process; returns a dict like bench_model.run_one's.
    With --shards the batches are real packed examples (padded tails) and --unpad runs the encoders
    on their real tokens only; real_tokens_per_s is then the figure to compare."""
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    targs = tp.parse_args(["--size", args.size, "--seq-len", str(args.seq_len), "--batch-size", str(args.batch_size),
                           "--gpus", "1" if device.type == "cuda" else "0", "--unpad" if args.unpad else "--no-unpad"]
                          + (["--dropout", str(args.dropout)] if args.dropout is not None else []))
    targs.compile = args.compile
    tp.resolve_defaults(targs)
    if args.vocab:
        tokenizer = tp.Tokenizer.from_vocab_file(args.vocab)
    else:
        tokens = [f"[unused{i}]" for i in range(args.vocab_size)]
        tokens[:5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tokenizer = tp.Tokenizer(tokens)
    raw = tp.build_model(targs, tokenizer).to(device)
    optimizer = tp.build_optimizer(raw, targs)
    model = torch.compile(raw) if args.compile else raw
    loader = real_batches(args, raw.pad_id)
    if loader is None:
        ids = bench_model.make_batch(args, len(tokenizer), "cpu")
        fixed = {"input_ids": ids["ids"], "token_type_ids": ids["types"],
                 "attention_mask": torch.ones_like(ids["ids"], dtype=torch.bool)}
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    times, cpu_times, real_tokens, positions, layouts = [], [], [], [], []
    profiler = None
    for i in range(args.warmup + args.steps):
        if args.profile_dir and i == args.warmup + args.steps - 2:         # the last two timed steps
            profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU] + (
                [torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else []))
            profiler.start()
        data = fixed if loader is None else loader.next_batch()
        bench_model.synchronize(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        b = dict(data, counts=tp.count_targets(data["input_ids"], raw.special_ids, raw.pad_id, targs.mask_prob,
                                              targs.num_predictions))
        real = int(data["attention_mask"].sum())                 # host tensors: no device read
        batch = tp.prepare_batch(b, targs, i, 0, device)
        batch["mlm_denominator"] = b["counts"].sum().float().to(device)
        batch["rtd_denominator"] = torch.tensor(float(real), device=device)
        with autocast:
            out = model(batch)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(raw.parameters(), 1.0)
        optimizer.param_groups[0]["lr"] = optimizer.param_groups[1]["lr"] = 5e-4
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        bench_model.synchronize(device)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        real_tokens.append(real)
        positions.append(data["input_ids"].numel())
        layouts.append(layout_flops(raw.discriminator.config, raw.generator.config, data["attention_mask"],
                                    b["counts"], targs.num_predictions))
    if profiler is not None:
        write_profile(profiler, Path(args.profile_dir), device)
    median = lambda xs: sorted(xs[args.warmup:])[len(xs[args.warmup:]) // 2]
    peak_mb = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
    timed = slice(args.warmup, None)
    return {"impl": "ours", "s_per_step": median(times), "cpu_s_per_step": median(cpu_times),
            "seq_per_s": args.batch_size / median(times), "peak_mb": peak_mb, "loss": out["loss"].item(),
            "real_tokens_per_s": sum(real_tokens[timed]) / sum(times[timed]),
            "padding_share": 1 - sum(real_tokens[timed]) / sum(positions[timed]),
            "unpad": args.unpad, "dropout": targs.dropout, "real_data": loader is not None,
            "step_flops": {k: sum(f[k] for f in layouts[timed]) / len(layouts[timed]) for k in layouts[0]},
            "flops_per_seq": tp.flops_per_sequence(raw.discriminator.config, raw.generator.config,
                                                   args.seq_len, targs.num_predictions)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=list(em.SIZES), default="small")
    p.add_argument("--vocab-size", type=int, default=31090)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--mask-prob", type=float, default=0.15)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (compile happens here)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default=None, help="default bf16 on CUDA, fp32 on CPU")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--sweep", action="store_true", help="CUDA: base at L=128 (batch 64) and 512 (batch 16), compile off/on")
    p.add_argument("--impl", choices=["ours"], default=None, help="child mode: run ours in this process")
    p.add_argument("--impls", default="ours,hf", help="what to measure: ours,hf or ours (no transformers installed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shards", default=None, help="real packed examples (data.py prepare, at --seq-len) instead of "
                   "the synthetic padding-free batch, for both steps; pass the --vocab they were packed with")
    p.add_argument("--vocab", default=None, help="the vocabulary file (default: --vocab-size placeholder tokens)")
    p.add_argument("--unpad", action=argparse.BooleanOptionalAction, default=False,
                   help="ours: the encoders on the real tokens only (train_pretrain --unpad)")
    p.add_argument("--dropout", type=float, default=None, help="ours: hidden and attention dropout (default: the preset's)")
    p.add_argument("--profile-dir", default=None, help="ours: torch.profiler over the last two timed steps: "
                   "ours_ops.txt (the op table) and ours_trace.json here")
    p.add_argument("--out-dir", default="runs/bench_pretrain")
    return p.parse_args(argv)


def child(args, impl):
    """Run one measurement in a fresh process: ours here, the transformers step via bench_model."""
    keys = ("size", "vocab_size", "seq_len", "batch_size", "mask_prob", "steps", "warmup", "device", "dtype", "seed")
    script = __file__ if impl == "ours" else str(REPO / "bench" / "bench_model.py")
    argv = [sys.executable, script, "--impl", impl] + sum((["--" + k.replace("_", "-"), str(getattr(args, k))]
                                                          for k in keys), []) + (["--compile"] if args.compile else [])
    if impl == "hf" and args.shards:             # the same real batches, padded: transformers cannot unpad
        argv += ["--shards", args.shards]
    if impl == "ours":
        argv += sum(([f"--{k.replace('_', '-')}", str(getattr(args, k))] for k in ("shards", "vocab", "dropout", "profile_dir") if getattr(args, k)
                     is not None), []) + (["--unpad"] if args.unpad else [])
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{impl} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(args, impls):
    runs = {impl: [] for impl in impls}
    for r in range(args.repeats):
        for impl in impls:
            runs[impl].append(child(args, impl))
            print(f"  {args.size} L={args.seq_len} compile={args.compile} {impl} repeat {r + 1}: "
                  f"{runs[impl][-1]['s_per_step']:.3f} s/step", flush=True)
    return {impl: min(rs, key=lambda x: x["s_per_step"]) for impl, rs in runs.items()}


def main(args):
    args.dtype = args.dtype or ("bf16" if args.device.startswith("cuda") else "fp32")
    if args.impl:
        print(json.dumps(run_ours(args)))
        return
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"out dir: {out_dir}")
    settings = ([dict(size="base", seq_len=L, batch_size=B, compile=c) for L, B in ((128, 64), (512, 16))
                 for c in (False, True)] if args.sweep else [{}])
    device = torch.device(args.device)
    peak = bench_model.matmul_peak(device, torch.bfloat16 if args.dtype == "bf16" else torch.float32,
                                   8192 if device.type == "cuda" else 1024)
    rows = []
    print(f"| size | L | batch | compile | impl | s/step | CPU s/step | seq/s | MFU (of measured {peak:.3g} FLOP/s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for setting in settings:
        vars(args).update(setting)
        best = measure(args, args.impls.split(","))
        # useful FLOPs per step, the same for both steps: full sequences, or on real batches their real tokens only
        useful = (best["ours"]["step_flops"]["unpadded_varlen"] if best["ours"].get("real_data")
                  else best["ours"]["flops_per_seq"] * args.batch_size)
        for impl, r in best.items():
            mfu = useful / r["s_per_step"] / peak
            rows.append({**setting, **r, "mfu": mfu})
            print(f"| {args.size} | {args.seq_len} | {args.batch_size} | {args.compile} | {impl} | {r['s_per_step']:.3f} | "
                  f"{r['cpu_s_per_step']:.3f} | {r['seq_per_s']:.2f} | {100 * mfu:.1f}% |")
        if "hf" in best:
            print(f"ours / transformers speed: {best['hf']['s_per_step'] / best['ours']['s_per_step']:.2f}x wall, "
                  f"{best['hf']['cpu_s_per_step'] / best['ours']['cpu_s_per_step']:.2f}x CPU time")
    (out_dir / "bench_pretrain.json").write_text(json.dumps({"args": vars(args), "peak": peak, "rows": rows}, indent=1))


if __name__ == "__main__":
    main(parse_args())
