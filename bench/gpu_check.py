"""
The prepared device check: the first thing a session lent a GPU runs. Started by
bench/gpu_check.sh, one part per process (so a part that hangs or crashes costs only its own time),
then `summary` gathers the parts into results.json and results.md.

    bash bench/gpu_check.sh                     # CUDA: at most ~8 minutes on one H100
    bash bench/gpu_check.sh --cpu --out /tmp/x  # the same parts at tiny sizes (a default test runs it)

Parts, in the order they run (what no GPU has measured yet first; a part whose estimate no longer fits
the budget is skipped and says so):
  env                 device, versions, commit, whether the data and transformers are there
  unpad_512           bench_pretrain on REAL packed PubMed batches at L = 512 (74% padding), base, eager:
                      padded vs --unpad, with the recipe's dropout 0.1 (attention: SDPA re-padded) and
                      with dropout 0 (attention: varlen flash); real tokens/s and the ratio; and the
                      transformers step on the same batches (padded: it cannot unpad)
  unpad_512_compile   the same, compiled (padded, unpadded, then unpadded with dropout 0 if time is left)
  profile_512_compile torch.profiler's op table of the compiled base step at L = 512 (synthetic batch, as
                      bench_512_compile): where the time goes that the 35% MFU target is missing
  pretrain            300 steps of `small` in bf16 + compile on real PubMed: finite, falling losses
  pretrain_unpad      the pretrain run's first 100 steps again with --unpad: seq/s against the padded
                      run, its padding share, and how often Dynamo recompiled for the varying token count
  bench_128_compile, bench_512_compile    bench_pretrain, base, compiled, ours vs the transformers step
                      (synthetic batches without padding: the 35% MFU and 2x targets)
  syncs               12 pre-training steps under torch.cuda.set_sync_debug_mode("warn"): host syncs
                      per step, which must come at log steps only (4, 8, 12)
  resume              SIGKILL after a checkpoint, --resume, against an uninterrupted run and a second
                      uninterrupted run (the run-to-run noise): bit-identical, or within that noise
  finetune            NER (NCBI-disease) and QA (BioASQ) smoke runs in bf16 from the pretrain export
  bench_512, bench_128                the rest of the bench_pretrain sweep (not compiled)
Each part writes OUT/<part>.json ({"status": "ok" | "failed" | "skipped", ...}) and OUT/<part>.log.
"""
import argparse
import contextlib
import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))   # bench scripts run from anywhere; the library itself never does this

H100_PEAK = 989e12              # dense bf16 FLOP/s of an H100 SXM: the MFU target is of this

# Sizes per mode, and each part's time estimate in seconds (cuda, cpu), used to skip what cannot fit.
SIZES = {
    "cuda": dict(pretrain=dict(size="small", steps=300, batch=128, seq_len=128, log_every=25), unpad_steps=100,
                 resume=dict(size="small", steps=60, batch=64, seq_len=128, save_every=10),
                 syncs=dict(size="small", batch=64, seq_len=128),
                 bench={128: 128, 512: 32}, bench_size="base", bench_steps=10,
                 finetune=dict(size="small", train=512, eval=256, qa_train=512, qa_eval=5),
                 unpad=dict(size="base", seq_len=512, batch=32, steps=10, warmup=2, compile_warmup=3)),
    "cpu": dict(pretrain=dict(size="tiny", steps=30, batch=16, seq_len=64, log_every=5), unpad_steps=10,
                resume=dict(size="tiny", steps=24, batch=8, seq_len=64, save_every=4),
                syncs=dict(size="tiny", batch=8, seq_len=64),
                bench={128: 4, 512: 2}, bench_size="tiny", bench_steps=2,
                finetune=dict(size="tiny", train=48, eval=32, qa_train=24, qa_eval=2),
                unpad=dict(size="tiny", seq_len=128, batch=16, steps=6, warmup=1, compile_warmup=2)),
}
ESTIMATES = {"env": (10, 5), "unpad_512": (130, 50), "unpad_512_compile": (240, 0), "profile_512_compile": (90, 20),
             "pretrain": (120, 40),
             "pretrain_unpad": (90, 25), "bench_128_compile": (130, 0), "bench_512_compile": (150, 0),
             "syncs": (40, 25), "resume": (75, 60), "finetune": (90, 60), "bench_512": (45, 35), "bench_128": (40, 25)}
