"""Image metrics of the comparison (DESIGN.md section 7) and their bootstrap statistics.

Every image metric takes RGB images (PIL or uint8 ``[H, W, 3]`` arrays) of the *same size*
and returns one float:

* :func:`psnr`, :func:`ssim` -- against the ground truth colour image (faithful instruction).
* :func:`delta_e_in_mask` -- mean CIEDE2000 inside the character mask against the ground truth.
* :func:`background_leakage` -- share of background pixels (outside the mask) whose CIEDE2000
  from white exceeds 10: the seed's failure mode 1 (the model paints the background).
* :func:`line_preservation` -- share of line-art outline pixels (L* < 35 in the line art) that
  are still dark (L* < 35) in the output.
* :func:`color_adherence` -- share of the colours named in the instruction that cover at least
  3 % of the character region once every pixel is named with a basic colour term: the seed's
  failure mode 2 (the model ignores the colour words). NaN when the instruction names no colour.
* :func:`named_share` -- share of the character region painted in *any* colour the instruction
  names: colour adherence weighted by coverage, so multi-coloured blotches that touch every
  colour at 3 % no longer pass (random noise scores about 2/11 for two named colours, not 0.4).
* :func:`color_control_matrix` / :func:`color_control` -- the causal test of failure mode 2: the
  same line art and seed, K colours asked one at a time; per colour, its share of the character
  when it was asked minus its mean share when the other colours were asked. A model that
  ignores the text scores exactly 0, whatever its images look like; one that paints the asked
  colour over the whole character scores 1.
* :class:`ClipDirectionScorer` -- CLIP direction similarity of the InstructPix2Pix paper
  (Brooks et al. 2023, after StyleGAN-NADA): cosine between the change of the image embedding
  and the change of the caption embedding. Any open_clip model; used on the ``full`` profile.

* :func:`region_purity` -- share of the drawing's closed regions (:func:`t2p_utils.core.flat.segment`) painted in one
  basic colour (at least :data:`PURE_SHARE` of a region's interior pixels named with its most common term):
  a flat colouring scores 1, speckle and noise score near 0, and colour that ignores the drawing's regions
  (a blotch across a stroke) fails the regions it straddles.

Statistics: :func:`bootstrap_ci` (percentile bootstrap of the mean, seeded) and
:func:`paired_difference` (bootstrap of the mean of per-id differences between two models).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from skimage.metrics import structural_similarity

from t2p_utils.core.colors import BASIC_COLORS, color_coverage, color_words, delta_e2000, rgb_to_lab
from t2p_utils.core.io import rgb_on_white
from t2p_utils.core.palette import with_article

log = logging.getLogger(__name__)

ImageLike = Image.Image | np.ndarray

#: ΔE2000 from white above which a background pixel counts as painted.
LEAKAGE_DELTA_E = 10.0
#: L* below which a pixel counts as a dark outline pixel.
OUTLINE_L = 35.0
#: Share of the character region a named colour must cover to count as present.
MIN_COLOR_SHARE = 0.03

WHITE_LAB = rgb_to_lab(np.array([[255, 255, 255]], dtype=np.uint8))[0]


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------
def to_rgb(img: ImageLike) -> np.ndarray:
    """uint8 ``[H, W, 3]`` from a PIL image (any mode; transparency composited onto white) or an array."""
    if isinstance(img, Image.Image):
        return np.asarray(rgb_on_white(img), dtype=np.uint8)
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected an RGB image [H, W, 3], got an array of shape {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        if arr.max(initial=0.0) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
    return arr


def to_mask(mask: ImageLike) -> np.ndarray:
    """bool ``[H, W]`` from a mask image or array (> 127, or > 0.5 for floats, or True is inside)."""
    if isinstance(mask, Image.Image):
        mask = np.asarray(mask.convert("L"))
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., -1] if m.shape[-1] in (2, 4) else m[..., 0]
    if m.dtype == bool:
        return m
    return m > (127 if (m.dtype == np.uint8 or m.max(initial=0) > 1) else 0.5)


def _size(arr: np.ndarray) -> str:
    return f"{arr.shape[1]}x{arr.shape[0]}"


def check_same_size(**arrays: np.ndarray) -> None:
    """Raise ValueError naming every size when the named images are not all the same width x height."""
    shapes = {name: a.shape[:2] for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        listing = ", ".join(f"{name} is {_size(arrays[name])}" for name in shapes)
        raise ValueError(f"images differ in size ({listing}, width x height): resize them to one size first")


# --------------------------------------------------------------------------------------------
# full-reference metrics (faithful instruction vs ground truth)
# --------------------------------------------------------------------------------------------
def psnr(output: ImageLike, target: ImageLike) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels (inf for identical images)."""
    a, b = to_rgb(output), to_rgb(target)
    check_same_size(output=a, target=b)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))


