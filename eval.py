"""
The evaluation measures of the fine-tuning tasks, and the results table beside the paper (docs/paper.md §4).
Pure Python: finetune.py imports the functions, and the command line scores prediction files on their own.

    python eval.py score --task ner --pred runs/finetune/bc5cdr/seed_1/test.conll   # token gold pred
    python eval.py score --task re --pred runs/finetune/chemprot/seed_1/test.tsv    # ... label prediction
    python eval.py score --task bioasq --gold data/bioasq/golden-7b-{1,2}.json \\
                         --pred runs/finetune/bioasq/seed_1/bioasq_7b-{1,2}.json        # one file per batch
    python eval.py table runs/finetune/bc5cdr runs/finetune/chemprot                # markdown table

Writes to --out-dir (default runs/eval): scores.json (score) or results.md (table). A run directory (finetune.py's
--out-dir) holds summary.json: {"task", "metric", "seeds": {"1": 0.7231, ...}, "model", ...}, scores as fractions.
References: conlleval.pl (CoNLL-2000); seqeval 1.2.2 (default mode); scikit-learn precision_recall_fscore_support;
BioASQ Evaluation-Measures, EvaluatorTask1b phase B (as in dmis-lab/biobert-pytorch); SQuAD v1.1 evaluate-v1.1.py.
"""
import argparse
import json
import re
import statistics
import string
import sys
from collections import Counter
from pathlib import Path

# The paper's numbers as fractions: ELECTRAMed's results table and the peers it quotes (docs/paper.md §4).
PAPER_RESULTS = {
    "bc5cdr": {"metric": "entity_f1", "scores": {"ELECTRAMed": 0.9003, "SciBERT": 0.9001}},
    "ncbi_disease": {"metric": "entity_f1", "scores": {"ELECTRAMed": 0.8754, "SciBERT": 0.8645, "BioBERT": 0.8971,
                                                       "PubMedBERT": 0.8782}},   # ELECTRAMed's precision: 85.87
    "chemprot": {"metric": "micro_f1",
                 "scores": {"ELECTRAMed": 0.7294, "BlueBERT-base": 0.725, "BlueBERT-large": 0.744}},
    "ddi": {"metric": "micro_f1", "scores": {"ELECTRAMed": 0.7913, "BlueBERT-base": 0.781, "BlueBERT-large": 0.799}},
    "bioasq": {"metric": "strict_accuracy", "scores": {"ELECTRAMed": 0.4462}},   # 7b, mean over the 5 batches
    "jnlpba": {"metric": "entity_f1", "scores": {"ELECTRAMed": 0.7365}},         # a data set we do not ship
}
BIOASQ_MAX_ANSWERS = 5   # BioASQ guidelines: up to five ranked answers per factoid question


class EvalError(ValueError):
    """A bad input file; the message starts with the path (and line) at fault."""


# ---------------------------------------------------------------------------------------------
# 1. Entity spans                                              (docs/paper.md §4; conlleval.pl)
#    A tag is PREFIX-TYPE. A chunk ends before a B or O, or where the type changes; it starts at a
#    B, at an I after O (IOB1: "I-Entity" may begin an entity, as BC5CDR here does), or where the
#    type changes. For B/I/O these are conlleval's rules; E-/S- (IOBES) follow seqeval's default mode.
# ---------------------------------------------------------------------------------------------

def chunk_ends(prev_tag, tag, prev_type, type_) -> bool:
    """True if a chunk ended at the previous token (seqeval end_of_chunk, conlleval endOfChunk)."""
    return (prev_tag in ("E", "S")
            or (prev_tag in ("B", "I") and tag in ("B", "S", "O"))
            or (prev_tag not in ("O", ".") and prev_type != type_))


def chunk_starts(prev_tag, tag, prev_type, type_) -> bool:
    """True if a chunk starts at this token (seqeval start_of_chunk, conlleval startOfChunk)."""
    return (tag in ("B", "S")
            or (prev_tag in ("E", "S", "O") and tag in ("E", "I"))
            or (tag not in ("O", ".") and prev_type != type_))


