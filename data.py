"""
The data of ELECTRAMed (PAPER.md §1, §3, §4): PubMed text -> packed pre-training examples, and the
readers of the fine-tuning benchmarks.

Pre-training text is one sentence per line with a blank line between documents (BlueBERT's PubMed
corpus, or NCBI's baseline XML turned into that format here). It is tokenized once, in parallel,
packed into `[CLS] A [SEP] B [SEP]` examples exactly as ELECTRA's build_pretraining_dataset.py does,
and written to a memory-mapped file that `PretrainingData` reads, each process its own part, with a
position that is saved in the training checkpoint.

    python data.py prepare --corpus ../shared/data/pubmed/corpus.txt --out-dir data/shards
    python data.py pubmed --files 1-10 --out-dir data/pubmed          # NCBI baseline XML, checked
    python data.py pubmed-xml data/pubmed/*.xml.gz --out data/pubmed/corpus.txt
    python data.py download all --out-dir data                         # the benchmarks
    python data.py counts --data-dir ../shared/data                    # counts of every split

Writes: shards (examples.bin, index.bin, meta.json), corpus text, downloaded files.
References: google-research/electra build_pretraining_dataset.py (ExampleBuilder);
conlleval (chunks); BLUE benchmark TSV files; SQuAD v1.1 JSON; BioASQ task B JSON.
"""
import argparse
import json
import os
import re
from collections import Counter
from pathlib import Path


class DataError(ValueError):
    """Bad or missing input. The message starts with "path:line: " when one line is at fault."""


def default_data_dir() -> str:
    """The data directory every CLI uses by default: $ELECTRAMED_DATA, else "data"."""
    return os.environ.get("ELECTRAMED_DATA") or "data"


