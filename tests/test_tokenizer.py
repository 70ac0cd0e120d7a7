"""Tests for tokenizer.py: BERT tokenization, offsets, the WordPiece trainer and the command line.

Oracles: transformers.BertTokenizer (Rust `tokenizers` backend, what transformers uses) and the
pure-Python BertTokenizerLegacy, both on the same vocab file and casing (scivocab, uncased, and a
cased vocab we train); the `tokenizers` library's BertNormalizer and BertPreTokenizer for cleaning
and word counts; a from-scratch recount for the incremental trainer. Texts: real files in the data
directory (PubMed, the CoNLL, TSV and BioASQ benchmark files) and thousands of seeded random strings.
Each parity test prints its counts of texts and mismatches (run with -s to see them).

    python -m pytest tests/test_tokenizer.py            # subsets of every file, about a minute
    python -m pytest tests/test_tokenizer.py -m slow    # every sentence of every file, ~8 minutes
"""
import gzip
import itertools
import json
import random
import subprocess
import sys
import unicodedata
from collections import Counter

import pytest
from tokenizers import normalizers, pre_tokenizers
from transformers import BertTokenizer
from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

import tokenizer as tk
from tokenizer import Tokenizer, TokenizerError

# ---------------------------------------------------------------------------------------------
# Real texts and random strings
# ---------------------------------------------------------------------------------------------


def read_texts(path) -> list[str]:
    """Every sentence of one data file: PubMed lines, CoNLL words joined by spaces, the TSV
    sentence column, BioASQ questions and contexts."""
    if path.suffix == ".json":
        paragraphs = [p for d in json.loads(path.read_text("utf-8"))["data"] for p in d["paragraphs"]]
        return [p["context"] for p in paragraphs] + [q["question"] for p in paragraphs for q in p["qas"]]
    lines = path.read_text("utf-8-sig").splitlines()
    if path.suffix == ".tsv":
        column = lines[0].split("\t").index("sentence")
        return [line.split("\t")[column] for line in lines[1:]]
    if path.parent.name == "pubmed":
        return [line for line in lines if line.strip()]
    sentences, words = [], []
    for line in lines + [""]:
        if line.strip():
            words.append(line.split()[0])
        elif words:
            sentences.append(" ".join(words))
            words = []
    return sentences


def data_files(data_dir):
    patterns = ["pubmed/*.txt", "bc5cdr/*.txt", "ncbi_disease/*.txt", "chemprot/*.tsv",
                "chemprot/blue/*.tsv", "ddi/*.tsv", "bioasq/t*.json"]
    return [p for pattern in patterns for p in sorted(data_dir.glob(pattern))]


def random_strings(n: int, seed: int = 0) -> list[str]:
    """Seeded strings mixing scripts, accents, combining marks, control chars, odd spaces, emoji,
    CJK and very long words."""
    rng = random.Random(seed)
    pools = ["abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
             "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿÀÉÎÕÜßĀăĘğİıŁńŒšŸžǅǆ", "\u0301\u0308\u0327\u0303\u0345",
             "αβγδεζηθΣσςΩΆΐάЖжДдЁё", "אבגדהשت ثجحخ", "अआकखग\u093e\u093f\u094d", "กขคงจ\u0e31\u0e34",
             "한국어가나다", "ひらがなカタカナ", "癌症蛋白質研究中文", "\uf900\uf901",
             "\x00\x01\x07\x0b\x0c\x1b\x7f\x85\x9f\u200b\u200d\u200e\ufeff\ufffd",
             "  \t\n\r\u00a0\u2002\u2009\u3000\u2028\u1680", "😀😁🙂🙏", "©®°±µ×÷∑∞≤≥→←★€£¥§¶•…–—“”‘’«»¿¡"]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 12)):
            pool = rng.choice(pools)
            length = rng.choice([1, 2, 3, 5, 8]) if rng.random() > 0.03 else rng.randint(90, 250)
            parts.append("".join(rng.choice(pool) for _ in range(length)))
            parts.append(rng.choice(["", " ", "  ", "\t"]))
        out.append("".join(parts))
    return out


