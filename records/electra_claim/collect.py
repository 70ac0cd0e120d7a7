"""
Collect the evidence for ELECTRA's claim at CPU scale (RESULTS.md section 2) from runs/ into this folder.

    python records/electra_claim/collect.py            # tables on stdout, files written beside this script

Reads the pre-training logs (runs/rtd10m, runs/mlm10m, or their copies here) and every fine-tuning summary that
records/electra_claim/queue.sh wrote under runs/claim. Writes, beside this script:
  rtd10m/, mlm10m/, rtd10m_g50_m15/   log.jsonl and args.json of each pre-training run (the last: ablation.py)
  finetune/<job>/summary.json every finished fine-tuning job's summary
  heldout.md                  the held-out curves of both runs at every 500 steps
  compute.csv                 dev F1 against pre-training FLOPs (bench/plots.py --compute)
  label_efficiency.csv        test F1 per seed against labelled sentences, the picture's three arms (random init,
                              RTD-10M, MLM-10M; bench/plots.py --label-efficiency)
  full.md                     the full-data table, test set, mean ± std over 3 seeds
  few.md                      the few-label table: test F1 per task and labelled sentences, 3 seeds (and the
                              1.33M-word model once queue.sh few has reached it)
  probe.md                    dev F1: frozen encoders; lr 2e-4; layers or embedding parts re-drawn or swapped (queue.sh probe)
"""
import csv
import json
import shutil
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
RUNS = REPO / "runs"
CLAIM = RUNS / "claim"
sys.path.insert(0, str(REPO))
import eval as scoring  # noqa: E402

INITS = {"random": "random init", "mini1m": "mini, 1.33M words (RTD)", "rtd10m": "RTD-10M", "mlm10m": "MLM-10M"}
TASKS = ["bc5cdr", "ncbi_disease", "chemprot", "ddi", "bioasq"]
CURVE_RUNS = {"rtd10m": "RTD-10M", "mlm10m": "MLM-10M", "rtd10m_g50_m15": "RTD, generator 1/2, mask 15%"}   # the last: ablation.py
FULL_SENTENCES = {"bc5cdr": "all", "ncbi_disease": "all"}
PICTURE = ("random", "rtd10m", "mlm10m")   # label_efficiency.png's curves, in this order


def run_file(run: str, name: str) -> Path:
    """A pre-training run's log.jsonl or args.json: from runs/ while it is there, else the copy beside this
    script (a fresh machine)."""
    return RUNS / run / name if (RUNS / run / name).exists() else HERE / run / name


def read_log(run: str) -> list[dict]:
    """One row per logged step (a resumed run logs some steps twice: the last one wins)."""
    rows = {}
    for line in run_file(run, "log.jsonl").read_text().splitlines():
        row = json.loads(line)
        rows[row["step"]] = {**rows.get(row["step"], {}), **row}
    return [rows[s] for s in sorted(rows)]


def flops_per_step(run: str) -> float:
    return json.loads(run_file(run, "args.json").read_text())["flops_per_step"]


def copy_logs():
    for run in CURVE_RUNS:
        if (RUNS / run / "log.jsonl").exists():
            (HERE / run).mkdir(exist_ok=True)
            for name in ("log.jsonl", "args.json"):
                shutil.copy(RUNS / run / name, HERE / run / name)


def heldout_tables() -> str:
    """Markdown: both runs' held-out measures every 500 steps and at the last evaluated step."""
    out = []
    rtd = ["heldout_disc_auc", "heldout_rtd_loss", "heldout_gen_acc"]
    for run, columns in (("rtd10m", rtd), ("mlm10m", ["heldout_mlm_loss", "heldout_mlm_acc"]), ("rtd10m_g50_m15", rtd)):
        if not run_file(run, "log.jsonl").exists():
            continue
        rows = [r for r in read_log(run) if columns[0] in r]
        keep = [r for r in rows if r["step"] % 500 == 0 or r is rows[-1]]
        per_step = flops_per_step(run)
        names = [c.removeprefix("heldout_") for c in columns]
        extra = " | BCE − base-rate entropy" if columns is rtd else ""
        out += [f"| {run} step | FLOPs | " + " | ".join(names) + extra + " |",
                "|---" * (2 + len(columns) + bool(extra)) + "|"]
        for r in keep:
            cells = [f"{r[c]:.4f}" for c in columns]
            if extra:
                cells.append(f"{r['heldout_rtd_loss'] - r['heldout_rtd_base_entropy']:+.4f}")
            out.append(f"| {r['step']:,} | {r['step'] * per_step:.3e} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def summaries(kind: str) -> dict[str, dict]:
    """Every finished job under runs/claim/<kind>: {job path: summary}; copied beside this script, with
    the summaries of its one-process-per-lr-and-seed parts (queue.sh's sweep), which are not jobs."""
    found = {}
    for path in sorted((CLAIM / kind).glob("**/summary.json")):
        job = str(path.parent.relative_to(CLAIM))
        if "/parts/" not in job:
            found[job] = json.loads(path.read_text())
        target = HERE / "finetune" / job
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / "summary.json")
    return found


