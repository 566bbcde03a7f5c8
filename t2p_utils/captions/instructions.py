"""The instruction folders 04 trains on (diffusers' ``metadata.jsonl``): one line per (line art, instruction, colour
image), and the recoloured copies, captioned by the source's own captioner.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from t2p_utils.captions.sets import caption_image_files, clean_caption
from t2p_utils.config.captions import CaptionConfig
from t2p_utils.config.params import Paths
from t2p_utils.core.io import atomic_open

log = logging.getLogger(__name__)


def instruction_line(input_image: str, edit_prompt: str, edited_image: str, **extra: Any) -> str:
    """One ``metadata.jsonl`` line: ``datasets``' imagefolder loads ``<name>_file_name`` as image column ``<name>``."""
    return json.dumps({"input_image_file_name": input_image, "edit_prompt": edit_prompt,
                       "edited_image_file_name": edited_image, **extra}) + "\n"


def write_instructions(paths: Paths, source: str, table: pd.DataFrame, manifest: pd.DataFrame,
                       splits: tuple[str, ...] = ("train",), templates: str = "fixed", seed: int = 42) -> Path:
    """The instruction dataset folder: image copies plus ``metadata.jsonl`` (rows with a caption only).

    ``templates``: ``fixed`` writes each row's ``instruction`` (the seed's frame); ``varied`` phrases its caption
    with :func:`t2p_utils.captions.templates.instruction_for` (seeded by ``seed`` and the id)."""
    from t2p_utils.captions.templates import instruction_for

    folder = paths.instructions(source)
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "input").mkdir(parents=True)
    (folder / "edited").mkdir()
    rel = manifest.set_index("id")
    use = table[table["split"].isin(splits) & (table["instruction"] != "")]
    with atomic_open(folder / "metadata.jsonl", "w", encoding="utf-8") as fh:
        for r in use.itertuples(index=False):
            inp, out = f"input/{r.id}.png", f"edited/{r.id}.png"
            shutil.copyfile(paths.root / rel.at[r.id, "lineart"], folder / inp)
            shutil.copyfile(paths.root / rel.at[r.id, "color"], folder / out)
            text = r.instruction if templates == "fixed" else instruction_for(r.caption, templates, seed, str(r.id))
            fh.write(instruction_line(inp, text, out, id=r.id, caption_source=r.caption_source))
    return folder


def augment_instructions(paths: Paths, source: str, cfg: CaptionConfig, table: pd.DataFrame, manifest: pd.DataFrame,
                         captioner: str, progress: bool = True) -> dict[str, Any]:
    """Add ``cfg.recolor_copies`` palette-swapped and ``cfg.part_copies`` part-level recoloured copies of every
    train pair to ``source``'s instruction folder.

    Each copy keeps the line art (the input) and gets its own caption from ``source``'s captioner,
    the same one that captioned the originals (the ``reference`` source has no captioner and is
    not augmented). A sprite with an empty mask or nothing but outline, and a copy whose recolouring
    leaves no basic colour covering 3 % of the character, are skipped and recorded.
    Returns ``{"n_recolored", "n_part", "skipped", "settings", ...}`` (also written to the provenance JSON).
    """
    from t2p_utils.captions.recolor import RecolorSettings, RecolorSkip, part_copies, recolor_copies, region_of
    from t2p_utils.captions.templates import instruction_for
    from t2p_utils.core.colors import dominant_colors
    from t2p_utils.core.io import atomic_write_image
    from t2p_utils.core.palette import load_lineart, load_rgb_mask
    from t2p_utils.core.progress import tqdm

    settings = RecolorSettings(copies=cfg.recolor_copies, k=cfg.recolor_k, seed=cfg.seed)
    out: dict[str, Any] = {"n_recolored": 0, "n_part": 0, "skipped": [], "settings": asdict(settings),
                           "part_copies": cfg.part_copies, "instruction_templates": cfg.instruction_templates}
    if ((cfg.recolor_copies <= 0 and cfg.part_copies <= 0) or source == "reference"
            or (cfg.recolor_sources is not None and source not in cfg.recolor_sources)):
        return out
    folder = paths.instructions(source)
    rel = manifest.set_index("id")
    use = table[(table["split"] == "train") & (table["instruction"] != "")]
    made: list[tuple[str, str, str]] = []  # (id, edited file relative to folder, augmentation note)
    for key, sid in enumerate(tqdm(use["id"].tolist(), desc=f"recolour {source}", disable=not progress)):
        rgb, mask = load_rgb_mask(paths.root / rel.at[sid, "color"], paths.root / rel.at[sid, "mask"])
        line = load_lineart(paths.root / rel.at[sid, "lineart"])
        try:
            copies = [(rc, f"rc{c}", "palette swap to " + ", ".join(rc.targets))
                      for c, rc in enumerate(recolor_copies(rgb, mask, line, settings, key=key))]
            copies += [(rc, f"pc{c}", note)
                       for c, (rc, note) in enumerate(part_copies(rgb, mask, line, cfg.part_copies, settings, key))]
        except RecolorSkip as exc:
            out["skipped"].append({"id": sid, "what": f"not recoloured: {exc}"})
            continue
        region = region_of(rgb, mask, line, settings.line_threshold)
        for rc, tag, note in copies:
            if rc.changed == 0 or not dominant_colors(rc.image, region):
                out["skipped"].append({"id": sid, "what": f"copy {tag}: the recolouring leaves no colour to name"})
                continue
            name = f"edited/{sid}_{tag}.png"
            atomic_write_image(Image.fromarray(rc.image), folder / name)
            made.append((sid, name, note))
    if made:
        caps = caption_image_files(paths, source, cfg, [folder / m[1] for m in made],
                                   [paths.root / rel.at[m[0], "mask"] for m in made],
                                   [paths.root / rel.at[m[0], "lineart"] for m in made], progress)
        original = (folder / "metadata.jsonl").read_text(encoding="utf-8")
        with atomic_open(folder / "metadata.jsonl", "w", encoding="utf-8") as fh:
            fh.write(original)
            for (sid, name, note), cap in zip(made, caps, strict=True):
                text, _ = clean_caption(cap)
                if not text:
                    out["skipped"].append({"id": sid, "what": f"{name}: empty caption from {captioner}"})
                    continue
                inp = f"input/{sid}.png"
                instr = instruction_for(text, cfg.instruction_templates, cfg.seed, f"{sid}/{name}")
                fh.write(instruction_line(inp, instr, name, id=sid, caption_source=captioner, augmentation=note))
                out["n_part" if note.startswith("part:") else "n_recolored"] += 1
    log.info("%s: %d palette-swapped and %d part-level recoloured pairs added (%d skipped)", source, out["n_recolored"],
             out["n_part"], len(out["skipped"]))
    return out
