"""Tests of finetune.py: features, heads, layer-wise learning rates, BioASQ pooling, end-to-end runs.

References: transformers' BertTokenizer (Rust backend) (word -> first sub-token alignment), docs/paper.md §4
(the layer-wise decay convention, the n-best pooling rules), eval.py (the scorers and the summary reader),
and the real benchmark files in the data directory. Every end-to-end run trains the tiny model from
random initialisation on a small subset of the real data and must beat the majority / empty-answer
baseline computed from the same data.

    python -m pytest tests/test_finetune.py            # default, about a minute on 2 cores
    python -m pytest tests/test_finetune.py -m slow    # the other two named tasks end to end
"""
import json
import math
import random

import pytest
import torch
from transformers import BertTokenizer

import data
import electramed
import eval as scoring
import finetune
from tokenizer import Tokenizer, basic_tokenize

TINY = ["--init", "random", "--size", "tiny", "--batch-size", "16", "--seeds", "1"]


@pytest.fixture(scope="module")
def tokenizer(scivocab):
    return Tokenizer.from_vocab_file(scivocab)


def run(tmp_path, *argv):
    """main() on argv + the tiny model; returns (summary, metrics of the one seed, run dir)."""
    out = tmp_path / "run"
    summary = finetune.main(finetune.parse_args([*argv, *TINY, "--out-dir", str(out)]))
    return summary, json.loads((out / "seed_1" / "metrics.json").read_text()), out


def write_conll(path, sentences):
    path.write_text("\n\n".join("\n".join(f"{w} {t}" for w, t in zip(*s)) for s in sentences) + "\n")


def write_tsv(path, rows):
    path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{label}\n" for s, label in rows))


def write_squad(path, pairs):
    paragraphs = [{"context": p["context"], "qas": [{"id": p["id"], "question": p["question"],
                                                     "answers": p["answers"]}]} for p in pairs]
    path.write_text(json.dumps({"version": "test", "data": [{"title": "t", "paragraphs": paragraphs}]}))


# ---------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------

def test_tagging_features_label_first_subtoken_like_transformers(data_dir, tokenizer, scivocab):
    """Input ids and the position of each word's first piece equal BertTokenizer (Rust backend)'s word_ids()."""
    hf = BertTokenizer(str(scivocab), do_lower_case=True)
    sentences = data.read_conll(data_dir / "ncbi_disease" / "dev.txt")[:150]
    sentences += data.read_conll(data_dir / "bc5cdr" / "dev.txt")[:150]
    labels = {t: i for i, t in enumerate(sorted({t for _, tags in sentences for t in tags}))}
    features = finetune.tagging_features(sentences, tokenizer, labels, max_len=512)
    assert len(features) == len(sentences)
    for f, (words, tags) in zip(features, sentences):
        enc = hf(words, is_split_into_words=True)
        word_ids = enc.word_ids()
        first = [word_ids.index(w) if w in word_ids else -1 for w in range(len(words))]
        assert f["input_ids"] == enc["input_ids"], words
        assert f["positions"] == first, words
        labelled = [i for i, label in enumerate(f["labels"]) if label != finetune.IGNORE]
        assert labelled == [p for p in first if p >= 0]
        assert [f["labels"][p] for p in labelled] == [labels[t] for t, p in zip(tags, first) if p >= 0]


def test_long_sentences_are_chunked_at_word_boundaries(data_dir, tokenizer):
    """With a short max length every word still gets exactly one labelled piece, in order."""
    sentences = data.read_conll(data_dir / "bc5cdr" / "train.txt")[:200]
    features = finetune.tagging_features(sentences, tokenizer, {"O": 0, "I-Entity": 1, "B-Entity": 2}, max_len=16)
    assert len(features) > len(sentences)                       # some sentences needed several chunks
    seen = {}
    for f in features:
        assert len(f["input_ids"]) <= 16
        seen.setdefault(f["example"], []).extend(f["words"])
    assert all(seen[i] == list(range(len(words))) for i, (words, _) in enumerate(sentences))


def test_qa_windows_cover_the_snippet_and_locate_answers(data_dir, tokenizer):
    """Windows start `stride` apart and cover every piece; each piece has exactly one max-context
    window; the labelled span of a training pair covers its gold answer text."""
    pairs = data.read_squad(data_dir / "bioasq" / "train.json")[:300]
    features = finetune.qa_features(pairs, tokenizer, max_len=64, stride=16, max_query_len=24)
    by_example = {}
    for f in features:
        by_example.setdefault(f["example"], []).append(f)
    exact = 0
    for i, ex in enumerate(pairs):
        fs = by_example[i]
        n = len(tokenizer.tokenize_with_offsets(ex["context"])[0])
        assert [f["first"] for f in fs] == list(range(0, 16 * len(fs), 16))
        assert fs[-1]["first"] + len(fs[-1]["offsets"]) == n
        counts = [0] * n
        for f in fs:
            for j, best in enumerate(f["max_context"]):
                counts[f["first"] + j] += best
        assert counts == [1] * n
        labelled = [f for f in fs if f["start"] > 0]
        assert labelled, ex["id"]
        f = labelled[0]
        i0, i1 = f["start"] - f["shift"] - f["first"], f["end"] - f["shift"] - f["first"]
        text = ex["context"][f["offsets"][i0][0]:f["offsets"][i1][1]]
        assert ex["answers"][0]["text"] in text
        exact += text == ex["answers"][0]["text"]
    assert exact >= 0.9 * len(pairs)                              # answers rarely split a word piece


# ---------------------------------------------------------------------------------------------
# Layer-wise learning rates and the schedule (docs/paper.md §4)
# ---------------------------------------------------------------------------------------------

def test_layerwise_groups_follow_the_paper_convention(tokenizer):
    """head lr, top layer lr*0.8, layer i lr*0.8**(L-i), embeddings lr*0.8**(L+1); no decay on 1-D."""
    config = electramed.model_config("tiny", len(tokenizer), num_hidden_layers=3)
    model = finetune.FineTuner(electramed.Encoder(config), "re", 4)
    groups = finetune.layerwise_param_groups(model, lr=1e-3, decay=0.8, weight_decay=0.01)
    lr_of = {name: g["lr"] for g in groups for name in g["names"]}
    wd_of = {name: g["weight_decay"] for g in groups for name in g["names"]}
    params = dict(model.named_parameters())
    assert sorted(lr_of) == sorted(params)                        # every parameter exactly once
    for name, p in params.items():
        if name.startswith("head."):
            expected = 1e-3
        elif name.startswith("encoder.layers."):
            expected = 1e-3 * 0.8 ** (3 - int(name.split(".")[2]))
        else:
            expected = 1e-3 * 0.8 ** 4                             # embeddings and their projection
        assert math.isclose(lr_of[name], expected), name
        assert wd_of[name] == (0.0 if p.ndim == 1 else 0.01), name
    assert math.isclose(max(lr_of[n] for n in params if n.startswith("encoder.layers.2.")), 1e-3 * 0.8)


def test_schedule_warms_up_then_decays_linearly():
    total, warmup = 100, 10
    f = [finetune.lr_factor(s, total, warmup) for s in range(total + 1)]
    assert f[0] == 0 and f[total] == 0
    assert all(math.isclose(f[s], (s / warmup) * (1 - s / total)) for s in range(warmup + 1))
    assert all(math.isclose(f[s], 1 - s / total) for s in range(warmup, total + 1))
    assert max(f) == f[warmup]


# ---------------------------------------------------------------------------------------------
# BioASQ n-best and pooling (docs/paper.md §4)
# ---------------------------------------------------------------------------------------------

def test_snippet_nbest_reads_spans_back_from_characters(data_dir, tokenizer):
    """A span favoured by the logits comes back as the exact context substring; spans in the
    question, reversed or longer than max_answer_len are never proposed."""
    ex = data.read_squad(data_dir / "bioasq" / "test-7b-1.json")[0]
    (f,) = finetune.qa_features([ex], tokenizer, max_len=384, stride=128, max_query_len=64)[:1]
    logits = torch.zeros(len(f["input_ids"]), 2)
    s = f["shift"] + f["first"] + 5                               # the 6th context piece
    logits[s, 0], logits[s + 2, 1] = 10.0, 10.0
    logits[1, 0], logits[2, 1] = 50.0, 50.0                       # a span inside the question
    logits[s + 40, 1] = 9.0                                        # a 41-piece span: too long
    answers = finetune.snippet_nbest(ex, [f], [logits], n_best=20, max_answer_len=30)
    text, p = answers[0]
    assert text == ex["context"][f["offsets"][5][0]:f["offsets"][7][1]]
    assert 0 < p <= 1 and math.isclose(sum(q for _, q in answers), 1.0, rel_tol=1e-5)
    assert len(answers) <= 20
    assert ex["context"][f["offsets"][5][0]:f["offsets"][45][1]] not in {t for t, _ in answers}


