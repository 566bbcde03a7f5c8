"""The test characters as drawings at their own size, for 05's flat variant and its metrics.

The models see the line art at the profile's resolution (``scrape.size``: 64 px on ``cpu``); what a user keeps is the
drawing at its own size (DESIGN.md section 9). 05 therefore colours and scores the ``flat`` variant against the
drawing at ``compare.drawing_size`` px (256 by default), made from the same source as step 01's images:

* ``npm`` / ``http`` sprites: the SVG rendered again at that size (:func:`t2p_utils.scrape.render.render_svg`, the same
  line-art extraction and mask as 01);
* ``synthetic`` creatures: drawn again at that size from their known parts and seed
  (:func:`t2p_utils.scrape.synthetic.draw_creature`);
* ``kaggle`` / ``folder`` line art: the user's file padded to a square at that size
  (:func:`t2p_utils.scrape.userdata.load_square`), the mask from the colour image or the outline as in 01.

Drawings are written under ``data/processed/<p>/drawing<size>/{color,lineart,mask}/<id>.png`` and reused while the
source (its sha256, or a synthetic creature's parts and seed), the size and the code that draws them are unchanged
(``state.json``, :func:`_key`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from t2p_utils.config.params import Paths
from t2p_utils.core.io import atomic_write_image, atomic_write_json
from t2p_utils.core.stamps import cache_key

log = logging.getLogger(__name__)


class DrawingError(RuntimeError):
    """A test character's drawing cannot be made; the message names the file and what to do."""


@dataclass(frozen=True)
class DrawingFiles:
    color: Path | None  # None for line art without a colour image
    lineart: Path
    mask: Path


def drawing_dir(paths: Paths, size: int) -> Path:
    return paths.processed / f"drawing{size}"


def _files(paths: Paths, size: int, sprite_id: str, has_color: bool) -> DrawingFiles:
    d = drawing_dir(paths, size)
    return DrawingFiles(d / "color" / f"{sprite_id}.png" if has_color else None, d / "lineart" / f"{sprite_id}.png",
                        d / "mask" / f"{sprite_id}.png")


def _key(row: pd.Series, size: int, seed: int) -> str:
    """A drawing's key (:func:`t2p_utils.core.stamps.cache_key`): its size, its source (the sha256 of the file 01
    read, or a synthetic creature's parts and seed) and the code that draws it (this module and what it imports:
    01's rendering, line art and synthetic creatures, the user-data loader)."""
    if row["source"] == "synthetic":
        source = {"source": "synthetic", "parts": str(row.get("parts", "")), "seed": seed}
    else:
        source = {"source": str(row["source"]), "sha256": str(row["sha256"]),
                  "color_source": str(row.get("color_source", ""))}
    return cache_key({"size": size}, source, code=[__name__])


def _make(paths: Paths, row: pd.Series, size: int, seed: int, out: DrawingFiles) -> None:
    source = str(row["source"])
    if source in ("npm", "http"):
        from t2p_utils.scrape.render import RenderJob, render_svg

        svg = paths.root / str(row["source_path"])
        if not svg.is_file():
            raise DrawingError(f"{svg} (the SVG of test id {row['id']}) is missing: re-run notebooks/01_scrape.ipynb")
        assert out.color is not None
        res = render_svg(RenderJob(str(row["id"]), svg, out.color, out.lineart, out.mask, size))
        if res.status != "ok":
            raise DrawingError(f"{svg}: cannot render it at {size} px ({res.error})")
    elif source == "synthetic":
        from t2p_utils.scrape.synthetic import Creature, draw_creature

        index = int(str(row["id"]).lstrip("s"))
        creature = Creature(str(row["id"]), "", json.loads(str(row["parts"])))
        color, line, mask = draw_creature(creature, size, np.random.default_rng([seed, index]))
        if out.color is not None:
            atomic_write_image(color, out.color)
        atomic_write_image(line, out.lineart)
        atomic_write_image(mask, out.mask)
    elif source in ("kaggle", "folder"):
        from t2p_utils.scrape.userdata import load_square, mask_from_color, mask_from_lineart

        line = load_square(Path(str(row["source_path"])), size)
        if out.color is not None and str(row.get("color_source", "")):
            color = load_square(Path(str(row["color_source"])), size)
            mask = mask_from_color(color, line.rgb)
            atomic_write_image(Image.fromarray(color.rgb, "RGB"), out.color)
        else:
            mask, _ = mask_from_lineart(line.rgb)
        atomic_write_image(Image.fromarray(line.rgb, "RGB"), out.lineart)
        atomic_write_image(Image.fromarray(mask.astype(np.uint8) * 255, "L"), out.mask)
    else:
        raise DrawingError(f"test id {row['id']}: no drawing for source {source!r} (a manifest from an older t2p? "
                           "re-run notebooks/01_scrape.ipynb with force=True)")


def make_drawings(paths: Paths, ids: list[str], size: int, seed: int) -> dict[str, DrawingFiles]:
    """The drawings of ``ids`` at ``size`` px (made when missing or out of date); raises :class:`DrawingError`."""
    from t2p_utils.core.manifest import read_manifest
    from t2p_utils.core.progress import tqdm

    manifest = read_manifest(paths.manifest).set_index("id", drop=False)
    state_path = drawing_dir(paths, size) / "state.json"
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = {}
    out: dict[str, DrawingFiles] = {}
    todo = []
    for i in ids:
        if i not in manifest.index:
            raise DrawingError(f"test id {i} is not in {paths.manifest}: re-run notebooks/01_scrape.ipynb")
        row = manifest.loc[i]
        files = _files(paths, size, i, bool(str(row["color"])))
        out[i] = files
        key = _key(row, size, seed)
        have = all(p.exists() for p in (files.color, files.lineart, files.mask) if p is not None)
        if not have or state.get(i) != key:
            todo.append((row, files, key))
    for row, files, key in tqdm(todo, desc=f"drawings at {size} px", disable=len(todo) < 10):
        _make(paths, row, size, seed, files)
        state[str(row["id"])] = key
    if todo:
        atomic_write_json(state, state_path)
        log.info("made %d drawing(s) at %d px in %s", len(todo), size, drawing_dir(paths, size))
    return out
