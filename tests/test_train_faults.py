"""Issue 24 in the trainer: --force (and a broken file) trains the shared VAE again; a resumed run names its
checkpoint and its bar starts there. Tiny models on synthetic data (CPU, one thread)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

import pytest
from test_train import TINY, write_instructions

from t2p_utils.config import Paths
from t2p_utils.core.progress import PROGRESS_ENV
from t2p_utils.train import loop as T
from t2p_utils.train.checkpoints import file_problem

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture
def data(tmp_root: Path) -> Paths:
    from t2p_utils.scrape.synthetic import make_synthetic

    paths = Paths.for_profile("smoke", tmp_root)
    make_synthetic(paths, n=12, size=64, seed=3)
    write_instructions(paths, "clip")
    return paths


def test_force_and_a_truncated_vae_train_the_shared_vae_again(
        data: Paths, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """2: ``force`` (./run_all.sh --force, --from 04_finetune) retrains the shared VAE, and a truncated one is trained
    again instead of failing, without force too; either way the models are then retrained on it."""
    paths, cfg = data, dataclasses.replace(T.TrainConfig(**TINY), sources=["clip"])
    calls: list[dict] = []

    def fake_train(cfg: T.TrainConfig, paths: Paths, source: str, **kw: object) -> Path:  # the UNets: not tested here
        calls.append({"source": source, **kw})
        paths.model(f"ip2p_{source}").mkdir(parents=True, exist_ok=True)
        return paths.model(f"ip2p_{source}")

    monkeypatch.setattr(T, "train", fake_train)
    weights = paths.model("vae") / "diffusion_pytorch_model.safetensors"
    caplog.set_level(logging.INFO, logger="t2p_utils.train")  # the loop's and the VAE's
    T.train_all(paths, cfg)
    first = weights.stat().st_mtime_ns
    assert calls[-1] == {"source": "clip", "resume_from_checkpoint": "latest", "force": False}
    T.train_all(paths, cfg)
    assert weights.stat().st_mtime_ns == first and "using the shared VAE" in caplog.text  # intact: reused

    T.train_all(paths, cfg, force=True)  # force: everything 04 makes
    assert weights.stat().st_mtime_ns != first and "training the shared VAE in" in caplog.text
    assert calls[-1] == {"source": "clip", "resume_from_checkpoint": None, "force": True}

    os.truncate(weights, weights.stat().st_size // 2)  # the case
    caplog.clear()
    T.train_all(paths, cfg)  # no force: it used to fail in AutoencoderKL.from_pretrained
    assert f"the VAE in {paths.model('vae')} is broken (diffusion_pytorch_model.safetensors does not open" in caplog.text
    assert file_problem(weights) is None
    assert calls[-1] == {"source": "clip", "resume_from_checkpoint": None, "force": True}  # models on the new VAE
    assert "retraining the models on it" in caplog.text


def test_a_resumed_run_names_its_checkpoint_and_its_bar_starts_there(data: Paths, tmp_path: Path) -> None:
    """5: ``resuming clip from checkpoint-2 of 4`` in the progress file (the runner shows phases as lines) and the
    bar's first event at 2 of 4, not 0 of 2."""
    cfg = T.TrainConfig(**TINY)
    T.train(cfg, data, "clip", stop_after=2)  # checkpoint-2, then "killed"
    progress = tmp_path / "04.jsonl"
    os.environ[PROGRESS_ENV] = str(progress)
    try:
        T.train(cfg, data, "clip", resume_from_checkpoint="latest")
    finally:
        os.environ.pop(PROGRESS_ENV)
    events = [json.loads(line) for line in progress.read_text().splitlines()]
    phases = [e["desc"] for e in events if e["event"] == "phase"]
    assert "resuming clip from checkpoint-2 of 4" in phases
    bar = [e for e in events if e.get("desc") == "train clip"]
    assert (bar[0]["event"], bar[0]["n"], bar[0]["total"]) == ("start", 2, 4)
    assert (bar[-1]["event"], bar[-1]["n"]) == ("end", 4)


def test_a_worker_whose_parent_is_gone_exits_also_without_prctl(tmp_path: Path) -> None:
    """1, the fallback where PR_SET_PDEATHSIG does not exist (not Linux): the watchdog thread ends the worker once
    its parent pid changes. A parent starts a "worker" (prctl skipped) and exits; the worker must be gone in 3 s."""
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "worker.pid"
    worker = ("import os, sys, time\nfrom t2p_utils.train.loop import _die_with_parent\n"
              "sys.platform = 'darwin'  # no prctl: only the watchdog\n_die_with_parent(os.getppid())\n"
              f"open({str(pid_file)!r} + '.part', 'w').write(str(os.getpid()))\n"
              f"os.replace({str(pid_file)!r} + '.part', {str(pid_file)!r})\ntime.sleep(60)\n")
    parent = (f"import subprocess, sys, time, os\nw = subprocess.Popen([sys.executable, '-c', {worker!r}])\n"
              f"while not os.path.exists({str(pid_file)!r}) and w.poll() is None: time.sleep(0.05)\n"
              "sys.exit(w.poll() or 0)\n")  # then exits, the worker orphaned
    subprocess.run([sys.executable, "-c", parent], check=True, timeout=120)
    pid = int(pid_file.read_text())
    t0 = time.time()
    while time.time() - t0 < 3:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            break
        if state == "Z":
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        pytest.fail(f"worker {pid} outlived its parent")