PARTS = list(ESTIMATES)


# ----- helpers ---------------------------------------------------------------------------------
def run(cmd, log, deadline, **kwargs):
    """Run cmd (a list) with its output appended to log, killed with its whole process group at the
    deadline. Returns the exit code (124 on timeout)."""
    with open(log, "a") as f:
        f.write(f"$ {' '.join(map(str, cmd))}\n")
        f.flush()
        child = subprocess.Popen(list(map(str, cmd)), stdout=f, stderr=subprocess.STDOUT, cwd=REPO,
                                 start_new_session=True, **kwargs)
        try:
            return child.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            return 124


def pretrain_cmd(a, out_dir, corpus, size, steps, batch, seq_len, *extra):
    return [sys.executable, "train_pretrain.py", "--size", size, "--corpus", corpus, "--vocab", vocab_file(a),
            "--out-dir", out_dir, "--steps", steps, "--batch-size", batch, "--seq-len", seq_len,
            "--data-workers", 8 if a.mode == "cuda" else 1, "--gpus", 1 if a.mode == "cuda" else 0, *extra]


def vocab_file(a):
    return str(Path(a.data) / "vocab" / "scivocab_uncased.txt")


def corpus_file(a):
    """The whole PubMed corpus on CUDA, the 1,500-abstract sample on CPU."""
    return str(Path(a.data) / "pubmed" / ("corpus.txt" if a.mode == "cuda" else "pubmed_sample.txt"))


def with_shards(a, out_dir, seq_len):
    """out_dir with the corpus already packed in out_dir/shards (packed once, copied per run)."""
    from data import prepare_corpus
    cache = Path(a.out) / f"shards_{seq_len}"
    prepare_corpus([corpus_file(a)], vocab_file(a), cache, max_len=seq_len, workers=8 if a.mode == "cuda" else 1,
                   heldout_every=100)
    shutil.rmtree(out_dir, ignore_errors=True)
    shutil.copytree(cache, Path(out_dir) / "shards")
    return str(out_dir)


def sample_shards(a, seq_len):
    """The 1,500-abstract PubMed sample packed at seq_len (seconds to pack; same padding share as the
    whole corpus at L = 512: 74% against 76%)."""
    from data import prepare_corpus
    cache = Path(a.out) / f"sample_shards_{seq_len}"
    prepare_corpus([Path(a.data) / "pubmed" / "pubmed_sample.txt"], vocab_file(a), cache, max_len=seq_len,
                   workers=8 if a.mode == "cuda" else 1)
    return cache


def read_log(out_dir):
    return [json.loads(line) for line in (Path(out_dir) / "log.jsonl").read_text().splitlines()]


def need_data(a):
    if not (Path(a.data) / "vocab" / "scivocab_uncased.txt").is_file():
        return f"no data at {a.data} (pass --data DIR or set ELECTRAMED_DATA)"
    return None


# ----- parts -----------------------------------------------------------------------------------
def part_env(a, log, deadline):
    import torch
    cuda = torch.cuda.is_available()
    git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    return {"status": "ok", "mode": a.mode, "device": torch.cuda.get_device_name() if cuda else "cpu",
            "torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version.split()[0],
            "git_commit": git, "data": a.data, "data_present": need_data(a) is None,
            "transformers": importlib.util.find_spec("transformers") is not None, "cpus": os.cpu_count()}


