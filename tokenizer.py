"""
BERT tokenization, WordPiece, and a WordPiece vocabulary trainer (PAPER.md §6, §1).

ELECTRAMed reads text the way BERT does: clean it, split it into words and punctuation, then cut
each word into the longest pieces found in a fixed vocabulary (SciBERT's scivocab, 31,090 entries).
This file does that, gives every piece its character span in the original text (for NER and QA),
and learns a new vocabulary from a corpus with the WordPiece likelihood score.

    python tokenizer.py encode --vocab data/vocab/scivocab_uncased.txt "EGFR mutations in NSCLC"
    python tokenizer.py train --corpus data/pubmed/corpus.txt --vocab-size 30000 --out runs/vocab.txt

`train` writes one token per line in BERT's layout ([PAD], [unused0..], [UNK], [CLS], [SEP], [MASK]).

References: google-research/bert tokenization.py; Hugging Face tokenizers (BertNormalizer,
BertPreTokenizer, WordPiece), whose output ours must equal; Schuster & Nakajima 2012 and
Wu et al. 2016 for WordPiece.
"""
import argparse
import multiprocessing
import re
import sys
import unicodedata

from tqdm import tqdm

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# CHOICE: words longer than 100 characters become [UNK], as in Hugging Face (Google's code uses 200),
# because our ids must equal transformers.BertTokenizer's.
MAX_WORD_CHARS = 100
CACHE_MAX_WORDS = 1_000_000   # chunk -> ids cache; real text is Zipfian, so the frequent words get in early


class TokenizerError(ValueError):
    """A bad vocabulary, corpus or argument; the message names the file (and line) at fault."""


# ---------------------------------------------------------------------------------------------
# 1. Cleaning and basic tokenization                                     (PAPER.md §6; BERT)
#    Drop NUL, U+FFFD and control/format chars (category C*, except \t \n \r); whitespace -> space;
#    put spaces around CJK ideographs; if lowercasing: NFD, drop combining marks (Mn), lower();
#    split on whitespace; split off every punctuation char (non-alphanumeric ASCII and Unicode P*).
#    The order follows Hugging Face's BertNormalizer (accents stripped, then lowercase, per char).
# ---------------------------------------------------------------------------------------------

_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_cjk(char: str) -> bool:
    """True for a CJK ideograph, which BERT treats as a word of its own: "癌" -> True."""
    cp = ord(char)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def is_punctuation(char: str) -> bool:
    """True for ASCII non-alphanumerics and Unicode P* characters: "-" -> True, "^" -> True."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def is_removed(char: str) -> bool:
    """True for the characters cleaning drops: NUL, U+FFFD, control and format chars (not \\t\\n\\r)."""
    if char in "\t\n\r":
        return False
    return char == "\x00" or char == "\ufffd" or unicodedata.category(char).startswith("C")


def clean_text(text: str) -> str:
    """Drop invalid and control characters, turn every whitespace into a space: "a\\tb\\x00c" -> "a bc"."""
    return "".join(" " if c.isspace() else c for c in text if not is_removed(c))


def strip_accents(chars: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """NFD each (char, origin) and drop nonspacing marks: "é" -> "e". Keeps each char's origin index.

    Combining marks are put in canonical order first (as whole-string NFD does), because a few
    spacing marks (Mc) with a combining class survive the stripping.
    """
    out = [(d, i) for c, i in chars for d in unicodedata.normalize("NFD", c)]
    start = 0
    for k in range(len(out) + 1):                 # sort each run of combining chars by class
        if k == len(out) or unicodedata.combining(out[k][0]) == 0:
            if k - start > 1:
                out[start:k] = sorted(out[start:k], key=lambda ci: unicodedata.combining(ci[0]))
            start = k + 1
    return [(c, i) for c, i in out if unicodedata.category(c) != "Mn"]


def basic_tokenize_spans(text: str, lowercase: bool = True) -> list[tuple[str, list[int]]]:
    """Words of `text` after BERT's basic tokenization, each with the origin index of every char.

    "Nephro-toxicity" -> [("nephro", [0..5]), ("-", [6]), ("toxicity", [7..14])]
    """
    chars = []
    for i, c in enumerate(text):
        if is_removed(c):
            continue
        if is_cjk(c):
            chars += [(" ", i), (c, i), (" ", i)]
        else:
            chars.append((" " if c.isspace() else c, i))
    if lowercase:
        chars = [(low, i) for c, i in strip_accents(chars) for low in c.lower()]
    words, current = [], None
    for c, i in chars:
        if c.isspace():
            current = None
        elif is_punctuation(c) or is_cjk(c):
            words.append((c, [i]))
            current = None
        else:
            if current is None:
                current = ("", [])
                words.append(current)
            words[-1] = current = (current[0] + c, current[1] + [i])
    return words


def basic_tokenize(text: str, lowercase: bool = True) -> list[str]:
    """BERT's basic tokenization: "Nephro-toxicity of Cisplatin" -> ["nephro", "-", "toxicity", "of", "cisplatin"]."""
    return [word for word, _ in basic_tokenize_spans(text, lowercase)]


