"""Shared fixtures: a throw-away repository root with the committed inputs copied in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tmp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``T2P_ROOT`` with ``params/`` and ``data/families.csv``, nothing generated."""
    shutil.copytree(REPO / "params", tmp_path / "params")
    (tmp_path / "data").mkdir()
    shutil.copy(REPO / "data" / "families.csv", tmp_path / "data" / "families.csv")
    monkeypatch.setenv("T2P_ROOT", str(tmp_path))
    return tmp_path


@pytest.fixture
def smoke_data(tmp_root: Path):
    """Synthetic smoke creatures written under ``tmp_root`` (48 at 64 px, seed 42)."""
    from t2p_utils.config import Paths
    from t2p_utils.scrape.synthetic import make_synthetic

    paths = Paths.for_profile("smoke", tmp_root)
    creatures = make_synthetic(paths, n=48, size=64, seed=42)
    return paths, creatures


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models are overhead-bound: one thread is as fast and avoids oversubscribing a busy machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