def part_syncs(a, log, deadline):
    """Host syncs per step, in this process: torch's own sync detector on CUDA (every .item(),
    blocking copy, nonzero, ...), each warning counted for the step whose learning_rate() was asked last."""
    import torch
    import train_pretrain as tp
    s = SIZES[a.mode]["syncs"]
    out_dir = with_shards(a, Path(a.out) / "syncs_run", s["seq_len"])
    per_step, current, real_learning_rate = {}, {"step": None}, tp.learning_rate

    def learning_rate(step, *rest):
        current["step"] = step + 1
        return real_learning_rate(step, *rest)

    def count(message, *rest):
        if "synchroniz" in str(message) and current["step"] is not None:
            per_step[current["step"]] = per_step.get(current["step"], 0) + 1
    argv = pretrain_cmd(a, out_dir, corpus_file(a), s["size"], 12, s["batch"], s["seq_len"],
                        "--log-every", 4, "--save-every", 12, "--no-compile")[2:]
    tp.learning_rate = learning_rate
    with warnings.catch_warnings():                  # restores showwarning and the filters on exit
        warnings.simplefilter("always")
        warnings.showwarning = count
        if a.mode == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        try:
            tp.main(tp.parse_args(list(map(str, argv))))
        finally:
            tp.learning_rate = real_learning_rate
            if a.mode == "cuda":
                torch.cuda.set_sync_debug_mode(0)
    bad = sorted(k for k in per_step if k % 4)
    return {"status": "ok" if not bad else "failed", "syncs_per_step": per_step, "non_log_steps_with_syncs": bad,
            "note": "CUDA's sync debug mode" if a.mode == "cuda" else
                    "CPU: no sync detector (tests/test_train_pretrain.py counts Tensor reads); the run itself is checked"}


def part_bench(a, log, deadline, seq_len, compile_):
    if a.mode == "cpu" and compile_:
        return {"status": "skipped", "reason": "torch.compile takes minutes on 2 CPU cores; CUDA only"}
    m = SIZES[a.mode]
    out_dir = Path(a.out) / f"bench_{seq_len}{'_compile' if compile_ else ''}"
    impls = "ours,hf" if importlib.util.find_spec("transformers") else "ours"
    rc = run([sys.executable, "bench/bench_pretrain.py", "--size", m["bench_size"], "--seq-len", seq_len,
              "--batch-size", m["bench"][seq_len], "--steps", m["bench_steps"], "--warmup", 3 if compile_ else 1,
              "--repeats", 1, "--device", a.mode, "--compile" if compile_ else "--no-compile", "--impls", impls,
              "--out-dir", out_dir], log, deadline)
    if rc:
        return {"status": "failed", "rc": rc}
    result = json.loads((out_dir / "bench_pretrain.json").read_text())
    rows = {r["impl"]: r for r in result["rows"]}
    for r in rows.values():
        r["mfu_h100_bf16"] = r["seq_per_s"] * rows["ours"]["flops_per_seq"] / H100_PEAK
    summary = {"status": "ok", "size": m["bench_size"], "seq_len": seq_len, "batch": m["bench"][seq_len],
               "compile": compile_, "measured_peak": result["peak"], "rows": rows}
    if "hf" in rows:
        summary["ours_over_transformers"] = rows["hf"]["s_per_step"] / rows["ours"]["s_per_step"]
    else:
        summary["note"] = "transformers not installed: ours only"
    return summary


def part_pretrain(a, log, deadline):
    s = SIZES[a.mode]["pretrain"]
    out_dir = with_shards(a, Path(a.out) / "pretrain_run", s["seq_len"])
    start = time.time()
    rc = run(pretrain_cmd(a, out_dir, corpus_file(a), s["size"], s["steps"], s["batch"], s["seq_len"],
                          "--log-every", s["log_every"], "--save-every", s["steps"]), log, deadline)
    if rc:
        return {"status": "failed", "rc": rc}
    rows = read_log(out_dir)
    losses = [r["loss"] for r in rows]
    mlm = [r["mlm_loss"] for r in rows]
    finite = all(math.isfinite(x) for x in losses + mlm)
    falling = mlm[-1] < mlm[0] - (1.0 if a.mode == "cuda" else 0.1) and sum(mlm[-2:]) < sum(mlm[:2])
    return {"status": "ok" if finite and falling else "failed", "finite": finite, "mlm_loss_falls": falling,
            "steps": s["steps"], "size": s["size"], "batch": s["batch"], "seq_len": s["seq_len"],
            "wall_s": time.time() - start, "mlm_loss": mlm, "loss": losses,
            "seq_per_s_last": rows[-1]["seq_per_s"], "mfu_last": rows[-1].get("mfu")}


