"""The reference CSV (hand-written captions and test instructions) and the caption-to-instruction rule."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from t2p_utils.core.io import atomic_open

REFERENCE_COLUMNS = ("id", "split", "caption", "faithful", "counterfactual")
CAPTION_COLUMNS = ("id", "caption", "instruction")


def to_instruction(caption: str) -> str:
    """The seed's rule: every caption becomes ``"Turn it into " + caption``."""
    caption = caption.strip()
    if not caption:
        raise ValueError("empty caption: cannot build an instruction from it")
    return "Turn it into " + caption


def write_reference_csv(rows: Iterable[Mapping[str, Any]], path: Path, provenance: str,
                        columns: Iterable[str] = REFERENCE_COLUMNS) -> None:
    """Write reference captions with ``#`` comment lines that say who wrote them and how."""
    df = pd.DataFrame(list(rows), columns=list(columns))
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        for line in provenance.strip().splitlines():
            fh.write(f"# {line}\n")
        df.to_csv(fh, index=False)


def read_reference_csv(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: for smoke run 01_scrape; for cpu/full it is committed in git")
    df = pd.read_csv(path, comment="#", dtype=str, keep_default_na=False)
    missing = [c for c in REFERENCE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}; expected {list(REFERENCE_COLUMNS)}")
    return df