# ---------------------------------------------------------------------------------------------
# 2. WordPiece: greedy longest match first                                (PAPER.md §6; BERT)
#    From the word's start, take the longest prefix in the vocabulary, then continue with "##"
#    pieces. If some part matches nothing, the whole word is one [UNK]. Longer than
#    MAX_WORD_CHARS characters -> [UNK].
# ---------------------------------------------------------------------------------------------

def wordpiece(word: str, vocab, max_chars: int = MAX_WORD_CHARS) -> list[str]:
    """Greedy longest-match-first pieces of one word: "nephrotoxicity" -> ["nephro", "##tox", "##icity"]."""
    if len(word) > max_chars:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
        else:
            return ["[UNK]"]
        pieces.append(piece)
        start = end
    return pieces


# ---------------------------------------------------------------------------------------------
# 3. The Tokenizer object                                                          (PAPER.md §6)
#    A vocabulary in BERT's vocab.txt format, plus caches from whitespace-separated chunks of raw
#    text to their ids: BERT's tokenization never looks across whitespace, so a chunk always
#    tokenizes the same way, and most chunks of real text have been seen before.
# ---------------------------------------------------------------------------------------------

# str.split() splits on exactly BERT's whitespace, except for seven control chars that BERT deletes
# (so "a\x85b" is one word); a chunk is a run of anything else (checked over all of Unicode in tests).
_SPLIT_NOT_SPACE = re.compile(r"[\x0b\x0c\x1c-\x1f\x85]")
_CHUNK = re.compile(r"(?:[^\s]|[\x0b\x0c\x1c-\x1f\x85])+")


