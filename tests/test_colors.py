"""Unit tests for the shared colour API (t2p_utils.core.colors)."""

from __future__ import annotations

import numpy as np
import pytest

from t2p_utils.core import colors as C
from t2p_utils.scrape.synthetic import OUTLINE, SYNTH_COLORS


def _img(rgb: tuple[int, int, int], size: int = 4) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (size, size, 3)).copy()


def test_basic_colors_api_order() -> None:
    assert C.BASIC_COLORS == (
        "black", "white", "gray", "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown",
    )


@pytest.mark.parametrize(
    ("rgb", "term"),
    [
        ((255, 0, 0), "red"),
        ((13, 19, 26), "black"),  # the dream-world outline colour
        ((0, 0, 0), "black"),
        ((255, 255, 255), "white"),
        ((250, 250, 250), "white"),  # xkcd names #fdfdfe "pale grey": lightness wins
        ((128, 128, 128), "gray"),
        ((0, 0, 255), "blue"),
        ((0, 128, 0), "green"),
        ((255, 255, 0), "yellow"),
        ((255, 165, 0), "orange"),
        ((128, 0, 128), "purple"),
        ((255, 192, 203), "pink"),
        ((139, 69, 19), "brown"),
        # regressions found on real sprites
        ((89, 194, 225), "blue"),  # Wooper; nearest is CSS "skyblue" (a run-together name)
        ((2, 161, 208), "blue"),  # CSS "deepskyblue"
        ((244, 231, 166), "yellow"),  # Whimsicott's wool; xkcd "light tan" is pale, not brown
        ((62, 58, 57), "black"),  # Luxio's fur: sprites draw black as charcoal (L* 25)
        ((100, 100, 100), "gray"),
    ],
)
def test_pixel_color_terms_named_colours(rgb: tuple[int, int, int], term: str) -> None:
    terms = C.pixel_color_terms(_img(rgb))
    assert terms.shape == (4, 4)
    assert {C.BASIC_COLORS[i] for i in terms.ravel()} == {term}


def test_table_mapping_rules() -> None:
    names, _labs, terms = C.color_table()
    term = {n: C.BASIC_COLORS[t] for n, t in zip(names, terms, strict=True)}
    assert len(names) == 949 + 148 + 11
    assert term["xkcd:greenish blue"] == "blue" and term["xkcd:blue with a hint of purple"] == "blue"
    assert term["xkcd:pale grey"] == "white"  # #fdfdfe: achromatic, lightness decides
    assert term["lightgoldenrodyellow"] == "yellow" and term["aliceblue"] == "white"
    assert term["xkcd:tan"] == "brown" and term["saddlebrown"] == "brown"
    assert term["burlywood"] in {"brown", "yellow", "orange"}  # no colour word: nearest worded neighbour


def test_synthetic_fills_and_outline_are_named_as_generated() -> None:
    for term, rgb in SYNTH_COLORS.items():
        assert C.name_color(rgb) == term
    assert C.name_color(OUTLINE) == "black"


def test_pixel_color_terms_float_input_matches_uint8() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(C.pixel_color_terms(img), C.pixel_color_terms(img.astype(np.float32) / 255.0))


def test_color_words_synonyms_order_unique() -> None:
    assert C.color_words("a grey cat with crimson eyes") == ["gray", "red"]
    assert C.color_words("Violet wings, a blue-green tail and BLUE eyes") == ["purple", "blue", "green"]
    assert C.color_words("a drawing of a cartoon pokemon") == []
    assert C.color_words("") == []


def test_color_coverage_shares_inside_mask() -> None:
    img = np.zeros((10, 10, 3), dtype=np.uint8) + 255  # white background
    img[:, :5] = (220, 30, 40)  # left half red
    img[:, 5:] = (40, 90, 220)  # right half blue
    img[0] = (255, 255, 255)  # top row white
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[:, :8] = 255  # 80 pixels: 10 white (row 0), 45 red minus 5 ... counted below
    cov = C.color_coverage(img, mask)
    assert set(cov) == set(C.BASIC_COLORS)
    assert cov["white"] == pytest.approx(8 / 80)
    assert cov["red"] == pytest.approx(45 / 80)
    assert cov["blue"] == pytest.approx(27 / 80)
    assert sum(cov.values()) == pytest.approx(1.0)
    assert C.dominant_colors(img, mask, min_share=0.2) == ["red", "blue"]
    assert C.color_coverage(img, np.zeros((10, 10), bool)) == {c: 0.0 for c in C.BASIC_COLORS}
    with pytest.raises(ValueError, match="mask shape"):
        C.color_coverage(img, np.ones((3, 3), bool))


def test_rgb_to_lab_reference_values() -> None:
    lab = C.rgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0]], dtype=np.uint8))
    np.testing.assert_allclose(lab[0], [100.0, 0.0, 0.0], atol=0.01)
    np.testing.assert_allclose(lab[1], [0.0, 0.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.05)
    # floats on either scale give the same Lab
    np.testing.assert_allclose(C.rgb_to_lab(np.array([255.0, 0.0, 0.0])), C.rgb_to_lab(np.array([1.0, 0.0, 0.0])))


def test_delta_e2000_identity_and_sharma_reference_pairs() -> None:
    lab = C.rgb_to_lab(np.array([[12, 200, 90], [200, 10, 50]], dtype=np.uint8))
    np.testing.assert_allclose(C.delta_e2000(lab, lab), 0.0, atol=1e-9)
    # Sharma, Wu & Dalal (2005), Table 1: pairs 1, 7 and 17
    lab1 = np.array([[50.0, 2.6772, -79.7751], [50.0, 0.0, 0.0], [50.0, 2.5, 0.0]])
    lab2 = np.array([[50.0, 0.0, -82.7485], [50.0, -1.0, 2.0], [73.0, 25.0, -18.0]])
    np.testing.assert_allclose(C.delta_e2000(lab1, lab2), [2.0425, 2.3669, 27.1492], atol=1e-4)
