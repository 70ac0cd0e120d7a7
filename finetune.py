"""
Fine-tuning ELECTRA(Med) on the paper's biomedical benchmarks (docs/paper.md §4).

One encoder, three hand-written heads: a tagger on the first sub-token of each word (NER: BC5CDR,
NCBI-disease), a sentence classifier (relation extraction: ChemProt, DDI) and a start/end span scorer
over sliding windows (BioASQ factoid QA, answers pooled over the snippets of a question). Training uses
layer-wise learning-rate decay, warmup then linear decay, AdamW with weight decay and gradient
clipping; the best dev epoch is kept and scored on test, for every seed of --seeds.

    python finetune.py --task chemprot    # runs/pretrain/'s model if there is one; small recipe below Base size
    python finetune.py --task ncbi_disease --init random --size tiny --epochs 2 --max-train-examples 500
    python finetune.py --task ner --data-dir my_ner_set/      # any CoNLL set: train.txt dev.txt test.txt
    python finetune.py --task chemprot --init electramed-base/ --seeds 1,2,3    # Base: the paper's protocol

Writes to --out-dir: args.json, sweep.json (several --lr), markers.json (RE), seed_<s>/metrics.json,
seed_<s>/test.conll | test.tsv | bioasq_<batch>.json | test_predictions.json (predictions, with gold),
seed_<s>/model/ (the best dev epoch in the Hugging Face layout, Appendix A.4) and summary.json (read
by `python eval.py table`). A saved model predicts on new input: `finetune.py predict --help` (A.5).

References: google-research/electra finetune/ (tagging, classification, qa) and model/optimization.py
(layer-wise decay); BERT run_squad.py (sliding windows, n-best); BioBERT's transform_n2b_factoid
(BioASQ answer pooling and submission format).
"""
import argparse
import copy
import inspect
import json
import math
import random
import re
import statistics
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

IGNORE = -100                  # label of positions without a loss (F.cross_entropy's default)
WEIGHT_DECAY = 0.01            # AdamW weight decay (ELECTRA's fine-tuning default, docs/paper.md §4)
WARMUP_FRACTION = 0.1          # share of the steps with a linear warmup (the same)
DOC_STRIDE = 128               # QA: pieces between window starts (BERT's run_squad)
MAX_QUERY_LEN = 64             # QA: question pieces kept (BERT's run_squad)
N_BEST, MAX_ANSWER_LEN = 20, 30          # QA: spans kept per snippet, at most 30 pieces each (BioBERT)
TOP_K, MAX_ANSWER_CHARS = 5, 100         # QA: answers kept per question, at most 100 characters (BioBERT)
EVAL_BATCH_SIZE = 64
BUCKET_BATCHES = 50                      # --length-buckets: batches per sorted chunk (Appendix A.1)


class FinetuneError(ValueError):
    """A bad command line, data set or checkpoint, explained in one line."""


# ---------------------------------------------------------------------------------------------
# 1. The task table and the two recipes                                       (docs/paper.md §4)
#    Five named tasks; `ner`, `re` and `qa` take any data set in the same formats (data.read_task).
#    The paper's protocol (ELECTRA's fine-tuning defaults): [CLS] pooling, lr 1e-4 for Base, layer-wise
#    decay 0.8, 3 epochs (NER 10), plain argmax. It was tuned on Base-size pre-trained models; smaller
#    ones and random inits get the small recipe: lr 1e-3, no layer-wise decay, for RE the entity-start
#    markers' states and a no-relation bias tuned on dev (Appendix A.1). The rule is printed at start.
#    A random init also trains longer, stopped early once dev stops improving.
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskSpec:
    kind: str                      # "ner" | "re" | "qa"
    folder: str                    # under --data-dir; "" for the generic tasks (--data-dir is the set)
    metric: str                    # the test number summarised over seeds (eval.py's metric names)
    negative: str | None = None    # RE: the no-relation class, excluded from micro-F1
    epochs: int = 3                # ELECTRA's default; NER 10 (docs/paper.md §4: "NER often needs 10-20")
    scratch_epochs: int = 3        # from a random init: the most epochs, with early stopping (--patience)
    # CHOICE: from a random init, NER up to 20 epochs and RE up to 10, stopped early: random-init tiny
    # runs had their best dev epoch at the last or next-to-last epoch (RESULTS.md, the tiny model).


TASKS = {
    "bc5cdr": TaskSpec("ner", "bc5cdr", "entity_f1", epochs=10, scratch_epochs=20),
    "ncbi_disease": TaskSpec("ner", "ncbi_disease", "entity_f1", epochs=10, scratch_epochs=20),
    "chemprot": TaskSpec("re", "chemprot", "micro_f1", negative="False", scratch_epochs=10),
    "ddi": TaskSpec("re", "ddi", "micro_f1", negative="DDI-false", scratch_epochs=10),
    "bioasq": TaskSpec("qa", "bioasq", "strict_accuracy"),
}
GENERIC = {"ner": TASKS["ncbi_disease"], "re": TASKS["chemprot"], "qa": TASKS["bioasq"]}
SCORE_KEY = {"entity_f1": "f1", "micro_f1": "f1", "strict_accuracy": "strict", "squad_f1": "f1"}   # metric -> key
SCRATCH_PATIENCE = 3           # epochs without a better dev score before a random-init run stops

# CHOICE: the small recipe below Base size: it took ChemProt's test micro-F1 from 28.45 to 40.74 with a
# random-init mini (RESULTS.md, "The fine-tuning recipe, old against new"). lr None: Google's size rule.
RECIPES = {
    "paper": {"lr": None, "layerwise_decay": 0.8, "pooling": "cls", "negative_bias": 0.0},
    "small": {"lr": "1e-3", "layerwise_decay": 1.0, "pooling": "entity", "negative_bias": "tune"},
}
BASE_HIDDEN = 768              # ELECTRA-Base's width: the size the paper fine-tuned


def resolve_task(args) -> tuple[TaskSpec, Path]:
    """The task spec and the folder that holds its files."""
    if args.task in TASKS:
        return TASKS[args.task], Path(args.data_dir) / TASKS[args.task].folder
    spec = GENERIC[args.task]
    generic = TaskSpec(args.task, "", spec.metric, args.negative_label, spec.epochs, spec.scratch_epochs)
    return generic, Path(args.data_dir)


def choose_recipe(args, hidden_size) -> str:
    """--recipe, else the rule: paper for a pre-trained Base-size (or larger) checkpoint, else small; said."""
    if args.recipe is None:
        base = args.init != "random" and hidden_size >= BASE_HIDDEN
        args.recipe = "paper" if base else "small"
        model = f"{'random weights' if args.init == 'random' else 'a pre-trained checkpoint'} of hidden {hidden_size}"
        why = "Base size, the size" if base else f"< {BASE_HIDDEN}, smaller than the Base models"
        print(f"recipe {args.recipe}: {model}, {why} the paper's protocol was tuned on "
              f"(--recipe {'small' if base else 'paper'} for the other)")
    return args.recipe


def fill_defaults(args, spec, hidden_size):
    """Settings left unset: the recipe's, a random init's (more epochs, early stopping), the kind's."""
    for name, value in RECIPES[choose_recipe(args, hidden_size)].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    scratch = args.init == "random"
    if args.epochs is None:
        args.epochs = spec.scratch_epochs if scratch else spec.epochs
    if args.patience is None:
        args.patience = SCRATCH_PATIENCE if scratch else 0
    if args.max_seq_len is None:
        args.max_seq_len = KINDS[spec.kind].max_seq_len
    if args.epochs < 1 or args.batch_size < 1:
        raise FinetuneError(f"--epochs {args.epochs} --batch-size {args.batch_size}: both must be at least 1")
    args.lrs = parse_lrs(args.lr, hidden_size)


