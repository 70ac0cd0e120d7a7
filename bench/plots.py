"""
The README's pictures, made from run outputs: pre-training curves, downstream F1
against pre-training steps, and the results side by side. matplotlib is needed by this script only
(`pip install matplotlib`); the project's own files never import it.

    python bench/plots.py --log runs/mini/log.jsonl --reference runs/refcurve/reference.jsonl
    python bench/plots.py --downstream steps.csv --results results.json --out-dir docs/figures
    python bench/plots.py --label-efficiency bench/mini_runs/label_efficiency.csv
    python bench/plots.py --compute records/electra_claim/compute.csv

Writes to --out-dir (default docs/figures), one PNG per input kind given:
  pretrain.png    from --log (one or more) and --reference
  downstream.png  from --downstream
  results.png     from --results
  label_efficiency.png  from --label-efficiency
  compute.png     from --compute

Input formats (all small text files the caller writes or a run already wrote):

  --log PATH[=LABEL]   train_pretrain.py's log.jsonl: one JSON object per log step with "step" and
      any of gen_acc, disc_auc, rtd_loss, rtd_base_entropy, disc_baseline_acc and their held-out
      twins heldout_* (lines without a key are skipped for that key). Panels: generator accuracy;
      discriminator AUC (heldout_disc_auc where the log has it, else disc_auc); RTD BCE beside the
      base-rate entropy (rtd_base_entropy, else the binary entropy of 1 - disc_baseline_acc); and
      their difference, BCE - base-rate entropy (below 0: the discriminator uses context).
  --reference PATH     a JSONL curve of the same kind with step, mlm_loss, gen_acc, rtd_loss (and
      optionally rtd_base_entropy or disc_baseline_acc, and disc_auc, drawn only beside training-interval
      AUCs), drawn dashed as "transformers reference" (bench/reference_curve.py writes one).
  --downstream PATH    downstream dev F1 after fine-tuning checkpoints of one pre-training run:
      a CSV with the header `task,pretrain_step,dev_f1`, or a JSON list of objects with those keys.
      pretrain_step 0 is random initialisation. One line per task.
  --results PATH       a JSON object {task: {column: value}}, for example
      {"ncbi_disease": {"paper": 87.54, "simple baseline": 68.88,
                        "random mini": {"mean": 57.1, "std": 0.9}, "pre-trained mini": [61.2, 0.7]}}
      A value is a number, {"mean": m, "std": s}, [mean, std], or the path of a fine-tuning run
      directory (or its summary.json), whose seeds give the mean and sample std. Columns are drawn
      as grouped bars in the order first seen; std as error bars.

  --label-efficiency PATH  test scores against the number of labelled training sentences: a CSV
      with the header `task,train_sentences,init,test_f1`, one row per fine-tuning seed. One panel
      per task, one line per init (mean over the seeds, std as an error bar), log-scaled x.

  --compute PATH  dev F1 against pre-training FLOPs (ELECTRA's Figure 3 at small scale): a CSV with the
      header `task,objective,pretrain_flops,dev_f1`. One panel per task, one line per objective (e.g.
      rtd, mlm); the objective "random" (pretrain_flops 0) is drawn as a dashed horizontal line.

Scores may be fractions (eval.py's summary.json) or percentages: a score of at most 1 is read as a
fraction and shown in % (with its std).
"""
import argparse
import csv
import json
import math
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))   # bench scripts run from anywhere; the library itself never does this
import eval as scoring  # noqa: E402

try:
    import matplotlib
    matplotlib.use("Agg")       # files only, no display
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("bench/plots.py needs matplotlib, an optional dependency of this script only: "
             "pip install matplotlib")

REFERENCE_LABEL = "transformers reference"


# ---------------------------------------------------------------------------------------------
# 1. Reading the inputs
# ---------------------------------------------------------------------------------------------
def read_jsonl(path) -> list[dict]:
    """The JSON objects of a .jsonl file, one a line (blank lines skipped)."""
    rows = []
    for line_no, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{line_no}: not a JSON object ({e.msg})")
    return rows


def last_per_step(rows) -> list[dict]:
    """One row per step, the last one written, in step order: a resumed run appends the steps after
    its checkpoint again, and the later lines are the run that continued."""
    by_step = {r["step"]: r for r in rows if "step" in r}
    return [by_step[s] for s in sorted(by_step)]


