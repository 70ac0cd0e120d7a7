"""
Fine-tuning ELECTRA(Med) on the paper's biomedical benchmarks (PAPER.md §4).

One encoder, three hand-written heads: a tagger on the first sub-token of each word (NER: BC5CDR,
NCBI-disease), a [CLS] classifier (relation extraction: ChemProt, DDI; or HF's classification head, or
the two entity-start markers' states, with --pooling) and a start/end span scorer over
sliding windows (BioASQ factoid QA, answers pooled over all snippets of a question). Training uses
layer-wise learning-rate decay, warmup then linear decay, AdamW with weight decay and gradient clipping;
the best dev epoch is kept and scored on test, for every seed of --seeds.

    python finetune.py --task ncbi_disease --init random --size tiny --epochs 2 --max-train-examples 500
    python finetune.py --task chemprot --seeds 1,2,3    # --init defaults to runs/pretrain/final/discriminator
    python finetune.py --task ner --data-dir my_ner_set/      # any CoNLL set: train.txt dev.txt test.txt

BioASQ has no dev file: dev is a fixed 10% of the training questions (all snippets of a question
go to the same side, chosen with seed 0 whatever the run seed), scored with the same pooling.

From a random init the recipe differs from the paper's (no layer-wise decay, more epochs with early
stopping; CHOICEs in section 1), and `--lr 1e-3,3e-4` sweeps the values on dev with the first seed.

Writes to --out-dir (printed at start): args.json, sweep.json (with several --lr), markers.json (RE:
relation marker -> vocabulary id), seed_<s>/metrics.json, seed_<s>/ predictions
(test.conll "token gold pred" | test.tsv | bioasq_<batch>.json in BioASQ submission format),
seed_<s>/model/ (the best dev epoch in the Hugging Face layout, section 8; --no-save-model skips it) and
summary.json ({"task", "metric", "seeds": {seed: value}, "mean", "std", "model", ...}, read by
`python eval.py table`). A saved model predicts on new input, in the same formats:

    python finetune.py predict runs/finetune/ncbi_disease/seed_1/model --text "BRCA1 causes cancer." --out-dir preds
    python finetune.py predict runs/finetune/chemprot/seed_1/model --input my_sentences.tsv --out-dir preds

References: google-research/electra finetune/ (tagging, classification, qa) and model/optimization.py
(layer-wise decay); BERT run_squad.py (sliding windows, n-best); BioBERT's transform_n2b_factoid
(BioASQ answer pooling and submission format).
"""
import argparse
import copy
import json
import math
import random
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

import data
import electramed
import eval as scoring
from tokenizer import Tokenizer, TokenizerError, basic_tokenize

IGNORE = -100                            # label of positions without a loss (F.cross_entropy default)


class FinetuneError(ValueError):
    """A bad command line, data set or checkpoint, explained in one line."""


# ---------------------------------------------------------------------------------------------
# 1. Arguments and the task table                                                  (PAPER.md §4)
#    Five named tasks; `ner`, `re` and `qa` take any data set in the same formats, labels read
#    from its train split. Files: train, dev (or devel) and test, in the formats of data.py §4:
#    NER .txt/.tsv/.conll (CoNLL), RE .tsv/.csv/.txt (BLUE, BioBERT or GLUE TSV), QA .json: either
#    train.json + test-*.json + golden-*.json (BioASQ) or train/dev/test.json (SQuAD v1.1, scored
#    by SQuAD's EM/F1). A set without a dev file gets a seeded --dev-fraction of train, said at start.
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskSpec:
    kind: str                      # "ner" | "re" | "qa"
    folder: str                    # under --data-dir; "" for the generic tasks (--data-dir is the set)
    reader: Callable               # data.py reader of one split
    metric: str                    # the test number summarised over seeds (eval.py's metric names)
    negative: str | None = None    # RE: the no-relation class, excluded from micro-F1
    epochs: int = 3                # ELECTRA's default
    # CHOICE: NER defaults to 10 epochs (PAPER.md §4: "NER often needs 10-20"); the paper gives no number.
    scratch_epochs: int = 3        # the most epochs from a random init (early stopping ends most runs sooner)
    # CHOICE: from a random init, NER up to 20 epochs and RE up to 10, with early stopping (--patience):
    # RESULTS.md's random-init tiny runs had their best dev epoch at the last or next-to-last epoch
    # (NER 4/4/5 and 5/4/5 of 5, ChemProt 2/3/2 and DDI 3/2/3 of 3), and PROBES.md's mini on NCBI-disease
    # still rose at epoch 10 (dev 0.554). A pre-trained encoder keeps the paper's protocol.


TASKS = {
    "bc5cdr": TaskSpec("ner", "bc5cdr", data.read_conll, "entity_f1", epochs=10, scratch_epochs=20),
    "ncbi_disease": TaskSpec("ner", "ncbi_disease", data.read_conll, "entity_f1", epochs=10, scratch_epochs=20),
    "chemprot": TaskSpec("re", "chemprot", data.read_blue_tsv, "micro_f1", negative="False", scratch_epochs=10),
    "ddi": TaskSpec("re", "ddi", data.read_blue_tsv, "micro_f1", negative="DDI-false", scratch_epochs=10),
    "bioasq": TaskSpec("qa", "bioasq", data.read_squad, "strict_accuracy"),
}
SCRATCH_PATIENCE = 3                     # epochs without a better dev score before a random-init run stops
SCORE_KEY = {"entity_f1": "f1", "micro_f1": "f1", "strict_accuracy": "strict", "squad_f1": "f1"}   # metric -> key
GENERIC = {"ner": TASKS["ncbi_disease"], "re": TASKS["chemprot"], "qa": TASKS["bioasq"]}
SPLIT_NAMES = {"train": ("train",), "dev": ("dev", "devel"), "test": ("test",)}   # devel: BioBERT's NER files
EXTENSIONS = {"ner": (".txt", ".tsv", ".conll"), "re": (".tsv", ".csv", ".txt"), "qa": (".json",)}
EXTENSION = {kind: names[0] for kind, names in EXTENSIONS.items()}
NEGATIVE_NAMES = {"false", "negative", "none", "other", "0"}   # generic RE: how a negative class is spelt


PRETRAINED_DEFAULT = Path("runs/pretrain/final/discriminator")   # train_pretrain.py's default output


def resolve_init(args) -> str:
    """--init, else train_pretrain.py's default output when it exists, else random weights; said aloud."""
    if args.init is None:
        found = (PRETRAINED_DEFAULT / "config.json").is_file()
        args.init = str(PRETRAINED_DEFAULT) if found else "random"
        print(f"--init not given: fine-tuning the pre-trained discriminator in {PRETRAINED_DEFAULT}" if found else
              f"--init not given and no {PRETRAINED_DEFAULT}: starting from RANDOM weights, size {args.size} "
              f"({electramed.SIZES[args.size]['num_hidden_layers']} layers, hidden "
              f"{electramed.SIZES[args.size]['hidden_size']}); pre-train first, or pass --init")
    return args.init


def resolve_task(args) -> tuple[TaskSpec, Path]:
    """The task spec and the folder that holds its files."""
    if args.task in TASKS:
        return TASKS[args.task], Path(args.data_dir) / TASKS[args.task].folder
    spec, folder = GENERIC[args.task], Path(args.data_dir)
    # a QA folder without BioASQ's golden-*.json but with a test.json is SQuAD-style: scored by EM/F1
    metric = "squad_f1" if spec.kind == "qa" and not any(folder.glob("golden-*.json")) \
        and (folder / "test.json").is_file() else spec.metric
    return (TaskSpec(args.task, "", spec.reader, metric, args.negative_label, spec.epochs, spec.scratch_epochs),
            folder)


def fill_defaults(args, spec, hidden_size):
    """Settings left unset on the command line, which depend on the task and the initialisation.

    CHOICE: from a random init there is nothing to keep in the lower layers, so no layer-wise decay
    (1.0): with 0.8 the tiny model's embeddings (0.99M of its 1.1M parameters) got 0.51x the lr and a
    random-init Small's would get 0.8**13 = 0.055x (issue 9). A pre-trained encoder keeps the paper's 0.8.
    """
    scratch = args.init == "random"
    if args.layerwise_decay is None:
        args.layerwise_decay = 1.0 if scratch else 0.8
    if args.epochs is None:
        args.epochs = spec.scratch_epochs if scratch else spec.epochs
    if args.patience is None:
        args.patience = SCRATCH_PATIENCE if scratch else 0
    if args.max_seq_len is None:
        args.max_seq_len = 384 if spec.kind == "qa" else 128     # RE keeps both markers by --marker-window
    args.lrs = parse_lrs(args.lr, hidden_size)


def parse_lrs(text, hidden_size) -> list[float]:
    """--lr as a list of floats; unset: Google's 3e-4 up to hidden 256 (Small), else 1e-4 (Base)."""
    if text is None:
        return [3e-4 if hidden_size <= 256 else 1e-4]
    try:
        lrs = [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise FinetuneError(f"--lr {text!r}: expected a number or a comma-separated list, e.g. 1e-3,3e-4") from None
    if not lrs or min(lrs) <= 0:
        raise FinetuneError(f"--lr {text!r}: learning rates must be positive")
    return lrs


def split_path(spec, folder, split) -> Path | None:
    """The file of one split (train, dev|devel, test with the kind's extensions), None if absent."""
    found = [folder / f"{name}{ext}" for name in SPLIT_NAMES[split] for ext in EXTENSIONS[spec.kind]
             if (folder / f"{name}{ext}").is_file()]
    if len(found) > 1:
        raise data.DataError(f"{folder}: {len(found)} files for the {split} split ({', '.join(p.name for p in found)}): "
                             "keep one")
    return found[0] if found else None


def read_split(spec, folder, split, entity_type=None, info=None):
    """Examples of one split, or a clear error when the file is missing or holds none. `info` (a dict)
    receives the format the reader found; `entity_type` names the type of bare NER tags."""
    path = split_path(spec, folder, split)
    if path is None:
        names = [f"{n}{e}" for n in SPLIT_NAMES[split] for e in EXTENSIONS[spec.kind]]
        raise data.DataError(f"{folder / names[0]}: missing {split} split for task kind {spec.kind!r} "
                             f"(looked for {', '.join(names)})")
    options = {"entity_type": entity_type or data.DEFAULT_ENTITY_TYPE} if spec.kind == "ner" else {}
    examples = spec.reader(path, info=info, **options)
    if not examples:
        raise data.DataError(f"{path}: no examples in the {split} split")
    return examples


def split_off_dev(examples, fraction, group=None) -> tuple[list, list]:
    """(train, dev): a fixed share of the examples held out as dev, drawn with seed 0 whatever the run
    seed, both kept in file order. `group(example)` keeps a group (a question's snippets) on one side."""
    keys = sorted({group(e) for e in examples}) if group else list(range(len(examples)))
    held = set(random.Random(0).sample(keys, max(1, round(fraction * len(keys)))))
    side = [(group(e) if group else i) in held for i, e in enumerate(examples)]
    return [e for e, s in zip(examples, side) if not s], [e for e, s in zip(examples, side) if s]


def subset(examples, n, seed=0):
    """At most n examples, a seeded random choice kept in file order (the same for every run seed)."""
    if n is None or n >= len(examples):
        return examples
    keep = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in keep]