def ssim(output: ImageLike, target: ImageLike) -> float:
    """Structural similarity (scikit-image, 7x7 Gaussian-free window, channels averaged)."""
    a, b = to_rgb(output), to_rgb(target)
    check_same_size(output=a, target=b)
    side = min(a.shape[:2])
    win = min(7, side if side % 2 else side - 1)
    if win < 3:
        raise ValueError(f"SSIM needs images of at least 3x3 pixels, got {_size(a)}")
    return float(structural_similarity(a, b, channel_axis=2, data_range=255, win_size=win))


def delta_e_in_mask(output: ImageLike, target: ImageLike, mask: ImageLike) -> float:
    """Mean CIEDE2000 between output and target over the mask's pixels (NaN for an empty mask)."""
    a, b, m = to_rgb(output), to_rgb(target), to_mask(mask)
    check_same_size(output=a, target=b, mask=m)
    if not m.any():
        return float("nan")
    return float(np.mean(delta_e2000(rgb_to_lab(a[m]), rgb_to_lab(b[m]))))


# --------------------------------------------------------------------------------------------
# no-reference metrics (also used for the counterfactual instruction)
# --------------------------------------------------------------------------------------------
def background_leakage(output: ImageLike, mask: ImageLike, threshold: float = LEAKAGE_DELTA_E) -> float:
    """Share of background pixels (outside ``mask``) whose ΔE2000 from white exceeds ``threshold``.

    NaN when the mask covers the whole image (there is no background to leak into).
    """
    a, m = to_rgb(output), to_mask(mask)
    check_same_size(output=a, mask=m)
    bg = ~m
    if not bg.any():
        return float("nan")
    de = delta_e2000(rgb_to_lab(a[bg]), WHITE_LAB[None, :])
    return float(np.mean(de > threshold))


def outline_mask(lineart: ImageLike, threshold: float = OUTLINE_L) -> np.ndarray:
    """bool ``[H, W]``: the line art's outline pixels (L* below ``threshold``)."""
    return rgb_to_lab(to_rgb(lineart))[..., 0] < threshold


def line_preservation(output: ImageLike, lineart: ImageLike, threshold: float = OUTLINE_L) -> float:
    """Share of the line art's outline pixels (L* < threshold) still dark (L* < threshold) in the output.

    NaN when the line art has no outline pixels.
    """
    a, line = to_rgb(output), to_rgb(lineart)
    check_same_size(output=a, lineart=line)
    lines = outline_mask(line, threshold)
    if not lines.any():
        return float("nan")
    dark = rgb_to_lab(a[lines])[..., 0] < threshold
    return float(np.mean(dark))


def _region_coverage(output: ImageLike, mask: ImageLike, exclude: ImageLike | None) -> dict[str, float] | None:
    """Basic-colour coverage of ``mask`` minus ``exclude`` in ``output``; None for an empty region."""
    a, m = to_rgb(output), to_mask(mask)
    check_same_size(output=a, mask=m)
    if exclude is not None:
        ex = to_mask(exclude)
        check_same_size(output=a, exclude=ex)
        m = m & ~ex
    return color_coverage(a, m) if m.any() else None


