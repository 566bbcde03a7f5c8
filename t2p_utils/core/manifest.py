"""The manifest: one row per source image, with its split, output paths and status."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from t2p_utils.core.io import atomic_path

MANIFEST_COLUMNS: tuple[str, ...] = (
    "id",  # sprite id, e.g. "25" or "201-a" (synthetic: "s007")
    "name",  # species name where known
    "split",  # train / val / test ("" when the row failed)
    "source",  # npm / http / kaggle / synthetic
    "source_path",  # where the source file came from (path inside the tarball, URL, file)
    "sha256",  # of the source file's bytes
    "color",  # output paths, relative to the repo root
    "lineart",
    "mask",
    "status",  # ok / skipped / error
    "error",  # why, when not ok
    "lineart_ok",  # the outline extraction found near-black outline paths
)


def write_manifest(rows: Iterable[Mapping[str, Any]], path: Path) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    for col in MANIFEST_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    extra = [c for c in df.columns if c not in MANIFEST_COLUMNS]
    df = df[list(MANIFEST_COLUMNS) + extra]
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return df


def read_manifest(path: Path, ok_only: bool = True) -> pd.DataFrame:
    """Read a manifest; ``ok_only`` keeps the rows whose images were written."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run notebooks/01_scrape.ipynb (or ./run_all.sh) first")
    df = pd.read_csv(path, dtype={"id": str, "split": str}, keep_default_na=False)
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}: re-run 01_scrape with force=True to rebuild it")
    if ok_only:
        df = df[df["status"] == "ok"].reset_index(drop=True)
    return df


def ids_in_split(df: pd.DataFrame, split: str) -> list[str]:
    return df.loc[df["split"] == split, "id"].tolist()
