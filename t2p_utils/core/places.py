"""Places on a character: where an instruction puts a colour ("red at the top", "blue around the edges").

One geometry for the three places that use it, so that what training is shown, what the captioner says
and what the binding metric measures mean the same thing:

* the palette captioner (:mod:`t2p_utils.core.palette`) names a colour's place from its pixels' centroid in
  the character's bounding box (top / bottom) and its distance from the character's centroid (middle /
  edges), with the thresholds below;
* part-level recolouring (:func:`t2p_utils.captions.recolor.part_recolor`) paints one place one colour and the rest
  another, splitting the character at a seeded cut (:func:`split_masks`);
* the binding metric (:func:`t2p_utils.compare.metrics.binding_score`) measures each colour's share of the pixels
  that are unambiguously in a place (:func:`place_masks`: the top and bottom 40 % of the box, the inner and
  outer rings), leaving out the band where top and bottom meet.

Everything works on a boolean character region ``[H, W]`` (the mask minus the outline).
"""

from __future__ import annotations

import numpy as np

#: Place pairs an instruction can bind two colours to: (first place, second place).
PLACE_PAIRS: dict[str, tuple[str, str]] = {"top_bottom": ("top", "bottom"), "middle_edges": ("middle", "edges")}
PLACES: tuple[str, ...] = ("top", "bottom", "middle", "edges")
#: The share of the character's box height that counts as its top (and, from below, its bottom).
EDGE_BAND = 0.4
#: Distance from the centroid, relative to the mean distance, below which a pixel is in the middle ...
MIDDLE_R = 0.75
#: ... and above which it is at the edges.
EDGES_R = 1.15


class PlaceError(ValueError):
    """A region that has no pixels (nothing to place colours on)."""


def _coords(region: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each region pixel's relative height in the box (0 = top row, 1 = bottom row) and relative radius."""
    m = np.asarray(region).astype(bool)
    if m.ndim != 2 or not m.any():
        raise PlaceError("the character region is empty: no place to measure or paint")
    ys, xs = np.nonzero(m)
    rel_y = (ys - ys.min()) / max(float(ys.max() - ys.min()), 1.0)
    r = np.hypot(ys - ys.mean(), xs - xs.mean())
    rel_r = r / max(float(r.mean()), 1e-6)
    return m, rel_y, rel_r


def _scatter(m: np.ndarray, sel: np.ndarray) -> np.ndarray:
    out = np.zeros(m.shape, dtype=bool)
    out[m] = sel
    return out


def place_masks(region: np.ndarray) -> dict[str, np.ndarray]:
    """The pixels of ``region`` that are clearly in each of :data:`PLACES` (boolean masks of its shape).

    ``top``/``bottom``: the upper/lower :data:`EDGE_BAND` of the region's bounding box; ``middle``/``edges``:
    pixels nearer to / farther from the region's centroid than :data:`MIDDLE_R` / :data:`EDGES_R` times the
    mean distance. The two places of a pair never overlap.
    """
    m, rel_y, rel_r = _coords(region)
    return {"top": _scatter(m, rel_y < EDGE_BAND), "bottom": _scatter(m, rel_y > 1 - EDGE_BAND),
            "middle": _scatter(m, rel_r < MIDDLE_R), "edges": _scatter(m, rel_r > EDGES_R)}


def split_masks(region: np.ndarray, pair: str, cut: float = 0.5,
                labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``region`` cut in two for ``pair`` (a key of :data:`PLACE_PAIRS`): every pixel goes to one side.

    ``top_bottom``: rows above ``cut`` of the box height are the top; ``middle_edges``: pixels whose
    distance from the centroid is below the ``cut`` quantile are the middle. With ``labels`` (the closed
    regions of the line art, an int array of the region's shape, 0 = none; :func:`t2p_utils.core.flat.segment`),
    the cut follows the lines as a colourist's would: each closed region goes whole to the side most of its
    pixels fall on. Used to paint training pairs.
    """
    if pair not in PLACE_PAIRS:
        raise ValueError(f"unknown place pair {pair!r}; choose from {list(PLACE_PAIRS)}")
    if not 0 < cut < 1:
        raise ValueError(f"cut must be in (0, 1), not {cut}")
    m, rel_y, rel_r = _coords(region)
    first = by_pixel = rel_y < cut if pair == "top_bottom" else rel_r < np.quantile(rel_r, cut)
    if labels is not None:
        lab = np.asarray(labels)[m].astype(np.int64)
        if lab.shape != first.shape:
            raise ValueError(f"labels of shape {np.shape(labels)} do not match the region {m.shape}")
        n = int(lab.max(initial=0)) + 1
        votes = np.bincount(lab, weights=first.astype(np.float64), minlength=n) / np.maximum(
            np.bincount(lab, minlength=n), 1)
        first = np.where(lab > 0, votes[lab] > 0.5, first)
        if first.all() or not first.any():  # one region holds (nearly) everything: cut through it after all
            first = by_pixel
    return _scatter(m, first), _scatter(m, ~first)
