"""Tests for eval.py: the measures against their references, on the real benchmark files.

- entity spans and entity P/R/F1 against seqeval (default mode) on the IOB1 BC5CDR and BIO NCBI-disease
  files, over hundreds of randomly corrupted prediction files, plus a hand-made multi-type sequence;
- micro P/R/F1 without the negative class against scikit-learn's precision_recall_fscore_support
  (average="micro", labels=the positive classes) on the ChemProt and DDI label columns;
- BioASQ strict/lenient/MRR on the real 7b golden files with system outputs whose scores are worked
  out by hand (the official measures: lowercased exact match, first five answers);
- SQuAD v1.1 EM/F1 on textbook cases; the results table and the command line on files in tmp_path.

    python -m pytest tests/test_eval.py              # default, ~30 s
    python -m pytest tests/test_eval.py -m slow      # full-file seqeval parity (a few minutes)
"""
import json
import random
import subprocess
import sys
import warnings
from functools import lru_cache
from pathlib import Path

import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import get_entities
from sklearn.metrics import precision_recall_fscore_support

import eval as E

REPO = Path(__file__).resolve().parent.parent
NER_FILES = [f"{task}/{split}.txt" for task in ("bc5cdr", "ncbi_disease") for split in ("train", "dev", "test")]


@lru_cache(maxsize=None)
def read_tags(path) -> list[list[str]]:
    """The tag column of a 'token tag' file, one list per blank-line separated sentence."""
    sentences = [[]]
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            sentences[-1].append(line.split()[-1])
        elif sentences[-1]:
            sentences.append([])
    return [s for s in sentences if s]


def corrupt_tags(tags, rng, rate, type_, other="Other"):
    """A noisy copy of one sentence's tags: flipped tags, shifted boundaries, changed types (a made-up
    second type), dropped and inserted I-/B- tags, B<->I swaps, and now and then an E-/S- tag."""
    out = list(tags)
    choices = ["O", f"B-{type_}", f"I-{type_}", f"B-{other}", f"I-{other}", f"E-{type_}", f"S-{other}"]
    for _type, start, end in get_entities(out):
        op = rng.random()
        if op < rate:                                          # shift a boundary by one
            if rng.random() < 0.5 and start > 0:
                out[start - 1] = rng.choice([f"B-{type_}", f"I-{type_}"])
            elif end + 1 < len(out):
                out[end + 1] = f"I-{type_}"
            else:
                out[end] = "O"
        elif op < 2 * rate:                                    # change the type
            out[start:end + 1] = [t[:2] + other for t in out[start:end + 1]]
        elif op < 3 * rate:                                    # drop the entity
            out[start:end + 1] = ["O"] * (end + 1 - start)
    for i in range(len(out)):
        r = rng.random()
        if r < rate / 4:
            out[i] = rng.choice(choices[:5] if rng.random() < 0.9 else choices)    # flip
        elif r < rate / 2 and out[i] == "O":
            out[i] = rng.choice([f"I-{type_}", f"B-{type_}"])                       # insert
        elif r < rate and out[i][:2] in ("B-", "I-"):
            out[i] = ("I-" if out[i][0] == "B" else "B-") + out[i][2:]              # swap B/I
    return out