def test_aggregate_pools_snippets_of_one_question():
    """Worked by hand: 'egfr' 0.5 + 'EGFR' 0.3 = 0.8 beats 'kras' 0.6; empty and >100-char answers go."""
    long = "x" * 101
    answers = {("q1", 0): [("EGFR", 0.3), ("kras", 0.6), ("", 0.9), (long, 0.95)],
               ("q1", 1): [("egfr", 0.5), ("BRAF", 0.1)],
               ("q2", 2): [(f"a{i}", 0.1 * i) for i in range(1, 8)]}
    ranked = finetune.aggregate_bioasq_answers(answers, top_k=5, max_chars=100)
    assert ranked["q1"] == ["egfr", "kras", "BRAF"]               # spelling of the most probable copy
    assert ranked["q2"] == ["a7", "a6", "a5", "a4", "a3"]


# ---------------------------------------------------------------------------------------------
# End to end: each task kind learns (tiny model, random init, real data subsets)
# ---------------------------------------------------------------------------------------------

def majority_f1(task_dir, split, kind, negative=None):
    """The majority baseline on a split: all-O tags (NER) or the most frequent label (RE)."""
    if kind == "ner":
        gold = [tags for _, tags in data.read_conll(task_dir / split)]
        return scoring.entity_prf(gold, [["O"] * len(t) for t in gold])["f1"]
    gold = [label for _, label in data.read_blue_tsv(task_dir / split)]
    majority = max(set(gold), key=gold.count)
    return scoring.micro_prf(gold, [majority] * len(gold), negative)["f1"]


def test_ner_end_to_end_learns(tmp_path, data_dir):
    summary, metrics, out = run(tmp_path, "--task", "ncbi_disease", "--data-dir", str(data_dir), "--epochs", "8",
                                "--max-train-examples", "400", "--max-eval-examples", "200", "--lr", "3e-3")
    baseline = majority_f1(data_dir / "ncbi_disease", "dev.txt", "ner")
    assert metrics["dev"]["f1"] >= baseline + 0.15, (metrics["dev"], baseline)
    assert scoring.score_ner(None, out / "seed_1" / "test.conll")["f1"] == pytest.approx(metrics["test"]["f1"])
    assert "ncbi_disease" in scoring.results_table([out])
    assert summary["metric"] == "entity_f1" and summary["seeds"] == {"1": metrics["test"]["f1"]}


def test_re_end_to_end_learns(tmp_path, data_dir):
    summary, metrics, out = run(tmp_path, "--task", "chemprot", "--data-dir", str(data_dir), "--epochs", "6",
                                "--max-train-examples", "800", "--max-eval-examples", "300", "--lr", "3e-3",
                                "--max-seq-len", "96")
    baseline = majority_f1(data_dir / "chemprot", "dev.tsv", "re", "False")
    assert metrics["dev"]["f1"] >= baseline + 0.1, (metrics["dev"], baseline)
    scored = scoring.score_re(None, out / "seed_1" / "test.tsv", "False")
    assert scored["f1"] == pytest.approx(metrics["test"]["f1"])
    assert summary["metric"] == "micro_f1"


def test_qa_end_to_end_learns_and_writes_bioasq_json(tmp_path, data_dir):
    summary, metrics, out = run(tmp_path, "--task", "bioasq", "--data-dir", str(data_dir), "--epochs", "2",
                                "--max-train-examples", "600", "--max-eval-examples", "30", "--lr", "2e-3")
    empty = scoring.bioasq_factoid_scores({}, {"q": [["x"]]})    # the empty-answer baseline: 0
    assert metrics["dev"]["mrr"] >= empty["mrr"] + 0.05, metrics["dev"]
    assert set(metrics["test"]["batches"]) == {f"7b-{i}" for i in range(1, 6)}
    for name, scores in metrics["test"]["batches"].items():
        golden = scoring.read_bioasq_json(data_dir / "bioasq" / f"golden-{name}.json")
        submitted = scoring.read_bioasq_submission(out / "seed_1" / f"bioasq_{name}.json")
        assert scores["n"] == min(30, len(golden)) and all(len(a) <= 5 for a in submitted.values())
        assert scoring.bioasq_factoid_scores(submitted, {q: golden[q] for q in submitted}) == scores
    assert summary["metric"] == "strict_accuracy"


@pytest.mark.slow
@pytest.mark.parametrize("task, kind", [("bc5cdr", "ner"), ("ddi", "re")])
def test_other_named_tasks_learn(tmp_path, data_dir, task, kind):
    summary, metrics, _ = run(tmp_path, "--task", task, "--data-dir", str(data_dir), "--epochs", "8",
                              "--max-train-examples", "1000", "--max-eval-examples", "400", "--lr", "3e-3",
                              "--max-seq-len", "96")
    negative = finetune.TASKS[task].negative
    baseline = majority_f1(data_dir / task, "dev" + data.EXTENSIONS[kind][0], kind, negative)
    assert metrics["dev"]["f1"] >= baseline + 0.1, (metrics["dev"], baseline)


# ---------------------------------------------------------------------------------------------
# The generic path on data sets the task table does not name
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def renamed_ner(tmp_path, data_dir):
    """A BC5CDR subset whose entity type is renamed 'Chem', in a folder of its own."""
    folder = tmp_path / "my_ner"
    folder.mkdir()
    for split, n in (("train", 120), ("dev", 40), ("test", 40)):
        sentences = data.read_conll(data_dir / "bc5cdr" / f"{split}.txt")[:n]
        write_conll(folder / f"{split}.txt", [(w, [t.replace("Entity", "Chem") for t in tags]) for w, tags in sentences])
    return folder


def test_generic_ner_reads_labels_from_data(tmp_path, renamed_ner):
    summary, metrics, _ = run(tmp_path, "--task", "ner", "--data-dir", str(renamed_ner), "--epochs", "1")
    assert summary["labels"] == ["B-Chem", "I-Chem", "O"] and summary["task"] == "ner"
    assert 0.0 <= metrics["test"]["f1"] <= 1.0


def test_generic_re_guesses_the_negative_label(tmp_path, data_dir):
    folder = tmp_path / "my_re"
    folder.mkdir()
    rename = lambda label: "none" if label == "DDI-false" else label.replace("DDI-", "rel:")
    for split in ("train", "dev", "test"):
        rows = data.read_blue_tsv(data_dir / "ddi" / f"{split}.tsv")
        write_tsv(folder / f"{split}.tsv", [(s, rename(lab)) for s, lab in random.Random(0).sample(rows, 80)])
    summary, metrics, out = run(tmp_path, "--task", "re", "--data-dir", str(folder), "--epochs", "1",
                                "--max-seq-len", "64")
    assert "none" in summary["labels"] and all(x == "none" or x.startswith("rel:") for x in summary["labels"])
    assert scoring.score_re(None, out / "seed_1" / "test.tsv", "none")["f1"] == pytest.approx(metrics["test"]["f1"])


def make_generic_qa(tmp_path, data_dir, drop_snippets_of=0):
    """train.json subset + one test batch 'x' (the first 6 golden questions of 7b-2), renamed."""
    folder = tmp_path / "my_qa"
    folder.mkdir()
    write_squad(folder / "train.json", data.read_squad(data_dir / "bioasq" / "train.json")[:60])
    golden = data.read_bioasq_golden(data_dir / "bioasq" / "golden-7b-2.json")
    keep = sorted(golden)[:6]
    dropped = set(keep[:drop_snippets_of])
    pairs = [p for p in data.read_squad(data_dir / "bioasq" / "test-7b-2.json")
             if p["question_id"] in set(keep) - dropped]
    write_squad(folder / "test-x.json", pairs)
    questions = [{"id": q, "type": "factoid", "exact_answer": golden[q]} for q in keep]
    (folder / "golden-x.json").write_text(json.dumps({"questions": questions}))
    return folder, keep, dropped


def test_generic_qa_and_a_question_without_snippets(tmp_path, data_dir):
    """Documented behaviour: a golden question with no snippet is submitted with no answer and
    scores 0, staying in the denominator."""
    folder, keep, dropped = make_generic_qa(tmp_path, data_dir, drop_snippets_of=1)
    summary, metrics, out = run(tmp_path, "--task", "qa", "--data-dir", str(folder), "--epochs", "1",
                                "--max-seq-len", "128")
    submitted = scoring.read_bioasq_submission(out / "seed_1" / "bioasq_x.json")
    assert sorted(submitted) == keep and all(submitted[q] == [] for q in dropped)
    assert metrics["test"]["batches"]["x"]["n"] == len(keep)
    assert summary["task"] == "qa" and summary["metric"] == "strict_accuracy"