def entity_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """The chunks of one sentence as (type, start, end_inclusive):
    ['I-Entity', 'I-Entity', 'O', 'I-Entity', 'B-Entity'] -> [('Entity', 0, 1), ('Entity', 3, 3), ('Entity', 4, 4)]."""
    spans, start, prev_tag, prev_type = [], 0, "O", ""
    for i, label in enumerate(list(tags) + ["O"]):   # the sentinel O closes a chunk at the end
        tag, type_ = label[:1], label[1:].split("-", 1)[-1] or "_"   # as seqeval: 'B-Entity' -> B, Entity; 'O' -> O, _
        if chunk_ends(prev_tag, tag, prev_type, type_):
            spans.append((prev_type, start, i - 1))
        if chunk_starts(prev_tag, tag, prev_type, type_):
            start = i
        prev_tag, prev_type = tag, type_
    return spans


# ---------------------------------------------------------------------------------------------
# 2. Entity F1                                          (docs/paper.md §4; conlleval, seqeval)
#    Exact match: a predicted entity counts only if its type and both boundaries equal a gold one.
#    P = correct / predicted, R = correct / gold, F1 = 2PR / (P + R); 0 where a denominator is 0.
# ---------------------------------------------------------------------------------------------

def prf(n_correct: int, n_pred: int, n_gold: int) -> dict:
    """Precision, recall and F1 from counts; 0.0 where undefined (as seqeval and scikit-learn do)."""
    return {"precision": n_correct / n_pred if n_pred else 0.0,
            "recall": n_correct / n_gold if n_gold else 0.0,
            "f1": 2 * n_correct / (n_pred + n_gold) if n_pred + n_gold else 0.0,   # = 2PR/(P+R)
            "n_correct": n_correct, "n_pred": n_pred, "n_gold": n_gold}


