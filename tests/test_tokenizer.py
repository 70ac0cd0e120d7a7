"""Tests for tokenizer.py: BERT tokenization, offsets, the WordPiece trainer and the command line.

Oracles: transformers.BertTokenizer (Rust `tokenizers` backend, what transformers uses) and the
pure-Python BertTokenizerLegacy, both on the same vocab file and casing; the `tokenizers` library
itself for whitespace rules. Texts: every real file in the data directory (PubMed, the CoNLL, TSV
and BioASQ benchmark files) and thousands of seeded random strings.

    python -m pytest tests/test_tokenizer.py            # representative subsets, about a minute
    python -m pytest tests/test_tokenizer.py -m slow    # every sentence of every file
"""
import json
import random
import sys

import pytest
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


def first_mismatch(ours, hf, texts, offsets=False):
    """(number of texts whose ids (or offsets) differ from the oracle's, first difference)."""
    bad, first = 0, None
    enc = hf(texts, add_special_tokens=False, return_offsets_mapping=offsets)
    for i, text in enumerate(texts):
        if offsets:
            mine, theirs = ours.tokenize_with_offsets(text)[1], [tuple(o) for o in enc["offset_mapping"][i]]
        else:
            mine, theirs = ours.encode_text(text), enc["input_ids"][i]
        if mine != theirs:
            bad += 1
            first = first or (text, mine, theirs)
    return bad, first


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


def check_parity(ours, hf, legacy, data_dir, per_file, legacy_per_file):
    total = 0
    for path in data_files(data_dir):
        texts = read_texts(path)[:per_file]
        bad, first = first_mismatch(ours, hf, texts)
        assert bad == 0, f"{path}: {bad}/{len(texts)} texts differ from BertTokenizer; first {first}"
        bad, first = first_mismatch(ours, hf, texts, offsets=True)
        assert bad == 0, f"{path}: {bad}/{len(texts)} offset lists differ from BertTokenizer; first {first}"
        some = texts[:legacy_per_file]
        bad, first = first_mismatch(ours, legacy, some)
        assert bad == 0, f"{path}: {bad}/{len(some)} texts differ from BertTokenizerLegacy; first {first}"
        print(f"{path.relative_to(data_dir)}: {len(texts)} texts, 0 mismatches (legacy: {len(some)}, 0)")
        total += len(texts)
    return total


def test_parity_scivocab_on_real_text_subset(sci, sci_hf, sci_legacy, data_dir):
    total = check_parity(sci, sci_hf, sci_legacy, data_dir, per_file=3000, legacy_per_file=300)
    print(f"scivocab: {total} real texts, 0 mismatches")


@pytest.mark.slow
def test_parity_scivocab_on_every_real_text(sci, sci_hf, sci_legacy, data_dir):
    total = check_parity(sci, sci_hf, sci_legacy, data_dir, per_file=None, legacy_per_file=None)
    print(f"scivocab: {total} real texts (every sentence), 0 mismatches")


def test_parity_scivocab_on_random_strings(sci, sci_hf):
    texts = random_strings(3000)
    for offsets in (False, True):
        bad, first = first_mismatch(sci, sci_hf, texts, offsets=offsets)
        assert bad == 0, f"{bad}/{len(texts)} random strings differ (offsets={offsets}); first {first}"
    print(f"scivocab: {len(texts)} random strings, 0 mismatches in ids and offsets")


def test_offsets_span_the_text_that_produced_each_piece(sci, data_dir):
    texts = [t for p in data_files(data_dir) for t in read_texts(p)[:200]] + random_strings(300, seed=1)
    texts += ["Café  au   lait\t\tNaïve Ångström", "ΟΔΟΣ  µ-opioid", "İstanbul", "x\u0301\u0308y"]
    checked = 0
    for text in texts:
        for piece, (s, e) in zip(*sci.tokenize_with_offsets(text)):
            if piece == "[UNK]":
                continue
            normalised = "".join(tk.basic_tokenize(text[s:e], lowercase=True))
            assert normalised == piece.removeprefix("##"), f"{piece!r} spans {text[s:e]!r} in {text!r}"
            checked += 1
    print(f"offsets: {checked} pieces map back to their text")


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
    for offsets in (False, True):
        bad, first = first_mismatch(sci, sci_hf, texts, offsets=offsets)
        assert bad == 0, f"{bad} whitespace cases differ (offsets={offsets}); first {first}"


def test_encode_pairs_truncation_and_batch_match_bert(sci, sci_hf, data_dir):
    texts = read_texts(data_dir / "bioasq" / "test-7b-1.json")   # contexts, then questions
    questions, contexts = texts[-40:], texts[:40]
    # (the Rust oracle truncates slowly when inputs are much longer than max_len: short inputs there)
    for texts, pairs, max_len in [(questions, questions[::-1], 8), (questions, questions[::-1], 9),
                                  (questions, contexts, 128), (contexts, questions, 128),
                                  (contexts, contexts[::-1], 255), (questions, contexts, None)]:
        ours = sci.encode_batch(texts, pairs, max_len=max_len)
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


def test_save_and_reload_round_trip(sci, tmp_path):
    sci.save(tmp_path / "vocab.txt")
    again = Tokenizer.from_vocab_file(tmp_path / "vocab.txt")
    assert again.id_to_token == sci.id_to_token and len(again) == 31090
    assert (again.pad_id, again.unk_id, again.cls_id, again.sep_id, again.mask_id) == (0, 101, 102, 103, 104)


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


def test_ascii_fast_path_equals_the_character_by_character_definition(data_dir):
    texts = read_texts(data_dir / "pubmed" / "pubmed_sample.txt")[:2000]
    rng = random.Random(2)
    texts += ["".join(rng.choice([chr(c) for c in range(128)]) for _ in range(40)) for _ in range(2000)]
    for lowercase in (True, False):
        for text in texts:
            assert tk.basic_tokenize_spans(text, lowercase) == tk.unicode_tokenize_spans(text, lowercase), repr(text)
