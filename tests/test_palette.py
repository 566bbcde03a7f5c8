"""Palette captioner (offline CLIP stand-in): names the known colours of synthetic creatures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from t2p_utils.core.colors import color_words
from t2p_utils.core.palette import (
    PaletteSettings,
    caption_files,
    kmeans_lab,
    palette_caption,
    thin_outline,
)
from t2p_utils.scrape.synthetic import OUTLINE, Creature, draw_creature

REPO = Path(__file__).resolve().parents[1]


def _creature(parts: dict[str, str], size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    color, _, mask = draw_creature(Creature("t0", "cat", parts), size, np.random.default_rng(seed))
    return np.asarray(color), np.asarray(mask) > 127


def test_red_body_yellow_belly_named_and_nothing_else() -> None:
    rgb, mask = _creature({"body": "red", "belly": "yellow", "eyes": "blue"})
    res = palette_caption(rgb, mask)
    words = color_words(res.caption)
    assert words[:2] == ["red", "yellow"], res.caption  # body (largest) first, then belly
    assert set(words) <= {"red", "yellow", "blue"}  # no colour it lacks (no outline black either)
    assert "black" not in words
    assert res.caption.startswith("a creature with a red body, ") or res.caption.startswith(
        "a creature with a red body and"
    )
    belly = next(c for c in res.colors if c.term == "yellow")
    assert belly.vertical == "bottom"
    assert 0.1 < belly.share < 0.4
    assert 0.05 < res.outline_share < 0.3


def test_ears_named_at_the_top() -> None:
    rgb, mask = _creature({"body": "blue", "belly": "pink", "eyes": "green", "ears": "orange"})
    res = palette_caption(rgb, mask)
    ears = [c for c in res.colors if c.term == "orange"]
    assert ears and ears[0].vertical == "top", res.caption
    assert "orange at the top" in res.caption


def test_solid_black_region_is_kept_but_thin_outline_dropped() -> None:
    rgb = np.full((40, 40, 3), 255, np.uint8)
    mask = np.zeros((40, 40), bool)
    mask[5:35, 5:35] = True
    rgb[5:35, 5:35] = (220, 30, 40)
    rgb[5, 5:35] = OUTLINE  # 1-px outline on top
    rgb[20:34, 10:30] = OUTLINE  # a solid black patch
    outline = thin_outline(rgb, mask)
    assert outline[5, 5:35].all() and not outline[20:34, 10:30].any()
    words = color_words(palette_caption(rgb, mask).caption)
    assert set(words) == {"red", "black"}


def test_kmeans_deterministic_and_separates_clusters() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1, (100, 3)), rng.normal(50, 1, (60, 3))])
    c1, l1 = kmeans_lab(x, 2, seed=7)
    c2, l2 = kmeans_lab(x, 2, seed=7)
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_allclose(c1, c2)
    assert sorted(np.bincount(l1).tolist()) == [60, 100]
    assert sorted(np.round(c1[:, 0]).tolist()) == pytest.approx([0, 50], abs=1)


def test_empty_mask_and_bad_shapes() -> None:
    rgb = np.full((8, 8, 3), 255, np.uint8)
    assert palette_caption(rgb, np.zeros((8, 8), bool)).caption == "a drawing of a creature"
    with pytest.raises(ValueError, match="mask shape"):
        palette_caption(rgb, np.zeros((4, 4), bool))


def test_synthetic_set_every_caption_names_body_and_belly_only_true_colours(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("T2P_ROOT", str(tmp_path))
    shutil.copytree(REPO / "params", tmp_path / "params")
    from t2p_utils.config import Paths
    from t2p_utils.core.manifest import read_manifest
    from t2p_utils.scrape.synthetic import make_synthetic

    paths = Paths.for_profile("smoke")
    make_synthetic(paths, n=24, size=64)
    df = read_manifest(paths.manifest)
    pairs = [(paths.root / c, paths.root / m) for c, m in zip(df["color"], df["mask"], strict=True)]
    results = caption_files(pairs, PaletteSettings(seed=3))
    for parts_json, res in zip(df["parts"], results, strict=True):
        parts = json.loads(parts_json)
        words = set(color_words(res.caption))
        assert {parts["body"], parts["belly"]} <= words, (parts, res.caption)
        assert words <= set(parts.values()), (parts, res.caption)
    # the same settings give the same captions (seeded k-means)
    assert [r.caption for r in caption_files(pairs[:4], PaletteSettings(seed=3))] == [r.caption for r in results[:4]]
    with pytest.raises(FileNotFoundError, match="missing"):
        caption_files([(tmp_path / "nope.png", pairs[0][1])])