def part_pretrain_unpad(a, log, deadline):
    """The pretrain part's run, its first steps, with --unpad (compiled on CUDA, TORCH_LOGS=recompiles)."""
    s, steps = SIZES[a.mode]["pretrain"], SIZES[a.mode]["unpad_steps"]
    out_dir = with_shards(a, Path(a.out) / "pretrain_unpad_run", s["seq_len"])
    before = Path(log).read_text() if Path(log).is_file() else ""
    rc = run(pretrain_cmd(a, out_dir, corpus_file(a), s["size"], steps, s["batch"], s["seq_len"], "--unpad",
                          "--log-every", s["log_every"], "--save-every", steps), log, deadline,
             env={**os.environ, "TORCH_LOGS": "recompiles"})
    if rc:
        return {"status": "failed", "rc": rc}
    rows = read_log(out_dir)
    padded = Path(a.out) / "pretrain_run" / "log.jsonl"
    padded_rows = read_log(padded.parent) if padded.is_file() else []
    same_step = [r for r in padded_rows if r["step"] == rows[-1]["step"]]
    result = {"status": "ok" if all(math.isfinite(r["loss"]) for r in rows) else "failed", "steps": steps,
              "seq_per_s_last": rows[-1]["seq_per_s"], "recompiles": Path(log).read_text()[len(before):].count("Recompiling"),
              "loss_last": rows[-1]["loss"]}
    if same_step:
        result.update(padded_seq_per_s=same_step[0]["seq_per_s"], padded_loss=same_step[0]["loss"],
                      speedup=rows[-1]["seq_per_s"] / same_step[0]["seq_per_s"])
    return result


def bench_cmd(a, script, impl, s, compile_, *extra):
    """The command of one bench_pretrain.py / bench_model.py measurement in child mode, at sizes s."""
    return [sys.executable, f"bench/{script}", "--impl", impl, "--size", s["size"], "--seq-len", s["seq_len"],
            "--batch-size", s["batch"], "--steps", s["steps"], "--warmup", s["compile_warmup" if compile_ else "warmup"],
            "--device", a.mode, "--dtype", "bf16" if a.mode == "cuda" else "fp32",
            "--compile" if compile_ else "--no-compile", *extra]


def bench_ours(a, log, deadline, shards, s, compile_, unpad, dropout):
    """One bench_pretrain.py measurement of our step on real packed batches, in its own process."""
    rc = run(bench_cmd(a, "bench_pretrain.py", "ours", s, compile_, "--shards", shards, "--vocab", vocab_file(a),
                       "--unpad" if unpad else "--no-unpad", *(["--dropout", dropout] if dropout is not None else [])),
             log, deadline)
    if rc:
        return {"status": "failed", "rc": rc}
    lines = [line for line in Path(log).read_text().splitlines() if line.startswith('{"impl"')]
    return {"status": "ok", **json.loads(lines[-1])}


def bench_transformers(a, log, deadline, shards, s, compile_):
    """bench_model.py's transformers ELECTRA step on the same real batches, padded (it cannot unpad)."""
    rc = run(bench_cmd(a, "bench_model.py", "hf", s, compile_, "--shards", shards,
                       "--threads", 0 if a.mode == "cuda" else 1), log, deadline)
    if rc:
        return {"status": "failed", "rc": rc}
    lines = [line for line in Path(log).read_text().splitlines() if line.startswith('{"impl": "hf"')]
    return {"status": "ok", **json.loads(lines[-1])}