def entity_prf(gold: list[list[str]], pred: list[list[str]]) -> dict:
    """Overall and per-type exact-match P/R/F1 over sentences of tags: {..., "per_type": {type: {...}}}."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    gold_spans, pred_spans = set(), set()
    for k, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {k}: {len(g)} gold tags but {len(p)} predicted")
        gold_spans.update((k,) + span for span in entity_spans(g))   # (sentence, type, start, end)
        pred_spans.update((k,) + span for span in entity_spans(p))
    correct = gold_spans & pred_spans
    n_gold, n_pred, n_correct = (Counter(span[1] for span in spans) for spans in (gold_spans, pred_spans, correct))
    per_type = {t: prf(n_correct[t], n_pred[t], n_gold[t]) for t in sorted(n_gold | n_pred)}
    return {**prf(len(correct), len(pred_spans), len(gold_spans)), "per_type": per_type}


# ---------------------------------------------------------------------------------------------
# 3. Micro-F1 without the negative class                             (docs/paper.md §4; BLUE)
#    TP = pred == gold and pred is not negative; P = TP / #predicted positive; R = TP / #gold
#    positive. Any label other than the negative is a positive class (a predicted label unseen in
#    gold counts as a wrong positive). No positive prediction -> P = 0 and F1 = 0 (scikit-learn's
#    zero_division=0); no positive gold -> R = 0.
# ---------------------------------------------------------------------------------------------

def micro_prf(gold: list[str], pred: list[str], negative) -> dict:
    """Micro P/R/F1 over the positive classes; negative is one label or a set of labels."""
    negatives = {negative} if isinstance(negative, str) else set(negative)
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predicted")
    n_pred = sum(p not in negatives for p in pred)
    n_gold = sum(g not in negatives for g in gold)
    n_correct = sum(g == p and p not in negatives for g, p in zip(gold, pred))
    return prf(n_correct, n_pred, n_gold)


# ---------------------------------------------------------------------------------------------
# 4. BioASQ factoid: strict accuracy, lenient accuracy, MRR     (docs/paper.md §4; BioASQ measures)
#    Answers and gold synonyms are lowercased, then matched exactly. Strict: the first answer is a
#    gold synonym. Lenient: one of the first five is. MRR: 1/rank of the first match, else 0.
#    Averaged over the factoid questions of each batch; the table reports the mean of the batches.
#    Duplicated answers keep their ranks, as in the official code. Of a submitted synonym list only
#    the first string counts (official since BioASQ5). A gold question without answers scores 0.
# ---------------------------------------------------------------------------------------------

def bioasq_question_scores(answers: list[str], synonym_lists: list[list[str]]) -> tuple[float, ...]:
    """(strict, lenient, reciprocal rank) of one ranked answer list against gold synonym lists."""
    gold = {synonym.lower() for synonyms in synonym_lists for synonym in synonyms}
    # CHOICE: answers after the fifth are ignored (the guidelines' limit); the official jar scores
    # every submitted answer but rejects submissions with more than five at upload.
    ranks = [i + 1 for i, a in enumerate(answers[:BIOASQ_MAX_ANSWERS]) if a and a.lower() in gold]
    if not ranks:
        return 0.0, 0.0, 0.0
    return float(ranks[0] == 1), 1.0, 1.0 / ranks[0]


def bioasq_factoid_scores(predictions: dict[str, list[str]], golden: dict[str, list[list[str]]]) -> dict:
    """{"strict", "lenient", "mrr", "n", "answered"} over the factoid questions in golden."""
    # CHOICE: a golden question missing from the predictions scores 0 and stays in the denominator;
    # the official EvaluatorTask1b skips it, which would reward leaving hard questions out.
    scores = [bioasq_question_scores(predictions.get(qid, []), synonyms) for qid, synonyms in golden.items()]
    n = len(scores)
    strict, lenient, mrr = (sum(column) / n for column in zip(*scores)) if n else (0.0, 0.0, 0.0)
    return {"strict": strict, "lenient": lenient, "mrr": mrr, "n": n,
            "answered": sum(qid in predictions for qid in golden)}


def bioasq_batch_scores(batches: list[tuple[dict, dict]]) -> dict:
    """Scores per (predictions, golden) batch and their unweighted mean: {"batches": [...], "mean": {...}}."""
    per_batch = [bioasq_factoid_scores(p, g) for p, g in batches]
    mean = {k: statistics.fmean(b[k] for b in per_batch) for k in ("strict", "lenient", "mrr")}
    return {"batches": per_batch, "mean": {**mean, "n": sum(b["n"] for b in per_batch)}}


# ---------------------------------------------------------------------------------------------
# 5. The results table                                                        (docs/paper.md §4)
#    One row per run directory: mean +- standard deviation over seeds (sample std, n-1), in %,
#    beside ELECTRAMed's number and the peers' from PAPER_RESULTS (shown when the metric matches).
# ---------------------------------------------------------------------------------------------

def read_summary(run_dir) -> dict:
    """The run's summary.json, checked: task, metric and a non-empty {seed: fraction} dict."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise EvalError(f"{path}: no summary.json in this run directory")
    summary = read_json(path)
    for key in ("task", "metric", "seeds"):
        if key not in summary:
            raise EvalError(f"{path}: missing key '{key}'")
    seeds = summary["seeds"]
    if not isinstance(seeds, dict) or not seeds or not all(
            isinstance(v, (int, float)) and 0.0 <= v <= 1.0 for v in seeds.values()):
        raise EvalError(f"{path}: 'seeds' must map seed -> score as a fraction in [0, 1]")
    return summary


def results_table(run_dirs) -> str:
    """A markdown table of the runs beside the paper's numbers (percentages, 2 decimals)."""
    rows = ["| run | task | model | metric | ours (mean ± std) | ELECTRAMed (paper) | peers (docs/paper.md §4) |",
            "|---|---|---|---|---|---|---|"]
    for run_dir in run_dirs:
        s = read_summary(run_dir)
        values = list(s["seeds"].values())
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        ours = f"{100 * statistics.fmean(values):.2f} ± {100 * std:.2f} ({len(values)} seeds)"
        paper = PAPER_RESULTS.get(s["task"], {"metric": None, "scores": {}})
        scores = paper["scores"] if paper["metric"] == s["metric"] else {}
        electramed = f"{100 * scores['ELECTRAMed']:.2f}" if "ELECTRAMed" in scores else "–"
        peers = ", ".join(f"{m} {100 * v:.2f}" for m, v in scores.items() if m != "ELECTRAMed") or "–"
        rows.append(f"| {Path(run_dir).name} | {s['task']} | {s.get('model', '?')} | {s['metric']} "
                    f"| {ours} | {electramed} | {peers} |")
    return "\n".join(rows) + "\n"