# ---------------------------------------------------------------------------------------------
# The field's published formats, in files the tests write
# ---------------------------------------------------------------------------------------------
FILLER = "the patient was treated and showed no signs of this in our study after one week".split()
DRUGS, DISEASES = ["aspirin", "insulin", "heparin", "warfarin", "morphine"], ["asthma", "diabetes", "lung cancer"]


def synthetic_ner(rng, n, scheme="BIO", bare=False):
    """n sentences of filler words with drug and disease mentions, tagged in `scheme` (bare: no types)."""
    first, last, single = {"BIO": ("B", "I", "B"), "BILOU": ("B", "L", "U"), "IOBES": ("B", "E", "S")}[scheme]
    sentences = []
    for _ in range(n):
        words, tags = rng.sample(FILLER, 4), ["O"] * 4
        for _ in range(rng.randrange(1, 3)):
            type_, entity = rng.choice([("Drug", rng.choice(DRUGS)), ("Disease", rng.choice(DISEASES))])
            entity = entity.split()
            prefixes = [single] if len(entity) == 1 else [first, *["I"] * (len(entity) - 2), last]
            at = rng.randrange(len(words) + 1)
            words[at:at] = entity
            tags[at:at] = [p if bare else f"{p}-{type_}" for p in prefixes]
        sentences.append((words, tags))
    return sentences


@pytest.mark.parametrize("layout", ["biobert", "bilou_no_dev"])
def test_ner_layouts_end_to_end(tmp_path, capsys, layout):
    """BioBERT's NER layout (bare B/I/O tags, TAB, train/devel/test.tsv) with --entity-type, and BILOU
    tags in .conll files without a dev file: both beat the all-O baseline (F1 0) after one epoch;
    seqeval scores the written predictions the same."""
    rng, folder = random.Random(0), tmp_path / "set"
    folder.mkdir()
    scheme, bare, sep, names = (("BIO", True, "\t", ["train.tsv", "devel.tsv", "test.tsv"]) if layout == "biobert"
                                else ("BILOU", False, " ", ["train.conll", "test.conll"]))
    for name in names:
        sentences = synthetic_ner(rng, 500 if name.startswith("train") else 60, scheme, bare)
        (folder / name).write_text("\n\n".join("\n".join(f"{w}{sep}{t}" for w, t in zip(*s)) for s in sentences) + "\n")
    extra = ["--entity-type", "Chem"] if bare else []
    summary, metrics, out = run(tmp_path, "--task", "ner", "--data-dir", str(folder), "--epochs", "1", "--lr", "3e-3",
                                "--max-seq-len", "32", *extra)
    printed = capsys.readouterr().out
    assert summary["labels"] == (["B-Chem", "I-Chem", "O"] if bare else ["B-Disease", "B-Drug", "I-Disease", "O"])
    assert (f"NER, CoNLL 2 columns (TAB separated), BIO tags without types (type 'Chem')" in printed if bare else
            "BILOU -> BIO tags" in printed and "no dev file: dev is 50 of train's 500 examples (10%, seed 0)" in printed)
    assert metrics["test"]["f1"] > 0.0, metrics["test"]
    rows = [line.split() for line in (out / "seed_1" / "test.conll").read_text().split("\n\n")]
    gold = [[r.split()[1] for r in block.splitlines()] for block in (out / "seed_1" / "test.conll").read_text().split("\n\n")]
    pred = [[r.split()[2] for r in block.splitlines()] for block in (out / "seed_1" / "test.conll").read_text().split("\n\n")]
    assert len(rows) == 60 and seqeval_f1(gold, pred) == pytest.approx(metrics["test"]["f1"])


def seqeval_f1(gold, pred):
    from seqeval.metrics import f1_score
    return f1_score(gold, pred)


def synthetic_re(rng, n, positive, negative):
    """Rows: a chemical-gene pair whose verb decides the relation; (sentence, label)."""
    verbs = {positive[0]: "inhibits", positive[1]: "activates", negative: "was measured with"}
    rows = []
    for _ in range(n):
        label = rng.choice([*positive, negative, negative])
        filler = " ".join(rng.sample(FILLER, 3))
        rows.append((f"In {filler} @CHEMICAL$ {verbs[label]} @GENE$ .", label))
    return rows


RE_LAYOUTS = {  # task, positive labels, negative, header of train/dev, header of test, BOM and CRLF
    "biobert": ("re", ["1", "2"], "0", None, "index\tsentence\tlabel", False),
    "glue": ("re", ["rel:a", "rel:b"], "None", "label\ttext", "label\ttext", True),
    "blue_chemprot": ("chemprot", ["CPR:3", "CPR:4"], "false", "index\tsentence\tlabel", "index\tsentence\tlabel", True),
    "biobert_ddi": ("ddi", ["DDI-effect", "DDI-advise"], "DDI-false", None, "index\tsentence\tlabel", False),
}


@pytest.mark.parametrize("layout", RE_LAYOUTS)
def test_re_layouts_end_to_end(tmp_path, capsys, layout):
    """BioBERT's RE layout (train/dev without header, test with one), a GLUE-style header with BOM and
    CRLF, and --task chemprot / ddi on BLUE's and BioBERT's files: micro-F1 above the majority baseline."""
    task, positive, negative, header, test_header, bom_crlf = RE_LAYOUTS[layout]
    rng = random.Random(1)
    folder = tmp_path / "data" / (task if task != "re" else "set")
    folder.mkdir(parents=True)
    for split, n in (("train", 1200), ("dev", 60), ("test", 60)):
        rows = synthetic_re(rng, n, positive, negative)
        head = test_header if split == "test" else header
        if split == "test" and layout != "glue":        # test labels in another case: matched to train's
            rows = [(s, label.upper()) for s, label in rows]
        lines = ([head] if head else []) + [
            (f"{i}\t{s}\t{label}" if head and head.startswith("index") else
             f"{label}\t{s}" if head else f"{s}\t{label}") for i, (s, label) in enumerate(rows)]
        text = ("\ufeff" if bom_crlf else "") + ("\r\n" if bom_crlf else "\n").join(lines) + "\n"
        (folder / f"{split}.tsv").write_bytes(text.encode())
    summary, metrics, out = run(tmp_path, "--task", task, "--data-dir", str(folder if task == "re" else folder.parent),
                                "--epochs", "1", "--lr", "3e-3", "--max-seq-len", "32")
    neg = [x for x in summary["labels"] if x.lower() == negative.lower()][0]
    assert f"classes, negative: {neg}" in capsys.readouterr().out
    gold = [line.split("\t")[2] for line in (out / "seed_1" / "test.tsv").read_text().splitlines()[1:]]
    majority = max(set(gold), key=gold.count)
    assert metrics["test"]["f1"] > scoring.micro_prf(gold, [majority] * len(gold), neg)["f1"], metrics["test"]
    assert set(gold) <= set(summary["labels"])


def official_squad(predictions, references):
    """SQuAD v1.1's evaluate-v1.1.py, its definitions written out as the oracle (normalize_answer,
    f1_score, exact_match_score, metric_max_over_ground_truths), in percent as it prints."""
    import re, string
    from collections import Counter

    def normalize(s):
        s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
        return " ".join(re.sub(r"\b(a|an|the)\b", " ", s).split())

    def f1(prediction, truth):
        p, t = normalize(prediction).split(), normalize(truth).split()
        common = sum((Counter(p) & Counter(t)).values())
        return 0 if common == 0 else 2 * (common / len(p)) * (common / len(t)) / (common / len(p) + common / len(t))

    em = sum(max(normalize(predictions[q]) == normalize(t) for t in ts) for q, ts in references.items())
    f = sum(max(f1(predictions[q], t) for t in ts) for q, ts in references.items())
    return {"exact_match": 100 * em / len(references), "f1": 100 * f / len(references)}


def synthetic_squad(rng, n, prefix):
    """SQuAD v1.1 JSON: 'what does <drug> inhibit ?' answered by the gene after 'inhibits'; unique ids."""
    genes = ["egfr", "kras", "braf", "tp53", "cox-2", "jak2"]
    paragraphs = []
    for i in range(n):
        drug, gene = rng.choice(DRUGS), rng.choice(genes)
        context = f"{' '.join(rng.sample(FILLER, 5))} . {drug} inhibits {gene} in {' '.join(rng.sample(FILLER, 4))} ."
        answers = [{"text": gene, "answer_start": context.index(f"inhibits {gene}") + 9}]
        answers += [{"text": f"the {gene}", "answer_start": 0}] if i % 2 else []     # a second gold, misaligned
        answers = answers[1:] if i % 10 == 5 else answers                           # only a misaligned one
        paragraphs.append({"context": context, "qas": [{"id": f"{prefix}{i:04x}", "question": f"what does {drug} inhibit ?",
                                                        "answers": answers}]})
    return {"version": "1.1", "data": [{"title": prefix, "paragraphs": paragraphs}]}