def require_file(path, hint="") -> Path:
    """`path` as a Path if it is a file; otherwise a DataError saying which file and how to get it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found" + (f" ({hint})" if hint else ""))
    return path


def _fail(path, line_no, message):
    raise DataError(f"{path}:{line_no}: {message}")


def _text_lines(path):
    """(line number, line) of a UTF-8 text file, without BOM or line end ("\\r\\n" or "\\n").
    Lines split on "\\n" only, so a stray "\\r" inside a sentence cannot break a row in two."""
    path = require_file(path)
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as e:
                _fail(path, line_no, f"not UTF-8 ({e.reason} at byte {e.start})")
            yield line_no, line.rstrip("\n").rstrip("\r")


# ---------------------------------------------------------------------------------------------
# 4. Benchmark readers                                                               (PAPER.md §4)
#    NER: CoNLL columns, word first and tag last, a blank line between sentences (BC5CDR is IOB1:
#    entities start with I-; NCBI-disease is IOB2). RE: BLUE TSV, header `[index] sentence label`.
#    QA: SQuAD v1.1 JSON (question + snippet pairs) and BioASQ's golden JSON for the factoid answers.
#    Counts of every split equal ../shared/data/README.md (tests/test_data.py).
# ---------------------------------------------------------------------------------------------
TAG_PATTERN = re.compile(r"O|[BIES]-\S+")   # IOB1, IOB2 and IOBES tags


def read_conll(path) -> list[tuple[list[str], list[str]]]:
    """(words, tags) per sentence. Runs of blank lines count as one break; `-DOCSTART-` lines
    (CoNLL-2003's document markers) are skipped. A line with one column or a bad tag is an error."""
    sentences, words, tags = [], [], []
    for line_no, line in _text_lines(path):
        columns = line.split()
        if not columns or columns[0] == "-DOCSTART-":
            if words:
                sentences.append((words, tags))
                words, tags = [], []
            continue
        if len(columns) < 2:
            _fail(path, line_no, f"expected 'word tag', got {line!r}")
        if not TAG_PATTERN.fullmatch(columns[-1]):
            _fail(path, line_no, f"bad tag {columns[-1]!r} (expected O, B-X, I-X, E-X or S-X)")
        words.append(columns[0])
        tags.append(columns[-1])
    if words:
        sentences.append((words, tags))
    if not sentences:
        raise DataError(f"{path}: no sentences")
    return sentences


def read_blue_tsv(path) -> list[tuple[str, str]]:
    """(sentence, label) rows of a BLUE-style TSV: header `sentence<TAB>label` or
    `index<TAB>sentence<TAB>label`; UTF-8 with or without BOM; LF or CRLF line ends."""
    rows, n_columns = [], None
    for line_no, line in _text_lines(path):
        columns = line.split("\t")
        if n_columns is None:
            if [c.strip().lower() for c in columns[-2:]] != ["sentence", "label"] or len(columns) > 3:
                _fail(path, line_no, f"expected a header 'sentence<TAB>label' or "
                                     f"'index<TAB>sentence<TAB>label', got {line[:80]!r}")
            n_columns = len(columns)
            continue
        if not line.strip():
            _fail(path, line_no, "blank line")
        if len(columns) != n_columns:
            _fail(path, line_no, f"expected {n_columns} TAB-separated columns, got {len(columns)}")
        sentence, label = columns[-2].strip(), columns[-1].strip()
        if not sentence or not label:
            _fail(path, line_no, "empty sentence or label")
        rows.append((sentence, label))
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def _load_json(path):
    path = require_file(path)
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None


def read_squad(path) -> list[dict]:
    """One dict per question-context pair of a SQuAD v1.1 file: {"id", "question", "context",
    "answers": [{"text", "answer_start"}]} (answers empty in test files). An answer whose text is not
    at its `answer_start` in the context is an error."""
    data, pairs = _load_json(path), []
    try:
        for i, article in enumerate(data["data"]):
            for j, paragraph in enumerate(article["paragraphs"]):
                context = paragraph["context"]
                for k, qa in enumerate(paragraph["qas"]):
                    where = f"{path}: data[{i}].paragraphs[{j}].qas[{k}] (id {qa.get('id')!r})"
                    answers = [{"text": a["text"], "answer_start": int(a["answer_start"])}
                               for a in qa.get("answers", [])]
                    for a in answers:
                        if context[a["answer_start"]:a["answer_start"] + len(a["text"])] != a["text"]:
                            raise DataError(f"{where}: answer {a['text']!r} is not at "
                                            f"answer_start {a['answer_start']} of its context")
                    pairs.append({"id": qa["id"], "question": qa["question"], "context": context,
                                  "answers": answers})
    except (KeyError, TypeError) as e:
        raise DataError(f"{path}: not SQuAD v1.1 JSON (missing or bad field {e})") from None
    if not pairs:
        raise DataError(f"{path}: no questions")
    return pairs


def read_bioasq_golden(path) -> dict[str, list[list[str]]]:
    """Factoid question id -> its golden answers, each a list of synonyms (BioASQ task B JSON).
    # CHOICE: a flat list of strings (some BioASQ years) is read as ONE answer with those synonyms."""
    golden = {}
    try:
        questions = _load_json(path)["questions"]
        for i, q in enumerate(questions):
            if q["type"] != "factoid":
                continue
            answer = q.get("exact_answer")
            if isinstance(answer, list) and answer and all(isinstance(a, str) for a in answer):
                answer = [answer]
            if (not isinstance(answer, list) or not answer
                    or not all(isinstance(s, list) and s and all(isinstance(x, str) for x in s)
                               for s in answer)):
                raise DataError(f"{path}: questions[{i}] (id {q['id']!r}): exact_answer must be a "
                                f"non-empty list of synonym lists, got {answer!r}")
            golden[q["id"]] = answer
    except (KeyError, TypeError) as e:
        raise DataError(f"{path}: not BioASQ golden JSON (missing or bad field {e})") from None
    return golden


def count_split(path) -> dict:
    """The counts that ../shared/data/README.md lists, for one file of any benchmark format."""
    name = Path(path).name
    if name.endswith(".txt"):
        sentences = read_conll(path)
        return {"sentences": len(sentences), "tokens": sum(len(w) for w, _ in sentences)}
    if name.endswith(".tsv"):
        rows = read_blue_tsv(path)
        return {"rows": len(rows), **Counter(label for _, label in rows)}
    if name.startswith("golden"):
        return {"factoid questions": len(read_bioasq_golden(path))}
    pairs = read_squad(path)
    return {"pairs": len(pairs), "questions": len({p["id"].split("_")[0] for p in pairs})}


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------
BENCHMARK_FILES = {
    "bc5cdr": ["train.txt", "dev.txt", "test.txt"],
    "ncbi_disease": ["train.txt", "dev.txt", "test.txt"],
    "chemprot": ["train.tsv", "dev.tsv", "test.tsv", "blue/dev.tsv"],
    "ddi": ["train.tsv", "dev.tsv", "test.tsv"],
    "bioasq": ["train.json"] + [f"{kind}-7b-{i}.json" for i in range(1, 6) for kind in ("test", "golden")],
}


def print_counts(data_dir):
    for task, names in BENCHMARK_FILES.items():
        for name in names:
            path = Path(data_dir) / task / name
            if path.is_file():
                print(f"{task}/{name}: {count_split(path)}")
            else:
                print(f"{task}/{name}: missing (python data.py download {task})")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("counts", help="print the counts of every benchmark split")
    c.add_argument("--data-dir", default=default_data_dir())
    return p.parse_args(argv)


def main(args):
    try:
        if args.command == "counts":
            print_counts(args.data_dir)
    except DataError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main(parse_args())