def assert_matches_seqeval(gold, pred):
    """entity_prf equals seqeval's micro P/R/F1 and classification_report per type, to 1e-12."""
    ours = E.entity_prf(gold, pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = (precision_score(gold, pred), recall_score(gold, pred), f1_score(gold, pred))
        report = classification_report(gold, pred, output_dict=True, digits=12)
    got = (ours["precision"], ours["recall"], ours["f1"])
    assert max(abs(a - b) for a, b in zip(got, ref)) < 1e-12, f"ours {got} vs seqeval {ref}"
    types = sorted(k for k in report if not k.endswith(" avg"))
    assert sorted(ours["per_type"]) == types, f"types {sorted(ours['per_type'])} vs seqeval {types}"
    for t in types:
        o, r = ours["per_type"][t], report[t]
        diffs = [abs(o["precision"] - r["precision"]), abs(o["recall"] - r["recall"]), abs(o["f1"] - r["f1-score"])]
        assert max(diffs) < 1e-12 and o["n_gold"] == r["support"], f"type {t}: ours {o} vs seqeval {r}"


def check_corrupted_files(data_dir, n_files, n_sentences, seed):
    rng = random.Random(seed)
    for k in range(n_files):
        name = NER_FILES[k % len(NER_FILES)]
        gold = read_tags(data_dir / name)
        if n_sentences:
            gold = rng.sample(gold, n_sentences)
        type_ = "Entity" if name.startswith("bc5cdr") else "Disease"
        rate = rng.choice([0.0, 0.02, 0.1, 0.3, 0.6])
        pred = [corrupt_tags(s, rng, rate, type_) for s in gold]
        for p in pred[:50]:                        # spans themselves, sentence by sentence
            assert E.entity_spans(p) == get_entities(p), f"{name}: {p}"
        assert_matches_seqeval(gold, pred)


# --- 1-2. Entity spans and entity F1 -----------------------------------------------------------

def test_entity_spans_hand_made_multi_type():
    """IOB1 and BIO mixed, two types. Worked out by conlleval's rules:
    I-Chem I-Chem : an I after O starts a chunk -> (Chem, 0, 1); I-Dis: the type changes -> (Dis, 2, 2);
    O; B-Dis I-Dis -> (Dis, 4, 5); B-Dis right after -> (Dis, 6, 6); I-Chem, type change -> (Chem, 7, 7)."""
    tags = ["I-Chem", "I-Chem", "I-Dis", "O", "B-Dis", "I-Dis", "B-Dis", "I-Chem"]
    expected = [("Chem", 0, 1), ("Dis", 2, 2), ("Dis", 4, 5), ("Dis", 6, 6), ("Chem", 7, 7)]
    assert E.entity_spans(tags) == expected == get_entities(tags)
    pred = [["I-Chem", "I-Chem", "O", "O", "B-Dis", "I-Dis", "I-Dis", "B-Chem"]]
    result = E.entity_prf([tags], pred)   # pred: (Chem,0,1) right, (Dis,4,6) wrong end, (Chem,7,7) right
    assert (result["n_correct"], result["n_pred"], result["n_gold"]) == (2, 3, 5)
    assert result["precision"] == 2 / 3 and result["recall"] == 2 / 5 and abs(result["f1"] - 0.5) < 1e-15
    assert result["per_type"]["Chem"]["f1"] == 1.0 and result["per_type"]["Dis"]["n_correct"] == 0
    assert_matches_seqeval([tags], pred)


def test_entity_counts_equal_the_data_readme(data_dir):
    """conlleval chunk counts of the real files are the mention counts in data/README.md (IOB1 BC5CDR)."""
    counts = {name: sum(len(E.entity_spans(s)) for s in read_tags(data_dir / name)) for name in NER_FILES}
    ref = {name: sum(len(get_entities(s)) for s in read_tags(data_dir / name)) for name in NER_FILES}
    assert counts == ref
    assert counts["bc5cdr/test.txt"] == 9662 and counts["ncbi_disease/train.txt"] == 5134


def test_entity_f1_matches_seqeval_on_corrupted_subsets(data_dir):
    """300 corrupted prediction files (200 random sentences each) of the six real NER files."""
    check_corrupted_files(data_dir, n_files=300, n_sentences=200, seed=0)


@pytest.mark.slow
def test_entity_f1_matches_seqeval_on_corrupted_full_files(data_dir):
    """300 corrupted copies of the whole files (50 per file)."""
    check_corrupted_files(data_dir, n_files=300, n_sentences=None, seed=1)


def test_entity_prf_edge_cases():
    assert E.entity_prf([["O", "O"]], [["O", "O"]])["f1"] == 0.0                    # nothing to find
    assert E.entity_prf([["B-X", "O"]], [["O", "O"]])["precision"] == 0.0           # nothing predicted
    with pytest.raises(ValueError, match="sentence 0"):
        E.entity_prf([["O"]], [["O", "O"]])


# --- 3. Micro-F1 without the negative class ----------------------------------------------------

def read_labels(path) -> list[str]:
    """The label column (last field) of a BLUE TSV file, header dropped."""
    lines = Path(path).read_text(encoding="utf-8-sig").splitlines()[1:]
    return [line.split("\t")[-1] for line in lines]


@pytest.mark.parametrize("task, negative", [("chemprot", "False"), ("ddi", "DDI-false")])
def test_micro_prf_matches_sklearn(data_dir, task, negative):
    rng = random.Random(task)
    for split in ("train", "dev", "test"):
        gold = read_labels(data_dir / task / f"{split}.tsv")
        labels = sorted(set(gold))
        positives = [lab for lab in labels if lab != negative]
        assert len(positives) == (5 if task == "chemprot" else 4)
        for trial in range(40):
            rate = rng.choice([0.0, 0.05, 0.2, 0.5, 1.0])
            pred = [rng.choice(labels) if rng.random() < rate else g for g in gold]
            extra = trial % 4 == 3                 # now and then a made-up label, a wrong positive
            if extra:
                pred = [f"{task}-made-up" if rng.random() < 0.01 else p for p in pred]
            ref = precision_recall_fscore_support(gold, pred, average="micro", zero_division=0.0,
                                                  labels=sorted(set(positives) | set(pred) - {negative}))
            ours = E.micro_prf(gold, pred, negative)
            got = (ours["precision"], ours["recall"], ours["f1"])
            assert max(abs(a - b) for a, b in zip(got, ref[:3])) < 1e-12, f"{split}: {got} vs {ref[:3]}"


def test_micro_prf_edge_cases():
    """No positive prediction -> P = R = F1 = 0 (documented); no positive gold -> R = 0."""
    gold = ["CPR:3", "False", "CPR:4"]
    none_predicted = E.micro_prf(gold, ["False"] * 3, "False")
    assert (none_predicted["precision"], none_predicted["recall"], none_predicted["f1"]) == (0.0, 0.0, 0.0)
    no_gold = E.micro_prf(["False"] * 3, ["CPR:3", "False", "False"], {"False"})
    assert no_gold["recall"] == 0.0 and no_gold["n_pred"] == 1
    assert E.micro_prf([], [], "False")["f1"] == 0.0
    with pytest.raises(ValueError):
        E.micro_prf(["False"], [], "False")


# --- 4. BioASQ factoid measures and SQuAD EM/F1 -------------------------------------------------

def golden_batches(data_dir) -> list[dict]:
    """Factoid question id -> synonym lists per 7b batch, parsed here independently of eval.py."""
    batches = []
    for b in range(1, 6):
        questions = json.loads((data_dir / "bioasq" / f"golden-7b-{b}.json").read_text())["questions"]
        batches.append({q["id"]: q["exact_answer"] for q in questions if q["type"] == "factoid"})
    return batches


def test_bioasq_reader_keeps_only_factoid_questions(data_dir):
    for b, gold in enumerate(golden_batches(data_dir), 1):
        assert E.read_bioasq_json(data_dir / "bioasq" / f"golden-7b-{b}.json") == gold
    assert [len(g) for g in golden_batches(data_dir)] == [39, 25, 29, 34, 35]   # docs/paper.md §4


def test_bioasq_gold_first_scores_one(data_dir):
    """Each question answers one of its gold synonyms first, in another case: all three measures are 1."""
    rng = random.Random(0)
    for gold in golden_batches(data_dir):
        preds = {qid: [rng.choice(rng.choice(syn)).swapcase(), "a wrong answer"] for qid, syn in gold.items()}
        scores = E.bioasq_factoid_scores(preds, gold)
        assert (scores["strict"], scores["lenient"], scores["mrr"], scores["n"]) == (1.0, 1.0, 1.0, len(gold))


def test_bioasq_gold_at_rank_k_gives_hand_computed_mrr(data_dir):
    """Gold at a random rank k in 1..7 behind wrong (partly duplicated) answers: strict = share of k == 1,
    lenient = share of k <= 5, MRR = mean of 1/k for k <= 5 (answers beyond the fifth are ignored)."""
    rng = random.Random(1)
    for gold in golden_batches(data_dir):
        ranks = {qid: rng.randint(1, 7) for qid in gold}
        wrong = ["zz-wrong-%d" % rng.randint(0, 2) for _ in range(7)]          # duplicates keep their rank
        preds = {qid: wrong[:k - 1] + [gold[qid][0][0].upper()] + wrong[k - 1:] for qid, k in ranks.items()}
        scores = E.bioasq_factoid_scores(preds, gold)
        n = len(gold)
        assert scores["strict"] == sum(k == 1 for k in ranks.values()) / n
        assert scores["lenient"] == sum(k <= 5 for k in ranks.values()) / n
        assert abs(scores["mrr"] - sum(1 / k for k in ranks.values() if k <= 5) / n) < 1e-12


def test_bioasq_missing_and_empty_answers_score_zero(data_dir):
    gold = golden_batches(data_dir)[0]
    ids = sorted(gold)
    preds = {qid: [gold[qid][0][0]] for qid in ids[10:]}      # the first 10 questions are missing
    preds[ids[10]] = []                                       # and one has no answer
    scores = E.bioasq_factoid_scores(preds, gold)
    assert scores["strict"] == scores["lenient"] == scores["mrr"] == (len(ids) - 11) / len(ids)
    assert scores["answered"] == len(ids) - 10
    assert E.bioasq_factoid_scores({}, {})["strict"] == 0.0


def test_bioasq_submission_round_trip_and_cli(data_dir, tmp_path):
    """Write one submission per batch, read it back unchanged, and score all five from the command line."""
    rng = random.Random(2)
    golds, preds, paths = golden_batches(data_dir), [], []
    for b, gold in enumerate(golds, 1):
        pred = {qid: rng.sample(["x", "y", syn[0][0], "z", "w"], 5) for qid, syn in gold.items() if rng.random() < 0.9}
        E.write_bioasq_submission(pred, tmp_path / f"sub-{b}.json")
        assert E.read_bioasq_submission(tmp_path / f"sub-{b}.json") == pred
        preds.append(pred)
    args = ["score", "--task", "bioasq", "--out-dir", str(tmp_path / "out"),
            "--gold", *[str(data_dir / "bioasq" / f"golden-7b-{b}.json") for b in range(1, 6)],
            "--pred", *[str(tmp_path / f"sub-{b}.json") for b in range(1, 6)]]
    result = E.main(E.parse_args(args))
    for b, (gold, pred) in enumerate(zip(golds, preds)):
        ranks = [pred[q].index(gold[q][0][0]) + 1 for q in gold if q in pred]
        assert abs(result["batches"][b]["mrr"] - sum(1 / k for k in ranks) / len(gold)) < 1e-12
    assert abs(result["mean"]["strict"] - sum(b["strict"] for b in result["batches"]) / 5) < 1e-12
    assert json.loads((tmp_path / "out" / "scores.json").read_text())["mean"] == result["mean"]


def test_bioasq_submission_counts_only_the_first_synonym(tmp_path):
    (tmp_path / "sub.json").write_text(json.dumps({"questions": [{"id": "q1", "exact_answer": [["no", "IDH1"]]}]}))
    assert E.bioasq_factoid_scores(E.read_bioasq_submission(tmp_path / "sub.json"), {"q1": [["idh1"]]})["lenient"] == 0.0
    (tmp_path / "bad.json").write_text('{"questions": [\n{"id": "q1",,}]}')
    with pytest.raises(E.EvalError, match="bad.json:2"):
        E.read_bioasq_json(tmp_path / "bad.json")


def test_squad_em_f1_textbook_cases():
    """SQuAD v1.1 normalisation: lowercase, no punctuation, no a/an/the, single spaces."""
    assert E.normalize_answer("The  Cat, sat!") == "cat sat"
    refs = {"q1": ["the cat sat on a mat"], "q2": ["EGFR", "epidermal growth factor receptor"], "q3": ["x"]}
    preds = {"q1": "Cat sat", "q2": "egfr."}                 # q3 unanswered -> 0
    scores = E.squad_em_f1(preds, refs)
    # q1: [cat, sat] vs [cat, sat, on, mat] -> P 1, R 1/2, F1 2/3; q2 exact; q3 0
    assert scores["exact_match"] == 1 / 3 and abs(scores["f1"] - (2 / 3 + 1) / 3) < 1e-12


# --- 5. The results table and the command line -------------------------------------------------

def write_run(path, task, metric, seeds, model="electramed-tiny"):
    path.mkdir(parents=True)
    (path / "summary.json").write_text(json.dumps({"task": task, "metric": metric, "seeds": seeds, "model": model}))
    return str(path)


def test_results_table_from_run_dirs(tmp_path):
    runs = [write_run(tmp_path / "chemprot-small", "chemprot", "micro_f1", {"1": 0.70, "2": 0.72, "3": 0.74}),
            write_run(tmp_path / "bc5cdr-one", "bc5cdr", "accuracy", {"7": 0.5}),     # not the paper's metric
            write_run(tmp_path / "other", "my_ner", "entity_f1", {"1": 0.9, "2": 0.8})]
    table = E.main(E.parse_args(["table", *runs, "--out-dir", str(tmp_path / "out")])).splitlines()
    # mean 72.00; sample std sqrt((0.02^2 + 0 + 0.02^2) / 2) = 0.02 -> 2.00
    assert table[2] == ("| chemprot-small | chemprot | electramed-tiny | micro_f1 | 72.00 ± 2.00 (3 seeds) "
                        "| 72.94 | BlueBERT-base 72.50, BlueBERT-large 74.40 |")
    assert table[3].endswith("| 50.00 ± 0.00 (1 seeds) | – | – |")
    assert "| 85.00 ± 7.07 (2 seeds) | – | – |" in table[4]
    assert (tmp_path / "out" / "results.md").read_text().splitlines() == table


def test_results_table_rejects_bad_summaries(tmp_path):
    with pytest.raises(E.EvalError, match="no summary.json"):
        E.results_table([tmp_path])
    bad = write_run(tmp_path / "bad", "ddi", "micro_f1", {"1": 79.1})      # a percentage, not a fraction
    with pytest.raises(E.EvalError, match=r"bad/summary.json: 'seeds'"):
        E.results_table([bad])


def test_score_ner_and_re_files(data_dir, tmp_path):
    """Prediction files in the evaluators' formats give the oracles' numbers from the command line."""
    rng = random.Random(3)
    lines = [line.split() for line in (data_dir / "bc5cdr/dev.txt").read_text().splitlines()]
    sentences = read_tags(data_dir / "bc5cdr/dev.txt")
    pred = [corrupt_tags(s, rng, 0.1, "Entity") for s in sentences]
    flat = iter(t for s in pred for t in s)
    rows = [f"{f[0]} {f[1]} {next(flat)}" if f else "" for f in lines]
    (tmp_path / "ner.txt").write_text("\n".join(rows) + "\n")
    out = ["--out-dir", str(tmp_path / "out")]
    result = E.main(E.parse_args(["score", "--task", "ner", "--pred", str(tmp_path / "ner.txt"), *out]))
    assert abs(result["f1"] - f1_score(sentences, pred)) < 1e-12
    gold = read_labels(data_dir / "ddi/dev.tsv")
    labels = sorted(set(gold))
    preds = [rng.choice(labels) if rng.random() < 0.3 else g for g in gold]
    (tmp_path / "re.tsv").write_text("index\tgold\tpred\n" + "".join(f"{i}\t{g}\t{p}\n" for i, (g, p) in enumerate(zip(gold, preds))))
    (tmp_path / "re_pred.tsv").write_text("index\tpred\r\n" + "".join(f"{i}\t{p}\r\n" for i, p in enumerate(preds)))
    ref = precision_recall_fscore_support(gold, preds, average="micro", labels=[x for x in labels if x != "DDI-false"])
    by_columns = E.main(E.parse_args(["score", "--task", "re", "--pred", str(tmp_path / "re.tsv"), *out]))
    beside_gold = E.main(E.parse_args(["score", "--task", "re", "--gold", str(data_dir / "ddi/dev.tsv"),
                                       "--pred", str(tmp_path / "re_pred.tsv"), *out]))
    assert by_columns["negative"] == "DDI-false" and abs(by_columns["f1"] - ref[2]) < 1e-12
    assert by_columns == beside_gold


def test_bad_prediction_files_name_file_and_line(data_dir, tmp_path):
    (tmp_path / "ner.txt").write_text("aspirin O O\n\nEGFR B-X\n")
    with pytest.raises(E.EvalError, match=r"ner.txt:3: expected at least 3 columns"):
        E.main(E.parse_args(["score", "--task", "ner", "--pred", str(tmp_path / "ner.txt"), "--out-dir", str(tmp_path)]))
    (tmp_path / "short.tsv").write_text("index\tpred\n0\tFalse\n")
    with pytest.raises(E.EvalError, match="1 predictions but 10361 gold rows"):
        E.main(E.parse_args(["score", "--task", "re", "--gold", str(data_dir / "chemprot/dev.tsv"),
                             "--pred", str(tmp_path / "short.tsv"), "--out-dir", str(tmp_path)]))
    proc = subprocess.run([sys.executable, str(REPO / "eval.py"), "score", "--task", "re",
                           "--pred", str(tmp_path / "missing.tsv"), "--out-dir", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "eval.py: error:" in proc.stderr and "missing.tsv" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", [[], ["score"], ["table"]])
def test_help(command):
    proc = subprocess.run([sys.executable, str(REPO / "eval.py"), *command, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and ("--out-dir" if command else "{score,table}") in proc.stdout


def test_no_seed_option(capsys):
    for command in (["table", "runs/x"], ["score", "--task", "ner", "--pred", "p.txt"]):
        with pytest.raises(SystemExit) as exit_info:                 # scoring is deterministic: no --seed
            E.parse_args([*command, "--seed", "1"])
        assert exit_info.value.code == 2 and "unrecognized arguments: --seed" in capsys.readouterr().err
