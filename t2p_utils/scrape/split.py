"""Deterministic train/val/test split, grouped by evolutionary family.

No relative of a test character (same family in ``data/families.csv``, built from the
``@pkmn/dex`` prevo/evo data by ``scripts/build_families.sh``) may be in train or
validation, so whole families are assigned to one split. Families are ordered by a
seeded hash and filled into test, then validation, until each holds its share of images;
the rest is training. Fixed in code; never tuned on test results.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Family:
    dex: int
    name: str
    family_id: int
    family_root: str


def load_families(path: Path) -> dict[int, Family]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: it is committed in git; regenerate it with scripts/build_families.sh")
    df = pd.read_csv(path, comment="#")
    return {int(r.dex): Family(int(r.dex), str(r.name), int(r.family_id), str(r.family_root)) for r in df.itertuples()}


def family_key(sprite_id: str, families: dict[int, Family]) -> str:
    """The group of a sprite id: its family root's dex number; forms ("201-a") join their base."""
    head = sprite_id.split("-", 1)[0]
    if head.isdigit() and int(head) in families:
        return f"family:{families[int(head)].family_id}"
    return f"id:{sprite_id}"


def assign_splits(ids: list[str], ok: list[bool], families: dict[int, Family], *, val_frac: float = 0.1,
                  test_frac: float = 0.1, seed: int = 42) -> list[str]:
    """Split labels for ``ids`` ("" where ``ok`` is False), whole families at a time."""
    groups: dict[str, list[int]] = defaultdict(list)
    for idx, (i, good) in enumerate(zip(ids, ok)):
        if good:
            groups[family_key(i, families)].append(idx)
    order = sorted(groups, key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest())
    total = sum(len(v) for v in groups.values())
    labels = [""] * len(ids)
    n_test = n_val = 0
    for g in order:
        members = groups[g]
        if n_test < test_frac * total:
            split, n_test = "test", n_test + len(members)
        elif n_val < val_frac * total:
            split, n_val = "val", n_val + len(members)
        else:
            split = "train"
        for idx in members:
            labels[idx] = split
    return labels


def family_crossings(manifest: pd.DataFrame, families: dict[int, Family]) -> list[str]:
    """Families found in more than one split (should be empty)."""
    ok = manifest[manifest["split"] != ""]
    seen = ok.groupby(ok["id"].map(lambda i: family_key(str(i), families)))["split"].nunique()
    return sorted(seen[seen > 1].index)
