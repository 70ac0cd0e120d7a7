"""bench/gpu_check.sh, the prepared device check, run in its CPU mode so that it cannot rot
between the rare sessions lent a GPU: its parts run at tiny sizes on real data (the compiled
benchmarks are CUDA-only and say so), and results.json / results.md come out whole. The default run
checks the unpadding parts (~1 min); every part runs with the slow tests (~2.5 min).

    python -m pytest tests/test_gpu_check.py            # the unpadding parts
    python -m pytest -m slow tests/test_gpu_check.py    # every part
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_cpu_mode(data_dir, out, *extra) -> dict:
    """bench/gpu_check.sh --cpu at one thread (so its resume part is deterministic): the parts' results."""
    done = subprocess.run(["bash", "bench/gpu_check.sh", "--cpu", "--out", str(out), "--data", str(data_dir), *extra],
                          cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "results.json").read_text())["parts"]


def check_unpad_parts(parts):
    """The unpadding parts: real packed batches, padded and the same steps unpadded, beside transformers."""
    assert parts["pretrain_unpad"]["status"] == "ok", parts["pretrain_unpad"]
    unpad = parts["unpad_512"]
    assert unpad["status"] == "ok", unpad
    assert 0.1 < unpad["padding_share"] < 0.9 and all(r["status"] == "ok" for r in unpad["rows"].values())
    rows = unpad["rows"]
    assert [rows[k]["dropout"] for k in ("padded", "unpadded", "padded_dropout0", "unpadded_dropout0")] == [0.1, 0.1, 0, 0]
    assert len({r["padding_share"] for k, r in rows.items() if k != "transformers"}) == 1   # the same batches
    # without dropout the unpadded steps compute the padded ones' losses (with it, other dropout masks)
    assert rows["unpadded_dropout0"]["loss"] == pytest.approx(rows["padded_dropout0"]["loss"], rel=1e-4)
    flops = rows["padded"]["step_flops"]          # the analytic FLOPs of each layout, on these batches
    assert flops["padded"] == pytest.approx(unpad["batch"] * rows["padded"]["flops_per_seq"], rel=1e-12)
    assert flops["padded"] > flops["unpadded_repadded_attention"] >= flops["unpadded_varlen"]
    assert rows["transformers"]["real_data"] and unpad["unpadded_over_transformers"] > 0   # same batches, padded
    assert unpad["speedup_unpadded"] > 0 and unpad["speedup_unpadded_dropout0_against"] == "padded_dropout0"


def test_cpu_mode_runs_the_unpadding_parts(data_dir, tmp_path):
    """The parts no GPU has measured yet run whole on CPU, and --parts runs exactly them."""
    parts = run_cpu_mode(data_dir, tmp_path, "--parts", "env unpad_512 pretrain_unpad")
    assert list(parts) == ["env", "unpad_512", "pretrain_unpad"]
    check_unpad_parts(parts)


@pytest.mark.slow
def test_cpu_mode_runs_every_part(data_dir, tmp_path):
    """Every part: the compiled ones skip with their reason on CPU, the others pass their own checks."""
    parts = run_cpu_mode(data_dir, tmp_path)
    assert list(parts) == ["env", "unpad_512", "unpad_512_compile", "profile_512_compile", "pretrain", "pretrain_unpad", "bench_128_compile",
                           "bench_512_compile", "syncs", "resume", "finetune", "bench_512", "bench_128"]
    skipped = {name for name, p in parts.items() if p["status"] == "skipped"}
    assert skipped == {"unpad_512_compile", "bench_512_compile", "bench_128_compile"}, {n: p.get("reason") for n, p in parts.items()}
    assert all(p["status"] == "ok" for name, p in parts.items() if name not in skipped), parts
    assert parts["syncs"]["non_log_steps_with_syncs"] == []
    assert parts["pretrain"]["finite"] and parts["pretrain"]["mlm_loss_falls"]
    assert parts["resume"]["verdict"] == "bit-identical"            # on CPU the runs are deterministic
    assert {"ours", "hf"} <= set(parts["bench_128"]["rows"]) and parts["bench_128"]["ours_over_transformers"] > 1
    check_unpad_parts(parts)
    assert "Self CPU" in parts["profile_512_compile"]["ops_table"] and "aten::" in parts["profile_512_compile"]["ops_table"]
    table = (tmp_path / "results.md").read_text()
    assert "| resume | ok |" in table and "| tiny | 512 | 2 | False | ours |" in table


def test_without_data_the_data_parts_skip_with_a_message(tmp_path):
    """Only the parts that need no data run (env); the others say where the data was looked for."""
    parts = run_cpu_mode(tmp_path / "none", tmp_path, "--budget", "12")
    assert parts["env"]["status"] == "ok" and not parts["env"]["data_present"]
    for name in ("syncs", "pretrain", "resume", "finetune", "pretrain_unpad", "unpad_512"):
        assert parts[name]["status"] == "skipped" and "no data at" in parts[name]["reason"], parts[name]


def test_parts_option_runs_only_the_named_parts(data_dir, tmp_path):
    """--parts lets a later session re-measure what an earlier one missed first; the summary then lists
    only those parts, not the others as failures. A stale result in the directory is removed first."""
    (tmp_path / "pretrain.json").write_text('{"status": "ok"}')
    parts = run_cpu_mode(data_dir, tmp_path, "--parts", "env")
    assert list(parts) == ["env"] and parts["env"]["status"] == "ok", parts
