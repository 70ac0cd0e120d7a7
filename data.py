"""
The data of ELECTRAMed (docs/paper.md §1, §3, §4): PubMed text -> packed pre-training examples, and the
readers of the fine-tuning benchmarks. Pre-training text (one sentence a line, a blank line between
documents: BlueBERT's PubMed corpus, or NCBI's baseline XML turned into it) is tokenized, packed into
`[CLS] A [SEP] B [SEP]` examples as ELECTRA's build_pretraining_dataset.py does, and written to memory-mapped
shards that `PretrainingData` reads, each process its own part, from a position saved in the checkpoint.

    python data.py prepare --corpus data/pubmed/corpus.txt --out-dir data/shards
    python data.py pubmed --files 1-10 --out-dir data/pubmed            # NCBI baseline XML, md5-checked
    python data.py pubmed-xml data/pubmed/*.xml.gz --out data/pubmed/corpus.txt
    python data.py download all --out-dir data                           # the benchmarks, sha256-checked
    python data.py counts --data-dir data                                # counts of every split

Writes: shards (examples.bin, index.bin, meta.json), corpus text, downloaded files.
References: google-research/electra build_pretraining_dataset.py; conlleval; BLUE; SQuAD v1.1; BioASQ task B.
"""
import argparse
import gzip
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from functools import partial
from pathlib import Path
from typing import Iterator
from xml.etree import ElementTree

import numpy as np
import regex
import torch
from tqdm import tqdm

from tokenizer import Tokenizer, batched


class DataError(ValueError):
    """Bad or missing input. The message starts with "path:line: " when one line is at fault."""


# CHOICE: a clone alone must run the README's first command, so the repository carries a small sample
# (sample_data/SOURCE.md: 693 NCBI-disease abstracts and SciBERT's scivocab), the last resort, never a
# silent one (note_if_sample, appendix A.1).
SAMPLE_DATA_DIR = Path(__file__).resolve().parent / "sample_data"


def default_data_dir(embedded=True) -> str:
    """The data directory every CLI uses by default: $ELECTRAMED_DATA, else data/ if it exists, else the
    embedded sample. Commands that write (downloads) pass embedded=False and get data/ instead."""
    if os.environ.get("ELECTRAMED_DATA"):
        return os.environ["ELECTRAMED_DATA"]
    return "data" if os.path.isdir("data") or not embedded else str(SAMPLE_DATA_DIR)


# ---------------------------------------------------------------------------------------------
# 1. Reading PubMed documents                                                   (docs/paper.md §1)
#    The paper's corpus (BlueBERT's PubMed abstracts): one sentence per line, a blank line between
#    documents, UTF-8, plain or gzipped, one or many files. A file's end also ends a document.
#    CHOICE: a file without blank lines is one document, as ELECTRA's builder reads it (no blank line,
#    no flush), cut every MAX_DOCUMENT_LINES lines to keep memory flat.
# ---------------------------------------------------------------------------------------------
MAX_DOCUMENT_LINES = 10_000   # a longer run of lines is cut, so memory never holds a whole file


def read_documents(paths) -> Iterator[list[str]]:
    """Documents (lists of sentences) of one or many corpus files, in order. An empty corpus file is
    an error: it almost always means a wrong path or a failed download."""
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
# 2. Packing sentences into examples                (docs/paper.md §3; ELECTRA's ExampleBuilder)
#    Sentences of one document are collected until they reach the target length (max_len, or 5% of
#    the time a random length in [5, max_len]); the end of a document flushes what is collected, so
#    no example spans two documents. 10% of examples are one segment; otherwise the first segment
#    aims at (target - 3) // 2 tokens. Example = [CLS] A [SEP] B [SEP], token types 0 ... 0 1 ... 1.
#    As in ELECTRA, a short sentence still joins A after a longer one went to B (A and B can
#    interleave), and the sentence that crosses the target is cut at max_len: ~10% of tokens are lost.
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
# 3. Shards on disk and a resumable reader                                 (docs/paper.md §3, §5)
#    prepare_corpus tokenizes, packs and writes the examples to out_dir:
#      examples.bin  (N, max_len) token ids, padded with [PAD]=0, uint16 (int32 if the vocab is larger)
#      index.bin     (N, 2) int32: real length, length of the type-0 part ([CLS] A [SEP])
#      meta.json     counts, max_len, vocab size and hash, and the inputs (the cache key), written last
#      heldout/      the same for every `heldout_every`-th document (0, k, 2k, ...): never trained on,
#                    packed alike, so the run can score both networks on text it has not seen
#    PretrainingData reads them through np.memmap: global batch s of an epoch is examples
#    [s*B*W, (s+1)*B*W) of a permutation seeded by (seed, epoch); rank r takes [r*B, (r+1)*B).
# ---------------------------------------------------------------------------------------------

