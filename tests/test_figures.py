"""Figures of 05_compare drawn from an oracle run on synthetic creatures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from test_evaluate import OracleBackend, fake_model, make_root

from t2p_utils.compare import figures as G
from t2p_utils.compare.run import CompareResult, run_compare
from t2p_utils.config import load_study
from t2p_utils.scrape.synthetic import SYNTH_COLORS


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, CompareResult, dict[str, Path]]:
    paths = make_root(tmp_path_factory.mktemp("figures"))
    for name in ("ip2p_cnn_lstm", "ip2p_clip"):
        fake_model(paths, name)
    cfg = load_study("smoke", paths.root).compare
    res = run_compare(paths, cfg, backend=OracleBackend(paths))
    return paths, res, G.make_all_figures(paths, res)


def _pixels_of(img: np.ndarray, rgb: tuple[int, int, int]) -> int:
    return int(np.all(img == np.array(rgb, dtype=np.uint8), axis=-1).sum())


def test_all_figures_written_under_reports(figures: Any) -> None:
    paths, _res, figs = figures
    assert set(figs) == {"grid_faithful", "grid_counterfactual", "grid_faithful_protected", "bars_faithful",
                         "bars_counterfactual", "sweep", "ladder_body", "ladder_part", "grid_faithful_flat",
                         "grid_counterfactual_flat", "ladder_body_flat", "ladder_part_flat", "ladder_body_heldout",
                         "ladder_body_heldout_flat", "ladder_part_heldout", "ladder_part_heldout_flat",
                         "ladder_binding", "ladder_binding_flat"}
    for p in figs.values():
        assert p.parent == paths.reports / "figures" and p.suffix == ".png"
        with Image.open(p) as im:
            assert im.format == "PNG" and im.width > 300 and im.height > 200


def test_seed_grid_shows_outputs_and_truth(figures: Any) -> None:
    paths, res, figs = figures
    grid = np.asarray(Image.open(figs["grid_faithful"]).convert("RGB"))
    # the oracle column and the ground-truth column both show each showcase creature's body colour
    body_colors = {c for c in SYNTH_COLORS.values()}
    assert sum(_pixels_of(grid, c) for c in body_colors) > 2000
    # one row per showcase character: 3 rows is shorter than a grid of 1 row per... compare with a 1-row grid
    one = G.seed_grid(paths, res, "faithful", ids=res.showcase[:1], out=paths.reports / "figures" / "one.png")
    assert Image.open(one).height < Image.open(figs["grid_faithful"]).height / 2


def test_protected_variant_grid_differs_only_when_outputs_leak(figures: Any) -> None:
    paths, res, _ = figures
    raw = G.seed_grid(paths, res, "faithful", "raw", out=paths.reports / "figures" / "r.png")
    prot = G.seed_grid(paths, res, "faithful", "protected", out=paths.reports / "figures" / "p.png")
    a, b = np.asarray(Image.open(raw)), np.asarray(Image.open(prot))
    assert a.shape == b.shape  # same layout; the oracle never leaks, so only the title differs
    assert np.mean(a != b) < 0.01


def test_wrap_limits_lines() -> None:
    text = "Turn it into a close up of a cartoon bird with a red head and white wings, style of pokemon, " * 3
    out = G.wrap(text, width=20, max_lines=4)
    lines = out.split("\n")
    assert len(lines) == 4 and all(len(ln) <= 20 for ln in lines) and lines[-1].endswith("…")
    assert G.wrap("palette stand-in", 10) == "palette\nstand-in"  # never split at the hyphen


def test_sweep_needs_a_sweep(figures: Any) -> None:
    paths, res, _ = figures
    empty = CompareResult(res.samples, res.metrics, res.paired, res.sweep.iloc[0:0], res.models, res.showcase, res.summary)
    with pytest.raises(ValueError, match="sweep is empty"):
        G.sweep_grid(paths, empty)
