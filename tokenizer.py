"""
BERT tokenization, WordPiece, and a WordPiece vocabulary trainer (docs/paper.md §6, §1).

ELECTRAMed reads text the way BERT does: clean it, split it into words and punctuation, then cut
each word into the longest pieces found in a fixed vocabulary (SciBERT's scivocab, 31,090 entries).
This file does that, gives every piece its character span in the original text (for NER and QA),
and learns a new vocabulary from a corpus with the WordPiece likelihood score. `train` writes one token
per line in BERT's layout ([PAD], [unused0..], [UNK], [CLS], [SEP], [MASK]).

    python tokenizer.py encode --vocab data/vocab/scivocab_uncased.txt "EGFR mutations in NSCLC"
    python tokenizer.py train --corpus data/pubmed/corpus.txt --vocab-size 30000 --out runs/vocab.txt

References: google-research/bert tokenization.py; Hugging Face tokenizers (BertNormalizer, BertPreTokenizer,
WordPiece), whose output ours must equal; Schuster & Nakajima 2012 and Wu et al. 2016 for WordPiece.
"""
import argparse
import gzip
import heapq
import multiprocessing
import os
import re
import string
import sys
import unicodedata
from collections import Counter, defaultdict, deque
from concurrent.futures import ProcessPoolExecutor
from itertools import groupby, islice

from tqdm import tqdm

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# CHOICE: words longer than 100 characters become [UNK], as in Hugging Face (Google's code uses 200),
# because our ids must equal transformers.BertTokenizer's.
MAX_WORD_CHARS = 100


class TokenizerError(ValueError):
    """A bad vocabulary, corpus or argument; the message names the file (and line) at fault."""


# ---------------------------------------------------------------------------------------------
# 1. Cleaning and basic tokenization                                (docs/paper.md §6; BERT)
#    Drop NUL, U+FFFD and control/format chars (category C*, except \t \n \r); whitespace -> space;
#    put spaces around CJK ideographs; if lowercasing: NFD, drop combining marks (Mn), lower();
#    split on whitespace; split off every punctuation char (non-alphanumeric ASCII and Unicode P*).
#    CHOICE: the order of Hugging Face's Rust BertNormalizer, which transformers' BertTokenizer uses
#    (accents stripped, then lowercase, one char at a time, no NFC); Google's Python tokenizer
#    (NFC first, whole-word lower(): final sigma) differs on rare strings only.
# ---------------------------------------------------------------------------------------------

_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_cjk(char: str) -> bool:
    """True for a CJK ideograph, which BERT treats as a word of its own: "癌" -> True."""
    cp = ord(char)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def is_punctuation(char: str) -> bool:
    """True for ASCII non-alphanumerics and Unicode P* characters: "-" -> True, "^" -> True."""
    return char in string.punctuation or unicodedata.category(char).startswith("P")


def is_removed(char: str) -> bool:
    """True for the characters cleaning drops: NUL, U+FFFD, control and format chars (not \\t\\n\\r)."""
    return char not in "\t\n\r" and (char == "\ufffd" or unicodedata.category(char).startswith("C"))  # C*: NUL too


def clean_text(text: str) -> str:
    """Drop invalid and control characters, turn every whitespace into a space: "a\\tb\\x00c" -> "a bc"."""
    return "".join(" " if c.isspace() else c for c in text if not is_removed(c))