def prepare_corpus(corpus_paths, vocab_file, out_dir, max_len=128, workers=2, seed=0, lowercase=True,
                   progress=False, heldout_every=0) -> Path:
    """Tokenize, pack and write the corpus to out_dir; return out_dir, reused when its meta.json has the
    same cache key (shard_key). heldout_every=k > 0 keeps documents 0, k, 2k, ... out of training and
    packs them into out_dir/heldout/ (read it with PretrainingData(out_dir / "heldout", ...))."""
    paths = [require_file(p) for p in ([corpus_paths] if isinstance(corpus_paths, (str, Path)) else corpus_paths)]
    vocab_file, out_dir = require_file(vocab_file, "a WordPiece vocab, one token a line"), Path(out_dir)
    key = shard_key(paths, vocab_file, max_len, seed, lowercase, heldout_every)   # appendix A.2: the cache key
    meta = out_dir / "meta.json"
    if meta.is_file() and json.loads(meta.read_text()).get("key") == key:       # same inputs: reuse the shards
        return out_dir
    tokenizer = Tokenizer.from_vocab_file(vocab_file, lowercase=lowercase)
    counts, heldout_counts, heldout = Counter(), Counter(), []

    def training_documents(documents):        # counts every document and sets the held-out ones aside
        for i, document in enumerate(documents):
            tally = heldout_counts if heldout_every and i % heldout_every == 0 else counts
            tally.update(documents=1, sentences=len(document), tokens=sum(map(len, document)))
            if tally is heldout_counts:
                heldout.append(document)
            else:
                yield document

    def pack(documents):                      # each part packed with a fresh random.Random(seed)
        return pack_examples(documents, max_len, random.Random(seed), tokenizer.cls_id, tokenizer.sep_id)

    documents = tokenized_documents(tokenizer, paths, workers, progress)   # appendix A.3: in worker processes
    with ShardWriter(out_dir, tokenizer, max_len, key) as shards:          # appendix A.2: meta.json last
        if shards.write(pack(training_documents(documents)), counts) == 0:
            raise DataError(f"{paths[0]}: no examples (the corpus has no tokens)")
        counts["heldout_documents"] = heldout_counts["documents"]        # all counted once training streamed
        if heldout:                                                       # filled as the training part streamed
            shards.write(pack(heldout), heldout_counts, heldout=True)
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
        return self._batch(rows)

    def first_examples(self, n) -> dict:
        """Examples 0..n-1 in file order, as one batch (a fixed evaluation set; position unchanged)."""
        return self._batch(np.arange(min(n, self.num_examples)))

    def _batch(self, rows) -> dict:
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
# 4. Benchmark readers                                                          (docs/paper.md §4)
#    The layouts the field publishes its data sets in (BioBERT's datasets/, BLUE, SQuAD), each read into
#    one internal form. NER: CoNLL columns split on TAB (else on spaces), word first and tag last, a blank
#    line between sentences; tags BIO, IOB1 (BC5CDR: an entity starts with I-), IOBES/BIOES or BILOU,
#    typed or bare (BioBERT's B, I, O get DEFAULT_ENTITY_TYPE unless a type is given). IOBES and BILOU
#    become BIO (S, U -> B; E, L -> I); B/I/O tags are kept as spelt, IOB1 included (eval.py chunks IOB1
#    as conlleval does; the paper trained on BC5CDR's own tags). RE: TSV, the sentence and label columns
#    named by a header (BLUE `index sentence label`, GLUE `sentence label` or `text label`), else the
#    last two (BioBERT's train/dev). QA: SQuAD v1.1 JSON and BioASQ's golden JSON for factoid answers.
# ---------------------------------------------------------------------------------------------
TAG_PATTERN = re.compile(r"O|([BIESLU])(?:-(\S+))?")   # prefix, then the type (optional: bare tags)
TO_BIO = {"B": "B", "I": "I", "S": "B", "U": "B", "E": "I", "L": "I"}
DEFAULT_ENTITY_TYPE = "Entity"            # the type of bare tags when none is given (BC5CDR's type name)


def read_conll(path, entity_type=None, info=None) -> list[tuple[list[str], list[str]]]:
    """(words, BIO tags) per sentence. Runs of blank lines count as one break; `-DOCSTART-` lines
    (CoNLL-2003's document markers) are skipped. A line with one column or a bad tag is an error.
    'S-Drug' -> 'B-Drug'; 'L-Drug' -> 'I-Drug'; bare 'U' -> 'B-Entity'; 'I-Drug' after 'O' stays (IOB1).
    `info`, a dict when given, receives the layout found (conll_layout, appendix A.7)."""
    sentences, words, tags, seen = [], [], [], set()
    for line_no, line in _text_lines(path):
        columns = [c for c in (x.strip() for x in line.split("\t")) if c] if "\t" in line else line.split()
        if not columns or columns[0] == "-DOCSTART-":
            if words:
                sentences.append((words, tags))
                words, tags = [], []
            continue
        if len(columns) < 2:
            _fail(path, line_no, f"expected 'word tag', got {line!r} ({NER_FORMATS})")
        match = TAG_PATTERN.fullmatch(columns[-1])
        if not match:
            _fail(path, line_no, f"bad tag {columns[-1]!r} ({NER_FORMATS})")
        prefix, type_ = match[1] or "O", match[2] or entity_type or DEFAULT_ENTITY_TYPE
        seen.add(("TAB" if "\t" in line else "space", len(columns), prefix, bool(match[2])))
        words.append(columns[0])
        tags.append("O" if prefix == "O" else f"{TO_BIO[prefix]}-{type_}")
    if words:
        sentences.append((words, tags))
    if not sentences:
        raise DataError(f"{path}: no sentences ({NER_FORMATS})")
    if info is not None:
        info.update(conll_layout(seen, sentences))
    return sentences


def read_blue_tsv(path, info=None) -> list[tuple[str, str]]:
    """(sentence, label) rows of a TSV, with or without a header; UTF-8 with or without BOM; LF or
    CRLF line ends; blank lines only at the end. Labels are kept as spelt (finetune.py matches case).
    `info`, a dict when given, receives "header": the header's column names, or None."""
    rows, n_columns, where, header, blank = [], None, None, None, None
    for line_no, line in _text_lines(path):
        columns = line.split("\t")
        if not line.strip():
            blank = blank or line_no                  # an error only if a row follows
            continue
        if blank:
            _fail(path, blank, f"blank line ({RE_FORMATS})")
        if n_columns is None:
            n_columns, names = len(columns), [c.strip().lower() for c in columns]
            if n_columns < 2:
                _fail(path, line_no, f"expected at least 2 TAB-separated columns, got 1 ({RE_FORMATS})")
            sentence = next((i for i, c in enumerate(names) if c in ("sentence", "text")), None)
            if sentence is not None and "label" in names:
                where, header = (sentence, names.index("label")), names
                continue
            where = (n_columns - 2, n_columns - 1)      # no header: BioBERT's 'sentence<TAB>label'
        if len(columns) != n_columns:
            _fail(path, line_no, f"expected {n_columns} TAB-separated columns, got {len(columns)} ({RE_FORMATS})")
        sentence, label = columns[where[0]].strip(), columns[where[1]].strip()
        if not sentence or not label:
            _fail(path, line_no, f"empty sentence or label ({RE_FORMATS})")
        rows.append((sentence, label))
    if not rows:
        raise DataError(f"{path}: no rows ({RE_FORMATS})")
    if info is not None:
        info["header"] = header
    return rows


def read_squad(path, info=None) -> list[dict]:
    """One dict per question-context pair of a SQuAD v1.1 file: {"id", "question_id" (question_ids,
    appendix A.7), "question", "context", "answers": [{"text", "answer_start"}], "texts": all gold texts}.
    An answer not at its answer_start is left out of "answers" (kept in "texts", which scoring uses) and
    counted in info["misaligned"], as BERT's run_squad skips such an example ("Could not find answer").
    CHOICE: aligned means the exact characters at answer_start; run_squad's test is looser."""
    pairs, misaligned = [], 0
    try:
        for article in _load_json(path)["data"]:
            for paragraph in article["paragraphs"]:
                context = paragraph["context"]
                for qa in paragraph["qas"]:
                    gold = [(a["text"], int(a["answer_start"])) for a in qa.get("answers", [])]
                    answers = [{"text": t, "answer_start": s} for t, s in gold if 0 <= s and context[s:s + len(t)] == t]
                    misaligned += len(gold) - len(answers)
                    pairs.append({"id": str(qa["id"]), "question": qa["question"], "context": context,
                                  "answers": answers, "texts": [t for t, _ in gold]})
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path}: not SQuAD v1.1 JSON (missing or bad field {e}; accepted: "
                        "{'data': [{'paragraphs': [{'context', 'qas': [{'id', 'question', 'answers'}]}]}]})") from None
    if not pairs:
        raise DataError(f"{path}: no questions")
    ids, rule = question_ids(pairs)
    for p, q in zip(pairs, ids):
        p["question_id"] = q
    if info is not None:
        info.update(misaligned=misaligned, question_ids=rule, questions=len(set(ids)))
    return pairs


