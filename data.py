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
import gzip
import hashlib
import json
import os
import random
import re
from collections import Counter, deque
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm


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
# 1. Reading PubMed documents                                                        (PAPER.md §1)
#    The paper's corpus (BlueBERT's PubMed abstracts): one sentence per line, a blank line between
#    documents, UTF-8, plain or gzipped, one or many files. A file's end also ends a document.
# ---------------------------------------------------------------------------------------------
MAX_DOCUMENT_LINES = 10_000   # a longer run of lines is cut, so memory never holds a whole file


def _open_binary(path):
    path = require_file(path)
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_documents(paths) -> Iterator[list[str]]:
    """Documents (lists of sentences) of one or many corpus files, in order.
    # CHOICE: a file without blank lines is one document per file, as ELECTRA's builder reads it
    # (no blank line, no flush); it is cut every MAX_DOCUMENT_LINES lines to keep memory flat.
    Empty corpus files are an error: they almost always mean a wrong path or a failed download."""
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        document, line_no = [], 0
        with _open_binary(path) as f:
            for line_no, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8").strip()
                except UnicodeDecodeError as e:
                    _fail(path, line_no, f"not UTF-8 ({e.reason})")
                if line:
                    document.append(line)
                if document and (not line or len(document) >= MAX_DOCUMENT_LINES):
                    yield document
                    document = []
        if document:
            yield document
        if line_no == 0:
            raise DataError(f"{path}: empty corpus file")


# ---------------------------------------------------------------------------------------------
# 2. Packing sentences into examples                     (PAPER.md §3; ELECTRA's ExampleBuilder)
#    Sentences of one document are collected until they reach the target length (max_len, or 5% of
#    the time a random length in [5, max_len]); the end of a document flushes what is collected, so
#    no example spans two documents. 10% of examples are one segment; otherwise the first segment
#    aims at (target - 3) // 2 tokens. Example = [CLS] A [SEP] B [SEP], token types 0 ... 0 1 ... 1.
# ---------------------------------------------------------------------------------------------
def split_segments(sentences, target_length, max_len, rng):
    """ELECTRA's _create_example: the sentences (token id lists) -> first and second segment."""
    if rng.random() < 0.1:   # a small chance of one segment, as in classification tasks
        first_target = 100_000
    else:
        first_target = (target_length - 3) // 2   # -3 for the [CLS] and two [SEP] still to come
    first, second = [], []
    for sentence in sentences:
        # into the first segment if it is empty, if the sentence fits, or 50% of the time when it
        # does not fit (only while the second segment is empty and the first is short of its target)
        if (not first or len(first) + len(sentence) < first_target
                or (not second and len(first) < first_target and rng.random() < 0.5)):
            first += sentence
        else:
            second += sentence
    first = first[:max_len - 2]
    second = second[:max(0, max_len - len(first) - 3)]
    return first, second


def pack_examples(documents_ids, max_len, rng, cls_id, sep_id) -> Iterator[tuple[list[int], list[int]]]:
    """(input_ids, token_type_ids) of each example, unpadded, from documents of tokenized sentences.
    `rng` is a random.Random: the same seed gives the same examples. Sentences with no tokens are
    dropped (in ELECTRA they add nothing and draw no random number)."""
    if max_len < 5:
        raise ValueError(f"max_len must be at least 5 (ELECTRA draws lengths in [5, max_len]), got {max_len}")
    target_length = max_len
    for document in documents_ids:
        sentences, length = [], 0
        for i, sentence in enumerate(document):
            if sentence:
                sentences.append(sentence)
                length += len(sentence)
            if length >= target_length or (i == len(document) - 1 and length > 0):
                first, second = split_segments(sentences, target_length, max_len, rng)
                sentences, length = [], 0
                # a small chance of a random-length target for the NEXT example
                target_length = rng.randint(5, max_len) if rng.random() < 0.05 else max_len
                input_ids = [cls_id] + first + [sep_id]
                token_types = [0] * len(input_ids)
                if second:
                    input_ids += second + [sep_id]
                    token_types += [1] * (len(second) + 1)
                yield input_ids, token_types


