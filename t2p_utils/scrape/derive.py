"""Captions and test instructions for data that has no hand-written ones (user profiles, step 01).

The study needs, per character, a reference caption (train / val: what the CNN-LSTM learns from)
and, per test character, a *faithful* instruction (its true colours) and a *counterfactual* one
(colours it does not have). The built-in profiles have them hand-written
(``data/captions/reference.csv``) or generated with the synthetic creatures. For a user profile,
:func:`prepare_references` writes ``paths.reference_captions`` from, in this order:

1. the user's own CSV (``captions.reference_file``: columns ``id`` and any of ``caption``,
   ``faithful``, ``counterfactual``), row by row;
2. the committed dream-world references, for ids that are dream-world sprites (``npm``/``http``);
3. derivation, for whatever is still empty, each cell labelled in ``<column>_origin``:
   - caption (train / val, with a colour image): the palette captioner on the colour image;
   - faithful (test, with a colour image): ``"Turn it into " +`` that palette caption, naming
     only colours that cover at least :data:`FAITHFUL_MIN_SHARE` of the character (outline excluded);
   - counterfactual (test): the same sentence with every colour swapped, seeded per id, to basic
     chromatic colours that cover less than :data:`ABSENT_MAX_SHARE` of the character; with no
     colour image, two seeded chromatic colours (nothing is known to be absent).
   A test character without a colour image gets no faithful instruction (there is no ground truth).
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from t2p_utils.config.captions import palette_settings
from t2p_utils.config.params import ConfigError, Paths
from t2p_utils.config.study import StudyConfig, load_study
from t2p_utils.core.colors import color_coverage
from t2p_utils.core.manifest import read_manifest
from t2p_utils.core.palette import PaletteColor, PaletteSettings, palette_caption_text, palette_colors
from t2p_utils.core.reference_csv import REFERENCE_COLUMNS, read_reference_csv, write_reference_csv

log = logging.getLogger(__name__)

#: a faithful instruction names only colours covering at least this share of the character (outline excluded)
FAITHFUL_MIN_SHARE = 0.03
#: a counterfactual instruction names only colours covering less than this share of the character
ABSENT_MAX_SHARE = 0.02
#: the colours a counterfactual swap may use (clear hues, easy to see and to score)
SWAP_COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "pink")
TEXT_COLUMNS: tuple[str, ...] = ("caption", "faithful", "counterfactual")
ORIGIN_COLUMNS: tuple[str, ...] = tuple(f"{c}_origin" for c in TEXT_COLUMNS)

FROM_USER = "your reference file"
FROM_COMMITTED = "hand-written (data/captions/reference.csv)"
DERIVED_CAPTION = "derived: palette captioner on the colour image"
DERIVED_FAITHFUL = "derived: palette colours of the colour image"
DERIVED_SWAP = "derived: seeded swap to basic colours the character lacks"
DERIVED_FREE = "derived: seeded basic colours (no colour image)"


def reference_file(paths: Paths, study: StudyConfig | None = None) -> Path | None:
    """``captions.reference_file`` as a path (relative to the params file's folder, else to the root)."""
    study = study if study is not None else load_study(paths.spec, paths.root, check=False)
    value = study.captions.reference_file
    return paths.user_path(str(value)) if value else None


def _read_user_csv(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise ConfigError(f"captions.reference_file {path} does not exist: fix the path in the params file or remove the key")
    df = pd.read_csv(path, comment="#", dtype=str, keep_default_na=False)
    if "id" not in df.columns or not set(TEXT_COLUMNS) & set(df.columns):
        raise ConfigError(f"{path} needs an id column and at least one of {', '.join(TEXT_COLUMNS)}; "
                          f"it has {', '.join(df.columns)}")
    return df


def _region(color: Path, mask: Path, lineart: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rgb = np.asarray(Image.open(color).convert("RGB"))
    m = np.asarray(Image.open(mask).convert("L")) > 127
    line = np.asarray(Image.open(lineart).convert("L"))
    return rgb, m, line


def _kept_colors(rgb: np.ndarray, mask: np.ndarray, line: np.ndarray, settings: PaletteSettings,
                 cover: dict[str, float]) -> list[PaletteColor]:
    """The palette captioner's colours that really cover the character (``cover``: pixel coverage per basic term,
    outline excluded; kept when >= FAITHFUL_MIN_SHARE)."""
    colors, _ = palette_colors(rgb, mask, settings, line)
    return [c for c in colors if cover.get(c.term, 0.0) >= FAITHFUL_MIN_SHARE]


def _swap(colors: list[PaletteColor], absent: list[str], rng: np.random.Generator) -> list[PaletteColor]:
    picks = list(rng.choice(absent, size=min(len(colors), len(absent)), replace=False)) if absent else []
    return [PaletteColor(str(t), c.share, c.vertical, c.radial, c.lab) for c, t in zip(colors, picks)]


def _instruction(colors: list[PaletteColor]) -> str:
    return "Turn it into " + palette_caption_text(colors) + "."


def derive_row(sid: str, split: str, files: dict[str, Path] | None, settings: PaletteSettings,
               seed: int) -> dict[str, str]:
    """Derived caption / faithful / counterfactual of one character (``files``: color, mask, lineart; None without
    a colour image). Deterministic in ``seed`` and the id."""
    rng = np.random.default_rng([seed, zlib.crc32(sid.encode())])
    out = dict.fromkeys(TEXT_COLUMNS, "") | dict.fromkeys(ORIGIN_COLUMNS, "")
    if files is None:
        if split == "test":
            colors = [PaletteColor(str(t), 0.5, v, "", (0.0, 0.0, 0.0))
                      for t, v in zip(rng.choice(SWAP_COLORS, size=2, replace=False), ("middle", "top"))]
            out["counterfactual"], out["counterfactual_origin"] = _instruction(colors), DERIVED_FREE
        return out
    rgb, mask, line = _region(files["color"], files["mask"], files["lineart"])
    cover = color_coverage(rgb, mask & (line >= settings.line_threshold))
    kept = _kept_colors(rgb, mask, line, settings, cover)
    if split in ("train", "val"):
        out["caption"], out["caption_origin"] = palette_caption_text(kept, settings.subject), DERIVED_CAPTION
    if split == "test":
        if kept:
            out["faithful"], out["faithful_origin"] = _instruction(kept), DERIVED_FAITHFUL
        absent = [t for t in SWAP_COLORS if cover.get(t, 0.0) < ABSENT_MAX_SHARE]
        swapped = _swap(kept or [PaletteColor("white", 1.0, "middle", "", (0.0, 0.0, 0.0))], absent, rng)
        if swapped:
            out["counterfactual"], out["counterfactual_origin"] = _instruction(swapped), DERIVED_SWAP
    return out


def prepare_references(paths: Paths) -> pd.DataFrame:
    """Write ``paths.reference_captions`` for a user profile (see the module docstring); a summary table.

    Built-in profiles keep theirs (hand-written or synthetic) and get the same summary of it.
    """
    study = load_study(paths.spec, paths.root, check=False)
    manifest = read_manifest(paths.manifest)
    if paths.is_user:
        _write(paths, study, manifest)
    return reference_summary(paths)


def _write(paths: Paths, study: StudyConfig, manifest: pd.DataFrame) -> None:
    from t2p_utils.core.progress import tqdm

    settings = palette_settings(study.captions)
    seed = study.seed or 0
    given: dict[str, dict[str, str]] = {}
    user = reference_file(paths, study)
    sources: list[tuple[pd.DataFrame, str]] = []
    if user is not None:
        sources.append((_read_user_csv(user), FROM_USER))
    if paths.committed_references.exists() and set(manifest["source"]) & {"npm", "http"}:
        sources.append((read_reference_csv(paths.committed_references), FROM_COMMITTED))
    unknown: list[str] = []
    ids = set(manifest["id"])
    for df, origin in sources:
        for r in df.to_dict("records"):
            sid = str(r["id"])
            if sid not in ids:
                if origin == FROM_USER:
                    unknown.append(sid)
                continue
            row = given.setdefault(sid, {})
            for col in TEXT_COLUMNS:
                text = str(r.get(col) or "").strip()
                if text and not row.get(col):
                    row[col], row[f"{col}_origin"] = text, origin
    if unknown:
        log.warning("%s: %d id(s) not in %s were ignored, e.g. %s", user, len(unknown), paths.manifest, unknown[:5])
    rows = []
    for r in tqdm(list(manifest.itertuples()), desc="derive", disable=len(manifest) < 50):
        have = given.get(r.id, {})
        needs = ({"caption"} if r.split in ("train", "val") else {"faithful", "counterfactual"}) - {
            c for c in TEXT_COLUMNS if have.get(c)}
        derived: dict[str, str] = {}
        if needs:
            files = ({k: paths.root / getattr(r, k) for k in ("color", "mask", "lineart")} if str(r.color) else None)
            derived = derive_row(r.id, r.split, files, settings, seed)
        row = {"id": r.id, "split": r.split}
        for col in TEXT_COLUMNS:
            keep = bool(have.get(col))
            row[col] = have[col] if keep else derived.get(col, "")
            row[f"{col}_origin"] = have.get(f"{col}_origin", "") if keep else derived.get(f"{col}_origin", "")
        rows.append(row)
    table = pd.DataFrame(rows, columns=["id", "split", *TEXT_COLUMNS, *ORIGIN_COLUMNS])
    write_reference_csv(
        table.to_dict("records"), paths.reference_captions,
        provenance=(f"captions and test instructions of user profile {paths.profile!r}, written by t2p_utils.scrape.derive "
                    f"(step 01) from {user or 'no reference file'}; <column>_origin says where each cell came from: "
                    f"{FROM_USER}, {FROM_COMMITTED}, or derived (palette colours of the colour image; counterfactuals "
                    f"swap to basic colours covering < {ABSENT_MAX_SHARE:.0%} of the character)"),
        columns=[*REFERENCE_COLUMNS, *ORIGIN_COLUMNS],
    )
    log.info("%s: %d rows, %d cells derived", paths.reference_captions, len(table),
             int(sum(table[c].str.startswith("derived").sum() for c in ORIGIN_COLUMNS)))


def reference_summary(paths: Paths) -> pd.DataFrame:
    """Per column (caption, faithful, counterfactual) of the profile's references: how many came from where."""
    ref = read_reference_csv(paths.reference_captions)
    manifest = read_manifest(paths.manifest)
    ref = ref[ref["id"].isin(set(manifest["id"]))]
    rows = []
    for col in TEXT_COLUMNS:
        origin = ref.get(f"{col}_origin", pd.Series(["hand-written"] * len(ref), index=ref.index)).astype(str)
        filled = ref[col].astype(str).str.strip() != ""
        for name, n in origin[filled].replace("", "hand-written").value_counts().items():
            rows.append({"column": col, "origin": name, "count": int(n)})
        wanted = manifest["split"].isin(["train", "val"] if col == "caption" else ["test"])
        empty = int((~manifest.loc[wanted, "id"].isin(set(ref.loc[filled, "id"]))).sum())
        if empty:
            rows.append({"column": col, "origin": "none (no colour image: no ground truth)" if col != "caption"
                         else "none", "count": empty})
    return pd.DataFrame(rows, columns=["column", "origin", "count"])


def derived_counts(paths: Paths) -> dict[str, int]:
    """``{column: cells derived}`` of the profile's references ({} when none was derived or the file is missing)."""
    try:
        ref = read_reference_csv(paths.reference_captions)
    except (FileNotFoundError, ValueError):
        return {}
    out = {c: int(ref[f"{c}_origin"].astype(str).str.startswith("derived").sum())
           for c in TEXT_COLUMNS if f"{c}_origin" in ref.columns}
    return {k: v for k, v in out.items() if v}
