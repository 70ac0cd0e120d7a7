"""
Tests of bench/baselines.py's features, on hand-made examples whose answer is written out here
(PROBES.md's definitions): the token features of a short sentence, the word shape, and the span
between the pair markers of ChemProt and DDI rows. Run: python -m pytest tests/test_baselines.py
"""
import importlib.util
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("baselines", Path(__file__).parent.parent / "bench" / "baselines.py")
baselines = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(baselines)


def test_token_features_of_a_hand_example():
    words = ["Naloxone", "reverses", "the", "IL-2Ra", "effect"]
    assert baselines.token_features(words, 3) == {
        "word": "il-2ra", "prefix3": "IL-", "suffix3": "2Ra", "suffix4": "-2Ra", "shape": "X-dXx",
        "word-2": "reverses", "word-1": "the", "word+1": "effect",         # no word+2: the sentence ends
        "suffix3-1": "the", "suffix3+1": "ect"}
    first = baselines.token_features(words, 0)
    assert not any(k in first for k in ("word-1", "word-2", "suffix3-1"))   # nothing before the start
    assert first["word+2"] == "the" and first["shape"] == "Xx"


@pytest.mark.parametrize("word, shape", [("EGFR", "X"), ("p53", "xd"), ("Na+/K+", "Xx+/X+"), ("1990s", "dx")])
def test_word_shape(word, shape):
    assert baselines.word_shape(word) == shape


def test_marker_span_from_first_to_last_pair_marker():
    chemprot = "Effect of BC6OTHER on BC6ENTG by BC6ENTC in rats."
    assert baselines.marker_span(chemprot, baselines.PAIR_MARKERS["chemprot"]) == "BC6ENTG by BC6ENTC"
    ddi = "Response to @DRUG$ with serum @DRUG$, monitored."
    assert baselines.marker_span(ddi, baselines.PAIR_MARKERS["ddi"]) == "@DRUG$ with serum @DRUG$"
    assert baselines.marker_span("@DRUG-DRUG$ levels", baselines.PAIR_MARKERS["ddi"]) == "@DRUG-DRUG$"
    assert baselines.marker_span("no markers here", baselines.PAIR_MARKERS["ddi"]) == ""