def strip_accents(chars: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """NFD each (char, origin) and drop nonspacing marks, keeping origins: "é" -> "e". Combining marks are
    first put in canonical order (as whole-string NFD does): a few spacing marks (Mc) survive the stripping."""
    out = [(d, i) for c, i in chars for d in unicodedata.normalize("NFD", c)]
    runs = groupby(out, key=lambda ci: unicodedata.combining(ci[0]) > 0)     # sort each run of marks by class
    out = [ci for marks, run in runs
           for ci in (sorted(run, key=lambda ci: unicodedata.combining(ci[0])) if marks else run)]
    return [(c, i) for c, i in out if unicodedata.category(c) != "Mn"]


def unicode_tokenize_spans(text: str, lowercase: bool = True) -> list[tuple[str, list[int]]]:
    """Words of `text` after BERT's basic tokenization, each with the origin index of every char,
    one character at a time: "Nephro-toxicity" -> [("nephro", [0..5]), ("-", [6]), ("toxicity", [7..14])]."""
    chars = []
    for i, c in enumerate(text):
        if is_cjk(c):                   # (an ideograph is never removed)
            chars += [(" ", i), (c, i), (" ", i)]
        elif not is_removed(c):
            chars.append((" " if c.isspace() else c, i))
    if lowercase:
        chars = [(low, i) for c, i in strip_accents(chars) for low in c.lower()]
    words, in_word = [], False          # words: ([chars], [origins])
    for c, i in chars:
        if c.isspace():
            in_word = False
        elif in_word and not (is_punctuation(c) or is_cjk(c)):
            words[-1][0].append(c)
            words[-1][1].append(i)
        else:                           # a word starts; punctuation and CJK are words of one char
            words.append(([c], [i]))
            in_word = not (is_punctuation(c) or is_cjk(c))
    return [("".join(cs), origins) for cs, origins in words]


def basic_tokenize_spans(text: str, lowercase: bool = True) -> list[tuple[str, list[int]]]:
    """unicode_tokenize_spans, by a regex when the text is plain ASCII (the common case)."""
    if text.isascii() and not _ASCII_REMOVED.search(text):   # appendix A.1: the same words, by a regex in C
        matches = _ASCII_WORD.finditer(text.lower() if lowercase else text)
        return [(m.group(), list(range(m.start(), m.end()))) for m in matches]
    return unicode_tokenize_spans(text, lowercase)


def basic_tokenize(text: str, lowercase: bool = True) -> list[str]:
    """BERT's basic tokenization: "Nephro-toxicity of Cisplatin" -> ["nephro", "-", "toxicity", "of", "cisplatin"]."""
    return [word for word, _ in basic_tokenize_spans(text, lowercase)]


# ---------------------------------------------------------------------------------------------
# 2. WordPiece: greedy longest match first                           (docs/paper.md §6; BERT)
#    From the word's start take the longest prefix in the vocabulary, then "##" pieces; if some part
#    matches nothing, or the word is longer than MAX_WORD_CHARS characters, the whole word is one [UNK].
# ---------------------------------------------------------------------------------------------

def wordpiece(word: str, vocab) -> list[str]:
    """Greedy longest-match-first pieces of one word: "nephrotoxicity" -> ["nephro", "##tox", "##icity"]."""
    if len(word) > MAX_WORD_CHARS:
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
# 3. The Tokenizer object                                                     (docs/paper.md §6)
#    A vocabulary in BERT's vocab.txt format (id = line number). Text is cut at whitespace into
#    chunks; each chunk is tokenized (sections 1, 2) once and remembered, because BERT never looks
#    across whitespace and most chunks of real text have been seen before (appendix A.1).
# ---------------------------------------------------------------------------------------------

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
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (self.vocab[t] for t in SPECIAL_TOKENS)
        self._cache = {}          # chunk -> (ids, pieces, spans relative to the chunk)

    @classmethod
    def from_vocab_file(cls, path, lowercase: bool = True) -> "Tokenizer":
        """Load a BERT vocab.txt; a clear TokenizerError names the file (and line) if it is bad."""
        return cls(read_lines(path), lowercase, source=str(path))

    def __len__(self) -> int:
        return len(self.id_to_token)

    def save(self, path) -> None:
        """Write the vocabulary as vocab.txt (one token per line)."""
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(t + "\n" for t in self.id_to_token))

    def _analyse_chunk(self, chunk: str) -> tuple[list[int], list[str], list[tuple[int, int]]]:
        """Ids and pieces of one whitespace-free chunk, and the pieces' [start, end) spans inside it."""
        pieces, spans = [], []
        for word, origin in basic_tokenize_spans(chunk, self.lowercase):   # origin: one index per char of word
            k = 0
            for piece in wordpiece(word, self.vocab):
                n = len(word) if piece == "[UNK]" else len(piece) - (2 if k else 0)   # [UNK] is the whole word
                pieces.append(piece)
                spans.append((origin[k], origin[k + n - 1] + 1))
                k += n
        result = ([self.vocab[p] for p in pieces], pieces, spans)
        if len(self._cache) < CACHE_MAX_WORDS:
            self._cache[chunk] = result
        return result

    def encode_text(self, text: str) -> list[int]:
        """Piece ids of `text`, no special tokens: "EGFR mutations" -> [ids of egfr, mutations]."""
        ids, cache = [], self._cache
        for chunk in split_chunks(text):
            ids += (cache.get(chunk) or self._analyse_chunk(chunk))[0]
        return ids

    def tokenize(self, text: str) -> list[str]:
        """Word pieces of `text`, no special tokens: "Nephrotoxicity" -> ["nephro", "##tox", "##icity"]."""
        return [self.id_to_token[i] for i in self.encode_text(text)]

    def tokenize_with_offsets(self, text: str) -> tuple[list[str], list[tuple[int, int]]]:
        """Word pieces and their [start, end) character spans in `text` ("é" keeps its own span)."""
        pieces, spans = [], []
        for m in _CHUNK.finditer(text):
            chunk, start = m.group(), m.start()
            _, chunk_pieces, chunk_spans = self._cache.get(chunk) or self._analyse_chunk(chunk)
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
            a, b = truncate_longest_first(a, b, budget)     # appendix A.2: the longer side first
        input_ids = [self.cls_id] + a + [self.sep_id]
        token_type_ids = [0] * len(input_ids)
        if pair is not None:
            input_ids += b + [self.sep_id]
            token_type_ids += [1] * (len(b) + 1)
        return {"input_ids": input_ids, "token_type_ids": token_type_ids}

    def encode_lines(self, lines, workers: int = 1, progress: bool = False):
        """A generator of encode_text(line) for each line, in order (blank line -> []); workers > 1: that many
        processes (appendix A.4), each task 1,000 lines, since a task costs a round trip."""
        lines = tqdm(lines, unit=" lines", disable=not progress, desc="encode")
        if workers <= 1:
            return (self.encode_text(line) for line in lines)
        batches = parallel_map(_encode_in_worker, batched(lines, 1000), workers, _init_worker,
                               (self.id_to_token, self.lowercase))
        return (ids for batch in batches for ids in batch)

    def decode(self, ids, skip_special: bool = True) -> str:
        """Text from ids, "##" pieces glued to the piece before: [nephro, ##tox] -> "nephrotox"."""
        special = {self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id} if skip_special else ()
        tokens = [self.id_to_token[i] for i in ids if i not in special]
        return " ".join(tokens).replace(" ##", "")