def color_adherence(
    output: ImageLike,
    mask: ImageLike,
    instruction: str,
    min_share: float = MIN_COLOR_SHARE,
    exclude: ImageLike | None = None,
) -> float:
    """Share of the basic colours named in ``instruction`` covering >= ``min_share`` of the character region.

    The character region is ``mask`` minus ``exclude`` (pass the line art's outline pixels so
    that the black outlines do not make "black" trivially present). NaN when the instruction
    names no colour or the region is empty.
    """
    words = color_words(instruction)
    if not words:
        return float("nan")
    cov = _region_coverage(output, mask, exclude)
    if cov is None:
        return float("nan")
    return float(np.mean([cov[w] >= min_share for w in words]))


def named_share(
    output: ImageLike,
    mask: ImageLike,
    instruction: str,
    exclude: ImageLike | None = None,
) -> float:
    """Share of the character region (``mask`` minus ``exclude``) painted in a colour the instruction names.

    Coverage-weighted colour adherence: 1 when every character pixel has a named colour, the
    named colours' total share otherwise. NaN when the instruction names no colour or the region is empty.
    """
    words = sorted(set(color_words(instruction)))
    if not words:
        return float("nan")
    cov = _region_coverage(output, mask, exclude)
    if cov is None:
        return float("nan")
    return float(sum(cov[w] for w in words))


def color_control_matrix(outputs: dict[str, ImageLike], region: ImageLike,
                         colors: Sequence[str] | None = None) -> pd.DataFrame:
    """``S[asked, measured]``: share of ``region`` painted ``measured`` in the output made when ``asked`` was asked.

    ``outputs`` maps each asked colour to its output image (same line art, same seed).
    """
    colors = list(colors or outputs)
    unknown = [c for c in colors if c not in BASIC_COLORS]
    if unknown:
        raise ValueError(f"colour control: {unknown} are not basic colour terms {list(BASIC_COLORS)}")
    missing = [c for c in colors if c not in outputs]
    if missing:
        raise ValueError(f"colour control: no output for asked colour(s) {missing}")
    m = to_mask(region)
    rows = {}
    for asked in colors:
        a = to_rgb(outputs[asked])
        check_same_size(output=a, region=m)
        cov = color_coverage(a, m)
        rows[asked] = [cov[c] for c in colors]
    return pd.DataFrame.from_dict(rows, orient="index", columns=colors)


def color_control(matrix: pd.DataFrame) -> float:
    """Mean over colours ``c`` of ``S[c, c] - mean_{a != c} S[a, c]`` (see :func:`color_control_matrix`).

    0 for a model whose output does not depend on the asked colour; 1 for one that paints the
    whole region in the asked colour; NaN with fewer than two colours or an empty region.
    """
    s = matrix.to_numpy(dtype=np.float64)
    k = s.shape[0]
    if k < 2 or s.shape[1] != k or np.isnan(s).any():
        return float("nan")
    diag = np.diag(s)
    off = np.array([np.delete(s[:, j], j).mean() for j in range(k)])
    return float(np.round(np.mean(diag - off), 12))  # shares are pixel counts / n: no meaning below 1e-12


def binding_prompt(template: str, a: str, b: str) -> str:
    """``template`` (see :data:`BINDING_TEMPLATES`) with colour ``a`` in the first place and ``b`` in the second."""
    return template.format(a=a, b=b, a_=with_article(a), b_=with_article(b))


def place_coverage(output: ImageLike, place: np.ndarray) -> dict[str, float] | None:
    """Each basic colour term's share of the ``place`` pixels of ``output`` (None for an empty place)."""
    m = to_mask(place)
    a = to_rgb(output)
    check_same_size(output=a, place=m)
    return color_coverage(a, m) if m.any() else None