def part_unpad(a, log, deadline, compile_):
    """Padded vs --unpad on real PubMed batches at the paper's L = 512 (74% padding), base, bf16:
    the recipe's dropout 0.1 (attention by SDPA re-padded to the longest sequence) and dropout 0
    (varlen flash attention). Each variant is a fresh process; those that no longer fit are skipped."""
    if a.mode == "cpu" and compile_:
        return {"status": "skipped", "reason": "torch.compile takes minutes on 2 CPU cores; CUDA only"}
    s = SIZES[a.mode]["unpad"]
    shards = sample_shards(a, s["seq_len"])
    variants = ([("padded", False, 0.1), ("unpadded", True, 0.1), ("transformers", None, 0.1),
                 ("unpadded_dropout0", True, 0.0)] if compile_ else
                [("padded", False, 0.1), ("unpadded", True, 0.1), ("transformers", None, 0.1),
                 ("padded_dropout0", False, 0.0), ("unpadded_dropout0", True, 0.0)])
    if not importlib.util.find_spec("transformers"):
        variants = [v for v in variants if v[0] != "transformers"]
    each = ESTIMATES[f"unpad_512{'_compile' if compile_ else ''}"][a.mode == "cpu"] / (3 if compile_ else 5)
    rows = {}
    for name, unpad, dropout in variants:
        if time.time() + each > deadline:
            rows[name] = {"status": "skipped", "reason": "out of budget"}
            continue
        rows[name] = (bench_transformers(a, log, deadline, shards, s, compile_) if unpad is None else
                      bench_ours(a, log, deadline, shards, s, compile_, unpad, dropout))
    ok = {k: r for k, r in rows.items() if r["status"] == "ok"}
    if not {"padded", "unpadded"} <= set(ok):
        return {"status": "failed", "rows": rows}
    result = {"status": "ok", "mode": a.mode, "size": s["size"], "seq_len": s["seq_len"], "batch": s["batch"],
              "compile": compile_, "padding_share": ok["padded"]["padding_share"], "rows": rows,
              "ideal_linear_speedup": 1 / (1 - ok["padded"]["padding_share"])}
    for unpadded, padded in (("unpadded", "padded"), ("unpadded_dropout0", "padded_dropout0"),
                             ("unpadded_dropout0", "padded")):
        if unpadded in ok and padded in ok and f"speedup_{unpadded}" not in result:
            result[f"speedup_{unpadded}"] = ok[unpadded]["real_tokens_per_s"] / ok[padded]["real_tokens_per_s"]
            result[f"speedup_{unpadded}_against"] = padded
    useful = ok["padded"]["step_flops"]["unpadded_varlen"]      # the real tokens' FLOPs, the same batches in every row
    for r in ok.values():
        r["useful_mfu_h100_bf16"] = useful / r["s_per_step"] / H100_PEAK
    if "transformers" in ok:                     # the same real batches, the same dropout, both padded and not
        result["padded_over_transformers"] = ok["transformers"]["s_per_step"] / ok["padded"]["s_per_step"]
        result["unpadded_over_transformers"] = ok["transformers"]["s_per_step"] / ok["unpadded"]["s_per_step"]
    return result


def part_profile(a, log, deadline):
    """Where the compiled base step at L = 512 spends its time (the 35% MFU target's step): the op table
    of bench_pretrain's last two timed steps under torch.profiler, kept whole in the result."""
    if a.mode == "cpu":
        compile_, s = False, dict(SIZES["cpu"]["unpad"], seq_len=128)
    else:
        compile_, s = True, SIZES["cuda"]["unpad"]
    out_dir = Path(a.out) / "profile_512"
    rc = run(bench_cmd(a, "bench_pretrain.py", "ours", s, compile_, "--profile-dir", out_dir), log, deadline)
    if rc:
        return {"status": "failed", "rc": rc}
    table = (out_dir / "ours_ops.txt").read_text()
    return {"status": "ok", "size": s["size"], "seq_len": s["seq_len"], "batch": s["batch"], "compile": compile_,
            "ops_table": table, "top_op": table.splitlines()[3].split()[0] if len(table.splitlines()) > 3 else ""}