def test_squad_end_to_end_is_scored_by_the_official_definitions(tmp_path, capsys):
    """train/dev/test.json in SQuAD v1.1: EM/F1 of the written predictions by the official script's
    definitions equal the run's; F1 beats the empty answer's 0; misaligned answers counted, not fatal."""
    rng, folder = random.Random(2), tmp_path / "squad"
    folder.mkdir()
    for split, n in (("train", 300), ("dev", 40), ("test", 40)):
        (folder / f"{split}.json").write_text(json.dumps(synthetic_squad(rng, n, split)))
    summary, metrics, out = run(tmp_path, "--task", "qa", "--data-dir", str(folder), "--epochs", "1", "--lr", "3e-3",
                                "--max-seq-len", "48")
    printed = capsys.readouterr().out
    assert "QA, SQuAD v1.1 JSON (train/dev/test.json), scored by SQuAD EM/F1, 40 test questions" in printed
    assert "; dev file" in printed
    assert "190 answers not at their answer_start (30 training pairs dropped" in printed   # 150 + 20 + 20
    predictions = json.loads((out / "seed_1" / "test_predictions.json").read_text())
    references = {p["id"]: p["texts"] for p in data.read_squad(folder / "test.json")}
    official = official_squad(predictions, references)
    assert official["f1"] == pytest.approx(100 * metrics["test"]["f1"])
    assert official["exact_match"] == pytest.approx(100 * metrics["test"]["exact_match"])
    assert metrics["test"]["f1"] > official_squad({q: "" for q in references}, references)["f1"] / 100
    assert summary["metric"] == "squad_f1" and summary["seeds"] == {"1": metrics["test"]["f1"]}


# ---------------------------------------------------------------------------------------------
# Bad input and checkpoints
# ---------------------------------------------------------------------------------------------

def test_label_unseen_in_train_is_kept_as_gold(tmp_path, renamed_ner, capsys):
    """Documented behaviour: a warning names the file; the gold label stays (a miss), never mapped to O."""
    sentences = data.read_conll(renamed_ner / "test.txt")
    write_conll(renamed_ner / "test.txt", [(w, [t.replace("Chem", "Novel") for t in tags]) for w, tags in sentences])
    _, metrics, out = run(tmp_path, "--task", "ner", "--data-dir", str(renamed_ner), "--epochs", "1")
    assert "test.txt: labels never seen in train: ['B-Novel', 'I-Novel']" in capsys.readouterr().err
    scored = scoring.score_ner(None, out / "seed_1" / "test.conll")
    assert scored["per_type"]["Novel"]["n_gold"] > 0 and scored["per_type"]["Novel"]["recall"] == 0.0
    assert metrics["test"]["recall"] == 0.0


def test_a_set_too_small_to_train_on_is_one_line_naming_the_file(tmp_path):
    """A CoNLL train.txt of one sentence and no dev file: dev takes it, nothing is left to train on. The
    command prints one line naming the file and its counts, and no traceback."""
    folder = tmp_path / "tiny_set"
    folder.mkdir()
    write_conll(folder / "train.txt", [(["aspirin", "helps"], ["B-Drug", "O"])])
    write_conll(folder / "test.txt", [(["heparin", "works"], ["B-Drug", "O"])])
    with pytest.raises(SystemExit) as stop:                       # what `python finetune.py ...` runs
        finetune.command_line(["--task", "ner", "--data-dir", str(folder), *TINY, "--out-dir", str(tmp_path / "run")])
    assert str(stop.value) == (f"error: {folder / 'train.txt'}: too few examples to train on (1, of which 1 held "
                               "out as dev since there is no dev file): add a dev file or more examples")


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "--epochs 0 --batch-size 16: both must be at least 1"),
    (["--lr", "fast"], "--lr 'fast': expected a number"),
    (["--max-train-examples", "0"], "train.txt: --max-train-examples 0 leaves nothing to train on"),
])
def test_bad_settings_are_refused_before_training(tmp_path, renamed_ner, argv, message):
    with pytest.raises(finetune.FinetuneError, match=message):
        run(tmp_path, "--task", "ner", "--data-dir", str(renamed_ner), *argv)


def test_a_qa_length_without_room_for_the_snippet_is_refused(tmp_path, data_dir):
    folder, _, _ = make_generic_qa(tmp_path, data_dir)
    with pytest.raises(finetune.FinetuneError, match="--max-seq-len 8: no room for a snippet after"):
        run(tmp_path, "--task", "qa", "--data-dir", str(folder), "--max-seq-len", "8")