# ---------------------------------------------------------------------------------------------
# 2. Features                                                           (docs/paper.md §4; BERT)
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
    """The feature of some consecutive words of one sentence (tags None: raw text, no labels)."""
    input_ids, labels, positions = [tokenizer.cls_id], [IGNORE], []
    for w in words:
        ids = pieces[w]
        positions.append(len(input_ids) if ids else -1)      # a word with no piece is predicted O
        input_ids += ids
        label = label_ids.get(tags[w], IGNORE) if tags else IGNORE
        labels += [label] + [IGNORE] * (len(ids) - 1) if ids else []
    input_ids.append(tokenizer.sep_id)
    labels.append(IGNORE)
    return {"input_ids": input_ids, "token_type_ids": [0] * len(input_ids), "labels": labels,
            "example": example, "words": words, "positions": positions}


def classification_features(rows, tokenizer, label_ids, max_len, markers=None, window=True):
    """One feature per sentence: [CLS] sentence [SEP], its label id (IGNORE if unseen in train) and
    `entity`, the two pair markers' first pieces (one twice for a one-mention pair as @CHEM-GENE$, [CLS]
    twice for none). markers: marker_ids's map, {} for WordPiece (A.1); window=False: the paper's tail cut."""
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


def answer_pieces(example, offsets):
    """(first, last) piece of the first gold answer, or None (no answer, or it covers no piece)."""
    if not example.get("answers"):
        return None
    a = example["answers"][0]
    begin, end = a["answer_start"], a["answer_start"] + len(a["text"])
    inside = [j for j, (s, e) in enumerate(offsets) if s < end and e > begin]
    return (inside[0], inside[-1]) if inside else None


def qa_features(examples, tokenizer, max_len, stride=DOC_STRIDE, max_query_len=MAX_QUERY_LEN):
    """Sliding windows over each snippet, with span labels (0 = [CLS] when the answer is outside)."""
    features = []
    for i, ex in enumerate(examples):
        question = tokenizer.encode_text(ex["question"])[:max_query_len]
        pieces, offsets = tokenizer.tokenize_with_offsets(ex["context"])
        ids = [tokenizer.vocab.get(p, tokenizer.unk_id) for p in pieces]
        answer, room = answer_pieces(ex, offsets), max_len - len(question) - 3
        if room < 1:
            raise FinetuneError(f"--max-seq-len {max_len}: no room for a snippet after {len(question)} question pieces")
        step = min(room, stride)                       # window starts as BERT's run_squad: the last reaches the end
        starts = list(range(0, max(len(ids) - room, 0) + step, step)) if ids else []
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
    """Pad features into tensors, labels as KINDS lays them out; attention_mask None without padding."""
    lengths = [len(f["input_ids"]) for f in features]
    L = max(lengths)
    pad = lambda key, value: torch.tensor([f[key] + [value] * (L - len(f[key])) for f in features])
    batch = {"input_ids": pad("input_ids", pad_id), "token_type_ids": pad("token_type_ids", 0),
             "attention_mask": None, **KINDS[kind].labels(features, pad)}
    if min(lengths) < L:
        batch["attention_mask"] = torch.tensor([[1] * n + [0] * (L - n) for n in lengths], dtype=torch.bool)
    return {k: (v.to(device) if v is not None else None) for k, v in batch.items()}


# ---------------------------------------------------------------------------------------------
# 3. Heads and losses                                          (docs/paper.md §4; ELECTRA, BERT)
#    tagging: dropout -> linear on every position; [CLS] -> dropout -> linear (other poolings: A.1);
#    span: linear -> 2 scores (start, end) per position. Weights normal(0, 0.02), biases 0 (BERT).
#    Loss: mean cross-entropy in fp32; spans: the mean of the start and end losses (BERT's run_squad).
# ---------------------------------------------------------------------------------------------

class TaggingHead(nn.Module):
    def __init__(self, hidden, num_labels, dropout):
        super().__init__()
        self.dropout, self.out = nn.Dropout(dropout), nn.Linear(hidden, num_labels)

    def forward(self, h, entity=None):                 # (B, L, D)
        return self.out(self.dropout(h))               # (B, L, C)


class SequenceClassifierHead(TaggingHead):
    """[CLS] -> dropout -> linear: the paper's and Google's ELECTRA classifier (--pooling cls)."""

    def forward(self, h, entity=None):                 # (B, L, D)
        return super().forward(h[:, 0])                # (B, C) from [CLS]


class SpanHead(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.out = nn.Linear(hidden, 2)

    def forward(self, h, entity=None):                 # (B, L, D)
        return self.out(h)                             # (B, L, 2): start and end scores


class FineTuner(nn.Module):
    """The pre-trained encoder and one task head (the kind's, KINDS in section 5)."""

    def __init__(self, encoder, kind, num_labels, pooling="cls"):
        super().__init__()
        D, p = encoder.config.hidden_size, encoder.config.hidden_dropout_prob
        self.encoder, self.kind = encoder, kind
        self.head = KINDS[kind].head(D, num_labels, p, pooling)
        self.head.apply(partial(electramed.init_weights, std=encoder.config.initializer_range))

    def forward(self, batch):
        h = self.encoder(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])   # (B, L, D)
        return self.head(h, batch.get("entity"))


def classification_loss(logits, labels):
    """Cross-entropy over every labelled position (NER: (B, L, C) logits; RE: (B, C))."""
    return F.cross_entropy(logits.float().flatten(0, -2), labels.flatten(), ignore_index=IGNORE)


def span_loss(logits, labels):
    """The mean of the start and end cross-entropies (BERT's run_squad); logits (B, L, 2), labels (B, 2)."""
    logits = logits.float()
    return (F.cross_entropy(logits[..., 0], labels[:, 0]) + F.cross_entropy(logits[..., 1], labels[:, 1])) / 2


def build_encoder(args, tokenizer):
    """A random encoder of --size (BERT init) or the encoder of --init, with --dropout in every layer."""
    if args.init == "random":
        encoder = electramed.Encoder(electramed.model_config(args.size, vocab_size=len(tokenizer)))
    else:
        encoder = reinit_top_layers(electramed.load_hf_encoder(args.init), args.reinit_layers)
    return set_dropout(encoder, args.dropout)


# ---------------------------------------------------------------------------------------------
# 4. Predictions and scores                                                   (docs/paper.md §4)
#    NER: each word's tag is the argmax at its first piece; entity F1. RE: the argmax over the classes;
#    micro-F1 without the negative class. BioASQ: per snippet, the 20 best spans of at most 30 pieces,
#    one per distinct text (BERT's run_squad), softmax over them; per question, drop empty or >100-char
#    answers, add up those equal ignoring case, keep the top 5 (BioBERT's 7b code). SQuAD-style sets:
#    each pair's best span, scored by SQuAD's EM/F1.
# ---------------------------------------------------------------------------------------------

def predict_logits(model, features, args, device):
    """Logits per feature, in order, float32 on the CPU: (length, C) per token, or (C,) per sentence."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(features), EVAL_BATCH_SIZE):
            chunk = features[i:i + EVAL_BATCH_SIZE]
            batch = collate(chunk, model.kind, args.pad_id, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(batch).float().cpu()
            out += [lg[:len(f["input_ids"])] if lg.dim() == 2 else lg for lg, f in zip(logits, chunk)]
    return out


def decode_tags(model, split, prep, args, device, bias=0.0) -> list[list[str]]:
    """The tag of every word of every sentence: the argmax at its first piece (O for a word with no piece)."""
    pred = [["O"] * len(words) for words, _ in split["examples"]]
    for f, lg in zip(split["features"], predict_logits(model, split["features"], args, device)):
        for w, pos in zip(f["words"], f["positions"]):
            if pos >= 0:
                pred[f["example"]][w] = prep["labels"][lg[pos].argmax().item()]
    return pred


def evaluate_tags(model, split, prep, args, device, bias=0.0):
    """Entity precision, recall and F1 of one split, and its predicted tags."""
    pred = decode_tags(model, split, prep, args, device)
    scores = scoring.entity_prf([tags for _, tags in split["examples"]], pred)
    return {k: scores[k] for k in ("precision", "recall", "f1")}, pred


def relation_predictions(logits, labels, negative, bias) -> list[str]:
    """argmax over the classes after adding `bias` to the negative class's logit (0: plain argmax)."""
    shift = F.one_hot(torch.tensor(labels.index(negative)), len(labels)) * bias
    return [labels[i] for i in (torch.stack(logits) + shift).argmax(-1).tolist()]