def series(rows, key) -> tuple[list, list]:
    """(steps, values) of the rows that have `key` as a finite number."""
    pairs = [(r["step"], r[key]) for r in rows
             if "step" in r and isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def binary_entropy(p: float) -> float:
    return 0.0 if p <= 0 or p >= 1 else -(p * math.log(p) + (1 - p) * math.log(1 - p))


def with_base_entropy(rows, prefix="") -> list[dict]:
    """Rows with {prefix}rtd_base_entropy filled in from {prefix}disc_baseline_acc where missing."""
    out = []
    for r in rows:
        key, acc = prefix + "rtd_base_entropy", r.get(prefix + "disc_baseline_acc")
        if key not in r and isinstance(acc, (int, float)):
            r = {**r, key: binary_entropy(1 - acc)}
        if isinstance(r.get(prefix + "rtd_loss"), (int, float)) and key in r:
            r = {**r, prefix + "rtd_gap": r[prefix + "rtd_loss"] - r[key]}
        out.append(r)
    return out


def smooth(values, window):
    """Trailing moving average over `window` log lines (1: unchanged)."""
    if window <= 1:
        return values
    return [statistics.fmean(values[max(0, i - window + 1):i + 1]) for i in range(len(values))]


def as_percent(value: float, std: float = 0.0) -> tuple[float, float]:
    """(value, std) in %: a score of at most 1 is a fraction (no F1 worth plotting is under 1%)."""
    return (100 * value, 100 * std) if value <= 1 else (value, std)


def read_downstream(path) -> list[dict]:
    """Rows {task, pretrain_step, dev_f1} from a CSV with that header or a JSON list."""
    path = Path(path)
    if path.suffix == ".json":
        rows = json.loads(path.read_text())
    else:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    try:
        return [{"task": r["task"], "pretrain_step": int(r["pretrain_step"]), "dev_f1": float(r["dev_f1"])}
                for r in rows]
    except (KeyError, ValueError, TypeError) as e:
        sys.exit(f"{path}: each row needs task, pretrain_step (int) and dev_f1 (number): {e!r}")


def read_label_efficiency(path) -> list[dict]:
    """Rows {task, train_sentences, init, test_f1} from a CSV with that header."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        return [{"task": r["task"], "train_sentences": int(r["train_sentences"]), "init": r["init"],
                 "test_f1": float(r["test_f1"])} for r in rows]
    except (KeyError, ValueError, TypeError) as e:
        sys.exit(f"{path}: each row needs task, train_sentences (int), init and test_f1 (number): {e!r}")


def read_compute(path) -> list[dict]:
    """Rows {task, objective, pretrain_flops, dev_f1} from a CSV with that header."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        return [{"task": r["task"], "objective": r["objective"], "pretrain_flops": float(r["pretrain_flops"]),
                 "dev_f1": float(r["dev_f1"])} for r in rows]
    except (KeyError, ValueError, TypeError) as e:
        sys.exit(f"{path}: each row needs task, objective, pretrain_flops and dev_f1 (numbers): {e!r}")


def mean_std(value, where) -> tuple[float, float]:
    """(mean, std) of one --results cell: a number, {"mean", "std"}, [mean, std], or a run directory."""
    if isinstance(value, (int, float)):
        return float(value), 0.0
    if isinstance(value, dict) and "mean" in value:
        return float(value["mean"]), float(value.get("std", 0.0))
    if isinstance(value, list) and len(value) == 2:
        return float(value[0]), float(value[1])
    if isinstance(value, str):
        run_dir = Path(value).parent if value.endswith(".json") else Path(value)
        seeds = list(scoring.read_summary(run_dir)["seeds"].values())
        return statistics.fmean(seeds), statistics.stdev(seeds) if len(seeds) > 1 else 0.0
    sys.exit(f"{where}: expected a number, {{'mean', 'std'}}, [mean, std] or a run directory, got {value!r}")