# ---------------------------------------------------------------------------------------------
# 4. Learning a vocabulary                            (docs/paper.md §1, §6; WordPiece, Wu 2016)
#    Count the corpus's words (section 1), split each into characters ("c" first, "##c" after),
#    then repeatedly merge the adjacent pair with the best likelihood score
#    freq(ab) / (freq(a) * freq(b)) until the vocabulary has the requested size. Google never
#    released its learner; Hugging Face's WordPiece trainer merges by freq(ab) alone (BPE).
# ---------------------------------------------------------------------------------------------

def count_words(paths, lowercase: bool = True, workers: int = 1, progress: bool = False) -> Counter:
    """Word frequencies after basic tokenization over plain/.gz files: {"cancer": 812, ",": 9120, ...}.
    Whitespace chunks are counted first (appendix A.3, in parallel), then each distinct one is tokenized."""
    words = Counter()
    for chunk, n in count_chunks(paths, workers, progress).items():
        for word in basic_tokenize(chunk, lowercase):
            words[word] += n
    if not words:
        raise TokenizerError(f"{', '.join(map(str, paths))}: corpus is empty (no words to learn from)")
    return words


def choose_alphabet(word_counts: Counter, limit_alphabet: int) -> list[str]:
    """The `limit_alphabet` most frequent characters (ties: by code point), sorted."""
    chars = Counter()
    for word, n in word_counts.items():
        for c in word:
            chars[c] += n
    return sorted(sorted(chars, key=lambda c: (-chars[c], c))[:limit_alphabet])


