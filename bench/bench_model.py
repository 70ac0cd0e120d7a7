"""
One ELECTRA pre-training step, ours against the same step built from transformers' ELECTRA classes.
A step: generator forward over the masked input, Gumbel-max sampling at the masked
positions (fp32, no gradient), discriminator forward over the corrupted input, loss = mlm + 50 * rtd,
backward, AdamW step. Ours runs the MLM head only at the N masked positions (docs/paper.md §3); the
transformers step is ElectraForMaskedLM + ElectraForPreTraining with the embedding block shared as
HF's ELECTRA pre-training examples do (generator.electra.embeddings = discriminator.electra.embeddings),
whose MLM head runs over all L positions. Same sizes, same batch (no padding; or with --shards the
same real packed PubMed batches, padded tails and attention masks included), same optimizer.

Each implementation runs in its own child process (interleaved, best of --repeats), which reports
s/step, seq/s, peak memory (ru_maxrss on CPU, max_memory_allocated on CUDA) and MFU from the
analytic FLOPs of docs/paper.md §5 (the same useful FLOPs for both, so the MFU ratio = the speed ratio).

    OMP_NUM_THREADS=2 python bench/bench_model.py                         # CPU, ELECTRA-Small, L=128
    python bench/bench_model.py --device cuda --dtype bf16 --compile --size base --seq-len 512 --batch-size 32
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))   # bench scripts run from anywhere; the library itself never does this
import electramed as em  # noqa: E402

MASK_ID = 4                      # any fixed id: the timing does not depend on which


# ----- FLOPs (docs/paper.md §5) ---------------------------------------------------------------
def encoder_flops(config, seq_len):
    """Forward+backward FLOPs of one sequence through an encoder: 6 * matmul params * tokens, plus
    attention scores and mixing (2 * 2 * L^2 * D forward per layer, times 3 with backward)."""
    D, F_, L = config.hidden_size, config.intermediate_size, seq_len
    per_layer = 4 * D * D + 2 * D * F_
    project = config.embedding_size * D if config.embedding_size != D else 0
    return 6 * (config.num_hidden_layers * per_layer + project) * L + 12 * config.num_hidden_layers * L * L * D


def flops_per_sequence(disc, gen, seq_len, n_masked):
    """Useful FLOPs of one training sequence: both encoders, the RTD head at all L positions, the
    MLM head at the N masked positions only."""
    rtd_head = 6 * (disc.hidden_size * disc.hidden_size + disc.hidden_size) * seq_len
    mlm_head = 6 * (gen.hidden_size * gen.embedding_size + gen.embedding_size * gen.vocab_size) * n_masked
    return encoder_flops(disc, seq_len) + encoder_flops(gen, seq_len) + rtd_head + mlm_head


def matmul_peak(device, dtype, n):
    """Measured dense matmul FLOP/s on this device (n x n x n, best of 5)."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    best = float("inf")
    for _ in range(6):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