def label_set(spec, train) -> list[str]:
    """Labels seen in train, sorted: the classifier's outputs."""
    if spec.kind == "ner":
        return sorted({t for _, tags in train for t in tags})
    return sorted({label for _, label in train})


def negative_label(spec, labels) -> str:
    """The RE class that micro-F1 leaves out: the spec's (in any case: BLUE's ChemProt spells it
    'false', bio_electra's 'False'), or the one label spelt like a negative."""
    if spec.negative is not None:
        found = [x for x in labels if x.lower() == spec.negative.lower()]
        if len(found) != 1:
            raise FinetuneError(f"negative label {spec.negative!r} not among train labels {labels}")
        return found[0]
    found = [x for x in labels if x.lower() in NEGATIVE_NAMES or x.lower().endswith("-false")]
    if len(found) != 1:
        raise FinetuneError(f"cannot tell the negative class among {labels}: pass --negative-label")
    return found[0]


def warn_unseen_labels(spec, labels, examples, path):
    """Warn about gold labels of dev/test never seen in train.

    CHOICE: such a label stays gold (the model cannot predict it, so it counts as a miss); it is
    neither an error nor mapped to O/negative, which would hide the misses and inflate the score."""
    if spec.kind == "ner":
        gold = {t for _, tags in examples for t in tags}
    else:
        gold = {label for _, label in examples}
    unseen = sorted(gold - set(labels))
    if unseen:
        print(f"warning: {path}: labels never seen in train: {unseen} (scored as gold, never predicted)",
              file=sys.stderr)
    return unseen


# ---------------------------------------------------------------------------------------------
# 2. Features                                                               (PAPER.md §4; BERT)
#    NER: [CLS] word pieces [SEP], the label on each word's FIRST piece, IGNORE on the others;
#    sentences longer than max length are cut into chunks at word boundaries.
#    RE: [CLS] sentence [SEP], each relation marker one [unusedN] id, a long sentence windowed
#    around its pair of markers. QA: [CLS] question [SEP] window [SEP], windows of the snippet of at
#    most max length, starts 128 pieces apart (BERT's doc_stride), piece offsets back to characters.
# ---------------------------------------------------------------------------------------------

def tagging_features(sentences, tokenizer, label_ids, max_len):
    """One feature per chunk: input_ids, labels (first piece of each word), positions of those pieces.

    CHOICE: a sentence longer than max_len is cut into chunks at word boundaries, so every word is
    predicted; ELECTRA's tagging code truncates it instead (lost words would be predicted O)."""
    features = []
    for i, (words, tags) in enumerate(sentences):
        pieces = [tokenizer.encode_text(w)[:max_len - 2] for w in words]
        chunk, used = [], 0
        for w, ids in enumerate(pieces):
            if chunk and used + len(ids) > max_len - 2:
                features.append(tagging_chunk(i, chunk, pieces, tags, label_ids, tokenizer))
                chunk, used = [], 0
            chunk.append(w)
            used += len(ids)
        features.append(tagging_chunk(i, chunk, pieces, tags, label_ids, tokenizer))
    return features


def tagging_chunk(example, words, pieces, tags, label_ids, tokenizer):
    input_ids, labels, positions = [tokenizer.cls_id], [IGNORE], []
    for w in words:
        ids = pieces[w]
        positions.append(len(input_ids) if ids else -1)      # a word with no piece is predicted O
        input_ids += ids
        labels += [label_ids.get(tags[w], IGNORE)] + [IGNORE] * (len(ids) - 1) if ids else []
    input_ids.append(tokenizer.sep_id)
    labels.append(IGNORE)
    return {"input_ids": input_ids, "token_type_ids": [0] * len(input_ids), "labels": labels,
            "example": example, "words": words, "positions": positions}


# Relation markers: the strings that stand for the two entities of a pair (and, in ChemProt's
# bio_electra files, for the other mentions). BLUE: @CHEMICAL$ @GENE$, @CHEM-GENE$ when one mention is
# both, @DRUG$, @DRUG-DRUG$, @DISEASE$; bio_electra ChemProt: BC6ENTC BC6ENTG and BC6OTHER.
RELATION_MARKERS = ("@CHEMICAL$", "@GENE$", "@CHEM-GENE$", "@DRUG$", "@DRUG-DRUG$", "@DISEASE$",
                    "BC6ENTC", "BC6ENTG", "BC6OTHER")
OTHER_MARKERS = {"BC6OTHER"}                                   # a mention that is not one of the pair
MARKER_PATTERN = re.compile(r"@[A-Za-z][A-Za-z0-9_-]*\$|BC6ENT[CG]|BC6OTHER")   # any @NAME$ a new set brings
UNUSED_PATTERN = re.compile(r"\[unused\d+\]")


def marker_ids(tokenizer, sentences) -> dict[str, int]:
    """Marker string -> the id of one [unusedN] vocabulary row: the known markers in the order above,
    then any other @NAME$ found in `sentences`, sorted, on [unused0], [unused1], ... in vocabulary order.

    CHOICE: one id per marker (issue 9). Through WordPiece, scivocab cuts BC6ENTC into bc ##6 ##ent ##c
    (BC6ENTG differs only in the last piece) and @DRUG$ into @ drug $, the same as the word "drug".
    The paper's tokenization stays available as --entity-markers text."""
    found = sorted({m for s in sentences for m in MARKER_PATTERN.findall(s)} - set(RELATION_MARKERS))
    markers = [*RELATION_MARKERS, *found]
    unused = [i for i, t in enumerate(tokenizer.id_to_token) if UNUSED_PATTERN.fullmatch(t)]
    if len(unused) < len(markers):
        raise FinetuneError(f"the vocabulary has {len(unused)} [unusedN] rows but the relation markers need "
                            f"{len(markers)} ({', '.join(markers)}): use a BERT-layout vocabulary (scivocab has "
                            "100), or --entity-markers text to split them into word pieces as the paper did")
    return dict(zip(markers, unused))


def save_markers(markers, tokenizer, path):
    """markers.json: marker -> id, and the vocabulary row each id names (checked when loaded)."""
    rows = {m: {"id": i, "token": tokenizer.id_to_token[i]} for m, i in markers.items()}
    Path(path).write_text(json.dumps(rows, indent=2) + "\n")


def load_markers(path, tokenizer) -> dict[str, int]:
    """The marker -> id map of a run, refused if the vocabulary's rows changed since it was saved."""
    rows = json.loads(Path(path).read_text())
    wrong = [m for m, r in rows.items() if r["id"] >= len(tokenizer) or tokenizer.id_to_token[r["id"]] != r["token"]]
    if wrong:
        raise FinetuneError(f"{path}: markers {wrong} name vocabulary rows that this vocabulary spells differently")
    return {m: r["id"] for m, r in rows.items()}


def encode_relation(text, tokenizer, markers) -> tuple[list[int], list[tuple[int, int]]]:
    """Piece ids of one RE sentence and the [start, end) pieces of each pair marker.

    A marker in `markers` becomes its one id; any other marker (or all, with markers={}) goes through
    WordPiece like the words around it. BC6OTHER is a marker but not a pair member, so not listed."""
    ids, spans, pos = [], [], 0
    for m in MARKER_PATTERN.finditer(text):
        ids += tokenizer.encode_text(text[pos:m.start()])
        start = len(ids)
        ids += [markers[m.group()]] if m.group() in markers else tokenizer.encode_text(m.group())
        if m.group() not in OTHER_MARKERS:
            spans.append((start, len(ids)))
        pos = m.end()
    return ids + tokenizer.encode_text(text[pos:]), spans


