"""
Tests of data.py: the benchmark readers reproduce the counts of ../shared/data/README.md (mentions
counted with seqeval's conlleval chunking as the oracle), bad lines are errors naming file:line,
packing follows ELECTRA's ExampleBuilder rules on many random documents, the shard reader resumes
exactly, and downloads are verified against checksums (local HTTP server on 127.0.0.1).

    python -m pytest tests/test_data.py            # default set
    python -m pytest tests/test_data.py -m slow    # full-corpus preparation
"""
import gzip
import hashlib
import http.server
import json
import random
import shutil
import threading
from pathlib import Path
from collections import Counter
from xml.dom import minidom

import pytest
import torch
from seqeval.metrics.sequence_labeling import get_entities

import data
from data import DataError
from tokenizer import Tokenizer

CLS, SEP = 102, 103   # ids in the scivocab; packing tests use ids >= 1000 for text


# ---------------------------------------------------------------------------------------------
# 1. Reading documents
# ---------------------------------------------------------------------------------------------
def test_read_documents_plain_gz_and_many_files(tmp_path, data_dir):
    text = "First sentence .\nSecond one .\n\n\nOther doc .\n"
    (tmp_path / "a.txt").write_text(text)
    with gzip.open(tmp_path / "b.txt.gz", "wt") as f:
        f.write("  Last doc .  \n")
    docs = list(data.read_documents([tmp_path / "a.txt", tmp_path / "b.txt.gz"]))
    assert docs == [["First sentence .", "Second one ."], ["Other doc ."], ["Last doc ."]]
    sample = list(data.read_documents(data_dir / "pubmed/pubmed_sample.txt"))
    assert (len(sample), sum(map(len, sample))) == (1518, 6334)   # README: 1,518 documents / 6,334 sentences
    corpus = list(data.read_documents(data_dir / "pubmed/corpus.txt"))
    n_words = sum(len(s.split()) for d in corpus for s in d)
    assert (len(corpus), sum(map(len, corpus)), n_words) == (15655, 58490, 1333010)   # README


def test_read_documents_errors_and_no_blank_lines(tmp_path, monkeypatch):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="empty.txt: empty corpus file"):
        list(data.read_documents(tmp_path / "empty.txt"))
    with pytest.raises(DataError, match="missing.txt: file not found"):
        list(data.read_documents(tmp_path / "missing.txt"))
    (tmp_path / "latin.txt").write_bytes(b"ok\n\nbad \xff\n")
    with pytest.raises(DataError, match="latin.txt:3: not UTF-8"):
        list(data.read_documents(tmp_path / "latin.txt"))
    # no blank lines: one document per file, cut every MAX_DOCUMENT_LINES lines
    monkeypatch.setattr(data, "MAX_DOCUMENT_LINES", 4)
    (tmp_path / "flat.txt").write_text("".join(f"s{i}\n" for i in range(10)))
    assert [len(d) for d in data.read_documents(tmp_path / "flat.txt")] == [4, 4, 2]


@pytest.mark.parametrize("text, expected", [
    ("Doses were 5 mg vs. 10 mg. Fig. 2 shows it.", ["Doses were 5 mg vs. 10 mg.", "Fig. 2 shows it."]),
    ("As Smith et al. (2005) found, it works. J. Smith and A. B. Jones agreed.",
     ["As Smith et al. (2005) found, it works.", "J. Smith and A. B. Jones agreed."]),
    ("Cytokines, e.g. IL-6, rose (P<0.01). In the U.S. FDA data, i.e. Table 1, 3.5% died.",
     ["Cytokines, e.g. IL-6, rose (P<0.01).", "In the U.S. FDA data, i.e. Table 1, 3.5% died."]),
    ("Is it safe? Yes! 12 patients died. \"Quoted.\" (Funded by NIH.) done.",
     ["Is it safe?", "Yes!", "12 patients died.", "\"Quoted.\"", "(Funded by NIH.) done."]),
    ("  Spaces\n and\ttabs.   Éclair follows. ", ["Spaces and tabs.", "Éclair follows."]),
])
def test_split_sentences(text, expected):
    assert data.split_sentences(text) == expected


def abstract_text(xml_path):
    """Oracle: the AbstractText of every record through xml.dom.minidom, whitespace collapsed."""
    def text_of(node):
        return node.data if node.nodeType == node.TEXT_NODE else "".join(map(text_of, node.childNodes))
    dom = minidom.parse(str(xml_path))
    return [" ".join(" ".join(text_of(a) for a in art.getElementsByTagName("AbstractText")).split())
            for art in dom.getElementsByTagName("PubmedArticle")]


def test_pubmed_xml_to_corpus(tmp_path, data_dir):
    xml = data_dir / "pubmed/pubmed-29768149.xml"
    [sentences] = list(data.pubmed_xml_to_documents(xml))
    assert " ".join(sentences) == abstract_text(xml)[0]
    assert len(sentences) == 1 + 3 + 5 + 4   # by hand: BACKGROUND, METHODS, RESULTS, CONCLUSIONS
    assert "34.4% vs. 31.1% of weeks" in sentences[5] and "\u03b2 2-agonist" in sentences[0]
    record = xml.read_text().split("<PubmedArticle>")[1].split("</PubmedArticle>")[0]
    no_abstract = record.split("<Abstract>")[0] + record.split("</Abstract>")[1]
    articles = "".join(f"<PubmedArticle>{r}</PubmedArticle>" for r in (record, no_abstract, record))
    with gzip.open(tmp_path / "two.xml.gz", "wt") as f:
        f.write(f"<?xml version=\"1.0\"?><PubmedArticleSet>{articles}</PubmedArticleSet>")
    data.main(data.parse_args(["pubmed-xml", str(xml), str(tmp_path / "two.xml.gz"),
                               "--out", str(tmp_path / "corpus.txt")]))
    assert list(data.read_documents(tmp_path / "corpus.txt")) == [sentences] * 3   # record w/o abstract skipped
    (tmp_path / "bad.xml").write_text("<PubmedArticleSet>\n<PubmedArticle>\n</Pubmed>")
    with pytest.raises(DataError, match="bad.xml:3: bad XML"):
        list(data.pubmed_xml_to_documents(tmp_path / "bad.xml"))


