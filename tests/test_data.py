"""
Tests of data.py: the benchmark readers reproduce the counts of ../shared/data/README.md (mentions
counted with seqeval's conlleval chunking as the oracle), bad lines are errors naming file:line,
packing follows ELECTRA's ExampleBuilder rules on many random documents, the shard reader resumes
exactly, and downloads are verified against checksums (local HTTP server on 127.0.0.1).

    python -m pytest tests/test_data.py            # default set
    python -m pytest tests/test_data.py -m slow    # full-corpus preparation
"""
import json
from collections import Counter

import pytest
from seqeval.metrics.sequence_labeling import get_entities

import data
from data import DataError

# ---------------------------------------------------------------------------------------------
# 4. Benchmark readers: counts from ../shared/data/README.md (and each folder's SOURCE.md)
# ---------------------------------------------------------------------------------------------
NER_COUNTS = {  # (sentences, tokens, mentions)
    "bc5cdr/train.txt": (3951, 95370, 9270), "bc5cdr/dev.txt": (3957, 94437, 9457),
    "bc5cdr/test.txt": (4145, 98691, 9662),
    "ncbi_disease/train.txt": (5429, 135701, 5134), "ncbi_disease/dev.txt": (923, 23969, 787),
    "ncbi_disease/test.txt": (941, 24497, 960),
}
RE_COUNTS = {  # rows, then per-label counts
    "chemprot/train.tsv": (16521, {"CPR:3": 761, "CPR:4": 2251, "CPR:5": 172, "CPR:6": 235, "CPR:9": 713}),
    "chemprot/dev.tsv": (10361, {"CPR:3": 548, "CPR:4": 1093, "CPR:5": 115, "CPR:6": 199, "CPR:9": 457}),
    "chemprot/test.tsv": (14396, {"CPR:3": 664, "CPR:4": 1658, "CPR:5": 183, "CPR:6": 292, "CPR:9": 644}),
    "chemprot/blue/dev.tsv": (11820, {"CPR:3": 550, "CPR:4": 1094, "CPR:5": 116, "CPR:6": 199,
                                      "CPR:9": 457, "false": 9404}),
    "ddi/train.tsv": (20546, {"DDI-advise": 633, "DDI-effect": 1291, "DDI-mechanism": 946, "DDI-int": 146,
                              "DDI-false": 17530}),
    "ddi/dev.tsv": (7244, {"DDI-advise": 193, "DDI-effect": 396, "DDI-mechanism": 373, "DDI-int": 42,
                           "DDI-false": 6240}),
    "ddi/test.tsv": (5761, {"DDI-advise": 221, "DDI-effect": 360, "DDI-mechanism": 302, "DDI-int": 96,
                            "DDI-false": 4782}),
}
BIOASQ_TEST = {1: (98, 39), 2: (56, 25), 3: (84, 29), 4: (90, 34), 5: (79, 35)}  # pairs, factoid questions


@pytest.mark.parametrize("name", NER_COUNTS)
def test_conll_counts_match_readme(data_dir, name):
    sentences = data.read_conll(data_dir / name)
    n_tokens = sum(len(words) for words, _ in sentences)
    mentions = get_entities([tags for _, tags in sentences])   # conlleval chunks, IOB1 ok
    assert (len(sentences), n_tokens, len(mentions)) == NER_COUNTS[name]
    assert all(len(words) == len(tags) for words, tags in sentences)


@pytest.mark.parametrize("name", RE_COUNTS)
def test_blue_tsv_counts_match_readme(data_dir, name):
    rows = data.read_blue_tsv(data_dir / name)
    n_rows, per_label = RE_COUNTS[name]
    labels = Counter(label for _, label in rows)
    assert len(rows) == n_rows
    assert {k: labels[k] for k in per_label} == per_label
    assert not any("\r" in s or "\r" in l or "\ufeff" in s for s, l in rows)   # CRLF and BOM gone