def part_resume(a, log, deadline):
    """Three runs of the same steps: straight, straight again (run-to-run noise), and SIGKILLed after
    its first checkpoint then --resume'd. Compared on every weight and Adam moment."""
    import torch
    import train_pretrain as tp
    s = SIZES[a.mode]["resume"]
    runs = {name: with_shards(a, Path(a.out) / f"resume_{name}", s["seq_len"]) for name in ("a", "b", "killed")}
    common = lambda d, every: pretrain_cmd(a, d, corpus_file(a), s["size"], s["steps"], s["batch"], s["seq_len"],
                                           "--no-compile", "--log-every", s["save_every"], "--save-every", every)
    for name in ("a", "b"):
        if run(common(runs[name], s["steps"]), log, deadline):
            return {"status": "failed", "run": name}
    with open(log, "a") as f:
        killed = subprocess.Popen(list(map(str, common(runs["killed"], s["save_every"]))), cwd=REPO,
                                  stdout=f, stderr=subprocess.STDOUT)
    while tp.latest_checkpoint(runs["killed"]) is None and killed.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    resumed_from = tp.latest_checkpoint(runs["killed"])
    if resumed_from is None or resumed_from.name == f"step_{s['steps']:07d}.pt":
        return {"status": "failed", "reason": f"the run was not killed before its end ({resumed_from})"}
    if run(common(runs["killed"], s["save_every"]) + ["--resume"], log, deadline):
        return {"status": "failed", "run": "resume"}
    final = {name: torch.load(tp.latest_checkpoint(d), map_location="cpu", weights_only=False) for name, d in runs.items()}

    def max_diff(x, y):
        tensors = [(x["model"][k], y["model"][k]) for k in x["model"]]
        for sx, sy in zip(x["optimizer"]["state"].values(), y["optimizer"]["state"].values()):
            tensors += [(sx["m"], sy["m"]), (sx["v"], sy["v"])]
        return max((p.float() - q.float()).abs().max().item() for p, q in tensors)
    resume_diff, noise = max_diff(final["a"], final["killed"]), max_diff(final["a"], final["b"])
    # CUDA's atomics (gather/scatter backward, attention) can make two straight runs differ already;
    # a resume is right when it differs from a straight run by no more than their order of magnitude
    within = resume_diff <= 10 * noise
    verdict = ("bit-identical" if resume_diff == 0 else
               "within run-to-run noise" if within else "differs beyond run-to-run noise")
    return {"status": "ok" if resume_diff == 0 or within else "failed", "verdict": verdict,
            "resumed_from": resumed_from.name, "max_diff_resumed_vs_straight": resume_diff,
            "max_diff_straight_vs_straight": noise, "steps": s["steps"], "size": s["size"], "compile": False}


def part_finetune(a, log, deadline):
    """NER and QA for one short epoch each (bf16 autocast on CUDA, as finetune.py does there)."""
    f = SIZES[a.mode]["finetune"]
    export = Path(a.out) / "pretrain_run" / "final" / "discriminator"
    init = ["--init", export] if export.is_dir() else ["--init", "random", "--size", f["size"]]
    results = {"init": str(init[1])}
    for task, train, evaluate, extra in (("ncbi_disease", f["train"], f["eval"], []),
                                         ("bioasq", f["qa_train"], f["qa_eval"], ["--test-batches", 1])):
        out_dir = Path(a.out) / f"finetune_{task}"
        start = time.time()
        rc = run([sys.executable, "finetune.py", "--task", task, "--data-dir", a.data, *init, "--epochs", 1,
                  "--max-train-examples", train, "--max-eval-examples", evaluate, "--seeds", 1,
                  "--device", "cuda" if a.mode == "cuda" else "cpu", "--out-dir", out_dir, *extra], log, deadline)
        if rc:
            return {"status": "failed", "task": task, "rc": rc, **results}
        summary = json.loads((out_dir / "summary.json").read_text())
        results[task] = {"metric": summary["metric"], "mean": summary["mean"], "wall_s": time.time() - start}
    finite = all(math.isfinite(results[t]["mean"]) for t in ("ncbi_disease", "bioasq"))
    return {"status": "ok" if finite else "failed", **results}