def decode_relations(model, split, prep, args, device, bias=0.0) -> list[str]:
    """The predicted class of every sentence, with `bias` on the negative class's logit."""
    logits = predict_logits(model, split["features"], args, device)
    return relation_predictions(logits, prep["labels"], prep["negative"], bias)


def evaluate_relations(model, split, prep, args, device, bias=0.0):
    """Micro-F1 without the negative class, and the predictions; bias "tune" picks it on this split."""
    logits = predict_logits(model, split["features"], args, device)
    gold = [label for _, label in split["examples"]]
    if bias == "tune":
        bias = tune_negative_bias(logits, gold, prep["labels"], prep["negative"])
    pred = relation_predictions(logits, prep["labels"], prep["negative"], bias)
    scores = scoring.micro_prf(gold, pred, prep["negative"])
    return {**{k: scores[k] for k in ("precision", "recall", "f1")}, "negative_bias": bias}, pred


def snippet_nbest(example, features, logits, n_best=N_BEST, max_answer_len=MAX_ANSWER_LEN):
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
    """The n_best highest-scoring (text, score) candidates, one per distinct text, as BERT's run_squad
    skips a final_text already in seen_predictions: a string repeated in the snippet takes one slot.
    [("EGFR", 5), ("KRAS", 4), ("EGFR", 3), ("egfr", 2)], n_best 3 -> [("EGFR", 5), ("KRAS", 4), ("egfr", 2)]"""
    top = {}
    for text, score in sorted(candidates, key=lambda c: -c[1]):
        top.setdefault(text, score)
    return list(top.items())[:n_best]


def aggregate_bioasq_answers(snippet_answers, top_k=TOP_K, max_chars=MAX_ANSWER_CHARS) -> dict[str, list[str]]:
    """Question id -> its top_k answers, pooled over its snippets: {(question id, snippet key): [(text,
    probability), ...]}. Answers equal ignoring case add up; the spelling kept is the most probable one."""
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


def decode_answers(model, part, prep, args, device, bias=0.0) -> dict:
    """SQuAD-style: pair id -> its best span's text ("" if none). BioASQ-style: question id -> its
    ranked answers, for every question of part["golden"] (else of its pairs), [] for one without snippets."""
    by_example = defaultdict(list)                      # snippet (pair) -> its windows' (feature, logits)
    for f, lg in zip(part["features"], predict_logits(model, part["features"], args, device)):
        by_example[f["example"]].append((f, lg))
    answers = [snippet_nbest(ex, [f for f, _ in by_example[i]], [lg for _, lg in by_example[i]])
               for i, ex in enumerate(part["examples"])]
    if prep.get("squad"):
        return {ex["id"]: best[0][0] if best else "" for ex, best in zip(part["examples"], answers)}
    pooled = aggregate_bioasq_answers({(ex["question_id"], i): a for i, (ex, a) in enumerate(zip(part["examples"],
                                                                                                answers))})
    questions = part["golden"] if "golden" in part else dict.fromkeys(ex["question_id"] for ex in part["examples"])
    return {q: pooled.get(q, []) for q in questions}


def evaluate_answers(model, split, prep, args, device, bias=0.0):
    """SQuAD v1.1 EM/F1 (eval.squad_em_f1, the official definitions) of each pair's best span; or the
    BioASQ measures per batch and their mean, with the ranked answers of every golden question."""
    if prep.get("squad"):
        pred = decode_answers(model, split, prep, args, device)
        return scoring.squad_em_f1(pred, {ex["id"]: ex["texts"] for ex in split["examples"] if ex["texts"]}), pred
    ranked = {name: decode_answers(model, batch, prep, args, device) for name, batch in split["batches"].items()}
    scores = scoring.bioasq_batch_scores([(ranked[name], b["golden"]) for name, b in split["batches"].items()])
    return {**scores["mean"], "batches": dict(zip(split["batches"], scores["batches"]))}, ranked


# ---------------------------------------------------------------------------------------------
# 5. The three task kinds                                                     (docs/paper.md §4)
#    Everything that differs between NER, RE and QA, in one table; the rest of the file is shared.
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    features: Callable       # (examples, tokenizer, prep, args) -> features (section 2)
    labels: Callable         # (features, pad) -> the batch's label tensors (collate)
    head: Callable           # (hidden, num_labels, dropout, --pooling) -> head module (section 3)
    loss: Callable           # (logits, labels) -> mean loss
    decode: Callable         # (model, split, prep, args, device, bias) -> predictions
    evaluate: Callable       # (model, split, prep, args, device, bias) -> (scores, predictions)
    write: Callable          # (out_dir, examples, predictions, name) -> the file written (Appendix A.2)
    gold: Callable           # examples -> their gold labels (the label set is train's)
    max_seq_len: int         # the default --max-seq-len


KINDS = {
    "ner": Kind(features=lambda ex, tok, prep, args: tagging_features(ex, tok, prep["label_ids"], args.max_seq_len),
                labels=lambda features, pad: {"labels": pad("labels", IGNORE)},                        # (B, L)
                head=lambda D, n, p, pooling: TaggingHead(D, n, p), loss=classification_loss,
                decode=decode_tags, evaluate=evaluate_tags, write=lambda *a: write_tags(*a),
                gold=lambda examples: [t for _, tags in examples for t in tags], max_seq_len=128),
    "re": Kind(features=lambda ex, tok, prep, args: classification_features(
                   ex, tok, prep["label_ids"], args.max_seq_len, prep["markers"], args.marker_window),
               labels=lambda features, pad: {"labels": torch.tensor([f["labels"] for f in features]),   # (B,)
                                             "entity": torch.tensor([f["entity"] for f in features])},  # (B, 2)
               head=lambda D, n, p, pooling: POOLING[pooling](D, n, p), loss=classification_loss,
               decode=decode_relations, evaluate=evaluate_relations, write=lambda *a: write_relations(*a),
               gold=lambda examples: [label for _, label in examples], max_seq_len=128),
    "qa": Kind(features=lambda ex, tok, prep, args: qa_features(ex, tok, args.max_seq_len),
               labels=lambda features, pad: {"labels": torch.tensor([[f["start"], f["end"]] for f in features])},
               head=lambda D, n, p, pooling: SpanHead(D), loss=span_loss,
               decode=decode_answers, evaluate=evaluate_answers, write=lambda *a: write_answers(*a),
               gold=lambda examples: [], max_seq_len=384),
}


# ---------------------------------------------------------------------------------------------
# 6. Layer-wise learning rates                                  (docs/paper.md §4; ELECTRA §3.4)
#    head: lr; top layer lr*decay; each layer below one more factor; embeddings lowest. AdamW
#    (betas 0.9/0.999, eps 1e-6), weight decay 0.01 except biases and LayerNorm, 10% warmup
#    multiplied by a linear decay to 0 (Google's optimization.py), gradient norm clipped at 1.0.
# ---------------------------------------------------------------------------------------------

def layerwise_param_groups(model, lr, decay, weight_decay) -> list[dict]:
    """Optimizer groups with per-depth learning rates. With L layers, the head gets lr, encoder layer i
    (0-based) lr * decay**(L - i), so the top layer lr * decay, and the embeddings lr * decay**(L + 1).
    1-D parameters (biases, LayerNorm weights) get no weight decay, as BERT's exclusion by name.
    CHOICE: the paper's convention; Google's model/optimization.py (_get_layer_lrs) gives the top layer
    lr * decay**2, an acknowledged off-by-one we do not copy."""
    L = len(model.encoder.layers)
    groups = {}
    for name, p in model.named_parameters():
        depth = int(name.split(".")[2]) + 1 if name.startswith("encoder.layers.") else 0   # 0: the embeddings
        scale = decay ** (L + 1 - depth) if name.startswith("encoder.") else 1.0
        wd = 0.0 if p.ndim < 2 else weight_decay
        group = groups.setdefault((scale, wd), {"params": [], "names": [], "lr": lr * scale, "weight_decay": wd})
        group["params"].append(p)
        group["names"].append(name)
    return list(groups.values())