# ---------------------------------------------------------------------------------------------
# 2. Packing: ELECTRA's ExampleBuilder rules on many random documents
# ---------------------------------------------------------------------------------------------
def random_documents(n_docs, seed, max_sentences=15, max_sentence_len=60):
    """Documents whose token ids count up from 1000, so every token names its document and place."""
    rng, next_id, docs = random.Random(seed), 1000, []
    for _ in range(n_docs):
        doc = []
        for _ in range(rng.randint(1, max_sentences)):
            n = rng.randint(1, max_sentence_len)
            doc.append(list(range(next_id, next_id + n)))
            next_id += n
        docs.append(doc)
    return docs


def split_example(ids, types):
    """[CLS] A [SEP] (B [SEP]) -> A, B, checking the layout and the token types on the way."""
    assert ids[0] == CLS and ids[-1] == SEP
    n_a = types.count(0)
    assert types == [0] * n_a + [1] * (len(ids) - n_a) and ids[n_a - 1] == SEP
    a, b = ids[1:n_a - 1], ids[n_a:-1]
    assert len(a) > 0 and (len(b) > 0) == (len(ids) > n_a)
    assert SEP not in a + b and CLS not in a + b
    return a, b


@pytest.mark.parametrize("max_len", [16, 128])
def test_packing_never_crosses_documents_and_keeps_order(max_len):
    docs = random_documents(400, seed=max_len)
    doc_of = {t: d for d, doc in enumerate(docs) for s in doc for t in s}
    sentence_starts = {s[0] for doc in docs for s in doc}
    examples = list(data.pack_examples(docs, max_len, random.Random(0), CLS, SEP))
    seen_docs = []
    for ids, types in examples:
        assert len(ids) <= max_len and len(ids) == len(types)
        a, b = split_example(ids, types)
        assert len({doc_of[t] for t in a + b}) == 1, "an example spans two documents"
        assert a[0] in sentence_starts and (not b or b[0] in sentence_starts)
        # each segment keeps text order; a short sentence can still join A after a longer one went
        # to B (ELECTRA's rule checks only the length), so A and B may interleave
        assert all(x < y for s in (a, b) for x, y in zip(s, s[1:])), "tokens out of order"
        seen_docs.append(doc_of[a[0]])
    assert seen_docs == sorted(seen_docs) and set(seen_docs) == set(range(len(docs)))


def test_packing_drops_only_what_exceeds_max_len():
    """Each example takes the sentences from its first token up to the next example's first token
    (or the document's end), and keeps all of them unless [CLS] A [SEP] B [SEP] would exceed max_len:
    then exactly max_len tokens remain (A is cut to max_len - 2, B to what is left)."""
    max_len = 64
    docs = random_documents(300, seed=1, max_sentences=40, max_sentence_len=8)
    examples = list(data.pack_examples(docs, max_len, random.Random(1), CLS, SEP))
    starts = [min(t for t in ids if t >= 1000) for ids, _ in examples]
    dropped = 0
    for doc in docs:
        tokens = [t for s in doc for t in s]
        mine = [k for k, s in enumerate(starts) if tokens[0] <= s <= tokens[-1]]
        assert starts[mine[0]] == tokens[0]
        for k in mine:
            end = starts[k + 1] if k + 1 in mine else tokens[-1] + 1
            collected = set(range(starts[k], end))
            a, b = split_example(*examples[k])
            assert set(a + b) <= collected
            assert len(a) + len(b) + 2 + bool(b) == min(len(collected) + 2 + bool(b), max_len)
            dropped += len(collected) - len(a) - len(b)
    assert dropped > 0   # the case under test happened


def test_packing_fractions_single_segment_random_length_and_coin():
    """1-token sentences in long documents: every example holds >= 5 sentences, so an example has
    no second segment only by the 10% single-segment draw; a non-final example shorter than its
    full target only by the 5% random target (randint(5, 32) < 29 with probability 24/28); and the
    first segment of a full example ends on T-1 or T tokens with the 50% coin, T = (32 - 3) // 2."""
    max_len, T = 32, (32 - 3) // 2
    docs = [[[1000 + i] for i in range(4000)] for _ in range(60)]
    examples = list(data.pack_examples(docs, max_len, random.Random(7), CLS, SEP))
    single, short, full_pairs = 0, 0, []
    for ids, types in examples:
        a, b = split_example(ids, types)
        single += not b
        short += len(a) + len(b) < max_len - 3
        if b and len(a) + len(b) == max_len - 3:
            full_pairs.append(len(a))
    n = len(examples)
    assert n > 7000
    assert abs(single / n - 0.10) < 0.012, single / n
    assert abs(short / n - 0.05 * 24 / 28) < 0.01, short / n
    coin = Counter(full_pairs)   # a few come from random targets 29..32, whose T is 13 or 14
    assert coin[T - 1] + coin[T] > 0.97 * len(full_pairs), coin
    assert abs(coin[T] / (coin[T - 1] + coin[T]) - 0.5) < 0.03, coin


