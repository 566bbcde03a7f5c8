"""Known-answer tests of flat colouring at the drawing's size (t2p_utils.core.flat)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from t2p_utils.core import flat as F
from t2p_utils.scrape.synthetic import SYNTH_COLORS, Creature, draw_creature

INK = (13, 19, 26)
RED, BLUE = (220, 30, 40), (40, 90, 220)


def two_boxes(gap: int = 0, size: int = 96, width: int = 3) -> np.ndarray:
    """A white page with one outlined rectangle split by a vertical stroke; the stroke has a ``gap`` px hole."""
    img = np.full((size, size, 3), 255, np.uint8)
    lo, hi = 16, size - 16
    img[lo:lo + width, lo:hi] = INK
    img[hi - width:hi, lo:hi] = INK
    img[lo:hi, lo:lo + width] = INK
    img[lo:hi, hi - width:hi] = INK
    mid = size // 2
    img[lo:hi, mid - width // 2: mid - width // 2 + width] = INK
    if gap:
        c = size // 2
        img[c - gap // 2: c - gap // 2 + gap, mid - width // 2: mid - width // 2 + width] = 255
    return img


def halves(size: int, left=RED, right=BLUE) -> np.ndarray:
    out = np.full((size, size, 3), 255, np.uint8)
    out[:, : size // 2] = left
    out[:, size // 2:] = right
    return out


def inner_labels(reg: F.Regions) -> set[int]:
    return {i for i in range(1, reg.n + 1) if not reg.background[i]}


@pytest.mark.parametrize("gap", [0, 1, 2, 3])
def test_a_stroke_gap_of_up_to_3_px_keeps_two_regions(gap: int) -> None:
    reg = F.segment(two_boxes(gap))
    inner = inner_labels(reg)
    assert len(inner) == 2, f"gap {gap}: {len(inner)} inner regions"
    left, right = reg.labels[48, 30], reg.labels[48, 66]
    assert left != right and {left, right} == inner


def test_without_gap_closing_a_gap_merges_the_regions() -> None:
    """The known answer above depends on the ball: with gap=0 the 2 px hole joins the two boxes."""
    reg = F.segment(two_boxes(2), gap=0)
    assert len(inner_labels(reg)) == 1


def test_border_regions_are_background_and_stay_white() -> None:
    line = two_boxes(2)
    res = F.flat_fill(line, halves(24))
    out = np.asarray(res.composite)
    assert res.ok
    assert (out[:10] == 255).all() and (out[:, :10] == 255).all()  # the page around the boxes
    assert res.regions.background[res.regions.labels[2, 2]]


def test_a_noisy_prediction_gives_one_colour_per_region() -> None:
    rng = np.random.default_rng(0)
    pred = halves(24).astype(np.int16) + rng.integers(-40, 41, (24, 24, 3))
    pred = np.clip(pred, 0, 255).astype(np.uint8)
    res = F.flat_fill(two_boxes(2), pred)
    out = np.asarray(res.composite)
    for x in (30, 66):
        region = res.regions.labels == res.regions.labels[48, x]
        colours = np.unique(out[region & ~res.regions.stroke], axis=0)
        assert len(colours) <= 3  # one flat colour (plus the anti-aliasing of none here: the strokes are hard)
        assert colours.shape[0] >= 1
    left = out[48, 30].astype(int)
    right = out[48, 66].astype(int)
    assert np.abs(left - RED).max() < 25 and np.abs(right - BLUE).max() < 25


def test_stroke_pixels_equal_the_input_and_the_output_has_its_size() -> None:
    line = two_boxes(2, size=200)
    res = F.flat_fill(line, halves(64))
    out = np.asarray(res.composite)
    assert out.shape == line.shape  # the drawing's size, not the model's
    stroke = res.regions.stroke
    assert stroke.sum() > 0
    assert (out[stroke] == line[stroke]).all()


def test_layers_rebuild_the_composite() -> None:
    line = two_boxes(2)
    res = F.flat_fill(line, halves(24))
    flats = np.asarray(res.flats())
    lines = np.asarray(res.lines())
    assert flats.shape == (96, 96, 4) and lines.shape == (96, 96, 4)
    assert (flats[2, 2, 3] == 0) and (flats[48, 30, 3] == 255)  # background transparent, regions opaque
    assert (lines[30, 48, 3] > 200) and (lines[30, 30, 3] == 0)  # strokes opaque, the rest transparent
    # flats under the lines: the stroke pixels of the flats carry a region colour, not the ink
    assert tuple(flats[30, 48, :3]) != INK and flats[30, 48, 3] == 255
    assert np.asarray(res.flats(transparent=False)).shape == (96, 96, 3)


def test_transparent_line_art_keeps_its_transparent_background() -> None:
    line = two_boxes(2)
    rgba = np.dstack([line, np.where((line < 128).all(-1), 255, 0).astype(np.uint8)])
    inside = np.zeros(line.shape[:2], bool)
    inside[16:80, 16:80] = True
    rgba[inside, 3] = 255  # the character is opaque white, the page transparent
    res = F.flat_fill(Image.fromarray(rgba, "RGBA"), halves(24))
    out = np.asarray(res.composite)
    assert out.shape[2] == 4
    assert out[2, 2, 3] == 0 and out[48, 30, 3] == 255


def test_synthetic_creature_with_its_own_colours_comes_back_flat_and_close() -> None:
    """The ground truth at 64 px as the 'model output' gives the ground truth back at 256 px, nearly."""
    from t2p_utils.core.colors import delta_e2000, rgb_to_lab

    c = Creature("s000", "cat", {"body": "red", "belly": "yellow", "eyes": "blue", "ears": "green", "tail": "purple"})
    col, line, mask = draw_creature(c, 256, np.random.default_rng(0))
    small = col.resize((64, 64), Image.Resampling.BOX)
    res = F.flat_fill(line, small, mask)
    out = np.asarray(res.composite)
    m = np.asarray(mask) > 127
    de = delta_e2000(rgb_to_lab(out[m]), rgb_to_lab(np.asarray(col)[m]))
    assert np.median(de) < 2.0 and de.mean() < 8.0
    # every part keeps its colour: the centre of the belly is yellow, not red
    yellow = np.array(SYNTH_COLORS["yellow"])
    ys, xs = np.nonzero((np.asarray(col) == yellow).all(-1))
    assert np.abs(out[int(ys.mean()), int(xs.mean())].astype(int) - yellow).max() < 20


def test_tiny_regions_follow_the_rule() -> None:
    line = np.full((128, 128, 3), 255, np.uint8)
    line[20:108, 20:23] = INK
    line[20:108, 105:108] = INK
    line[20:23, 20:108] = INK
    line[105:108, 20:108] = INK
    line[60:66, 60:66] = INK  # a small ring: an "eye" with a 2x2 highlight inside
    line[62:64, 62:64] = 255
    pred = np.full((32, 32, 3), 255, np.uint8)
    pred[6:26, 6:26] = BLUE
    keep = np.asarray(F.flat_fill(line, pred, tiny="keep").composite)
    inherit = np.asarray(F.flat_fill(line, pred, tiny="inherit").composite)
    assert tuple(keep[62, 62]) == (255, 255, 255)
    assert np.abs(inherit[62, 62].astype(int) - BLUE).max() < 25
    with pytest.raises(ValueError, match="tiny"):
        F.flat_fill(line, pred, tiny="biggest")


def test_strokes_with_a_large_gap_fall_back_to_the_raw_output_with_a_reason() -> None:
    c = Creature("s000", "cat", {"body": "red", "belly": "yellow", "eyes": "blue"})
    col, line, mask = draw_creature(c, 256, np.random.default_rng(0))
    broken = np.asarray(line).copy()
    broken[:, 120:150] = 255  # cut a 30 px slice out of every stroke
    res = F.flat_fill(broken, col.resize((64, 64)), mask)
    assert not res.ok and "border" in res.fallback
    assert res.composite.size == (256, 256)
    out = np.asarray(res.composite)
    stroke = res.regions.stroke
    assert (out[stroke] == broken[stroke]).all()  # the strokes put back exactly over the enlarged raw output
    outside = np.asarray(mask) < 128
    assert (out[outside & ~stroke] == 255).all()  # and the background as drawn: no flood over the page


def test_a_drawing_whose_character_fills_the_page_is_filled_when_the_mask_says_so() -> None:
    line = two_boxes(0, size=96)
    line[:, :] = 255
    line[2:5, 2:94] = INK
    line[91:94, 2:94] = INK
    line[2:94, 2:5] = INK
    line[2:94, 91:94] = INK  # one box over most of the page
    mask = np.zeros((96, 96), bool)
    mask[2:94, 2:94] = True
    assert "covers" in F.flat_fill(line, halves(24, RED, RED)).fallback  # without a mask: a frame, refused
    res = F.flat_fill(line, halves(24, RED, RED), mask)
    assert res.ok and np.abs(np.asarray(res.composite)[48, 48].astype(int) - RED).max() < 25


def test_a_blank_page_raises_a_clear_error() -> None:
    with pytest.raises(F.FlatError, match="no dark stroke"):
        F.flat_fill(np.full((64, 64, 3), 255, np.uint8), halves(16))


def test_no_closed_region_is_reported() -> None:
    line = np.full((64, 64, 3), 255, np.uint8)
    line[10:54, 30:33] = INK  # a single open stroke
    res = F.flat_fill(line, halves(16))
    assert not res.ok and "no closed region" in res.fallback


def test_recolor_changes_only_the_regions_asked() -> None:
    res = F.flat_fill(two_boxes(2), halves(24))
    colors = res.region_colors.copy()
    left = res.regions.labels[48, 30]
    colors[left] = (58, 123, 213)
    out = np.asarray(F.recolor(res, colors).composite)
    assert tuple(out[48, 30]) == (58, 123, 213)
    assert (out[48, 66] == np.asarray(res.composite)[48, 66]).all()


def test_fit_size_keeps_small_drawings_and_scales_big_ones() -> None:
    small = Image.new("RGB", (300, 200), "white")
    assert F.fit_size(small)[0] is small and F.fit_size(small)[1] == ""
    big, note = F.fit_size(Image.new("RGB", (4000, 2000), "white"), 1024)
    assert big.size == (1024, 512) and "4000x2000" in note


def test_region_medians_known_answer() -> None:
    labels = np.array([[1, 1, 1, 2, 2]])
    lab = np.zeros((1, 5, 3), np.float32)
    lab[0, :, 0] = [10, 50, 90, 20, 30]
    lab[0, :, 1] = [-5, 5, 100, -20, 20]
    med, counts = F.region_medians(lab, labels, np.ones((1, 5), bool), 2)
    assert counts.tolist() == [0, 3, 2]
    assert med[1, 0] == pytest.approx(50, abs=0.01) and med[1, 1] == pytest.approx(5, abs=0.01)
    assert med[2, 0] == pytest.approx(25, abs=0.01) and med[2, 1] == pytest.approx(0, abs=0.01)
    assert np.isnan(med[0]).all()