# ---------------------------------------------------------------------------------------------
# 2. The three pictures
# ---------------------------------------------------------------------------------------------
def plot_pretraining(logs, reference, out_path, window):
    """2 x 2 panels: generator accuracy, discriminator AUC, RTD BCE with the base-rate entropy, their gap."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    (ax_gen, ax_auc), (ax_bce, ax_gap) = axes
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    train_auc_shown = False
    for k, (label, rows) in enumerate(logs):
        c = colors[k % len(colors)]
        rows = with_base_entropy(with_base_entropy(rows), "heldout_")
        draw(ax_gen, rows, "gen_acc", f"{label} (train)", c, window)
        draw(ax_gen, rows, "heldout_gen_acc", f"{label} (held-out)", c, 1, marker="o")
        auc = "heldout_disc_auc" if series(rows, "heldout_disc_auc")[0] else "disc_auc"
        train_auc_shown |= auc == "disc_auc"
        draw(ax_auc, rows, auc, f"{label} ({'held-out' if auc.startswith('heldout') else 'train'})", c,
             1 if auc.startswith("heldout") else window, marker="o" if auc.startswith("heldout") else None)
        draw(ax_bce, rows, "rtd_loss", f"{label} RTD BCE", c, window)
        draw(ax_bce, rows, "rtd_base_entropy", f"{label} base-rate entropy", c, window, style=":")
        draw(ax_gap, rows, "rtd_gap", f"{label} (train)", c, window)
        draw(ax_gap, rows, "heldout_rtd_gap", f"{label} (held-out)", c, 1, marker="o")
    if reference:
        rows = with_base_entropy(reference)
        for ax, key in ((ax_gen, "gen_acc"), (ax_bce, "rtd_loss"), (ax_gap, "rtd_gap")):
            draw(ax, rows, key, REFERENCE_LABEL, "black", window, style="--")
    ax_gap.axhline(0.0, color="grey", lw=0.8)
    zoom_past_start(ax_gap)
    titles = ("generator MLM accuracy", "discriminator AUC (replaced vs original)",
              "RTD BCE and the base-rate entropy", "RTD BCE - base-rate entropy (< 0: learning)")
    if reference and train_auc_shown:      # a training-interval AUC is not comparable with a held-out one
        draw(ax_auc, rows, "disc_auc", REFERENCE_LABEL, "black", window, style="--")
    for ax, title in zip(axes.flat, titles):
        if not ax.get_lines():
            ax.text(0.5, 0.5, "not in these logs", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle("ELECTRA pre-training" + (f" (train curves: moving average of {window} log lines)"
                                          if window > 1 else ""), fontsize=11)
    save(fig, out_path)


def zoom_past_start(ax, start=0.2):
    """Fit the y-axis to the curves after the first 20% of the steps: the first steps' gap is large
    (the generator is uniform and the discriminator's head is untrained) and would flatten the rest."""
    lines = [(l.get_xdata(), l.get_ydata()) for l in ax.get_lines() if len(l.get_xdata()) > 1]
    if not lines:
        return
    x_max = max(max(x) for x, _ in lines)
    later = [y for xs, ys in lines for x, y in zip(xs, ys) if x >= start * x_max]
    if later:
        low, high = min(later + [0.0]), max(later + [0.0])
        pad = 0.1 * (high - low) or 0.01
        ax.set_ylim(low - pad, high + pad)


def draw(ax, rows, key, label, color, window, style="-", marker=None):
    steps, values = series(rows, key)
    if steps:
        ax.plot(steps, smooth(values, window), style, color=color, label=label, marker=marker,
                markersize=3, lw=1.2)


def plot_downstream(rows, out_path):
    """Dev F1 (%) against pre-training steps, one line per task."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for task in dict.fromkeys(r["task"] for r in rows):
        points = sorted((r["pretrain_step"], r["dev_f1"]) for r in rows if r["task"] == task)
        ax.plot([p[0] for p in points], [as_percent(p[1])[0] for p in points], marker="o", label=task)
    ax.set_xlabel("pre-training steps of the checkpoint (0 = random init)")
    ax.set_ylabel("dev F1 (%)")
    ax.set_title("Where pre-training starts to pay", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend()
    save(fig, out_path)


def label_panel(ax, xlabel, ylabel, title):
    """Axis labels, the panel's title, a light grid and a small legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def arm_color(name: str) -> str:
    """One colour per pre-training arm in every picture: random init grey, RTD and MLM as in the legend."""
    name = name.lower()
    if "random" in name:
        return "grey"
    if "rtd" in name:
        return "tab:green" if "generator" in name else "tab:orange"
    return "tab:blue" if "mlm" in name else "black"


def plot_compute(rows, out_path):
    """Dev F1 (%) against pre-training FLOPs: a panel per task, a line per objective, random init dashed."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.0 * len(tasks), 4.0), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for objective in dict.fromkeys(r["objective"] for r in rows if r["task"] == task):
            points = sorted((r["pretrain_flops"], as_percent(r["dev_f1"])[0]) for r in rows
                            if (r["task"], r["objective"]) == (task, objective))
            if objective == "random":
                ax.axhline(points[0][1], ls="--", color=arm_color(objective), label="random init")
            else:
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=objective,
                        color=arm_color(objective))
        label_panel(ax, "pre-training FLOPs", "dev entity F1 (%)", task)
    fig.suptitle("Downstream dev F1 against pre-training compute", fontsize=11)
    save(fig, out_path)


def plot_label_efficiency(rows, out_path):
    """Test F1 (%) against labelled training sentences: a panel per task, a line per initialisation."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.0 * len(tasks), 4.0), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for init in dict.fromkeys(r["init"] for r in rows if r["task"] == task):
            sizes = sorted({r["train_sentences"] for r in rows if r["task"] == task and r["init"] == init})
            scores = [[as_percent(r["test_f1"])[0] for r in rows
                       if (r["task"], r["init"], r["train_sentences"]) == (task, init, n)] for n in sizes]
            means = [statistics.fmean(v) for v in scores]
            stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in scores]
            color = arm_color(init)
            ax.errorbar(sizes, means, yerr=stds, marker="o", capsize=3, label=init, color=color,
                        ls="--" if color == "grey" else "-")   # random init dashed, as in the compute picture
        ax.set_xscale("log")
        ticks = sorted({r["train_sentences"] for r in rows if r["task"] == task})
        ax.set_xticks(ticks, [f"{n:,}" for n in ticks])
        ax.minorticks_off()
        label_panel(ax, "labelled training sentences", "test entity F1 (%)", task)
    fig.suptitle("Where pre-training pays: fewer labels (error bars: std over seeds)", fontsize=11)
    save(fig, out_path)