def read_bioasq_golden(path) -> dict[str, list[list[str]]]:
    """Factoid question id -> its golden answers, each a list of synonyms (BioASQ task B JSON).
    CHOICE: a flat list of strings (some BioASQ years) is read as ONE answer with those synonyms."""
    golden = {}
    try:
        for i, q in enumerate(_load_json(path)["questions"]):
            if q["type"] != "factoid":
                continue
            answer = q.get("exact_answer")
            if isinstance(answer, list) and answer and all(isinstance(a, str) for a in answer):
                answer = [answer]
            if (not isinstance(answer, list) or not answer
                    or not all(isinstance(s, list) and s and all(isinstance(x, str) for x in s) for s in answer)):
                raise DataError(f"{path}: questions[{i}] (id {q['id']!r}): exact_answer must be a "
                                f"non-empty list of synonym lists, got {answer!r}")
            golden[q["id"]] = answer
    except (KeyError, TypeError) as e:
        raise DataError(f"{path}: not BioASQ golden JSON (missing or bad field {e})") from None
    return golden


# A fine-tuning data set is one folder, read by read_task: train, dev (or devel) and test files of one kind.
SPLIT_NAMES = {"train": ("train",), "dev": ("dev", "devel"), "test": ("test",)}   # devel: BioBERT's NER files
EXTENSIONS = {"ner": (".txt", ".tsv", ".conll"), "re": (".tsv", ".csv", ".txt"), "qa": (".json",)}
READERS = {"ner": read_conll, "re": read_blue_tsv, "qa": read_squad}


def read_task(kind, folder, entity_type=None, negative=None, dev_fraction=0.1, test_batches=None) -> tuple[dict, str]:
    """The splits of a data set of `kind` ("ner", "re" or "qa") in `folder`, and one line saying what
    was read. Splits: {"train", "dev", "test", "files": split -> file read, "layout": "conll", "tsv",
    "squad" or "bioasq", "negative": RE's no-relation class as train spells it (`negative` or guessed)}.
    A QA folder with golden-*.json (or without test.json) is BioASQ's layout, else SQuAD v1.1's."""
    folder = Path(folder)
    if kind == "qa" and (any(folder.glob("golden-*.json")) or not (folder / "test.json").is_file()):
        return read_bioasq_task(folder, dev_fraction, test_batches)
    read = partial(read_conll, entity_type=entity_type) if kind == "ner" else READERS[kind]
    splits, infos = {"files": {}}, {}
    for split in SPLIT_NAMES:
        path = split_file(kind, folder, split, required=split != "dev")
        if path:
            infos[split] = {}
            splits[split], splits["files"][split] = read(path, info=infos[split]), path
    dev_note = "dev file"
    if "dev" not in splits:
        group = (lambda pair: pair["question_id"]) if kind == "qa" else None
        train_file = splits["files"]["train"]
        splits["train"], splits["dev"], drawn = split_off_dev(splits["train"], dev_fraction, train_file, group)
        dev_note = f"no dev file: dev is {drawn}"
    # appendix A.7: RE's negative class and label spelling, QA's answers, and what the line says
    finish = {"ner": finish_conll, "re": finish_tsv, "qa": finish_squad}[kind]
    return splits, finish(splits, infos, entity_type, negative) + "; " + dev_note


def split_file(kind, folder, split, required=True) -> Path | None:
    """The file of one split (train, dev|devel, test with the kind's extensions); a missing file is an
    error naming what was looked for, unless not `required` (then None)."""
    names = [f"{name}{ext}" for name in SPLIT_NAMES[split] for ext in EXTENSIONS[kind]]
    found = [folder / name for name in names if (folder / name).is_file()]
    if len(found) > 1:
        raise DataError(f"{folder}: {len(found)} files for the {split} split "
                        f"({', '.join(p.name for p in found)}): keep one")
    if not found and required:
        raise DataError(f"{folder / names[0]}: missing {split} split for task kind {kind!r} "
                        f"(looked for {', '.join(names)})")
    return found[0] if found else None


def split_off_dev(examples, fraction, path, group=None) -> tuple[list, list, str]:
    """(train, dev, what was drawn): a fixed share of the examples held out as dev, drawn with seed 0
    whatever the run seed, both kept in file order. `group(example)` keeps a group (a question's
    snippets) on one side. A set too small to keep a training example is an error naming the file."""
    keys = sorted({group(e) for e in examples}) if group else list(range(len(examples)))
    held = set(random.Random(0).sample(keys, min(len(keys), max(1, round(fraction * len(keys))))))
    side = [(group(e) if group else i) in held for i, e in enumerate(examples)]
    train, dev = [e for e, s in zip(examples, side) if not s], [e for e, s in zip(examples, side) if s]
    unit = "questions" if group else "examples"
    if not train:
        raise DataError(f"{path}: too few {unit} to train on ({len(keys)}, of which {len(held)} held out as dev "
                        f"since there is no dev file): add a dev file or more {unit}")
    return train, dev, f"{len(held)} of train's {len(keys)} {unit} ({fraction:.0%}, seed 0)"


def read_bioasq_task(folder, dev_fraction=0.1, test_batches=None) -> tuple[dict, str]:
    """BioASQ's layout: train and dev from train.json, split by question, and one test batch per
    test-*.json ({batch: {"examples", "golden"}}) with the factoid questions of its golden-*.json.
    `test_batches`: e.g. "1,3" keeps test-7b-1.json and test-7b-3.json."""
    info = {}
    pairs = read_squad(split_file("qa", folder, "train"), info)
    train, dev, _ = split_off_dev(pairs, dev_fraction, folder / "train.json", group=lambda p: p["question_id"])
    dev_golden = {}
    for p in dev:
        dev_golden.setdefault(p["question_id"], set()).update(p["texts"])
    tests = {}
    for path in sorted(folder.glob("test-*.json")):
        name = path.stem[len("test-"):]
        if not test_batches or name.rsplit("-", 1)[-1] in str(test_batches).split(","):
            golden = read_bioasq_golden(require_file(folder / f"golden-{name}.json", f"golden answers of {path}"))
            tests[name] = {"examples": read_squad(path), "golden": golden}
    if not tests:
        raise DataError(f"{folder}: no test-*.json batches (with golden-*.json answers) selected")
    train, note = qa_train_pairs(train, [info], folder / "train.json")       # appendix A.7: misaligned answers
    dev = {"dev": {"examples": dev, "golden": {q: [sorted(s)] for q, s in dev_golden.items()}}}
    splits = {"train": train, "dev": dev, "test": tests, "files": {"train": folder / "train.json"}, "layout": "bioasq"}
    return splits, describe_bioasq(splits, info, dev_fraction, note)             # appendix A.7

# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("prepare", help="tokenize and pack a corpus into shards (docs/paper.md §3)")
    c.add_argument("--corpus", nargs="+", required=True, help="text files, one sentence a line, .gz ok")
    c.add_argument("--vocab", default=None, help="default: DATA_DIR/vocab/scivocab_uncased.txt")
    c.add_argument("--data-dir", default=default_data_dir())
    c.add_argument("--out-dir", default="data/shards")
    c.add_argument("--max-len", type=int, default=128, help="sequence length (paper: 128, then 512)")
    c.add_argument("--workers", type=int, default=2)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=True)
    # the commands that fetch, convert and count data (appendix A.4-A.6)
    c = sub.add_parser("pubmed", help="download NCBI PubMed baseline XML files, md5-checked")
    c.add_argument("--files", default="1", help="file numbers, e.g. 1-10,15 (the 2026 baseline has ~1,300)")
    c.add_argument("--out-dir", default="data/pubmed")
    c.add_argument("--year", default=PUBMED_YEAR, help="two-digit baseline year in the file names")
    c.add_argument("--base-url", default=PUBMED_BASE_URL)
    c.add_argument("--retries", type=int, default=4)
    c = sub.add_parser("pubmed-xml", help="PubMed XML (.xml or .xml.gz) -> corpus text, abstracts only")
    c.add_argument("files", nargs="+")
    c.add_argument("--out", default="data/pubmed/corpus.txt")
    c = sub.add_parser("download", help="fetch the benchmark files, sha256-checked")
    c.add_argument("task", choices=[*BENCHMARKS, "all"])
    c.add_argument("--out-dir", default=default_data_dir(embedded=False))
    c.add_argument("--mirror", default=None, help="copy from this directory (laid out like the data dir)")
    c.add_argument("--base-url", default=GITHUB_RAW_URL)
    c.add_argument("--bioasq-dir", default=None, help="your registered copy of the BioASQ files")
    c.add_argument("--accept-bioasq-terms", action="store_true", help=BIOASQ_TERMS)
    c.add_argument("--retries", type=int, default=4)
    c = sub.add_parser("counts", help="print the counts of every benchmark split")
    c.add_argument("--data-dir", default=default_data_dir())
    return p.parse_args(argv)


def main(args):
    try:
        if args.command != "prepare":
            return run_data_command(args)                  # appendix A.6
        print(f"writing shards to {args.out_dir}")
        vocab = args.vocab or Path(args.data_dir) / "vocab" / "scivocab_uncased.txt"
        note_if_sample(vocab, *args.corpus)
        out = prepare_corpus(args.corpus, vocab, args.out_dir, args.max_len, args.workers, args.seed,
                             args.lowercase, progress=True)
        meta = json.loads((out / "meta.json").read_text())
        print({k: v for k, v in meta.items() if k != "key"})
        print(f"padding: {100 * padding_share(out):.1f}% of the {meta['num_examples']:,} x {args.max_len} positions")
    except DataError as e:
        raise SystemExit(f"error: {e}") from None


# =============================================================================================
# Appendix: engineering the data needs. A student can skip it: files, caches, worker processes,
# PubMed's XML, downloads; the method is above.
# =============================================================================================

# A.1 Files: clear errors that name the file and line, and the note that the embedded sample is used

SAMPLE_NOTE = ("=> no data directory given or found: using the embedded sample (sample_data/, 693 NCBI-disease "
               "abstracts, SciBERT's scivocab, no benchmarks); see the README for the full data")


def note_if_sample(*paths) -> bool:
    """Print SAMPLE_NOTE (one line) when any of `paths` lies in the embedded sample; True if it did."""
    used = any(SAMPLE_DATA_DIR in [Path(p).resolve(), *Path(p).resolve().parents] for p in paths if p)
    if used:
        print(SAMPLE_NOTE)
    return used


def require_file(path, hint="") -> Path:
    """`path` as a Path if it is a file; otherwise a DataError saying which file and how to get it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found" + (f" ({hint})" if hint else ""))
    return path


def file_digest(path, algorithm) -> str:
    """Hex digest ("md5", "sha256", ...) of a file."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def _fail(path, line_no, message):
    raise DataError(f"{path}:{line_no}: {message}")


def _open_binary(path):
    path = require_file(path)
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _text_lines(path):
    """(line number, line) of a UTF-8 text file, without BOM or line end ("\\r\\n" or "\\n").
    Lines split on "\\n" only, so a stray "\\r" inside a sentence cannot break a row in two."""
    with open(require_file(path), "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as e:
                _fail(path, line_no, f"not UTF-8 ({e.reason} at byte {e.start})")
            yield line_no, line.rstrip("\n").rstrip("\r")


def _load_json(path):
    path = require_file(path)
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None


# A.2 Writing shards: per-process temporary files, renamed when complete, meta.json last; reused when current
SHARD_FORMAT = 1
SHARD_FILES = ("examples.bin", "index.bin")
WRITE_CHUNK = 4096   # examples buffered before a write: memory does not grow with the corpus


def shard_key(corpus_paths, vocab_file, max_len, seed, lowercase, heldout_every) -> dict:
    """What shards are made from (kept in meta.json): corpus files (path, size, mtime), vocab hash, settings."""
    inputs = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in corpus_paths]
    return {"format": SHARD_FORMAT, "inputs": inputs, "vocab_sha256": file_digest(vocab_file, "sha256"),
            "max_len": max_len, "seed": seed, "lowercase": lowercase, "heldout_every": heldout_every}