def binding_score(out_ab: ImageLike, out_ba: ImageLike, region: ImageLike, pair: str, a: str, b: str) -> float:
    """Causal binding of two colours to two places, from one character asked both ways with the same seed.

    ``out_ab`` was made for "``a`` at the first place of ``pair`` and ``b`` at the second", ``out_ba`` for the
    swap. With ``s(X, P | prompt)`` the share of place ``P`` painted ``X`` (:func:`place_coverage`, places from
    :func:`t2p_utils.core.places.place_masks` of ``region``)::

        binding = 1/4 * [ s(a,P1|ab) - s(a,P1|ba) + s(b,P2|ab) - s(b,P2|ba)
                        + s(b,P1|ba) - s(b,P1|ab) + s(a,P2|ba) - s(a,P2|ab) ]

    1 for a model that paints each place as asked; 0 for one that ignores the words (the same image both
    ways), and 0 for one that paints the whole character the first (or any one) colour named, since the
    swap moves that colour over both places alike. Range [-1, 1]; NaN when a place is empty.
    """
    from t2p_utils.core.places import PLACE_PAIRS, place_masks

    if a == b:
        raise ValueError(f"binding: the two colours must differ, got {a!r} twice")
    for c in (a, b):
        if c not in BASIC_COLORS:
            raise ValueError(f"binding: {c!r} is not a basic colour term {list(BASIC_COLORS)}")
    p1, p2 = (place_masks(to_mask(region))[p] for p in PLACE_PAIRS[pair])
    # each output's colour shares in each place, computed once
    cov = {(o, k): place_coverage(img, place) for o, img in (("ab", to_rgb(out_ab)), ("ba", to_rgb(out_ba)))
           for k, place in ((1, p1), (2, p2))}

    def s(o: str, color: str, k: int) -> float:
        c = cov[(o, k)]
        return float("nan") if c is None else float(c[color])

    terms = [s("ab", a, 1) - s("ba", a, 1), s("ab", b, 2) - s("ba", b, 2),
             s("ba", b, 1) - s("ab", b, 1), s("ba", a, 2) - s("ab", a, 2)]
    return float(np.round(np.mean(terms), 12))


def protect(output: ImageLike, lineart: ImageLike, mask: ImageLike, threshold: float = OUTLINE_L) -> Image.Image:
    """The mask-protected variant: outline pixels and background restored from the line art.

    Generation is left alone inside the character; only pixels that should not change
    (the dark outlines and everything outside the character mask) are copied back.
    """
    a, line, m = to_rgb(output), to_rgb(lineart), to_mask(mask)
    check_same_size(output=a, lineart=line, mask=m)
    keep = outline_mask(line, threshold) | ~m
    out = a.copy()
    out[keep] = line[keep]
    return Image.fromarray(out)


#: A region is pure when at least this share of its interior pixels has one basic colour term.
PURE_SHARE = 0.9
#: Regions with fewer interior pixels than this are not judged (eye highlights, specks).
PURITY_MIN_PIXELS = 16


def region_purity(output: ImageLike, lineart: ImageLike, mask: ImageLike | None = None, regions: Any = None,
                  share: float = PURE_SHARE, min_pixels: int = PURITY_MIN_PIXELS) -> float:
    """Share of the drawing's non-background regions whose interior is painted in one basic colour term.

    Regions come from :func:`t2p_utils.core.flat.segment` of ``lineart`` (pass ``regions`` to reuse them); a region's
    interior is its pixels at least 2 px from a stroke (anti-aliasing and the multiplied line edge excluded), and
    only regions with ``min_pixels`` interior pixels are judged. NaN when none is.
    """
    from t2p_utils.core.colors import pixel_color_terms
    from t2p_utils.core.flat import segment

    a = to_rgb(output)
    if regions is None:
        regions = segment(to_rgb(lineart), None if mask is None else to_mask(mask))
    labels = regions.labels
    check_same_size(output=a, lineart=labels[..., None])
    interior = (labels > 0) & ~regions.background[labels]
    interior &= ~_dilate(regions.stroke, 2)
    lbl = labels[interior]
    if lbl.size == 0:
        return float("nan")
    terms = pixel_color_terms(a[interior]).astype(np.int64)
    k = len(BASIC_COLORS)
    counts = np.bincount(lbl * k + terms, minlength=(regions.n + 1) * k).reshape(regions.n + 1, k)
    total = counts.sum(axis=1)
    judged = total >= min_pixels
    if not judged.any():
        return float("nan")
    pure = counts.max(axis=1) >= share * np.maximum(total, 1)
    return float(pure[judged].mean())


