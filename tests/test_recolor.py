"""Counterfactual recolouring: outline and background untouched, new colours named by the captioner."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from t2p_utils.captions.recolor import RecolorSettings, RecolorSkip, recolor, recolor_copies, region_of
from t2p_utils.core.colors import BASIC_PROTOTYPES, dominant_colors
from t2p_utils.core.palette import PaletteSettings, palette_caption

S = 48


def sprite() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A blue body with a yellow belly, a 1-px dark outline, on white; its mask and line art."""
    rgb = np.full((S, S, 3), 255, dtype=np.uint8)
    mask = np.zeros((S, S), dtype=bool)
    mask[6:42, 8:40] = True
    rgb[mask] = BASIC_PROTOTYPES["blue"]
    rgb[28:40, 14:34] = BASIC_PROTOTYPES["yellow"]
    line = np.full((S, S), 255, dtype=np.uint8)
    edge = mask & ~ndimage.binary_erosion(mask)
    rgb[edge] = (13, 19, 26)
    line[edge] = 13
    return rgb, mask, line


def test_recolouring_keeps_outline_and_background_and_names_the_new_colour() -> None:
    rgb, mask, line = sprite()
    out = recolor(rgb, mask, line, ["red", "green"], RecolorSettings(k=3))
    keep = ~region_of(rgb, mask, line)
    assert np.array_equal(out.image[keep], rgb[keep])  # outline and background: the same pixels
    assert out.targets[:2] == ["red", "green"]
    reg = region_of(rgb, mask, line)
    assert dominant_colors(out.image, reg)[:2] == ["red", "green"]
    caption = palette_caption(out.image, mask, PaletteSettings(), line).caption
    assert "red body" in caption and "green" in caption and "blue" not in caption
    assert out.changed > 0.95


def test_copies_are_seeded_and_use_different_body_colours() -> None:
    rgb, mask, line = sprite()
    s = RecolorSettings(copies=4, k=3)
    a = recolor_copies(rgb, mask, line, s, key=7)
    b = recolor_copies(rgb, mask, line, s, key=7)
    assert [x.targets for x in a] == [x.targets for x in b]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    assert len({x.targets[0] for x in a}) == 4


def test_nothing_to_recolour_is_a_recorded_skip() -> None:
    rgb, mask, line = sprite()
    with pytest.raises(RecolorSkip, match="empty mask"):
        recolor(rgb, np.zeros_like(mask), line)
    outline_only = np.zeros_like(mask)
    outline_only[6, 8:40] = True
    with pytest.raises(RecolorSkip, match="nothing but outline"):
        recolor(rgb, outline_only, line)


def test_unknown_colour_terms_are_rejected() -> None:
    with pytest.raises(ValueError, match="not basic colour terms"):
        RecolorSettings(body_colors=("rouge",))