def lr_factor(step, total, warmup) -> float:
    """Google's schedule: linear decay to 0 times linear warmup, lr * (1 - s/T) * min(1, s/W)."""
    return max(0.0, 1 - step / total) * (min(1.0, step / warmup) if warmup > 0 else 1.0)


# ---------------------------------------------------------------------------------------------
# 7. Train and evaluate one seed                                              (docs/paper.md §4)
#    Evaluate on dev after every epoch, keep the weights of the best epoch, score those on test.
# ---------------------------------------------------------------------------------------------

def batch_indices(lengths, batch_size, rng, buckets=False) -> list[list[int]]:
    """The epoch's batches of feature indices: slices of one seeded permutation; buckets=True: by length (A.1)."""
    order = torch.randperm(len(lengths), generator=rng).tolist()
    if buckets:
        return length_bucketed_batches(order, lengths, batch_size, rng)
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


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
        loss = KINDS[kind].loss(logits, batch["labels"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)   # shown at the next update
    return sum(losses) / len(losses)


def train_seed(args, prep, tokenizer, seed, lr) -> tuple[nn.Module, dict]:
    """Fine-tune from the initial weights with one seed and one lr; the model holds its best dev epoch.
    --patience stops early (the schedule is still laid out over --epochs); with --negative-bias tune
    the epoch is chosen by the dev F1 with the bias tuned (training itself is unchanged)."""
    random.seed(seed)
    torch.manual_seed(seed)
    device, kind = torch.device(args.device), prep["kind"]
    model = FineTuner(build_encoder(args, tokenizer), kind, len(prep["labels"]), args.pooling).to(device)
    total = args.epochs * math.ceil(len(prep["train"]) / args.batch_size)
    # CHOICE: torch's AdamW keeps Adam's bias correction; Google's AdamWeightDecayOptimizer has none.
    optimizer = torch.optim.AdamW(layerwise_param_groups(model, lr, args.layerwise_decay, WEIGHT_DECAY),
                                  lr=lr, betas=(0.9, 0.999), eps=1e-6)
    warmup = round(WARMUP_FRACTION * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total, warmup))
    rng = torch.Generator().manual_seed(seed)
    history, best, best_state, key = [], None, None, prep["dev_metric"]
    for epoch in range(1, args.epochs + 1):
        t0 = time.time()
        desc = f"seed {seed} epoch {epoch}"
        loss = train_epoch(model, optimizer, scheduler, prep["train"], kind, args, device, rng, desc)
        dev, _ = KINDS[kind].evaluate(model, prep["dev"], prep, args, device, bias=args.negative_bias)
        history.append({"epoch": epoch, "train_loss": loss, "dev": dev, "seconds": round(time.time() - t0, 1)})
        print(f"seed {seed} | lr {lr:g} | epoch {epoch}/{args.epochs} | loss {loss:.4f} | dev {key} {dev[key]:.4f} | "
              f"{history[-1]['seconds']} s")
        if best is None or dev[key] > best["dev"][key]:
            best, best_state = history[-1], copy.deepcopy(model.state_dict())
        if patience_exhausted(best["dev"][key], best["epoch"], epoch, args.patience):
            print(f"seed {seed} | early stop: no better dev for {args.patience} epochs (best epoch {best['epoch']})")
            break
    model.load_state_dict(best_state)
    return model, {"seed": seed, "lr": lr, "best_epoch": best["epoch"], "dev": best["dev"], "history": history}


def test_seed(model, prep, args, metrics, out_dir) -> dict:
    """Score the kept weights on test (RE: with the negative bias of their dev epoch); write the
    predictions, metrics.json and (unless --no-save-model) the model in out_dir/model/ (Appendix A.4)."""
    bias = metrics["dev"].get("negative_bias", 0.0)
    kind = KINDS[prep["kind"]]
    test, pred = kind.evaluate(model, prep["test"], prep, args, torch.device(args.device), bias=bias)
    kind.write(out_dir, prep["test"].get("examples"), pred)
    metrics = {**metrics, "test": test}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if args.save_model:
        save_finetuned(model, out_dir / MODEL_DIR, prep["labels"], predict_settings(args, prep, bias),
                       args.vocab, args.lowercase, prep.get("markers"))
        print(f"seed {metrics['seed']} | best epoch saved in {out_dir / MODEL_DIR} (`finetune.py predict --help`)")
    return metrics


# ---------------------------------------------------------------------------------------------
# 8. Many seeds and the summary                                               (docs/paper.md §4)
#    Data and features are built once; each seed starts again from the initial weights.
#    Summary: mean and sample standard deviation of the test metric over the seeds.
# ---------------------------------------------------------------------------------------------

def prepare(args, spec, folder, tokenizer) -> dict:
    """Examples and features of every split (data.read_task reads them), the label set, the relation
    markers and how dev is scored."""
    splits, about = data.read_task(spec.kind, folder, args.entity_type, spec.negative, args.dev_fraction,
                                   args.test_batches)
    print(about)
    kind = KINDS[spec.kind]
    parts, negative = subsets(splits, args), splits.get("negative")              # subsets: Appendix A.2
    labels = sorted({*kind.gold(parts["train"]["examples"]), *([negative] if negative else [])})
    warn_unseen_labels(labels, parts, splits["files"], kind)
    # CHOICE: BioASQ's dev picks the epoch by MRR: on ~50 held-out questions strict accuracy moves in
    # steps of 2%, while MRR also rewards a gold answer ranked 2nd to 5th.
    prep = {"kind": spec.kind, "labels": labels, "label_ids": {label: i for i, label in enumerate(labels)},
            "negative": negative, "squad": splits["layout"] == "squad", "markers": {},
            "metric": "squad_f1" if splits["layout"] == "squad" else spec.metric,
            "dev_metric": "mrr" if splits["layout"] == "bioasq" else "f1"}
    if spec.kind == "re" and args.entity_markers == "unused":
        prep["markers"] = marker_ids(tokenizer, [s for part in parts.values() for s, _ in part["examples"]])
    featurize = lambda part: {**part, "features": kind.features(part["examples"], tokenizer, prep, args)}
    for name, part in parts.items():
        parts[name] = {"batches": {b: featurize(q) for b, q in part["batches"].items()}} if "batches" in part \
            else featurize(part)
    if spec.kind == "re":
        prep["lost_markers"] = report_lost_markers(parts, tokenizer, prep["negative"], args)    # Appendix A.1
    return {**prep, "train": parts["train"]["features"], "dev": parts["dev"], "test": parts["test"]}


def summarize(args, prep, results) -> dict:
    """The summary eval.py's table reads: the test metric per seed, its mean and std."""
    values = {str(s): r["test"][SCORE_KEY[prep["metric"]]] for s, r in results.items()}
    v = list(values.values())
    per_seed = lambda key: {str(s): r[key] for s, r in results.items()}
    relations = {"pooling": args.pooling, "entity_markers": args.entity_markers, "marker_window": args.marker_window,
                 "lost_markers": prep["lost_markers"]} if "lost_markers" in prep else {}
    return {"task": args.task, "metric": prep["metric"], "seeds": values, "mean": statistics.mean(v),
            "std": statistics.stdev(v) if len(v) > 1 else 0.0,
            "model": f"random-{args.size}" if args.init == "random" else str(args.init),
            "dev": per_seed("dev"), "best_epoch": per_seed("best_epoch"), "epochs": args.epochs,
            "train_features": args.n_train, "labels": prep["labels"], "lr": per_seed("lr"), "recipe": args.recipe,
            "layerwise_decay": args.layerwise_decay, "patience": args.patience, **relations}