class ShardWriter:
    """Writes prepare_corpus's parts (out_dir, out_dir/heldout) under per-process temporary names; on
    leaving without an error, renames them into place and writes each part's meta.json, out_dir's last:
    it marks the shards complete. Several processes (nodes) may prepare into one shared directory."""

    def __init__(self, out_dir, tokenizer, max_len, key):
        self.out_dir, self.max_len, self.key, self.pad_id = Path(out_dir), max_len, key, tokenizer.pad_id
        self.dtype = np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max + 1 else np.int32
        self.common = {"max_len": max_len, "vocab_size": len(tokenizer), "pad_id": tokenizer.pad_id,
                       "dtype": np.dtype(self.dtype).name}
        self.parts = {}                       # "" or "heldout" -> (examples written, counts)

    def __enter__(self):
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "meta.json").unlink(missing_ok=True)
        shutil.rmtree(self.out_dir / "heldout", ignore_errors=True)
        return self

    def _temporary(self, part, name) -> Path:
        return self.out_dir / part / f"{name}.tmp{os.getpid()}"

    def write(self, examples, counts, heldout=False) -> int:
        """Append the (input_ids, token_types) examples, padded, to the part's temporary files, WRITE_CHUNK
        at a time; count the tokens kept (all but [CLS] and [SEP]s) and cut. Returns the examples written."""
        part, n = "heldout" if heldout else "", 0
        (self.out_dir / part).mkdir(exist_ok=True)
        with open(self._temporary(part, "examples.bin"), "wb") as rows_file, \
                open(self._temporary(part, "index.bin"), "wb") as index_file:
            for chunk in batched(examples, WRITE_CHUNK):
                rows = np.full((len(chunk), self.max_len), self.pad_id, dtype=self.dtype)
                index = np.zeros((len(chunk), 2), dtype=np.int32)
                for i, (input_ids, token_types) in enumerate(chunk):
                    rows[i, :len(input_ids)] = input_ids
                    index[i] = len(input_ids), token_types.count(0)
                    counts.update(kept_tokens=len(input_ids) - (3 if token_types[-1] else 2))
                rows_file.write(rows.tobytes())
                index_file.write(index.tobytes())
                n += len(chunk)
        counts.update(truncated_tokens=counts["tokens"] - counts["kept_tokens"])
        self.parts[part] = n, counts
        return n

    def __exit__(self, error_type, *_):
        try:
            if error_type is None:
                for part, (n, counts) in sorted(self.parts.items(), reverse=True):   # out_dir last: complete
                    if n:
                        for name in SHARD_FILES:
                            os.replace(self._temporary(part, name), self.out_dir / part / name)   # atomic
                        meta = {"num_examples": n, **self.common, **counts, "key": self.key}
                        (self.out_dir / part / "meta.json").write_text(json.dumps(meta, indent=1))
        finally:
            for part in ("", "heldout"):
                for name in SHARD_FILES:
                    self._temporary(part, name).unlink(missing_ok=True)


def padding_share(shard_dir) -> float:
    """The share of the shards' (N, L) positions that are padding: the work --unpad saves (train_pretrain.py),
    large since ELECTRA's examples never cross a document and short documents leave long padded tails."""
    shards = PretrainingData(shard_dir, batch_size=1)
    return 1 - float(shards.index[:, 0].sum(dtype=np.int64)) / shards.examples.size


# A.3 Tokenizing in worker processes, in order, in bounded memory

def tokenized_documents(tokenizer, paths, workers, progress) -> Iterator[list[list[int]]]:
    """read_documents with every sentence as token ids. All lines go to one pool of `workers` processes
    as one stream, a few thousand lines at a time (tokenizer.encode_lines; bench/results_data.md §2);
    each document's sentence count rides alongside to regroup them."""
    sizes = deque()

    def lines():
        for document in read_documents(paths):
            sizes.append(len(document))
            yield from document

    ids = tokenizer.encode_lines(lines(), workers=workers)
    try:
        for first in tqdm(ids, desc="documents", unit=" doc", disable=not progress):
            yield [first] + [next(ids) for _ in range(sizes.popleft() - 1)]
    finally:
        ids.close()


# A.4 PubMed's own distribution: NCBI's yearly baseline, ~1,300 files pubmedYYnNNNN.xml.gz, each ~30,000
#     <PubmedArticle> records. Only the abstract is kept (every <AbstractText> section, in order), split
#     into sentences by the rules below; records without an abstract are skipped.
ABBREVIATIONS = {  # a period after these does not end a sentence (lower-cased, without the final ".")
    "e.g", "i.e", "al", "fig", "figs", "vs", "cf", "approx", "ca", "no", "nos", "dr", "mr",
    "mrs", "ms", "prof", "st", "vol", "ref", "refs", "eq", "eqs", "sp", "spp", "var", "subsp", "resp",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "inc", "ltd", "co"}
SENTENCE_END = regex.compile(r"""[.?!]['")\]]*\s+(?=['"(\[]?[\p{Lu}\d])""")   # end mark, then a capital/digit


def split_sentences(text) -> list[str]:
    """Sentences of an abstract: split after . ? ! (and closing quotes or brackets) followed by whitespace
    and an upper-case letter, a digit or an opening bracket, unless the period ends an abbreviation
    ("e.g.", "et al.", "Fig.", "vs."), a single initial ("J. Smith") or a dotted acronym ("U.S.").
    "Doses were 5 mg vs. 10 mg. Fig. 2 shows it." -> ["Doses were 5 mg vs. 10 mg.", "Fig. 2 shows it."]"""
    text = " ".join(text.split())
    sentences, start = [], 0
    for match in SENTENCE_END.finditer(text):
        before = text[start:match.start() + 1]
        last_word = before.rsplit(" ", 1)[-1].lstrip("([\"'").lower()
        if match.group()[0] == "." and (last_word[:-1] in ABBREVIATIONS
                                        or regex.fullmatch(r"(\p{L}\.)+", last_word)):
            continue
        sentences.append(text[start:match.end()].strip())
        start = match.end()
    if text[start:].strip():
        sentences.append(text[start:].strip())
    return sentences


def pubmed_xml_to_documents(xml_path) -> Iterator[list[str]]:
    """Sentences of each abstract of a PubMed XML file (.xml or .xml.gz), streamed record by record."""
    with _open_binary(xml_path) as f:
        try:
            for _, element in ElementTree.iterparse(f, events=("end",)):
                if element.tag != "PubmedArticle":
                    continue
                sections = [" ".join("".join(a.itertext()).split()) for a in element.iter("AbstractText")]
                sentences = split_sentences(" ".join(s for s in sections if s))
                element.clear()   # keep memory flat over a 30,000-record file
                if sentences:
                    yield sentences
        except ElementTree.ParseError as e:
            raise DataError(f"{xml_path}:{e.position[0]}: bad XML ({e})") from None


def write_corpus(xml_paths, out_path, progress=False) -> dict:
    """The corpus format (one sentence a line, blank line between documents) from PubMed XML files."""
    out_path, counts = Path(out_path), Counter()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            for path in tqdm(xml_paths, desc="xml files", disable=not progress):
                for sentences in pubmed_xml_to_documents(path):
                    out.write("\n".join(sentences) + "\n\n")
                    counts.update(documents=1, sentences=len(sentences))
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return dict(counts)