def oracle_ids_and_offsets(hf, texts):
    """ids and (for BertTokenizer) character offsets from the oracle, no special tokens. For
    BertTokenizer we call its Rust backend (the object it encodes with) directly: transformers'
    Python wrapper around it costs ~0.3 ms a text; test_backend_is_what_bert_tokenizer_returns."""
    if isinstance(hf, BertTokenizerLegacy):
        return hf(texts, add_special_tokens=False)["input_ids"], None
    encodings = hf.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
    return [e.ids for e in encodings], [e.offsets for e in encodings]


def count_mismatches(ours, hf, texts):
    """(texts whose ids differ from the oracle's, texts whose offsets differ, the first difference).
    The legacy oracle gives no offsets: only ids are compared there."""
    bad_ids, bad_offsets, first = 0, 0, None
    theirs_ids, theirs_offsets = oracle_ids_and_offsets(hf, texts)
    for i, text in enumerate(texts):
        if ours.encode_text(text) != theirs_ids[i]:
            bad_ids += 1
            first = first or ("ids", text, ours.tokenize(text), theirs_ids[i])
        if theirs_offsets is not None and ours.tokenize_with_offsets(text)[1] != theirs_offsets[i]:
            bad_offsets += 1
            first = first or ("offsets", text, ours.tokenize_with_offsets(text), theirs_offsets[i])
    return bad_ids, bad_offsets, first


@pytest.fixture(scope="module")
def sci(scivocab):
    return Tokenizer.from_vocab_file(scivocab, lowercase=True)


@pytest.fixture(scope="module")
def sci_hf(scivocab):
    return BertTokenizer(str(scivocab), do_lower_case=True)


@pytest.fixture(scope="module")
def sci_legacy(scivocab):
    return BertTokenizerLegacy(str(scivocab), do_lower_case=True)

# ---------------------------------------------------------------------------------------------
# 1-3. Parity with transformers.BertTokenizer, offsets
# ---------------------------------------------------------------------------------------------


def normalisation_order_matters(text) -> bool:
    """Where the legacy Python tokenizer may differ from the Rust one (and so from ours, tokenizer.py §1
    CHOICE): text that NFC changes (e.g. U+212B ANGSTROM SIGN) or that holds a Greek capital/final sigma."""
    return unicodedata.normalize("NFC", text) != text or "Σ" in text or "ς" in text


def check_parity(ours, hf, legacy, data_dir, per_file, legacy_per_file):
    total = 0
    for path in data_files(data_dir):
        texts = read_texts(path)[:per_file]
        bad_ids, bad_offsets, first = count_mismatches(ours, hf, texts)
        some = texts[:legacy_per_file]
        legacy_ids, _ = oracle_ids_and_offsets(legacy, some)
        off_legacy = [t for t, ids in zip(some, legacy_ids) if ours.encode_text(t) != ids]
        unexplained = [t for t in off_legacy if not normalisation_order_matters(t)]
        print(f"{path.relative_to(data_dir)}: {len(texts)} texts, {bad_ids} id and {bad_offsets} offset "
              f"mismatches; legacy: {len(some)} texts, {len(off_legacy)} mismatches (normalisation order)")
        assert bad_ids == bad_offsets == 0, f"{path}: differs from BertTokenizer; first {first}"
        assert not unexplained, f"{path}: differs from BertTokenizerLegacy; first {unexplained[0]!r}"
        total += len(texts)
    return total


def test_backend_is_what_bert_tokenizer_returns(sci_hf, data_dir):
    texts = read_texts(data_dir / "ncbi_disease" / "test.txt")[:300] + random_strings(300, seed=4)
    ids, offsets = oracle_ids_and_offsets(sci_hf, texts)
    called = sci_hf(texts, add_special_tokens=False, return_offsets_mapping=True)
    assert ids == called["input_ids"]
    assert offsets == [[tuple(o) for o in row] for row in called["offset_mapping"]]


def test_parity_scivocab_on_real_text_subset(sci, sci_hf, sci_legacy, data_dir):
    total = check_parity(sci, sci_hf, sci_legacy, data_dir, per_file=2000, legacy_per_file=200)
    print(f"scivocab: {total} real texts, 0 mismatches")


@pytest.mark.slow
def test_parity_scivocab_on_every_real_text(sci, sci_hf, sci_legacy, data_dir):
    total = check_parity(sci, sci_hf, sci_legacy, data_dir, per_file=None, legacy_per_file=None)
    print(f"scivocab: {total} real texts (every sentence), 0 mismatches")