def main(args) -> dict:
    resolve_init(args)
    spec, folder = resolve_task(args)
    out_dir = Path(args.out_dir or f"runs/finetune/{args.task}")
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"out dir: {out_dir}")
    tokenizer = load_tokenizer(args, folder)
    data.note_if_sample(folder)
    fill_defaults(args, spec, init_hidden_size(args, tokenizer))
    prep = prepare(args, spec, folder, tokenizer)
    args.pad_id, args.n_train = tokenizer.pad_id, len(prep["train"])
    if prep["markers"]:
        save_markers(prep["markers"], tokenizer, out_dir / "markers.json", say=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"task {args.task} ({spec.kind}) | {args.n_train} train features | labels {prep['labels'] or 'spans'} | "
          f"init {args.init} | seeds {seeds} | device {args.device}")
    print(f"recipe {args.recipe} | lr {','.join(f'{x:g}' for x in args.lrs)} | layer-wise decay {args.layerwise_decay} "
          f"| epochs {args.epochs} | patience {args.patience or 'off'} | max length {args.max_seq_len}"
          + (f" | pooling {args.pooling} | negative bias {args.negative_bias}" if prep["negative"] else ""))
    (out_dir / "args.json").write_text(json.dumps({**vars(args), "torch": torch.__version__, **data.git_state()},
                                                  indent=2))
    results, lr = {}, args.lrs[0]
    for seed in seeds:
        (out_dir / f"seed_{seed}").mkdir(exist_ok=True)
        if len(args.lrs) > 1 and seed == seeds[0]:
            lr, model, metrics = sweep_lr(args, prep, tokenizer, seed, out_dir)
        else:
            model, metrics = train_seed(args, prep, tokenizer, seed, lr)
        results[seed] = test_seed(model, prep, args, metrics, out_dir / f"seed_{seed}")
        print(f"seed {seed} | best epoch {results[seed]['best_epoch']} | test {prep['metric']} "
              f"{results[seed]['test'][SCORE_KEY[prep['metric']]]:.4f}")
    summary = summarize(args, prep, results)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"{args.task} test {prep['metric']}: {100 * summary['mean']:.2f} +- {100 * summary['std']:.2f} "
          f"over seeds {seeds}")
    return summary


# =============================================================================================
# Appendix: the variants the paper does not use, a run's plumbing, saving the model, `predict`.
# A student can skip it: the paper's method is above, and none of this changes it.
# =============================================================================================

# A.1 Variants the paper does not use: RE heads and markers, a tuned bias, patience, lr sweeps -----

class ElectraClassificationHead(nn.Module):
    """[CLS] -> dropout -> dense -> GELU -> dropout -> linear (--pooling head): the head of transformers'
    ElectraForSequenceClassification, which ELECTRAMed's own fine-tuning code uses."""

    def __init__(self, hidden, num_labels, dropout):
        super().__init__()
        self.dropout, self.dense = nn.Dropout(dropout), nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, num_labels)

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

# Relation markers: the strings that stand for the two entities of a pair (and, in ChemProt's
# bio_electra files, for the other mentions). BLUE: @CHEMICAL$ @GENE$, @CHEM-GENE$ when one mention is
# both, @DRUG$, @DRUG-DRUG$, @DISEASE$; bio_electra ChemProt: BC6ENTC BC6ENTG and BC6OTHER.
RELATION_MARKERS = ("@CHEMICAL$", "@GENE$", "@CHEM-GENE$", "@DRUG$", "@DRUG-DRUG$", "@DISEASE$",
                    "BC6ENTC", "BC6ENTG", "BC6OTHER")
OTHER_MARKERS = {"BC6OTHER"}                                   # a mention that is not one of the pair
MARKER_PATTERN = re.compile(r"@[A-Za-z][A-Za-z0-9_-]*\$|BC6ENT[CG]|BC6OTHER")   # any @NAME$ a new set brings
UNUSED_PATTERN = re.compile(r"\[unused\d+\]")


def encode_relation(text, tokenizer, markers) -> tuple[list[int], list[tuple[int, int]]]:
    """Piece ids of one RE sentence and the [start, end) pieces of each pair marker (BC6OTHER is not a
    pair member). A marker in `markers` becomes its one id; any other goes through WordPiece."""
    ids, spans, pos = [], [], 0
    for m in MARKER_PATTERN.finditer(text):
        ids += tokenizer.encode_text(text[pos:m.start()])
        start = len(ids)
        ids += [markers[m.group()]] if m.group() in markers else tokenizer.encode_text(m.group())
        if m.group() not in OTHER_MARKERS:
            spans.append((start, len(ids)))
        pos = m.end()
    return ids + tokenizer.encode_text(text[pos:]), spans


def marker_ids(tokenizer, sentences) -> dict[str, int]:
    """Marker string -> the id of one [unusedN] vocabulary row: the known markers in the order above,
    then any other @NAME$ found in `sentences`, sorted, on [unused0], [unused1], ... in vocabulary order.
    CHOICE: one id per marker. Through WordPiece, scivocab cuts BC6ENTC into bc ##6 ##ent ##c and @DRUG$
    into @ drug $, the same as the word "drug". The paper's tokenization stays as --entity-markers text."""
    found = sorted({m for s in sentences for m in MARKER_PATTERN.findall(s)} - set(RELATION_MARKERS))
    markers = [*RELATION_MARKERS, *found]
    unused = [i for i, t in enumerate(tokenizer.id_to_token) if UNUSED_PATTERN.fullmatch(t)]
    if len(unused) < len(markers):
        raise FinetuneError(f"the vocabulary has {len(unused)} [unusedN] rows but the relation markers need "
                            f"{len(markers)} ({', '.join(markers)}): use a BERT-layout vocabulary (scivocab has "
                            "100), or --entity-markers text to split them into word pieces as the paper did")
    return dict(zip(markers, unused))


def save_markers(markers, tokenizer, path, say=False):
    """markers.json: marker -> id, and the vocabulary row each id names (checked when loaded)."""
    rows = {m: {"id": i, "token": tokenizer.id_to_token[i]} for m, i in markers.items()}
    Path(path).write_text(json.dumps(rows, indent=2) + "\n")
    if say:
        print(f"relation markers -> vocabulary rows ({path}): "
              + ", ".join(f"{m} {r['token']}" for m, r in rows.items()))


def load_markers(path, tokenizer) -> dict[str, int]:
    """The marker -> id map of a run, refused if the vocabulary's rows changed since it was saved."""
    rows = json.loads(Path(path).read_text())
    wrong = [m for m, r in rows.items() if r["id"] >= len(tokenizer) or tokenizer.id_to_token[r["id"]] != r["token"]]
    if wrong:
        raise FinetuneError(f"{path}: markers {wrong} name vocabulary rows that this vocabulary spells differently")
    return {m: r["id"] for m, r in rows.items()}


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


def tune_negative_bias(logits, gold, labels, negative, grid=200) -> float:
    """The bias on the negative logit that maximises micro-F1 on (dev) logits; ties: the smallest |bias|.
    A row turns negative once bias exceeds its margin max(positive logits) - negative logit, so the
    candidates are 0 and the margins' quantiles (grid + 1 of them): exact up to the grid's resolution."""
    lg = torch.stack(logits)                                                   # (N, C)
    neg = labels.index(negative)
    positive = torch.arange(len(labels)) != neg
    margins = lg[:, positive].max(-1).values - lg[:, neg]                      # (N,)
    candidates = torch.cat([torch.zeros(1), margins.quantile(torch.linspace(0, 1, grid + 1)),
                            margins.min().view(1) - 1, margins.max().view(1) + 1])
    gold_ids = torch.tensor([labels.index(g) if g in labels else -1 for g in gold])
    n_gold = sum(g != negative for g in gold)
    best = (-1.0, 0.0)
    for b in sorted(candidates.tolist(), key=abs):
        pred = (lg + F.one_hot(torch.tensor(neg), len(labels)) * b).argmax(-1)
        f1 = scoring.prf(((pred == gold_ids) & (pred != neg)).sum().item(), (pred != neg).sum().item(), n_gold)["f1"]
        if f1 > best[0]:
            best = (f1, b)
    return best[1]