class Tokenizer:
    """BERT WordPiece tokenizer over a fixed vocabulary (one token per line, id = line number)."""

    def __init__(self, tokens, lowercase: bool = True, source: str = "vocabulary"):
        self.id_to_token = list(tokens)
        self.vocab = {t: i for i, t in enumerate(self.id_to_token)}  # a duplicate keeps its last id, as HF
        self.lowercase = lowercase
        missing = [t for t in SPECIAL_TOKENS if t not in self.vocab]
        if missing:
            raise TokenizerError(f"{source}: missing special token(s) {', '.join(missing)}; "
                                 f"a BERT vocab.txt holds {', '.join(SPECIAL_TOKENS)}")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            self.vocab[t] for t in SPECIAL_TOKENS)
        self._ids_cache = {}      # chunk -> list of ids
        self._spans_cache = {}    # chunk -> (pieces, spans relative to the chunk)

    @classmethod
    def from_vocab_file(cls, path, lowercase: bool = True) -> "Tokenizer":
        """Load a BERT vocab.txt; a clear TokenizerError names the file (and line) if it is bad."""
        try:
            with open(path, "rb") as f:
                raw = f.read().split(b"\n")
        except OSError as e:
            raise TokenizerError(f"{path}: cannot read vocabulary file ({e.strerror})") from None
        if raw and raw[-1] == b"":
            raw.pop()
        tokens = []
        for line_no, line in enumerate(raw, 1):
            try:
                tokens.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                raise TokenizerError(f"{path}:{line_no}: vocabulary line is not valid UTF-8") from None
        return cls(tokens, lowercase, source=str(path))

    def __len__(self) -> int:
        return len(self.id_to_token)

    def save(self, path) -> None:
        """Write the vocabulary as vocab.txt (one token per line)."""
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(t + "\n" for t in self.id_to_token))

    def _analyse_chunk(self, chunk: str) -> tuple[list[str], list[tuple[int, int]]]:
        """Pieces of one whitespace-free chunk and their [start, end) spans inside it."""
        pieces, spans = [], []
        for word, origin in basic_tokenize_spans(chunk, self.lowercase):
            word_pieces = wordpiece(word, self.vocab)
            if word_pieces == ["[UNK]"]:
                pieces.append("[UNK]")
                spans.append((origin[0], origin[-1] + 1))
                continue
            k = 0
            for piece in word_pieces:
                n = len(piece) if k == 0 else len(piece) - 2
                pieces.append(piece)
                spans.append((origin[k], origin[k + n - 1] + 1))
                k += n
        if len(self._spans_cache) < CACHE_MAX_WORDS:
            self._spans_cache[chunk] = (pieces, spans)
        return pieces, spans

    def _encode_chunk(self, chunk: str) -> list[int]:
        pieces, _ = self._spans_cache.get(chunk) or self._analyse_chunk(chunk)
        ids = [self.vocab[p] for p in pieces]
        if len(self._ids_cache) < CACHE_MAX_WORDS:
            self._ids_cache[chunk] = ids
        return ids

    def encode_text(self, text: str) -> list[int]:
        """Piece ids of `text`, no special tokens: "EGFR mutations" -> [ids of egfr, mutations]."""
        ids, cache = [], self._ids_cache
        chunks = _CHUNK.findall(text) if _SPLIT_NOT_SPACE.search(text) else text.split()
        for chunk in chunks:
            chunk_ids = cache.get(chunk)
            ids += chunk_ids if chunk_ids is not None else self._encode_chunk(chunk)
        return ids

    def tokenize(self, text: str) -> list[str]:
        """Word pieces of `text`, no special tokens: "Nephrotoxicity" -> ["nephro", "##tox", "##icity"]."""
        return [self.id_to_token[i] for i in self.encode_text(text)]

    def tokenize_with_offsets(self, text: str) -> tuple[list[str], list[tuple[int, int]]]:
        """Word pieces and their [start, end) character spans in `text` ("é" keeps its own span)."""
        pieces, spans = [], []
        for m in _CHUNK.finditer(text):
            chunk, start = m.group(), m.start()
            chunk_pieces, chunk_spans = self._spans_cache.get(chunk) or self._analyse_chunk(chunk)
            pieces += chunk_pieces
            spans += [(start + s, start + e) for s, e in chunk_spans]
        return pieces, spans

    def encode(self, text: str, pair: str = None, max_len: int = None) -> dict:
        """[CLS] A [SEP] (B [SEP]) with token types 0/1; if too long, cut the longer side first."""
        a = self.encode_text(text)
        b = self.encode_text(pair) if pair is not None else []
        if max_len is not None:
            budget = max_len - (3 if pair is not None else 2)
            if budget < 0:
                raise TokenizerError(f"max_len={max_len} leaves no room for the special tokens")
            a, b = truncate_longest_first(a, b, budget)
        input_ids = [self.cls_id] + a + [self.sep_id]
        token_type_ids = [0] * len(input_ids)
        if pair is not None:
            input_ids += b + [self.sep_id]
            token_type_ids += [1] * (len(b) + 1)
        return {"input_ids": input_ids, "token_type_ids": token_type_ids}

    def encode_batch(self, texts, pairs=None, max_len: int = None) -> list[dict]:
        """encode() over a list of texts (and an equally long list of pairs)."""
        pairs = [None] * len(texts) if pairs is None else pairs
        return [self.encode(t, p, max_len) for t, p in zip(texts, pairs, strict=True)]

    def encode_lines(self, lines, workers: int = 1, progress: bool = False):
        """Yield encode_text(line) for each line, in order (blank line -> []); workers > 1 uses processes."""
        total = len(lines) if hasattr(lines, "__len__") else None
        bar = tqdm(total=total, unit=" lines", disable=not progress, desc="encode")
        if workers <= 1:
            for line in lines:
                bar.update()
                yield self.encode_text(line)
        else:
            ctx = multiprocessing.get_context("spawn")   # CHOICE: spawn, safe beside torch threads
            with ctx.Pool(workers, _init_worker, (self.id_to_token, self.lowercase)) as pool:
                for ids_block in pool.imap(_encode_block, _blocks(lines, 1000)):
                    bar.update(len(ids_block))
                    yield from ids_block
        bar.close()

    def decode(self, ids, skip_special: bool = True) -> str:
        """Text from ids, "##" pieces glued to the piece before: [nephro, ##tox] -> "nephrotox"."""
        special = {self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id} if skip_special else ()
        tokens = [self.id_to_token[i] for i in ids if i not in special]
        return " ".join(tokens).replace(" ##", "")


def truncate_longest_first(a: list, b: list, budget: int) -> tuple[list, list]:
    """Cut a and b to at most `budget` tokens together, from the end of the longer one first.

    When both must be cut, the one that was shorter keeps budget // 2 and the other the rest (a
    counts as shorter on a tie), as in tokenizers' LongestFirst (Rust), so our pairs equal
    BertTokenizer's; HF's older Python loop can differ by one token on ties.
    """
    n1, n2 = len(a), len(b)
    if n1 + n2 <= budget:
        return a, b
    swap = n1 > n2
    if swap:
        n1, n2 = n2, n1
    n2 = max(n1, budget - n1)
    if n1 + n2 > budget:
        n1 = budget // 2
        n2 = budget - n1
    if swap:
        n1, n2 = n2, n1
    return a[:n1], b[:n2]


_WORKER_TOKENIZER = None


def _init_worker(tokens, lowercase):
    global _WORKER_TOKENIZER
    _WORKER_TOKENIZER = Tokenizer(tokens, lowercase)


def _encode_block(lines):
    return [_WORKER_TOKENIZER.encode_text(line) for line in lines]


def _blocks(items, size):
    """Lists of `size` consecutive items: _blocks(range(5), 2) -> [0, 1], [2, 3], [4]."""
    block = []
    for item in items:
        block.append(item)
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block