# CHOICE: min_frequency defaults to 10, not tokenizers' 2: the score ranks two rare symbols that always
# occur together above any common pair, so at 2 a 30k PubMed vocab fills with rare ids and numbers
# (2.6 pieces per word against 1.15 at 10; bench/results_tokenizer.md §3).
def learn_vocab(word_counts: Counter, vocab_size: int, min_frequency: int = 10, limit_alphabet: int = 1000,
                num_unused: int = 100, verbose: bool = False, progress: bool = False) -> list[str]:
    """A WordPiece vocabulary in BERT's layout: reserved ids, the alphabet ("c" and "##c"), then merges.
    A pair is merged only if seen `min_frequency` times; score ties go to the more frequent pair, then the
    alphabetically first. Words with a character outside the alphabet are left out (they encode to [UNK]).
    Pair counts are updated as pairs merge (appendix A.3, PairStats)."""
    min_frequency = max(1, min_frequency)                  # a pair that no longer occurs is never merged
    alphabet = choose_alphabet(word_counts, limit_alphabet)
    reserved = ["[PAD]"] + [f"[unused{i}]" for i in range(num_unused)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = reserved + alphabet + ["##" + c for c in alphabet]           # reserved ids as in SciBERT's scivocab
    if vocab_size < len(vocab):
        raise TokenizerError(f"vocab size {vocab_size} is smaller than the {num_unused + 5} reserved tokens plus the "
                             f"alphabet ({len(alphabet)} characters, each as 'c' and '##c'): {len(vocab)}; "
                             "raise the vocab size or lower the alphabet limit")
    kept = set(alphabet)
    words = [w for w in word_counts if set(w) <= kept]
    stats = PairStats([[w[0]] + ["##" + c for c in w[1:]] for w in words], [word_counts[w] for w in words],
                      min_frequency)
    known, heap = set(vocab), []
    stats.push(heap, stats.pairs)
    with tqdm(total=vocab_size, initial=len(vocab), desc="learn vocab", disable=not progress) as bar:
        while len(vocab) < vocab_size and heap:
            neg_score, neg_count, (a, b) = heapq.heappop(heap)     # neg_score: as push computes it
            if stats.pairs.get((a, b)) != -neg_count or neg_count / (stats.freq[a] * stats.freq[b]) != neg_score:
                continue                                   # a stale entry: a fresher one is in the heap
            if verbose:
                print(f"merge {len(vocab) + 1}: {a!r} + {b!r} -> {a + b[2:]!r}  score {-neg_score:.4g} = "
                      f"{-neg_count} / ({stats.freq[a]} * {stats.freq[b]})")
            stats.push(heap, stats.merge(a, b))
            if a + b[2:] not in known:                     # "abc" can come from a+##bc and from ab+##c
                known.add(a + b[2:])
                vocab.append(a + b[2:])
                bar.update()
            if len(heap) > 4 * len(stats.pairs) + 100_000:     # drop stale entries now and then
                heap.clear()
                stats.push(heap, stats.pairs)
    if len(vocab) < vocab_size:
        print(f"note: no pair left with frequency >= {min_frequency}; vocabulary has {len(vocab)} tokens")
    return vocab


# ---------------------------------------------------------------------------------------------
# 5. Command line
# ---------------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = p.add_subparsers(dest="command", required=True)
    t = commands.add_parser("train", help="learn a WordPiece vocabulary from corpus files")
    t.add_argument("--corpus", nargs="+", required=True, help="text files, plain or .gz, one sentence a line")
    t.add_argument("--vocab-size", type=int, default=31090, help="tokens in all (default: scivocab's size)")
    t.add_argument("--out", default="runs/vocab.txt", help="where to write vocab.txt")
    t.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=True)
    t.add_argument("--unused", type=int, default=100, help="[unusedN] slots after [PAD] (scivocab: 100)")
    g = t.add_argument_group("variants of the learner (measured in bench/results_tokenizer.md §3)")
    g.add_argument("--min-frequency", type=int, default=10, help="merge only pairs seen this often (see learn_vocab)")
    g.add_argument("--limit-alphabet", type=int, default=1000, help="keep this many most frequent characters")
    g = t.add_argument_group("how it runs")
    g.add_argument("--workers", type=int, default=2, help="processes counting words")
    g.add_argument("--verbose", action="store_true", help="print every merge with its score")
    e = commands.add_parser("encode", help="show the pieces, ids and offsets of a text (or encode a file)")
    e.add_argument("text", nargs="*", help="text to encode (joined by spaces)")
    e.add_argument("--vocab", default=None, help="vocab.txt (default: DATA_DIR/vocab/scivocab_uncased.txt)")
    e.add_argument("--data-dir", default=os.environ.get("ELECTRAMED_DATA", "data"))
    e.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=True)
    e.add_argument("--input", help="encode every line of this file instead; ids go to --out")
    e.add_argument("--out", default="runs/encoded.txt", help="with --input: one line of ids per input line")
    e.add_argument("--workers", type=int, default=2, help="with --input: encoding processes")
    return p.parse_args(argv)