# ----- the two implementations of one step ---------------------------------------------------
def make_batch(args, vocab_size, device):
    """Token ids (no padding, [CLS] ... [SEP]), two segments, and N distinct masked positions each."""
    B, L = args.batch_size, args.seq_len
    n = int((args.mask_prob + 0.005) * L)                       # 19 at L=128, 79 at L=512 (docs/paper.md §3)
    ids = torch.randint(5, vocab_size, (B, L))
    ids[:, 0], ids[:, -1] = 2, 3
    types = (torch.arange(L) >= L // 2).long().expand(B, L).contiguous()
    positions = torch.rand(B, L - 2).argsort(dim=1)[:, :n] + 1   # never [CLS] or the last [SEP]
    return {k: v.to(device) for k, v in dict(ids=ids, types=types, positions=positions).items()} | {"mask": None}


def open_shards(args):
    """data.py's reader over --shards, batch_size sequences a batch, checked against --seq-len."""
    from data import PretrainingData
    loader = PretrainingData(Path(args.shards), batch_size=args.batch_size, seed=args.seed)
    if loader.max_len != args.seq_len:
        sys.exit(f"{args.shards}: examples of length {loader.max_len}, not --seq-len {args.seq_len}")
    return loader


def real_batches(args, device):
    """With --shards: real packed PubMed examples (padded tails) from data.py's shards, batch after
    batch, each with the same N masked positions per example, drawn among its real tokens after [CLS]
    (an example with fewer than N such tokens takes the rest from its padding). Else None."""
    if not args.shards:
        return None
    loader = open_shards(args)
    n = int((args.mask_prob + 0.005) * args.seq_len)

    def next_batch():
        b = loader.next_batch()
        candidates = b["attention_mask"].clone()
        candidates[:, 0] = False
        positions = torch.where(candidates, torch.rand(candidates.shape), -1.0).topk(n, dim=1).indices
        return {"ids": b["input_ids"].to(device), "types": b["token_type_ids"].to(device),
                "positions": positions.to(device), "mask": b["attention_mask"].to(device)}
    return next_batch


def gumbel_sample(logits):
    """One token per row of (B, N, V) logits: argmax(logits + Gumbel noise), in fp32, no gradient."""
    logits = logits.detach().float()
    u = torch.rand_like(logits).clamp_(1e-9, 1.0)
    return (logits - torch.log(-torch.log(u))).argmax(-1)       # (B, N)


def build_ours(disc_config, gen_config):
    disc, gen = em.Discriminator(disc_config), em.Generator(gen_config)
    em.tie_generator_to(gen, disc)

    def step(gen_model, disc_model, batch):
        ids, types, pos = batch["ids"], batch["types"], batch["positions"]
        masked = ids.scatter(1, pos, MASK_ID)
        logits = gen_model(masked, types, batch["mask"], pos)                   # (B, N, V)
        mlm = F.cross_entropy(logits.float().flatten(0, 1), ids.gather(1, pos).flatten())
        corrupted = ids.scatter(1, pos, gumbel_sample(logits))
        rtd_logits = disc_model(corrupted, types, batch["mask"])                # (B, L)
        weight = None if batch["mask"] is None else batch["mask"].float()      # real tokens only
        rtd = F.binary_cross_entropy_with_logits(rtd_logits.float(), (corrupted != ids).float(), weight)
        return mlm + 50.0 * rtd

    return gen, disc, step


def build_hf(disc_config, gen_config):
    from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining
    disc = ElectraForPreTraining(ElectraConfig(**asdict(disc_config)))
    gen = ElectraForMaskedLM(ElectraConfig(**asdict(gen_config)))
    gen.electra.embeddings = disc.electra.embeddings                           # share the whole block
    gen.generator_lm_head.weight = disc.electra.embeddings.word_embeddings.weight

    def step(gen_model, disc_model, batch):
        ids, types, pos = batch["ids"], batch["types"], batch["positions"]
        masked = ids.scatter(1, pos, MASK_ID)
        labels = torch.full_like(ids, -100).scatter(1, pos, ids.gather(1, pos))
        out = gen_model(masked, attention_mask=batch["mask"], token_type_ids=types, labels=labels)  # (B, L, V)
        picked = out.logits.gather(1, pos[:, :, None].expand(-1, -1, out.logits.shape[-1]))
        corrupted = ids.scatter(1, pos, gumbel_sample(picked))
        rtd = disc_model(corrupted, attention_mask=batch["mask"], token_type_ids=types,
                         labels=(corrupted != ids).long()).loss               # HF: the real tokens only
        return out.loss + 50.0 * rtd

    return gen, disc, step


def run_one(args):
    """Time `args.steps` steps of one implementation in this process; returns a dict of numbers."""
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    if args.impl == "hf":
        import transformers  # noqa: F401  (its import memory belongs in the baseline, not the step)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    disc_config = em.model_config(args.size, args.vocab_size)
    gen_config = em.generator_config(disc_config, em.GENERATOR_FRACTION[args.size])
    gen, disc, step = (build_ours if args.impl == "ours" else build_hf)(disc_config, gen_config)
    gen, disc = gen.to(device).train(), disc.to(device).train()
    params = list(torch.nn.ModuleDict({"g": gen, "d": disc}).parameters())    # shared weights once
    opt = torch.optim.AdamW(params, lr=5e-4, weight_decay=0.01, eps=1e-6)
    gen_run, disc_run = (torch.compile(gen), torch.compile(disc)) if args.compile else (gen, disc)
    next_real = real_batches(args, device)
    batch = make_batch(args, disc_config.vocab_size, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, cpu_times, real_tokens = [], [], []
    for i in range(args.warmup + args.steps):
        if next_real is not None:
            batch = next_real()                                   # loaded and copied before the clock starts
        real_tokens.append(batch["ids"].numel() if batch["mask"] is None else int(batch["mask"].sum()))
        synchronize(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        with autocast:
            loss = step(gen_run, disc_run, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        synchronize(device)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)     # CPU seconds, all threads: robust to a busy machine
        if not torch.isfinite(loss):
            raise RuntimeError(f"{args.impl}: loss became {loss.item()} at step {i}")
    seconds = sorted(times[args.warmup:])[len(times[args.warmup:]) // 2]       # median step
    cpu_seconds = sorted(cpu_times[args.warmup:])[len(cpu_times[args.warmup:]) // 2]
    peak_mb = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
               else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    timed = slice(args.warmup, None)
    return {"impl": args.impl, "s_per_step": seconds, "cpu_s_per_step": cpu_seconds, "seq_per_s": args.batch_size / seconds,
            "real_tokens_per_s": sum(real_tokens[timed]) / sum(times[timed]), "real_data": next_real is not None,
            "peak_mb": peak_mb, "rss_before_model_mb": base_rss, "loss": loss.item(),
            "params": em.count_parameters(torch.nn.ModuleDict({"g": gen, "d": disc})),
            "flops_per_seq": flops_per_sequence(disc_config, gen_config, args.seq_len,
                                                int((args.mask_prob + 0.005) * args.seq_len))}


# ----- command line --------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=list(em.SIZES), default="small")
    p.add_argument("--vocab-size", type=int, default=31090, help="scivocab (docs/paper.md §1)")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8, help="sequences per step")
    p.add_argument("--mask-prob", type=float, default=0.15)
    p.add_argument("--steps", type=int, default=5, help="timed steps (the median is reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (compile happens here)")
    p.add_argument("--repeats", type=int, default=3, help="child processes per implementation, interleaved")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="bf16 = autocast")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads; 1 keeps CPU time honest on a shared machine (0: torch's default)")
    p.add_argument("--impl", choices=["ours", "hf"], default=None, help="run one in this process (child mode)")
    p.add_argument("--peak-flops", type=float, default=None,
                   help="device peak FLOP/s for MFU (default: measured matmul peak)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shards", default=None, help="real packed examples (data.py prepare at --seq-len, a vocabulary "
                   "of at most --vocab-size) instead of the synthetic batch without padding")
    p.add_argument("--out-dir", default="runs/bench_model")
    return p.parse_args(argv)


def child_argv(args, impl):
    argv = [sys.executable, __file__, "--impl", impl]
    for key in ("size", "vocab_size", "seq_len", "batch_size", "mask_prob", "steps", "warmup", "device",
                "dtype", "threads", "seed", "out_dir"):
        argv += ["--" + key.replace("_", "-"), str(getattr(args, key))]
    return argv + (["--compile"] if args.compile else []) + (["--shards", args.shards] if args.shards else [])


def main(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.impl:                                   # child: one implementation, one JSON line
        print(json.dumps(run_one(args)))
        return
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"out dir: {out_dir}")
    results = {"ours": [], "hf": []}
    for r in range(args.repeats):
        for impl in ("ours", "hf"):
            done = subprocess.run(child_argv(args, impl), capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{impl} child failed:\n{done.stderr[-3000:]}")
            results[impl].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"repeat {r + 1}/{args.repeats} {impl}: {results[impl][-1]['s_per_step']:.3f} s/step")
    best = {impl: {**runs[0], **{k: min(r[k] for r in runs) for k in ("s_per_step", "cpu_s_per_step", "peak_mb")},
                   "seq_per_s": max(r["seq_per_s"] for r in runs)}
            for impl, runs in results.items()}                  # best of the repeats, metric by metric
    device = torch.device(args.device)
    peak = args.peak_flops or matmul_peak(device, torch.bfloat16 if args.dtype == "bf16" else torch.float32,
                                          8192 if device.type == "cuda" else 1024)
    report(args, best, peak)
    (out_dir / "bench_model.json").write_text(json.dumps({"args": vars(args), "runs": results,
                                                          "peak_flops": peak}, indent=2))


def report(args, best, peak):
    flops = best["ours"]["flops_per_seq"]
    print(f"\n{args.size}, L={args.seq_len}, batch {args.batch_size}, {args.device} {args.dtype}, "
          f"compile={args.compile}, threads={torch.get_num_threads()}; "
          f"{flops:.3g} useful FLOPs/seq; measured matmul peak {peak:.3g} FLOP/s")
    print("| impl | s/step (wall) | CPU s/step | seq/s | peak MB | peak MB above imports | MFU | MFU by CPU time |")
    print("|---|---|---|---|---|---|---|---|")
    for impl, r in best.items():
        above = r["peak_mb"] - (r["rss_before_model_mb"] if args.device == "cpu" else 0)
        cpu_mfu = args.batch_size / r["cpu_s_per_step"] * flops / (peak / torch.get_num_threads())
        print(f"| {impl} | {r['s_per_step']:.3f} | {r['cpu_s_per_step']:.3f} | {r['seq_per_s']:.2f} | "
              f"{r['peak_mb']:.0f} | {above:.0f} | {100 * r['seq_per_s'] * flops / peak:.1f}% | "
              f"{100 * cpu_mfu:.1f}% |")
    ratio = best["hf"]["s_per_step"] / best["ours"]["s_per_step"]
    cpu_ratio = best["hf"]["cpu_s_per_step"] / best["ours"]["cpu_s_per_step"]
    print(f"ours is {ratio:.2f}x the speed of transformers (wall), {cpu_ratio:.2f}x (CPU time); memory {best['ours']['peak_mb']:.0f} vs "
          f"{best['hf']['peak_mb']:.0f} MB; params {best['ours']['params']:,} vs {best['hf']['params']:,}")


if __name__ == "__main__":
    main(parse_args())