# ---------------------------------------------------------------------------------------------
# Command line: score prediction files, or build the results table
# ---------------------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out-dir", default="runs/eval", help="where scores.json / results.md go")
    sub = parser.add_subparsers(dest="command", required=True)
    score = sub.add_parser("score", parents=[common], help="score prediction files")
    score.add_argument("--task", choices=["ner", "re", "bioasq"], required=True)
    score.add_argument("--pred", nargs="+", required=True, help="ner: CoNLL columns (token gold pred); "
                       "re: TSV (... gold pred); bioasq: submission JSON per batch")
    score.add_argument("--gold", nargs="+", default=None,
                       help="gold file(s): ner CoNLL, re BLUE TSV (then --pred's last column is the prediction), "
                            "bioasq golden JSON per batch (required)")
    score.add_argument("--negative", default=None, help="re: the negative label (default: the one named *false)")
    table = sub.add_parser("table", parents=[common], help="markdown table of run directories beside the paper")
    table.add_argument("run_dirs", nargs="+", help="run directories holding summary.json")
    return parser.parse_args(argv)


def score_files(args) -> dict:
    """Dispatch `score` to the task's reader (appendix A.1, A.2) and measure."""
    gold = args.gold or [None] * len(args.pred)
    if len(gold) != len(args.pred) or (args.task != "bioasq" and len(args.pred) != 1):
        raise EvalError("give one --pred (and at most one --gold) for ner/re, and as many --gold as --pred for bioasq")
    if args.task == "ner":
        return score_ner(gold[0], args.pred[0])
    if args.task == "re":
        return score_re(gold[0], args.pred[0], args.negative)
    if None in gold:
        raise EvalError("bioasq needs the golden file of every batch: --gold golden-7b-1.json ...")
    return bioasq_batch_scores([(read_bioasq_submission(p), read_bioasq_json(g)) for p, g in zip(args.pred, gold)])