def test_messages_say_where_data_and_vocabulary_really_come_from(tmp_path, renamed_ner, monkeypatch, capsys):
    """--data-dir given, no vocabulary in it, no data/ and no $ELECTRAMED_DATA: the data is the given
    folder (no 'embedded sample' note) and the vocabulary line says it is the sample's scivocab."""
    monkeypatch.delenv("ELECTRAMED_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    (renamed_ner / "test.txt").unlink()                              # stop right after the messages
    with pytest.raises(data.DataError, match="test.txt: missing test split"):
        run(tmp_path, "--task", "ner", "--data-dir", str(renamed_ner))
    printed = capsys.readouterr().out
    sample_vocab = data.SAMPLE_DATA_DIR / "vocab" / "scivocab_uncased.txt"
    assert data.SAMPLE_NOTE not in printed
    assert (f"vocab: {sample_vocab} (scivocab of the default data directory: no vocab/scivocab_uncased.txt in "
            "--data-dir, the embedded sample; 31090 entries)") in printed


def test_checkpoint_of_another_vocabulary_is_refused(tmp_path, renamed_ner, scivocab):
    model = electramed.Discriminator(electramed.model_config("tiny", vocab_size=1000))
    electramed.save_hf_checkpoint(model, tmp_path / "ckpt")
    args = finetune.parse_args(["--task", "ner", "--data-dir", str(renamed_ner), "--init", str(tmp_path / "ckpt"),
                                "--vocab", str(scivocab), "--out-dir", str(tmp_path / "run")])
    with pytest.raises(finetune.FinetuneError, match="1000 entries but .* has 31090"):
        finetune.main(args)


def test_checkpoint_weights_and_vocab_are_used(tmp_path, renamed_ner, scivocab, tokenizer):
    """--init loads the encoder's weights (not the RTD head) and picks up the checkpoint's vocab.txt."""
    model = electramed.Discriminator(electramed.model_config("tiny", vocab_size=len(tokenizer)))
    electramed.save_hf_checkpoint(model, tmp_path / "ckpt", vocab_file=scivocab)
    args = finetune.parse_args(["--task", "ner", "--data-dir", str(renamed_ner), "--init", str(tmp_path / "ckpt")])
    loaded = finetune.build_encoder(args, finetune.load_tokenizer(args, renamed_ner))
    assert args.vocab == str(tmp_path / "ckpt" / "vocab.txt")
    expected = model.encoder.state_dict()
    for name, tensor in loaded.state_dict().items():
        torch.testing.assert_close(tensor, expected[name], msg=name)


def test_fine_tuning_dropout_overrides_a_dropout_free_checkpoint(tmp_path, renamed_ner, scivocab, tokenizer):
    """A checkpoint pre-trained without dropout (our CPU presets) is fine-tuned with --dropout (0.1 by
    default) in every layer, as a random init is; in eval mode the outputs are unchanged."""
    config = electramed.model_config("tiny", vocab_size=len(tokenizer), hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0)
    model = electramed.Discriminator(config).eval()
    electramed.save_hf_checkpoint(model, tmp_path / "ckpt", vocab_file=scivocab)
    for argv, p in (([], 0.1), (["--dropout", "0.3"], 0.3)):
        args = finetune.parse_args(["--task", "ner", "--data-dir", str(renamed_ner), "--init", str(tmp_path / "ckpt"), *argv])
        encoder = finetune.build_encoder(args, finetune.load_tokenizer(args, renamed_ner))
        rates = [m.p for m in encoder.modules() if isinstance(m, torch.nn.Dropout)]
        rates += [m.dropout_p for m in encoder.modules() if hasattr(m, "dropout_p")]
        assert len(rates) == 1 + 2 * config.num_hidden_layers and set(rates) == {p}   # embeddings; block; attention
        assert encoder.config.hidden_dropout_prob == encoder.config.attention_probs_dropout_prob == p
        ids = torch.randint(0, len(tokenizer), (2, 16))
        with torch.no_grad():
            torch.testing.assert_close(encoder.eval()(ids), model.encoder(ids))
        encoder.train()
        with torch.no_grad():
            assert not torch.equal(encoder(ids), encoder(ids))          # dropout is really on


def test_casing_is_read_from_the_checkpoint(tmp_path, renamed_ner, scivocab, tokenizer):
    """A cased export (tokenizer_config.json do_lower_case false) is fine-tuned cased unless --lowercase
    says otherwise; a checkpoint without the file, and --init random, stay uncased."""
    model = electramed.Discriminator(electramed.model_config("tiny", vocab_size=len(tokenizer)))
    electramed.save_hf_checkpoint(model, tmp_path / "cased", vocab_file=scivocab, lowercase=False)
    electramed.save_hf_checkpoint(model, tmp_path / "bare")
    cases = [(["--init", str(tmp_path / "cased")], False), (["--init", str(tmp_path / "cased"), "--lowercase"], True),
             (["--init", str(tmp_path / "bare"), "--vocab", str(scivocab)], True), (["--init", "random"], True)]
    for argv, expected in cases:
        args = finetune.parse_args(["--task", "ner", "--data-dir", str(renamed_ner), *argv])
        ours = finetune.load_tokenizer(args, renamed_ner)
        assert ours.lowercase is expected and args.lowercase is expected, argv
        assert (ours.tokenize("Crohn Disease")[0] == "crohn") is expected


def test_reinit_layers_redraws_only_the_top_layers(tmp_path, renamed_ner, scivocab, tokenizer):
    """--reinit-layers N: the top N layers are drawn afresh with BERT's init (std 0.02 matrices, zero
    biases, LayerNorm at identity); the embeddings and the layers below keep the checkpoint's weights."""
    model = electramed.Discriminator(electramed.model_config("tiny", vocab_size=len(tokenizer)))
    with torch.no_grad():                    # move every weight off its init, as pre-training would
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    electramed.save_hf_checkpoint(model, tmp_path / "ckpt", vocab_file=scivocab)
    saved = model.encoder.state_dict()
    for n in (1, 2):
        args = finetune.parse_args(["--task", "ner", "--data-dir", str(renamed_ner), "--init", str(tmp_path / "ckpt"),
                                    "--reinit-layers", str(n)])
        encoder = finetune.build_encoder(args, finetune.load_tokenizer(args, renamed_ner))
        L = len(encoder.layers)
        for name, value in encoder.state_dict().items():
            fresh = name.startswith("layers.") and int(name.split(".")[1]) >= L - n
            assert torch.equal(value, saved[name]) != fresh, name
            if fresh and name.endswith("weight") and value.ndim == 2:
                assert abs(value.std().item() - 0.02) < 0.004, name
            if fresh and "norm" in name.lower():
                assert torch.all(value == (1 if name.endswith("weight") else 0)), name
    args = finetune.parse_args(["--task", "ner", "--data-dir", str(renamed_ner), "--init", str(tmp_path / "ckpt"),
                                "--reinit-layers", "9"])
    with pytest.raises(finetune.FinetuneError, match="--reinit-layers 9"):
        finetune.build_encoder(args, finetune.load_tokenizer(args, renamed_ner))


# ---------------------------------------------------------------------------------------------
# The two recipes and the random-init rule
# ---------------------------------------------------------------------------------------------

def filled(argv, tmp_path):
    """parse_args + fill_defaults for a named task, as main() does before any data work."""
    args = finetune.parse_args([*argv, "--out-dir", str(tmp_path / "run")])
    spec, _ = finetune.resolve_task(args)
    finetune.fill_defaults(args, spec, finetune.init_hidden_size(args))
    return args


def test_the_recipe_follows_the_model_size_and_is_said(tmp_path, tokenizer, scivocab, capsys):
    """Random weights and checkpoints below Base size get the small recipe (no layer-wise decay, lr 1e-3,
    entity pooling, tuned bias); a Base-size checkpoint the paper's; --recipe and explicit options win.
    A random init also gets more epochs and patience; a checkpoint keeps the paper's epochs."""
    args = filled(["--task", "ncbi_disease", "--init", "random", "--size", "mini"], tmp_path)
    assert (args.recipe, args.layerwise_decay, args.lrs, args.pooling, args.negative_bias) == \
        ("small", 1.0, [1e-3], "entity", "tune")
    assert args.epochs == 20 and args.patience == finetune.SCRATCH_PATIENCE
    assert "recipe small: random weights of hidden 128, < 768" in capsys.readouterr().out
    model = finetune.FineTuner(electramed.Encoder(electramed.model_config("mini", len(tokenizer))), "ner", 3)
    assert {g["lr"] for g in finetune.layerwise_param_groups(model, 1e-3, args.layerwise_decay, 0.01)} == {1e-3}
    electramed.save_hf_checkpoint(electramed.Discriminator(electramed.model_config("tiny", len(tokenizer))),
                                  tmp_path / "ckpt", vocab_file=scivocab)
    args = filled(["--task", "chemprot", "--init", str(tmp_path / "ckpt")], tmp_path)
    assert (args.recipe, args.layerwise_decay, args.epochs, args.patience) == ("small", 1.0, 3, 0)
    args = filled(["--task", "chemprot", "--init", str(tmp_path / "ckpt"), "--recipe", "paper"], tmp_path)
    assert (args.layerwise_decay, args.lrs, args.pooling, args.negative_bias) == (0.8, [3e-4], "cls", 0.0)
    base = finetune.parse_args(["--task", "chemprot", "--init", str(tmp_path / "ckpt")])
    assert finetune.choose_recipe(base, hidden_size=768) == "paper"
    assert "recipe paper: a pre-trained checkpoint of hidden 768, Base size" in capsys.readouterr().out
    assert finetune.parse_lrs(None, 768) == [1e-4]                       # the paper's Base lr
    explicit = filled(["--task", "chemprot", "--init", "random", "--layerwise-decay", "0.9", "--epochs", "4",
                       "--patience", "0", "--pooling", "cls"], tmp_path)
    assert (explicit.layerwise_decay, explicit.epochs, explicit.patience, explicit.pooling) == (0.9, 4, 0, "cls")


def test_lr_list_is_swept_on_dev_then_every_seed_uses_the_best(tmp_path, data_dir):
    """sweep.json holds each lr's best dev F1 (seed 1); the chosen lr is the argmax, used by all seeds;
    seed 1's run is the sweep's own run (same dev score), not a re-run with other results."""
    out = tmp_path / "run"
    summary = finetune.main(finetune.parse_args([
        "--task", "ncbi_disease", "--data-dir", str(data_dir), "--init", "random", "--size", "tiny",
        "--batch-size", "16", "--seeds", "1,2", "--epochs", "2", "--max-train-examples", "200",
        "--max-eval-examples", "80", "--lr", "1e-6,3e-3", "--out-dir", str(out)]))
    sweep = json.loads((out / "sweep.json").read_text())
    assert set(sweep["dev"]) == {"1e-06", "0.003"} and sweep["seed"] == 1
    best = max(sweep["dev"], key=sweep["dev"].get)
    assert sweep["best_lr"] == float(best) and sweep["dev"][best] > min(sweep["dev"].values())
    seed1 = json.loads((out / "seed_1" / "metrics.json").read_text())
    assert seed1["dev"]["f1"] == sweep["dev"][best] and "test" in seed1
    assert summary["lr"] == {"1": float(best), "2": float(best)}


def test_patience_stops_when_dev_stops_improving(tmp_path, data_dir):
    """With an lr too small to change predictions, dev never beats epoch 1: patience 2 stops after epoch 3."""
    _, metrics, _ = run(tmp_path, "--task", "ncbi_disease", "--data-dir", str(data_dir), "--epochs", "10",
                        "--patience", "2", "--max-train-examples", "64", "--max-eval-examples", "40", "--lr", "1e-9")
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3] and metrics["best_epoch"] == 1


def test_patience_waits_until_dev_leaves_zero():
    """Dev F1 histories of real runs (NCBI-disease, 250 training sentences, random init, patience 5):
    seed 2 stayed at 0 for six epochs and was stopped before the fix; seed 1 left 0 at epoch 5."""
    def stop_epoch(dev, patience):
        best_score, best_epoch = None, None
        for epoch, score in enumerate(dev, 1):
            if best_score is None or score > best_score:
                best_score, best_epoch = score, epoch
            if finetune.patience_exhausted(best_score, best_epoch, epoch, patience):
                return epoch
        return None
    seed2 = [0.0] * 6
    seed1 = [0.0, 0.0, 0.0, 0.0, 0.087, 0.227, 0.259, 0.269, 0.225, 0.266, 0.273, 0.277, 0.211, 0.254, 0.22, 0.271, 0.269]
    assert stop_epoch(seed2, 5) is None                       # still at 0: keep training
    assert stop_epoch(seed1, 5) == 17                         # best 0.277 at epoch 12, five more epochs
    assert stop_epoch(seed1, 0) is None                       # patience 0: off
    assert stop_epoch([0.3, 0.2, 0.1], 2) == 3                # the usual case is unchanged


