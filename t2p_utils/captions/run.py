"""Steps 02 and 03 for one caption source: caption every sprite, write the caption set and the instruction folder;
reused while its key holds (t2p_utils.core.stamps).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from t2p_utils.captions.instructions import augment_instructions, write_instructions
from t2p_utils.captions.sets import (
    build_table,
    captioner_name,
    generate,
    inputs_fingerprint,
    load_manifest,
    load_references,
    training_references,
    write_caption_csv,
)
from t2p_utils.config.captions import CaptionConfig
from t2p_utils.config.params import CAPTION_SOURCES, Paths
from t2p_utils.core.io import atomic_write_json
from t2p_utils.core.stamps import cache_key

log = logging.getLogger(__name__)


@dataclass
class CaptionRun:
    source: str
    csv: Path
    instructions: Path
    captioner: str
    stand_in: bool
    n_ids: int
    n_reference: int
    n_generated: int
    skipped: list[dict[str, str]]
    cached: bool = False
    n_recolored: int = 0  # palette-swapped training pairs added to the instruction folder
    n_part: int = 0  # part-level recoloured training pairs added to it
    recolor_skipped: list[dict[str, str]] = field(default_factory=list)


def run_source(paths: Paths, source: str, cfg: CaptionConfig, force: bool = False, progress: bool = True) -> CaptionRun:
    """Caption all ids for ``source`` and write its CSV, provenance JSON and instruction folder (idempotent)."""
    if source not in CAPTION_SOURCES:
        raise ValueError(f"unknown caption source {source!r}; choose from {CAPTION_SOURCES}")
    csv = paths.captions(source)
    meta = csv.with_suffix(".json")
    folder = paths.instructions(source)
    # the set's key: the whole captions: section, what it reads, and the code that makes it (this module and
    # everything it imports: the captioners, the recolouring, the phrasings)
    inputs = inputs_fingerprint(paths)
    key = cache_key(cfg, inputs, code=[__name__])
    if not force and csv.exists() and meta.exists() and (folder / "metadata.jsonl").exists():
        info = json.loads(meta.read_text())
        if info.get("key") == key:
            log.info("%s captions up to date in %s (force=True rebuilds)", source, csv)
            rec = info.get("recolor") or {}
            return CaptionRun(source, csv, folder, info["captioner"], info["stand_in"], info["n_ids"],
                              info["n_reference"], info["n_generated"], info["skipped"], cached=True,
                              n_recolored=int(rec.get("n_recolored", 0)), n_part=int(rec.get("n_part", 0)),
                              recolor_skipped=list(rec.get("skipped", [])))
    manifest = load_manifest(paths)
    refs = load_references(paths, manifest)
    kept = training_references(refs, cfg)
    captioner, stand_in = captioner_name(source, cfg)
    generated = None if source == "reference" else generate(paths, source, cfg, manifest, progress)
    table, notes = build_table(source, manifest, kept, generated, captioner, stand_in)
    write_caption_csv(table, csv)
    write_instructions(paths, source, table, manifest, templates=cfg.instruction_templates, seed=cfg.seed)
    aug = augment_instructions(paths, source, cfg, table, manifest, captioner, progress)
    n_ref = int((table["caption_source"] == "reference").sum())
    run = CaptionRun(source, csv, folder, captioner, stand_in, len(table), n_ref, len(table) - n_ref, notes,
                     n_recolored=aug["n_recolored"], n_part=aug["n_part"], recolor_skipped=aug["skipped"])
    atomic_write_json({"source": source, "captioner": captioner, "stand_in": stand_in, "n_ids": run.n_ids,
                       "n_reference": n_ref, "n_generated": run.n_generated, "skipped": notes, "recolor": aug,
                       "instructions_splits": ["train"], "config": asdict(cfg), "inputs": inputs, "key": key}, meta)
    log.info("%s: %d ids (%d reference, %d from %s) -> %s", source, run.n_ids, n_ref, run.n_generated, captioner, csv)
    return run


def run_captions(paths: Paths, cfg: CaptionConfig, sources: list[str] | None = None, force: bool = False,
                 progress: bool = True) -> pd.DataFrame:
    """Run ``sources`` (default: ``reference`` plus the profile's ``captions.sources``); a summary table."""
    todo = sources if sources is not None else ["reference"] + [s for s in cfg.sources if s != "reference"]
    runs = [run_source(paths, s, cfg, force=force, progress=progress) for s in todo]
    return pd.DataFrame([{k: v for k, v in asdict(r).items() if k not in ("skipped", "recolor_skipped")}
                         | {"n_skipped": len(r.skipped), "n_recolor_skipped": len(r.recolor_skipped)}
                         for r in runs])