def reinit_top_layers(encoder, n):
    """Draw the top n encoder layers afresh (BERT init, the seed set before; n = all: embeddings only):
    a remedy when the top layers, fit to pre-training, hurt a new task (Zhang et al. 2021, "Revisiting
    few-sample BERT fine-tuning")."""
    if not 0 <= n <= len(encoder.layers):
        raise FinetuneError(f"--reinit-layers {n}: the checkpoint has {len(encoder.layers)} layers")
    for layer in encoder.layers[len(encoder.layers) - n:]:
        layer.apply(partial(electramed.init_weights, std=encoder.config.initializer_range))
    return encoder


def patience_exhausted(best_score, best_epoch, epoch, patience) -> bool:
    """--patience: stop once dev has not improved for `patience` epochs.
    CHOICE: the count starts only once dev is above 0: a model trained from scratch on few sentences
    predicts no entity (dev F1 0) for its first epochs, and counting those stopped 2 of 3 random-init
    NCBI-disease runs on 250 sentences before they had begun to learn (RESULTS.md)."""
    return bool(patience) and best_score > 0 and epoch - best_epoch >= patience


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


def sweep_lr(args, prep, tokenizer, seed, out_dir) -> tuple[float, nn.Module, dict]:
    """Train the first seed with each lr of --lr; (lr, model, metrics) of the best dev score, reused as
    that seed's run (test is never looked at here). Writes sweep.json."""
    key, table, best = prep["dev_metric"], {}, None
    for lr in args.lrs:
        model, metrics = train_seed(args, prep, tokenizer, seed, lr)
        table[f"{lr:g}"] = metrics["dev"][key]
        if best is None or metrics["dev"][key] > best[2]["dev"][key]:
            best = (lr, model, metrics)
        del model
    sweep = {"seed": seed, "dev_metric": key, "dev": table, "best_lr": best[0]}
    (out_dir / "sweep.json").write_text(json.dumps(sweep, indent=2))
    print(f"lr sweep on dev (seed {seed}): " + " | ".join(f"{lr} {v:.4f}" for lr, v in table.items())
          + f" -> lr {best[0]:g}")
    return best


def length_bucketed_batches(order, lengths, batch_size, rng) -> list[list[int]]:
    """The permutation `order` cut into chunks of BUCKET_BATCHES batches, each sorted by length and sliced
    into batches, the batches shuffled: less padding, each batch still drawn from a random slice."""
    batches, chunk = [], batch_size * BUCKET_BATCHES
    for i in range(0, len(order), chunk):
        part = sorted(order[i:i + chunk], key=lambda j: lengths[j])
        batches += [part[k:k + batch_size] for k in range(0, len(part), batch_size)]
    return [batches[b] for b in torch.randperm(len(batches), generator=rng).tolist()]


# A.2 A run's plumbing: initial weights, vocabulary, subsets, lost markers, prediction files -------

PRETRAINED_DEFAULT = Path("runs/pretrain/final/discriminator")   # train_pretrain.py's default output
SCIVOCAB = Path("vocab") / "scivocab_uncased.txt"


def resolve_init(args) -> str:
    """--init, else train_pretrain.py's default output when it exists, else random weights; said aloud."""
    if args.init is None:
        found = (PRETRAINED_DEFAULT / "config.json").is_file()
        args.init = str(PRETRAINED_DEFAULT) if found else "random"
        shape = electramed.SIZES[args.size]
        print(f"--init not given: fine-tuning the pre-trained discriminator in {PRETRAINED_DEFAULT}" if found else
              f"--init not given and no {PRETRAINED_DEFAULT}: starting from RANDOM weights, size {args.size} "
              f"({shape['num_hidden_layers']} layers, hidden {shape['hidden_size']}); pre-train first, or pass --init")
    return args.init


def init_hidden_size(args, tokenizer=None) -> int:
    """Hidden size of the encoder --init will build (it picks the recipe and the default lr). Fails early,
    before any data work, if the checkpoint's vocabulary size differs from the tokenizer's."""
    if args.init == "random":
        return electramed.SIZES[args.size]["hidden_size"]
    config, _ = electramed.read_hf_config(args.init)
    if tokenizer is not None and config.vocab_size != len(tokenizer):
        raise FinetuneError(f"{args.init}/config.json: checkpoint vocabulary has {config.vocab_size} entries but "
                            f"{args.vocab} has {len(tokenizer)}: pass the checkpoint's own vocab.txt with --vocab")
    return config.hidden_size


def set_dropout(encoder, p):
    """Hidden and attention dropout p everywhere in the encoder and in its config (for the export).
    CHOICE: --dropout (0.1, ELECTRA's fine-tuning value) replaces the checkpoint's: our CPU presets
    pre-train without dropout, and with 0 the NCBI-disease dev F1 was 0.485, with 0.1 0.512
    (bench/results_pretrain.md §4)."""
    for module in encoder.modules():
        if isinstance(module, nn.Dropout):
            module.p = p
        if hasattr(module, "dropout_p"):
            module.dropout_p = p
    encoder.config.hidden_dropout_prob = encoder.config.attention_probs_dropout_prob = p
    return encoder


def load_tokenizer(args, folder):
    """--vocab, else the checkpoint's vocab.txt, else scivocab in --data-dir, else in the default data
    directory ($ELECTRAMED_DATA, data/ or the embedded sample). Says which one it uses, and why."""
    why = "--vocab"
    if args.vocab is None:
        candidates = [(Path(args.init) / "vocab.txt", "the checkpoint's")] if args.init != "random" else []
        candidates += [(Path(args.data_dir) / SCIVOCAB, "scivocab in --data-dir"),
                       (Path(data.default_data_dir()) / SCIVOCAB, f"scivocab of the default data directory: "
                        f"no {SCIVOCAB} in --data-dir" + ("" if args.init == "random" else ", no vocab.txt in --init"))]
        path, why = next((c for c in candidates if c[0].is_file()), candidates[-1])
        args.vocab = str(path)
    if args.lowercase is None:         # the checkpoint's casing when it says, else uncased (scivocab_uncased)
        args.lowercase = args.init == "random" or electramed.read_do_lower_case(args.init, default=True)
    tokenizer = Tokenizer.from_vocab_file(data.require_file(args.vocab, "pass --vocab FILE"), lowercase=args.lowercase)
    sample = data.SAMPLE_DATA_DIR in Path(args.vocab).resolve().parents
    print(f"vocab: {args.vocab} ({why}{', the embedded sample' if sample else ''}; {len(tokenizer)} entries)")
    return tokenizer


def subset(examples, n, seed=0):
    """At most n examples, a seeded random choice kept in file order (the same for every run seed)."""
    if n is None or n >= len(examples):
        return examples
    keep = sorted(random.Random(seed).sample(range(len(examples)), max(0, n)))
    return [examples[i] for i in keep]


def subsets(splits, args) -> dict:
    """{split: {"examples"} or {"batches"}} with --max-train-examples and --max-eval-examples applied."""
    parts = {"train": {"examples": subset(splits["train"], args.max_train_examples)}}
    if not parts["train"]["examples"]:
        raise FinetuneError(f"{splits['files']['train']}: --max-train-examples {args.max_train_examples} leaves "
                            "nothing to train on")
    for name in ("dev", "test"):
        if splits["layout"] == "bioasq":                # {batch: {"examples", "golden"}}
            parts[name] = {"batches": {b: limit_questions(q, args.max_eval_examples) for b, q in splits[name].items()}}
        else:
            parts[name] = {"examples": subset(splits[name], args.max_eval_examples)}
    return parts