def test_mini_size_from_random_init_runs(tmp_path, data_dir, scivocab):
    """--init random --size mini --vocab FILE builds the mini shape (hidden 128, 4 layers) and trains."""
    out = tmp_path / "run"
    summary = finetune.main(finetune.parse_args([
        "--task", "chemprot", "--data-dir", str(data_dir), "--epochs", "1", "--max-train-examples", "64",
        "--max-eval-examples", "40", "--init", "random", "--size", "mini", "--vocab", str(scivocab),
        "--out-dir", str(out)]))
    assert summary["model"] == "random-mini"
    saved = json.loads((out / "args.json").read_text())
    assert saved["size"] == "mini" and saved["vocab"] == str(scivocab)


# ---------------------------------------------------------------------------------------------
# Entity-aware relation extraction
# ---------------------------------------------------------------------------------------------

RE_TASKS = {"chemprot": "False", "ddi": "DDI-false"}


@pytest.fixture(scope="module")
def re_splits(data_dir):
    """The real ChemProt and DDI files: task -> split -> rows."""
    return {task: {s: data.read_blue_tsv(data_dir / task / f"{s}.tsv") for s in ("train", "dev", "test")}
            for task in RE_TASKS}


def test_every_marker_is_one_id_and_round_trips(tmp_path, tokenizer):
    """Each known marker and a new @NAME$ become one [unusedN] id each, all different; markers.json
    loads back to the same map and the same encodings; a changed vocabulary row is refused."""
    sentences = ["@PROTEIN$ binds @CHEMICAL$."]
    markers = finetune.marker_ids(tokenizer, sentences)
    assert set(markers) == {*finetune.RELATION_MARKERS, "@PROTEIN$"}
    assert len(set(markers.values())) == len(markers)
    assert all(finetune.UNUSED_PATTERN.fullmatch(tokenizer.id_to_token[i]) for i in markers.values())
    for m, i in markers.items():
        ids, _ = finetune.encode_relation(f"the {m}-induced effect of {m}", tokenizer, markers)
        assert ids == tokenizer.encode_text("the") + [i] + tokenizer.encode_text("-induced effect of") + [i], m
    finetune.save_markers(markers, tokenizer, tmp_path / "markers.json")
    assert finetune.load_markers(tmp_path / "markers.json", tokenizer) == markers
    other = Tokenizer([t if t != tokenizer.id_to_token[markers["@GENE$"]] else "[renamed]" for t in tokenizer.id_to_token])
    with pytest.raises(finetune.FinetuneError, match="@GENE\\$"):
        finetune.load_markers(tmp_path / "markers.json", other)
    bare = Tokenizer([t for t in tokenizer.id_to_token if not t.startswith("[unused")])
    with pytest.raises(finetune.FinetuneError, match="0 \\[unusedN\\] rows.*--entity-markers text"):
        finetune.marker_ids(bare, sentences)


def test_text_markers_without_window_are_the_papers_input(re_splits, tokenizer):
    """--entity-markers text --no-marker-window gives exactly Tokenizer.encode(sentence, max_len)."""
    rows = re_splits["chemprot"]["test"][:400] + re_splits["ddi"]["dev"][:400]
    features = finetune.classification_features(rows, tokenizer, {}, 128, markers={}, window=False)
    for f, (sentence, _) in zip(features, rows):
        assert f["input_ids"] == tokenizer.encode(sentence, max_len=128)["input_ids"], sentence


