"""The drawing-size metrics against known answers, a fake that ignores its input, and noise; the drawings 05 makes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from t2p_utils.compare import metrics as M
from t2p_utils.compare.drawing import DrawingError, make_drawings
from t2p_utils.config import Paths
from t2p_utils.core import flat as F
from t2p_utils.core.manifest import write_manifest
from t2p_utils.scrape.synthetic import Creature, draw_creature, make_synthetic

REPO = Path(__file__).resolve().parents[1]
PARTS = {"body": "red", "belly": "yellow", "eyes": "blue", "ears": "green", "tail": "purple"}


@pytest.fixture(scope="module")
def creature() -> tuple[Image.Image, Image.Image, Image.Image]:
    return draw_creature(Creature("s000", "cat", PARTS), 256, np.random.default_rng(0))


@pytest.fixture(scope="module")
def fakes(creature):
    """What the metrics must tell apart: the truth, noise, and one fixed image whatever the drawing (another
    creature's colours: flat and plausible, but not this drawing's)."""
    color, line, mask = creature
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8))
    other = Creature("s001", "cat", {"body": "blue", "belly": "pink", "eyes": "red", "ears": "orange"})
    ignoring, _, _ = draw_creature(other, 256, np.random.default_rng(7))
    return {"truth": color, "noise": noise, "ignoring": ignoring}


def test_region_purity_fails_noise_and_input_ignoring_colour(creature, fakes) -> None:
    color, line, mask = creature
    pur = {k: M.region_purity(v, line, mask) for k, v in fakes.items()}
    assert pur["truth"] == 1.0
    assert pur["noise"] < 0.05
    assert pur["ignoring"] < 0.7  # its colours straddle this drawing's strokes
    assert M.region_purity(np.full((256, 256, 3), 255, np.uint8), line, mask) == 1.0  # uniform is pure (not faithful)


def test_line_fidelity_and_leakage_at_the_drawing_size(creature, fakes) -> None:
    color, line, mask = creature
    fid = {k: M.line_preservation(v, line, 35.0) for k, v in fakes.items()}
    leak = {k: M.background_leakage(v, mask) for k, v in fakes.items()}
    assert fid["truth"] == 1.0 and leak["truth"] == 0.0
    assert fid["noise"] < 0.3 and leak["noise"] > 0.9
    assert fid["ignoring"] < 0.5  # the other creature's outlines lie elsewhere
    # the raw model output enlarged: a blurred 64 px image loses most of the 256 px strokes
    blurred = color.resize((64, 64), Image.Resampling.BOX).resize((256, 256), Image.Resampling.BICUBIC)
    assert M.line_preservation(blurred, line, 35.0) < 0.9


def test_flat_fill_keeps_lines_and_background_but_faithfulness_still_catches_an_input_ignoring_model(
        creature, fakes) -> None:
    """Flat filling guarantees line fidelity and no leakage by construction, so those cannot judge the model: ΔE2000
    and SSIM against the truth (and colour control) do. A fake that ignores the drawing gets the strokes right and the
    colours wrong."""
    color, line, mask = creature
    small = {k: v.resize((64, 64), Image.Resampling.BOX) for k, v in fakes.items()}
    filled = {k: F.flat_fill(line, v, mask).composite for k, v in small.items()}
    for k, img in filled.items():
        assert M.line_preservation(img, line, 35.0) == 1.0, k
        assert M.background_leakage(img, mask) == 0.0, k
    de = {k: M.delta_e_in_mask(img, color, mask) for k, img in filled.items()}
    ss = {k: M.ssim(img, color) for k, img in filled.items()}
    assert de["truth"] < 3.0 and ss["truth"] > 0.95
    assert de["ignoring"] > 15.0 and de["noise"] > 15.0
    assert ss["truth"] > ss["ignoring"] and ss["truth"] > ss["noise"]


def test_region_purity_needs_judgeable_regions() -> None:
    line = np.full((64, 64, 3), 255, np.uint8)
    line[10:54, 10:12] = 0
    line[10:54, 52:54] = 0
    line[10:12, 10:54] = 0
    line[52:54, 10:54] = 0
    out = np.full((64, 64, 3), 255, np.uint8)
    out[:, :32] = (220, 30, 40)
    out[:, 32:] = (40, 90, 220)
    assert M.region_purity(out, line) == 0.0  # one region, half red half blue
    out[:, :] = (220, 30, 40)
    assert M.region_purity(out, line) == 1.0
    assert np.isnan(M.region_purity(out, line, min_pixels=10_000))


# ---------------------------------------------------------------------------------------------
def test_synthetic_drawings_are_redrawn_at_their_size_and_reused(tmp_path: Path) -> None:
    shutil.copytree(REPO / "params", tmp_path / "params")
    paths = Paths.for_profile("smoke", tmp_path)
    make_synthetic(paths, n=20, size=64, seed=42)
    files = make_drawings(paths, ["s018", "s019"], 256, seed=42)
    f = files["s019"]
    assert Image.open(f.lineart).size == (256, 256) and Image.open(f.color).size == (256, 256)
    # the same creature as 01's 64 px images: its 256 px mask brought down matches the 64 px mask
    small = np.asarray(Image.open(f.mask).resize((64, 64), Image.Resampling.BOX)) >= 128
    at64 = np.asarray(Image.open(paths.image("mask", "s019"))) >= 128
    assert (small & at64).sum() / (small | at64).sum() > 0.9
    mtime = f.lineart.stat().st_mtime_ns
    again = make_drawings(paths, ["s019"], 256, seed=42)
    assert again["s019"] == f and f.lineart.stat().st_mtime_ns == mtime  # up to date: not redrawn
    make_drawings(paths, ["s019"], 256, seed=7)  # another seed draws another creature
    assert f.lineart.stat().st_mtime_ns != mtime


SVG = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">
<circle cx="50" cy="50" r="40" fill="#e03030"/>
<circle cx="50" cy="50" r="40" fill="none" stroke="#0d131a" stroke-width="3"/>
<circle cx="50" cy="62" r="15" fill="#f0e040" stroke="#0d131a" stroke-width="3"/>
</svg>"""