def test_packing_truncates_long_sentences_and_is_deterministic():
    docs = [[list(range(1000, 1500))], [list(range(2000, 2010)), list(range(3000, 3300))]]
    examples = list(data.pack_examples(docs, 128, random.Random(3), CLS, SEP))
    assert all(len(ids) <= 128 for ids, _ in examples) and len(examples) == 2
    assert examples[0][0][1:-1] == list(range(1000, 1126))   # first segment cut to max_len - 2
    many = random_documents(200, seed=5)
    run = lambda seed: list(data.pack_examples(many, 64, random.Random(seed), CLS, SEP))
    assert run(11) == run(11) and run(11) != run(12)
    with pytest.raises(ValueError, match="at least 5"):
        list(data.pack_examples(many, 4, random.Random(0), CLS, SEP))


# ---------------------------------------------------------------------------------------------
# 3. Shards on disk and the resumable reader
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sample_shards(tmp_path_factory, data_dir, scivocab):
    out = tmp_path_factory.mktemp("shards")
    return data.prepare_corpus([data_dir / "pubmed/pubmed_sample.txt"], scivocab, out, max_len=128, workers=2)


def rows_of(batch):
    return sorted(tuple(map(tuple, (i.tolist(), t.tolist(), m.tolist())))
                  for i, t, m in zip(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]))


def test_prepare_writes_exactly_the_packed_examples(sample_shards, data_dir, scivocab):
    """The parallel, streamed shards hold what a plain single-process loop packs, padded to max_len."""
    tok = Tokenizer.from_vocab_file(scivocab)
    docs = ([tok.encode_text(s) for s in doc] for doc in data.read_documents(data_dir / "pubmed/pubmed_sample.txt"))
    expected = []
    for ids, types in data.pack_examples(docs, 128, random.Random(0), tok.cls_id, tok.sep_id):
        pad = [0] * (128 - len(ids))
        expected.append((tuple(ids + pad), tuple(types + pad), tuple([True] * len(ids) + [False] * len(pad))))
    meta = json.loads((sample_shards / "meta.json").read_text())
    assert (meta["documents"], meta["sentences"], meta["num_examples"]) == (1518, 6334, len(expected))
    everything = data.PretrainingData(sample_shards, batch_size=len(expected)).next_batch()
    assert rows_of(everything) == sorted(expected)
    assert everything["attention_mask"].dtype == torch.bool and everything["input_ids"].dtype == torch.long
    padding = sum(1 - sum(mask) / len(mask) for _, _, mask in expected) / len(expected)   # the plain loop's
    assert data.padding_share(sample_shards) == pytest.approx(padding, rel=1e-9)


def test_reader_splits_ranks_covers_epochs_and_resumes(sample_shards):
    one = data.PretrainingData(sample_shards, batch_size=8, seed=3)
    ranks = [data.PretrainingData(sample_shards, batch_size=4, rank=r, world_size=2, seed=3) for r in (0, 1)]
    for _ in range(5):   # 1 process with 2b sees exactly what 2 processes with b see
        parts = [r.next_batch() for r in ranks]
        whole = one.next_batch()
        for key in whole:
            assert torch.equal(whole[key], torch.cat([p[key] for p in parts]))
    epoch = data.PretrainingData(sample_shards, batch_size=1000, seed=3)
    first = rows_of(epoch.next_batch()) + rows_of(epoch.next_batch())
    assert epoch.steps_per_epoch == 2 and len(set(first)) == 2000   # no example twice in an epoch
    assert epoch.next_batch()["input_ids"].shape == (1000, 128) and epoch.epoch == 1
    reader = data.PretrainingData(sample_shards, batch_size=8, seed=3)
    for _ in range(5):
        reader.next_batch()
    state = json.loads(json.dumps(reader.state_dict()))   # plain numbers: fits any checkpoint
    after = [reader.next_batch() for _ in range(3)]
    resumed = data.PretrainingData(sample_shards, batch_size=8, seed=3)
    resumed.load_state_dict(state)
    for a, b in zip(after, [resumed.next_batch() for _ in range(3)]):
        assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(DataError, match="global_batch=8"):
        data.PretrainingData(sample_shards, batch_size=16, seed=3).load_state_dict(state)
    with pytest.raises(DataError, match="fewer than one global batch"):
        data.PretrainingData(sample_shards, batch_size=2000, world_size=2)


def test_prepare_command_line(tmp_path, data_dir, capsys):
    corpus = tmp_path / "small.txt"
    corpus.write_text("\n".join((data_dir / "pubmed/pubmed_sample.txt").read_text().splitlines()[:300]) + "\n")
    data.main(data.parse_args(["prepare", "--corpus", str(corpus), "--data-dir", str(data_dir), "--max-len", "64",
                               "--workers", "1", "--seed", "5", "--out-dir", str(tmp_path / "shards")]))
    out = capsys.readouterr().out
    assert f"writing shards to {tmp_path / 'shards'}" in out and "'num_examples'" in out
    assert f"padding: {100 * data.padding_share(tmp_path / 'shards'):.1f}% of the" in out
    assert data.PretrainingData(tmp_path / "shards", 2).max_len == 64
    with pytest.raises(SystemExit, match="missing.txt: file not found"):
        data.main(data.parse_args(["prepare", "--corpus", str(tmp_path / "missing.txt"), "--out-dir", str(tmp_path)]))