@pytest.mark.parametrize("task", RE_TASKS)
def test_entity_pooling_picks_the_marker_positions(re_splits, tokenizer, task):
    """On real rows (the longest included): `entity` points at the pair's marker ids, in sentence order,
    and the entity head equals a linear map of the concatenated hidden states at those positions."""
    rows = re_splits[task]["dev"]
    rows = sorted(rows, key=lambda r: -len(r[0]))[:20] + rows[:40]
    markers = finetune.marker_ids(tokenizer, [s for s, _ in rows])
    features = finetune.classification_features(rows, tokenizer, {}, 128, markers)
    for f, (sentence, _) in zip(features, rows):
        pair = [m for m in finetune.MARKER_PATTERN.findall(sentence) if m not in finetune.OTHER_MARKERS]
        picked = [f["input_ids"][p] for p in f["entity"]]
        assert picked == [markers[m] for m in (pair * 2)[:2]], sentence
    config = electramed.model_config("tiny", len(tokenizer), hidden_dropout_prob=0.0)
    model = finetune.FineTuner(electramed.Encoder(config), "re", 3, pooling="entity").eval()
    batch = finetune.collate(features[:24], "re", tokenizer.pad_id, torch.device("cpu"))
    with torch.no_grad():
        h = model.encoder(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        expected = torch.stack([torch.cat([h[b, f["entity"][0]], h[b, f["entity"][1]]])
                                for b, f in enumerate(features[:24])])
        torch.testing.assert_close(model(batch), model.head.out(expected))


@pytest.mark.parametrize("task", RE_TASKS)
def test_no_positive_loses_a_marker_with_the_window(re_splits, tokenizer, task):
    """Counted on the real files, every split: the paper's input (WordPiece markers, 128 pieces, tail
    cut) loses pair markers; ours keeps every pair marker of every row, checked by counting marker
    ids in the input itself, not by the features' own `lost` flag."""
    lost_before = 0
    for split, rows in re_splits[task].items():
        markers = finetune.marker_ids(tokenizer, [s for s, _ in rows])
        features = finetune.classification_features(rows, tokenizer, {}, 128, markers)
        pair_ids = {i for m, i in markers.items() if m not in finetune.OTHER_MARKERS}
        for f, (sentence, label) in zip(features, rows):
            n = sum(m not in finetune.OTHER_MARKERS for m in finetune.MARKER_PATTERN.findall(sentence))
            assert sum(t in pair_ids for t in f["input_ids"]) == n, (split, sentence)
            assert len(f["input_ids"]) <= 128
        paper = finetune.classification_features(rows, tokenizer, {}, 128, markers={}, window=False)
        lost_before += finetune.count_lost_positives(rows, paper, RE_TASKS[task])["rows"]
    assert lost_before > 0


@pytest.mark.parametrize("pooling", ["head", "entity"])
def test_re_run_with_pooling_writes_markers_and_lost_counts(tmp_path, data_dir, tokenizer, pooling):
    """A DDI run with each non-default head: markers.json is the run's map, the summary says what was used."""
    summary, metrics, out = run(tmp_path, "--task", "ddi", "--data-dir", str(data_dir), "--epochs", "1",
                                "--max-train-examples", "96", "--max-eval-examples", "64", "--pooling", pooling)
    markers = finetune.load_markers(out / "markers.json", tokenizer)
    assert markers["@DRUG$"] != markers["@DRUG-DRUG$"]
    assert summary["pooling"] == pooling and summary["entity_markers"] == "unused"
    assert all(c["this_run"]["positives"] == 0 for c in summary["lost_markers"].values())
    assert 0.0 <= metrics["test"]["f1"] <= 1.0


# ---------------------------------------------------------------------------------------------
# Class imbalance: a bias on the negative logit tuned on dev
# ---------------------------------------------------------------------------------------------

def one_hot(i, n=3):
    return torch.nn.functional.one_hot(torch.tensor(i), n).float()


def test_negative_bias_only_moves_rows_between_negative_and_their_best_positive():
    """On skewed random logits: the tuned bias reaches the best micro-F1 of any threshold (brute force
    over the margins' midpoints, scored by eval.micro_prf), bias 0 is plain argmax, and a row's
    prediction changes only between the negative class and its own best positive class."""
    labels, negative = ["CPR:3", "CPR:4", "False"], "False"
    g = torch.Generator().manual_seed(0)
    gold = [labels[i] for i in torch.multinomial(torch.tensor([0.1, 0.15, 0.75]), 300, True, generator=g).tolist()]
    logits = [torch.randn(3, generator=g) + torch.tensor([0.0, 0.0, 1.5]) + one_hot(labels.index(y))
              for y in gold]
    plain = finetune.relation_predictions(logits, labels, negative, 0.0)
    assert plain == [labels[lg.argmax().item()] for lg in logits]
    bias = finetune.tune_negative_bias(logits, gold, labels, negative, grid=3000)
    tuned = finetune.relation_predictions(logits, labels, negative, bias)
    margins = sorted((lg[:2].max() - lg[2]).item() for lg in logits)
    thresholds = [margins[0] - 1] + [(a + b) / 2 for a, b in zip(margins, margins[1:])] + [margins[-1] + 1]
    brute = max(scoring.micro_prf(gold, finetune.relation_predictions(logits, labels, negative, t), negative)["f1"]
                for t in thresholds)
    assert scoring.micro_prf(gold, tuned, negative)["f1"] == pytest.approx(brute)
    assert brute > scoring.micro_prf(gold, plain, negative)["f1"]          # the skew made plain argmax worse
    for lg, a, b in zip(logits, plain, tuned):
        if a != b:
            assert negative in (a, b) and ({a, b} - {negative}) == {labels[lg[:2].argmax().item()]}


def test_negative_bias_tune_changes_predictions_not_training(tmp_path, data_dir):
    """Same seed, one epoch, with and without --negative-bias tune: identical training loss; dev F1 at
    least the untuned one; test rows differ only between the negative class and a positive one."""
    common = ["--task", "chemprot", "--data-dir", str(data_dir), "--epochs", "1", "--max-train-examples", "400",
              "--max-eval-examples", "300", "--lr", "3e-3"]
    _, plain, out_plain = run(tmp_path / "plain", *common, "--negative-bias", "0")
    _, tuned, out_tuned = run(tmp_path / "tuned", *common, "--negative-bias", "tune")
    assert plain["history"][0]["train_loss"] == tuned["history"][0]["train_loss"]
    assert plain["dev"]["negative_bias"] == 0.0 and tuned["test"]["negative_bias"] == tuned["dev"]["negative_bias"]
    assert tuned["dev"]["f1"] >= plain["dev"]["f1"]
    rows = lambda out: [line.split("\t") for line in (out / "seed_1" / "test.tsv").read_text().splitlines()[1:]]
    changed = [(a[3], b[3]) for a, b in zip(rows(out_plain), rows(out_tuned)) if a[3] != b[3]]
    assert all("False" in pair for pair in changed)
    if tuned["dev"]["negative_bias"] == 0.0:
        assert not changed


# ---------------------------------------------------------------------------------------------
# BioASQ n-best de-duplicated by text, as BERT's run_squad
# ---------------------------------------------------------------------------------------------

def test_nbest_keeps_one_entry_per_text_hand_made():
    """Worked by hand: scores sorted 9 8 7 6 5 4; the second 'EGFR' (7) and 'KRAS' (5) are skipped;
    'egfr' differs in case, so it is a text of its own (run_squad compares exact strings)."""
    candidates = [("KRAS", 5.0), ("EGFR", 9.0), ("EGFR", 7.0), ("BRAF", 8.0), ("egfr", 6.0), ("TP53", 4.0)]
    assert finetune.nbest_by_text(candidates, 3) == [("EGFR", 9.0), ("BRAF", 8.0), ("egfr", 6.0)]
    assert [t for t, _ in finetune.nbest_by_text(candidates, 20)] == ["EGFR", "BRAF", "egfr", "KRAS", "TP53"]


def test_snippet_nbest_counts_a_repeated_string_once(tokenizer):
    """A snippet that names EGFR twice. n_best 4 proposes four one-piece spans (top 4 starts x ends);
    de-duplicated by text, 'EGFR' is one answer (offsets would keep two) and the probabilities are a
    softmax over the distinct texts' best scores."""
    ex = {"id": "q_000", "question": "Which gene?", "context": "EGFR binds EGFR and KRAS near liver today.",
          "answers": []}
    (f,) = finetune.qa_features([ex], tokenizer, max_len=64, stride=32, max_query_len=16)
    pos = {ex["context"][a:b]: f["shift"] + f["first"] + j for j, (a, b) in enumerate(f["offsets"])}
    first_egfr = f["shift"] + f["first"]                                # the second EGFR is pos["EGFR"]
    logits = torch.full((len(f["input_ids"]), 2), -20.0)
    for p, score in ((first_egfr, 9.0), (pos["EGFR"], 8.5), (pos["KRAS"], 5.0), (pos["liver"], 4.0)):
        logits[p, 0] = logits[p, 1] = score
    answers = finetune.snippet_nbest(ex, [f], [logits], n_best=4, max_answer_len=1)
    assert [t for t, _ in answers] == ["EGFR", "KRAS", "liver"]
    assert math.isclose(sum(p for _, p in answers), 1.0, rel_tol=1e-6)
    expected = torch.tensor([18.0, 10.0, 8.0]).softmax(0).tolist()
    assert [p for _, p in answers] == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------
# Without --init: the pre-training's default output if it exists, else random weights, said aloud
# ---------------------------------------------------------------------------------------------

def test_default_init_is_the_pretrained_discriminator_when_present(tmp_path, monkeypatch, capsys, tokenizer, scivocab):
    monkeypatch.chdir(tmp_path)
    args = finetune.parse_args(["--task", "chemprot", "--size", "mini"])
    assert finetune.resolve_init(args) == "random"
    said = capsys.readouterr().out
    assert "RANDOM weights, size mini (4 layers, hidden 128)" in said and str(finetune.PRETRAINED_DEFAULT) in said
    model = electramed.Discriminator(electramed.model_config("tiny", len(tokenizer)))
    electramed.save_hf_checkpoint(model, tmp_path / finetune.PRETRAINED_DEFAULT, vocab_file=scivocab)
    args = finetune.parse_args(["--task", "chemprot"])
    assert finetune.resolve_init(args) == str(finetune.PRETRAINED_DEFAULT)
    assert f"fine-tuning the pre-trained discriminator in {finetune.PRETRAINED_DEFAULT}" in capsys.readouterr().out
    encoder = finetune.build_encoder(args, finetune.load_tokenizer(args, tmp_path))
    torch.testing.assert_close(encoder.state_dict(), model.encoder.state_dict())
    assert f"vocab: {finetune.PRETRAINED_DEFAULT / 'vocab.txt'} (the checkpoint's;" in capsys.readouterr().out
    explicit = finetune.parse_args(["--task", "chemprot", "--init", "random"])
    assert finetune.resolve_init(explicit) == "random" and capsys.readouterr().out == ""


# ---------------------------------------------------------------------------------------------
# Length-bucketed batching
# ---------------------------------------------------------------------------------------------

def test_length_buckets_cover_every_feature_once_with_less_padding(data_dir, tokenizer):
    """Off: slices of one permutation (the old order, same rng). On: every feature once per epoch,
    batches of at most batch_size, and fewer padded positions on real NCBI-disease train lengths."""
    sentences = data.read_conll(data_dir / "ncbi_disease" / "train.txt")
    labels = {t: i for i, t in enumerate(sorted({t for _, tags in sentences for t in tags}))}
    lengths = [len(f["input_ids"]) for f in finetune.tagging_features(sentences, tokenizer, labels, 128)]
    plain = finetune.batch_indices(lengths, 32, torch.Generator().manual_seed(3))
    order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(3)).tolist()
    assert plain == [order[i:i + 32] for i in range(0, len(order), 32)]
    bucketed = finetune.batch_indices(lengths, 32, torch.Generator().manual_seed(3), buckets=True)
    assert sorted(j for b in bucketed for j in b) == list(range(len(lengths)))
    assert max(len(b) for b in bucketed) == 32
    padding = lambda batches: sum(len(b) * max(lengths[j] for j in b) - sum(lengths[j] for j in b) for b in batches)
    assert padding(bucketed) < 0.5 * padding(plain), (padding(bucketed), padding(plain))


# ---------------------------------------------------------------------------------------------
# Kept models: the Hugging Face layout, our loader and `predict`
# ---------------------------------------------------------------------------------------------

def saved_tiny(tmp_path, scivocab, tokenizer, kind, pooling="cls", labels=("B-X", "I-X", "O")):
    """A random tiny FineTuner (every head tensor random, biases too) saved by save_finetuned."""
    encoder = electramed.Encoder(electramed.model_config("tiny", vocab_size=len(tokenizer)))
    labels = [] if kind == "qa" else list(labels)
    model = finetune.FineTuner(encoder, kind, len(labels), pooling).eval()
    with torch.no_grad():
        for p in model.head.parameters():
            p.normal_()
    args = finetune.parse_args(["--task", kind, "--pooling", pooling, "--max-seq-len", "64"])
    settings = finetune.predict_settings(args, {"negative": "O" if kind == "re" else None}, 0.0)
    markers = finetune.marker_ids(tokenizer, []) if pooling == "entity" else None
    finetune.save_finetuned(model, tmp_path / "model", labels, settings, scivocab, True, markers)
    return model, tmp_path / "model"


def real_batch(data_dir, tokenizer, n=6):
    """Padded ids of n real DDI sentences (markers as [unusedN]), with their entity positions."""
    rows = data.read_blue_tsv(data_dir / "ddi" / "dev.tsv")[:n]
    features = finetune.classification_features(rows, tokenizer, {}, 64, finetune.marker_ids(tokenizer, []))
    return finetune.collate(features, "re", tokenizer.pad_id, "cpu")


@pytest.mark.parametrize("kind, pooling, hf_class", [("ner", "cls", "ElectraForTokenClassification"),
                                                     ("re", "head", "ElectraForSequenceClassification"),
                                                     ("qa", "cls", "ElectraForQuestionAnswering")])