def plot_results(results, out_path):
    """Grouped bars per task, one bar per column (mean, std as an error bar), values on the bars."""
    tasks = list(results)
    columns = list(dict.fromkeys(c for t in tasks for c in results[t]))
    cells = {(t, c): as_percent(*mean_std(results[t][c], f"{t}/{c}"))
             for t in tasks for c in columns if c in results[t]}
    width = 0.8 / len(columns)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.8 * len(tasks) + 2), 4.5))
    for j, column in enumerate(columns):
        xs = [i + (j - (len(columns) - 1) / 2) * width for i, t in enumerate(tasks) if (t, column) in cells]
        ms = [cells[t, column][0] for t in tasks if (t, column) in cells]
        ss = [cells[t, column][1] for t in tasks if (t, column) in cells]
        bars = ax.bar(xs, ms, width, yerr=ss if any(ss) else None, capsize=3, label=column)
        ax.bar_label(bars, labels=[f"{m:.1f}" for m in ms], fontsize=7, padding=2)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel("test score (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, ncols=min(4, len(columns)), loc="upper center", bbox_to_anchor=(0.5, -0.08))
    ax.set_title("Results side by side (error bars: std over seeds)", fontsize=11)
    save(fig, out_path)


def save(fig, out_path):
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    print(f"=> wrote {out_path}")


# ---------------------------------------------------------------------------------------------
# 3. Command line
# ---------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--log", action="append", default=[], metavar="PATH[=LABEL]",
                   help="a train_pretrain.py log.jsonl (repeat for several runs); label defaults to the run dir")
    p.add_argument("--reference", help="JSONL reference curve (bench/reference_curve.py's reference.jsonl)")
    p.add_argument("--downstream", help="CSV or JSON rows task, pretrain_step, dev_f1")
    p.add_argument("--results", help="JSON {task: {column: value}} for the side-by-side bars")
    p.add_argument("--label-efficiency", help="CSV rows task, train_sentences, init, test_f1 (one per seed)")
    p.add_argument("--smooth", type=int, default=1,
                   help="moving average over this many log lines for the training-interval curves")
    p.add_argument("--compute", help="CSV rows task, objective, pretrain_flops, dev_f1")
    p.add_argument("--out-dir", default=str(REPO / "docs" / "figures"))
    args = p.parse_args(argv)
    if not (args.log or args.reference or args.downstream or args.results or args.label_efficiency or args.compute):
        p.error("nothing to plot: give --log, --reference, --downstream, --results, --label-efficiency and/or "
                "--compute")
    return args


def main(args):
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"=> writing figures to {out_dir}")
    if args.log or args.reference:
        logs = []
        for spec in args.log:
            path, _, label = spec.partition("=")
            logs.append((label or Path(path).parent.name or path, last_per_step(read_jsonl(path))))
        reference = last_per_step(read_jsonl(args.reference)) if args.reference else None
        plot_pretraining(logs, reference, out_dir / "pretrain.png", args.smooth)
    if args.downstream:
        plot_downstream(read_downstream(args.downstream), out_dir / "downstream.png")
    if args.results:
        plot_results(json.loads(Path(args.results).read_text()), out_dir / "results.png")
    if args.label_efficiency:
        plot_label_efficiency(read_label_efficiency(args.label_efficiency), out_dir / "label_efficiency.png")
    if args.compute:
        plot_compute(read_compute(args.compute), out_dir / "compute.png")


if __name__ == "__main__":
    main(parse_args())