def test_prepare_cache_and_bad_corpora(tmp_path, data_dir, scivocab):
    lines = (data_dir / "pubmed/pubmed_sample.txt").read_text().splitlines()[:200]
    flat = tmp_path / "flat.txt"   # no blank lines: one document (packed like ELECTRA, never split)
    flat.write_text("\n".join(l for l in lines if l) + "\n")
    out = data.prepare_corpus(flat, scivocab, tmp_path / "flat", workers=1)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["documents"] == 1 and meta["sentences"] == sum(1 for l in lines if l)
    stamp = (out / "examples.bin").stat().st_mtime_ns
    assert data.prepare_corpus(flat, scivocab, out, workers=1) == out
    assert (out / "examples.bin").stat().st_mtime_ns == stamp           # reused, not rewritten
    data.prepare_corpus(flat, scivocab, out, workers=1, seed=1)
    assert json.loads((out / "meta.json").read_text())["key"]["seed"] == 1   # new seed: rebuilt
    long = tmp_path / "long.txt"   # one line of 1000 words: cut to max_len by the packing rules
    long.write_text(" ".join(["protein"] * 1000) + "\n")
    meta = json.loads((data.prepare_corpus(long, scivocab, tmp_path / "long", max_len=64, workers=1)
                       / "meta.json").read_text())
    assert (meta["num_examples"], meta["tokens"], meta["truncated_tokens"]) == (1, 1000, 1000 - 62)
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text("\n\n  \n")
    for name, message in [("empty.txt", "empty corpus file"), ("blank.txt", "no examples"),
                          ("missing.txt", "file not found")]:
        with pytest.raises(DataError, match=f"{name}: {message}"):
            data.prepare_corpus(tmp_path / name, scivocab, tmp_path / name.split(".")[0], workers=1)
    (tmp_path / "latin.txt").write_bytes(b"fine .\n\nalso fine .\nna\xefve\n")   # error inside the worker pool
    with pytest.raises(DataError, match="latin.txt:4: not UTF-8"):
        data.prepare_corpus(tmp_path / "latin.txt", scivocab, tmp_path / "latin", workers=2)
    assert not list((tmp_path / "latin").iterdir())   # no half-written shards left behind


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
    assert (len(train), len({p["question_id"] for p in train})) == (4231, 530)
    assert all(len(p["answers"]) == 1 for p in train)
    for batch, (n_pairs, n_factoid) in BIOASQ_TEST.items():
        pairs = data.read_squad(data_dir / f"bioasq/test-7b-{batch}.json")
        golden = data.read_bioasq_golden(data_dir / f"bioasq/golden-7b-{batch}.json")
        questions = {p["question_id"] for p in pairs}
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
    ("a\tB-\n", 1, "bad tag 'B-' \\(accepted: .* bare O B I E S L U"),
    ("a O\nb\t\n", 2, "expected 'word tag'.*accepted"),
])
def test_conll_errors_name_file_and_line(tmp_path, text, line_no, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError, match=f"bad.txt:{line_no}: {message}"):
        data.read_conll(path)


