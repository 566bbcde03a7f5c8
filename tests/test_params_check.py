"""A params file is checked whole before step 01 starts (issue 23).

``./run_all.sh my.yaml`` builds every step's config (types, unknown keys, ranges, paths that must exist) before any
step runs and stops with one line per problem naming the file, the section, the key, the value and the valid range;
nothing under data/, models/ or reports/ is written. The runner's check imports no torch, so a bad file is reported
within 2 s of typing the command (Python's start-up included).
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from t2p_utils.config import ConfigError
from t2p_utils.config.study import load_study

REPO = Path(__file__).resolve().parents[1]

#: one mistake of each class, in a user params file that extends smoke (tiny scratch models: resolution % 8)
MISTAKES = {
    "wrong type": ({"train": {"max_train_steps": "ten"}}, "train", "max_train_steps",
                   "key 'max_train_steps' must be int, got 'ten'"),
    "misspelt key": ({"train": {"max_train_step": 10}}, "train", "max_train_step",
                     "unknown key 'max_train_step' (did you mean 'max_train_steps'?)"),
    "negative learning rate": ({"train": {"learning_rate": -1}}, "train", "learning_rate",
                               "key 'learning_rate' must be > 0, got -1"),
    "probability out of [0, 1]": ({"scrape": {"val_frac": 1.5}}, "scrape", "val_frac",
                                  "key 'val_frac' must be in [0, 1], got 1.5"),
    "resolution not a multiple": ({"train": {"resolution": 60}}, "train", "resolution",
                                  "key 'resolution' must be a multiple of 8"),
    "misspelt compare key": ({"compare": {"stepz": 3}}, "compare", "stepz", "unknown key 'stepz' (did you mean 'steps'?)"),
}


def _write(root: Path, name: str, body: dict) -> Path:
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"extends": "smoke", **body}), encoding="utf-8")
    return path


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for d in ("data", "models", "reports") for p in (root / d).rglob("*"))


def _run_cli(root: Path, params: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "T2P_ROOT": str(root), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "t2p_utils.runner.pipeline", "run", str(params)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    return proc, time.perf_counter() - t0


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_bad_params_file_stops_the_run_at_once_naming_file_section_and_key(tmp_root: Path, mistake: str) -> None:
    body, sec, key, says = MISTAKES[mistake]
    params = _write(tmp_root, "bad", body)
    before = _tree(tmp_root)
    proc, seconds = _run_cli(tmp_root, params)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if key in ln]
    assert len(lines) == 1, proc.stderr  # one line for the one problem
    assert f"{params} [{sec}]: " in lines[0] and says in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and "01_scrape" not in proc.stderr + proc.stdout
    assert _tree(tmp_root) == before  # nothing under data/, models/ or reports/
    assert seconds < 2.0, f"{seconds:.2f} s to report {mistake}"


def test_every_problem_of_every_section_is_reported_together(tmp_root: Path) -> None:
    body = {"seed": "one",
            "scrape": {"val_frac": -0.1, "workers": 0},
            "captions": {"lr": 0, "palette_min_share": 2, "epochz": 3},
            "train": {"max_train_steps": "ten", "learning_rate": -1, "adam_beta2": 1.0, "sources": "clip"},
            "compare": {"steps": "4", "stepz": 3}}
    params = _write(tmp_root, "many", body)
    with pytest.raises(ConfigError) as err:
        load_study(str(params))
    lines = str(err.value).splitlines()
    assert lines[0] == f"{params}: top-level key 'seed' must be int, got 'one'"  # once, not once per section
    expected = [("scrape", "val_frac"), ("scrape", "workers"), ("captions", "'lr'"),
                ("captions", "palette_min_share"), ("captions", "epochz"), ("train", "max_train_steps"),
                ("train", "learning_rate"), ("train", "adam_beta2"), ("train", "'sources' must be a list of str"),
                ("compare", "'steps' must be int"), ("compare", "stepz")]
    for sec, what in expected:
        assert any(f"[{sec}]" in ln and what in ln for ln in lines), (sec, what, lines)
    assert len(lines) == 1 + len(expected) and all(ln.startswith(f"{params} [") for ln in lines[1:]), lines
    assert err.value.problems == lines


def test_the_dataclasses_check_their_own_ranges_for_notebooks_that_build_them() -> None:
    from t2p_utils.config.train import TrainConfig

    with pytest.raises(ConfigError, match=r"\[train\]: key 'learning_rate' must be > 0, got -1\n.*'max_train_steps' "
                                          r"must be >= 1, got 0"):
        TrainConfig(learning_rate=-1, max_train_steps=0)
    # the model's factor: SD's VAE (8x) for pretrained models, VAE x UNet levels for scratch ones
    assert TrainConfig(resolution=264).resolution == 264
    with pytest.raises(ConfigError, match="'resolution' must be a multiple of 16 .*small.*got 72"):
        TrainConfig(model_source="scratch", arch="small", resolution=72)
    TrainConfig(model_source="scratch", arch="small", resolution=64)


def test_the_scratch_resolution_factor_is_the_models_own() -> None:
    """The light check's table agrees with the models it stands for (VAE downsampling x the UNet's levels)."""
    from t2p_utils.config.train import SCRATCH_UNET_DOWNSAMPLE, SCRATCH_VAE_DOWNSAMPLE, SPACE_TO_DEPTH_PATCH
    from t2p_utils.train import models as S

    assert set(SCRATCH_VAE_DOWNSAMPLE) == set(SCRATCH_UNET_DOWNSAMPLE) == set(S.ARCHS)
    for arch in S.ARCHS:
        assert SCRATCH_VAE_DOWNSAMPLE[arch] == S.vae_downsample(arch), arch
        assert SCRATCH_UNET_DOWNSAMPLE[arch] == 2 ** (len(S.unet_kwargs(arch, 8)["down_block_types"]) - 1), arch
    assert inspect.signature(S.space_to_depth_autoencoder).parameters["patch"].default == SPACE_TO_DEPTH_PATCH


def test_paths_that_must_exist_are_checked_before_the_run(tmp_root: Path) -> None:
    params = _write(tmp_root, "mine", {"scrape": {"source": "folder", "folder_dir": "no_such_folder"},
                                        "captions": {"reference_file": "nope.csv"}})
    study = load_study(str(params))  # the notebooks, after 01 has read them, do not need them any more
    problems = study.problems(check_paths=True)
    assert len(problems) == 2, problems
    assert f"{params} [scrape]: key 'folder_dir' must name an existing folder, got 'no_such_folder'" in problems[0]
    assert f"{params} [captions]: key 'reference_file' must name an existing file, got 'nope.csv'" in problems[1]
    (tmp_root / "no_such_folder").mkdir()
    (tmp_root / "nope.csv").write_text("id,caption\n")
    assert study.problems(check_paths=True) == []


@pytest.mark.parametrize("profile", ["smoke", "cpu", "full"])
def test_the_committed_profiles_pass_the_check(profile: str) -> None:
    assert load_study(profile).problems(check_paths=True) == []


def test_the_check_builds_every_section_without_torch(tmp_path: Path) -> None:
    """Every step's dataclass lives in t2p_utils.config: the whole check (compare's ranges too) imports no torch."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: smoke\ncompare:\n  steps: 0\n")
    code = ("import sys\nfrom t2p_utils.config import load_study\n"
            f"problems = load_study({str(bad)!r}, check=False).problems()\n"
            "print(problems)\nassert 'torch' not in sys.modules, 'the check imported torch'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    assert out.returncode == 0, out.stderr
    assert "[compare]" in out.stdout and "steps" in out.stdout