def test_parity_scivocab_on_random_strings(sci, sci_hf, sci_legacy):
    texts = random_strings(3000)
    bad_ids, bad_offsets, first = count_mismatches(sci, sci_hf, texts)
    print(f"scivocab: {len(texts)} random strings, {bad_ids} id and {bad_offsets} offset mismatches")
    assert bad_ids == bad_offsets == 0, f"first difference {first}"
    # The Python tokenizer applies NFC and lowercases whole words (final sigma: "ΟΔΟΣ" -> "οδος" with
    # ς); the Rust one, which transformers uses and we follow, does neither. Where we differ from the
    # Python one, the two oracles differ from each other.
    rust_ids, legacy_ids = oracle_ids_and_offsets(sci_hf, texts)[0], oracle_ids_and_offsets(sci_legacy, texts)[0]
    ours_vs_legacy = [i for i, text in enumerate(texts) if sci.encode_text(text) != legacy_ids[i]]
    print(f"legacy Python tokenizer: differs from ours on {len(ours_vs_legacy)} random strings, "
          f"each one where it differs from the Rust tokenizer too")
    assert all(rust_ids[i] != legacy_ids[i] for i in ours_vs_legacy)


def check_spans(tok, texts) -> int:
    """Every piece's span, normalised (lowercased, accents stripped), spells the piece; an [UNK]'s
    span is a whole word. Returns the number of pieces checked."""
    checked = 0
    for text in texts:
        for piece, (s, e) in zip(*tok.tokenize_with_offsets(text)):
            words = tk.basic_tokenize(text[s:e], lowercase=tok.lowercase)
            if piece == "[UNK]":
                assert len(words) == 1, f"[UNK] spans {text[s:e]!r} in {text!r}"
            else:
                assert "".join(words) == piece.removeprefix("##"), f"{piece!r} spans {text[s:e]!r} in {text!r}"
            checked += 1
    return checked


def test_offsets_span_the_text_that_produced_each_piece(sci, data_dir):
    texts = [t for p in data_files(data_dir) for t in read_texts(p)[:200]] + random_strings(300, seed=1)
    texts += ["Café  au   lait\t\tNaïve Ångström", "ΟΔΟΣ  µ-opioid", "İstanbul", "x\u0301\u0308y"]
    print(f"offsets: {check_spans(sci, texts)} pieces map back to their text")


@pytest.mark.slow
def test_offsets_of_every_piece_of_every_real_text(sci, data_dir):
    texts = [t for p in data_files(data_dir) for t in read_texts(p)]
    print(f"offsets: {check_spans(sci, texts)} pieces of {len(texts)} texts map back to their text")


def test_offsets_are_exact_for_a_cased_vocabulary():
    vocab = list(tk.SPECIAL_TOKENS) + ["Café", "au", "lait", "Na", "##ïve", "##ve", "Å", "##ngström", "-"]
    ours = Tokenizer(vocab, lowercase=False)
    text = "Café  au   lait\t\tNaïve Ångström-au"
    pieces, spans = ours.tokenize_with_offsets(text)
    assert [text[s:e] for s, e in spans] == ["Café", "au", "lait", "Na", "ïve", "Å", "ngström", "-", "au"]
    assert pieces == ["Café", "au", "lait", "Na", "##ïve", "Å", "##ngström", "-", "au"]


def test_chunking_agrees_with_bert_whitespace(sci, sci_hf):
    """encode_text cuts raw text into chunks with str.split() (or a regex when one of seven deleted
    control chars occurs); check every Unicode char that str.split splits on, alone and with offsets."""
    spaces = [chr(cp) for cp in range(sys.maxunicode + 1) if chr(cp).isspace()]
    texts = [f"cell{c}death" for c in spaces] + [f"a{c} {c}b" for c in spaces]
    bad_ids, bad_offsets, first = count_mismatches(sci, sci_hf, texts)
    assert bad_ids == bad_offsets == 0, f"whitespace cases differ; first {first}"