def _dilate(m: np.ndarray, r: int) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_dilation(m, iterations=r)


FAITHFUL_METRICS: tuple[str, ...] = ("psnr", "ssim", "delta_e", "leakage", "line_preservation", "adherence",
                                     "named_share")
COUNTERFACTUAL_METRICS: tuple[str, ...] = ("adherence", "named_share", "leakage", "line_preservation")
#: True where a larger value is better (for the report's arrows and the notebook's prose).
HIGHER_IS_BETTER: dict[str, bool] = {
    "psnr": True,
    "ssim": True,
    "delta_e": False,
    "leakage": False,
    "line_preservation": True,
    "adherence": True,
    "named_share": True,
    "clip_direction": True,
    "color_control": True,
    "region_purity": True,
}


def score_faithful(output: ImageLike, target: ImageLike, lineart: ImageLike, mask: ImageLike, instruction: str,
                   outline_l: float = OUTLINE_L) -> dict[str, float]:
    """All faithful-instruction metrics of one output (``outline_l``: L* below which line-art pixels are outline)."""
    lines = outline_mask(lineart, outline_l)
    return {
        "psnr": psnr(output, target),
        "ssim": ssim(output, target),
        "delta_e": delta_e_in_mask(output, target, mask),
        "leakage": background_leakage(output, mask),
        "line_preservation": line_preservation(output, lineart, outline_l),
        "adherence": color_adherence(output, mask, instruction, exclude=lines),
        "named_share": named_share(output, mask, instruction, exclude=lines),
    }


def score_counterfactual(output: ImageLike, lineart: ImageLike, mask: ImageLike, instruction: str,
                         outline_l: float = OUTLINE_L) -> dict[str, float]:
    """The counterfactual-instruction metrics of one output (no ground truth exists)."""
    lines = outline_mask(lineart, outline_l)
    return {
        "adherence": color_adherence(output, mask, instruction, exclude=lines),
        "named_share": named_share(output, mask, instruction, exclude=lines),
        "leakage": background_leakage(output, mask),
        "line_preservation": line_preservation(output, lineart, outline_l),
    }