# ---------------------------------------------------------------------------------------------
# 3. Shards on disk and a resumable reader                                      (PAPER.md §3, §5)
#    prepare_corpus tokenizes in parallel and streams the packed examples to out_dir:
#      examples.bin  (N, max_len) token ids, padded with [PAD]=0, uint16 (int32 if the vocab is larger)
#      index.bin     (N, 2) int32: real length, length of the type-0 part ([CLS] A [SEP])
#      meta.json     counts, max_len, vocab size and hash, and the inputs (the cache key), written last
#    PretrainingData reads them through np.memmap: global batch s of an epoch is examples
#    [s*B*W, (s+1)*B*W) of a permutation seeded by (seed, epoch); rank r takes [r*B, (r+1)*B).
# ---------------------------------------------------------------------------------------------
SHARD_FORMAT = 1
WRITE_CHUNK = 4096   # examples buffered before a write: memory does not grow with the corpus


def _sha256(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _tokenized_documents(tokenizer, paths, workers, progress):
    """Documents of token id lists. Lines go to the tokenizer's worker pool one stream; the number
    of sentences of each document rides alongside in a queue to regroup them."""
    sizes = deque()

    def lines():
        for document in read_documents(paths):
            sizes.append(len(document))
            yield from document

    ids = tokenizer.encode_lines(lines(), workers=workers, progress=False)
    with tqdm(desc="documents", unit=" doc", disable=not progress) as bar:
        for sentence in ids:
            document = [sentence] + [next(ids) for _ in range(sizes.popleft() - 1)]
            bar.update()
            yield document


class _ExampleWriter:
    """Appends padded examples to examples.bin and index.bin, WRITE_CHUNK at a time."""

    def __init__(self, out_dir, max_len, dtype):
        self.max_len, self.dtype, self.n = max_len, dtype, 0
        self.files = [open(out_dir / "examples.bin.tmp", "wb"), open(out_dir / "index.bin.tmp", "wb")]
        self.buffer = []

    def add(self, input_ids, token_types):
        self.buffer.append((input_ids, token_types))
        if len(self.buffer) == WRITE_CHUNK:
            self.flush()

    def flush(self):
        rows = np.zeros((len(self.buffer), self.max_len), dtype=self.dtype)
        index = np.zeros((len(self.buffer), 2), dtype=np.int32)
        for i, (input_ids, token_types) in enumerate(self.buffer):
            rows[i, :len(input_ids)] = input_ids
            index[i] = len(input_ids), token_types.count(0)
        self.files[0].write(rows.tobytes())
        self.files[1].write(index.tobytes())
        self.n += len(self.buffer)
        self.buffer = []

    def close(self):
        self.flush()
        for f in self.files:
            f.close()


def _cache_key(corpus_paths, vocab_file, max_len, seed, lowercase):
    inputs = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in corpus_paths]
    return {"format": SHARD_FORMAT, "inputs": inputs, "vocab_sha256": _sha256(vocab_file),
            "max_len": max_len, "seed": seed, "lowercase": lowercase}


def prepare_corpus(corpus_paths, vocab_file, out_dir, max_len=128, workers=2, seed=0, lowercase=True,
                   progress=False) -> Path:
    """Tokenize, pack and write the corpus to out_dir; return out_dir. Reuses out_dir when its
    meta.json was written from the same inputs (paths, sizes, mtimes), vocab, max_len and seed."""
    from tokenizer import Tokenizer   # the tokenizer chapter; imported here so readers need no vocab

    paths = [require_file(p) for p in ([corpus_paths] if isinstance(corpus_paths, (str, Path)) else corpus_paths)]
    vocab_file, out_dir = require_file(vocab_file, "a WordPiece vocab, one token a line"), Path(out_dir)
    key = _cache_key(paths, vocab_file, max_len, seed, lowercase)
    if (out_dir / "meta.json").is_file() and json.loads((out_dir / "meta.json").read_text()).get("key") == key:
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "meta.json").unlink(missing_ok=True)
    tokenizer = Tokenizer.from_vocab_file(vocab_file, lowercase=lowercase)
    dtype = np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max + 1 else np.int32
    writer, counts = _ExampleWriter(out_dir, max_len, dtype), Counter()

    def counted(documents):
        for document in documents:
            counts.update(documents=1, sentences=len(document), tokens=sum(map(len, document)))
            yield document

    documents = counted(_tokenized_documents(tokenizer, paths, workers, progress))
    for input_ids, token_types in pack_examples(documents, max_len, random.Random(seed),
                                                tokenizer.cls_id, tokenizer.sep_id):
        counts.update(kept_tokens=len(input_ids) - (3 if token_types[-1] else 2))   # minus [CLS], [SEP]s
        writer.add(input_ids, token_types)
    writer.close()
    if writer.n == 0:
        raise DataError(f"{paths[0]}: no examples (the corpus has no tokens)")
    for name in ("examples.bin", "index.bin"):
        os.replace(out_dir / f"{name}.tmp", out_dir / name)
    meta = {"num_examples": writer.n, "max_len": max_len, "vocab_size": len(tokenizer),
            "dtype": np.dtype(dtype).name, "pad_id": tokenizer.pad_id, **counts,
            "truncated_tokens": counts["tokens"] - counts["kept_tokens"], "key": key}
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1))
    return out_dir