def main(args):
    if getattr(args, "vocab_size", 1) < 1 or args.workers < 1:
        raise TokenizerError("--vocab-size and --workers must be positive")
    if args.command == "train":
        print(f"learning a {args.vocab_size:,}-token vocabulary from {len(args.corpus)} file(s) -> {args.out}")
        vocab = train_vocab_file(args.corpus, args.vocab_size, args.out, args.lowercase, args.workers,
                                 args.min_frequency, args.limit_alphabet, args.unused, verbose=args.verbose)
        print(f"wrote {len(vocab):,} tokens to {args.out}")
        return vocab
    vocab_file = args.vocab or os.path.join(args.data_dir, "vocab", "scivocab_uncased.txt")
    if not os.path.isfile(vocab_file):
        raise TokenizerError(f"{vocab_file}: no such vocabulary file; pass --vocab FILE, or --data-dir / "
                             "ELECTRAMED_DATA pointing at the data directory (python data.py download all)")
    if not args.input and not " ".join(args.text).strip():
        raise TokenizerError("nothing to encode: give a text, or --input FILE")
    tok = Tokenizer.from_vocab_file(vocab_file, args.lowercase)
    if args.input:
        print(f"encoding {args.input} -> {args.out}")
        return encode_file(tok, args.input, args.out, args.workers)           # appendix A.4
    text = " ".join(args.text)
    pieces, spans = tok.tokenize_with_offsets(text)
    for piece, (start, end) in zip(pieces, spans):
        print(f"{tok.vocab[piece]:>6}  {piece:<20} {start:>4}-{end:<4} {text[start:end]}")
    return pieces


# =============================================================================================
# Appendix: speed and plumbing. A student can skip it: each piece gives the same result as the
# plain code it replaces, only faster or in bounded memory.
# =============================================================================================

# A.1 Fast paths of sections 1 and 3: plain ASCII by one regex; whitespace chunks (and their caches)
CACHE_MAX_WORDS = 1_000_000   # chunks cached per tokenizer; real text is Zipfian: frequent words get in early

_ASCII_REMOVED = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ASCII_WORD = re.compile(r"[A-Za-z0-9]+|[!-/:-@\[-`{-~]")   # a run of alphanumerics, or one punctuation char


# str.split() splits on exactly BERT's whitespace, except for seven control chars that BERT deletes
# (so "a\x85b" is one word); a chunk is a run of anything else (checked over all of Unicode in tests).
_SPLIT_NOT_SPACE = re.compile(r"[\x0b\x0c\x1c-\x1f\x85]")
_CHUNK = re.compile(r"(?:[^\s]|[\x0b\x0c\x1c-\x1f\x85])+")


def split_chunks(text: str) -> list[str]:
    """Whitespace-separated chunks exactly as BERT separates them: "a\\x85b c" -> ["a\\x85b", "c"]."""
    return _CHUNK.findall(text) if _SPLIT_NOT_SPACE.search(text) else text.split()


