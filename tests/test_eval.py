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