# A.5 Downloads (docs/paper.md §1, §4), each checked against a published or recorded checksum before it
#     is kept; network errors retried with exponential backoff; a partial dest.part resumed by an HTTP Range
#     request. PubMed: NCBI's baseline files, each beside its .md5 ("MD5(pubmedYYnNNNN.xml.gz)= <hex>").
#     Benchmarks: the GitHub commits named in each data folder's SOURCE.md (BASE/owner/repo/commit/path).
PUBMED_BASE_URL = "https://ftp.ncbi.nlm.nih.gov/pubmed/baseline"
PUBMED_YEAR = "26"   # each December's baseline replaces the last one (NLM, "PubMed 2022 Baseline Released")
GITHUB_RAW_URL = "https://raw.githubusercontent.com"
REPOS = {
    "electramed": "gmpoli/electramed/674c6151001cae52d2abba7b4d0c0677a7c5f01a",
    "bio_electra": "SciCrunch/bio_electra/7a53526773e047c02f03400f61a906a636b9054d",
    "biobert": "issifuabdulmajeed/EDANER_4_BioBERT/832b988e2ab8a88be7247283a4d82bfbf449cb9a",
}
_SPLITS = ("train", "dev", "test")
BENCHMARKS = {  # task -> [(file in the data dir, repository, path there, sha256)]
    "bc5cdr": [(f"{s}.txt", "electramed", f"data/NER/bc5cdr/{s}.txt", h) for s, h in zip(_SPLITS, [
        "cc95011df5d0eba32a10ed201db448993183e465643c4eaf8dfc2987423e418f",
        "0ec1066941e69fec660ea503033127d8826ee237c12b319a421a4ccfe431179f",
        "256b185cca1f096d12622c75f9c5ee0b0f2b8432a71170f4ea74778b99785894"])],
    "ncbi_disease": [(f"{s}.txt", "electramed", f"data/NER/NCBI-disease/{s}.txt", h) for s, h in zip(_SPLITS, [
        "e8197dcd8d9d7bef03bbff8786d948f642aa83e83c6261e4e2b077a535106742",
        "9acfc0954164b27e5a4e33a825c05641920e7ca823ffbd6a7198f402484a388a",
        "30c7944720f51be84dfc599a325a7a2577085fa00e084edec08c4e7cbdbf44dc"])],
    "chemprot": [(f"{s}.tsv", "bio_electra", f"electra/data/finetuning_data/chemprot/{s}.tsv", h)
                 for s, h in zip(_SPLITS, [
                     "f69f85e7b449defe6bec4eea7005114293c2fc4919b9fb474411b9120239439b",
                     "71be2ade9dce952da88f09dc61fbc309f96d9698fbd64e6ef4cb597f3d87c3be",
                     "9b9774a598cbdbeb89894b4117cf35d102331860e91f4aed1e2ff8cc839cf2f0"])] + [
        ("blue/dev.tsv", "electramed", "data/RE/chemprot/dev.csv",
         "b6879bf179b82f294bc7c4d106e54ebdcf6521a92d0774c9a2b876e327e67fdf")],
    "ddi": [
        # CHOICE: BLUE's DDI train file has no public copy; ours was rebuilt from isegura/DDICorpus
        # (see ddi/SOURCE.md), so it comes only from a mirror of the project's data directory.
        ("train.tsv", None, "rebuilt from isegura/DDICorpus@819b0fa5 DDICorpus-2013.zip (ddi/SOURCE.md)",
         "e19a3f16e69a9f6284e7768490fcebd704302c791587697ca1bd83fa7fb5e321"),
        ("dev.tsv", "electramed", "data/RE/ddi-2013/dev.csv",
         "350d725f5f6e001a5d40471828a5b7e0a177e4d0f4cbb08b37f9869aa347f2b4"),
        ("test.tsv", "electramed", "data/RE/ddi-2013/test.csv",
         "9a67da1c6bb9c8a4109356f1275ceaae306a142d26beedc42ef636d07847c27b")],
    "bioasq": [
        ("train.json", "biobert", "datasets/QA/BioASQ/BioASQ-train-factoid-7b.json",
         "d0541552f185efddc2741792f268d975308878dd6e9f801ee0841332ae81a276"),
        *[(f"test-7b-{i}.json", "electramed", f"data/QA/BioASQ/BioASQ-test-factoid-7b-{i}.json", h)
          for i, h in enumerate([
              "c5fb7b98a79ef72cd9b7599fb367fc571aadabd8f0dc0e7ebd657701b4e6e345",
              "6426e6863642e6d89948f108a0abcde29122c9a5493d5cb6415afdd250549087",
              "6268b8f9313a17cd71a109459f9b112625df2dcf5f865871f06e339fe6a76c8b",
              "3b592a61c4d60e2269eb7c47ff764a431fb233a19235fb116955c16e8c1f33ec",
              "bb8950a6d480ace98e40f30886fc231f1e36703d36133f7b41bf5151b7ba9013"], 1)],
        *[(f"golden-7b-{i}.json", "electramed", f"data/QA/BioASQ/7B{i}_golden.json", h) for i, h in enumerate([
            "4a1982648f96559a7daae4c58f2c3528b3301b5a06334220413367fd45271cb9",
            "86d745d419f2099101112d501abd5b4e9304c5a65484317fdf3994e8f885618d",
            "15596ea3dbbe4be8124db84b4c7c7c76fb3f1ce8a4bd7cc8f830727a4ec1c0ff",
            "2e6b4b710c70cd82f5a131a7a9c0acdebe918b5858cf0c33178bdf698b657b27",
            "857442af3d6e11d49abe37f0539785f56cc53e872a95c55d442d644c35fb0926"], 1)]],
    "vocab": [("scivocab_uncased.txt", "electramed", "data/vocab/vocab.txt",
               "f0a650346e51ede8996710f79ba65d83fdb8da05b159f17037b74ba4e3a36c6f")],
}
BIOASQ_TERMS = ("BioASQ data needs registration: register at https://participants-area.bioasq.org, accept "
                "its terms, then either pass --accept-bioasq-terms (fetches BioBERT's and ELECTRAMed's "
                "preprocessed 7b files from GitHub) or --bioasq-dir DIR with train.json, test-7b-N.json "
                "and golden-7b-N.json (N = 1..5)")


def _retrying(action, what, retries, backoff):
    for attempt in range(retries + 1):
        try:
            return action()
        except urllib.error.HTTPError as e:
            if e.code < 500 and e.code not in (408, 429):
                raise DataError(f"{what}: HTTP {e.code} {e.reason}") from None
            error = e
        except (http.client.HTTPException, OSError) as e:   # URLError and ConnectionError are OSErrors
            error = e
        if attempt < retries:
            time.sleep(backoff * 2 ** attempt)
    raise DataError(f"{what}: failed after {retries + 1} tries ({error})")


