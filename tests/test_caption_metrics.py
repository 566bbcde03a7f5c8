"""Caption metrics: hand-computed BLEU, colour precision/recall, <unk> rate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from t2p_utils.captions.quality import color_scores, corpus_bleu, score_captions, unk_rate, words


def test_bleu_hand_computed_two_sentence_corpus() -> None:
    hyps = ["the cat sat on the mat", "a red bird with a yellow belly"]
    refs = [["the cat is on the mat"], ["a red bird with a blue belly"]]
    # clipped matches / totals per n: 1-grams (5+6)/(6+7), 2-grams (3+4)/(5+6), 3-grams (1+3)/(4+5),
    # 4-grams (0+2)/(3+4); equal lengths -> brevity penalty 1
    expected = (11 / 13 * 7 / 11 * 4 / 9 * 2 / 7) ** 0.25
    assert corpus_bleu(hyps, refs) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx((8 / 117) ** 0.25)


def test_bleu_clipping_brevity_and_edge_cases() -> None:
    assert corpus_bleu(["A red bird, with a yellow belly."], [["a red bird with a yellow belly"]]) == pytest.approx(1.0)
    # clipping: "the the the" against "the cat": unigram precision 1/3
    assert corpus_bleu(["the the the"], [["the cat"]], max_n=1) == pytest.approx(1 / 3)
    # brevity: 2 words against 6 -> BP = exp(1 - 6/2)
    assert corpus_bleu(["the cat"], [["the cat is on the mat"]], max_n=2) == pytest.approx(math.exp(-2))
    # closest reference length is used (6, not 2)
    assert corpus_bleu(["the cat is on the mat"], [["the cat", "the cat is on the mat"]]) == pytest.approx(1.0)
    assert corpus_bleu(["the cat sat on the mat"], [["the cat is on the mat"]]) == 0.0  # no 4-gram match
    assert 0 < corpus_bleu(["the cat sat on the mat"], [["the cat is on the mat"]], smooth=True) < 1
    assert math.isnan(corpus_bleu([], []))
    with pytest.raises(ValueError):
        corpus_bleu(["a"], [])


def test_color_scores_micro_precision_recall() -> None:
    caps = ["a grey cat with crimson eyes", "a blue bird", "a drawing of a creature"]
    truth = [{"gray", "red", "white"}, {"yellow"}, {"green"}]
    s = color_scores(caps, truth)
    # predicted: {gray, red}, {blue}, {} -> tp 2 of 3 predicted, of 5 true
    assert s["color_precision"] == pytest.approx(2 / 3)
    assert s["color_recall"] == pytest.approx(2 / 5)
    assert s["color_f1"] == pytest.approx(2 * (2 / 3) * (2 / 5) / (2 / 3 + 2 / 5))
    assert s["colors_per_caption"] == pytest.approx(1.0)
    assert np.isnan(color_scores(["a cat"], [{"red"}])["color_precision"])


def test_unk_rate_and_lengths() -> None:
    caps = ["a drawing with a <unk> body, <unk> face", "a drawing of a cat"]
    assert words(caps[0]) == ["a", "drawing", "with", "a", "<unk>", "body", "<unk>", "face"]
    tok, cap = unk_rate(caps)
    assert tok == pytest.approx(2 / 13) and cap == pytest.approx(0.5)
    row = score_captions(caps, ["x", "y"], {"x": {"red"}, "y": set()}, {"y": "a drawing of a cat"}, {"y"})
    assert row["bleu4"] == pytest.approx(1.0) and row["bleu_n"] == 1
    assert math.isnan(row["ref_color_recall"])  # the reference names no colour
    assert row["mean_length"] == pytest.approx(6.5)
    row = score_captions(["a red and blue cat", "a cat"], ["x", "y"], {"x": set(), "y": set()},
                         {"x": "a red and green cat", "y": "a yellow cat"}, {"x", "y"})
    assert row["ref_color_recall"] == pytest.approx(1 / 3)  # red of {red, green, yellow}


def test_caption_findings_are_computed_from_the_table() -> None:
    import pandas as pd

    from t2p_utils.captions.quality import caption_findings

    row = dict(source="cnn_lstm", captioner="cnn_lstm", stand_in=False, n=10, bleu4=0.125, bleu_n=4,
               ref_color_recall=0.0, color_precision=float("nan"), color_recall=0.0, colors_per_caption=0.0,
               unk_rate=0.095, captions_with_unk=1.0, final_color_recall=0.09, final_unk_rate=0.054)
    pal = dict(row, source="clip", captioner="palette (stand-in for clip-interrogator)", stand_in=True,
               captions_with_unk=0.0, unk_rate=0.0, colors_per_caption=2.44, color_recall=0.95, color_precision=0.89,
               ref_color_recall=0.94, bleu4=0.03)
    text = caption_findings(pd.DataFrame([row, pal]), ["cnn_lstm", "clip", "palette"])
    first, second, third = text.splitlines()
    assert "100% of its captions hold `<unk>` (9.5% of tokens)" in first and "BLEU-4 against them 0.12" in first
    assert "(precision n/a)" in first  # no colour named: no precision, said as such
    assert "an offline stand-in" in second and "2.4 colours named" in second and "names 94%" in second
    assert third.startswith("- **palette**: no captions found")