# --------------------------------------------------------------------------------------------
# CLIP direction similarity
# --------------------------------------------------------------------------------------------
@dataclass
class ClipDirectionScorer:
    """CLIP direction similarity (InstructPix2Pix paper, section 4): cos(E_I(out) - E_I(in), E_T(c_out) - E_T(c_in)).

    Holds any open_clip model with its image preprocessing and tokenizer; build it with
    :meth:`from_open_clip` (hub weights, ``full``) or directly (tests use a tiny random model).
    """

    model: Any
    preprocess: Callable[[Image.Image], Any]
    tokenizer: Callable[[list[str]], Any]
    device: str = "cpu"

    @classmethod
    def from_open_clip(cls, model_name: str = "ViT-L-14", pretrained: str | None = "openai", device: str = "cpu") -> ClipDirectionScorer:
        import open_clip

        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained, device=device)
        model.eval()
        return cls(model=model, preprocess=preprocess, tokenizer=open_clip.get_tokenizer(model_name), device=device)

    def _normed(self, feats: Any) -> Any:
        return feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def encode_images(self, images: Sequence[ImageLike]) -> Any:
        import torch

        pil = [im if isinstance(im, Image.Image) else Image.fromarray(to_rgb(im)) for im in images]
        batch = torch.stack([self.preprocess(im.convert("RGB")) for im in pil]).to(self.device)
        with torch.no_grad():
            return self._normed(self.model.encode_image(batch).float())

    def encode_texts(self, texts: Sequence[str]) -> Any:
        import torch

        tokens = self.tokenizer(list(texts)).to(self.device)
        with torch.no_grad():
            return self._normed(self.model.encode_text(tokens).float())

    def direction_similarity(
        self,
        inputs: Sequence[ImageLike],
        outputs: Sequence[ImageLike],
        input_captions: Sequence[str],
        output_captions: Sequence[str],
    ) -> np.ndarray:
        """One cosine per (input, output, input caption, output caption) quadruple."""
        n = len(inputs)
        if not (len(outputs) == len(input_captions) == len(output_captions) == n):
            raise ValueError(
                f"direction_similarity needs equal lengths, got {n} inputs, {len(outputs)} outputs, "
                f"{len(input_captions)} input captions, {len(output_captions)} output captions"
            )
        for i, (x, y) in enumerate(zip(inputs, outputs, strict=True)):
            check_same_size(**{f"input[{i}]": to_rgb(x), f"output[{i}]": to_rgb(y)})
        d_img = self.encode_images(outputs) - self.encode_images(inputs)
        d_txt = self.encode_texts(output_captions) - self.encode_texts(input_captions)
        cos = (self._normed(d_img) * self._normed(d_txt)).sum(dim=-1)
        return cos.cpu().numpy().astype(np.float64)


# --------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    mean: float
    ci_low: float
    ci_high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n}


def _clean(values: Sequence[float] | np.ndarray | pd.Series) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[~np.isnan(arr)]


def bootstrap_ci(values: Sequence[float] | np.ndarray | pd.Series, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """Mean and percentile-bootstrap ``level`` interval of ``values`` (NaN dropped; same seed -> same interval).

    Quantiles use the inverted empirical CDF (no interpolation), so +inf values (PSNR of
    identical images) stay usable. An empty input gives NaNs and ``n = 0``.
    """
    x = _clean(values)
    n = int(x.size)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    mean = float(np.mean(x))
    if n == 1:
        return Interval(mean, mean, mean, 1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    means = x[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha], method="inverted_cdf")
    # the percentile interval of a skewed statistic can miss the sample mean by rounding; never report that
    return Interval(mean, float(min(lo, mean)), float(max(hi, mean)), n)


def paired_difference(a: pd.Series, b: pd.Series, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """Mean of ``a - b`` over the ids (index) both have finite values for, with a bootstrap interval.

    ``a`` and ``b`` are per-id scores of two models on the same test ids; pairing removes the
    between-character variance, so the interval is about the models, not the characters.
    """
    a = pd.Series(a, dtype=np.float64)
    b = pd.Series(b, dtype=np.float64)
    if a.index.has_duplicates or b.index.has_duplicates:
        raise ValueError("paired_difference needs one value per id: average over seeds first")
    both = a.index.intersection(b.index)
    diff = (a.loc[both] - b.loc[both]).replace([np.inf, -np.inf], np.nan)
    return bootstrap_ci(diff.to_numpy(), n_boot=n_boot, seed=seed, level=level)


__all__ = [
    "BASIC_COLORS",
    "COUNTERFACTUAL_METRICS",
    "FAITHFUL_METRICS",
    "HIGHER_IS_BETTER",
    "ClipDirectionScorer",
    "Interval",
    "background_leakage",
    "bootstrap_ci",
    "check_same_size",
    "color_adherence",
    "color_control",
    "color_control_matrix",
    "delta_e_in_mask",
    "line_preservation",
    "named_share",
    "outline_mask",
    "paired_difference",
    "protect",
    "psnr",
    "score_counterfactual",
    "score_faithful",
    "ssim",
    "to_mask",
    "to_rgb",
]