PART_FUNCTIONS = {"env": part_env,
                  "unpad_512": lambda a, log, d: part_unpad(a, log, d, False),
                  "unpad_512_compile": lambda a, log, d: part_unpad(a, log, d, True),
                  "profile_512_compile": part_profile, "syncs": part_syncs, "pretrain": part_pretrain, "resume": part_resume,
                  "finetune": part_finetune, "pretrain_unpad": part_pretrain_unpad,
                  "bench_512_compile": lambda a, log, d: part_bench(a, log, d, 512, True),
                  "bench_512": lambda a, log, d: part_bench(a, log, d, 512, False),
                  "bench_128": lambda a, log, d: part_bench(a, log, d, 128, False),
                  "bench_128_compile": lambda a, log, d: part_bench(a, log, d, 128, True)}
NEEDS_DATA = ("syncs", "pretrain", "resume", "finetune", "pretrain_unpad", "unpad_512", "unpad_512_compile")


def run_part(a):
    out = Path(a.out)
    log, result_file = out / f"{a.part}.log", out / f"{a.part}.json"
    estimate = ESTIMATES[a.part][a.mode == "cpu"]
    start = time.time()
    if a.part in NEEDS_DATA and need_data(a):
        result = {"status": "skipped", "reason": need_data(a)}
    elif estimate > a.time_left:
        result = {"status": "skipped", "reason": f"needs ~{estimate} s, {a.time_left:.0f} s of the budget left"}
    else:
        with open(log, "a") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            try:
                result = PART_FUNCTIONS[a.part](a, log, start + a.time_left)
            except Exception as e:                 # a failed part must not stop the others
                result = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
                traceback.print_exc()
    result["seconds"] = round(time.time() - start, 1)
    result_file.write_text(json.dumps(result, indent=1))
    print(f"{a.part}: {result['status']} in {result['seconds']} s")


# ----- summary ---------------------------------------------------------------------------------
def summarize(a):
    out = Path(a.out)
    parts = {}
    for name in PARTS:
        path = out / f"{name}.json"
        if not path.is_file() and not (out / f"{name}.log").is_file():
            continue                               # not asked for (gpu_check.sh --parts)
        if path.is_file():
            parts[name] = json.loads(path.read_text())
        else:                                      # killed by the shell's timeout before it could write
            tail = (out / f"{name}.log").read_text()[-2000:] if (out / f"{name}.log").is_file() else ""
            parts[name] = {"status": "failed", "reason": "no result (killed at the budget?)", "log_tail": tail}
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "mode": a.mode,
               "total_seconds": a.total_seconds, "parts": parts}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "results.md").write_text(markdown(results))
    print(markdown(results))


