"""Counterfactual recolouring: the same line art with other colours (DESIGN.md section 6).

In the sprite data every character has exactly one colouring, so a model can predict the
colours from the line art alone and ignore the words. A *palette swap* breaks that: the
character region (the mask minus the drawn outline) is split into its colour clusters
(k-means in CIELAB, as the palette captioner does) and each cluster is moved to the
prototype of a basic colour term (:data:`t2p_utils.core.colors.BASIC_PROTOTYPES`), keeping a
damped copy of the cluster's own lightness and chroma variation so that shading survives.
Outline pixels (dark in the line art, or thin black) and the background are copied unchanged.

The recoloured image is then captioned by the *same* captioner that captioned the original
(palette for ``clip`` on the offline profiles, the CNN-LSTM for ``cnn_lstm``, clip-interrogator
on ``full``): see :func:`t2p_utils.captions.sets.augment_source`. This module only makes images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from skimage.color import lab2rgb

from t2p_utils.core.colors import BASIC_COLORS, BASIC_PROTOTYPES, pixel_color_terms, rgb_to_lab
from t2p_utils.core.palette import kmeans_lab, outline_pixels

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


def _clusters(rgb: np.ndarray, mask: np.ndarray, lineart: np.ndarray | None, settings: RecolorSettings,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(image, recolourable region, its pixels' Lab, their cluster, the cluster centres); raises RecolorSkip."""
    arr = np.asarray(rgb, dtype=np.uint8)
    region = region_of(arr, mask, lineart, settings.line_threshold)
    if not np.asarray(mask).astype(bool).any():
        raise RecolorSkip("empty mask")
    if region.sum() < 8:
        raise RecolorSkip("no fill inside the mask (nothing but outline)")
    lab = rgb_to_lab(arr[region])
    sample = lab if len(lab) <= 4096 else lab[np.sort(rng.choice(len(lab), 4096, replace=False))]
    centres, _ = kmeans_lab(sample, settings.k, settings.seed)
    labels = ((lab[:, None, :] - centres[None, :, :]) ** 2).sum(-1).argmin(1)
    return arr, region, lab, labels, centres


def _shaded(lab: np.ndarray, labels: np.ndarray, centres: np.ndarray, target: np.ndarray,
            settings: RecolorSettings) -> np.ndarray:
    """Each pixel moved to its target Lab (``target``: one row per pixel) plus a damped copy of its offset from its
    cluster's centre."""
    damp = np.array([settings.shading, settings.chroma_detail, settings.chroma_detail])
    new = target + (lab - centres[labels]) * damp
    new[:, 0] = np.clip(new[:, 0], 0.0, 100.0)
    return new


def _paint(arr: np.ndarray, region: np.ndarray, new_lab: np.ndarray) -> np.ndarray:
    out = arr.copy()
    out[region] = np.clip(np.round(lab2rgb(new_lab[None])[0] * 255.0), 0, 255).astype(np.uint8)
    return out


def recolor(rgb: np.ndarray, mask: np.ndarray, lineart: np.ndarray | None, targets: list[str] | None = None,
            settings: RecolorSettings = RecolorSettings(), rng: np.random.Generator | None = None) -> Recolored:
    """One palette swap of ``rgb`` inside ``mask`` (outline and background unchanged).

    ``targets``: the term for each cluster, largest first (drawn from ``rng`` when None; when
    shorter than the number of clusters the rest are drawn too). Raises :class:`RecolorSkip`
    when there is nothing to recolour.
    """
    rng = rng if rng is not None else np.random.default_rng(settings.seed)
    arr, region, lab, labels, centres = _clusters(rgb, mask, lineart, settings, rng)
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
    per_cluster = np.array([_PROTO_LAB[target_of[j]] for j in range(len(centres))])
    new = _shaded(lab, labels, centres, per_cluster[labels], settings)
    out = _paint(arr, region, new)
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


#: Colours a part-level recolouring paints a place: the chromatic basic terms and white (the seed's "white belly").
TWO_TONE_COLORS: tuple[str, ...] = BODY_COLORS + ("white",)


