"""index.html: content from the run's files, and every link and image resolves on disk."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_evaluate import OracleBackend, fake_model, make_root

from t2p_utils.compare import figures as G
from t2p_utils.compare import report as R
from t2p_utils.compare.run import load_result, run_compare
from t2p_utils.config import Paths, load_study
from t2p_utils.core.io import atomic_write_json

STEPS = [
    {"name": "01_scrape", "notebook_html": "notebooks/01_scrape.html", "seconds": 12.3, "status": "ok"},
    {"name": "05_compare", "notebook_html": "notebooks/05_compare.html", "seconds": 40.25, "status": "ok"},
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Paths, Path]:
    paths = make_root(tmp_path_factory.mktemp("report"))
    for name in ("ip2p_cnn_lstm", "ip2p_clip"):
        fake_model(paths, name)
    summary = {"source": "clip", "caption_stand_in": "palette captioner (offline stand-in for CLIP interrogation)"}
    atomic_write_json(summary, paths.model("ip2p_clip") / "train_summary.json")  # as t2p_utils.train.loop writes it
    res = run_compare(paths, load_study("smoke", paths.root).compare, backend=OracleBackend(paths))
    G.make_all_figures(paths, res)
    for s in STEPS:
        (paths.reports / s["notebook_html"]).parent.mkdir(parents=True, exist_ok=True)
        (paths.reports / s["notebook_html"]).write_text("<html>executed</html>")
    return paths, R.build_report(paths, STEPS)


def test_every_link_and_image_resolves(report: tuple[Paths, Path]) -> None:
    paths, index = report
    assert index == paths.reports / "index.html"
    assert R.check_links(index) == []
    text = index.read_text()
    # the part ladders lead, then the flat-coloured drawings (body ladder, faithful grid), then the ladders, then the
    # figures of before
    assert text.index("ladder_binding_flat.png") < text.index("ladder_binding.png") < text.index("ladder_body_flat.png")
    assert text.index("ladder_body_flat.png") < text.index("grid_faithful_flat.png") < text.index("ladder_body.png")
    assert "binding (the causal part-level test" in text and 'href="binding.csv"' in text
    assert text.index("binding (the causal") < text.index("what a user gets back") < text.index("colour control")
    assert text.count("<img ") == 18 and 'href="notebooks/05_compare.html"' in text
    assert text.index("ladder_body.png") < text.index("ladder_part.png") < text.index("grid_faithful_raw.png")
    assert "colour control" in text and 'href="control.csv"' in text
    assert str(paths.root) not in text  # relative links only, nothing machine-specific


def test_content_states_profile_stand_ins_times_and_numbers(report: tuple[Paths, Path]) -> None:
    paths, index = report
    text = index.read_text()
    assert "smoke profile" in text and "<code>unknown</code>" in text  # tmp root is not a git repo
    assert "52.5 s" in text  # 12.3 + 40.25
    assert "40.2" in text or "40.3" in text
    # the palette stand-in is listed once, from the model's train_summary.json, with the profile as a second source
    assert "palette captioner (offline stand-in for CLIP interrogation) <small>(profile smoke, models/smoke/ip2p_clip/" in text
    assert "palette captioner instead of CLIP" not in text
    assert "synthetic line-art creatures" in text and "trained from scratch" in text
    res = load_result(paths)
    de = res.metrics.set_index(["model", "variant", "prompt", "metric"]).loc[("ip2p_cnn_lstm", "raw", "faithful", "delta_e")]
    assert f"{de['mean']:.1f} [{de['ci_low']:.1f}, {de['ci_high']:.1f}]" in text
    assert "<style>" in text and "<script" not in text


def test_check_links_finds_broken_and_absolute(report: tuple[Paths, Path], tmp_path: Path) -> None:
    paths, _index = report
    copy = tmp_path / "site"
    shutil.copytree(paths.reports, copy)
    (copy / "figures" / "sweep.png").unlink()
    page = copy / "index.html"
    page.write_text(page.read_text().replace("</body>", '<a href="/etc/passwd">x</a><a href="https://x.org">y</a>'
                                             '<a href="#top">z</a><a href="notebooks/01_scrape.html#cell">c</a></body>'))
    broken = R.check_links(page)
    assert broken == ["figures/sweep.png", "figures/sweep.png", "/etc/passwd (not a relative link)"]


def test_report_before_compare(tmp_path: Path) -> None:
    paths = Paths.for_profile("cpu", root=tmp_path)
    index = R.build_report(paths, [{"name": "01_scrape", "seconds": None, "status": "error: no network"}])
    text = index.read_text()
    assert "05_compare has not run" in text and "no network" in text and 'class="fail"' in text
    assert "trained from scratch" in text  # the cpu profile's stand-ins, stated without any step output
    assert R.check_links(index) == []