def limit_questions(batch, n):
    """The first n golden questions of a BioASQ batch and their snippets (for --max-eval-examples)."""
    if n is None:
        return batch
    keep = sorted(batch["golden"])[:n]
    return {"examples": [e for e in batch["examples"] if e["question_id"] in set(keep)],
            "golden": {q: batch["golden"][q] for q in keep}}


def warn_unseen_labels(labels, parts, files, kind):
    """Warn about gold labels of dev/test never seen in train.
    CHOICE: such a label stays gold (the model cannot predict it, so it counts as a miss); it is
    neither an error nor mapped to O/negative, which would hide the misses and inflate the score."""
    for name in ("dev", "test"):
        unseen = sorted(set(kind.gold(parts[name].get("examples", []))) - set(labels))
        if unseen:
            print(f"warning: {files.get(name, f'{name} (from train)')}: labels never seen in train: {unseen} "
                  "(scored as gold, never predicted)", file=sys.stderr)


def count_lost_positives(rows, features, negative) -> dict:
    """Rows whose input lost a pair marker to the length limit, all and positives only."""
    lost = [label for f, (_, label) in zip(features, rows) if f["lost"]]
    return {"rows": len(lost), "positives": sum(label != negative for label in lost),
            "of_positives": sum(label != negative for _, label in rows)}


def report_lost_markers(parts, tokenizer, negative, args) -> dict:
    """Per split, the rows and positives whose input lost a pair marker: with this run's settings, and
    with the paper's (marker strings as word pieces, 128 pieces, tail cut). Printed and returned."""
    report = {}
    for split, part in parts.items():
        rows = part["examples"]
        paper = classification_features(rows, tokenizer, {}, 128, markers={}, window=False)
        now, before = (count_lost_positives(rows, features, negative) for features in (part["features"], paper))
        report[split] = {"this_run": now, "paper_128_tail_cut": before}
        print(f"{split}: {now['positives']} of {now['of_positives']} positives ({now['rows']} rows) lose a pair "
              f"marker at max length {args.max_seq_len}{' with the entity window' if args.marker_window else ''}; "
              f"{before['positives']} ({before['rows']} rows) with the paper's 128-piece tail cut")
    return report


def write_tags(out_dir, examples, pred, name="test") -> Path:
    """<name>.conll: "token gold pred" per word, a blank line between sentences ("token pred" without gold)."""
    rows = lambda words, tags, pp: zip(words, pp) if tags is None else zip(words, tags, pp)
    blocks = ["\n".join(" ".join(row) for row in rows(words, tags, pp)) for (words, tags), pp in zip(examples, pred)]
    (out_dir / f"{name}.conll").write_text("\n\n".join(blocks) + "\n")
    return out_dir / f"{name}.conll"


def write_relations(out_dir, examples, pred, name="test") -> Path:
    """<name>.tsv: index, sentence, gold label (absent for raw input) and prediction."""
    labelled = bool(examples) and examples[0][1] is not None
    lines = ["index\tsentence\tlabel\tprediction" if labelled else "index\tsentence\tprediction"]
    lines += ["\t".join([str(i), sentence, *([gold] if labelled else []), p])
              for i, ((sentence, gold), p) in enumerate(zip(examples, pred))]
    (out_dir / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    return out_dir / f"{name}.tsv"


def write_answers(out_dir, examples, pred, name="test") -> Path:
    """SQuAD-style ({pair id: text}): <name>_predictions.json. BioASQ ({batch: {question: ranked answers}}):
    bioasq_<batch>.json per batch, in BioASQ's submission format; the last one's path is returned."""
    if all(isinstance(answer, str) for answer in pred.values()):
        (out_dir / f"{name}_predictions.json").write_text(json.dumps(pred, indent=1, ensure_ascii=False) + "\n")
        return out_dir / f"{name}_predictions.json"
    for batch, ranked in pred.items():
        scoring.write_bioasq_submission(ranked, out_dir / f"bioasq_{batch}.json")
    return out_dir / f"bioasq_{batch}.json"


# A.3 The command line -----------------------------------------------------------------------------

def negative_bias(text):
    """--negative-bias: 'tune' or a number."""
    return "tune" if text == "tune" else float(text)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("task and data (docs/paper.md §4)")
    g.add_argument("--task", required=True, choices=[*TASKS, *GENERIC],
                   help="a named benchmark, or ner|re|qa for any data set in those formats (data.py §4)")
    g.add_argument("--data-dir", default=data.default_data_dir(),
                   help="named tasks: the folder holding bc5cdr/ ...; ner|re|qa: the data set's own folder")
    g.add_argument("--negative-label", help="generic re: the no-relation class (default: guessed)")
    g.add_argument("--entity-type", help=f"ner: the type of bare B/I/O tags (default {data.DEFAULT_ENTITY_TYPE!r})")
    g.add_argument("--max-train-examples", type=int, help="a seeded random subset of train")
    g.add_argument("--max-eval-examples", type=int, help="subset of dev/test (QA: questions per batch)")
    g.add_argument("--test-batches", help="BioASQ: e.g. 1,3 (default: every test-*.json)")
    g.add_argument("--dev-fraction", type=float, default=0.1, help="share of train (QA: questions) held out as "
                   "dev with seed 0 when the set has no dev file")
    g = p.add_argument_group("model (docs/paper.md §2)")
    g.add_argument("--init", help=f"'random' or an HF-layout ELECTRA directory (default: {PRETRAINED_DEFAULT} "
                   "if it exists, else random)")
    g.add_argument("--size", choices=list(electramed.SIZES), default="small", help="with --init random")
    g.add_argument("--vocab", help="default: the checkpoint's vocab.txt, else scivocab in --data-dir")
    g.add_argument("--lowercase", action=argparse.BooleanOptionalAction,
                   help="default: the checkpoint's tokenizer_config.json do_lower_case, else lowercase")
    g.add_argument("--max-seq-len", type=int, help="default 128 (NER, RE), 384 (QA)")
    g = p.add_argument_group("the recipe (docs/paper.md §4); unset values come from --recipe")
    g.add_argument("--recipe", choices=list(RECIPES),
                   help="paper: [CLS], lr 1e-4 (3e-4 up to hidden 256), layer-wise decay 0.8, plain argmax; small: "
                        "lr 1e-3, decay 1.0, RE entity pooling, tuned negative bias. Default: paper for a pre-trained "
                        "model of hidden >= 768, else small (RESULTS.md, 'The fine-tuning recipe, old against new')")
    g.add_argument("--lr", help="one value, or a comma-separated list swept on dev with the first seed (sweep.json)")
    g.add_argument("--layerwise-decay", type=float, help="per-layer lr factor (paper 0.8; small 1.0)")
    g.add_argument("--epochs", type=int, help="default: 10 for NER, 3 otherwise (paper); --init random: NER 20, "
                   "RE 10, QA 3")
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--dropout", type=float, default=0.1,
                   help="hidden and attention dropout while fine-tuning, whatever the checkpoint's config says")
    g = p.add_argument_group("variants the paper does not use (each says where its effect is measured)")
    g.add_argument("--pooling", choices=list(POOLING), help="RE head. cls: [CLS] -> linear (paper); head: HF's "
                   "ElectraClassificationHead; entity: the entity-start markers' states (small; RESULTS.md)")
    g.add_argument("--negative-bias", type=negative_bias, help="RE: added to the no-relation logit: 0 (paper), a "
                   "number, or 'tune' (small): the bias maximising dev micro-F1 at the kept epoch (RESULTS.md)")
    g.add_argument("--entity-markers", choices=["unused", "text"], default="unused", help="RE. unused: each marker "
                   "(@DRUG$, BC6ENTC, ...) is one [unusedN] id; text: WordPiece splits them, as the paper's runs")
    g.add_argument("--marker-window", action=argparse.BooleanOptionalAction, default=True, help="RE: a sentence "
                   "longer than --max-seq-len keeps a window around its pair, not its first pieces (RESULTS.md)")
    g.add_argument("--reinit-layers", type=int, default=0, help="draw the top N layers of --init afresh "
                   "(0: none; the layer count: all, keeping the embeddings; bench/results_pretrain.md §4)")
    g.add_argument("--patience", type=int, help="stop when dev has not improved for this many epochs, once above "
                   f"0; 0 = off (default: off; {SCRATCH_PATIENCE} with --init random; RESULTS.md)")
    g.add_argument("--length-buckets", action=argparse.BooleanOptionalAction, default=False,
                   help="batch similar lengths together: about 2x faster on CPU (bench/results_finetune.md)")
    g = p.add_argument_group("system")
    g.add_argument("--seeds", default="1", help="comma-separated, e.g. 1,2,3")
    g.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    g.add_argument("--out-dir", help="default: runs/finetune/<task>")
    g.add_argument("--save-model", action=argparse.BooleanOptionalAction, default=True, help="save each seed's "
                   f"best dev epoch in <out-dir>/seed_<s>/{MODEL_DIR}/ (`finetune.py predict --help`)")
    return p.parse_args(argv)


