"""Palette captioner: the offline stand-in for CLIP interrogation.

It names the dominant colours of the character region and where they sit:

1. pixels inside the character mask, minus the thin near-black outline (black pixels that a
   3x3 morphological opening removes; solid black areas such as a black body are kept);
2. k-means in CIELAB (k-means++ seeding from a seeded ``numpy`` generator, so the same image
   always gives the same caption);
3. cluster centres named with :mod:`t2p_utils.core.colors` (nearest XKCD/CSS colour -> basic term);
   clusters with the same name are merged and names below ``min_share`` of the region dropped;
4. each colour's rough location from its pixels' centroid in the mask's bounding box
   (top / bottom / middle) and its mean distance from the mask centroid (centre / edges).

The caption reads like "a creature with a blue body, a yellow belly at the bottom and red at
the top". It is a stand-in: it knows colours and places, not species or parts; captions
made with it are labelled ``stand_in`` wherever they are written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from t2p_utils.core.colors import BASIC_COLORS, lab_color_terms, pixel_color_terms, rgb_to_lab
from t2p_utils.core.places import EDGE_BAND, EDGES_R, MIDDLE_R

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PaletteSettings:
    k: int = 6  # k-means clusters
    min_share: float = 0.05  # drop colour names covering less of the region than this
    max_pixels: int = 4096  # k-means on at most this many (seeded) sampled pixels
    max_colors: int = 4  # name at most this many colours in the caption
    iterations: int = 20
    seed: int = 42
    subject: str = "creature"
    line_threshold: int = 200  # line-art pixels darker than this (0..255) are outline or its anti-aliasing


@dataclass
class PaletteColor:
    term: str  # basic colour term
    share: float  # share of the character region's (outline-free) pixels
    vertical: str  # "top" / "middle" / "bottom"
    radial: str  # "centre" / "edge" / "" (neither)
    lab: tuple[float, float, float]  # share-weighted mean Lab of the merged clusters


@dataclass
class PaletteResult:
    caption: str
    colors: list[PaletteColor] = field(default_factory=list)
    outline_share: float = 0.0  # share of mask pixels dropped as thin black outline


def kmeans_lab(x: np.ndarray, k: int, seed: int, iterations: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Plain vectorised k-means (k-means++ init) on rows of ``x``; returns (centres [k', 3], labels).

    Deterministic for a given ``seed``; ``k`` shrinks to the number of distinct rows.
    """
    rng = np.random.default_rng(seed)
    n = len(x)
    if n == 0:
        return np.zeros((0, x.shape[1])), np.zeros(0, dtype=np.int64)
    k = int(min(k, len(np.unique(x.round(3), axis=0))))
    centres = [x[rng.integers(n)]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:
            break
        centres.append(x[rng.choice(n, p=d2 / total)])
        d2 = np.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    c = np.stack(centres)
    labels = np.zeros(n, dtype=np.int64)
    for it in range(iterations):
        dist = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
        new = dist.argmin(1)
        if it > 0 and np.array_equal(new, labels):
            break
        labels = new
        for j in range(len(c)):
            members = x[labels == j]
            if len(members):
                c[j] = members.mean(0)
    return c, labels


def thin_outline(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mask pixels that are black *and* thin (removed by a 3x3 opening): the drawn outline."""
    black = (pixel_color_terms(rgb) == BASIC_COLORS.index("black")) & mask
    solid = ndimage.binary_opening(black, structure=np.ones((3, 3), bool))
    return black & ~solid


def outline_pixels(rgb: np.ndarray, mask: np.ndarray, lineart: np.ndarray | None = None,
                   line_threshold: int = 200) -> np.ndarray:
    """Mask pixels that belong to the drawn outline: thin black, or dark in the line art."""
    outline = thin_outline(rgb, mask)
    if lineart is not None:
        outline |= mask & (np.asarray(lineart) < line_threshold)
    return outline


def _where(ys: np.ndarray, xs: np.ndarray, box: tuple[float, float, float, float], cy: float, cx: float,
           mean_r: float) -> tuple[str, str]:
    y0, y1, _x0, _x1 = box
    rel_y = (ys.mean() - y0) / max(y1 - y0, 1.0)
    vertical = "top" if rel_y < EDGE_BAND else ("bottom" if rel_y > 1 - EDGE_BAND else "middle")
    r = np.hypot(ys - cy, xs - cx).mean() / max(mean_r, 1e-6)
    radial = "centre" if r < MIDDLE_R else ("edge" if r > EDGES_R else "")
    return vertical, radial


def palette_colors(rgb: np.ndarray, mask: np.ndarray, settings: PaletteSettings = PaletteSettings(),
                   lineart: np.ndarray | None = None) -> tuple[list[PaletteColor], float]:
    """Dominant colours of the character region (largest first) and the dropped outline share.

    ``lineart`` (grey levels, optional): its dark pixels are outline and left out too; at 64 px
    the anti-aliased outlines otherwise add a gray that no one would name.
    """
    m = np.asarray(mask).astype(bool)
    if m.ndim != 2 or m.shape != rgb.shape[:2]:
        raise ValueError(f"mask shape {m.shape} does not match image shape {rgb.shape[:2]}")
    n_mask = int(m.sum())
    if n_mask == 0:
        return [], 0.0
    outline = outline_pixels(rgb, m, lineart, settings.line_threshold)
    region = m & ~outline
    if region.sum() == 0:  # nothing but outline: describe the outline itself
        region = m
    ys, xs = np.nonzero(region)
    lab = rgb_to_lab(rgb[ys, xs])
    rng = np.random.default_rng(settings.seed)
    if len(lab) > settings.max_pixels:
        sample = np.sort(rng.choice(len(lab), settings.max_pixels, replace=False))
    else:
        sample = np.arange(len(lab))
    centres, _ = kmeans_lab(lab[sample], settings.k, settings.seed, settings.iterations)
    # assign every region pixel to its nearest centre, then name centres
    labels = ((lab[:, None, :] - centres[None, :, :]) ** 2).sum(-1).argmin(1)
    names = lab_color_terms(centres)
    mys, mxs = np.nonzero(m)
    box = (float(mys.min()), float(mys.max()), float(mxs.min()), float(mxs.max()))
    cy, cx = float(mys.mean()), float(mxs.mean())
    mean_r = float(np.hypot(mys - cy, mxs - cx).mean())
    out: list[PaletteColor] = []
    for t in np.unique(names):
        sel = np.isin(labels, np.nonzero(names == t)[0])
        share = float(sel.sum()) / len(lab)
        if share < settings.min_share:
            continue
        vertical, radial = _where(ys[sel], xs[sel], box, cy, cx, mean_r)
        mean_lab = lab[sel].mean(0)
        out.append(PaletteColor(BASIC_COLORS[int(t)], share, vertical, radial, tuple(float(v) for v in mean_lab)))
    out.sort(key=lambda c: -c.share)
    return out[: settings.max_colors], float(outline.sum()) / n_mask


def with_article(word: str) -> str:
    """"a red", "an orange"."""
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _phrase(c: PaletteColor) -> str:
    if c.vertical == "bottom" and c.radial != "edge":
        return f"{with_article(c.term)} belly at the bottom"
    if c.radial == "edge" and c.vertical == "middle":
        return f"{c.term} around the edges"
    if c.vertical == "middle":
        return f"{c.term} in the middle" if c.radial == "centre" else f"{c.term} patches"
    return f"{c.term} at the {c.vertical}"


def palette_caption_text(colors: Sequence[PaletteColor], subject: str = "creature") -> str:
    """"a creature with a blue body, a yellow belly at the bottom and red at the top"."""
    if not colors:
        return f"a drawing of {with_article(subject)}"
    bits = [f"{with_article(colors[0].term)} body"] + [_phrase(c) for c in colors[1:]]
    if len(bits) == 1:
        return f"{with_article(subject)} with {bits[0]}"
    return f"{with_article(subject)} with " + ", ".join(bits[:-1]) + f" and {bits[-1]}"


def palette_caption(rgb: np.ndarray, mask: np.ndarray, settings: PaletteSettings = PaletteSettings(),
                    lineart: np.ndarray | None = None) -> PaletteResult:
    colors, outline_share = palette_colors(rgb, mask, settings, lineart)
    return PaletteResult(palette_caption_text(colors, settings.subject), colors, outline_share)


def load_rgb_mask(color_path: Path, mask_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 and bool mask of one processed image pair; clear errors when files are missing."""
    for p in (color_path, mask_path):
        if not Path(p).exists():
            raise FileNotFoundError(f"{p} is missing: re-run notebooks/01_scrape.ipynb (force=True) to render it")
    rgb = np.asarray(Image.open(color_path).convert("RGB"))
    mask = np.asarray(Image.open(mask_path).convert("L")) > 127
    return rgb, mask


def load_lineart(path: Path) -> np.ndarray:
    if not Path(path).exists():
        raise FileNotFoundError(f"{path} is missing: re-run notebooks/01_scrape.ipynb (force=True) to render it")
    return np.asarray(Image.open(path).convert("L"))


def _caption_file(args: tuple[str, str, str, PaletteSettings]) -> PaletteResult:
    rgb, mask = load_rgb_mask(Path(args[0]), Path(args[1]))
    line = load_lineart(Path(args[2])) if args[2] else None
    return palette_caption(rgb, mask, args[3], line)


def caption_files(pairs: Sequence[tuple[Path, ...]], settings: PaletteSettings = PaletteSettings(),
                  workers: int = 1, progress: bool = True) -> list[PaletteResult]:
    """Palette captions of (colour PNG, mask PNG[, line-art PNG]) tuples, in order.

    ``workers`` > 1 uses a process pool (worth it only for large images).
    """
    from t2p_utils.core.progress import tqdm

    jobs = [(str(p[0]), str(p[1]), str(p[2]) if len(p) > 2 else "", settings) for p in pairs]
    if workers > 1 and len(jobs) > 32:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return list(tqdm(pool.map(_caption_file, jobs, chunksize=16), total=len(jobs), desc="palette",
                             disable=not progress))
    return [_caption_file(j) for j in tqdm(jobs, desc="palette", disable=not progress or len(jobs) < 50)]