def marker_windows(n, spans, room) -> list[tuple[int, int]]:
    """The [start, end) piece ranges kept of a sentence of n pieces, at most `room` pieces in all.

    CHOICE: the first `room` pieces (the paper's tail cut) when they hold the whole pair; else one
    window centred on the pair; else (the pair is farther apart than `room`) two windows of room/2,
    each centred on one end of the pair, the middle dropped."""
    if n <= room or not spans or spans[-1][1] <= room:
        return [(0, min(n, room))]
    a, b = spans[0][0], spans[-1][1]
    if b - a <= room:
        lo = max(0, min((a + b - room) // 2, n - room))
        return [(lo, lo + room)]
    half = room // 2
    lo1 = max(0, (spans[0][0] + spans[0][1] - half) // 2)
    lo2 = min(n - (room - half), (spans[-1][0] + spans[-1][1] - (room - half)) // 2)
    return [(lo1, lo1 + half), (max(lo1 + half, lo2), lo2 + room - half)]


def classification_features(rows, tokenizer, label_ids, max_len, markers=None, window=True):
    """One feature per sentence: [CLS] sentence [SEP], its label id (IGNORE if unseen in train) and
    `entity`: the positions of the two pair markers' first pieces (one marker twice when the pair is
    one mention, as @CHEM-GENE$; [CLS] twice when the input holds no pair marker).

    markers: marker -> id (see marker_ids), {} for WordPiece markers. window=False cuts the tail."""
    features = []
    for i, (sentence, label) in enumerate(rows):
        ids, spans = encode_relation(sentence, tokenizer, markers or {})
        ranges = marker_windows(len(ids), spans, max_len - 2) if window else [(0, min(len(ids), max_len - 2))]
        kept, shift = [], 1                                                 # piece j sits at j + shift
        for lo, hi in ranges:
            kept += [s + shift - lo for s, e in spans if lo <= s and e <= hi]
            shift += hi - lo
        input_ids = [tokenizer.cls_id] + [t for lo, hi in ranges for t in ids[lo:hi]] + [tokenizer.sep_id]
        features.append({"input_ids": input_ids, "token_type_ids": [0] * len(input_ids),
                         "labels": label_ids.get(label, IGNORE), "example": i,
                         "entity": (kept * 2)[:2] if kept else [0, 0], "lost": len(kept) < len(spans)})
    return features


def count_lost_positives(rows, features, negative) -> dict:
    """Rows whose input lost a pair marker to the length limit, all and positives only."""
    lost = [label for f, (_, label) in zip(features, rows) if f["lost"]]
    return {"rows": len(lost), "positives": sum(label != negative for label in lost),
            "of_positives": sum(label != negative for _, label in rows)}


def window_starts(n, room, stride):
    """Piece index where each window starts, as BERT's run_squad: step `stride`, last one reaches n."""
    starts, start = [], 0
    while start < n:
        starts.append(start)
        if start + room >= n:
            break
        start += min(room, stride)
    return starts


def answer_pieces(example, offsets):
    """(first, last) piece of the first gold answer, or None (no answer, or it covers no piece)."""
    if not example.get("answers"):
        return None
    a = example["answers"][0]
    begin, end = a["answer_start"], a["answer_start"] + len(a["text"])
    inside = [j for j, (s, e) in enumerate(offsets) if s < end and e > begin]
    return (inside[0], inside[-1]) if inside else None


def qa_features(examples, tokenizer, max_len, stride, max_query_len):
    """Sliding windows over each snippet, with span labels (0 = [CLS] when the answer is outside)."""
    features = []
    for i, ex in enumerate(examples):
        question = tokenizer.encode_text(ex["question"])[:max_query_len]
        pieces, offsets = tokenizer.tokenize_with_offsets(ex["context"])
        ids = [tokenizer.vocab.get(p, tokenizer.unk_id) for p in pieces]
        answer, room = answer_pieces(ex, offsets), max_len - len(question) - 3
        starts = window_starts(len(ids), room, stride)
        best = best_window(len(ids), starts, room)
        for w, start in enumerate(starts):
            end = min(start + room, len(ids))
            shift = len(question) + 2 - start                # piece j sits at position j + shift
            inside = answer is not None and start <= answer[0] and answer[1] < end
            features.append({
                "input_ids": [tokenizer.cls_id] + question + [tokenizer.sep_id] + ids[start:end] + [tokenizer.sep_id],
                "token_type_ids": [0] * (len(question) + 2) + [1] * (end - start + 1),
                "start": answer[0] + shift if inside else 0, "end": answer[1] + shift if inside else 0,
                "example": i, "offsets": offsets[start:end], "shift": shift, "first": start,
                "max_context": [best[j] == w for j in range(start, end)]})
    return features


def best_window(n, starts, room):
    """For each piece, the window where it has the most context on both sides (BERT's
    _check_is_max_context): a span may only start where its window is the best one."""
    best, score = [0] * n, [-1.0] * n
    for w, start in enumerate(starts):
        length = min(room, n - start)
        for j in range(start, start + length):
            s = min(j - start, start + length - 1 - j) + 0.01 * length
            if s > score[j]:
                best[j], score[j] = w, s
    return best


def collate(features, kind, pad_id, device):
    """Pad a list of features into tensors; attention_mask None when nothing is padded (SDPA flash)."""
    lengths = [len(f["input_ids"]) for f in features]
    L = max(lengths)
    pad = lambda key, value: torch.tensor([f[key] + [value] * (L - len(f[key])) for f in features])
    batch = {"input_ids": pad("input_ids", pad_id), "token_type_ids": pad("token_type_ids", 0),
             "attention_mask": None}
    if min(lengths) < L:
        batch["attention_mask"] = torch.tensor([[1] * n + [0] * (L - n) for n in lengths], dtype=torch.bool)
    if kind == "ner":
        batch["labels"] = pad("labels", IGNORE)                                       # (B, L)
    elif kind == "re":
        batch["labels"] = torch.tensor([f["labels"] for f in features])               # (B,)
        batch["entity"] = torch.tensor([f["entity"] for f in features])               # (B, 2)
    else:
        batch["labels"] = torch.tensor([[f["start"], f["end"]] for f in features])    # (B, 2)
    return {k: (v.to(device) if v is not None else None) for k, v in batch.items()}


# ---------------------------------------------------------------------------------------------
# 3. Heads                                                            (PAPER.md §4; ELECTRA, BERT)
#    tagging: dropout -> linear on every position; [CLS] -> dropout -> linear (or HF's head, or the
#    entity-start markers' states -> linear); span: linear -> 2
#    scores (start, end) per position. Weights normal(0, 0.02), biases 0, as BERT initialises.
# ---------------------------------------------------------------------------------------------

class TaggingHead(nn.Module):
    def __init__(self, hidden, num_labels, dropout):
        super().__init__()
        self.dropout, self.out = nn.Dropout(dropout), nn.Linear(hidden, num_labels)

    def forward(self, h):                              # (B, L, D)
        return self.out(self.dropout(h))               # (B, L, C)


class SequenceClassifierHead(nn.Module):
    """[CLS] -> dropout -> linear: the paper's and Google's ELECTRA classifier (--pooling cls)."""

    def __init__(self, hidden, num_labels, dropout):
        super().__init__()
        self.dropout, self.out = nn.Dropout(dropout), nn.Linear(hidden, num_labels)

    def forward(self, h, entity=None):                 # (B, L, D)
        return self.out(self.dropout(h[:, 0]))         # (B, C) from [CLS]


class ElectraClassificationHead(nn.Module):
    """[CLS] -> dropout -> dense -> GELU -> dropout -> linear (--pooling head): the head of transformers'
    ElectraForSequenceClassification, which ELECTRAMed's own runs used (issue 9)."""

    def __init__(self, hidden, num_labels, dropout):
        super().__init__()
        self.dropout, self.dense, self.out = nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.Linear(hidden, num_labels)

    def forward(self, h, entity=None):                 # (B, L, D)
        x = F.gelu(self.dense(self.dropout(h[:, 0])))
        return self.out(self.dropout(x))               # (B, C)


class EntityStartHead(nn.Module):
    """The hidden states at the two entity-start markers, concatenated -> dropout -> linear
    (--pooling entity; Baldini Soares et al. 2019, "Matching the Blanks", ENTITY START)."""

    def __init__(self, hidden, num_labels, dropout):
        super().__init__()
        self.dropout, self.out = nn.Dropout(dropout), nn.Linear(2 * hidden, num_labels)

    def forward(self, h, entity):                      # (B, L, D), (B, 2) positions
        picked = h.gather(1, entity.unsqueeze(-1).expand(-1, -1, h.shape[-1]))    # (B, 2, D)
        return self.out(self.dropout(picked.flatten(1)))                          # (B, C)


POOLING = {"cls": SequenceClassifierHead, "head": ElectraClassificationHead, "entity": EntityStartHead}


class SpanHead(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.out = nn.Linear(hidden, 2)

    def forward(self, h):                              # (B, L, D)
        return self.out(h)                             # (B, L, 2): start and end scores


class FineTuner(nn.Module):
    """The pre-trained encoder and one task head."""

    def __init__(self, encoder, kind, num_labels, pooling="cls"):
        super().__init__()
        D, p = encoder.config.hidden_size, encoder.config.hidden_dropout_prob
        self.encoder, self.kind = encoder, kind
        self.head = {"ner": lambda: TaggingHead(D, num_labels, p), "re": lambda: POOLING[pooling](D, num_labels, p),
                     "qa": lambda: SpanHead(D)}[kind]()
        for m in self.head.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=encoder.config.initializer_range)
                nn.init.zeros_(m.bias)

    def forward(self, batch):
        h = self.encoder(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])   # (B, L, D)
        return self.head(h, batch["entity"]) if self.kind == "re" else self.head(h)


def task_loss(kind, logits, labels):
    """Mean cross-entropy in fp32; for spans the mean of the start and end losses (BERT)."""
    logits = logits.float()
    if kind == "ner":
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
    if kind == "re":
        return F.cross_entropy(logits, labels, ignore_index=IGNORE)
    return (F.cross_entropy(logits[..., 0], labels[:, 0]) + F.cross_entropy(logits[..., 1], labels[:, 1])) / 2


def check_init(args, tokenizer):
    """Fail early, before any data work, if --init's vocabulary size differs from the tokenizer's."""
    if args.init == "random":
        return
    config, _ = electramed.read_hf_config(args.init)
    if config.vocab_size != len(tokenizer):
        raise FinetuneError(f"{args.init}/config.json: checkpoint vocabulary has {config.vocab_size} entries but "
                            f"{args.vocab} has {len(tokenizer)}: pass the checkpoint's own vocab.txt with --vocab")


def init_hidden_size(args) -> int:
    """Hidden size of the encoder --init will build (it sets the default lr)."""
    if args.init == "random":
        return electramed.SIZES[args.size]["hidden_size"]
    return electramed.read_hf_config(args.init)[0].hidden_size


def build_encoder(args, tokenizer):
    """A random encoder of --size (BERT init), or the encoder weights of the checkpoint in --init,
    with --dropout in every layer whatever the checkpoint's config says."""
    if args.init == "random":
        encoder = electramed.Encoder(electramed.model_config(args.size, vocab_size=len(tokenizer)))
    else:
        check_init(args, tokenizer)
        encoder = reinit_top_layers(electramed.load_hf_encoder(args.init), args.reinit_layers)
    return set_dropout(encoder, args.dropout)


def reinit_top_layers(encoder, n):
    """Draw the top n encoder layers afresh (BERT init), keeping the embeddings and the layers below:
    the pre-trained top layers fit the pre-training task most closely, and re-drawing them is a known
    remedy when they hurt a new task (Zhang et al. 2021, "Revisiting few-sample BERT fine-tuning").
    n = the number of layers keeps only the embeddings. The draw uses the seed set before it."""
    if not 0 <= n <= len(encoder.layers):
        raise FinetuneError(f"--reinit-layers {n}: the checkpoint has {len(encoder.layers)} layers")
    for layer in encoder.layers[len(encoder.layers) - n:]:
        layer.apply(partial(electramed.init_weights, std=encoder.config.initializer_range))
    return encoder


def set_dropout(encoder, p):
    """Hidden and attention dropout p everywhere in the encoder (and in its config, so an exported
    model says what it was trained with). CHOICE: fine-tuning always uses --dropout (0.1, ELECTRA's
    fine-tuning value) instead of the checkpoint's: our CPU presets pre-train without dropout, and a
    checkpoint fine-tuned with its own dropout 0 was compared with random inits that had 0.1. Measured
    on NCBI-disease (mini, 1,000 pre-training steps, 1 seed): best dev F1 0.485 with dropout 0, 0.512
    with 0.1 (random init: 0.570; bench/results_pretrain.md §4)."""
    for module in encoder.modules():
        if isinstance(module, nn.Dropout):
            module.p = p
        if hasattr(module, "dropout_p"):
            module.dropout_p = p
    encoder.config.hidden_dropout_prob = encoder.config.attention_probs_dropout_prob = p
    return encoder


# ---------------------------------------------------------------------------------------------
# 4. Layer-wise learning rates                                     (PAPER.md §4; ELECTRA §3.4)
#    head: lr; top layer lr*decay; each layer below one more factor; embeddings lowest. AdamW
#    (betas 0.9/0.999, eps 1e-6), weight decay 0.01 except biases and LayerNorm, 10% warmup
#    multiplied by a linear decay to 0 (Google's optimization.py), gradient norm clipped at 1.0.
# ---------------------------------------------------------------------------------------------

def layer_depth(name) -> int:
    """0 for the embeddings (and their projection), i + 1 for encoder layer i."""
    if name.startswith("embeddings"):
        return 0
    if name.startswith("layers."):
        return int(name.split(".")[1]) + 1
    raise FinetuneError(f"encoder parameter {name!r} is neither embeddings nor a layer")


def layerwise_param_groups(model, lr, decay, weight_decay) -> list[dict]:
    """Optimizer groups with per-depth learning rates.

    CHOICE: the paper's convention. With L layers, the head gets lr, encoder layer i (0-based)
    gets lr * decay**(L - i), so the top layer gets lr * decay, and the embeddings get
    lr * decay**(L + 1). Google's electra code (model/optimization.py, _get_layer_lrs) gives the
    task head depth L + 2 and so the top layer lr * decay**2: a confirmed off-by-one we do not copy.
    1-D parameters (biases, LayerNorm weights) get no weight decay, as BERT's exclusion by name.
    """
    L = len(model.encoder.layers)
    groups = {}
    for name, p in model.named_parameters():
        scale = decay ** (L + 1 - layer_depth(name[len("encoder."):])) if name.startswith("encoder.") else 1.0
        wd = 0.0 if p.ndim < 2 else weight_decay
        group = groups.setdefault((scale, wd), {"params": [], "names": [], "lr": lr * scale, "weight_decay": wd})
        group["params"].append(p)
        group["names"].append(name)
    return list(groups.values())


def lr_factor(step, total, warmup) -> float:
    """Google's schedule: linear decay to 0 times linear warmup, lr * (1 - s/T) * min(1, s/W)."""
    return max(0.0, 1 - step / total) * (min(1.0, step / warmup) if warmup > 0 else 1.0)


# ---------------------------------------------------------------------------------------------
# 5. Train and evaluate one seed                                                   (PAPER.md §4)
#    Evaluate on dev after every epoch, keep the weights of the best epoch, score those on test.
# ---------------------------------------------------------------------------------------------

def predict(model, features, kind, args, device):
    """Logits per feature, in order (float32 on the CPU)."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(features), args.eval_batch_size):
            chunk = features[i:i + args.eval_batch_size]
            batch = collate(chunk, kind, args.pad_id, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(batch).float().cpu()
            out += [logits[j, :len(f["input_ids"])] if kind != "re" else logits[j] for j, f in enumerate(chunk)]
    return out


def relation_predictions(logits, labels, negative, bias) -> list[str]:
    """argmax over the classes after adding `bias` to the negative class's logit (0: plain argmax)."""
    shift = torch.zeros(len(labels))
    shift[labels.index(negative)] = bias
    return [labels[i] for i in (torch.stack(logits) + shift).argmax(-1).tolist()]


def tune_negative_bias(logits, gold, labels, negative, grid=200) -> float:
    """The bias on the negative logit that maximises micro-F1 on (dev) logits; ties: the smallest |bias|.

    A row turns negative once bias exceeds its margin max(positive logits) - negative logit, so the
    candidates are 0 and the margins' quantiles (grid + 1 of them): exact up to the grid's resolution.
    """
    lg = torch.stack(logits)                                                   # (N, C)
    neg = labels.index(negative)
    positive = torch.ones(len(labels), dtype=torch.bool)
    positive[neg] = False
    margins = lg[:, positive].max(-1).values - lg[:, neg]                      # (N,)
    candidates = torch.cat([torch.zeros(1), margins.quantile(torch.linspace(0, 1, grid + 1)),
                            margins.min().view(1) - 1, margins.max().view(1) + 1])
    gold_ids = torch.tensor([labels.index(g) if g in labels else -1 for g in gold])
    n_gold = sum(g != negative for g in gold)
    best = (-1.0, 0.0)
    for b in sorted(candidates.tolist(), key=abs):
        pred = (lg + F.one_hot(torch.tensor(neg), len(labels)) * b).argmax(-1)
        n_pred = (pred != neg).sum().item()
        n_correct = ((pred == gold_ids) & (pred != neg)).sum().item()
        f1 = 2 * n_correct / (n_pred + n_gold) if n_pred + n_gold else 0.0
        if f1 > best[0]:
            best = (f1, b)
    return best[1]


def evaluate(model, split, prep, args, device, bias=0.0):
    """Scores of one split and its predictions: {"f1": ...} for NER/RE, BioASQ measures for QA.

    RE: `bias` is added to the negative class's logit (--negative-bias); "tune" picks it on this split."""
    kind, labels = prep["kind"], prep["labels"]
    if kind == "qa":
        return (evaluate_squad if prep.get("squad") else evaluate_bioasq)(model, split, prep, args, device)
    logits = predict(model, split["features"], kind, args, device)
    if kind == "ner":
        pred = word_tags(split["examples"], split["features"], logits, labels)
        scores = scoring.entity_prf([tags for _, tags in split["examples"]], pred)
    else:
        gold = [label for _, label in split["examples"]]
        if bias == "tune":
            bias = tune_negative_bias(logits, gold, labels, prep["negative"])
        pred = relation_predictions(logits, labels, prep["negative"], bias)
        scores = {**scoring.micro_prf(gold, pred, prep["negative"]), "negative_bias": bias}
    return {k: v for k, v in scores.items() if k in ("precision", "recall", "f1", "negative_bias")}, pred


def word_tags(examples, features, logits, labels) -> list[list[str]]:
    """The tag of every word of every sentence: the argmax at its first piece (O for a word with no piece)."""
    pred = [["O"] * len(words) for words, _ in examples]
    for f, lg in zip(features, logits):
        for w, pos in zip(f["words"], f["positions"]):
            if pos >= 0:
                pred[f["example"]][w] = labels[lg[pos].argmax().item()]
    return pred


BUCKET_BATCHES = 50                      # --length-buckets: batches per sorted chunk


def batch_indices(lengths, batch_size, rng, buckets=False) -> list[list[int]]:
    """The epoch's batches as lists of feature indices, in a seeded random order.

    buckets=False: consecutive slices of one random permutation (the paper's plain shuffle).
    buckets=True: the permutation is cut into chunks of BUCKET_BATCHES batches, each chunk sorted by
    length and sliced into batches, and the batches shuffled: similar lengths share a batch, so less
    padding is computed, while every batch still draws from a random 50-batch slice of the data."""
    order = torch.randperm(len(lengths), generator=rng).tolist()
    if not buckets:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    batches, chunk = [], batch_size * BUCKET_BATCHES
    for i in range(0, len(order), chunk):
        part = sorted(order[i:i + chunk], key=lambda j: lengths[j])
        batches += [part[k:k + batch_size] for k in range(0, len(part), batch_size)]
    return [batches[b] for b in torch.randperm(len(batches), generator=rng).tolist()]


def train_epoch(model, optimizer, scheduler, features, kind, args, device, rng, desc):
    """One pass over the training features in a seeded random order; returns the mean loss."""
    model.train()
    lengths = [len(f["input_ids"]) for f in features]
    batches = batch_indices(lengths, args.batch_size, rng, args.length_buckets)
    losses = []
    bar = tqdm(batches, desc=desc, leave=False, mininterval=2)
    for indices in bar:
        batch = collate([features[j] for j in indices], kind, args.pad_id, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(batch)
        loss = task_loss(kind, logits, batch["labels"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)   # shown at the next update
    return sum(losses) / len(losses)


def patience_exhausted(best_score, best_epoch, epoch, patience) -> bool:
    """--patience: stop once dev has not improved for `patience` epochs.

    CHOICE: the count starts only once dev is above 0. A model trained from scratch on few sentences
    predicts no entity (dev F1 exactly 0) for its first epochs; counting those stopped 2 of 3
    random-init NCBI-disease runs on 250 sentences before they had begun to learn (RESULTS.md)."""
    return bool(patience) and best_score > 0 and epoch - best_epoch >= patience


def train_seed(args, prep, tokenizer, seed, lr) -> tuple[nn.Module, dict]:
    """Fine-tune from the initial weights with one seed and one lr; the model holds its best dev epoch.

    With --patience P > 0, training stops once dev has not improved for P epochs; the schedule is
    still laid out over --epochs, so a run that stops early never reaches lr 0.
    CHOICE: with --negative-bias tune the bias is tuned on dev after every epoch and the epoch is
    chosen by the tuned dev F1 (training itself is unchanged): a model that ranks well but never
    predicts a positive class (issue 9: two ChemProt seeds) is then judged by its ranking."""
    random.seed(seed)
    torch.manual_seed(seed)
    device, kind = torch.device(args.device), prep["kind"]
    model = FineTuner(build_encoder(args, tokenizer), kind, len(prep["labels"]), args.pooling).to(device)
    train = prep["train"]
    total = args.epochs * math.ceil(len(train) / args.batch_size)
    # CHOICE: torch's AdamW keeps Adam's bias correction; Google's AdamWeightDecayOptimizer has none.
    optimizer = torch.optim.AdamW(layerwise_param_groups(model, lr, args.layerwise_decay, args.weight_decay),
                                  lr=lr, betas=(0.9, 0.999), eps=1e-6)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, round(args.warmup_fraction * total)))
    rng = torch.Generator().manual_seed(seed)
    history, best, best_state = [], None, None
    for epoch in range(1, args.epochs + 1):
        t0 = time.time()
        loss = train_epoch(model, optimizer, scheduler, train, kind, args, device, rng, f"seed {seed} epoch {epoch}")
        dev, _ = evaluate(model, prep["dev"], prep, args, device, bias=args.negative_bias)
        history.append({"epoch": epoch, "train_loss": loss, "dev": dev, "seconds": round(time.time() - t0, 1)})
        print(f"seed {seed} | lr {lr:g} | epoch {epoch}/{args.epochs} | loss {loss:.4f} | dev {prep['dev_metric']} "
              f"{dev[prep['dev_metric']]:.4f} | {history[-1]['seconds']} s")
        if best is None or dev[prep["dev_metric"]] > best["dev"][prep["dev_metric"]]:
            best, best_state = history[-1], copy.deepcopy(model.state_dict())
        if patience_exhausted(best["dev"][prep["dev_metric"]], best["epoch"], epoch, args.patience):
            print(f"seed {seed} | early stop: dev has not improved for {args.patience} epochs (best epoch {best['epoch']})")
            break
    model.load_state_dict(best_state)
    return model, {"seed": seed, "lr": lr, "best_epoch": best["epoch"], "dev": best["dev"], "history": history}


def test_seed(model, prep, args, metrics, out_dir) -> dict:
    """Score the kept weights on test (RE: with the negative bias of their dev epoch); write the
    predictions, metrics.json and (unless --no-save-model) the model in out_dir/model/."""
    bias = metrics["dev"].get("negative_bias", 0.0)
    test, pred = evaluate(model, prep["test"], prep, args, torch.device(args.device), bias=bias)
    write_predictions(out_dir, prep["kind"], prep["test"].get("examples"), pred)
    metrics = {**metrics, "test": test}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if args.save_model:
        save_finetuned(model, out_dir / MODEL_DIR, prep["labels"], predict_settings(args, prep, bias),
                       args.vocab, args.lowercase, prep.get("markers"))
        print(f"seed {metrics['seed']} | best epoch {metrics['best_epoch']} saved in {out_dir / MODEL_DIR} "
              f"(Hugging Face layout; python finetune.py predict {out_dir / MODEL_DIR} --help)")
    return metrics


def run_seed(args, prep, tokenizer, seed, out_dir, lr) -> dict:
    """Fine-tune with one seed, keep the best dev epoch, score it on test."""
    model, metrics = train_seed(args, prep, tokenizer, seed, lr)
    return test_seed(model, prep, args, metrics, out_dir)


def sweep_lr(args, prep, tokenizer, seed, out_dir) -> tuple[float, nn.Module, dict]:
    """Train the first seed with each lr of --lr, keep the one with the best dev score.

    Returns the chosen lr, its model and metrics (reused as that seed's run, so the sweep costs
    len(lrs) - 1 extra runs), and writes sweep.json: {"seed", "dev_metric", "dev": {lr: score}, "best_lr"}.
    Test is never looked at here: only the chosen run is scored on test, by the caller."""
    key, table, best = prep["dev_metric"], {}, None
    for lr in args.lrs:
        model, metrics = train_seed(args, prep, tokenizer, seed, lr)
        table[f"{lr:g}"] = metrics["dev"][key]
        if best is None or metrics["dev"][key] > best[2]["dev"][key]:
            best = (lr, model, metrics)
        del model
    sweep = {"seed": seed, "dev_metric": key, "dev": table, "best_lr": best[0]}
    (out_dir / "sweep.json").write_text(json.dumps(sweep, indent=2))
    print("lr sweep on dev (seed " + str(seed) + "): " + " | ".join(f"{lr} {v:.4f}" for lr, v in table.items())
          + f" -> lr {best[0]:g}")
    return best


def write_predictions(out_dir, kind, examples, pred, name="test"):
    """CoNLL "token gold pred" columns for NER, TSV for RE (<name>.conll, <name>.tsv), BioASQ submission
    JSON per batch for QA (pred: {batch: ranked answers}). Examples without gold labels (None: raw text
    given to `predict`) leave the gold column out: "token pred", "index sentence prediction"."""
    if kind == "ner":
        rows = lambda words, tags, pp: zip(words, pp) if tags is None else zip(words, tags, pp)
        blocks = ["\n".join(" ".join(row) for row in rows(words, tags, pp))
                  for (words, tags), pp in zip(examples, pred)]
        (out_dir / f"{name}.conll").write_text("\n\n".join(blocks) + "\n")
    elif kind == "re":
        labelled = bool(examples) and examples[0][1] is not None
        lines = ["index\tsentence\tlabel\tprediction" if labelled else "index\tsentence\tprediction"]
        lines += ["\t".join([str(i), s, *([g] if labelled else []), p])
                  for i, ((s, g), p) in enumerate(zip(examples, pred))]
        (out_dir / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    elif all(isinstance(answer, str) for answer in pred.values()):   # SQuAD: {pair id: answer text}
        (out_dir / f"{name}_predictions.json").write_text(json.dumps(pred, indent=1, ensure_ascii=False) + "\n")
    else:
        for batch, ranked in pred.items():
            scoring.write_bioasq_submission(ranked, out_dir / f"bioasq_{batch}.json")


# ---------------------------------------------------------------------------------------------
# 6. BioASQ answer aggregation                                 (PAPER.md §4; BioBERT's 7b code)
#    Per snippet: the n-best (20) spans of at most 30 pieces over its windows, one per distinct
#    text (BERT's run_squad), softmax over them.
#    Per question (data.question_ids: BioBERT's "<question id>_<nnn>" pair ids, else the question
#    text): drop empty or >100-character answers, sum the probabilities of answers equal ignoring
#    case, rank, keep the top 5. SQuAD-style sets: each pair's best span, scored by EM/F1.
# ---------------------------------------------------------------------------------------------

def snippet_nbest(example, features, logits, n_best, max_answer_len):
    """The n best (text, probability) spans of one snippet over all its windows."""
    spans = {}
    for f, lg in zip(features, logits):
        n_ctx, shift = len(f["offsets"]), f["shift"]
        starts = lg[:, 0].topk(min(n_best, lg.shape[0])).indices.tolist()
        ends = lg[:, 1].topk(min(n_best, lg.shape[0])).indices.tolist()
        for s in starts:
            for e in ends:
                i, j = s - shift - f["first"], e - shift - f["first"]      # window-relative piece index
                if not (0 <= i <= j < n_ctx and j - i + 1 <= max_answer_len and f["max_context"][i]):
                    continue
                key = (f["offsets"][i][0], f["offsets"][j][1])
                score = (lg[s, 0] + lg[e, 1]).item()
                spans[key] = max(score, spans.get(key, -math.inf))
    top = nbest_by_text([(example["context"][a:b], score) for (a, b), score in spans.items()], n_best)
    if not top:
        return []
    probs = torch.tensor([score for _, score in top]).softmax(0).tolist()
    return [(text, p) for (text, _), p in zip(top, probs)]


def nbest_by_text(candidates, n_best) -> list[tuple[str, float]]:
    """The n_best highest-scoring (text, score) candidates, one per distinct text: a text seen again
    lower down is skipped, as BERT's run_squad skips a final_text already in seen_predictions. So a
    string that repeats in the snippet takes one slot of the n-best and one share of its softmax.

    [("EGFR", 5), ("KRAS", 4), ("EGFR", 3), ("egfr", 2)], n_best 3 -> [("EGFR", 5), ("KRAS", 4), ("egfr", 2)]"""
    seen, top = set(), []
    for text, score in sorted(candidates, key=lambda c: -c[1]):
        if text not in seen and len(top) < n_best:
            seen.add(text)
            top.append((text, score))
    return top


def aggregate_bioasq_answers(snippet_answers, top_k=5, max_chars=100) -> dict[str, list[str]]:
    """Question id -> its top_k answers, pooled over all snippets of the question.

    snippet_answers: {(question id, snippet key): [(text, probability), ...]}. Answers equal ignoring
    case share one entry whose probability is the sum; the spelling shown is the most probable one.
    """
    pooled = defaultdict(dict)                         # question id -> lowercase text -> [sum, best p, text]
    for (question, _), answers in snippet_answers.items():
        for text, p in answers:
            text = text.strip()
            if not text or len(text) > max_chars:
                continue
            entry = pooled[question].setdefault(text.lower(), [0.0, -1.0, text])
            entry[0] += p
            if p > entry[1]:
                entry[1], entry[2] = p, text
    return {q: [e[2] for e in sorted(d.values(), key=lambda e: -e[0])[:top_k]] for q, d in pooled.items()}


def bioasq_answers(model, batch, args, device) -> dict[str, list[str]]:
    """Question id -> its top answers, from the model's span scores over every snippet of the batch."""
    logits = predict(model, batch["features"], "qa", args, device)
    by_example = defaultdict(list)
    for f, lg in zip(batch["features"], logits):
        by_example[f["example"]].append((f, lg))
    answers = {(ex["question_id"], i): snippet_nbest(ex, [f for f, _ in by_example[i]], [lg for _, lg in by_example[i]],
                                                     args.n_best, args.max_answer_len)
               for i, ex in enumerate(batch["examples"])}
    return aggregate_bioasq_answers(answers, args.top_k, args.max_answer_chars)


def evaluate_bioasq(model, split, prep, args, device):
    """BioASQ measures per batch and their mean; ranked answers of every golden question."""
    ranked = {}
    for name, batch in split["batches"].items():
        pooled = bioasq_answers(model, batch, args, device)
        ranked[name] = {q: pooled.get(q, []) for q in batch["golden"]}    # a question with no snippet: []
    scores = scoring.bioasq_batch_scores([(ranked[name], b["golden"]) for name, b in split["batches"].items()])
    per_batch = dict(zip(split["batches"], scores["batches"]))
    return {**scores["mean"], "batches": per_batch}, ranked


def evaluate_squad(model, split, prep, args, device):
    """SQuAD v1.1 exact match and F1 (eval.squad_em_f1: the official evaluate-v1.1.py definitions, best
    over a question's gold answers) of each pair's best span; {pair id: answer text} as predictions.
    As in SQuAD, each pair is one question: no pooling over pairs."""
    pred = squad_answers(model, split, args, device)
    scores = scoring.squad_em_f1(pred, {ex["id"]: ex["texts"] for ex in split["examples"] if ex["texts"]})
    return scores, pred


def squad_answers(model, split, args, device) -> dict[str, str]:
    """Pair id -> the text of its best span ("" when no span qualifies)."""
    logits = predict(model, split["features"], "qa", args, device)
    by_example = defaultdict(list)
    for f, lg in zip(split["features"], logits):
        by_example[f["example"]].append((f, lg))
    pred = {}
    for i, ex in enumerate(split["examples"]):
        best = snippet_nbest(ex, [f for f, _ in by_example[i]], [lg for _, lg in by_example[i]], args.n_best,
                             args.max_answer_len)
        pred[ex["id"]] = best[0][0] if best else ""
    return pred


def qa_train_pairs(pairs, infos) -> tuple[list[dict], str]:
    """Training pairs without those whose every answer is misaligned (BERT's run_squad skips such an
    example and goes on), and a note counting both, for the format line."""
    kept = [p for p in pairs if p["answers"] or not p["texts"]]
    misaligned = sum(info.get("misaligned", 0) for info in infos)
    note = (f"; {misaligned} answers not at their answer_start ({len(pairs) - len(kept)} training pairs dropped, "
            "as BERT's run_squad; dev/test keep them as gold texts)" if misaligned else "")
    return kept, note


def squad_splits(spec, folder, args):
    """SQuAD v1.1 train, dev (dev.json, else a seeded share of train's questions) and test.json, every
    dev and test pair with gold answers to score; the format line printed."""
    infos = {split: {} for split in ("train", "dev", "test")}
    train = read_split(spec, folder, "train", info=infos["train"])
    if split_path(spec, folder, "dev") is None:
        train, dev = split_off_dev(train, args.dev_fraction, group=lambda p: p["question_id"])
        dev_note = f"dev: {args.dev_fraction:.0%} of train's questions (seed 0, no dev file)"
    else:
        dev, dev_note = read_split(spec, folder, "dev", info=infos["dev"]), "dev file"
    test = read_split(spec, folder, "test", info=infos["test"])
    for split, pairs in (("dev", dev), ("test", test)):
        if not all(p["texts"] for p in pairs):
            raise data.DataError(f"{split_path(spec, folder, split) or folder}: {sum(not p['texts'] for p in pairs)} "
                                 f"questions without gold answers: a SQuAD-style {split} split is scored against them")
    train, note = qa_train_pairs(train, infos.values())
    print(f"QA, SQuAD v1.1 JSON (train/dev/test.json), scored by SQuAD EM/F1, {len(test)} test questions; "
          f"{dev_note}{note}")
    return train, dev, test


def bioasq_splits(spec, folder, args):
    """Train and dev from train.json, split by question (dev: a fixed, seeded share of questions),
    and one test batch per test-*.json with the factoid questions of the matching golden-*.json."""
    info = {}
    pairs = read_split(spec, folder, "train", info=info)
    train, dev = split_off_dev(pairs, args.dev_fraction, group=lambda p: p["question_id"])
    dev_golden = defaultdict(set)
    for p in dev:
        dev_golden[p["question_id"]].update(p["texts"])
    dev_batch = {"examples": dev, "golden": {q: [sorted(s)] for q, s in dev_golden.items()}}
    tests = {}
    for path in sorted(folder.glob("test-*.json")):
        name = path.stem[len("test-"):]
        if args.test_batches and name.rsplit("-", 1)[-1] not in args.test_batches.split(","):
            continue
        golden = data.read_bioasq_golden(data.require_file(folder / f"golden-{name}.json", f"golden answers of {path}"))
        tests[name] = {"examples": spec.reader(path), "golden": golden}
        unknown = {p["question_id"] for p in tests[name]["examples"]} - set(golden)
        if unknown:
            print(f"warning: {path}: {len(unknown)} questions not among the factoid questions of golden-{name}.json "
                  f"(not scored), e.g. {sorted(unknown)[0]!r}", file=sys.stderr)
    if not tests:
        raise data.DataError(f"{folder}: no test-*.json batches (with golden-*.json answers) selected")
    train, note = qa_train_pairs(train, [info])
    print(f"QA, BioASQ layout (train.json + {len(tests)} test-*.json batches with golden-*.json), {info['questions']} "
          f"train questions grouped by {info['question_ids']}; dev: {len(dev_golden)} of them "
          f"({args.dev_fraction:.0%}, seed 0){note}")
    return train, {"dev": dev_batch}, tests


def limit_questions(batch, n):
    """The first n golden questions of a batch and their snippets (for --max-eval-examples)."""
    if n is None:
        return batch
    keep = sorted(batch["golden"])[:n]
    return {"examples": [e for e in batch["examples"] if e["question_id"] in set(keep)],
            "golden": {q: batch["golden"][q] for q in keep}}


# ---------------------------------------------------------------------------------------------
# 7. Many seeds and the summary                                                    (PAPER.md §4)
#    Data and features are built once; each seed starts again from the initial weights.
#    Summary: mean and sample standard deviation of the test metric over the seeds.
# ---------------------------------------------------------------------------------------------

def prepare(args, spec, folder, tokenizer) -> dict:
    """Examples and features of every split, the label set and how dev is scored."""
    if spec.kind == "qa":
        qa = lambda b: {**b, "features": qa_features(b["examples"], tokenizer, args.max_seq_len,
                                                      args.doc_stride, args.max_query_len)}
        if spec.metric == "squad_f1":
            train, dev, test = squad_splits(spec, folder, args)
            return {"kind": "qa", "squad": True, "labels": [], "dev_metric": "f1",
                    "train": qa({"examples": subset(train, args.max_train_examples)})["features"],
                    "dev": qa({"examples": subset(dev, args.max_eval_examples)}),
                    "test": qa({"examples": subset(test, args.max_eval_examples)})}
        train, dev, tests = bioasq_splits(spec, folder, args)
        train = subset(train, args.max_train_examples)
        # CHOICE: dev picks the epoch by MRR: on ~50 held-out questions strict accuracy moves in
        # steps of 2%, while MRR also rewards a gold answer ranked 2nd to 5th.
        return {"kind": "qa", "labels": [], "dev_metric": "mrr", "train": qa({"examples": train})["features"],
                "dev": {"batches": {k: qa(limit_questions(b, args.max_eval_examples)) for k, b in dev.items()}},
                "test": {"batches": {k: qa(limit_questions(b, args.max_eval_examples)) for k, b in tests.items()}}}
    splits, infos, dev_note = read_splits(spec, folder, args)
    splits["train"] = subset(splits["train"], args.max_train_examples)
    labels = label_set(spec, splits["train"])
    ids = {label: i for i, label in enumerate(labels)}
    for split in ("dev", "test"):
        splits[split] = subset(splits[split], args.max_eval_examples)
        if spec.kind == "re":                    # labels in any case: dev/test take train's spelling
            spelling = {label.lower(): label for label in labels}
            splits[split] = [(s, spelling.get(label.lower(), label)) for s, label in splits[split]]
        warn_unseen_labels(spec, labels, splits[split], split_path(spec, folder, split) or f"{split} (from train)")
    prep = {"kind": spec.kind, "labels": labels, "dev_metric": "f1"}
    if spec.kind == "ner":
        print(describe_format(spec, infos, labels, args) + dev_note)
        features = {k: tagging_features(rows, tokenizer, ids, args.max_seq_len) for k, rows in splits.items()}
    else:
        prep["negative"] = negative_label(spec, labels)
        print(describe_format(spec, infos, labels, args, prep["negative"]) + dev_note)
        sentences = [sentence for rows in splits.values() for sentence, _ in rows]
        prep["markers"] = marker_ids(tokenizer, sentences) if args.entity_markers == "unused" else {}
        features = {k: classification_features(rows, tokenizer, ids, args.max_seq_len, prep["markers"],
                                               args.marker_window) for k, rows in splits.items()}
        prep["lost_markers"] = report_lost_markers(splits, features, tokenizer, prep["negative"], args)
    prep["train"] = features["train"]
    for split in ("dev", "test"):
        prep[split] = {"examples": splits[split], "features": features[split]}
    return prep


def read_splits(spec, folder, args) -> tuple[dict, dict, str]:
    """NER or RE: the examples of train, dev and test, the format each file was found in, and a note
    on dev when the set has no dev file (then a seeded --dev-fraction of train's examples)."""
    infos, splits = {}, {}
    for split in ("train", "dev", "test"):
        if split != "dev" or split_path(spec, folder, "dev") is not None:
            infos[split] = {}
            splits[split] = read_split(spec, folder, split, args.entity_type, infos[split])
    if "dev" in splits:
        return splits, infos, ""
    splits["train"], splits["dev"] = split_off_dev(splits["train"], args.dev_fraction)
    return splits, infos, (f"; no dev file: dev is {len(splits['dev'])} of train's {len(splits['dev']) + len(splits['train'])} "
                           f"examples ({args.dev_fraction:.0%}, seed 0)")


RE_LAYOUTS = {None: "BioBERT layout (no header)", ("index", "sentence", "label"): "BLUE layout (header index, sentence, label)"}


def describe_format(spec, infos, labels, args, negative=None) -> str:
    """One line saying how the files were read, e.g. 'RE, BioBERT layout (no header), 5 classes, negative: 0'."""
    if spec.kind == "re":
        splits = defaultdict(list)                 # layout -> the splits in it (BioBERT: test has a header)
        for split, info in infos.items():
            header = info["header"] and tuple(info["header"])
            splits[RE_LAYOUTS.get(header, f"header {', '.join(header or [])}")].append(split)
        layout = (next(iter(splits)) if len(splits) == 1 else
                  ", ".join(f"{'/'.join(names)}: {layout}" for layout, names in splits.items()))
        return f"RE, {layout}, {len(labels)} classes, negative: {negative}"
    found = infos["train"]
    bare = f" without types (type {args.entity_type or data.DEFAULT_ENTITY_TYPE!r})" if found["bare"] else ""
    scheme = found["scheme"] + (" -> BIO" if found["scheme"] not in ("BIO", "IOB1") else "")
    return (f"NER, CoNLL {found['columns']} columns ({found['separator']} separated), {scheme} tags{bare}, "
            f"{len(labels)} labels")


def report_lost_markers(splits, features, tokenizer, negative, args) -> dict:
    """Per split, the rows and positives whose input lost a pair marker: with this run's settings, and
    with the paper's (marker strings as word pieces, 128 pieces, tail cut). Printed and returned."""
    report = {}
    for split, rows in splits.items():
        paper = classification_features(rows, tokenizer, {}, 128, markers={}, window=False)
        report[split] = {"this_run": count_lost_positives(rows, features[split], negative),
                         "paper_128_tail_cut": count_lost_positives(rows, paper, negative)}
        now, before = report[split]["this_run"], report[split]["paper_128_tail_cut"]
        print(f"{split}: {now['positives']} of {now['of_positives']} positives ({now['rows']} rows) lose a pair "
              f"marker at max length {args.max_seq_len}{' with the entity window' if args.marker_window else ''}; "
              f"{before['positives']} ({before['rows']} rows) with the paper's 128-piece tail cut")
    return report


def load_tokenizer(args, folder):
    """--vocab, else the checkpoint's vocab.txt, else scivocab under the data dir."""
    if args.vocab is None:
        candidates = [Path(args.init) / "vocab.txt"] if args.init != "random" else []
        candidates += [Path(args.data_dir) / "vocab" / "scivocab_uncased.txt",
                       Path(data.default_data_dir()) / "vocab" / "scivocab_uncased.txt"]
        args.vocab = str(next((c for c in candidates if c.is_file()), candidates[-1]))
    if args.lowercase is None:         # the checkpoint's casing when it says, else uncased (scivocab_uncased)
        args.lowercase = args.init == "random" or electramed.read_do_lower_case(args.init, default=True)
    return Tokenizer.from_vocab_file(data.require_file(args.vocab, "pass --vocab FILE"), lowercase=args.lowercase)


def git_state() -> dict:
    """The commit this run's code comes from, and whether the tree had local changes (STYLE.md B.9)."""
    here = Path(__file__).resolve().parent
    run = lambda *cmd: subprocess.run(["git", *cmd], cwd=here, capture_output=True, text=True).stdout.strip()
    try:
        return {"git_commit": run("rev-parse", "HEAD"), "git_dirty": bool(run("status", "--porcelain", "--", "."))}
    except OSError:                                            # no git on this machine
        return {"git_commit": None, "git_dirty": None}


def summarize(args, spec, prep, results) -> dict:
    """The summary eval.py's table reads: the test metric per seed, its mean and std."""
    values = {str(s): r["test"][SCORE_KEY[spec.metric]] for s, r in results.items()}
    v = list(values.values())
    return {"task": args.task, "metric": spec.metric, "seeds": values, "mean": statistics.mean(v),
            "std": statistics.stdev(v) if len(v) > 1 else 0.0,
            "model": f"random-{args.size}" if args.init == "random" else str(args.init),
            "dev": {str(s): r["dev"] for s, r in results.items()},
            "best_epoch": {str(s): r["best_epoch"] for s, r in results.items()},
            "epochs": args.epochs, "train_features": args.n_train, "labels": prep["labels"],
            "lr": {str(s): r["lr"] for s, r in results.items()}, "layerwise_decay": args.layerwise_decay,
            "patience": args.patience,
            **({"pooling": args.pooling, "entity_markers": args.entity_markers, "marker_window": args.marker_window,
                "lost_markers": prep["lost_markers"]} if spec.kind == "re" else {})}


# ---------------------------------------------------------------------------------------------
# 8. Keeping the fine-tuned model, and predicting with it                               (issue 10)
#    Each seed's best dev epoch is saved in seed_<s>/model/ in the Hugging Face layout: the encoder
#    under "electra.", the head under the names that transformers' ElectraForTokenClassification (NER),
#    ElectraForSequenceClassification (--pooling head) and ElectraForQuestionAnswering (QA) give it;
#    config.json with id2label/label2id, "electramed_head" (what the head is) and "electramed_predict"
#    (how inputs were built); vocab.txt and the tokenizer files; markers.json (RE).
#    `python finetune.py predict MODEL_DIR --input FILE | --text TEXT --out-dir DIR` reads it back.
# ---------------------------------------------------------------------------------------------

MODEL_DIR = "model"                      # a seed's saved model: <out-dir>/seed_<s>/model/

# (task kind, head) -> (config.json "architectures", our head's module -> its key prefix in the file).
# --pooling cls and entity have no transformers class: their keys are our own (electramed_*), config.json
# names ElectraModel, so transformers loads the encoder only; load_finetuned rebuilds the head.
HF_TASK_HEADS = {
    ("ner", "tagging"): ("ElectraForTokenClassification", {"out": "classifier"}),
    ("re", "head"): ("ElectraForSequenceClassification", {"dense": "classifier.dense", "out": "classifier.out_proj"}),
    ("re", "cls"): ("ElectraModel", {"out": "electramed_cls_classifier"}),
    ("re", "entity"): ("ElectraModel", {"out": "electramed_entity_classifier"}),
    ("qa", "span"): ("ElectraForQuestionAnswering", {"out": "qa_outputs"}),
}
HEAD_NAMES = {TaggingHead: "tagging", SequenceClassifierHead: "cls", ElectraClassificationHead: "head",
              EntityStartHead: "entity", SpanHead: "span"}
HEAD_ABOUT = {        # written into config.json, for a reader who opens the file
    "tagging": "dropout -> linear classifier on every position (transformers: ElectraForTokenClassification)",
    "head": "[CLS] -> dropout -> classifier.dense -> GELU -> dropout -> classifier.out_proj "
            "(transformers: ElectraForSequenceClassification)",
    "cls": "[CLS] -> dropout -> linear electramed_cls_classifier (hidden -> labels); finetune.py --pooling cls, "
           "no transformers class: transformers loads the encoder only",
    "entity": "hidden states at the two entity-start markers (markers.json), concatenated -> dropout -> linear "
              "electramed_entity_classifier (2 x hidden -> labels); finetune.py --pooling entity, no transformers "
              "class: transformers loads the encoder only",
    "span": "linear qa_outputs (hidden -> start, end scores) on every position (transformers: "
            "ElectraForQuestionAnswering)",
}
PREDICT_SETTINGS = ("task", "max_seq_len", "doc_stride", "max_query_len", "entity_markers", "marker_window",
                    "n_best", "max_answer_len", "max_answer_chars", "top_k")


def predict_settings(args, prep, bias) -> dict:
    """How this run built its inputs and read its outputs, so that `predict` does the same."""
    return {**{k: getattr(args, k) for k in PREDICT_SETTINGS}, "negative": prep.get("negative"), "negative_bias": bias,
            "qa_answers": "squad" if prep.get("squad") else "bioasq"}


def save_finetuned(model, directory, labels, settings, vocab_file, lowercase, markers=None):
    """Write a FineTuner in the Hugging Face layout (this section's banner). transformers'
    from_pretrained loads the whole model for the tagging, --pooling head and span heads; for --pooling
    cls and entity it loads the encoder only (their head keys are ours), and load_finetuned the whole."""
    name = HEAD_NAMES[type(model.head)]
    architecture, keys = HF_TASK_HEADS[(model.kind, name)]
    labels = labels or ["start", "end"]                      # QA: the two columns of qa_outputs
    state = {}
    for key, tensor in model.head.state_dict().items():
        state[hf_head_key(key, keys)] = tensor.detach().cpu().clone()
    config = {"architectures": [architecture], "num_labels": len(labels), "id2label": dict(enumerate(labels)),
              "label2id": {label: i for i, label in enumerate(labels)},
              "electramed_head": {"kind": model.kind, "head": name, "keys": keys, "about": HEAD_ABOUT[name]},
              "electramed_predict": settings}
    electramed.save_hf_checkpoint(model.encoder, directory, vocab_file=vocab_file, lowercase=lowercase,
                                  head=(config, state))
    if markers:
        save_markers(markers, Tokenizer.from_vocab_file(vocab_file, lowercase), Path(directory) / "markers.json")


def load_finetuned(directory) -> tuple[nn.Module, Tokenizer, list[str], dict]:
    """The FineTuner (eval mode), tokenizer, labels and predict settings of a directory save_finetuned wrote."""
    _, raw = electramed.read_hf_config(directory)
    about = raw.get("electramed_head") or {}
    if (about.get("kind"), about.get("head")) not in HF_TASK_HEADS:
        raise FinetuneError(f"{Path(directory) / 'config.json'}: no known 'electramed_head' entry: not a "
                            "fine-tuned model saved by finetune.py")
    kind, name = about["kind"], about["head"]
    labels = [raw["id2label"][str(i)] for i in range(raw["num_labels"])] if kind != "qa" else []
    model = FineTuner(electramed.load_hf_encoder(directory), kind, len(labels), pooling=name if kind == "re" else "cls")
    hf = electramed.read_state_dict(directory)
    model.head.load_state_dict(head_state(hf, model.head, HF_TASK_HEADS[(kind, name)][1], directory))
    vocab = data.require_file(Path(directory) / "vocab.txt", "a saved model holds its vocabulary")
    tokenizer = Tokenizer.from_vocab_file(vocab, lowercase=electramed.read_do_lower_case(directory, default=True))
    return model.eval(), tokenizer, labels, raw.get("electramed_predict", {})


def hf_head_key(key, keys) -> str:
    """Our head's parameter name under transformers' module names: "out.weight" -> "classifier.weight"."""
    module, param = key.rsplit(".", 1)
    return f"{keys[module]}.{param}"


def head_state(hf, head, keys, source) -> dict:
    """Our head's state dict from the checkpoint's head tensors; each must be there, and nothing else."""
    ours, wanted = {}, set()
    for key in head.state_dict():
        name = hf_head_key(key, keys)
        wanted.add(name)
        if name in hf:
            ours[key] = hf[name]
    missing = sorted(wanted - set(hf))
    unexpected = sorted(k for k in hf if not k.startswith("electra.") and k not in wanted)
    if missing or unexpected:
        raise electramed.CheckpointError(f"{source}: head tensors missing: {missing or 'none'}; "
                                         f"unexpected: {unexpected or 'none'}")
    return ours


SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def split_sentences(text) -> list[str]:
    """Sentences of raw text: each line, cut after . ! or ? followed by space and a capital letter.
    "Loss of BRCA1 (ref. 3) is rare. It ..." -> ["Loss of BRCA1 (ref. 3) is rare.", "It ..."]

    CHOICE: a plain rule, not a trained splitter (scispaCy, NLTK), to keep the requirements as they are:
    an abbreviation before a capitalised word ("et al. Smith") is cut in two; one sentence a line avoids it."""
    return [s for line in text.splitlines() for s in SENTENCE_END.split(line.strip()) if s]


def predict_input(args, kind) -> tuple[str, list]:
    """The predictions file's name and the examples: --input read by the task kind's reader (gold labels
    kept), or raw --text / --text-file lines with gold None (NER: sentences cut into words by the
    tokenizer's basic tokenization, case kept; RE: a sentence with its markers; QA: a context of --question)."""
    if args.input:
        path = data.require_file(args.input, "predict --input takes a file in the task's format")
        return Path(path).stem, GENERIC[kind].reader(path)
    name, texts = "text", args.text
    if args.text_file:
        path = data.require_file(args.text_file, "predict --text-file takes a text file")
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        name, texts = Path(path).stem, [line for line in lines if line.strip()]
    if kind == "ner":
        return name, [(words, None) for t in texts for s in split_sentences(t) if (words := basic_tokenize(s, False))]
    if kind == "re":
        return name, [(t.strip(), None) for t in texts]
    if not args.question:
        raise FinetuneError("predict: a QA model answers --question over each --text (or --text-file line)")
    # One question "text": a BioASQ-style model pools its answers over the texts (snippets).
    return name, [{"id": f"text_{i:03d}", "question_id": "text", "question": args.question, "context": t,
                   "answers": [], "texts": []} for i, t in enumerate(texts)]


def predict_examples(model, kind, examples, labels, tokenizer, opts, directory):
    """Predictions in write_predictions' shapes: tags per word (NER), a label per row (RE), {question id:
    ranked answers} (BioASQ-style QA) or {pair id: answer} (SQuAD-style), read as the run read its test."""
    device = torch.device(opts.device)
    if kind == "ner":
        features = tagging_features([(w, t or ["O"] * len(w)) for w, t in examples], tokenizer, {}, opts.max_seq_len)
        return word_tags(examples, features, predict(model, features, kind, opts, device), labels)
    if kind == "re":
        markers = load_markers(Path(directory) / "markers.json", tokenizer) if opts.entity_markers == "unused" else {}
        features = classification_features(examples, tokenizer, {}, opts.max_seq_len, markers, opts.marker_window)
        return relation_predictions(predict(model, features, kind, opts, device), labels, opts.negative,
                                    opts.negative_bias)
    batch = {"examples": examples, "features": qa_features(examples, tokenizer, opts.max_seq_len, opts.doc_stride,
                                                            opts.max_query_len)}
    if opts.qa_answers == "squad":
        return squad_answers(model, batch, opts, device)
    pooled = bioasq_answers(model, batch, opts, device)
    return {q: pooled.get(q, []) for q in dict.fromkeys(e["question_id"] for e in examples)}


def negative_bias_arg(text):
    """--negative-bias: 'tune' or a number."""
    return "tune" if text == "tune" else float(text)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("task (PAPER.md §4)")
    g.add_argument("--task", required=True, choices=[*TASKS, *GENERIC],
                   help="a named benchmark, or ner|re|qa for any data set in those formats")
    g.add_argument("--data-dir", default=data.default_data_dir(),
                   help="named tasks: the folder holding bc5cdr/ ...; ner|re|qa: the data set's own folder")
    g.add_argument("--negative-label", default=None, help="generic re: the no-relation class (default: guessed)")
    g.add_argument("--entity-type", default=None,
                   help=f"ner: the type of bare B/I/O tags (BioBERT's NER files; default {data.DEFAULT_ENTITY_TYPE!r})")
    g.add_argument("--max-train-examples", type=int, default=None, help="a seeded random subset of train")
    g.add_argument("--max-eval-examples", type=int, default=None, help="subset of dev/test (QA: questions per batch)")
    g.add_argument("--test-batches", default=None, help="qa: e.g. 1,3 (default: every test-*.json)")
    g.add_argument("--dev-fraction", "--qa-dev-fraction", type=float, default=0.1,
                   help="share of train held out as dev (seed 0) when the set has no dev file; QA: of its questions")
    g = p.add_argument_group("model (PAPER.md §2)")
    g.add_argument("--init", default=None,
                   help=f"'random' or an HF-layout ELECTRA directory (default: {PRETRAINED_DEFAULT} if it exists, "
                        "else random)")
    g.add_argument("--size", choices=list(electramed.SIZES), default="small", help="with --init random")
    g.add_argument("--vocab", default=None, help="default: the checkpoint's vocab.txt, else scivocab in --data-dir")
    g.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=None,
                   help="default: the checkpoint's tokenizer_config.json do_lower_case, else lowercase")
    g.add_argument("--max-seq-len", type=int, default=None, help="default 128 (NER, RE), 384 (QA)")
    g.add_argument("--doc-stride", type=int, default=128, help="qa: pieces between window starts")
    g.add_argument("--max-query-len", type=int, default=64, help="qa: question pieces kept (BERT)")
    g = p.add_argument_group("relation extraction (issue 9)")
    g.add_argument("--entity-markers", choices=["unused", "text"], default="unused",
                   help="unused: each marker string (@DRUG$, BC6ENTC, ...) is one [unusedN] id (markers.json); "
                        "text: WordPiece splits them, as the paper's runs did")
    g.add_argument("--pooling", choices=list(POOLING), default="cls",
                   help="cls: [CLS] -> linear (the paper's); head: HF's ElectraClassificationHead; "
                        "entity: the two entity-start markers' states, concatenated -> linear")
    g.add_argument("--marker-window", action=argparse.BooleanOptionalAction, default=True,
                   help="a sentence longer than --max-seq-len keeps a window centred on the pair instead of "
                        "its first pieces, when the first pieces would lose a marker")
    g.add_argument("--negative-bias", type=negative_bias_arg, default=0.0,
                   help="added to the no-relation logit before the argmax: 0 (the paper's plain argmax), a "
                        "number, or 'tune': after each epoch the bias maximising dev micro-F1, kept with that "
                        "epoch and applied to test")
    g = p.add_argument_group("optimization (PAPER.md §4)")
    g.add_argument("--lr", default=None,
                   help="one value, or a comma-separated list swept on dev with the first seed (the best dev "
                        "score's lr then runs every seed; sweep.json). Default: 3e-4 up to hidden 256, else 1e-4")
    g.add_argument("--reinit-layers", type=int, default=0,
                   help="draw the top N layers of --init afresh (0: keep all; the layer count: embeddings only)")
    g.add_argument("--dropout", type=float, default=0.1,
                   help="hidden and attention dropout while fine-tuning, whatever the checkpoint's config says")
    g.add_argument("--layerwise-decay", type=float, default=None,
                   help="per-layer lr factor (default: 0.8, the paper's; 1.0 with --init random)")
    g.add_argument("--weight-decay", type=float, default=0.01)
    g.add_argument("--warmup-fraction", type=float, default=0.1)
    g.add_argument("--epochs", type=int, default=None,
                   help="default: 10 for NER, 3 otherwise (paper); --init random: NER 20, RE 10, QA 3")
    g.add_argument("--patience", type=int, default=None,
                   help="stop when dev has not improved for this many epochs, counted once dev is "
                        "above 0; 0 = off "
                        f"(default: off, the paper's; {SCRATCH_PATIENCE} with --init random)")
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--eval-batch-size", type=int, default=64)
    g.add_argument("--length-buckets", action=argparse.BooleanOptionalAction, default=False,
                   help=f"batch similar lengths together (chunks of {BUCKET_BATCHES} batches sorted by length, "
                        "batches shuffled): less padding on CPU; off = the plain shuffle")
    g = p.add_argument_group("BioASQ answers (PAPER.md §4)")
    g.add_argument("--n-best", type=int, default=20)
    g.add_argument("--max-answer-len", type=int, default=30, help="in word pieces")
    g.add_argument("--max-answer-chars", type=int, default=100)
    g.add_argument("--top-k", type=int, default=5)
    g = p.add_argument_group("system")
    g.add_argument("--seeds", default=None, help="comma-separated, e.g. 1,2,3 (default: --seed)")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    g.add_argument("--out-dir", default=None, help="default: runs/finetune/<task>")
    g.add_argument("--save-model", action=argparse.BooleanOptionalAction, default=True,
                   help=f"save each seed's best dev epoch in <out-dir>/seed_<s>/{MODEL_DIR}/ (Hugging Face layout; "
                        "`python finetune.py predict --help` runs it on new input)")
    return p.parse_args(argv)


def main(args) -> dict:
    resolve_init(args)
    spec, folder = resolve_task(args)
    out_dir = Path(args.out_dir or f"runs/finetune/{args.task}")
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"out dir: {out_dir}")
    tokenizer = load_tokenizer(args, folder)
    data.note_if_sample(folder, args.vocab)
    check_init(args, tokenizer)
    fill_defaults(args, spec, init_hidden_size(args))
    prep = prepare(args, spec, folder, tokenizer)
    args.pad_id, args.n_train = tokenizer.pad_id, len(prep["train"])
    if prep.get("markers"):
        save_markers(prep["markers"], tokenizer, out_dir / "markers.json")
        print(f"relation markers -> vocabulary rows (markers.json): "
              + ", ".join(f"{m} {tokenizer.id_to_token[i]}" for m, i in prep["markers"].items()))
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
    print(f"task {args.task} ({spec.kind}) | {args.n_train} train features | labels {prep['labels'] or 'spans'} | "
          f"init {args.init} | vocab {args.vocab} ({len(tokenizer)}) | seeds {seeds} | device {args.device}")
    print(f"recipe | lr {','.join(f'{x:g}' for x in args.lrs)} | layer-wise decay {args.layerwise_decay} | "
          f"epochs {args.epochs} | patience {args.patience or 'off'} | max length {args.max_seq_len}")
    (out_dir / "args.json").write_text(json.dumps({**vars(args), "torch": torch.__version__, **git_state()}, indent=2))
    results, lr = {}, args.lrs[0]
    for seed in seeds:
        (out_dir / f"seed_{seed}").mkdir(exist_ok=True)
        if len(args.lrs) > 1 and seed == seeds[0]:
            lr, model, metrics = sweep_lr(args, prep, tokenizer, seed, out_dir)
            results[seed] = test_seed(model, prep, args, metrics, out_dir / f"seed_{seed}")
        else:
            results[seed] = run_seed(args, prep, tokenizer, seed, out_dir / f"seed_{seed}", lr)
        print(f"seed {seed} | best epoch {results[seed]['best_epoch']} | test {spec.metric} "
              f"{results[seed]['test'][SCORE_KEY[spec.metric]]:.4f}")
    summary = summarize(args, spec, prep, results)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"{args.task} test {spec.metric}: {100 * summary['mean']:.2f} +- {100 * summary['std']:.2f} "
          f"over seeds {seeds}")
    return summary


def parse_predict_args(argv=None):
    p = argparse.ArgumentParser(
        prog="finetune.py predict", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"Run a fine-tuned model that finetune.py saved (<out-dir>/seed_<s>/{MODEL_DIR}/) on new input\n"
                    "and write its predictions in the formats of the run's test predictions: <name>.conll (NER),\n"
                    "<name>.tsv (RE), bioasq_<name>.json or <name>_predictions.json (QA, BioASQ- or SQuAD-style),\n"
                    "<name> being the input file's stem, or 'text' for --text.\n\n"
                    f"    python finetune.py predict runs/finetune/ncbi_disease/seed_1/{MODEL_DIR} --input test.txt "
                    "--out-dir preds\n"
                    f"    python finetune.py predict runs/finetune/ncbi_disease/seed_1/{MODEL_DIR} --text 'BRCA1 carriers "
                    "develop breast cancer.' --out-dir preds")
    p.add_argument("model", help=f"the saved model directory, <out-dir>/seed_<s>/{MODEL_DIR}")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="a file in the task's format (CoNLL, BLUE TSV, SQuAD JSON); its gold "
                                        "labels are written beside the predictions, as in test.conll/test.tsv")
    source.add_argument("--text", action="append", help="raw text, repeatable. NER: a passage (cut into sentences "
                        "and words); RE: one sentence with its entity markers (@GENE$ ...); QA: a context of --question")
    source.add_argument("--text-file", help="raw text, one --text per non-empty line")
    p.add_argument("--question", help="qa: the question asked of every --text")
    p.add_argument("--out-dir", required=True, help="where the predictions file goes")
    p.add_argument("--eval-batch-size", type=int, default=64)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p.parse_args(argv)


