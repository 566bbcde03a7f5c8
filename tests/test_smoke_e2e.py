"""The whole ``smoke`` profile end to end: ``./run_all.sh smoke`` in a copy of the repository.

Runs the real notebooks through papermill with the environment this test runs in, then checks
the files each step must leave and the report; a second run must resume with nothing to do.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from t2p_utils.runner.pipeline import STEPS

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.smoke


def _copy_worktree(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for f in files:
        src = REPO / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)


def run_env() -> dict[str, str]:
    """The environment for ``./run_all.sh`` in a copy: this test's Python env, used as it is (no reinstall that would
    point its editable install at the copy), the copy's own root."""
    env = {**os.environ, "VIRTUAL_ENV": sys.prefix, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "T2P_SKIP_INSTALL": "1"}
    env.pop("T2P_ROOT", None)
    return env


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("study")
    _copy_worktree(root)
    env = run_env()
    proc = subprocess.run(["./run_all.sh", "smoke"], cwd=root, env=env, capture_output=True, text=True, check=False, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    (root / "first_run.log").write_text(proc.stdout + proc.stderr)
    return root


def test_every_step_ran_and_left_its_files(smoke_run: Path) -> None:
    state = json.loads((smoke_run / "reports/smoke/steps.json").read_text())
    assert [s["name"] for s in state["steps"]] == list(STEPS)
    assert all(s["status"] == "ok" for s in state["steps"])
    manifest = pd.read_csv(smoke_run / "data/processed/smoke/manifest.csv", dtype=str)
    assert len(manifest) == 48 and (manifest["status"] == "ok").all()
    for source in ("cnn_lstm", "clip"):
        caps = pd.read_csv(smoke_run / f"data/captions/smoke/{source}.csv", dtype=str, keep_default_na=False)
        assert set(caps["id"]) >= set(manifest.loc[manifest["split"] == "train", "id"])
        assert caps["instruction"].str.startswith("Turn it into ").all()
        meta = smoke_run / f"data/instructions/smoke/{source}/metadata.jsonl"
        rows = [json.loads(line) for line in meta.read_text().splitlines()]
        assert rows and {"input_image_file_name", "edit_prompt", "edited_image_file_name"} <= set(rows[0])
        model = smoke_run / f"models/smoke/ip2p_{source}"
        assert (model / "model_index.json").exists() and (model / "unet").is_dir()


def test_metrics_cover_every_model_and_metric(smoke_run: Path) -> None:
    metrics = json.loads((smoke_run / "reports/smoke/metrics.json").read_text())
    models = [m for m in metrics if m.startswith("ip2p_")]
    assert {"ip2p_cnn_lstm", "ip2p_clip"} <= set(models)
    expected = {"psnr", "ssim", "delta_e", "leakage", "line_preservation", "adherence"}
    for m in models:
        faithful = metrics[m]["raw"]["faithful"]
        assert expected <= set(faithful), (m, sorted(faithful))
        for name, stats in faithful.items():
            mean = float(stats["mean"])
            assert stats["n"] >= 1 and (math.isnan(mean) or float(stats["ci_low"]) <= mean <= float(stats["ci_high"])), (m, name)
        assert "protected" in metrics[m]
    # the palette stand-in is named as such
    assert any("palette" in s for s in metrics["ip2p_clip"]["stand_in"])
    # colour control, per template and overall, for every model; a value in [-1, 1] inside its interval
    for m in models:
        for template in ("control:body", "control:part", "control:all"):
            stats = metrics[m]["raw"][template]["color_control"]
            mean = float(stats["mean"])
            assert -1.0 <= float(stats["ci_low"]) <= mean <= float(stats["ci_high"]) <= 1.0, (m, template, stats)
            assert stats["n"] >= 1


#: 05's headline numbers as the notebook records them (t2p_utils.compare.record), spelled out here on their own:
#: name prefix -> the metrics.csv row (metric, variant, prompt) it must equal
HEADLINE_ROWS = {
    "control": ("color_control", "raw", "control:all"),  # colour control, the training template's phrasings
    "control_heldout": ("color_control", "raw", "control:heldout"),  # phrasings no training caption used
    "binding": ("binding", "raw", "binding:all"),
    "flat_line_fidelity": ("line_preservation", "flat", "faithful"),  # the drawing coloured flat at its size
}


def test_05_records_its_headline_numbers_in_the_executed_notebook(smoke_run: Path) -> None:
    from t2p_utils.compare.record import recorded

    got = recorded(smoke_run / "reports/smoke/notebooks/05_compare.ipynb")
    metrics = pd.read_csv(smoke_run / "reports/smoke/metrics.csv")
    models = list(dict.fromkeys(metrics["model"]))
    assert {"ip2p_cnn_lstm", "ip2p_clip"} <= set(models)
    assert set(got) == {f"{kind}:{m}" for kind in HEADLINE_ROWS for m in models}, sorted(got)
    for m in models:
        for kind, (metric, variant, prompt) in HEADLINE_ROWS.items():
            name = f"{kind}:{m}"
            row = metrics[(metrics["model"] == m) & (metrics["variant"] == variant) & (metrics["prompt"] == prompt)
                          & (metrics["metric"] == metric)]
            assert len(row) == 1, (name, len(row))
            value, want = got[name], float(row["mean"].iloc[0])
            # every smoke model has a drawing-size flat variant and ground truth: all four are computed
            assert isinstance(value, float) and math.isfinite(value) and math.isfinite(want), (name, value, want)
            assert abs(value - want) <= 1e-9, (name, value, want)
            assert (0.0 <= value <= 1.0) if kind == "flat_line_fidelity" else (-1.0 <= value <= 1.0), (name, value)


def test_recoloured_pairs_are_captioned_by_their_own_captioner(smoke_run: Path) -> None:
    for source in ("cnn_lstm", "clip"):
        folder = smoke_run / f"data/instructions/smoke/{source}"
        rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
        aug = [r for r in rows if r.get("augmentation")]
        assert aug and all((folder / r["edited_image_file_name"]).exists() for r in aug)
        originals = {r["input_image_file_name"] for r in rows if not r.get("augmentation")}
        assert {r["input_image_file_name"] for r in aug} <= originals
        assert all(r["caption_source"] != "reference" for r in aug)
    control = pd.read_csv(smoke_run / "reports/smoke/control.csv", dtype={"id": str})
    assert set(control["asked"]) == {"red", "blue", "green", "yellow", "purple"}
    assert (smoke_run / "reports/smoke/figures/ladder_body.png").exists()


def test_report_links_and_images_resolve(smoke_run: Path) -> None:
    from t2p_utils.compare.report import check_links

    index = smoke_run / "reports/smoke/index.html"
    html = index.read_text()
    assert check_links(index) == []
    for step in STEPS:
        assert f"notebooks/{step}.html" in html
    assert html.count("<img") >= 3 and "smoke" in html


def test_second_run_resumes_with_nothing_to_do(smoke_run: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in (smoke_run / "reports/smoke/notebooks").glob("*.ipynb")}
    env = run_env()
    proc = subprocess.run(["./run_all.sh", "smoke"], cwd=smoke_run, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert proc.stderr.count("done earlier") == len(STEPS)


def test_evaluate_only_scores_the_smoke_models_on_a_test_only_kaggle_folder(smoke_run: Path) -> None:
    from owndata import write_kaggle

    write_kaggle(smoke_run / "sketches", test=5, odd=True)  # testA/ testB/ only, one of them 255x256
    (smoke_run / "kaggle_eval.yaml").write_text(
        "extends: smoke\nscrape: {source: kaggle, kaggle_dir: sketches}\ncompare: {models_from: smoke}\n")
    env = run_env()
    before = (smoke_run / "models/smoke/ip2p_clip/unet/diffusion_pytorch_model.safetensors").stat().st_mtime_ns
    proc = subprocess.run(["./run_all.sh", "--params", "kaggle_eval.yaml"], cwd=smoke_run, env=env,
                          capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    steps = {s["name"]: s for s in json.loads((smoke_run / "reports/kaggle_eval/steps.json").read_text())["steps"]}
    assert [steps[s]["status"] for s in STEPS] == ["ok", "skipped", "skipped", "skipped", "ok"]
    assert "models_from is 'smoke'" in steps["04_finetune"]["error"]
    assert not (smoke_run / "models/kaggle_eval").exists()
    assert (smoke_run / "models/smoke/ip2p_clip/unet/diffusion_pytorch_model.safetensors").stat().st_mtime_ns == before
    summary = json.loads((smoke_run / "reports/kaggle_eval/compare_summary.json").read_text())
    assert summary["models_from"] == "smoke" and summary["models_dir"] == "models/smoke"
    assert summary["test_ids"] == [f"test-{j}" for j in range(5)]
    control = pd.read_csv(smoke_run / "reports/kaggle_eval/control.csv", dtype={"id": str})
    assert set(control["id"]) == set(summary["test_ids"]) and set(control["model"]) == {"ip2p_cnn_lstm", "ip2p_clip"}
    index = (smoke_run / "reports/kaggle_eval/index.html").read_text()
    assert "Evaluate-only" in index and "skipped" in index