class PretrainingData:
    """Batches of packed examples for one process of a (possibly multi-process) run.

    batch_size is per process. The position (`step`, global batches served) is the whole state:
    save state_dict() in the checkpoint and load_state_dict() on resume to continue with the very
    next examples. Every epoch is a new permutation; the last partial global batch is dropped."""

    def __init__(self, shard_dir, batch_size, rank=0, world_size=1, seed=0):
        shard_dir = Path(shard_dir)
        meta = json.loads(require_file(shard_dir / "meta.json", "run `python data.py prepare`").read_text())
        self.max_len, self.vocab_size = meta["max_len"], meta["vocab_size"]
        self.num_examples, self.pad_id = meta["num_examples"], meta["pad_id"]
        self.examples = np.memmap(shard_dir / "examples.bin", dtype=meta["dtype"], mode="r",
                                  shape=(self.num_examples, self.max_len))
        self.index = np.memmap(shard_dir / "index.bin", dtype=np.int32, mode="r", shape=(self.num_examples, 2))
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.batch_size, self.rank, self.world_size, self.seed = batch_size, rank, world_size, seed
        self.global_batch = batch_size * world_size
        if self.num_examples < self.global_batch:
            raise DataError(f"{shard_dir}: {self.num_examples} examples, fewer than one global batch "
                            f"({batch_size} x {world_size} processes)")
        self.steps_per_epoch = self.num_examples // self.global_batch
        self.step, self._order = 0, (None, None)

    def _permutation(self, epoch):
        if self._order[0] != epoch:
            self._order = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)
        return self._order[1]

    def next_batch(self) -> dict:
        epoch, s = divmod(self.step, self.steps_per_epoch)
        start = s * self.global_batch + self.rank * self.batch_size
        rows = self._permutation(epoch)[start:start + self.batch_size]
        self.step += 1
        input_ids = torch.from_numpy(self.examples[rows].astype(np.int64))           # (B, L)
        length, first = torch.from_numpy(self.index[rows].astype(np.int64)).unbind(1)  # (B,), (B,)
        position = torch.arange(self.max_len)
        attention_mask = position < length[:, None]                                    # (B, L) bool
        token_type_ids = ((position >= first[:, None]) & attention_mask).long()        # (B, L)
        return {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}

    @property
    def epoch(self) -> int:
        return self.step // self.steps_per_epoch

    def state_dict(self) -> dict:
        return {"step": self.step, "seed": self.seed, "global_batch": self.global_batch,
                "num_examples": self.num_examples}

    def load_state_dict(self, state) -> None:
        for name in ("seed", "global_batch", "num_examples"):
            if state[name] != getattr(self, name):
                raise DataError(f"data position saved with {name}={state[name]}, but this run has "
                                f"{getattr(self, name)}: resume with the same data, seed and global batch")
        self.step = state["step"]


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
    c = sub.add_parser("prepare", help="tokenize and pack a corpus into shards (PAPER.md §3)")
    c.add_argument("--corpus", nargs="+", required=True, help="text files, one sentence a line, .gz ok")
    c.add_argument("--vocab", default=None, help="default: DATA_DIR/vocab/scivocab_uncased.txt")
    c.add_argument("--data-dir", default=default_data_dir())
    c.add_argument("--out-dir", default="data/shards")
    c.add_argument("--max-len", type=int, default=128, help="sequence length (paper: 128, then 512)")
    c.add_argument("--workers", type=int, default=2)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=True)
    c = sub.add_parser("counts", help="print the counts of every benchmark split")
    c.add_argument("--data-dir", default=default_data_dir())
    return p.parse_args(argv)


def main(args):
    try:
        if args.command == "prepare":
            print(f"writing shards to {args.out_dir}")
            vocab = args.vocab or Path(args.data_dir) / "vocab" / "scivocab_uncased.txt"
            out = prepare_corpus(args.corpus, vocab, args.out_dir, args.max_len, args.workers, args.seed,
                                 args.lowercase, progress=True)
            meta = json.loads((out / "meta.json").read_text())
            print({k: v for k, v in meta.items() if k != "key"})
        elif args.command == "counts":
            print_counts(args.data_dir)
    except DataError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main(parse_args())