def compute_rows(curve: dict) -> list[dict]:
    """Rows task, objective, pretrain_flops, dev_f1 (seed 1's best dev F1). Random init's point is the
    full job's seed-1 run at the curve's lr, 1e-3 (the same run, recorded in its sweep.json)."""
    rows = []
    for task in ("ncbi_disease", "bc5cdr"):
        sweep = CLAIM / "full" / "random" / task / "sweep.json"
        if sweep.exists():
            dev = json.loads(sweep.read_text())["dev"]["0.001"]
            rows.append({"task": task, "objective": "random", "pretrain_flops": 0, "dev_f1": dev})
            shutil.copy(sweep, HERE / "finetune" / "full" / "random" / task / "sweep.json")
    for job, s in curve.items():
        point, task = job.split("/")[1:3]
        dev = s["dev"]["1"]["f1"]
        run, step = point.rsplit("_", 1)
        rows.append({"task": task, "objective": CURVE_RUNS[run],
                     "pretrain_flops": int(step) * flops_per_step(run), "dev_f1": dev})
    return rows


def label_rows(few: dict, full: dict) -> list[dict]:
    """Rows task, train_sentences, init, test_f1: one per seed, the full-data runs as the last point."""
    rows = []
    for job, s in few.items():
        init, task_n = job.split("/")[1:3]
        task, n = task_n.rsplit("_", 1)
        rows += [{"task": task, "train_sentences": int(n), "init": INITS[init], "test_f1": v}
                 for v in s["seeds"].values()]
    for job, s in full.items():
        init, task = job.split("/")[1:3]
        if task in FULL_SENTENCES and len(s["seeds"]) > 1:
            rows += [{"task": task, "train_sentences": s["train_features"], "init": INITS[init], "test_f1": v}
                     for v in s["seeds"].values()]
    return rows


def spread(values: list[float]) -> tuple[float, float]:
    """(mean, sample std) of per-seed scores, already in %."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def mean_std(s: dict) -> tuple[float, float]:
    return spread([100 * x for x in s["seeds"].values()])


def versus_random(stat: tuple[float, float], random: tuple[float, float] | None) -> str:
    """' **>**' / ' <' when (mean, std) is above / below random init's by more than the two stds added."""
    if random is None:
        return ""
    (m, sd), (rm, rsd) = stat, random
    return " **>**" if m - rm > sd + rsd else (" <" if rm - m > sd + rsd else "")


def full_table(full: dict) -> str:
    """Markdown: task rows, init columns, test mean ± std (the lr chosen on dev), paper and baseline."""
    baselines = json.loads((REPO / "bench" / "baselines.json").read_text())["results"]
    head = "| task | metric | " + " | ".join(INITS.values()) + " | simple baseline | ELECTRAMed (paper) |"
    out = [head, "|---" * (len(INITS) + 4) + "|"]
    for task in TASKS:
        cells, metric = [], "–"
        random = full.get(f"full/random/{task}")
        for init in INITS:
            s = full.get(f"full/{init}/{task}")
            if s is None:
                cells.append("–")
                continue
            metric = s["metric"]
            m, sd = mean_std(s)
            mark = versus_random((m, sd), mean_std(random) if random is not None and init != "random" else None)
            cells.append(f"{m:.2f} ± {sd:.2f} (lr {s['lr'].get('1'):g}){mark}")
        base = baselines.get(task, {}).get("f1")
        base = f"{100 * base:.2f}" if base is not None else "–"
        paper = scoring.PAPER_RESULTS.get(task, {}).get("scores", {}).get("ELECTRAMed")
        paper = f"{100 * paper:.2f}" if paper is not None else "–"
        out.append(f"| {task} | {metric} | " + " | ".join(cells) + f" | {base} | {paper} |")
    out.append("")
    out.append("**>** / <: above / below random init by more than the two standard deviations added.")
    return "\n".join(out) + "\n"