def part_recolor(rgb: np.ndarray, mask: np.ndarray, lineart: np.ndarray | None, pair: str, colors: tuple[str, str],
                 cut: float = 0.5, settings: RecolorSettings = RecolorSettings(),
                 rng: np.random.Generator | None = None, closed: np.ndarray | None = None) -> Recolored:
    """The character in two colours: the first place of ``pair`` in ``colors[0]``, the rest in ``colors[1]``.

    ``pair`` is a key of :data:`t2p_utils.core.places.PLACE_PAIRS`; the region is split at ``cut``
    (:func:`t2p_utils.core.places.split_masks`), along the line art's closed regions when ``closed`` (their labels) is given
    (:func:`line_regions`). Shading survives as in :func:`recolor` (each pixel keeps a damped
    copy of its offset from its colour cluster's centre); outline and background are unchanged. Raises
    :class:`RecolorSkip` when there is nothing to recolour.
    """
    for c in colors:
        if c not in BASIC_COLORS:
            raise ValueError(f"part recolour: {c!r} is not a basic colour term {list(BASIC_COLORS)}")
    rng = rng if rng is not None else np.random.default_rng(settings.seed)
    return _two_tone(_clusters(rgb, mask, lineart, settings, rng), pair, colors, cut, settings, closed)


def _two_tone(clusters: tuple[np.ndarray, ...], pair: str, colors: tuple[str, str], cut: float,
              settings: RecolorSettings, closed: np.ndarray | None) -> Recolored:
    """:func:`part_recolor` on the sprite's :func:`_clusters` (computed once for all its copies)."""
    from t2p_utils.core.places import split_masks

    arr, region, lab, labels, centres = clusters
    first, _ = split_masks(region, pair, cut, closed)
    in_first = first[region]
    target = np.where(in_first[:, None], _PROTO_LAB[colors[0]], _PROTO_LAB[colors[1]])
    out = _paint(arr, region, _shaded(lab, labels, centres, target, settings))
    before = pixel_color_terms(arr[region])
    after = pixel_color_terms(out[region])
    share = float(in_first.mean())
    return Recolored(out, list(colors), [share, 1.0 - share], float(np.mean(before != after)))


def part_copies(rgb: np.ndarray, mask: np.ndarray, lineart: np.ndarray | None, copies: int,
                settings: RecolorSettings, key: int) -> list[tuple[Recolored, str]]:
    """``copies`` part-level recolourings of one sprite that differ in one place at a time, seeded by ``(seed, key)``.

    One place pair (alternating with ``key``), one cut (uniform in [0.35, 0.65]) and one colour clustering per
    sprite; the cut follows the line art's closed regions (:func:`line_regions`). Colours ``a, b, c`` are drawn from
    :data:`TWO_TONE_COLORS`. Copy 0 paints the first place ``a`` and the second ``b``; copy 1 is its swap (``b``,
    ``a``); copy 2 changes the first place only (``c``, ``b``); copy 3 the second only (``a``, ``c``); further copies
    draw new pairs. Returns ``(recoloured, note)`` pairs, the note naming the colour of each place.
    """
    from t2p_utils.core.places import PLACE_PAIRS

    if copies <= 0:
        return []
    rng = np.random.default_rng([settings.seed, key, 1])
    clusters = _clusters(rgb, mask, lineart, settings, rng)  # one k-means and one segmentation per sprite
    closed = line_regions(lineart, mask)
    names = list(PLACE_PAIRS)
    pair = names[key % len(names)]
    cut = float(rng.uniform(0.35, 0.65))
    p1, p2 = PLACE_PAIRS[pair]
    out: list[tuple[Recolored, str]] = []
    while len(out) < copies:
        a, b, c = (str(x) for x in rng.permutation(TWO_TONE_COLORS)[:3])
        for first, second in ((a, b), (b, a), (c, b), (a, c)):
            if len(out) == copies:
                break
            rc = _two_tone(clusters, pair, (first, second), cut, settings, closed)
            out.append((rc, f"part: {first} {p1}, {second} {p2} (cut {cut:.2f})"))
    return out


def line_regions(lineart: np.ndarray | None, mask: np.ndarray) -> np.ndarray | None:
    """The closed regions of the line art (:func:`t2p_utils.core.flat.segment`, gaps of up to 2 px closed at sprite
    size), labels with background regions set to 0; None without line art or strokes."""
    from t2p_utils.core.flat import FlatError, segment

    if lineart is None:
        return None
    line = np.asarray(lineart)
    try:
        regions = segment(np.stack([line] * 3, -1) if line.ndim == 2 else line, np.asarray(mask).astype(bool), gap=1)
    except FlatError:
        return None
    labels = regions.labels.copy()
    labels[regions.background[labels]] = 0
    return labels