def test_sprites_are_rendered_again_from_their_svg(tmp_path: Path) -> None:
    shutil.copytree(REPO / "params", tmp_path / "params")
    paths = Paths.for_profile("cpu", tmp_path)
    svg = paths.raw / "dream-world" / "7.svg"
    svg.parent.mkdir(parents=True)
    svg.write_text(SVG)
    row = {"id": "7", "name": "x", "split": "test", "source": "npm", "source_path": str(svg.relative_to(tmp_path)),
           "sha256": "abc", "color": "c.png", "lineart": "l.png", "mask": "m.png", "status": "ok", "error": "",
           "lineart_ok": True}
    write_manifest([row], paths.manifest)
    f = make_drawings(paths, ["7"], 200, seed=0)["7"]
    line = np.asarray(Image.open(f.lineart).convert("RGB"))
    color = np.asarray(Image.open(f.color).convert("RGB"))
    assert line.shape == (200, 200, 3)
    assert (line[100, 100] > 240).all() and color[60, 100, 0] > 180 and color[60, 100, 2] < 90  # white vs red
    res = F.flat_fill(line, np.asarray(Image.fromarray(color).resize((64, 64))), Image.open(f.mask))
    assert res.ok and len([i for i in range(1, res.regions.n + 1) if not res.regions.background[i]]) == 2
    svg.unlink()
    os.utime(paths.manifest)
    write_manifest([{**row, "sha256": "changed"}], paths.manifest)
    with pytest.raises(DrawingError, match=r"7\.svg.*re-run notebooks/01_scrape"):
        make_drawings(paths, ["7"], 200, seed=0)


def test_an_unknown_id_names_the_manifest(tmp_path: Path) -> None:
    shutil.copytree(REPO / "params", tmp_path / "params")
    paths = Paths.for_profile("smoke", tmp_path)
    make_synthetic(paths, n=20, size=64, seed=42)
    with pytest.raises(DrawingError, match="manifest.csv"):
        make_drawings(paths, ["nope"], 128, seed=42)