def test_saved_model_loads_in_transformers_with_equal_logits(tmp_path, data_dir, scivocab, tokenizer, kind, pooling,
                                                              hf_class):
    import transformers
    model, directory = saved_tiny(tmp_path, scivocab, tokenizer, kind, pooling)
    batch = real_batch(data_dir, tokenizer)
    assert batch["attention_mask"] is not None                                 # padding is exercised
    hf = getattr(transformers, hf_class).from_pretrained(directory).eval()
    with torch.no_grad():
        ours = model(batch)
        out = hf(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                 attention_mask=batch["attention_mask"].long())
    theirs = out.logits if kind != "qa" else torch.stack([out.start_logits, out.end_logits], -1)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    config = json.loads((directory / "config.json").read_text())
    assert config["architectures"] == [hf_class]
    if kind != "qa":
        assert hf.config.id2label == {0: "B-X", 1: "I-X", 2: "O"} and hf.config.label2id["O"] == 2


@pytest.mark.parametrize("kind, pooling", [("re", "cls"), ("re", "entity"), ("re", "head"), ("ner", "cls")])
def test_our_loader_round_trips_every_head(tmp_path, data_dir, scivocab, tokenizer, kind, pooling):
    """load_finetuned rebuilds the head (our own keys for cls and entity) with equal logits; for those two
    transformers loads the encoder alone, with equal hidden states."""
    import transformers
    model, directory = saved_tiny(tmp_path, scivocab, tokenizer, kind, pooling)
    loaded, loaded_tokenizer, labels, settings = finetune.load_finetuned(directory)
    batch = real_batch(data_dir, tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch), model(batch), atol=0, rtol=0)
    assert type(loaded.head) is type(model.head) and labels == ["B-X", "I-X", "O"]
    assert loaded_tokenizer.id_to_token == tokenizer.id_to_token and settings["max_seq_len"] == 64
    if pooling in ("cls", "entity") and kind == "re":
        body = transformers.ElectraModel.from_pretrained(directory).eval()
        with torch.no_grad():
            h = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"].long()).last_hidden_state
            torch.testing.assert_close(h, model.encoder(batch["input_ids"], batch["token_type_ids"],
                                                        batch["attention_mask"]), atol=1e-5, rtol=1e-4)
    if pooling == "entity":
        assert finetune.load_markers(directory / "markers.json", tokenizer) == finetune.marker_ids(tokenizer, [])


def test_loader_refuses_a_pretraining_checkpoint(tmp_path, scivocab, tokenizer):
    """(A head whose tensors do not match config.json is refused by electramed.head_state, tested there.)"""
    disc = electramed.Discriminator(electramed.model_config("tiny", vocab_size=len(tokenizer)))
    electramed.save_hf_checkpoint(disc, tmp_path / "disc", vocab_file=scivocab)
    with pytest.raises(finetune.FinetuneError, match="disc/config.json: no known 'electramed_head'"):
        finetune.load_finetuned(tmp_path / "disc")


def ncbi_folder(tmp_path, data_dir, n_train=800, n_eval=100):
    folder = tmp_path / "ncbi"
    folder.mkdir()
    for split, n in (("train", n_train), ("dev", n_eval), ("test", n_eval)):
        write_conll(folder / f"{split}.txt", data.read_conll(data_dir / "ncbi_disease" / f"{split}.txt")[:n])
    return folder


def predict(*argv):
    return finetune.predict_main(finetune.parse_predict_args([str(a) for a in argv]))


def test_predict_on_ncbi_equals_the_runs_test_predictions_and_reads_raw_text(tmp_path, data_dir):
    """Train on a slice of NCBI-disease; the saved model's predictions on the test file are the run's
    test.conll, byte for byte; raw text of some test sentences gets their words and tags back."""
    folder = ncbi_folder(tmp_path, data_dir)
    _, metrics, out = run(tmp_path, "--task", "ner", "--data-dir", str(folder), "--epochs", "3", "--lr", "3e-3")
    written = (out / "seed_1" / "test.conll").read_text()
    rows = [b.split("\n") for b in written.strip().split("\n\n")]
    assert any(line.split()[2] != "O" for b in rows for line in b), "the model learned nothing: a weak test"
    path = predict(out / "seed_1" / "model", "--input", folder / "test.txt", "--out-dir", tmp_path / "pred")
    assert path == tmp_path / "pred" / "test.conll" and path.read_text() == written
    one_sentence = lambda t: data.split_sentences(t) == [t] and basic_tokenize(t, False) == t.split()
    chosen = [b for b in rows if any(line.split()[2] != "O" for line in b)
              and one_sentence(" ".join(line.split()[0] for line in b))][:4]
    text = [" ".join(line.split()[0] for line in b) for b in chosen]
    assert len(chosen) == 4
    path = predict(out / "seed_1" / "model", *[a for t in text for a in ("--text", t)], "--out-dir", tmp_path / "pred")
    assert path.read_text() == "\n\n".join("\n".join(f"{w} {p}" for w, _, p in map(str.split, b))
                                           for b in chosen) + "\n"


def test_raw_text_is_cut_into_sentences_and_words():
    text = "Loss of BRCA1 (ref. 3) is rare. It causes breast-cancer!\n  A second line"
    args = finetune.parse_predict_args(["m", "--text", text, "--out-dir", "o"])
    _, examples = finetune.predict_input(args, "ner")
    sentences = ["Loss of BRCA1 (ref. 3) is rare.", "It causes breast-cancer!", "A second line"]
    assert [words for words, _ in examples] == [basic_tokenize(s, False) for s in sentences]
    assert examples[1] == (["It", "causes", "breast", "-", "cancer", "!"], None)


def test_predict_re_with_entity_pooling_and_a_tuned_bias(tmp_path, data_dir):
    """The markers and the dev-tuned negative bias travel with the model: predict on the test file gives
    the run's test.tsv, and the same sentences as raw text get the same predictions."""
    folder = tmp_path / "ddi"
    folder.mkdir()
    for split, n in (("train", 300), ("dev", 80), ("test", 40)):
        write_tsv(folder / f"{split}.tsv", data.read_blue_tsv(data_dir / "ddi" / f"{split}.tsv")[:n])
    _, metrics, out = run(tmp_path, "--task", "re", "--data-dir", str(folder), "--epochs", "1", "--lr", "3e-3",
                          "--max-seq-len", "64", "--pooling", "entity", "--negative-bias", "tune")
    assert metrics["test"]["negative_bias"] != 0.0                             # else the bias is not tested
    model = out / "seed_1" / "model"
    path = predict(model, "--input", folder / "test.tsv", "--out-dir", tmp_path / "pred")
    assert path.read_text() == (out / "seed_1" / "test.tsv").read_text()
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:]]
    path = predict(model, *[a for r in rows for a in ("--text", r[1])], "--out-dir", tmp_path / "pred")
    assert path.read_text().splitlines() == ["index\tsentence\tprediction"] + [f"{i}\t{s}\t{p}" for i, s, _, p in rows]


def test_predict_qa_on_a_test_file_and_on_raw_contexts(tmp_path, data_dir):
    folder, keep, _ = make_generic_qa(tmp_path, data_dir)
    _, metrics, out = run(tmp_path, "--task", "qa", "--data-dir", str(folder), "--epochs", "1", "--max-seq-len", "128")
    model = out / "seed_1" / "model"
    path = predict(model, "--input", folder / "test-x.json", "--out-dir", tmp_path / "pred")
    assert path.name == "bioasq_test-x.json"
    assert scoring.read_bioasq_submission(path) == scoring.read_bioasq_submission(out / "seed_1" / "bioasq_x.json")
    contexts = ["EGFR mutations respond to gefitinib in lung cancer.", "Gefitinib inhibits EGFR."]
    args = ["--question", "Which drug targets EGFR?", "--out-dir", tmp_path / "pred"]
    path = predict(model, "--text", contexts[0], "--text", contexts[1], *args)
    answers = scoring.read_bioasq_submission(path)
    assert list(answers) == ["text"] and 1 <= len(answers["text"]) <= 5
    assert all(any(a in c for c in contexts) for a in answers["text"])


def test_predict_squad_style_qa_equals_the_runs_test_predictions(tmp_path, data_dir):
    """A QA set without golden-*.json is SQuAD-style (one answer per pair): predict writes the run's file."""
    folder = tmp_path / "squad"
    folder.mkdir()
    pairs = data.read_squad(data_dir / "bioasq" / "train.json")
    for split, rows in (("train", pairs[:60]), ("dev", pairs[60:80]), ("test", pairs[80:100])):
        write_squad(folder / f"{split}.json", rows)
    _, _, out = run(tmp_path, "--task", "qa", "--data-dir", str(folder), "--epochs", "1", "--max-seq-len", "128")
    path = predict(out / "seed_1" / "model", "--input", folder / "test.json", "--out-dir", tmp_path / "pred")
    assert path.name == "test_predictions.json"
    assert json.loads(path.read_text()) == json.loads((out / "seed_1" / "test_predictions.json").read_text())
    assert len(json.loads(path.read_text())) == 20