@pytest.mark.parametrize("text, line_no, message", [
    ("one column only\nx\ty\n", 1, "expected at least 2 TAB-separated columns"),
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


@pytest.mark.parametrize("name", RE_COUNTS)
def test_real_tsv_layouts_are_detected(data_dir, name):
    info = {}
    data.read_blue_tsv(data_dir / name, info=info)
    assert info["header"] == (["sentence", "label"] if name.count("/") == 1 and name.startswith("chemprot") else ["index", "sentence", "label"])


@pytest.mark.parametrize("name, scheme", [("bc5cdr/dev.txt", "IOB1"), ("ncbi_disease/dev.txt", "BIO")])
def test_real_conll_schemes_are_detected_and_tags_kept(data_dir, name, scheme):
    """B/I/O tags are read as spelt (IOB1 included): the paper's BC5CDR labels reach the model unchanged."""
    info = {}
    sentences = data.read_conll(data_dir / name, info=info)
    raw = [line.split()[-1] for line in (data_dir / name).read_text().splitlines() if line.strip()]
    assert info == {"separator": "space", "columns": "2", "scheme": scheme, "bare": False}
    assert [t for _, tags in sentences for t in tags] == raw


def random_entities(rng, n_words, types):
    """Non-overlapping (type, start, end) spans over n_words, often back to back (IOB1's B case)."""
    spans, i = [], rng.randrange(3)
    while i < n_words:
        end = min(n_words - 1, i + rng.randrange(3))
        spans.append((rng.choice(types), i, end))
        i = end + 1 + rng.choice([0, 0, 1, 2])
    return spans


def encode_entities(spans, n_words, scheme, bare):
    """Tags of the spans in a scheme, written independently of data.py: BIO (IOB2), IOB1, IOBES, BILOU."""
    tags, prev_end = ["O"] * n_words, {}
    single, begin, inside, last = {"BIO": "BBII", "IOB1": "BBII", "IOBES": "SBIE", "BILOU": "UBIL"}[scheme]
    for type_, start, end in spans:
        for i in range(start, end + 1):
            tags[i] = single if start == end else begin if i == start else last if i == end else inside
        if scheme == "IOB1":
            tags[start] = "B" if prev_end.get(type_) == start - 1 else "I"   # B only right after the same type
            tags[start + 1:end + 1] = ["I"] * (end - start)
        prev_end[type_] = end
        for i in range(start, end + 1):
            tags[i] += "" if bare else f"-{type_}"
    return tags


@pytest.mark.parametrize("scheme", ["BIO", "IOB1", "IOBES", "BILOU"])
@pytest.mark.parametrize("bare", [False, True])
def test_conll_schemes_read_as_the_same_entities(tmp_path, scheme, bare):
    """Oracle: seqeval's conlleval chunks of the tags read equal the spans written, in every scheme,
    TAB or space separated with extra columns; bare tags get the type given."""
    rng, types = random.Random(hash((scheme, bare)) % 1000), ["Gene"] if bare else ["Chem", "Dis"]
    sentences = []
    for k in range(40):
        n = rng.randrange(1, 12)
        spans = random_entities(rng, n, types)
        sentences.append((spans, [f"w{k}.{i}" for i in range(n)], encode_entities(spans, n, scheme, bare)))
    sep = "\t" if bare else " "
    path = tmp_path / "set.conll"
    path.write_text("\n\n".join("\n".join(sep.join([w, "NN", t]) for w, t in zip(words, tags))
                                for _, words, tags in sentences) + "\n")
    info = {}
    read = data.read_conll(path, entity_type="Gene", info=info)
    assert [w for w, _ in read] == [words for _, words, _ in sentences]
    for (words, tags), (spans, _, _) in zip(read, sentences):
        assert {t[:2] for t in tags} <= {"B-", "I-", "O"}
        assert get_entities(tags) == spans
    assert info["scheme"] == scheme and info["bare"] == bare and info["columns"] == "3"
    assert info["separator"] == ("TAB" if bare else "space")


@pytest.mark.parametrize("text, rows, header", [
    ("A @GENE$ x\t1\nB @GENE$ y\t0\n", [("A @GENE$ x", "1"), ("B @GENE$ y", "0")], None),     # BioBERT train/dev
    ("index\tsentence\tlabel\n0\tA x\t1\n", [("A x", "1")], ["index", "sentence", "label"]),  # BioBERT test, BLUE
    ("\ufefflabel\ttext\r\nfalse\tA x\r\nCPR:3\tB y\r\n\r\n", [("A x", "false"), ("B y", "CPR:3")],
     ["label", "text"]),                                                                    # GLUE-style, BOM, CRLF
    ("id\tsentence\tlabel\n7\tA x\tFalse\n", [("A x", "False")], ["id", "sentence", "label"]),
])
def test_tsv_layouts(tmp_path, text, rows, header):
    path = tmp_path / "set.tsv"
    path.write_bytes(text.encode())
    info = {}
    assert data.read_blue_tsv(path, info=info) == rows
    assert info["header"] == header


def squad_file(path, qas, context="Aspirin inhibits COX-1 in platelets."):
    path.write_text(json.dumps({"data": [{"paragraphs": [{"context": context, "qas": qas}]}]}))
    return path


@pytest.mark.parametrize("ids, questions, expected, rule", [
    (["x_000", "x_001", "y_000"], ["Q1?", "Q1?", "Q2?"], ["x", "x", "y"], "ids '<question>_<n>'"),   # BioBERT
    (["q_1", "q_2", "q_3"], ["Q1?", "Q2?", "Q2?"], ["q_1", "q_2", "q_2"], "question text"),          # not merged
    (["a", "b", "c"], ["Q1?", "Q2?", "Q1?"], ["a", "b", "a"], "question text"),
])
def test_squad_question_ids(tmp_path, ids, questions, expected, rule):
    qas = [{"id": i, "question": q, "answers": []} for i, q in zip(ids, questions)]
    info = {}
    pairs = data.read_squad(squad_file(tmp_path / "q.json", qas), info=info)
    assert [p["question_id"] for p in pairs] == expected
    assert info["question_ids"] == rule and info["questions"] == len(set(expected))


def test_squad_misaligned_answers_are_skipped_and_counted(tmp_path):
    qas = [{"id": "a", "question": "What?", "answers": [{"text": "COX-1", "answer_start": 17},
                                                       {"text": "COX-1", "answer_start": 3}]},
           {"id": "b", "question": "Who?", "answers": [{"text": "Aspirin", "answer_start": 1}]}]
    info = {}
    a, b = data.read_squad(squad_file(tmp_path / "m.json", qas), info=info)
    assert a["answers"] == [{"text": "COX-1", "answer_start": 17}] and b["answers"] == []
    assert a["texts"] == ["COX-1", "COX-1"] and b["texts"] == ["Aspirin"] and info["misaligned"] == 2


def test_json_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [\n{"paragraphs": [}\n]}')
    with pytest.raises(DataError, match="bad.json:2: invalid JSON"):
        data.read_squad(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"data": [{"paragraphs": [{"context": "abc", "qas": [
        {"id": "q_1", "question": "?", "answers": [{"text": "bc"}]}]}]}]}))
    with pytest.raises(DataError, match="wrong.json: not SQuAD v1.1 JSON .*answer_start.*accepted"):
        data.read_squad(wrong)
    golden = tmp_path / "golden.json"
    golden.write_text(json.dumps({"questions": [{"id": "q", "type": "factoid", "exact_answer": []}]}))
    with pytest.raises(DataError, match="exact_answer must be"):
        data.read_bioasq_golden(golden)
    with pytest.raises(DataError, match="missing.json: file not found"):
        data.read_squad(tmp_path / "missing.json")