def predict_main(args) -> Path:
    """`python finetune.py predict`: a saved model's predictions on new input; returns the file written."""
    model, tokenizer, labels, settings = load_finetuned(args.model)
    opts = argparse.Namespace(**settings, eval_batch_size=args.eval_batch_size, pad_id=tokenizer.pad_id,
                              device=args.device)
    name, examples = predict_input(args, model.kind)
    source = args.input or args.text_file or "--text"
    if not examples:
        raise FinetuneError(f"predict: nothing to predict in {source}")
    pred = predict_examples(model.to(args.device), model.kind, examples, labels, tokenizer, opts, args.model)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bioasq = model.kind == "qa" and settings["qa_answers"] == "bioasq"
    write_predictions(out_dir, model.kind, examples, {name: pred} if bioasq else pred, name)
    files = {"ner": f"{name}.conll", "re": f"{name}.tsv", "qa": f"bioasq_{name}.json" if bioasq else f"{name}_predictions.json"}
    path = out_dir / files[model.kind]
    print(f"{len(examples)} {'contexts' if model.kind == 'qa' else 'sentences'} of {source} -> {path} "
          f"({settings.get('task')} model {args.model})")
    return path


if __name__ == "__main__":
    try:
        if sys.argv[1:2] == ["predict"]:
            predict_main(parse_predict_args(sys.argv[2:]))
        else:
            main(parse_args())
    except (data.DataError, FinetuneError, electramed.CheckpointError, TokenizerError) as e:
        sys.exit(f"error: {e}")