def _download_once(url, part, progress):
    """Append url's bytes to `part`, asking only for the missing tail when part already has some."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as e:
        if e.code == 416:   # nothing left past `have`: the partial file is suspect, start over
            part.unlink()
            raise ConnectionError("range not satisfiable") from None
        raise
    mode = "ab" if have and response.status == 206 else "wb"   # a server that ignored the range: from byte 0
    with response, tqdm(unit="B", unit_scale=True, desc=part.name[:-5], disable=not progress) as bar:
        expected, written = int(response.headers.get("Content-Length", -1)), 0
        with open(part, mode) as f:
            while block := response.read(1 << 20):
                written += f.write(block)
                bar.update(len(block))
        if expected >= 0 and written < expected:
            raise ConnectionError(f"connection closed after {written} of {expected} bytes")


def fetch(source, dest, algorithm, checksum, retries=4, backoff=1.0, progress=False) -> Path:
    """Download url `source`, or copy it if it is a Path, to dest (kept as dest.part until complete) and
    check its md5/sha256 digest. A dest that already has the right digest is not fetched again."""
    dest = Path(dest)
    if dest.is_file() and file_digest(dest, algorithm) == checksum:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if isinstance(source, Path):
        shutil.copyfile(source, part)
    else:
        _retrying(lambda: _download_once(source, part, progress), source, retries, backoff)
    got = file_digest(part, algorithm)
    if got != checksum:
        part.unlink()
        detail = (": not the file ELECTRAMed used" if isinstance(source, Path)
                  else f" (got {got}, expected {checksum}); the download was deleted")
        raise DataError(f"{source}: {algorithm} checksum mismatch{detail}")
    os.replace(part, dest)
    return dest


def parse_file_numbers(spec) -> list[int]:
    """"1-3,7" -> [1, 2, 3, 7]: baseline file numbers."""
    numbers = []
    for piece in spec.split(","):
        low, _, high = piece.strip().partition("-")
        if not low.isdigit() or (high and not high.isdigit()) or int(high or low) < int(low):
            raise DataError(f"bad file numbers {spec!r}: use e.g. 1-10,15")
        numbers += range(int(low), int(high or low) + 1)
    return numbers


def download_pubmed(numbers, out_dir, year=PUBMED_YEAR, base_url=PUBMED_BASE_URL, retries=4, backoff=1.0,
                    progress=False) -> list[Path]:
    """Baseline files pubmed{year}n{NNNN}.xml.gz, each checked against NCBI's .md5 beside it."""
    paths = []
    for number in numbers:
        name = f"pubmed{year}n{number:04d}.xml.gz"
        url = f"{base_url.rstrip('/')}/{name}"
        md5_text = _retrying(lambda: urllib.request.urlopen(url + ".md5", timeout=60).read().decode(),
                             url + ".md5", retries, backoff)
        match = re.fullmatch(r"MD5\((.+)\)= ?([0-9a-f]{32})\s*", md5_text)
        if not match or match.group(1) != name:
            raise DataError(f"{url}.md5: expected 'MD5({name})= <32 hex digits>', got {md5_text[:80]!r}")
        paths.append(fetch(url, Path(out_dir) / name, "md5", match.group(2), retries, backoff, progress))
    return paths


def download_benchmark(task, out_dir, mirror=None, base_url=GITHUB_RAW_URL, bioasq_dir=None,
                       accept_bioasq_terms=False, retries=4, backoff=1.0) -> list[str]:
    """Fetch (or copy from `mirror`, a directory laid out like the data directory) every file of
    one task into out_dir/task/. Returns what could not be fetched, with how to get it."""
    missing = []
    for name, repo, path, checksum in BENCHMARKS[task]:
        dest = Path(out_dir) / task / name
        if mirror:                                               # a local copy, checked alike
            fetch(require_file(Path(mirror) / task / name), dest, "sha256", checksum)
        elif task == "bioasq" and bioasq_dir:
            fetch(require_file(Path(bioasq_dir) / name), dest, "sha256", checksum)
        elif task == "bioasq" and not accept_bioasq_terms:
            return [f"{task}: {BIOASQ_TERMS}"]
        elif repo is None:
            missing.append(f"{task}/{name}: no public copy ({path}); copy it with --mirror")
        else:
            fetch(f"{base_url.rstrip('/')}/{REPOS[repo]}/{path}", dest, "sha256", checksum, retries, backoff)
    return missing


# A.6 The commands that fetch, convert and count data (python data.py pubmed / pubmed-xml / download / counts)

def run_data_command(args) -> None:
    """Run one of the pubmed, pubmed-xml, download and counts commands."""
    if args.command == "pubmed":
        print(f"downloading to {args.out_dir}")
        for path in download_pubmed(parse_file_numbers(args.files), args.out_dir, args.year,
                                    args.base_url, args.retries, progress=True):
            print(f"{path}: md5 ok")
    elif args.command == "pubmed-xml":
        print(f"writing {args.out}")
        print(write_corpus(args.files, args.out, progress=True))
    elif args.command == "download":
        print(f"downloading to {args.out_dir}")
        missing = []
        for task in BENCHMARKS if args.task == "all" else [args.task]:
            missing += download_benchmark(task, args.out_dir, args.mirror, args.base_url, args.bioasq_dir,
                                          args.accept_bioasq_terms, args.retries)
            print(f"{task}: done")
        if missing:
            raise DataError("not downloaded:\n  " + "\n  ".join(missing))
    elif args.command == "counts":
        note_if_sample(args.data_dir)
        for task, files in BENCHMARKS.items():
            for name, *_ in files if task != "vocab" else []:
                path = Path(args.data_dir) / task / name
                if path.is_file():
                    print(f"{task}/{name}: {count_split(path)}")
                else:
                    print(f"{task}/{name}: missing (python data.py download {task})")


def count_split(path) -> dict:
    """The counts `python data.py counts` prints, for one file of any benchmark format."""
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
    return {"pairs": len(pairs), "questions": len({p["question_id"] for p in pairs})}


# A.7 Reading benchmarks: the formats' help, what read_task checks, and its line saying what it read

NER_FORMATS = ("accepted: one 'word [more columns] tag' line per word, TAB or space separated, a blank line "
               "between sentences; tags O, B-X, I-X, E-X, S-X, L-X, U-X, or bare O B I E S L U")
RE_FORMATS = ("accepted: TAB-separated rows 'sentence<TAB>label' or 'index<TAB>sentence<TAB>label', with or "
              "without a header naming the sentence (sentence|text) and label columns; UTF-8, BOM and CRLF ok")
NEGATIVE_NAMES = {"false", "negative", "none", "other", "0"}   # how data sets spell RE's no-relation class
RE_LAYOUTS = {None: "BioBERT layout (no header)",
              ("index", "sentence", "label"): "BLUE layout (header index, sentence, label)"}
SNIPPET_ID = re.compile(r"(.+)_(\d+)")    # BioBERT's BioASQ pair ids: '<question id>_<snippet number>'


