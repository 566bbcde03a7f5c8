"""Flat colouring at the drawing's own size: the line art's closed regions filled with the model's colours.

The model paints at its own resolution (64 px on ``cpu``) and blurs; a colourist keeps the line layer
untouched and fills closed regions flat (the "flats" layer). :func:`flat_fill` does that as a pure function:

    line art (any size) + the model's output (its size) -> the drawing at the line art's size

1. **Regions** (:func:`segment`): stroke pixels are the line art's dark pixels (luma below ``stroke_luma``).
   Gaps of up to ``2 * gap`` px in the strokes are closed by *trapped-ball filling*: the non-stroke space is
   labelled after the strokes are dilated by a disk of radius ``gap`` (the "ball" cannot pass a gap narrower than
   itself), and each label then grows back over the pixels the dilation took, to the nearest seed inside the same
   undilated component (a chamfer distance transform, ``scipy.ndimage.distance_transform_cdt``). Components too thin for the ball (eye
   highlights, specks) keep a label of their own. Regions that touch the image border, or lie mostly outside the
   character mask when one is given, are background.
2. **Colours**: each region gets the per-channel CIELAB median of the model's output (upsampled to the
   line art's size, nearest) over its *interior* pixels, those whose model pixel holds no stroke (``margin`` > 0: and lies
   that many model pixels away from one), where the model's own blurred outline does not reach; a region with no
   interior pixel has no colour of its own at the model's resolution and counts as tiny. Regions smaller than ``min_area`` model pixels carry no colour
   of their own at the model's resolution: they take the colour of the region around them
   (``tiny="inherit"``, the default: measured on val sprites with the ground truth as the "model",
   ``benchmarks/bench_flat.py --rules``) or keep the line art's white (``tiny="keep"``).
3. **Layers**: ``flats`` (the region colours under the lines too, background white or transparent), ``lines``
   (the strokes as an RGBA layer, alpha = darkness) and the ``composite``: stroke pixels copied from the line art
   exactly, every other pixel the flat colour multiplied by the line art (anti-aliased edges stay soft).

Bad input never becomes a page-sized blob: a drawing with no dark stroke or no closed region raises
:class:`FlatError`; strokes with large gaps (the character's regions merge with the background, see
:func:`leak_check`) give a result whose ``fallback`` names why, with the raw output enlarged as the composite, the
drawing's strokes (and, with a mask, its background) put back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import lab2rgb, rgb2lab

log = logging.getLogger(__name__)

#: Line-art pixels darker than this luma (0-255) are strokes: the line's core and its darker anti-aliasing (128 let the
#: thin 256 px strokes of 2 of 77 test sprites fall apart into gaps wider than the ball; bench_flat.py --rules).
STROKE_LUMA = 160
#: Radius (px at the line art's size) of the ball of trapped-ball filling: closes stroke gaps up to 2 * GAP px.
GAP = 2
#: Interior pixels lie at least this many *model* pixels beyond the model pixels a stroke crosses (0: only those).
MARGIN = 0.0
#: Regions under this many model pixels of area are "tiny" (see ``tiny``).
MIN_AREA = 1.0
#: How tiny regions are coloured: "inherit" (the colour of the region around them) or "keep" (the line art's).
TINY_RULES: tuple[str, ...] = ("inherit", "keep")
#: The character is "leaking" when more than this share of the mask lies in background regions.
MAX_BACKGROUND_IN_MASK = 0.25
#: An upload is coloured at its own size up to this many pixels on its longest side (larger ones are scaled down).
MAX_SIDE = 1024


class FlatError(ValueError):
    """The line art cannot be flat-coloured (no strokes, no closed region); the message says why and what to do."""


@dataclass(frozen=True)
class Regions:
    """The closed regions of a line drawing at its own size."""

    labels: np.ndarray  # int32 [H, W]: 0 on strokes, 1..n the regions
    stroke: np.ndarray  # bool [H, W]: the dark stroke pixels
    background: np.ndarray  # bool [n + 1]: label -> is background (index 0, the strokes, is False)
    under: np.ndarray  # int32 [H, W]: labels with the strokes given to the nearest region (the flats under the lines)
    note: str = ""  # how the background was found

    @property
    def n(self) -> int:
        return int(self.background.size - 1)

    @property
    def areas(self) -> np.ndarray:
        return np.bincount(self.labels.ravel(), minlength=self.n + 1)

    @property
    def character(self) -> np.ndarray:
        """bool [H, W]: the pixels of non-background regions."""
        return ~self.background[self.labels] & ~self.stroke


@dataclass(frozen=True)
class FlatResult:
    """What :func:`flat_fill` returns: the composite, and the layers a colourist works with, at the line art's size."""

    composite: Image.Image  # RGB, or RGBA when the drawing was transparent
    region_colors: np.ndarray  # uint8 [n + 1, 3]: the colour of each label (0 = strokes)
    regions: Regions
    line_rgb: np.ndarray = field(repr=False)  # the drawing on white, uint8 [H, W, 3]
    luma: np.ndarray = field(repr=False)  # its luma, float32 [H, W]
    alpha: np.ndarray | None = field(default=None, repr=False)  # the drawing's alpha when it was transparent
    fallback: str = ""  # "" when flat-filled; else why the composite is the raw output upsampled

    @property
    def ok(self) -> bool:
        return not self.fallback

    @property
    def transparent(self) -> bool:
        return self.alpha is not None

    def flats(self, transparent: bool = True) -> Image.Image:
        """The flats layer: each region's colour, continued under the strokes; background transparent (RGBA) or
        white (RGB). After a fallback (``not ok``) the regions are not to be trusted: do not offer this layer."""
        flat_rgb = _take_rgb(self.region_colors, self.regions.under)
        bg = self.regions.background[self.regions.under]
        if not transparent:
            return Image.fromarray(np.where(bg[..., None], np.uint8(255), flat_rgb), "RGB")
        return Image.fromarray(np.dstack([flat_rgb, np.where(bg, 0, 255).astype(np.uint8)]), "RGBA")

    def lines(self, transparent: bool = True) -> Image.Image:
        """The line layer: the drawing's strokes, alpha = their darkness (RGBA), or the drawing on white (RGB)."""
        if not transparent:
            return Image.fromarray(self.line_rgb, "RGB")
        ink = (255 - np.clip(np.round(self.luma), 0, 255)).astype(np.uint8)
        return Image.fromarray(np.dstack([self.line_rgb, ink]), "RGBA")


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------
def _rgba(img: Image.Image | np.ndarray) -> np.ndarray:
    """uint8 [H, W, 4] from a PIL image (any mode) or an RGB/RGBA/grey array."""
    if isinstance(img, Image.Image):
        return np.asarray(img.convert("RGBA"), dtype=np.uint8)
    a = np.asarray(img)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.dtype != np.uint8:
        a = np.clip(np.round(a.astype(np.float64) * (255.0 if a.max(initial=0) <= 1.0 else 1.0)), 0, 255).astype(np.uint8)
    if a.shape[2] == 3:
        a = np.concatenate([a, np.full(a.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return a


def line_layer(lineart: Image.Image | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(RGB on white uint8 [H, W, 3], luma float32 [H, W], alpha uint8 [H, W] or None when opaque) of a drawing."""
    a = _rgba(lineart)
    alpha = a[..., 3]
    if (alpha == 255).all():
        rgb = np.ascontiguousarray(a[..., :3])
        out_alpha = None
    else:
        f = alpha.astype(np.float32)[..., None] / 255.0
        rgb = np.round(a[..., :3].astype(np.float32) * f + 255.0 * (1.0 - f)).astype(np.uint8)
        out_alpha = alpha.copy()
    luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return rgb, luma, out_alpha


def fit_size(img: Image.Image, max_side: int = MAX_SIDE) -> tuple[Image.Image, str]:
    """``img`` unchanged when its longest side is at most ``max_side``; else scaled down to it, with a note."""
    side = max(img.size)
    if side <= max_side:
        return img, ""
    scale = max_side / side
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS), (
        f"the drawing is {img.width}x{img.height}: coloured at {size[0]}x{size[1]} (longest side {max_side} px at most)")


# --------------------------------------------------------------------------------------------
# 1. regions
# --------------------------------------------------------------------------------------------
def _disk(radius: int) -> np.ndarray:
    """The discrete disk of ``radius`` px (with the 4 axis neighbours at the rim)."""
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    return x * x + y * y <= radius * radius + radius


def segment(lineart: Image.Image | np.ndarray, mask: np.ndarray | Image.Image | None = None, *, gap: int = GAP,
            stroke_luma: float = STROKE_LUMA, luma: np.ndarray | None = None) -> Regions:
    """The closed regions of ``lineart`` with stroke gaps up to ``2 * gap`` px closed (trapped-ball filling).

    ``mask`` (bool or L image, the character, optional): regions mostly outside it are background too.
    ``luma``: the line art's luma when the caller has it already. Raises :class:`FlatError` when the drawing has no
    stroke pixel.
    """
    if luma is None:
        _, luma, _ = line_layer(lineart)
    stroke = luma < stroke_luma
    if not stroke.any():
        raise FlatError(f"no dark stroke found (no pixel of luma < {stroke_luma:g}): flat colouring needs dark lines "
                        "on a light background")
    free = ~stroke
    four = ndimage.generate_binary_structure(2, 1)
    comp, n_comp = ndimage.label(free, structure=four)
    # where the ball of radius ``gap`` fits: the free space minus the strokes dilated by the ball
    if gap > 0:
        seeds, n_seed = ndimage.label(~ndimage.binary_dilation(stroke, structure=_disk(gap)), structure=four)
    else:
        seeds, n_seed = comp.copy(), n_comp
    # the undilated component each seed lies in (a seed is connected in free space, so it lies in exactly one)
    seed_comp = np.zeros(n_seed + 1, np.int64)
    if n_seed:
        seed_comp[seeds[seeds > 0]] = comp[seeds > 0]
        # grow: every pixel (strokes too: the flats continue under the lines) takes the nearest seed pixel's label ...
        iy, ix = ndimage.distance_transform_cdt(seeds == 0, metric="chessboard", return_distances=False,
                                                return_indices=True)
        grown = seeds[iy, ix]
    else:
        grown = np.zeros_like(seeds)
    # ... when that seed lies in the pixel's own component; components with no seed of their own (thinner than the
    # ball) and pixels whose nearest seed is across a stroke get a label per component
    wrong = free & (seed_comp[grown] != comp)
    if wrong.any():
        grown = np.where(wrong, n_seed + comp, grown)
    grown, n = _relabel(grown)
    labels = np.where(free, grown, 0)
    background = np.zeros(n + 1, bool)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    background[border[border > 0]] = True
    note = "background: the regions touching the image border"
    if mask is not None:
        m = _bool_mask(mask, labels.shape)
        areas = np.bincount(labels.ravel(), minlength=n + 1)
        inside = np.bincount(labels.ravel(), weights=m.ravel(), minlength=n + 1)
        outside = inside < 0.5 * np.maximum(areas, 1)
        outside[0] = False
        background |= outside
        note += " or lying mostly outside the character mask"
    return Regions(labels.astype(np.int32), stroke, background, grown.astype(np.int32), note)


def _relabel(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels renumbered 1..n in order of first appearance (0 stays 0)."""
    used = np.flatnonzero(np.bincount(labels.ravel()))
    used = used[used > 0]
    lut = np.zeros(int(labels.max(initial=0)) + 1, np.int64)
    lut[used] = np.arange(1, used.size + 1)
    return np.take(lut, labels), int(used.size)


def _bool_mask(mask: np.ndarray | Image.Image, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(mask, Image.Image):
        if mask.size != (shape[1], shape[0]):
            mask = mask.convert("L").resize((shape[1], shape[0]), Image.Resampling.BOX)
        mask = np.asarray(mask.convert("L")) >= 128
    m = np.asarray(mask)
    if m.dtype != bool:
        m = m >= (128 if m.max(initial=0) > 1 else 0.5)
    if m.shape != tuple(shape[:2]):
        raise ValueError(f"the mask is {m.shape[1]}x{m.shape[0]} but the line art is {shape[1]}x{shape[0]}")
    return m


def leak_check(regions: Regions, mask: np.ndarray | Image.Image | None = None,
               max_background_in_mask: float = MAX_BACKGROUND_IN_MASK) -> str:
    """Why a flat fill of these regions would be wrong ("" when it is fine).

    * no closed region at all (every region is background);
    * with a character ``mask``: more than ``max_background_in_mask`` of it lies in background regions, i.e. the
      strokes have gaps wider than the ball and the inside flows out to the border;
    * without a mask: one region covers more than half of the image (a frame, or an inside that leaked).
    """
    areas = regions.areas.astype(np.float64)
    inner = ~regions.background
    inner[0] = False
    if not inner.any():
        return "no closed region: every region of the drawing reaches its border (strokes with large gaps?)"
    total = float(regions.labels.size)
    if mask is not None:
        m = _bool_mask(mask, regions.labels.shape) & ~regions.stroke
        if m.any():
            share = float((regions.background[regions.labels] & m).sum() / m.sum())
            if share > max_background_in_mask:
                return (f"{share:.0%} of the character lies in regions that reach the image border: its strokes have "
                        f"gaps wider than {2 * GAP} px, so a flat fill would flood the background")
    if mask is None:  # with a mask, a big region is the character itself (a tightly cropped drawing)
        big = float(areas[inner].max() / total)
        if big > 0.5:
            return f"one closed region covers {big:.0%} of the drawing (a frame, or strokes with large gaps)"
    return ""


# --------------------------------------------------------------------------------------------
# 2. colours
# --------------------------------------------------------------------------------------------
def _upsampled_lab(output: Image.Image | np.ndarray, size: tuple[int, int], resample: int = Image.Resampling.NEAREST
                   ) -> np.ndarray:
    """The model's output in CIELAB at the model's size, upsampled to ``size`` (W, H): float32 [H, W, 3].

    Nearest by default: a model pixel's own colour over its footprint, not blended with the (stroke-darkened)
    neighbours that bilinear interpolation would mix into a small region's pixels."""
    out = _rgba(output)[..., :3]
    lab = rgb2lab(out).astype(np.float32)
    if out.shape[1] == size[0] and out.shape[0] == size[1]:
        return lab
    chans = [np.asarray(Image.fromarray(lab[..., c], "F").resize(size, resample)) for c in range(3)]
    return np.stack(chans, axis=-1)


def region_medians(lab: np.ndarray, labels: np.ndarray, use: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-label, per-channel median of ``lab`` [H, W, 3] over the pixels where ``use``: (float [n+1, 3], count [n+1]).

    Vectorised: one sort of (label, value) keys per channel (values to 1/256); labels with no used pixel get NaN.
    """
    lbl = labels[use].astype(np.int64)
    counts = np.bincount(lbl, minlength=n + 1)
    med = np.full((n + 1, 3), np.nan, np.float64)
    if lbl.size == 0:
        return med, counts
    lab_used = lab[use]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    have = counts > 0
    lo = starts[have] + (counts[have] - 1) // 2
    hi = starts[have] + counts[have] // 2
    # one integer sort per channel: the label in the high bits, the value quantised to 1/256 in the low 18 bits
    q = np.clip(np.round((lab_used.astype(np.float64) + 256.0) * 256.0), 0, (1 << 18) - 1).astype(np.int64)
    for c in range(3):
        vs = np.sort((lbl << 18) | q[:, c]) & ((1 << 18) - 1)
        med[have, c] = 0.5 * (vs[lo] + vs[hi]) / 256.0 - 256.0
    return med, counts


#: Colours are taken from at most about this many pixels (a regular grid of the drawing for larger ones).
SAMPLE_PIXELS = 1 << 16


def _near_strokes(stroke: np.ndarray, model_w: int, margin: float) -> np.ndarray:
    """bool [H, W]: pixels whose model pixel lies within ``margin`` model pixels of a model pixel holding a stroke."""
    h, w = stroke.shape
    model_h = max(1, round(h * model_w / w))
    small = np.asarray(Image.fromarray(stroke.astype(np.uint8) * 255).resize((model_w, model_h), Image.Resampling.BOX)) > 0
    r = int(np.ceil(margin))
    if r > 0:
        small = ndimage.binary_dilation(small, structure=_disk(r) if margin >= 1.5 else np.ones((3, 3), bool),
                                        iterations=1)
    return np.asarray(Image.fromarray(small.astype(np.uint8) * 255).resize((w, h), Image.Resampling.NEAREST)) > 0


def region_colors(regions: Regions, output: Image.Image | np.ndarray, *, margin: float = MARGIN,
                  min_area: float = MIN_AREA, tiny: str = "inherit") -> np.ndarray:
    """uint8 [n + 1, 3]: the flat colour of each region (background and label 0 white)."""
    if tiny not in TINY_RULES:
        raise ValueError(f"tiny must be one of {TINY_RULES}, not {tiny!r}")
    h, w = regions.labels.shape
    out_w = output.width if isinstance(output, Image.Image) else np.asarray(output).shape[1]
    scale = w / max(1, out_w)  # line-art px per model px
    lab = _upsampled_lab(output, (w, h))
    n = regions.n
    labels = regions.labels
    interior = (labels > 0) & ~_near_strokes(regions.stroke, out_w, margin)
    step = max(1, int(np.sqrt(labels.size / SAMPLE_PIXELS)))
    grid = np.zeros(labels.shape, bool)
    grid[::step, ::step] = True
    med, _ = region_medians(lab, labels, interior & grid, n)
    missing = np.isnan(med[:, 0])
    missing[0] = False
    has_interior = np.bincount(labels[interior], minlength=n + 1) > 0
    if missing.any():  # small regions the grid missed: all their interior pixels
        med_all, _ = region_medians(lab, labels, interior & missing[labels], n)
        med[missing & has_interior] = med_all[missing & has_interior]
    med[np.isnan(med[:, 0])] = (100.0, 0.0, 0.0)  # no pixel to take a colour from: white (tiny rules below)
    colors = np.clip(np.round(lab2rgb(med[None, 1:].astype(np.float64))[0] * 255.0), 0, 255).astype(np.uint8)
    colors = np.concatenate([np.full((1, 3), 255, np.uint8), colors], axis=0)
    areas = regions.areas.astype(np.float64) / (scale * scale)
    small = ((areas < min_area) | ~has_interior) & ~regions.background
    small[0] = False
    if small.any():
        if tiny == "keep":
            colors[small] = 255
        else:  # the colour of the nearest pixel of a region that is not tiny and not background
            donor = (labels > 0) & ~small[labels] & ~regions.background[labels]
            if donor.any():
                iy, ix = ndimage.distance_transform_cdt(~donor, metric="chessboard", return_distances=False,
                                                        return_indices=True)
                tiny_px = small[labels]
                # each tiny region takes the donor label most of its pixels are nearest to
                src = labels[iy[tiny_px], ix[tiny_px]]
                tl = labels[tiny_px]
                pair = np.unique(np.stack([tl, src], 1), axis=0, return_counts=True)
                best: dict[int, tuple[int, int]] = {}
                for (t, s), c in zip(pair[0].tolist(), pair[1].tolist(), strict=True):
                    if c > best.get(t, (0, -1))[1]:
                        best[t] = (s, c)
                for t, (s, _) in best.items():
                    colors[t] = colors[s]
    colors[regions.background] = 255
    return colors


# --------------------------------------------------------------------------------------------
# 3. layers
# --------------------------------------------------------------------------------------------
def _take_rgb(colors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``colors[labels]`` (uint8 [H, W, 3]) through one 32-bit gather instead of three."""
    packed = np.zeros((colors.shape[0], 4), np.uint8)
    packed[:, :3] = colors
    return np.take(packed.view(np.uint32)[:, 0], labels).view(np.uint8).reshape(*labels.shape, 4)[..., :3]


def compose(regions: Regions, colors: np.ndarray, line_rgb: np.ndarray, luma: np.ndarray,
            alpha: np.ndarray | None = None) -> Image.Image:
    """The composite: the strokes exactly as drawn, the background as given, every other pixel its region's flat
    colour multiplied by the drawing (anti-aliased edges stay soft). RGBA with the drawing's transparent background
    when ``alpha`` (uint8 [H, W]) is given."""
    flat_rgb = _take_rgb(colors, regions.under)
    keep = (regions.background[regions.under] | regions.stroke)[..., None]
    shade = np.clip(np.round(luma), 0, 255).astype(np.uint16)[..., None]
    comp = ((flat_rgb.astype(np.uint16) * shade + 127) // 255).astype(np.uint8)  # multiply
    comp = np.where(keep, line_rgb, comp)
    if alpha is not None:
        out_alpha = np.where(regions.background[regions.under] & ~regions.stroke, alpha, 255).astype(np.uint8)
        return Image.fromarray(np.dstack([comp, out_alpha]), "RGBA")
    return Image.fromarray(comp, "RGB")


def flat_fill(lineart: Image.Image | np.ndarray, output: Image.Image | np.ndarray,
              mask: np.ndarray | Image.Image | None = None, *, gap: int = GAP, margin: float = MARGIN,
              min_area: float = MIN_AREA, tiny: str = "inherit", stroke_luma: float = STROKE_LUMA,
              check_leaks: bool = True, regions: Regions | None = None) -> FlatResult:
    """The drawing coloured flat at its own size (see the module docstring).

    ``lineart``: the drawing (any size; white or transparent background). ``output``: the model's image (any size,
    usually smaller). ``mask``: the character at the drawing's size (optional; improves the background test and the
    leak check). ``regions``: :func:`segment` of this drawing and mask when the caller has it (many outputs of one
    drawing). Raises :class:`FlatError` for a drawing with no stroke; a drawing whose strokes leak returns a
    result with ``fallback`` set and the raw output enlarged (strokes and background put back) as the composite.
    """
    line_rgb, luma, alpha = line_layer(lineart)
    if regions is None:
        regions = segment(line_rgb, mask, gap=gap, stroke_luma=stroke_luma, luma=luma)
    elif regions.labels.shape != luma.shape:
        raise ValueError(f"regions of a {regions.labels.shape[1]}x{regions.labels.shape[0]} drawing given for a "
                         f"{luma.shape[1]}x{luma.shape[0]} one")
    colors = region_colors(regions, output, margin=margin, min_area=min_area, tiny=tiny)
    why = leak_check(regions, mask) if check_leaks else ""
    if why:
        log.info("flat fill fell back to the raw output: %s", why)
        composite = _fallback(output, line_rgb, regions.stroke, mask)
    else:
        composite = compose(regions, colors, line_rgb, luma, alpha)
    return FlatResult(composite, colors, regions, line_rgb, luma, alpha, why)


def _fallback(output: Image.Image | np.ndarray, line_rgb: np.ndarray, stroke: np.ndarray,
              mask: np.ndarray | Image.Image | None) -> Image.Image:
    """The raw output enlarged (bicubic) to the drawing's size, with the drawing's strokes copied back exactly and,
    with a character mask, the background outside it restored: never a flood of colour over the page."""
    h, w = stroke.shape
    up = np.asarray(Image.fromarray(_rgba(output)[..., :3], "RGB").resize((w, h), Image.Resampling.BICUBIC)).copy()
    keep = stroke if mask is None else stroke | ~_bool_mask(mask, stroke.shape)
    up[keep] = line_rgb[keep]
    return Image.fromarray(up, "RGB")


def recolor(result: FlatResult, colors: np.ndarray) -> FlatResult:
    """The same regions with new region colours (e.g. exact colours, :mod:`t2p_utils.demo.exact_colors`)."""
    colors = np.asarray(colors, dtype=np.uint8)
    if colors.shape != result.region_colors.shape:
        raise ValueError(f"expected {result.region_colors.shape} region colours, got {colors.shape}")
    composite = compose(result.regions, colors, result.line_rgb, result.luma, result.alpha) if result.ok \
        else result.composite
    return replace(result, composite=composite, region_colors=colors)