# ---------------------------------------------------------------------------------------------
# 5. Downloads, against a local HTTP server on 127.0.0.1 (Range requests, dropped connections)
# ---------------------------------------------------------------------------------------------
class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP Range support; a path in `cut_once` loses its connection half-way once."""
    cut_once, requests = set(), []

    def log_message(self, *args):
        pass

    def do_GET(self):
        RangeHandler.requests.append((self.path, self.headers.get("Range")))
        path = Path(self.directory) / self.path.lstrip("/")
        if not path.is_file():
            return self.send_error(404)
        body, start = path.read_bytes(), 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            if start >= len(body):
                return self.send_error(416)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if self.path in self.cut_once:
            self.cut_once.discard(self.path)
            body = body[:start + (len(body) - start) // 2]
        self.wfile.write(body[start:])


@pytest.fixture()
def server(tmp_path):
    from functools import partial
    root = tmp_path / "served"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    RangeHandler.requests.clear()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def serve_pubmed(root, data_dir, number, corrupt=False):
    name = f"pubmed26n{number:04d}.xml.gz"
    body = gzip.compress((data_dir / "pubmed/pubmed-29768149.xml").read_bytes(), mtime=0)
    (root / f"{name}.md5").write_text(f"MD5({name})= {hashlib.md5(body).hexdigest()}\n")
    (root / name).write_bytes(body[:100] + bytes([body[100] ^ 1]) + body[101:] if corrupt else body)
    return body


def test_pubmed_download_resumes_and_verifies(server, tmp_path, data_dir):
    root, url = server
    bodies = [serve_pubmed(root, data_dir, n) for n in (1, 2)]
    out = tmp_path / "out"
    out.mkdir()
    (out / "pubmed26n0001.xml.gz.part").write_bytes(bodies[0][:1000])   # left by a killed run
    RangeHandler.cut_once.add("/pubmed26n0002.xml.gz")                   # connection drops mid-file
    data.main(data.parse_args(["pubmed", "--files", "1-2", "--out-dir", str(out), "--base-url", url]))
    assert [(out / f"pubmed26n000{n}.xml.gz").read_bytes() for n in (1, 2)] == bodies
    assert ("/pubmed26n0001.xml.gz", "bytes=1000-") in RangeHandler.requests
    assert ("/pubmed26n0002.xml.gz", f"bytes={len(bodies[1]) // 2}-") in RangeHandler.requests
    assert not list(out.glob("*.part"))
    assert len(list(data.pubmed_xml_to_documents(out / "pubmed26n0002.xml.gz"))) == 1


def test_pubmed_download_rejects_bad_checksum_and_bad_input(server, tmp_path, data_dir):
    root, url = server
    serve_pubmed(root, data_dir, 3, corrupt=True)
    with pytest.raises(DataError, match="pubmed26n0003.xml.gz: md5 checksum mismatch"):
        data.download_pubmed([3], tmp_path / "out", base_url=url, backoff=0)
    assert not list((tmp_path / "out").iterdir())   # nothing kept, not even the .part
    (root / "pubmed26n0004.xml.gz.md5").write_text("garbage")
    with pytest.raises(DataError, match="expected 'MD5"):
        data.download_pubmed([4], tmp_path / "out", base_url=url, backoff=0)
    with pytest.raises(DataError, match="HTTP 404"):
        data.download_pubmed([5], tmp_path / "out", base_url=url, backoff=0)
    assert data.parse_file_numbers("1-3,7") == [1, 2, 3, 7]
    with pytest.raises(DataError, match="bad file numbers"):
        data.parse_file_numbers("3-1")


def serve_benchmarks(root, data_dir):
    """Lay the shared data out as raw.githubusercontent.com does: owner/repo/commit/path."""
    for task, files in data.BENCHMARKS.items():
        for name, repo, path, _ in files:
            if repo:
                (root / data.REPOS[repo] / path).parent.mkdir(parents=True, exist_ok=True)
                (root / data.REPOS[repo] / path).symlink_to(data_dir / task / name)


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_benchmark_download_over_http_and_from_mirror(server, tmp_path, data_dir):
    root, url = server
    serve_benchmarks(root, data_dir)
    out = tmp_path / "data"
    with pytest.raises(SystemExit, match="ddi/train.tsv: no public copy"):   # everything else arrives
        data.main(data.parse_args(["download", "all", "--out-dir", str(out), "--base-url", url,
                                   "--accept-bioasq-terms"]))
    fetched = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert len(fetched) == sum(len(f) for f in data.BENCHMARKS.values()) - 1
    assert all(sha256(out / p) == sha256(data_dir / p) for p in fetched)
    mirrored = tmp_path / "mirrored"
    data.main(data.parse_args(["download", "ddi", "--out-dir", str(mirrored), "--mirror", str(data_dir)]))
    assert data.read_blue_tsv(mirrored / "ddi/train.tsv") == data.read_blue_tsv(data_dir / "ddi/train.tsv")
    assert data.download_benchmark("bioasq", tmp_path / "nobioasq")[0].startswith("bioasq: BioASQ data needs registration")
    data.download_benchmark("bioasq", tmp_path / "registered", bioasq_dir=data_dir / "bioasq")
    assert sha256(tmp_path / "registered/bioasq/train.json") == sha256(data_dir / "bioasq/train.json")


def test_benchmark_download_rejects_corrupted_files(server, tmp_path, data_dir):
    root, url = server
    serve_benchmarks(root, data_dir)
    served = root / data.REPOS["electramed"] / "data/NER/bc5cdr/dev.txt"
    served.unlink()
    served.write_bytes((data_dir / "bc5cdr/dev.txt").read_bytes().replace(b"I-Entity", b"O", 1))
    with pytest.raises(DataError, match="dev.txt: sha256 checksum mismatch"):
        data.download_benchmark("bc5cdr", tmp_path / "out", base_url=url, backoff=0)
    assert not (tmp_path / "out/bc5cdr/dev.txt").exists()
    mirror = tmp_path / "mirror"
    shutil.copytree(data_dir / "ncbi_disease", mirror / "ncbi_disease")
    with open(mirror / "ncbi_disease/test.txt", "ab") as f:
        f.write(b"extra O\n")
    with pytest.raises(DataError, match="test.txt: sha256 checksum mismatch"):
        data.download_benchmark("ncbi_disease", tmp_path / "out", mirror=mirror)


# ---------------------------------------------------------------------------------------------
# 6. The embedded sample (sample_data/SOURCE.md): the default when no data directory is found
# ---------------------------------------------------------------------------------------------
SAMPLE = data.SAMPLE_DATA_DIR


@pytest.fixture()
def bare_machine(tmp_path, monkeypatch):
    """A clone alone: no $ELECTRAMED_DATA (conftest exports it) and no data/ in the working directory."""
    monkeypatch.delenv("ELECTRAMED_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_default_data_dir_order(bare_machine, monkeypatch, capsys):
    assert data.default_data_dir() == str(SAMPLE)                          # neither: the sample
    assert data.parse_args(["download", "all"]).out_dir == "data"          # downloads never write into it
    (bare_machine / "data").mkdir()
    assert data.default_data_dir() == "data"                               # data/ present
    monkeypatch.setenv("ELECTRAMED_DATA", str(bare_machine / "elsewhere"))
    assert data.default_data_dir() == str(bare_machine / "elsewhere")      # the env var first
    assert not data.note_if_sample("data", bare_machine / "elsewhere", None)
    assert capsys.readouterr().out == ""
    assert data.note_if_sample("data", SAMPLE / "vocab" / "scivocab_uncased.txt")
    assert capsys.readouterr().out == data.SAMPLE_NOTE + "\n"


def test_sample_is_the_start_of_the_real_corpus_and_scivocab(data_dir):
    docs = list(data.read_documents([SAMPLE / "pubmed" / "corpus.txt"]))
    assert len(docs) == 693 and sum(map(len, docs)) == 6640
    assert (SAMPLE / "pubmed" / "corpus.txt").stat().st_size + (SAMPLE / "vocab" / "scivocab_uncased.txt").stat().st_size < 1.2e6
    real = data_dir / "pubmed" / "corpus.txt"
    if real.is_file():
        first = [d for _, d in zip(range(693), data.read_documents([real]))]
        assert docs == first
        assert real.read_text(encoding="utf-8").splitlines()[7332] == ""  # line 7,333 ends document 693
    assert (SAMPLE / "vocab" / "scivocab_uncased.txt").read_bytes() == (data_dir / "vocab" / "scivocab_uncased.txt").read_bytes()


def test_pretraining_runs_on_the_sample_alone(bare_machine):
    import train_pretrain as tp
    args = tp.parse_args(["--size", "tiny", "--steps", "5", "--out-dir", str(bare_machine / "run"),
                          "--data-workers", "1"])
    assert args.data_dir == str(SAMPLE)
    tp.main(args)
    assert (bare_machine / "run" / "final" / "discriminator").is_dir()
    assert not (bare_machine / "data").exists()


def test_finetuning_on_the_sample_names_the_missing_file(bare_machine):
    import finetune
    with pytest.raises(DataError, match=r"sample_data/ncbi_disease/train.txt: missing"):
        finetune.main(finetune.parse_args(["--task", "ncbi_disease", "--size", "tiny",
                                           "--out-dir", str(bare_machine / "ft")]))


# ---------------------------------------------------------------------------------------------
# 7. Run records: the git commit a run's code comes from
# ---------------------------------------------------------------------------------------------
def test_git_state_names_the_commit_and_nothing_outside_a_checkout(tmp_path):
    import subprocess
    import sys
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(data.__file__).parent, capture_output=True, text=True)
    state = data.git_state()
    assert state["git_commit"] == (head.stdout.strip() or None)
    assert isinstance(state["git_dirty"], bool) == (state["git_commit"] is not None)
    for name in ("data.py", "tokenizer.py"):                     # a copy outside any git checkout
        shutil.copy(Path(data.__file__).parent / name, tmp_path / name)
    code = "import data, json; print(json.dumps(data.git_state()))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"git_commit": None, "git_dirty": None}


# ---------------------------------------------------------------------------------------------
# 8. read_task: a fine-tuning data set found, read, given a dev split and described in one line
# ---------------------------------------------------------------------------------------------
def write_set(folder, files):
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def conll(n, entity="B-Drug"):
    return "\n\n".join(f"aspirin {entity}\nhelps O\nword{i} O" for i in range(n)) + "\n"


@pytest.mark.parametrize("kind, name, text, where", [
    ("ner", "train.txt", "a O\nb Q-x\n", "train.txt:2: bad tag 'Q-x' \\(accepted: "),
    ("re", "train.tsv", "s\t0\nt\t1\nu\t1\textra\n", "train.tsv:3: expected 2 TAB-separated columns, got 3 \\(accepted: "),
    ("qa", "train.json", '{"data": [\n{"paragraphs": [}\n]}', "train.json:2: invalid JSON"),
])
def test_task_malformed_files_name_file_line_and_formats(tmp_path, kind, name, text, where):
    with pytest.raises(DataError, match=where):
        data.read_task(kind, write_set(tmp_path / "set", {name: text}))


def test_task_split_files_missing_empty_or_twice_are_errors_naming_them(tmp_path):
    two = write_set(tmp_path / "two", {name: "a O\n" for name in ("train.txt", "dev.txt", "devel.tsv", "test.txt")})
    with pytest.raises(DataError, match="2 files for the dev split \\(dev.txt, devel.tsv\\)"):
        data.read_task("ner", two)
    with pytest.raises(DataError, match="dev.txt: no sentences"):
        data.read_task("ner", write_set(tmp_path / "empty", {"train.txt": conll(5), "dev.txt": "\n\n", "test.txt": conll(2)}))
    missing = write_set(tmp_path / "missing", {"train.txt": conll(5), "dev.txt": conll(2)})
    with pytest.raises(DataError, match="test.txt: missing test split for task kind 'ner' \\(looked for test.txt, "
                                        "test.tsv, test.conll\\)"):
        data.read_task("ner", missing)


def test_task_without_dev_file_holds_out_a_seeded_share_of_train(tmp_path):
    """No dev file: 10% of train (at least 1) is dev, drawn with seed 0, both kept in file order; a set
    too small to keep a training example is one error naming the file and its counts."""
    folder = write_set(tmp_path / "set", {"train.conll": conll(20), "test.conll": conll(3)})
    splits, about = data.read_task("ner", folder)
    assert about == ("NER, CoNLL 2 columns (space separated), BIO tags, 2 labels; no dev file: dev is 2 of train's "
                     "20 examples (10%, seed 0)")
    everything = data.read_conll(folder / "train.conll")
    assert len(splits["dev"]) == 2 and sorted(splits["train"] + splits["dev"]) == sorted(everything)
    assert splits["train"] == [s for s in everything if s not in splits["dev"]]
    assert data.read_task("ner", folder)[0]["dev"] == splits["dev"]                       # the same draw
    assert splits["files"] == {"train": folder / "train.conll", "test": folder / "test.conll"}
    (folder / "train.conll").write_text(conll(1))
    with pytest.raises(DataError, match="train.conll: too few examples to train on \\(1, of which 1 held out as dev"):
        data.read_task("ner", folder)


def test_task_re_negative_class_guessed_or_given_in_any_case(tmp_path):
    rows = lambda labels: "".join(f"@GENE$ and @CHEMICAL$ {i}\t{label}\n" for i, label in enumerate(labels))
    folder = write_set(tmp_path / "set", {"train.tsv": rows(["none", "rel:a", "none", "rel:b"]),
                                          "dev.tsv": rows(["NONE", "rel:a"]), "test.tsv": rows(["REL:B", "none"])})
    splits, about = data.read_task("re", folder)
    assert splits["negative"] == "none" and about == "RE, BioBERT layout (no header), 3 classes, negative: none; dev file"
    assert [label for _, label in splits["dev"] + splits["test"]] == ["none", "rel:a", "rel:b", "none"]   # train's spelling
    assert data.read_task("re", folder, negative="NoNe")[0]["negative"] == "none"
    with pytest.raises(DataError, match="train.tsv: negative label 'other' not among the train labels"):
        data.read_task("re", folder, negative="other")
    (folder / "train.tsv").write_text(rows(["false", "none", "rel:a"]))
    with pytest.raises(DataError, match="train.tsv: cannot tell the negative class among .*--negative-label"):
        data.read_task("re", folder)


def test_task_qa_layouts_squad_or_bioasq(tmp_path):
    """train/dev/test.json is SQuAD's layout; test-*.json with golden-*.json is BioASQ's, dev drawn from
    train by question and every test batch keeping its golden factoid questions."""
    def squad(n, prefix):
        qas = [{"id": f"{prefix}{i}_000", "question": f"q{i}?", "answers": [{"text": "egfr", "answer_start": 0}]}
               for i in range(n)]
        return json.dumps({"data": [{"paragraphs": [{"context": "egfr binds", "qas": qas}]}]})
    folder = write_set(tmp_path / "squad", {"train.json": squad(10, "t"), "dev.json": squad(2, "d"),
                                            "test.json": squad(3, "s")})
    splits, about = data.read_task("qa", folder)
    assert splits["layout"] == "squad" and len(splits["test"]) == 3 and about.endswith("3 test questions; dev file")
    golden = {"questions": [{"id": "s1", "type": "factoid", "exact_answer": [["egfr"]]}]}
    folder = write_set(tmp_path / "bioasq", {"train.json": squad(10, "t"), "test-7b-1.json": squad(3, "s"),
                                             "golden-7b-1.json": json.dumps(golden)})
    splits, about = data.read_task("qa", folder)
    assert splits["layout"] == "bioasq" and set(splits["test"]) == {"7b-1"}
    assert splits["test"]["7b-1"]["golden"] == {"s1": [["egfr"]]} and len(splits["dev"]["dev"]["golden"]) == 1
    assert "dev: 1 of them (10%, seed 0)" in about and "2 test questions not in golden-*.json" in about