def few_table(rows: list[dict]) -> str:
    """Markdown: test F1 mean ± std over the seeds per task and labelled sentences, one column per init;
    **>** / < marks a pre-trained init above / below random init by more than the two stds added. The three
    arms of the picture only: the 1.33M-word model's full-data rows are in the full table."""
    inits = [INITS[i] for i in PICTURE if any(r["init"] == INITS[i] for r in rows)]
    cell = {}
    for r in rows:
        cell.setdefault((r["task"], r["train_sentences"], r["init"]), []).append(100 * r["test_f1"])
    out = ["| task | labelled sentences | " + " | ".join(inits) + " |", "|---" * (len(inits) + 2) + "|"]
    for task, n in sorted({(t, n) for t, n, _ in cell}):
        stats = {i: spread(v) for i in inits if (v := cell.get((task, n, i)))}
        cells = []
        for init in inits:
            if init not in stats:
                cells.append("–")
                continue
            m, sd = stats[init]
            mark = versus_random(stats[init], stats.get(inits[0]) if init != inits[0] else None)
            cells.append(f"{m:.2f} ± {sd:.2f}{mark}")
        out.append(f"| {task} | {n:,} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def probe_table(probe: dict) -> str:
    """Markdown: dev F1 (seed 1, best epoch) of the head alone on each init's frozen encoder."""
    out = ["| task | " + " | ".join(INITS.values()) + " |", "|---" * (len(INITS) + 1) + "|"]
    for task in ("ncbi_disease", "bc5cdr"):
        cells = []
        for init in INITS:
            s = probe.get(f"probe/{init}/{task}")
            cells.append(f"{100 * s['dev']['1']['f1']:.2f}" if s else "–")
        out.append(f"| {task} | " + " | ".join(cells) + " |")
    def top_layers(name):          # rtd10m_top2 -> "RTD-10M top 2"
        init, n = name.split("_top")
        return f"{INITS[init]} top {n}"

    def kept_part(name):           # rtd10m_word -> "RTD-10M word embeddings kept"
        init, kept = name.rsplit("_", 1)
        return f"{INITS[init]} {'word' if kept == 'word' else 'position, type and LayerNorm'} embeddings kept"

    diagnostics = (   # (queue.sh kind, the line's heading, how a job's name reads)
        ("lowlr", "Fine-tuned at lr 2e-4", INITS.get),
        ("reinit", "Top layers of 4 drawn afresh, lr 1e-3", top_layers),
        ("transplant", "One model's layers on the other's embeddings, lr 1e-3", lambda n: n.replace("_", " ")),
        ("embparts", "Every layer drawn afresh and one part of the embedding block kept, the rest drawn afresh, "
                     "lr 1e-3", kept_part),
        ("embscale", "RTD-10M's position embeddings x3.2, lr 1e-3",
         lambda n: "every layer drawn afresh" if n.endswith("fresh_layers") else "the whole model"))
    for kind, heading, label in diagnostics:
        found = {tuple(job.split("/")[1:3]): s for job, s in summaries(kind).items()}   # (name, task)
        if found:
            note = "; all 4: only the embeddings kept" if kind == "reinit" else ""
            out += ["", f"{heading} (NCBI-disease unless named, dev F1, seed 1{note}): " + ", ".join(
                f"{label(name)}{'' if task == 'ncbi_disease' else f' ({task})'} {100 * s['dev']['1']['f1']:.2f}"
                for (name, task), s in found.items())]
    return "\n".join(out) + "\n"


def write_csv(path: Path, rows: list[dict]):
    if rows:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"=> wrote {path} ({len(rows)} rows)")


def main():
    copy_logs()
    heldout = heldout_tables()
    (HERE / "heldout.md").write_text(heldout)
    print(heldout)
    full, curve, few, probe = summaries("full"), summaries("curve"), summaries("few"), summaries("probe")
    write_csv(HERE / "compute.csv", compute_rows(curve))
    labels = label_rows(few, full)
    write_csv(HERE / "label_efficiency.csv", [r for r in labels if r["init"] in {INITS[i] for i in PICTURE}])
    if labels:
        table = few_table(labels)
        (HERE / "few.md").write_text(table)
        print(table)
    if full:
        table = full_table(full)
        (HERE / "full.md").write_text(table)
        print(table)
    if probe:
        table = probe_table(probe)
        (HERE / "probe.md").write_text(table)
        print(table)


if __name__ == "__main__":
    main()