def main(args):
    out_dir = Path(args.out_dir)
    print(f"eval.py {args.command}: writing to {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.command == "table":
        result = results_table(args.run_dirs)
        (out_dir / "results.md").write_text(result, encoding="utf-8")
        print(result)
        return result
    result = score_files(args)
    (out_dir / "scores.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    headline = result.get("mean", result)
    print(" | ".join(f"{k} {100 * v:.2f}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in headline.items() if not isinstance(v, dict)))
    return result


# =============================================================================================
# Appendix: the file formats. A student can skip it: it only reads and writes what sections 1-5 score.
# =============================================================================================

# A.1 Prediction files of NER (CoNLL columns) and RE (BLUE TSV), as finetune.py writes them

def read_columns(path, n: int) -> list[list[list[str]]]:
    """The last n columns of a CoNLL-style file ('token ... tag' rows, a blank line between sentences),
    each as a list of sentences."""
    sentences, rows = [], []
    with open(path, encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if not fields or fields[0] == "-DOCSTART-":
                sentences.append(rows)
                rows = []
            elif len(fields) <= n:
                raise EvalError(f"{path}:{line_no}: expected at least {n + 1} columns, got {len(fields)}")
            else:
                rows.append(fields[-n:])
    sentences = [s for s in sentences + [rows] if s]
    return [[[row[k] for row in s] for s in sentences] for k in range(n)]


def score_ner(gold_path, pred_path) -> dict:
    """Entity P/R/F1 of a prediction file: 'token gold pred' rows, or 'token ... pred' beside a gold file."""
    if gold_path:
        (pred,), (gold,) = read_columns(pred_path, 1), read_columns(gold_path, 1)
    else:
        gold, pred = read_columns(pred_path, 2)
    try:
        return entity_prf(gold, pred)
    except ValueError as e:
        raise EvalError(f"{pred_path}: does not align with {gold_path}: {e}") from None


def read_tsv_labels(path, n: int) -> list[list[str]]:
    """The last n columns of a TSV file with a header line (BLUE style, CRLF/BOM ok), each as a list."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        lines = f.read().splitlines()[1:]
    rows = []
    for line_no, line in enumerate(lines, 2):
        fields = line.split("\t")
        if len(fields) < n:
            raise EvalError(f"{path}:{line_no}: expected at least {n} tab-separated fields")
        rows.append(fields[-n:])
    return [[row[k] for row in rows] for k in range(n)]


def score_re(gold_path, pred_path, negative) -> dict:
    """Micro P/R/F1 of TSV predictions: last two columns gold, pred; or last column pred beside a gold file."""
    if gold_path:
        (gold,), (pred,) = read_tsv_labels(gold_path, 1), read_tsv_labels(pred_path, 1)
    else:
        gold, pred = read_tsv_labels(pred_path, 2)
    if len(gold) != len(pred):
        raise EvalError(f"{pred_path}: {len(pred)} predictions but {len(gold)} gold rows in {gold_path}")
    if negative is None:   # the BLUE convention: 'false', 'False' or 'DDI-false'
        negative = next((lab for lab in sorted(set(gold)) if lab.lower().split("-")[-1] == "false"), None)
        if negative is None:
            raise EvalError(f"{gold_path or pred_path}: no negative label found; pass --negative")
    return {**micro_prf(gold, pred, negative), "negative": negative}


# A.2 JSON: BioASQ golden files and submissions ({"questions": [{"id", "exact_answer", ...}]}), summaries

def read_json(path):
    """The parsed JSON file; bad JSON is an EvalError naming the file and line."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise EvalError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def read_bioasq_json(path) -> dict[str, list[list[str]]]:
    """Question id -> exact_answer (list of synonym lists) of the factoid questions of a BioASQ file,
    golden or submitted. A question with a "type" other than "factoid" is skipped, one without a type is kept."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise EvalError(f"{path}: expected a JSON object with a 'questions' list (BioASQ format)")
    answers = {}
    for k, q in enumerate(data["questions"]):
        if not isinstance(q, dict) or "id" not in q:
            raise EvalError(f"{path}: question {k} has no 'id'")
        if q.get("type", "factoid") == "factoid":
            exact = q.get("exact_answer") or []
            answers[q["id"]] = [[a] if isinstance(a, str) else list(a) for a in exact]
    return answers


def read_bioasq_submission(path) -> dict[str, list[str]]:
    """Question id -> ranked answers of a submission (first string of each answer list, as the official code)."""
    return {qid: [a[0] if a else "" for a in lists] for qid, lists in read_bioasq_json(path).items()}


def write_bioasq_submission(predictions: dict[str, list[str]], path) -> None:
    """Write ranked answers as a BioASQ submission: {"questions": [{"id", "exact_answer": [[a1], [a2]]}]}."""
    questions = [{"id": qid, "type": "factoid", "exact_answer": [[a] for a in answers]}
                 for qid, answers in predictions.items()]
    Path(path).write_text(json.dumps({"questions": questions}, indent=1, ensure_ascii=False), encoding="utf-8")


# A.3 SQuAD v1.1 exact match and F1: a diagnostic of the span model, not a number the paper reports

def normalize_answer(text: str) -> str:
    """SQuAD v1.1: lowercase, drop punctuation and the articles a/an/the, collapse whitespace."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def squad_f1(prediction: str, truth: str) -> float:
    """Token-overlap F1 of two normalised answers (SQuAD v1.1; 0 when nothing overlaps)."""
    pred_tokens, true_tokens = normalize_answer(prediction).split(), normalize_answer(truth).split()
    same = sum((Counter(pred_tokens) & Counter(true_tokens)).values())
    return 0.0 if same == 0 else 2 * same / (len(pred_tokens) + len(true_tokens))


def squad_em_f1(predictions: dict[str, str], references: dict[str, list[str]]) -> dict:
    """{"exact_match", "f1", "n"}: best over each question's reference answers; unanswered scores 0."""
    em = f1 = 0.0
    for qid, truths in references.items():
        if qid in predictions:
            em += max(float(normalize_answer(predictions[qid]) == normalize_answer(t)) for t in truths)
            f1 += max(squad_f1(predictions[qid], t) for t in truths)
    n = len(references)
    return {"exact_match": em / n if n else 0.0, "f1": f1 / n if n else 0.0, "n": n}


if __name__ == "__main__":
    try:
        main(parse_args())
    except (EvalError, OSError) as e:
        sys.exit(f"eval.py: error: {e}")
