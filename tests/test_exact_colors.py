"""Known-answer tests of exact colours (t2p_utils.demo.exact_colors): what the model is asked, what the regions get."""

from __future__ import annotations

import numpy as np
import pytest
from test_flat import halves, two_boxes  # a drawing of two closed boxes, and a model output per half

from t2p_utils.core import flat as F
from t2p_utils.core.colors import BASIC_COLORS, color_words, name_color
from t2p_utils.demo.exact_colors import CSS_COLORS, apply_exact, match_exact, parse_exact

BLUE, RED = (40, 90, 220), (220, 30, 40)  # the model's blue (left box) and red (right box)
EXACT = (58, 123, 213)  # #3a7bd5


def painted(left: tuple[int, int, int] = BLUE, right: tuple[int, int, int] = RED) -> F.FlatResult:
    """two_boxes() flat-filled from a model output painting the left box ``left`` and the right one ``right``."""
    res = F.flat_fill(two_boxes(), halves(24, left, right))
    assert res.ok
    return res


def at(res: F.FlatResult, y: int, x: int) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(res.composite)[y, x])


# ------------------------------------------------------------------------------ parsing
def test_a_hex_code_is_asked_as_its_basic_term() -> None:
    r = parse_exact("a #3a7bd5 body")
    assert r.text == "a blue body"
    (c,) = r.colors
    assert (c.text, c.rgb, c.term, c.kind, c.hex) == ("#3a7bd5", EXACT, "blue", "hex", "#3a7bd5")
    assert r.instruction[c.start:c.end] == "#3a7bd5"
    assert r.describe() == ["#3a7bd5 → asked as “blue”"]
    short = parse_exact("#FFF teeth").colors[0]
    assert short.rgb == (255, 255, 255) and short.term == "white"


def test_a_css_name_is_asked_as_its_basic_term() -> None:
    r = parse_exact("a teal belly")
    (c,) = r.colors
    assert c.rgb == (0, 128, 128) and c.kind == "css"
    assert c.term == name_color(np.array([0, 128, 128], np.uint8)) == "blue"
    assert r.text == "a blue belly" and color_words(r.text) == ["blue"]
    assert r.describe() == ["teal (#008080) → asked as “blue”"]


def test_text_with_basic_terms_only_is_unchanged() -> None:
    for text in ("Turn it into a creature with a white belly and a red face and back.", "a grey cat with a black nose",
                 "a yellow green frog", "Make it look nice"):
        r = parse_exact(text)
        assert r.text == text and r.colors == () and not r, text
    assert not set(CSS_COLORS) & {*BASIC_COLORS, "grey"}


def test_css_names_written_as_words_longest_first() -> None:
    r = parse_exact("dark slate blue wings and a sky-blue tail")
    assert [(c.text, c.rgb) for c in r.colors] == [("dark slate blue", (72, 61, 139)), ("sky-blue", (135, 206, 235))]
    assert r.text == "blue wings and a blue tail"
    assert parse_exact("a light goldenrod yellow tail").text == "a yellow tail"
    assert parse_exact("a tealish fin").colors == ()  # whole words only


def test_the_article_follows_the_new_word() -> None:
    assert parse_exact("a #ff8800 belly").text == "an orange belly"
    assert parse_exact("An aqua fin").text == "A blue fin"
    assert parse_exact("Teal body, an #ff8800 nose").text == "Blue body, an orange nose"


def test_alpha_hex_and_longer_hex_runs_are_left_alone() -> None:
    for text in ("a #3a7bd5ff body", "a #12345678 body", "a #abcd body", "a x#3a7bd5 body"):
        r = parse_exact(text)
        assert r.colors == () and r.text == text, text


def test_the_pixel_rule_names_the_term_not_the_word() -> None:
    """CSS azure (240, 255, 255) is named white where the pixels are named, though the word reads as blue."""
    r = parse_exact("an azure body")
    assert color_words("an azure body") == ["blue"]
    assert r.colors[0].term == "white" and r.text == "a white body"


# ------------------------------------------------------------------------------ applying
def test_the_region_painted_blue_gets_the_exact_colour_and_red_is_untouched() -> None:
    res = painted()
    req = parse_exact("a #3a7bd5 body")
    (m,) = match_exact(res, req)
    assert m.applied and len(m.labels) == 1 and m.share == pytest.approx(0.5, abs=0.05)
    out = apply_exact(res, req)
    assert at(out, 48, 30) == EXACT  # inside the left box
    assert at(out, 48, 66) == at(res, 48, 66) and name_color(np.array(at(res, 48, 66), np.uint8)) == "red"
    assert at(out, 2, 2) == (255, 255, 255)  # background
    stroke = out.regions.stroke
    np.testing.assert_array_equal(np.asarray(out.composite)[stroke], two_boxes()[stroke])  # lines exactly as drawn
    assert tuple(out.region_colors[res.regions.labels[48, 30]]) == EXACT
    assert "painted exactly #3a7bd5 in the 1 region painted blue (51% of the character)" in m.describe()


def test_a_term_the_model_did_not_paint_changes_nothing_and_says_so() -> None:
    res = painted()
    req = parse_exact("a seagreen body")  # (46, 139, 87): green; the model painted blue and red
    (m,) = match_exact(res, req)
    assert m.status == "not painted" and not m.applied
    assert m.describe() == "seagreen (#2e8b57): not used: the model painted no region green"
    assert apply_exact(res, req) is res


def test_two_exact_colours_with_one_term_first_wins() -> None:
    res = painted()
    req = parse_exact("a navy body and #3a7bd5 eyes")  # both blue
    navy, exact = match_exact(res, req)
    assert navy.applied and exact.status == "shadowed" and exact.by is not None and exact.by.text == "navy"
    assert "navy (#000080) came first" in exact.describe()
    assert at(apply_exact(res, req), 48, 30) == (0, 0, 128)


def test_a_colour_written_twice_counts_once_and_two_terms_both_apply() -> None:
    res = painted()
    assert len(match_exact(res, parse_exact("#3a7bd5 body, #3A7BD5 eyes"))) == 1
    req = parse_exact("a #3a7bd5 body with a crimson face")  # blue and red
    assert [m.status for m in match_exact(res, req)] == ["applied", "applied"]
    out = apply_exact(res, req)
    assert at(out, 48, 30) == EXACT and at(out, 48, 66) == (220, 20, 60)


def test_the_background_never_takes_an_exact_colour() -> None:
    res = painted(left=(255, 255, 255))  # the model left the left box white
    req = parse_exact("a whitesmoke belly")  # (245, 245, 245): white
    (m,) = match_exact(res, req)
    assert m.applied and len(m.labels) == 1
    out = apply_exact(res, req)
    assert at(out, 48, 30) == (245, 245, 245) and at(out, 2, 2) == (255, 255, 255)


def test_a_fallback_result_keeps_the_raw_output() -> None:
    line = np.full((64, 64, 3), 255, np.uint8)
    line[10:54, 30:33] = 13  # one open stroke: no closed region
    res = F.flat_fill(line, halves(16, BLUE, BLUE))
    assert not res.ok
    req = parse_exact("a #3a7bd5 body")
    (m,) = match_exact(res, req)
    assert m.status == "fallback" and "could not be flat-coloured" in m.describe()
    assert apply_exact(res, req) is res
    assert match_exact(res, parse_exact("a blue body")) == ()