def test_encode_pairs_truncation_and_batch_match_bert(sci, sci_hf, data_dir):
    texts = read_texts(data_dir / "bioasq" / "test-7b-1.json")   # contexts, then questions
    questions, contexts = texts[-40:], texts[:40]
    # (the Rust oracle truncates slowly when inputs are much longer than max_len: short inputs there)
    for texts, pairs, max_len in [(questions, questions[::-1], 8), (questions, questions[::-1], 9),
                                  (questions, contexts, 128), (contexts, questions, 128),
                                  (contexts, contexts[::-1], 255), (questions, contexts, None)]:
        ours = [sci.encode(text, pair, max_len) for text, pair in zip(texts, pairs, strict=True)]
        truncate = dict(truncation="longest_first", max_length=max_len) if max_len else {}
        theirs = sci_hf(texts, pairs, **truncate)
        assert [o["input_ids"] for o in ours] == theirs["input_ids"], f"max_len={max_len}"
        assert [o["token_type_ids"] for o in ours] == theirs["token_type_ids"], f"max_len={max_len}"
    for text in questions:
        assert sci.encode(text, max_len=9)["input_ids"] == sci_hf(text, truncation=True, max_length=9)["input_ids"]


def test_decode_matches_bert(sci, sci_legacy, data_dir):
    """Against the Python tokenizer's join (the Rust decoder also removes spaces before punctuation)."""
    texts = read_texts(data_dir / "ncbi_disease" / "dev.txt")[:200]
    for text in texts:
        ids = sci.encode(text)["input_ids"]
        assert sci.decode(ids) == sci_legacy.convert_tokens_to_string(sci_legacy.convert_ids_to_tokens(ids[1:-1]))
        assert sci.decode(ids, skip_special=False).startswith("[CLS] ")


def test_encode_lines_in_order_with_workers(sci, data_dir):
    lines = (data_dir / "pubmed" / "pubmed_sample.txt").read_text("utf-8").splitlines()[:3000]
    expected = [sci.encode_text(line) for line in lines]
    assert list(sci.encode_lines(lines)) == expected
    assert list(sci.encode_lines(iter(lines), workers=2)) == expected
    assert expected[lines.index("")] == []


def test_parallel_map_streams_in_order_and_stops_cleanly():
    # An endless input: a map that submitted everything first would never return.
    squares = tk.parallel_map(abs, itertools.count(-50), workers=2)
    assert list(itertools.islice(squares, 100)) == [abs(i) for i in range(-50, 50)]
    squares.close()                    # the caller stops early: the processes must end, not hang
    with pytest.raises(TypeError, match="bad operand type for abs"):
        list(tk.parallel_map(abs, [1, -2, "three", 4], workers=2))   # a worker's error reaches the caller
    assert list(tk.batched(range(5), 2)) == [[0, 1], [2, 3], [4]]


def test_save_and_reload_round_trip(sci, tmp_path):
    sci.save(tmp_path / "vocab.txt")
    again = Tokenizer.from_vocab_file(tmp_path / "vocab.txt")
    assert again.id_to_token == sci.id_to_token and len(again) == 31090
    assert (again.pad_id, again.unk_id, again.cls_id, again.sep_id, again.mask_id) == (0, 101, 102, 103, 104)
    crlf = tmp_path / "crlf.txt"                       # a vocab saved on Windows reads the same, as in HF
    crlf.write_bytes((tmp_path / "vocab.txt").read_bytes().replace(b"\n", b"\r\n"))
    assert Tokenizer.from_vocab_file(crlf).id_to_token == sci.id_to_token
    assert BertTokenizer(str(crlf)).tokenize("Ångström units") == sci.tokenize("Ångström units")


def test_vocab_errors_name_the_file(tmp_path):
    no_specials = tmp_path / "bad.txt"
    no_specials.write_text("[PAD]\n[UNK]\nthe\n", encoding="utf-8")
    with pytest.raises(TokenizerError, match=r"bad\.txt: missing special token\(s\) \[CLS\], \[SEP\], \[MASK\]"):
        Tokenizer.from_vocab_file(no_specials)
    not_utf8 = tmp_path / "latin1.txt"
    not_utf8.write_bytes("\n".join(tk.SPECIAL_TOKENS).encode() + "\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(TokenizerError, match=r"latin1\.txt:6: .*not valid UTF-8"):
        Tokenizer.from_vocab_file(not_utf8)
    with pytest.raises(TokenizerError, match=r"missing\.txt: cannot read"):
        Tokenizer.from_vocab_file(tmp_path / "missing.txt")


def test_clean_text_matches_bert_normalizer():
    clean_only = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False,
                                            lowercase=False)
    for text in random_strings(2000, seed=5):
        assert tk.clean_text(text) == clean_only.normalize_str(text), repr(text)