def test_bioasq_counts_match_readme(data_dir):
    train = data.read_squad(data_dir / "bioasq/train.json")
    assert (len(train), len({p["id"].split("_")[0] for p in train})) == (4231, 530)
    assert all(len(p["answers"]) == 1 for p in train)
    for batch, (n_pairs, n_factoid) in BIOASQ_TEST.items():
        pairs = data.read_squad(data_dir / f"bioasq/test-7b-{batch}.json")
        golden = data.read_bioasq_golden(data_dir / f"bioasq/golden-7b-{batch}.json")
        questions = {p["id"].split("_")[0] for p in pairs}
        assert (len(pairs), len(questions), len(golden)) == (n_pairs, n_factoid, n_factoid)
        assert questions == set(golden)   # every factoid question has snippets, and only those
        raw = json.loads((data_dir / f"bioasq/golden-7b-{batch}.json").read_text())
        assert sum(q["type"] == "factoid" for q in raw["questions"]) == n_factoid


def test_counts_cli_prints_every_split(data_dir, capsys):
    data.main(data.parse_args(["counts", "--data-dir", str(data_dir)]))
    out = capsys.readouterr().out
    assert "bc5cdr/train.txt" in out and "'sentences': 3951" in out and "'CPR:4': 2251" in out


@pytest.mark.parametrize("text, line_no, message", [
    ("Naloxone I-Entity\nreverses\n", 2, "expected 'word tag'"),
    ("a O\n\nb X-Entity\n", 3, "bad tag"),
    ("a O\n\xff\n", 2, "not UTF-8"),
])
def test_conll_errors_name_file_and_line(tmp_path, text, line_no, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError, match=f"bad.txt:{line_no}: {message}"):
        data.read_conll(path)


@pytest.mark.parametrize("text, line_no, message", [
    ("words\tclass\nx\ty\n", 1, "expected a header"),
    ("sentence\tlabel\r\nok\tFalse\r\ntoo\tmany\tcolumns\r\n", 3, "expected 2 TAB-separated"),
    ("index\tsentence\tlabel\n1\ts\tfalse\n2\t\tfalse\n", 3, "empty sentence"),
    ("sentence\tlabel\nok\tFalse\n\nok\tFalse\n", 3, "blank line"),
])
def test_tsv_errors_name_file_and_line(tmp_path, text, line_no, message):
    path = tmp_path / "bad.tsv"
    path.write_text(text, newline="")
    with pytest.raises(DataError, match=f"bad.tsv:{line_no}: {message}"):
        data.read_blue_tsv(path)


def test_tsv_bom_crlf_and_both_headers(tmp_path):
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    a.write_bytes("\ufeffindex\tsentence\tlabel\r\n7.T1.T2\tThe @CHEMICAL$ x\tCPR:3\r\n".encode())
    b.write_bytes(b"sentence\tlabel\nThe BC6ENTC x\tFalse\n")
    assert data.read_blue_tsv(a) == [("The @CHEMICAL$ x", "CPR:3")]
    assert data.read_blue_tsv(b) == [("The BC6ENTC x", "False")]


def test_json_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [\n{"paragraphs": [}\n]}')
    with pytest.raises(DataError, match="bad.json:2: invalid JSON"):
        data.read_squad(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"data": [{"paragraphs": [{"context": "abc", "qas": [
        {"id": "q_1", "question": "?", "answers": [{"text": "bc", "answer_start": 0}]}]}]}]}))
    with pytest.raises(DataError, match="not at answer_start 0"):
        data.read_squad(wrong)
    golden = tmp_path / "golden.json"
    golden.write_text(json.dumps({"questions": [{"id": "q", "type": "factoid", "exact_answer": []}]}))
    with pytest.raises(DataError, match="exact_answer must be"):
        data.read_bioasq_golden(golden)
    with pytest.raises(DataError, match="missing.json: file not found"):
        data.read_squad(tmp_path / "missing.json")
