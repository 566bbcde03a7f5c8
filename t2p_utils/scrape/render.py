"""Render source images to the processed contract: ``color/``, ``lineart/``, ``mask/`` PNGs.

SVGs are rendered with cairosvg at ``size`` x ``size`` (aspect kept, centred by the SVG's
own ``preserveAspectRatio``), composited onto white; the alpha channel becomes the mask.
Rendering runs in a process pool and is skipped for ids whose source hash, settings and rendering code (this module
and what it imports, e.g. the line art) match the last render (``render_state.json``, keyed by
:func:`t2p_utils.core.stamps.cache_key`), so a re-run is quick.
"""

from __future__ import annotations

import io
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from t2p_utils.core.io import atomic_write_image, rgb_on_white
from t2p_utils.scrape.lineart import SvgError, to_lineart

if TYPE_CHECKING:
    import matplotlib.pyplot as plt
    import pandas as pd

log = logging.getLogger(__name__)

MASK_THRESHOLD = 128  # alpha at or above this is "character"
#: line art is "ok" when outline pixels cover this share of the character region
LINEART_MIN_SHARE, LINEART_MAX_SHARE = 0.01, 0.75


@dataclass(frozen=True)
class RenderJob:
    sprite_id: str
    source: Path
    color: Path
    lineart: Path
    mask: Path
    size: int


@dataclass(frozen=True)
class RenderResult:
    sprite_id: str
    status: str  # ok / error
    error: str
    lineart_ok: bool


def _svg_to_rgba(svg: bytes, size: int) -> Image.Image:
    import cairosvg  # imported in the worker: cairo is not fork-friendly to import early

    png = cairosvg.svg2png(bytestring=svg, output_width=size, output_height=size)
    return Image.open(io.BytesIO(png)).convert("RGBA")


def outline_share(lineart: Image.Image, mask: Image.Image) -> float:
    """Ink coverage of the character region: mean darkness of the line art inside the mask.

    Darkness-weighted rather than thresholded, so thin anti-aliased outlines at 64 px
    (light grey pixels) still count.
    """
    ink = 1.0 - np.asarray(lineart.convert("L"), dtype=np.float32) / 255.0
    m = np.asarray(mask, dtype=np.uint8) >= MASK_THRESHOLD
    if not m.any():
        return 0.0
    return float(ink[m].mean())


def render_svg(job: RenderJob) -> RenderResult:
    """Render one SVG to colour, line art and mask; errors are returned, never raised."""
    try:
        raw = job.source.read_bytes()
        text = raw.decode("utf-8")
        line = to_lineart(text)
        rgba = _svg_to_rgba(raw, job.size)
        alpha = np.asarray(rgba.getchannel("A"))
        if (alpha >= MASK_THRESHOLD).sum() == 0:
            raise SvgError("renders to an empty image")
        mask = Image.fromarray(np.where(alpha >= MASK_THRESHOLD, 255, 0).astype(np.uint8), "L")
        lineart = rgb_on_white(_svg_to_rgba(line.svg.encode("utf-8"), job.size))
        share = outline_share(lineart, mask)
        atomic_write_image(rgb_on_white(rgba), job.color)
        atomic_write_image(lineart, job.lineart)
        atomic_write_image(mask, job.mask)
        ok = line.outline_paints > 0 and LINEART_MIN_SHARE <= share <= LINEART_MAX_SHARE
        return RenderResult(job.sprite_id, "ok", "" if ok else f"outline share {share:.3f} out of range", ok)
    except Exception as exc:  # a corrupt file is recorded and skipped, never fatal
        return RenderResult(job.sprite_id, "error", f"{type(exc).__name__}: {exc}".strip()[:300], False)


def render_all(jobs: list[RenderJob], workers: int = 2, progress: bool = True) -> list[RenderResult]:
    """Render SVG jobs in a process pool (``workers <= 1`` renders in this process)."""
    from t2p_utils.core.progress import tqdm

    if not jobs:
        return []
    if workers <= 1 or len(jobs) < 8:
        return [render_svg(j) for j in tqdm(jobs, desc="render", disable=not progress)]
    chunk = max(1, len(jobs) // (workers * 8))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(tqdm(pool.map(render_svg, jobs, chunksize=chunk), total=len(jobs), desc="render", disable=not progress))


def preview_grid(root: Path, manifest: pd.DataFrame, n: int = 6, seed: int = 0) -> plt.Figure:
    """colour | line art | mask for ``n`` ok ids picked with a fixed seed (one row each)."""
    import matplotlib.pyplot as plt

    ok = manifest[manifest["status"] == "ok"]
    rows = ok.sample(n=min(n, len(ok)), random_state=seed).sort_values("id") if len(ok) else ok
    fig, axes = plt.subplots(len(rows), 3, figsize=(6, 2 * len(rows)), squeeze=False)
    for ax_row, (_, r) in zip(axes, rows.iterrows()):
        for ax, kind in zip(ax_row, ("color", "lineart", "mask")):
            if str(r[kind]):
                ax.imshow(Image.open(root / r[kind]), cmap="gray" if kind == "mask" else None, vmin=0, vmax=255)
            else:  # own line art without a colour image
                ax.text(0.5, 0.5, "no colour\nimage", ha="center", va="center", fontsize=8, color="gray")
            ax.set_xticks([])
            ax.set_yticks([])
        ax_row[0].set_ylabel(f"{r['id']}\n{str(r['name'])[:18]}", fontsize=8)
    for ax, title in zip(axes[0], ("colour", "line art", "mask")):
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