def conll_layout(seen, sentences) -> dict:
    """read_conll's info from what it saw, {(separator, columns, tag prefix, typed)}, and the tags it
    read: separator(s), column count(s), tag scheme ('IOBES', 'BILOU', 'IOB1' or 'BIO'), bare tags.
    IOB1: an I- tag starts an entity (first in its sentence, or after O or another type)."""
    separators, widths, prefixes = ({s[i] for s in seen} for i in range(3))
    schemes = [name for name, marks in (("IOBES", "ES"), ("BILOU", "LU")) if prefixes & set(marks)]
    iob1 = any(t.startswith("I-") and (i == 0 or tags[i - 1][2:] != t[2:])
               for _, tags in sentences for i, t in enumerate(tags))
    return {"separator": "/".join(sorted(separators)),
            "columns": "-".join(map(str, sorted({min(widths), max(widths)}))),
            "scheme": "+".join(schemes) or ("IOB1" if iob1 else "BIO"),
            "bare": any(prefix != "O" and not typed for _, _, prefix, typed in seen)}


def question_ids(pairs) -> tuple[list[str], str]:
    """The question of each pair, and the rule that gave it: the id before the last '_' where every id
    has BioBERT's form '<question id>_000', '_001', ... and no such prefix joins two different questions
    (as 'q_1', 'q_2' would); otherwise the question text, named by its first pair's id."""
    matches = [SNIPPET_ID.fullmatch(p["id"]) for p in pairs]
    if all(matches) and len({m[1] for m in matches}) == len({(m[1], p["question"]) for m, p in zip(matches, pairs)}):
        return [m[1] for m in matches], "ids '<question>_<n>'"
    first = {p["question"]: p["id"] for p in reversed(pairs)}   # reversed: the first pair's id wins
    return [first[p["question"]] for p in pairs], "question text"


def finish_conll(splits, infos, entity_type, negative) -> str:
    """NER: the description (columns, separator, tag scheme, bare tags, label count)."""
    found, labels = infos["train"], {t for _, tags in splits["train"] for t in tags}
    splits["layout"] = "conll"
    bare = f" without types (type {entity_type or DEFAULT_ENTITY_TYPE!r})" if found["bare"] else ""
    scheme = found["scheme"] + (" -> BIO" if found["scheme"] not in ("BIO", "IOB1") else "")
    return (f"NER, CoNLL {found['columns']} columns ({found['separator']} separated), {scheme} tags{bare}, "
            f"{len(labels)} labels")


def finish_tsv(splits, infos, entity_type, negative) -> str:
    """RE: the negative class that micro-F1 leaves out (`negative` in any case: BLUE's ChemProt spells it
    'false', bio_electra's 'False'; else the one label spelt like a negative), dev/test labels spelt as
    train spells them (any case); the description."""
    labels = sorted({label for _, label in splits["train"]})
    if negative is None:
        found = [x for x in labels if x.lower() in NEGATIVE_NAMES or x.lower().endswith("-false")]
        problem = f"cannot tell the negative class among {labels}: pass --negative-label"
    else:
        found = [x for x in labels if x.lower() == negative.lower()]
        problem = f"negative label {negative!r} not among the train labels {labels}"
    if len(found) != 1:
        raise DataError(f"{splits['files']['train']}: {problem}")
    splits.update(layout="tsv", negative=found[0])
    spelling = {label.lower(): label for label in labels}
    for split in ("dev", "test"):
        splits[split] = [(s, spelling.get(label.lower(), label)) for s, label in splits[split]]
    layouts = {}                                  # layout -> its splits (BioBERT: only test has a header)
    for split, info in infos.items():
        header = info["header"] and tuple(info["header"])
        layouts.setdefault(RE_LAYOUTS.get(header, f"header {', '.join(header or [])}"), []).append(split)
    layout = (next(iter(layouts)) if len(layouts) == 1 else
              ", ".join(f"{'/'.join(names)}: {layout}" for layout, names in layouts.items()))
    return f"RE, {layout}, {len(labels)} classes, negative: {splits['negative']}"


def finish_squad(splits, infos, entity_type, negative) -> str:
    """SQuAD v1.1 train/dev/test.json: every dev and test pair must have gold answers to score."""
    splits["layout"] = "squad"
    for split in ("dev", "test"):
        if not all(p["texts"] for p in splits[split]):
            raise DataError(f"{splits['files'].get(split, splits['files']['train'])}: "
                            f"{sum(not p['texts'] for p in splits[split])} questions without gold answers: "
                            f"a SQuAD-style {split} split is scored against them")
    splits["train"], note = qa_train_pairs(splits["train"], infos.values(), splits["files"]["train"])
    return (f"QA, SQuAD v1.1 JSON (train/dev/test.json), scored by SQuAD EM/F1, {len(splits['test'])} test "
            f"questions{note}")


def qa_train_pairs(pairs, infos, path) -> tuple[list[dict], str]:
    """Training pairs without those whose every answer is misaligned (BERT's run_squad skips such an
    example and goes on), and a note counting both for the description line."""
    kept = [p for p in pairs if p["answers"] or not p["texts"]]
    if not kept:
        raise DataError(f"{path}: none of its {len(pairs)} training pairs has an answer at its answer_start")
    misaligned = sum(info.get("misaligned", 0) for info in infos)
    return kept, (f"; {misaligned} answers not at their answer_start ({len(pairs) - len(kept)} training pairs "
                  "dropped, as BERT's run_squad; dev/test keep them as gold texts)" if misaligned else "")


def describe_bioasq(splits, info, dev_fraction, note) -> str:
    """BioASQ: the description line, with the test questions that golden-*.json does not score."""
    tests = splits["test"]
    unscored = sum(len({p["question_id"] for p in t["examples"]} - set(t["golden"])) for t in tests.values())
    return (f"QA, BioASQ layout (train.json + {len(tests)} test-*.json batches with golden-*.json), "
            f"{info['questions']} train questions grouped by {info['question_ids']}; dev: "
            f"{len(splits['dev']['dev']['golden'])} of them ({dev_fraction:.0%}, seed 0){note}"
            + (f"; {unscored} test questions not in golden-*.json (not scored)" if unscored else ""))


# A.8 Run records: the git commit the code comes from

def git_state() -> dict:
    """The commit this code comes from and whether the tree has local changes, for a run's records:
    {"git_commit": sha, "git_dirty": bool}, both None outside a git checkout or without git."""
    def git(*command):
        here = Path(__file__).resolve().parent
        return subprocess.run(["git", *command], cwd=here, capture_output=True, text=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD") or None
        dirty = bool(git("status", "--porcelain", "--", ".")) if commit else None
    except OSError:                                            # no git on this machine
        commit = dirty = None
    return {"git_commit": commit, "git_dirty": dirty}


if __name__ == "__main__":
    main(parse_args())