# A.4 Keeping the fine-tuned model in the Hugging Face layout --------------------------------------

MODEL_DIR = "model"                      # a seed's saved model: <out-dir>/seed_<s>/model/

# (task kind, head) -> (config.json "architectures", our head's module -> its key prefix in the file);
# --pooling cls and entity have no transformers class: ElectraModel and keys of our own (electramed_*).
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


def predict_settings(args, prep, bias) -> dict:
    """How this run built its inputs and read its outputs, so that `predict` does the same."""
    return {"task": args.task, "max_seq_len": args.max_seq_len, "doc_stride": DOC_STRIDE,
            "max_query_len": MAX_QUERY_LEN, "entity_markers": args.entity_markers, "marker_window": args.marker_window,
            "n_best": N_BEST, "max_answer_len": MAX_ANSWER_LEN, "max_answer_chars": MAX_ANSWER_CHARS, "top_k": TOP_K,
            "negative": prep.get("negative"), "negative_bias": bias,
            "qa_answers": "squad" if prep.get("squad") else "bioasq"}


def save_finetuned(model, directory, labels, settings, vocab_file, lowercase, markers=None):
    """Write a FineTuner in the Hugging Face layout: transformers loads the whole model for the tagging,
    --pooling head and span heads, the encoder only for cls and entity (load_finetuned: the whole)."""
    name = HEAD_NAMES[type(model.head)]
    architecture, keys = HF_TASK_HEADS[(model.kind, name)]
    labels = labels or ["start", "end"]                      # QA: the two columns of qa_outputs
    state = {electramed.hf_head_key(key, keys): tensor.detach().cpu().clone()
             for key, tensor in model.head.state_dict().items()}
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
    model = FineTuner(electramed.load_hf_encoder(directory), kind, len(labels), pooling=name)
    hf = electramed.read_state_dict(directory)
    model.head.load_state_dict(electramed.head_state(hf, model.head, HF_TASK_HEADS[(kind, name)][1], directory))
    vocab = data.require_file(Path(directory) / "vocab.txt", "a saved model holds its vocabulary")
    tokenizer = Tokenizer.from_vocab_file(vocab, lowercase=electramed.read_do_lower_case(directory, default=True))
    return model.eval(), tokenizer, labels, raw.get("electramed_predict", {})


# A.5 The predict command: a saved model on new input ----------------------------------------------

def predict_input(args, kind) -> tuple[str, list]:
    """The predictions file's name and the examples: --input read by the kind's reader (gold labels
    kept), or raw --text / --text-file lines with gold None. NER: each line cut into sentences
    (data.split_sentences, PubMed's splitter) and words, case kept; RE: a sentence with its markers;
    QA: a context of --question, all of one question "text" (a BioASQ-style model pools over them)."""
    if args.input:
        path = data.require_file(args.input, "predict --input takes a file in the task's format")
        return Path(path).stem, data.READERS[kind](path)
    name, texts = "text", args.text
    if args.text_file:
        path = data.require_file(args.text_file, "predict --text-file takes a text file")
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        name, texts = Path(path).stem, [line for line in lines if line.strip()]
    if kind == "ner":
        sentences = [s for t in texts for line in t.splitlines() for s in data.split_sentences(line)]
        return name, [(words, None) for s in sentences if (words := basic_tokenize(s, False))]
    if kind == "re":
        return name, [(t.strip(), None) for t in texts]
    if not args.question:
        raise FinetuneError("predict: a QA model answers --question over each --text (or --text-file line)")
    return name, [{"id": f"text_{i:03d}", "question_id": "text", "question": args.question, "context": t,
                   "answers": [], "texts": []} for i, t in enumerate(texts)]


def parse_predict_args(argv=None):
    p = argparse.ArgumentParser(prog="finetune.py predict", description=inspect.cleandoc(predict_main.__doc__),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help=f"the saved model directory, <out-dir>/seed_<s>/{MODEL_DIR}")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="a file in the task's format (CoNLL, BLUE TSV, SQuAD JSON); its gold "
                                        "labels are written beside the predictions, as in test.conll/test.tsv")
    source.add_argument("--text", action="append", help="raw text, repeatable. NER: a passage; RE: one sentence "
                        "with its entity markers (@GENE$ ...); QA: a context of --question")
    source.add_argument("--text-file", help="raw text, one --text per non-empty line")
    p.add_argument("--question", help="qa: the question asked of every --text")
    p.add_argument("--out-dir", required=True, help="where the predictions file goes")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p.parse_args(argv)


def predict_main(args) -> Path:
    """Run a model finetune.py saved (<out-dir>/seed_<s>/model/) on new input, building inputs and reading
    outputs with the run's settings (config.json "electramed_predict"); write (and return) the file of its
    predictions in the run's test formats: <name>.conll (NER), <name>.tsv (RE), bioasq_<name>.json or
    <name>_predictions.json (QA, BioASQ- or SQuAD-style), <name> being the input file's stem, or 'text'.

        python finetune.py predict runs/finetune/ncbi/seed_1/model --input test.txt --out-dir preds
        python finetune.py predict runs/finetune/ncbi/seed_1/model --text 'BRCA1 causes cancer.' --out-dir preds
    """
    model, tokenizer, labels, settings = load_finetuned(args.model)
    kind = KINDS[model.kind]
    name, examples = predict_input(args, model.kind)
    source = args.input or args.text_file or "--text"
    if not examples:
        raise FinetuneError(f"predict: nothing to predict in {source}")
    opts = argparse.Namespace(max_seq_len=settings["max_seq_len"], marker_window=settings.get("marker_window", True),
                              pad_id=tokenizer.pad_id)
    markers = settings.get("entity_markers") == "unused" and model.kind == "re"
    prep = {"kind": model.kind, "labels": labels, "label_ids": {}, "negative": settings.get("negative"),
            "squad": settings.get("qa_answers") == "squad",
            "markers": load_markers(Path(args.model) / "markers.json", tokenizer) if markers else {}}
    part = {"examples": examples, "features": kind.features(examples, tokenizer, prep, opts)}
    device = torch.device(args.device)
    pred = kind.decode(model.to(device), part, prep, opts, device, settings.get("negative_bias", 0.0))
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bioasq = model.kind == "qa" and not prep["squad"]
    path = kind.write(out_dir, examples, {name: pred} if bioasq else pred, name)
    print(f"{len(examples)} {'contexts' if model.kind == 'qa' else 'sentences'} of {source} -> {path} "
          f"({settings.get('task')} model {args.model})")
    return path


def command_line(argv=None):
    """`python finetune.py [predict] ...`: a bad input ends the run with one line, "error: ...", no traceback."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["predict"]:
            return predict_main(parse_predict_args(argv[1:]))
        return main(parse_args(argv))
    except (data.DataError, FinetuneError, electramed.CheckpointError, TokenizerError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    command_line()