# A.2 Pairs cut exactly as BertTokenizer cuts them

def truncate_longest_first(a: list, b: list, budget: int) -> tuple[list, list]:
    """Cut a and b to at most `budget` tokens together, from the end of the longer one first. When both
    must be cut, the one that was shorter keeps budget // 2 and the other the rest (a counts as shorter on
    a tie), as tokenizers' LongestFirst (Rust) does; HF's older Python loop can differ by one token on ties."""
    if len(a) + len(b) <= budget:
        return a, b
    short = min(len(a), len(b), budget // 2)
    if len(a) <= len(b):
        return a[:short], b[:budget - short]
    return a[:budget - short], b[:short]


# A.3 The vocabulary trainer's plumbing: corpus blocks counted in parallel, pair counts updated only
#     in the words that hold the merged pair, the vocabulary written atomically
BLOCK_BYTES = 1 << 22   # text files are read (and corpora counted) in blocks of whole lines


def read_blocks(path):
    """Yield the text of a UTF-8 file (plain or .gz) in blocks of whole lines; errors name the file (and line)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            line_no = 1
            while block := f.read(BLOCK_BYTES):
                block += f.readline()
                try:
                    text = block.decode("utf-8")
                except UnicodeDecodeError as e:
                    line = line_no + block.count(b"\n", 0, e.start)
                    raise TokenizerError(f"{path}:{line}: not valid UTF-8 (byte {block[e.start]:#04x})") from None
                yield text
                line_no += block.count(b"\n")
    except (OSError, EOFError) as e:   # missing, unreadable, not gzip, truncated gzip
        raise TokenizerError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None


def read_lines(path) -> list[str]:
    """All lines of a UTF-8 text file (plain or .gz), cut at "\\n" (or "\\r\\n") only: str.splitlines
    would also cut at U+0085 and U+2028."""
    return [line.removesuffix("\r") for text in read_blocks(path) for line in text.removesuffix("\n").split("\n")]


def train_vocab_file(corpus, vocab_size: int, out, lowercase: bool = True, workers: int = 1,
                     min_frequency: int = 10, limit_alphabet: int = 1000, num_unused: int = 100,
                     verbose: bool = False) -> list[str]:
    """count_words + learn_vocab over the corpus files, saved to `out` (one token a line). Written under a
    temporary name and renamed, as train_pretrain.py's torchrun processes may each write the same file at once."""
    words = count_words(corpus, lowercase, workers, progress=True)
    print(f"{sum(words.values()):,} words, {len(words):,} distinct")
    vocab = learn_vocab(words, vocab_size, min_frequency, limit_alphabet, num_unused,
                        verbose=verbose, progress=not verbose)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    partial = f"{out}.{os.getpid()}.tmp"
    Tokenizer(vocab, lowercase).save(partial)
    os.replace(partial, out)
    return vocab


def count_block(text: str) -> tuple[Counter, int]:
    """Chunk counts of one block of text, and its length."""
    return Counter(split_chunks(text)), len(text)


def count_chunks(paths, workers: int = 1, progress: bool = False) -> Counter:
    """Whitespace chunks of the files and how often each occurs, counted block by block."""
    blocks = (text for path in paths for text in read_blocks(path))
    counted = parallel_map(count_block, blocks, workers) if workers > 1 else map(count_block, blocks)
    chunks = Counter()
    with tqdm(unit=" chars", unit_scale=True, desc="count words", disable=not progress) as bar:
        for counts, size in counted:
            chunks.update(counts)
            bar.update(size)
    return chunks


def merge_symbols(symbols: list[str], a: str, b: str) -> list[str]:
    """Replace each adjacent (a, b), left to right: (["c", "##a", "##t"], "c", "##a") -> ["ca", "##t"]."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
            out.append(a + b[2:])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


class PairStats:
    """Symbol and adjacent-pair frequencies over a bag of words, kept current as pairs merge."""

    def __init__(self, words: list[list[str]], counts: list[int], min_frequency: int = 1):
        self.words, self.counts, self.min_frequency = words, counts, min_frequency
        self.freq = Counter()                 # symbol -> occurrences in the current segmentation
        self.pairs = Counter()                # (a, b) -> occurrences
        self.where = defaultdict(set)         # (a, b) -> indices of the words that hold it
        self.partners = defaultdict(set)      # symbol -> the pairs it belongs to (if >= min_frequency)
        for w in range(len(words)):
            self._count(w, +1)
        self._update_partners(self.pairs)

    def _count(self, w: int, sign: int) -> None:
        """Add the symbols and pairs of word w to the counts (sign -1: take them away)."""
        symbols, n = self.words[w], sign * self.counts[w]
        for s in symbols:
            self.freq[s] += n
        for pair in zip(symbols, symbols[1:]):
            self.pairs[pair] += n
            (self.where[pair].add if sign > 0 else self.where[pair].discard)(w)

    def push(self, heap: list, pairs) -> None:
        """Push (-score, -count, pair) for each pair seen at least min_frequency times (the others can
        never be merged: a pair's count only falls). The score is WordPiece's freq(ab) / (freq(a) * freq(b))."""
        freq, counts, push, min_frequency = self.freq, self.pairs, heapq.heappush, self.min_frequency
        for pair in pairs:
            count = counts.get(pair, 0)
            if count >= min_frequency:
                push(heap, (-count / (freq[pair[0]] * freq[pair[1]]), -count, pair))

    def merge(self, a: str, b: str) -> set:
        """Merge (a, b) in every word holding it; return the pairs whose score may have changed."""
        changed = set()
        for w in list(self.where[(a, b)]):
            old = self.words[w]
            self._count(w, -1)
            self.words[w] = new = merge_symbols(old, a, b)
            self._count(w, +1)
            changed.update(zip(old, old[1:]), zip(new, new[1:]))
        self._update_partners(changed)
        return changed | self.partners[a] | self.partners[b]   # freq(a), freq(b) changed: their pairs too

    def _update_partners(self, pairs) -> None:
        """Forget pairs that vanished; index the pairs frequent enough to merge by both symbols."""
        for pair in pairs:
            count = self.pairs[pair]
            if count == 0:
                del self.pairs[pair], self.where[pair]
            index = set.add if count >= self.min_frequency else set.discard
            index(self.partners[pair[0]], pair)
            index(self.partners[pair[1]], pair)


# A.4 Worker processes: an ordered, streaming map
_WORKER_TOKENIZER = None


def _init_worker(tokens, lowercase):
    global _WORKER_TOKENIZER
    _WORKER_TOKENIZER = Tokenizer(tokens, lowercase)


def _encode_in_worker(lines):
    return [_WORKER_TOKENIZER.encode_text(line) for line in lines]


def encode_file(tokenizer: Tokenizer, path, out, workers: int = 1) -> None:
    """Write one line of ids (space-separated) for each line of the text file `path`."""
    lines = read_lines(path)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for ids in tokenizer.encode_lines(lines, workers=workers, progress=True):
            f.write(" ".join(map(str, ids)) + "\n")


def batched(items, n: int):
    """Lists of n items in order, the last one shorter: batched("abcde", 2) -> ab, cd, e."""
    items = iter(items)
    while batch := list(islice(items, n)):
        yield batch


def parallel_map(fn, items, workers: int, initializer=None, initargs=()):
    """Yield fn(item) for each item, in order, computed by `workers` spawned processes; at most 2 * workers
    items are in flight, so a corpus of any size streams through in bounded memory.
    CHOICE: spawned processes, safe beside torch's threads, under concurrent.futures, whose workers
    finish the tasks they hold: leaving a multiprocessing.Pool calls terminate(), which can deadlock
    (CPython issues #78178 and #96995)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, context, initializer, initargs) as pool:
        pending = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) > 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:                  # an error, or a caller that stopped early: drop what has not started
            for future in pending:
                future.cancel()


if __name__ == "__main__":
    try:
        main(parse_args())
    except TokenizerError as err:
        sys.exit(f"error: {err}")
