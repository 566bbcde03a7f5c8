"""Your own characters end to end: ``./run_all.sh my.yaml`` over a plain folder, 01 -> 05 through papermill.

The folder holds synthetic creatures saved as users keep images (transparent PNG line art, some
not square, JPEG colour images, two characters with line art only, one colour photo put among the
line art by mistake). The params file is a dozen lines that extend ``smoke``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from owndata import creature, write_folder
from test_smoke_e2e import _copy_worktree, run_env

from t2p_utils.core.colors import color_words
from t2p_utils.runner.pipeline import STEPS

pytestmark = pytest.mark.smoke

PARAMS = """\
# my characters: line art in chars/lineart/, colour versions (same file names) in chars/color/
profile: mychars
extends: smoke          # tiny models; use cpu for the real small-scale study
seed: 3
scrape:
  source: folder
  folder_dir: chars     # relative to this file
  test_frac: 0.15
compare:
  showcase: 3
  sweep_image_guidance: [1.5]
  sweep_text_guidance: [5.0]
"""


@pytest.fixture(scope="module")
def user_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("study")
    _copy_worktree(root)
    work = tmp_path_factory.mktemp("mine")  # the user's own folder, outside the repository
    write_folder(work / "chars", with_color=30, lineart_only=2)
    creature(77)[1].save(work / "chars" / "lineart" / "photo.png")
    (work / "my.yaml").write_text(PARAMS, encoding="utf-8")
    proc = subprocess.run([str(root / "run_all.sh"), "my.yaml"], cwd=work, env=run_env(), capture_output=True,
                          text=True, check=False, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    (root / "user_run.log").write_text(proc.stdout + proc.stderr)
    return root


def test_every_step_ran_under_the_users_profile_name(user_run: Path) -> None:
    state = json.loads((user_run / "reports/mychars/steps.json").read_text())
    assert [s["name"] for s in state["steps"]] == list(STEPS)
    assert all(s["status"] == "ok" for s in state["steps"])
    for folder in ("data/processed/mychars", "models/mychars/ip2p_clip", "reports/mychars/index.html"):
        assert (user_run / folder).exists(), folder
    assert not (user_run / "reports/smoke").exists()  # extends: smoke reads its settings, never writes its folders


def test_the_manifest_records_every_file(user_run: Path) -> None:
    m = pd.read_csv(user_run / "data/processed/mychars/manifest.csv", dtype=str, keep_default_na=False).set_index("id")
    assert m.at["photo", "status"] == "error" and "looks like a colour image" in m.at["photo", "error"]
    ok = m[m["status"] == "ok"]
    assert len(ok) == 32 and (ok.loc[["char_30", "char_31"], "split"] == "test").all()
    assert set(ok["split"]) == {"train", "val", "test"}


def test_derived_instructions_are_used_and_labelled(user_run: Path) -> None:
    ref = pd.read_csv(user_run / "data/processed/mychars/reference_captions.csv", comment="#", dtype=str,
                      keep_default_na=False).set_index("id")
    samples = pd.read_csv(user_run / "reports/mychars/compare_samples.csv", dtype=str, keep_default_na=False)
    cf = samples[samples["prompt"] == "counterfactual"]
    assert set(cf["id"]) >= {"char_30", "char_31"}  # line art without colour is scored on counterfactuals ...
    assert not set(samples.loc[samples["prompt"] == "faithful", "id"]) & {"char_30", "char_31"}  # ... not faithful
    for _, r in cf.iterrows():
        assert r["instruction"] == ref.at[r["id"], "counterfactual"] and color_words(r["instruction"])
    summary = json.loads((user_run / "reports/mychars/compare_summary.json").read_text())
    assert summary["derived_instructions"]["counterfactual"] == int((ref["split"] == "test").sum())
    assert summary["n_without_ground_truth"] == 2
    index = (user_run / "reports/mychars/index.html").read_text()
    assert "Derived, not hand-written" in index and "line art but no colour image" in index
    nb = (user_run / "reports/mychars/notebooks/01_scrape.html").read_text()
    assert "derived: seeded swap" in nb and "looks like a colour image" in nb


def test_instruction_folders_load_with_hugging_face_datasets(user_run: Path) -> None:
    datasets = pytest.importorskip("datasets")
    folder = user_run / "data/instructions/mychars/clip"
    ds = datasets.load_dataset("imagefolder", data_dir=str(folder), split="train")
    assert {"input_image", "edit_prompt", "edited_image"} <= set(ds.column_names)
    row = ds[0]
    assert row["input_image"].size == row["edited_image"].size == (64, 64)
    assert row["edit_prompt"].startswith("Turn it into ")
    lines = (folder / "metadata.jsonl").read_text().splitlines()
    assert len(ds) == len(lines)