def test_ascii_fast_path_equals_the_character_by_character_definition(data_dir):
    texts = read_texts(data_dir / "pubmed" / "pubmed_sample.txt")[:300]
    rng = random.Random(2)
    texts += ["".join(rng.choice([chr(c) for c in range(128)]) for _ in range(40)) for _ in range(1000)]
    for lowercase in (True, False):
        for text in texts:
            assert tk.basic_tokenize_spans(text, lowercase) == tk.unicode_tokenize_spans(text, lowercase), repr(text)


# ---------------------------------------------------------------------------------------------
# 4. Learning a vocabulary
# ---------------------------------------------------------------------------------------------

TOY = Counter({"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5})   # Hugging Face course, ch. 6


def test_toy_merges_worked_by_hand(capsys):
    """Words (count): hug 10, pug 5, pun 12, bun 4, hugs 5; split h ##u ##g, p ##u ##g, ...
    score = freq(ab) / (freq(a) * freq(b)); ties -> the more frequent pair.
    1. freq ##u 36, ##g 20, ##s 5. (##g,##s) = 5/(20*5) = 1/20; every other pair = 1/36
       (e.g. (p,##u) = 17/(17*36)).                                              -> ##gs
    2. all pairs tie at 1/36 again; (p,##u) is the most frequent (17).            -> pu
    3. ##u now 19: (h,##u) = 15/(15*19), (b,##u) = 4/(4*19), (##u,##gs) = 5/(19*5), all 1/19,
       above (pu,##n) = 12/(17*16); (h,##u) is the most frequent.                 -> hu
    4. ##u now 4: (b,##u) = 4/(4*4) = 1/4, beats (hu,##gs) = 5/(15*5) = 1/15.    -> bu
    5. (hu,##gs) 1/15 > (bu,##n) = 4/(4*16) = 1/16 > (hu,##g) = 10/(15*15).      -> hugs
    6. hu now 10: (hu,##g) = 10/(10*15) = 1/15 > (bu,##n) 1/16.                   -> hug
    7. (bu,##n) 1/16 > (pu,##g) = 5/(17*5) = 1/17 > (pu,##n) = 12/(17*16).        -> bun
    8. ##n now 12: (pu,##n) = 12/(17*12) = 1/17 ties (pu,##g) = 5/(17*5); more frequent. -> pun
    9. the last pair.                                                             -> pug
    """
    vocab = tk.learn_vocab(TOY, vocab_size=5 + 14 + 9, min_frequency=1, num_unused=0, verbose=True)
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert vocab[5:19] == list("bghnpsu") + ["##" + c for c in "bghnpsu"]
    assert vocab[19:] == ["##gs", "pu", "hu", "bu", "hugs", "hug", "bun", "pun", "pug"]
    printed = capsys.readouterr().out
    assert "'##g' + '##s' -> '##gs'  score 0.05 = 5 / (20 * 5)" in printed
    assert "'b' + '##u' -> 'bu'  score 0.25 = 4 / (4 * 4)" in printed


def test_layout_alphabet_limit_and_min_frequency(capsys):
    vocab = tk.learn_vocab(TOY, vocab_size=200, min_frequency=5, limit_alphabet=6, num_unused=3, verbose=True)
    assert vocab[:9] == ["[PAD]", "[unused0]", "[unused1]", "[unused2]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "g"]
    assert "b" not in vocab and "##b" not in vocab and "bu" not in vocab   # b is the rarest of 7 chars
    merges = [line for line in capsys.readouterr().out.splitlines() if line.startswith("merge")]
    counts = [int(line.split(" = ")[1].split(" / ")[0]) for line in merges]
    assert merges and len(vocab) == 8 + 12 + len(merges) and min(counts) >= 5, merges


def naive_learn(word_counts, n_merges, min_frequency):
    """Reference trainer: recount every pair and symbol from scratch before each merge."""
    words = {w: [w[0]] + ["##" + c for c in w[1:]] for w in word_counts}
    merges = []
    for _ in range(n_merges):
        pairs, freq = Counter(), Counter()
        for w, symbols in words.items():
            for s in symbols:
                freq[s] += word_counts[w]
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += word_counts[w]
        ok = [p for p in pairs if pairs[p] >= min_frequency]
        if not ok:
            break
        a, b = min(ok, key=lambda p: (-pairs[p] / (freq[p[0]] * freq[p[1]]), -pairs[p], p))
        merges.append(a + b[2:])
        words = {w: tk.merge_symbols(symbols, a, b) for w, symbols in words.items()}
    return merges


def test_incremental_trainer_equals_full_recount_on_real_text(data_dir):
    lines = (data_dir / "pubmed" / "pubmed_sample.txt").read_text("utf-8").splitlines()[:300]
    words = Counter(w for line in lines for w in tk.basic_tokenize(line))
    base = 5 + 2 * len({c for w in words for c in w})
    vocab = tk.learn_vocab(words, vocab_size=base + 400, min_frequency=2, num_unused=0)
    expected = list(dict.fromkeys(naive_learn(words, 420, min_frequency=2)))
    assert len(vocab) == base + 400 and vocab[base:] == expected[:400]


def tokenizers_words(lines, lowercase):
    """Word counts by the tokenizers library's BertNormalizer + BertPreTokenizer (the oracle)."""
    normalizer, pre = normalizers.BertNormalizer(lowercase=lowercase), pre_tokenizers.BertPreTokenizer()
    return Counter(w for line in lines for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(line)))


def test_count_words_plain_gz_parallel_match_tokenizers(data_dir, tmp_path, monkeypatch):
    text = (data_dir / "pubmed" / "pubmed_sample.txt").read_text("utf-8")
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    with gzip.open(tmp_path / "b.txt.gz", "wt", encoding="utf-8") as f:
        f.write(text + "Ångström ΟΔΟΣ caf\u00e9 a\x85b\n")
    monkeypatch.setattr(tk, "BLOCK_BYTES", 50_000)          # many blocks, to exercise the line bookkeeping
    lines = text.split("\n")                                  # (str.splitlines would also cut at \x85)
    expected = tokenizers_words(lines + lines + ["Ångström ΟΔΟΣ caf\u00e9 a\x85b"], True)
    assert tk.count_words([tmp_path / "a.txt", tmp_path / "b.txt.gz"]) == expected
    assert tk.count_words([tmp_path / "a.txt", tmp_path / "b.txt.gz"], workers=2) == expected
    assert tk.count_words([tmp_path / "a.txt"], lowercase=False) == tokenizers_words(lines, False)


def test_corpus_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"fine line\nanother\nna\xefve\n")
    bad.with_name("ok.txt").write_text("fine\n", encoding="utf-8")
    for workers in (1, 2):
        with pytest.raises(TokenizerError, match=r"latin1\.txt:3: not valid UTF-8 \(byte 0xef\)"):
            tk.count_words([bad], workers=workers)
    for workers in (1, 2):
        with pytest.raises(TokenizerError, match=r"nowhere\.txt: cannot read \(No such file"):
            tk.count_words([bad.with_name("ok.txt"), tmp_path / "nowhere.txt"], workers=workers)
    with pytest.raises(TokenizerError, match=r"cannot read \(Is a directory\)"):
        tk.count_words([tmp_path])
    (tmp_path / "fake.gz").write_bytes(b"not gzip at all")
    with pytest.raises(TokenizerError, match=r"fake\.gz: cannot read \(Not a gzipped file"):
        tk.count_words([tmp_path / "fake.gz"])
    (tmp_path / "blank.txt").write_text("\n  \n\t\n", encoding="utf-8")
    with pytest.raises(TokenizerError, match=r"blank\.txt: corpus is empty"):
        tk.count_words([tmp_path / "blank.txt"])
    with pytest.raises(TokenizerError, match=r"vocab size 20 is smaller than .* alphabet \(7 characters"):
        tk.learn_vocab(TOY, vocab_size=20, num_unused=3)


# ---------------------------------------------------------------------------------------------
# A cased vocabulary we train: parity again
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cased_vocab(data_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("cased") / "vocab.txt"
    args = tk.parse_args(["train", "--corpus", str(data_dir / "pubmed" / "corpus.txt"), "--vocab-size", "6000",
                          "--no-lowercase", "--out", str(path), "--workers", "1"])
    tk.main(args)
    return path


def test_parity_trained_cased_vocab_on_real_text_and_random_strings(cased_vocab, data_dir):
    ours = Tokenizer.from_vocab_file(cased_vocab, lowercase=False)
    hf = BertTokenizer(str(cased_vocab), do_lower_case=False)
    legacy = BertTokenizerLegacy(str(cased_vocab), do_lower_case=False)
    assert len(ours) == 6000 and ours.tokenize("EGFR") != ours.tokenize("egfr")
    total = check_parity(ours, hf, legacy, data_dir, per_file=500, legacy_per_file=100)
    texts = random_strings(2000, seed=3)
    bad_ids, bad_offsets, first = count_mismatches(ours, hf, texts)
    print(f"cased vocab: {len(texts)} random strings, {bad_ids} id and {bad_offsets} offset mismatches")
    assert bad_ids == bad_offsets == 0, f"first difference {first}"
    print(f"cased vocab: {total} real texts and {len(texts)} random strings, 0 mismatches")


@pytest.mark.slow
def test_parity_trained_cased_vocab_on_every_real_text(cased_vocab, data_dir):
    ours = Tokenizer.from_vocab_file(cased_vocab, lowercase=False)
    hf = BertTokenizer(str(cased_vocab), do_lower_case=False)
    legacy = BertTokenizerLegacy(str(cased_vocab), do_lower_case=False)
    total = check_parity(ours, hf, legacy, data_dir, per_file=None, legacy_per_file=None)
    print(f"cased vocab: {total} real texts (every sentence), 0 mismatches")


# ---------------------------------------------------------------------------------------------
# 5. Command line
# ---------------------------------------------------------------------------------------------

def test_cli_encode_and_clean_errors(scivocab, data_dir, tmp_path, capsys):
    pieces = tk.main(tk.parse_args(["encode", "--vocab", str(scivocab), "EGFR", "mutations", "in", "Ångström"]))
    assert pieces == BertTokenizer(str(scivocab)).tokenize("EGFR mutations in Ångström")
    assert "ström" in capsys.readouterr().out                       # the offsets column shows the original text
    lines = read_texts(data_dir / "bc5cdr" / "dev.txt")[:300]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tk.main(tk.parse_args(["encode", "--vocab", str(scivocab), "--input", str(tmp_path / "in.txt"),
                           "--out", str(tmp_path / "ids.txt"), "--workers", "1"]))
    written = [[int(i) for i in line.split()] for line in (tmp_path / "ids.txt").read_text().splitlines()]
    assert written == BertTokenizer(str(scivocab))(lines, add_special_tokens=False)["input_ids"]
    with pytest.raises(TokenizerError, match=r"nowhere/vocab/scivocab_uncased\.txt: no such vocabulary file"):
        tk.main(tk.parse_args(["encode", "--data-dir", str(tmp_path / "nowhere"), "EGFR"]))
    with pytest.raises(TokenizerError, match="nothing to encode"):
        tk.main(tk.parse_args(["encode", "--vocab", str(scivocab), "  "]))
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\n")
    run = subprocess.run([sys.executable, "tokenizer.py", "train", "--corpus", str(tmp_path / "bad.txt"),
                          "--out", str(tmp_path / "v.txt")], capture_output=True, text=True, cwd=tk.__file__[:-12])
    assert run.returncode == 1 and "bad.txt:2: not valid UTF-8" in run.stderr and "Traceback" not in run.stderr


def test_cli_help(capsys):
    for argv, expected in [(["--help"], ["train", "encode", "python tokenizer.py train"]),
                           (["train", "--help"], ["--corpus", "--vocab-size", "--min-frequency", "--verbose"]),
                           (["encode", "--help"], ["--vocab", "--input", "--workers"])]:
        with pytest.raises(SystemExit) as exit_info:
            tk.parse_args(argv)
        printed = capsys.readouterr().out
        assert exit_info.value.code == 0 and all(word in printed for word in expected), printed
    for argv in (["train", "--corpus", "c.txt", "--seed", "1"], ["encode", "x", "--seed", "1"]):
        with pytest.raises(SystemExit) as exit_info:                 # nothing is random: no --seed
            tk.parse_args(argv)
        assert exit_info.value.code == 2 and "unrecognized arguments: --seed" in capsys.readouterr().err