def markdown(results) -> str:
    env = results["parts"].get("env", {})
    lines = [f"# bench/gpu_check.sh, {results['date']}: {env.get('device', '?')}, torch {env.get('torch', '?')}, "
             f"commit {str(env.get('git_commit', '?'))[:10]}, {results['total_seconds']} s in all", "",
             "| part | status | s | result |", "|---|---|---|---|"]
    for name, p in results["parts"].items():
        lines.append(f"| {name} | {p['status']} | {p.get('seconds', '')} | {describe(name, p)} |")
    bench = [(name, p) for name, p in results["parts"].items() if name.startswith("bench") and p["status"] == "ok"]
    if bench:
        lines += ["", "| size | L | batch | compile | impl | s/step | seq/s | MFU (measured peak) | MFU (H100 989 TFLOP/s) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for _, p in bench:
            for impl, r in p["rows"].items():
                h100 = f"{100 * r['mfu_h100_bf16']:.1f}%" if results["mode"] == "cuda" else "-"
                lines.append(f"| {p['size']} | {p['seq_len']} | {p['batch']} | {p['compile']} | {impl} | "
                             f"{r['s_per_step']:.4f} | {r['seq_per_s']:.1f} | {100 * r['mfu']:.1f}% | {h100} |")
    return "\n".join(lines) + "\n"


def describe(name, p) -> str:
    if p["status"] != "ok":
        return str(p.get("reason") or p.get("error") or p.get("rc") or "")
    if name == "env":
        return f"python {p['python']}, cuda {p['cuda']}, data {p['data_present']}, transformers {p['transformers']}"
    if name == "syncs":
        return f"syncs per step {p['syncs_per_step']}; outside log steps: {p['non_log_steps_with_syncs'] or 'none'}"
    if name == "pretrain":
        return (f"{p['size']} x {p['steps']} steps: MLM loss {p['mlm_loss'][0]:.3f} -> {p['mlm_loss'][-1]:.3f}, "
                f"{p['seq_per_s_last']:.1f} seq/s" + (f", MFU {100 * p['mfu_last']:.1f}%" if p.get("mfu_last") else ""))
    if name == "resume":
        return (f"{p['verdict']}: max diff {p['max_diff_resumed_vs_straight']:.3g} (straight vs straight "
                f"{p['max_diff_straight_vs_straight']:.3g}), resumed from {p['resumed_from']}")
    if name == "pretrain_unpad":
        speed = f", {p['speedup']:.2f}x the padded run's seq/s" if p.get("speedup") else ""
        return f"{p['steps']} steps: {p['seq_per_s_last']:.1f} seq/s{speed}, {p['recompiles']} recompiles"
    if name.startswith("unpad_512"):
        speeds = ", ".join(f"{k}: {p[f'speedup_{k}']:.2f}x (vs {p[f'speedup_{k}_against']})"
                           for k in ("unpadded", "unpadded_dropout0") if f"speedup_{k}" in p)
        hf = (f"; against transformers on the same batches: padded {p['padded_over_transformers']:.2f}x, "
              f"unpadded {p['unpadded_over_transformers']:.2f}x" if "unpadded_over_transformers" in p else "")
        mfu = (f"; useful MFU (real tokens' FLOPs / H100 989 TFLOP/s) padded {100 * p['rows']['padded']['useful_mfu_h100_bf16']:.1f}%, "
               f"unpadded {100 * p['rows']['unpadded']['useful_mfu_h100_bf16']:.1f}%" if p.get("mode") == "cuda" else "")
        return (f"{p['size']} L={p['seq_len']}, {100 * p['padding_share']:.0f}% padding: real tokens/s unpadded / padded "
                f"{speeds}; bound if all work scaled with the tokens: {p['ideal_linear_speedup']:.2f}x{hf}{mfu}")
    if name == "profile_512_compile":
        return f"{p['size']} L={p['seq_len']} compile {p['compile']}: op table in results.json; costliest: {p['top_op']}"
    if name == "finetune":
        return "; ".join(f"{t} {p[t]['metric']} {p[t]['mean']:.4f}" for t in ("ncbi_disease", "bioasq"))
    if name.startswith("bench"):
        ratio = p.get("ours_over_transformers")
        return f"ours {p['rows']['ours']['seq_per_s']:.1f} seq/s" + (f", {ratio:.2f}x transformers" if ratio else "")
    return ""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["part", "summary"])
    p.add_argument("part", nargs="?", choices=PARTS)
    p.add_argument("--mode", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--out", required=True)
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--time-left", type=float, default=480.0, help="seconds of the budget left for this part")
    p.add_argument("--total-seconds", type=float, default=None, help="summary: the whole check's wall time")
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    run_part(args) if args.command == "part" else summarize(args)
