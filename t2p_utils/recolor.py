"""Counterfactual recolouring: the same line art with other colours (DESIGN.md section 6).

In the sprite data every character has exactly one colouring, so a model can predict the
colours from the line art alone and ignore the words. A *palette swap* breaks that: the
character region (the mask minus the drawn outline) is split into its colour clusters
(k-means in CIELAB, as the palette captioner does) and each cluster is moved to the
prototype of a basic colour term (:data:`t2p_utils.colors.BASIC_PROTOTYPES`), keeping a
damped copy of the cluster's own lightness and chroma variation so that shading survives.
Outline pixels (dark in the line art, or thin black) and the background are copied unchanged.

The recoloured image is then captioned by the *same* captioner that captioned the original
(palette for ``clip`` on the offline profiles, the CNN-LSTM for ``cnn_lstm``, clip-interrogator
on ``full``): see :func:`t2p_utils.caption_sets.augment_source`. This module only makes images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from skimage.color import lab2rgb

from .colors import BASIC_COLORS, BASIC_PROTOTYPES, pixel_color_terms, rgb_to_lab
from .palette import kmeans_lab, outline_pixels

#: Colour terms a palette swap may give the largest cluster (the body): every chromatic basic term.
BODY_COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown")
#: Colour terms the other clusters may get.
PART_COLORS: tuple[str, ...] = BODY_COLORS + ("white", "gray", "black")


@dataclass(frozen=True)
class RecolorSettings:
    copies: int = 0  # recoloured copies per training pair (0: no augmentation)
    k: int = 4  # colour clusters of the character region
    shading: float = 0.6  # share of each pixel's lightness offset from its cluster centre that is kept
    chroma_detail: float = 0.25  # share of its a*/b* offset that is kept
    min_cluster_share: float = 0.04  # clusters smaller than this keep a colour of a bigger neighbour's swap
    body_colors: tuple[str, ...] = BODY_COLORS
    part_colors: tuple[str, ...] = PART_COLORS
    line_threshold: int = 200  # line-art pixels darker than this are outline (as the palette captioner)
    seed: int = 42

    def __post_init__(self) -> None:
        unknown = [c for c in (*self.body_colors, *self.part_colors) if c not in BASIC_COLORS]
        if unknown:
            raise ValueError(f"recolour colours {unknown} are not basic colour terms {list(BASIC_COLORS)}")
        if self.copies < 0 or self.k < 1:
            raise ValueError("recolour: copies must be >= 0 and k >= 1")


@dataclass
class Recolored:
    image: np.ndarray  # uint8 [H, W, 3]
    targets: list[str] = field(default_factory=list)  # the term each cluster was moved to, largest cluster first
    shares: list[float] = field(default_factory=list)  # each cluster's share of the region
    changed: float = 0.0  # share of region pixels whose basic term changed


class RecolorSkip(ValueError):
    """A sprite that cannot be recoloured (empty mask, nothing but outline); the message says why."""


_PROTO_LAB = {t: rgb_to_lab(np.array([rgb], dtype=np.uint8))[0] for t, rgb in BASIC_PROTOTYPES.items()}


def region_of(rgb: np.ndarray, mask: np.ndarray, lineart: np.ndarray | None, line_threshold: int = 200) -> np.ndarray:
    """The recolourable pixels: inside the mask and not outline."""
    m = np.asarray(mask).astype(bool)
    return m & ~outline_pixels(rgb, m, lineart, line_threshold)


def pick_targets(n_clusters: int, rng: np.random.Generator, settings: RecolorSettings,
                 body: str | None = None) -> list[str]:
    """Target terms for ``n_clusters`` clusters (largest first): a body colour, then distinct other colours."""
    first = body if body is not None else str(rng.choice(settings.body_colors))
    rest = [c for c in settings.part_colors if c != first]
    others = [str(c) for c in rng.permutation(rest)[: max(0, n_clusters - 1)]]
    return [first, *others]


def recolor(rgb: np.ndarray, mask: np.ndarray, lineart: np.ndarray | None, targets: list[str] | None = None,
            settings: RecolorSettings = RecolorSettings(), rng: np.random.Generator | None = None) -> Recolored:
    """One palette swap of ``rgb`` inside ``mask`` (outline and background unchanged).

    ``targets``: the term for each cluster, largest first (drawn from ``rng`` when None; when
    shorter than the number of clusters the rest are drawn too). Raises :class:`RecolorSkip`
    when there is nothing to recolour.
    """
    arr = np.asarray(rgb, dtype=np.uint8)
    region = region_of(arr, mask, lineart, settings.line_threshold)
    if not np.asarray(mask).astype(bool).any():
        raise RecolorSkip("empty mask")
    if region.sum() < 8:
        raise RecolorSkip("no fill inside the mask (nothing but outline)")
    rng = rng if rng is not None else np.random.default_rng(settings.seed)
    lab = rgb_to_lab(arr[region])
    sample = lab if len(lab) <= 4096 else lab[np.sort(rng.choice(len(lab), 4096, replace=False))]
    centres, _ = kmeans_lab(sample, settings.k, settings.seed)
    labels = ((lab[:, None, :] - centres[None, :, :]) ** 2).sum(-1).argmin(1)
    sizes = np.bincount(labels, minlength=len(centres)) / len(labels)
    order = np.argsort(-sizes)
    big = [int(j) for j in order if sizes[j] >= settings.min_cluster_share] or [int(order[0])]
    chosen = list(targets or [])
    if len(chosen) < len(big):
        chosen += pick_targets(len(big), rng, settings, body=chosen[0] if chosen else None)[len(chosen):]
    target_of = {j: chosen[r] for r, j in enumerate(big)}
    for j in range(len(centres)):  # small clusters follow the nearest big cluster
        if j not in target_of:
            nearest = min(big, key=lambda b: float(((centres[j] - centres[b]) ** 2).sum()))
            target_of[j] = target_of[nearest]
    new = np.empty_like(lab)
    for j in range(len(centres)):
        sel = labels == j
        d = lab[sel] - centres[j]
        new[sel] = _PROTO_LAB[target_of[j]] + d * np.array([settings.shading, settings.chroma_detail, settings.chroma_detail])
    new[:, 0] = np.clip(new[:, 0], 0.0, 100.0)
    out = arr.copy()
    out[region] = np.clip(np.round(lab2rgb(new[None])[0] * 255.0), 0, 255).astype(np.uint8)
    before = pixel_color_terms(arr[region])
    after = pixel_color_terms(out[region])
    return Recolored(out, [target_of[j] for j in big], [float(sizes[j]) for j in big], float(np.mean(before != after)))


def recolor_copies(rgb: np.ndarray, mask: np.ndarray, lineart: np.ndarray | None, settings: RecolorSettings,
                   key: int) -> list[Recolored]:
    """``settings.copies`` palette swaps of one sprite, seeded by ``(settings.seed, key)``.

    The body colours of the copies are distinct and start at a seeded offset in
    ``settings.body_colors``, so over many sprites every body colour is used about equally.
    """
    rng = np.random.default_rng([settings.seed, key])
    n = len(settings.body_colors)
    start = int(rng.integers(n))
    out = []
    for c in range(settings.copies):
        body = settings.body_colors[(start + c * max(1, n // max(1, settings.copies))) % n] if settings.copies <= n \
            else settings.body_colors[(start + c) % n]
        out.append(recolor(rgb, mask, lineart, [body], settings, rng))
    return out
