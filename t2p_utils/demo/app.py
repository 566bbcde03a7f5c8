"""The colouring demo (DESIGN.md section 8): type a sentence, see the line art coloured.

A Gradio app over the InstructPix2Pix pipelines a run of the study saved in ``models/<profile>/``::

    python -m t2p_utils.demo --profile cpu            # http://127.0.0.1:7860
    python -m t2p_utils.demo --profile cpu --share    # a public gradio.live link, only when asked

and inline from the last cell of ``notebooks/05_compare.ipynb`` (:func:`launch_demo` with
``inline=True``). Everything the button does is the pure function :func:`colorize`, which the
tests and ``benchmarks/bench_demo.py`` call without Gradio:

* :func:`prepare_drawing` turns whatever a browser sends (any size, format or mode; SVG too, drawn at
  :data:`SVG_SIDE` px) into the model input, RGB on white, padded to a square (never stretched) and resized to the
  model resolution, and the drawing at its own size, padded to a square, longest side at most
  :data:`t2p_utils.core.flat.MAX_SIDE` (1024 px; larger uploads are scaled down, with a note shown to the user), RGBA
  when the upload was transparent; :class:`DemoInputError` carries a human message for what cannot be used (a
  broken file, a blank page, and what step 01's :func:`t2p_utils.scrape.userdata.check_lineart` does not take for line
  art: a photo, a page with no dark line or mostly dark);
* :func:`load_models` loads every trained pipeline of a profile once per process (labels and
  stand-ins read by :func:`t2p_utils.compare.run.resolve_models`); a folder that fails to load is
  kept as unavailable with its reason;
* every model colours the same image with the same seed (:func:`generate_same_seed`; seeds 0 to :data:`MAX_SEED`,
  :func:`check_seed`), its
  UNet run by onnxruntime on CPU (:mod:`t2p_utils.inference.onnx_unet`: same weights, ~3x faster; ``--backend
  torch`` keeps PyTorch). Each output has three views (:data:`VIEWS`): ``flat`` (the default on the page), the
  drawing at its own size with its closed regions filled in the model's colours and its lines untouched
  (:func:`t2p_utils.core.flat.flat_fill`; strokes with large gaps give the raw output enlarged with the drawing's strokes
  and background put back, with the reason),
  ``raw``, the model's output, and ``mask-protected``, that output with outline and background restored from the
  line art (:func:`t2p_utils.compare.metrics.protect`, outline threshold ``compare.outline_l``); the page switches between
  them without generating again. Downloads (:class:`Downloads`, written atomically to a temporary folder): the
  coloured PNG of the view shown, the flats layer and the line layer, on a transparent background or on white;
* exact colours (:mod:`t2p_utils.demo.exact_colors`): a hex code or CSS colour name in the instruction is asked as its
  nearest basic colour term and painted exactly in the flat view's regions of that term; the page says what was
  mapped and what became of it;
* :class:`ColorReadout`, per view, on what that view shows: the colours the text names, which of them the text made
  the model paint (a **hit**: >= 3 % of the character, as the study's colour adherence counts a colour, and >= 3 %
  more than the same model paints with the same seed when the colour words are left out, generated in the same
  batch), and the colours actually used; 05's colour control of each model, when its report exists
  (:func:`color_control_scores`), is shown with the model.
* the page never loses what the user typed or uploaded: inputs are checked before any model runs (one message, the
  outputs kept unless the drawing itself was refused), the handler turns every failure into a message, and the
  inputs are kept in the browser's storage (``gr.BrowserState``) and put back when the page is reloaded.

Offline: analytics are switched off before Gradio is imported, the default theme's fonts ship
with Gradio, and nothing is fetched from a CDN (checked by ``tests/test_demo_browser.py``).
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before anything imports gradio: no telemetry, no version check

import argparse
import base64
import dataclasses
import io
import logging
import re
import secrets
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from t2p_utils.compare import metrics as M
from t2p_utils.compare.items import CompareError
from t2p_utils.compare.models import MODEL_LABELS, ZERO_SHOT, resolve_models
from t2p_utils.compare.run import output_files
from t2p_utils.config import CompareConfig
from t2p_utils.config.compare import BACKENDS
from t2p_utils.config.params import RUNS_DIR, Paths, resolve_device
from t2p_utils.config.study import load_study
from t2p_utils.core import flat as F
from t2p_utils.core.colors import SYNONYMS, color_coverage, color_words, dominant_colors
from t2p_utils.core.io import atomic_write_image, rgb_on_white
from t2p_utils.core.manifest import read_manifest
from t2p_utils.core.threads import torch_threads
from t2p_utils.demo.exact_colors import ExactMatch, ExactRequest, apply_exact, match_exact, parse_exact
from t2p_utils.inference.onnx_unet import UNetEngine, accelerate_unet, torch_threads_beside
from t2p_utils.inference.pipeline import load_pipeline
from t2p_utils.scrape.userdata import NotLineArt, check_lineart, mask_from_lineart

if TYPE_CHECKING:
    import gradio as gr

log = logging.getLogger(__name__)

#: The seed blog post's instruction, first among the examples.
SEED_INSTRUCTION = "Turn it into a creature with a white belly and a red face and back."
EXAMPLES: tuple[str, ...] = (
    SEED_INSTRUCTION,
    "Turn it into a red creature.",
    "Turn it into a blue bird with a yellow beak.",
    "Turn it into a green lizard with an orange belly.",
    "Turn it into a purple and pink cat.",
    "Turn it into a brown dog with a black nose.",
)
MAX_MEGAPIXELS = 40.0  # larger uploads are refused (a 64 px model gains nothing from them)
MAX_UPLOAD = "100mb"  # Gradio refuses larger uploads before they reach the server's disk
MAX_INSTRUCTION_CHARS = 500
MAX_STEPS = 200
#: Seeds are whole numbers from 0 to this (2**32 - 1; :func:`check_seed`).
MAX_SEED = 2**32 - 1
#: Line-art pixels darker than this (8-bit luminance) are ink; what the ink encloses is the character.
INK_BELOW = 235
DEFAULT_RESOLUTION = 64
#: An SVG has no pixel size of its own: it is drawn this many pixels square (then padded and resized as any upload).
SVG_SIDE = 512
#: What a model's column can show: the flat fill at the drawing's size (the default), the model's own output, and
#: the model's output with outline and background restored from the line art (both at the model's resolution).
VIEWS: tuple[str, ...] = ("flat", "raw", "mask-protected")
DEFAULT_VIEW = VIEWS[0]
#: Height (CSS px) of each model's output image on the page.
OUTPUT_HEIGHT = 256
CSS = """
.t2p-output img { width: 100% !important; height: 100% !important; object-fit: contain; }
.t2p-pixelated img { image-rendering: pixelated; }
.t2p-input img { width: 100% !important; height: 100% !important; object-fit: contain; image-rendering: pixelated; }
.t2p-readout strong { font-size: 1em !important; }
"""


class DemoInputError(ValueError):
    """Input the demo cannot use; the message is shown to the user as it is."""


class DrawingError(DemoInputError):
    """The drawing itself cannot be used (not an image, blank, not line art): the page clears the outputs it shows,
    which were made from another drawing. Other :class:`DemoInputError` (a seed, the steps, the instruction) keep
    them: they still show the drawing in the input."""


# ---------------------------------------------------------------------------------------------
# input conversion
# ---------------------------------------------------------------------------------------------
def _too_large(w: int, h: int) -> DrawingError:
    return DrawingError(
        f"The image is {w} x {h} pixels ({w * h / 1e6:.1f} megapixels); the demo takes at most "
        f"{MAX_MEGAPIXELS:g} megapixels. Scale it down first (the models work at 64-256 px and the flat view at "
        f"{F.MAX_SIDE} px at most anyway).")


def _check_size(w: int, h: int) -> None:
    if w < 1 or h < 1:
        raise DrawingError(f"The image is {w} x {h} pixels: it has no pixels to colour.")
    if w * h > MAX_MEGAPIXELS * 1e6:
        raise _too_large(w, h)


def _looks_like_svg(data: bytes) -> bool:
    head = data[:4096].lstrip().lower()
    return head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head) or b"<svg" in head[:512]


def _open_bytes(data: bytes, what: str, svg_side: int) -> Image.Image:
    if not data:
        raise DrawingError(f"{what} is empty (0 bytes): upload a PNG, JPEG, WebP, GIF, BMP, TIFF or SVG line art.")
    if _looks_like_svg(data):
        from t2p_utils.scrape.render import _svg_to_rgba  # the sprites' own renderer: cairosvg, square, aspect kept

        try:
            return _svg_to_rgba(data, svg_side)
        except Exception as exc:  # cairosvg raises many types for broken SVG
            raise DrawingError(f"{what} looks like an SVG but could not be rendered ({exc}).") from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise DrawingError(f"{what} is far too large to open ({exc}). Scale it down first.") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DrawingError(
            f"{what} is not an image the demo can read: upload a PNG, JPEG, WebP, GIF, BMP, TIFF or SVG line art."
        ) from exc
    _check_size(*im.size)  # from the header, before the pixels are decoded
    try:
        im.seek(0)  # the first frame of an animation
        im.load()
    except (OSError, ValueError, SyntaxError) as exc:
        raise DrawingError(f"{what} is a damaged or truncated image file ({exc}).") from exc
    return im


def _from_array(arr: np.ndarray) -> Image.Image:
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or a.size == 0:
        raise DrawingError(f"An image array must be [H, W], [H, W, 3] or [H, W, 4]; got shape {a.shape}.")
    _check_size(a.shape[1], a.shape[0])
    if a.dtype == bool:
        a = np.where(a, 0, 255).astype(np.uint8)  # True = ink
    if a.dtype != np.uint8:
        f = np.nan_to_num(a.astype(np.float64))
        f = f * 255.0 if f.max(initial=0.0) <= 1.0 else (f / 257.0 if f.max() > 255.0 else f)
        a = np.clip(np.round(f), 0, 255).astype(np.uint8)
    return Image.fromarray(a, "L" if a.ndim == 2 else ("RGB" if a.shape[2] == 3 else "RGBA"))


def _upright(im: Image.Image) -> Image.Image:
    """EXIF rotation applied, 16-bit and float modes scaled to 8 bits; transparency kept."""
    try:
        im = ImageOps.exif_transpose(im)
    except (OSError, ValueError, KeyError, TypeError, SyntaxError) as exc:  # broken EXIF must not stop the demo
        log.info("demo: EXIF orientation ignored (%s)", exc)
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        im = _from_array(np.asarray(im))
    return im


def _transparent(im: Image.Image) -> Image.Image | None:
    """``im`` as RGBA when some of its pixels are transparent, else None (an opaque drawing stays RGB on white)."""
    if im.mode not in ("RGBA", "LA", "PA") and "transparency" not in im.info:
        return None
    rgba = im.convert("RGBA")
    return rgba if np.asarray(rgba.getchannel("A")).min() < 255 else None


def to_square(im: Image.Image, resolution: int | None) -> Image.Image:
    """Pad to a square (the image centred, never stretched), then resize to ``resolution`` (None keeps the size).

    RGB is padded with white, RGBA with transparent white.
    """
    w, h = im.size
    side = max(w, h)
    if (w, h) != (side, side):
        fill = (255, 255, 255, 0) if im.mode == "RGBA" else (255, 255, 255)
        canvas = Image.new("RGBA" if im.mode == "RGBA" else "RGB", (side, side), fill)
        canvas.paste(im, ((side - w) // 2, (side - h) // 2))
        im = canvas
    if resolution is not None and side != resolution:
        im = im.resize((resolution, resolution), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return im


@dataclass(frozen=True)
class Drawing:
    """An upload prepared for the demo: what the models see, and the drawing at its own size for the flat fill."""

    model_input: Image.Image  # RGB on white, resolution x resolution (padded to a square, never stretched)
    square: Image.Image  # padded to a square at the drawing's own size, longest side <= flat.MAX_SIDE: RGB on
    #                      white, or RGBA (padding transparent) when the upload had transparent pixels
    size: tuple[int, int]  # the upload's own width and height (an SVG's: as drawn, SVG_SIDE px square)
    note: str = ""  # "" or how the drawing was scaled down (t2p_utils.core.flat.fit_size)
    frames: int = 1  # frames in the upload (an animated GIF, WebP or PNG): only the first one is coloured

    @property
    def frame_note(self) -> str:
        """"" or what became of an animation (shown above the outputs)."""
        return (f"the upload is an animation of {self.frames} frames: only its first frame is coloured"
                if self.frames > 1 else "")

    @property
    def transparent(self) -> bool:
        return self.square.mode == "RGBA"


def _decode(src: Any, svg_side: int) -> Image.Image:
    """Whatever a caller or browser sends, as a PIL image (any mode, not yet upright)."""
    if src is None:
        raise DrawingError("No line art yet: upload an image or pick a test character from the gallery.")
    if isinstance(src, Image.Image):
        _check_size(*src.size)
        return src
    if isinstance(src, np.ndarray):
        return _from_array(src)
    if isinstance(src, bytes | bytearray | memoryview):
        return _open_bytes(bytes(src), "The uploaded file", svg_side)
    if isinstance(src, str | os.PathLike):
        path = Path(src)
        if not path.is_file():
            raise DrawingError(f"{path} does not exist or is not a file.")
        if path.stat().st_size > 512 * 2**20:
            raise DrawingError(f"{path.name} is {path.stat().st_size / 2**20:.0f} MB; the demo takes files up to 512 MB.")
        return _open_bytes(path.read_bytes(), f"The file {path.name}", svg_side)
    raise DrawingError(f"Cannot read a line art from a {type(src).__name__}: pass an image, array, bytes or path.")


def _check_lineart(rgb: np.ndarray) -> None:
    """:class:`DemoInputError` for a photo or a page with no (or mostly) dark pixels: step 01's line-art check
    (:func:`t2p_utils.scrape.userdata.check_lineart`), worded for the demo."""
    try:
        check_lineart(rgb)
    except NotLineArt as exc:
        why = str(exc).partition(": put colour images")[0]  # step 01's advice is about its input folders
        raise DrawingError(f"This does not look like line art: {why}. The demo colours drawings with dark "
                             "outlines on a white or transparent background.") from exc


def prepare_drawing(src: Any, resolution: int = DEFAULT_RESOLUTION, max_side: int = F.MAX_SIDE) -> Drawing:
    """The model input and the drawing at its own size (scaled down to ``max_side`` at most, with a note).

    ``src``: as for :func:`prepare_lineart`. Raises :class:`DemoInputError` for anything that is not a usable
    image, for a blank page, and for what does not look like line art (a photo, a page with no dark line).
    """
    if resolution < 8:
        raise ValueError(f"resolution must be >= 8, got {resolution}")
    decoded = _decode(src, max(SVG_SIDE, resolution))
    frames = int(getattr(decoded, "n_frames", 1) or 1)  # _open_bytes has seeked to the first frame
    im = _upright(decoded)
    on_white = rgb_on_white(im)
    model_input = to_square(on_white, resolution)
    if np.asarray(model_input.convert("L")).min() >= 250:
        raise DrawingError("The line art is blank (every pixel is white once transparency is made white): "
                             "upload a drawing with dark outlines.")
    fitted, note = F.fit_size(on_white, max_side)
    _check_lineart(np.asarray(fitted))
    alpha = _transparent(im)
    if alpha is not None and note:
        alpha, _ = F.fit_size(alpha, max_side)
    square = to_square(alpha if alpha is not None else fitted, None)
    return Drawing(model_input, square, im.size, note, frames)


def prepare_lineart(src: Any, resolution: int = DEFAULT_RESOLUTION) -> Image.Image:
    """The model input: RGB on white, ``resolution`` x ``resolution``.

    ``src``: a PIL image, a numpy array (uint8, 16-bit, float in 0..1 or bool ink), encoded bytes
    (PNG, JPEG, WebP, GIF, BMP, TIFF, ... or SVG) or a path to such a file. Raises
    :class:`DemoInputError` for anything that is not a usable image (:func:`prepare_drawing`).
    """
    return prepare_drawing(src, resolution).model_input


def check_instruction(instruction: Any) -> str:
    """The instruction stripped; :class:`DemoInputError` when it is empty or far too long."""
    text = "" if instruction is None else str(instruction).strip()
    if not text:
        raise DemoInputError(f"The instruction is empty: type what the character should look like, e.g. "
                             f"“{SEED_INSTRUCTION}”")
    if len(text) > MAX_INSTRUCTION_CHARS:
        raise DemoInputError(f"The instruction is {len(text)} characters long; keep it under {MAX_INSTRUCTION_CHARS} "
                             "(the text encoder reads 77 tokens at most).")
    return text


def check_seed(seed: Any) -> int | None:
    """``seed`` as an int in 0 .. :data:`MAX_SEED`, or None (draw one at random); :class:`DemoInputError` otherwise.

    Accepts an int or a float with no fractional part (a browser's number box sends floats). The bound keeps every
    seed exact in the browser (JavaScript numbers are exact up to 2**53) and within torch's seed range (a seed of
    2**64 or more makes ``torch.Generator.manual_seed`` fail, and a number that large cannot be sent back as JSON).
    """
    if seed is None:
        return None
    why = f"The seed must be a whole number from 0 to {MAX_SEED} (2³² − 1)"
    if isinstance(seed, bool) or not isinstance(seed, int | float | np.integer | np.floating):
        raise DemoInputError(f"{why}, not {type(seed).__name__} {seed!r}.")
    if isinstance(seed, float | np.floating):
        if not np.isfinite(seed) or not float(seed).is_integer():
            raise DemoInputError(f"{why}; {float(seed):g} is not.")
        seed = int(seed)
    seed = int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise DemoInputError(f"{why}; {seed} is {'negative' if seed < 0 else 'too large'}. "
                             "Tick “Random seed” to draw one.")
    return seed


_COLOR_WORD = "|".join(sorted((re.escape(w) + "s?" for w in SYNONYMS), key=len, reverse=True))
#: a run of colour words ("red", "purple and pink", "blue-green", "red, white or blue"), as one span
_COLOR_RUN = re.compile(rf"\b(?:{_COLOR_WORD})(?:\s*(?:,|-|/|\band\b|\bor\b)\s*(?:{_COLOR_WORD}))*\b", re.IGNORECASE)


def without_color_words(text: str) -> str:
    """``text`` with the colour words it names left out: what the read-out compares each output with.

    >>> without_color_words("Turn it into a creature with a white belly and a red face and back.")
    'Turn it into a creature with a belly and a face and back.'
    >>> without_color_words("Turn it into a purple and pink cat.")
    'Turn it into a cat.'
    """
    out = _COLOR_RUN.sub(" ", str(text))
    out = re.sub(r"\s+([,.;:!?])", r"\1", re.sub(r"\s+", " ", out)).strip()
    return out


def character_mask(lineart: Image.Image | np.ndarray) -> np.ndarray:
    """bool [H, W]: the character region of a line art, i.e. what its outline encloses.

    Ink (non-white pixels) plus the holes it encloses (``scipy.ndimage.binary_fill_holes``); a
    one-pixel closing first seals hairline gaps that anti-aliasing leaves in an outline.
    """
    gray = np.asarray(Image.fromarray(M.to_rgb(lineart)).convert("L"))
    ink = gray < INK_BELOW
    padded = np.pad(ink, 2)
    closed = ndimage.binary_closing(padded, structure=np.ones((3, 3), dtype=bool))[2:-2, 2:-2]
    return ndimage.binary_fill_holes(closed | ink)


# ---------------------------------------------------------------------------------------------
# colour read-out
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColorReadout:
    """What the text asked for and what the output painted, inside the character (outline excluded).

    The rule for a **hit**: an asked colour covers at least ``min_share`` of the character (3 %, as the study's colour
    adherence counts a colour) *and* at least ``min_share`` more of it than in the same model's output for the same
    drawing, seed and settings with the instruction's colour words left out (``unasked``; :func:`without_color_words`).
    So a colour counts only when asking for it made the model paint it: a model that ignores the text paints the
    same image either way and is credited with nothing, whatever its fixed palette happens to contain (05's colour
    control asks the same question across colours). An asked colour that covers the character as much without
    being asked is *there anyway*; one that covers less than ``min_share`` is a *miss*. Without an unasked output to
    compare with (``unasked`` None) no colour is credited.
    """

    asked: tuple[str, ...]  # basic colour terms named in the instruction, in order
    coverage: dict[str, float]  # share of the character region per asked colour
    used: tuple[str, ...]  # colours covering >= min_share of the region, most common first
    min_share: float = M.MIN_COLOR_SHARE
    unasked: dict[str, float] | None = None  # share per asked colour in the output without the colour words

    @property
    def present(self) -> tuple[str, ...]:
        """Asked colours that cover at least ``min_share`` of the character (caused by the text or not)."""
        return tuple(c for c in self.asked if self.coverage.get(c, 0.0) >= self.min_share)

    def gain(self, color: str) -> float | None:
        """How much more of the character ``color`` covers than without the colour words (None: not compared)."""
        if self.unasked is None:
            return None
        return self.coverage.get(color, 0.0) - self.unasked.get(color, 0.0)

    @property
    def hits(self) -> tuple[str, ...]:
        """Asked colours the text made the model paint (the class docstring's rule)."""
        return tuple(c for c in self.present if (g := self.gain(c)) is not None and g >= self.min_share)

    @property
    def anyway(self) -> tuple[str, ...]:
        """Asked colours that cover the character but not because they were asked (or not checked)."""
        return tuple(c for c in self.present if c not in self.hits)

    @property
    def misses(self) -> tuple[str, ...]:
        return tuple(c for c in self.asked if c not in self.present)

    def mark(self, color: str) -> str:
        cov = self.coverage.get(color, 0.0)
        if color in self.hits:
            assert self.unasked is not None
            return f"{color} ✓ hit ({cov:.0%}; {self.unasked.get(color, 0.0):.0%} unasked)"
        if color in self.anyway:
            if self.unasked is None:
                return f"{color} ? covers {cov:.0%}, not checked against an unasked output"
            return f"{color} ✗ there anyway ({cov:.0%}; {self.unasked.get(color, 0.0):.0%} unasked)"
        return f"{color} ✗ miss ({cov:.0%})"

    def markdown(self) -> str:
        if self.asked:
            marks = ", ".join(self.mark(c) for c in self.asked)
            asked = (f"**asked:** {marks} — {len(self.hits)}/{len(self.asked)} painted because asked "
                     f"(≥ {self.min_share:.0%} of the character, and {self.min_share:.0%} more than unasked)")
        else:
            asked = "**asked:** the instruction names no colour"
        used = ", ".join(self.used) if self.used else "none above the threshold"
        return f"{asked}  \n**used:** {used}"


def read_colors(output: Image.Image | np.ndarray, instruction: str, region: np.ndarray,
                min_share: float = M.MIN_COLOR_SHARE, max_pixels: int | None = None,
                unasked: Image.Image | np.ndarray | None = None) -> ColorReadout:
    """The read-out of one output over ``region`` (bool [H, W]; pass the character minus its outline).

    ``unasked``: the same model's output (same drawing, seed and settings, same view) for the instruction without
    its colour words (:func:`without_color_words`); a colour is a hit only when it covers at least ``min_share`` more
    of the region than there (:class:`ColorReadout`). None: nothing is credited.
    ``max_pixels``: read a regular grid of at most about this many pixels (a large flat-coloured drawing gives the
    same shares from a sample); None reads every pixel.
    """
    rgb = M.to_rgb(output)
    base = None if unasked is None else M.to_rgb(unasked)
    if base is not None and base.shape[:2] != rgb.shape[:2]:
        raise ValueError(f"the unasked output is {base.shape[1]}x{base.shape[0]}, the output {rgb.shape[1]}x{rgb.shape[0]}")
    region = np.asarray(region)
    if max_pixels is not None and rgb.shape[0] * rgb.shape[1] > max_pixels:
        step = int(np.ceil(np.sqrt(rgb.shape[0] * rgb.shape[1] / max_pixels)))
        rgb, region = rgb[::step, ::step], region[::step, ::step]
        base = None if base is None else base[::step, ::step]
    cov = color_coverage(rgb, region)
    asked = tuple(color_words(instruction))
    before = None if base is None else color_coverage(base, region)
    return ColorReadout(asked, {c: cov[c] for c in asked}, tuple(dominant_colors(rgb, region, min_share)), min_share,
                        None if before is None else {c: before[c] for c in asked})


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------
@dataclass
class LoadedModel:
    """One model of the demo: a loaded pipeline, or the reason it is unavailable."""

    name: str  # folder name under models/<profile>/, or "base"
    label: str  # caption source, e.g. "CLIP captions (palette stand-in)" (t2p_utils.compare.run.resolve_models)
    stand_ins: tuple[str, ...] = ()
    source: str = ""  # folder or hub id
    pipe: Any = None
    error: str | None = None  # why it is unavailable
    engine: UNetEngine | None = None  # what runs its UNet (t2p_utils.inference.onnx_unet.accelerate_unet)

    @property
    def available(self) -> bool:
        return self.pipe is not None and self.error is None

    @property
    def status(self) -> str:
        """The stand-in status in words."""
        if not self.available:
            return f"unavailable: {self.error}"
        return "stand-in: " + "; ".join(self.stand_ins) if self.stand_ins else "the real thing (no stand-in)"


@dataclass
class ModelOutput:
    """What one model made of one request: the three views, their colour read-outs and the layers.

    ``image`` / ``readout``: the model's output at its resolution, mask-protected when ``protected`` (as before the
    flat view existed). ``flat``: the drawing at its own size, flat-coloured, or the raw output upsampled when the
    drawing could not be flat-coloured (``flat_note`` says why; never a flooded page).
    """

    name: str
    label: str
    status: str  # stand-in status (LoadedModel.status)
    image: Image.Image | None  # resolution x resolution RGB (mask-protected when protected); None when generation failed
    readout: ColorReadout | None  # of image
    seed: int
    protected: bool
    seconds: float
    error: str | None = None
    raw: Image.Image | None = None  # the model's output, resolution x resolution RGB
    protected_image: Image.Image | None = None  # raw with outline and background restored from the line art
    flat: Image.Image | None = None  # at the drawing's size (RGBA when the drawing was transparent)
    flat_result: F.FlatResult | None = field(default=None, repr=False)  # regions and layers; None when unsegmentable
    flat_note: str = ""  # why ``flat`` is the raw output upsampled ("" when it is flat-coloured)
    size_note: str = ""  # how the drawing was scaled down for the flat view ("" when kept at its size)
    readouts: dict[str, ColorReadout] = field(default_factory=dict)  # per view (VIEWS), computed on what it shows
    request: ExactRequest | None = None  # the exact colours of the instruction
    exact: tuple[ExactMatch, ...] = ()  # what became of each of them in ``flat``
    unasked: Image.Image | None = None  # raw output for the instruction without its colour words (same seed); None
    #                                     when the instruction names no colour. The read-outs' hits are against it.
    unasked_prompt: str = ""  # that instruction
    frame_note: str = ""  # "" or that only the first frame of an animated upload was coloured

    @property
    def flat_ok(self) -> bool:
        return self.flat_result is not None and self.flat_result.ok

    def view(self, name: str = DEFAULT_VIEW) -> Image.Image | None:
        """The image of one view (:data:`VIEWS`)."""
        return {"flat": self.flat, "raw": self.raw, "mask-protected": self.protected_image}[_check_view(name)]

    def flats(self, transparent: bool = True) -> Image.Image | None:
        """The flats layer (RGBA with a transparent background, or RGB on white); None when not flat-coloured."""
        return self.flat_result.flats(transparent) if self.flat_ok and self.flat_result else None

    def lines(self, transparent: bool = True) -> Image.Image | None:
        """The line layer (RGBA, alpha = darkness, or the drawing on white); None when the drawing had no strokes."""
        return self.flat_result.lines(transparent) if self.flat_result is not None else None

    def markdown(self, view: str = DEFAULT_VIEW) -> str:
        """The read-out under the image of ``view``: asked and used colours, exact colours, notes, seed and time."""
        if self.error:
            return f"⚠️ {self.error}"
        readout = self.readouts.get(_check_view(view)) or self.readout
        assert readout is not None
        lines = [readout.markdown()]
        if self.unasked is not None:
            lines.append(f"<small>unasked: “{self.unasked_prompt}”, same seed</small>")
        if self.request:
            if view == "flat":
                lines += [f"**exact:** {m.describe()}" for m in self.exact]
            else:
                lines.append("<small>exact colours are painted in the flat view only</small>")
        if view == "flat" and self.flat_note:
            lines.append(f"⚠️ not flat-coloured, the model's output enlarged instead (the drawing's lines and "
                         f"background kept): {self.flat_note}")
        img = self.view(view)
        size = f" {img.width}×{img.height}," if img is not None else ""
        lines.append(f"<small>{view},{size} seed {self.seed}, {self.seconds:.2f} s</small>")
        return "  \n".join(lines)


def _check_view(name: str) -> str:
    if name not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}, not {name!r}")
    return name


_CACHE: dict[tuple[str, str, str, str], dict[str, LoadedModel]] = {}
_CACHE_LOCK = threading.Lock()


def model_names(paths: Paths, cfg: CompareConfig) -> list[str]:
    """Model folders of a profile (``ip2p_*`` or any saved pipeline), ``compare.models`` order first; ``base`` on full."""
    found: list[str] = []
    if paths.models.is_dir():
        for d in sorted(paths.models.iterdir()):
            if d.is_dir() and d.name != RUNS_DIR and (d.name.startswith("ip2p_") or (d / "model_index.json").exists()):
                found.append(d.name)
    names = [n for n in cfg.models if n in found or (n == ZERO_SHOT and paths.profile == "full")]
    if paths.profile == "full" and ZERO_SHOT not in names:
        names.insert(0, ZERO_SHOT)
    return names + [n for n in found if n not in names]


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or "no message"
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"{type(exc).__name__}: {text}"


def _load(paths: Paths, device: str, backend: str) -> dict[str, LoadedModel]:
    study = load_study(paths.spec, paths.root)  # the whole params file checked, as the runner does
    cfg = study.compare
    dev = resolve_device(cfg.device if device == "auto" else device)
    names = model_names(paths, cfg)
    ready = [n for n in names if n == ZERO_SHOT or (paths.model(n) / "model_index.json").exists()]
    specs = {}
    if ready:
        try:
            specs = {s.name: s for s in resolve_models(paths, dataclasses.replace(cfg, models=ready), study)}
        except CompareError as exc:  # only when nothing is left to resolve
            log.warning("demo: %s", exc)
    out: dict[str, LoadedModel] = {}
    for name in names:
        spec = specs.get(name)
        if spec is None:
            folder = paths.model(name)
            out[name] = LoadedModel(name, MODEL_LABELS.get(name, name), (), str(folder), None,
                                    f"{folder} has no model_index.json (an unfinished training run?); "
                                    f"`./run_all.sh {paths.profile} --from 04_finetune` trains it")
            continue
        t0 = time.perf_counter()
        try:
            pipe = load_pipeline(spec.source, dev)
            engine = accelerate_unet(pipe, backend)
        except Exception as exc:  # any failure: listed as unavailable, the others still work
            log.warning("demo: %s (%s) failed to load: %s", name, spec.source, exc, exc_info=True)
            out[name] = LoadedModel(name, spec.label, spec.stand_ins, spec.source, None, f"failed to load: {_short(exc)}")
            continue
        log.info("demo: loaded %s from %s on %s in %.1f s; UNet: %s", name, spec.source, dev,
                 time.perf_counter() - t0, engine)
        out[name] = LoadedModel(name, spec.label, spec.stand_ins, spec.source, pipe, engine=engine)
    return out


def load_models(profile: str, root: Path | None = None, device: str = "auto", *, backend: str = "auto",
                reload: bool = False) -> dict[str, LoadedModel]:
    """Every model of ``models/<profile>/`` (plus zero-shot ``timbrooks/instruct-pix2pix`` on ``full``), loaded once per process.

    Keys are folder names, in ``compare.models`` order. A model that fails to load is kept with
    ``pipe=None`` and ``error`` saying why; an empty dict means nothing is trained yet
    (:func:`no_models_message`). ``reload`` drops the cached pipelines of this profile first.
    ``backend``: what runs the UNets on CPU (:func:`t2p_utils.inference.onnx_unet.accelerate_unet`): ``auto``
    (onnxruntime where it can, ~3x faster for the small models), ``onnx`` or ``torch``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    paths = Paths.for_profile(profile, root)
    key = (paths.profile, str(paths.root), device, backend)
    with _CACHE_LOCK:
        if reload or key not in _CACHE:
            _CACHE[key] = _load(paths, device, backend)
        return _CACHE[key]


def clear_cache() -> None:
    """Forget every loaded pipeline (the next :func:`load_models` loads them again)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def no_models_message(profile: str, root: Path | None = None) -> str:
    paths = Paths.for_profile(profile, root)
    return (f"No trained model in `{paths.models}` yet. Train them with `./run_all.sh {profile}` "
            f"(steps 01-04 write the data and the models), then start the demo again.")


def models_markdown(profile: str, models: dict[str, LoadedModel], root: Path | None = None) -> str:
    """The models the page shows, the unavailable ones with their reason; the training command when none works."""
    avail = [m for m in models.values() if m.available]
    lines = []
    if not avail:
        lines.append(f"⚠️ {no_models_message(profile, root)}")
    else:
        lines.append(f"**Models ({profile} profile, `{Paths.for_profile(profile, root).models}`):** "
                     + ", ".join(m.label for m in avail) + ". Each column below says which stand-ins it uses.")
        engines = sorted({str(m.engine) for m in avail if m.engine})
        if engines:
            lines.append("<small>UNet run by " + "; ".join(engines) + ".</small>")
    for m in models.values():
        if not m.available:
            lines.append(f"- ⚠️ **{m.label}** (`{m.name}`) is unavailable: {m.error}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the function behind the button
# ---------------------------------------------------------------------------------------------
def colorize(
    lineart: Any,
    instruction: str,
    *,
    models: dict[str, LoadedModel],
    steps: int = 20,
    text_guidance: float = 7.5,
    image_guidance: float = 1.5,
    seed: int | None = 0,
    protect: bool = False,
    resolution: int = DEFAULT_RESOLUTION,
    outline_l: float = M.OUTLINE_L,
    mask: np.ndarray | Image.Image | None = None,
    threads: int | None = None,
    max_side: int = F.MAX_SIDE,
) -> list[ModelOutput]:
    """Colour ``lineart`` as ``instruction`` says with every available model, one seed for all.

    Each output has three views (:data:`VIEWS`): ``flat``, the drawing at its own size (padded to a square; longest
    side ``max_side`` at most, larger drawings are scaled down with a note) with its closed regions filled flat in the
    model's colours (:func:`t2p_utils.core.flat.flat_fill`), and the model's own output at ``resolution``, ``raw`` and
    ``mask-protected`` (outline, line-art L* < ``outline_l``, and background restored from the line art).
    ``protect`` says which of the two is ``image`` / ``readout``.

    Exact colours (hex codes, CSS names; :mod:`t2p_utils.demo.exact_colors`): the models are asked with each one's basic
    term, and the flat view paints the regions of that term in the exact colour.

    ``seed=None`` draws a random seed (reported in each output). ``mask``: the character region at the line art's
    size; by default derived from the line art (:func:`character_mask` for the model's views, step 01's
    :func:`t2p_utils.scrape.userdata.mask_from_lineart` for the flat fill's leak check). ``threads``: torch intra-op
    threads during generation (None leaves torch's setting); a model whose UNet onnxruntime runs uses one torch
    thread (VAE, text encoder), so that torch's idle OpenMP workers do not spin on the cores onnxruntime computes on.
    Raises :class:`DemoInputError` for unusable input (a blank page, a photo) or when no model is available; a model
    that fails while generating gives an output with ``error`` set and the others still run.
    """
    text = check_instruction(instruction)
    seed = check_seed(seed)
    if not 1 <= int(steps) <= MAX_STEPS:
        raise DemoInputError(f"Steps must be between 1 and {MAX_STEPS}, got {steps}.")
    if not (0.0 <= float(text_guidance) <= 50.0 and 0.0 <= float(image_guidance) <= 50.0):
        raise DemoInputError("Text and image guidance must lie between 0 and 50.")
    avail = [m for m in models.values() if m.available]
    if not avail:
        reasons = "; ".join(f"{m.name}: {m.error}" for m in models.values())
        raise DemoInputError("No model is available to colour with" + (f" ({reasons})." if reasons else
                                                                       ": train them with ./run_all.sh <profile>."))
    request = parse_exact(text)
    asked = request.text  # what the models are asked: each exact colour as its basic term
    # the same request without its colour words, same seed: what a hit is measured against (ColorReadout)
    unasked = without_color_words(asked) if color_words(asked) else None
    prompts = [asked] if unasked is None else [asked, unasked]
    drawing = prepare_drawing(lineart, resolution, max_side)
    image = drawing.model_input
    side = drawing.square.width
    if mask is None:
        region = character_mask(image)
        flat_mask = mask_from_lineart(np.asarray(rgb_on_white(drawing.square)))[0]
    else:
        m = mask if isinstance(mask, Image.Image) else Image.fromarray(M.to_mask(mask).astype(np.uint8) * 255)
        region = M.to_mask(to_square(m.convert("RGB"), resolution))
        flat_mask = M.to_mask(to_square(m.convert("RGB"), side))
    outline = M.outline_mask(image, outline_l)
    inside = region & ~outline
    inside = inside if inside.any() else region
    flat_inside = flat_mask & ~(F.line_layer(drawing.square)[1] < F.STROKE_LUMA)
    flat_inside = flat_inside if flat_inside.any() else flat_mask
    try:  # one segmentation of the drawing for every model (most of the fill's time on a large drawing)
        regions: F.Regions | F.FlatError = F.segment(drawing.square, flat_mask)
    except F.FlatError as exc:
        regions = exc
    seed = secrets.randbelow(2**31 - 1) if seed is None else int(seed)
    outputs: list[ModelOutput] = []
    for m in avail:
        t0 = time.perf_counter()
        try:
            with torch_threads(torch_threads_beside(m.pipe, threads)):
                made = generate_same_seed(m.pipe, image, prompts, int(steps), float(text_guidance),
                                          float(image_guidance), seed)
            raws = [_at_size(out, image.size) for out in made]
            raw = raws[0]
            protected = M.protect(raw, image, region, outline_l)
            flat, result, note, exact = _flat_view(drawing, raw, flat_mask, request, regions)
            base: dict[str, Image.Image | None] = dict.fromkeys(VIEWS)
            if unasked is not None:  # the same three views of the output without the colour words
                base["raw"] = raws[1]
                base["mask-protected"] = M.protect(raws[1], image, region, outline_l)
                base["flat"] = _flat_view(drawing, raws[1], flat_mask, parse_exact(unasked), regions)[0]
            readouts = {"flat": read_colors(flat, asked, flat_inside, max_pixels=F.SAMPLE_PIXELS, unasked=base["flat"]),
                        "raw": read_colors(raw, asked, inside, unasked=base["raw"]),
                        "mask-protected": read_colors(protected, asked, inside, unasked=base["mask-protected"])}
        except Exception as exc:  # one broken model must not take the others down
            log.exception("demo: %s failed to generate", m.name)
            outputs.append(ModelOutput(m.name, m.label, m.status, None, None, seed, protect,
                                       time.perf_counter() - t0, f"{m.label} failed: {_short(exc)}",
                                       frame_note=drawing.frame_note))
            continue
        seconds = time.perf_counter() - t0
        view = "mask-protected" if protect else "raw"
        outputs.append(ModelOutput(m.name, m.label, m.status, protected if protect else raw, readouts[view], seed,
                                   protect, seconds, raw=raw, protected_image=protected, flat=flat, flat_result=result,
                                   flat_note=note, size_note=drawing.note, readouts=readouts, request=request,
                                   exact=exact, unasked=base["raw"], unasked_prompt=unasked or "",
                                   frame_note=drawing.frame_note))
    return outputs


def generate_same_seed(pipe: Any, image: Image.Image, prompts: Sequence[str], steps: int, text_guidance: float,
                       image_guidance: float, seed: int) -> list[Image.Image]:
    """``image`` edited with each of ``prompts``, every one from the same seed (the same starting noise), one batch.

    :func:`t2p_utils.inference.pipeline.generate` seeds image ``i`` with ``seed + i``; here every image starts from ``seed``'s
    noise, so the outputs differ only by their text. The first is what ``generate`` makes for ``[image]``,
    ``[prompts[0]]`` and ``seed`` (exactly for one prompt; batched, within about 1/255).
    """
    gen_device = "cpu" if pipe.device.type == "mps" else pipe.device
    gens = [torch.Generator(device=gen_device).manual_seed(int(seed)) for _ in prompts]
    res = pipe(prompt=list(prompts), image=[image.convert("RGB")] * len(prompts), num_inference_steps=int(steps),
               guidance_scale=float(text_guidance), image_guidance_scale=float(image_guidance), generator=gens,
               output_type="pil")
    return list(res.images)


def _at_size(out: Image.Image, size: tuple[int, int]) -> Image.Image:
    raw = out.convert("RGB")
    return raw if raw.size == size else raw.resize(size, Image.Resampling.LANCZOS)


def _flat_view(drawing: Drawing, raw: Image.Image, mask: np.ndarray, request: ExactRequest,
               regions: F.Regions | F.FlatError | None = None
               ) -> tuple[Image.Image, F.FlatResult | None, str, tuple[ExactMatch, ...]]:
    """(the flat view, its FlatResult or None, why it is not flat-coloured or "", the exact colours' fate).

    ``regions``: :func:`t2p_utils.core.flat.segment` of the drawing (shared by every model), or the FlatError it raised.
    A drawing whose strokes leak gives flat_fill's fallback (the raw output enlarged, strokes and background put
    back); one it cannot segment at all (:class:`t2p_utils.core.flat.FlatError`) gives the raw output upsampled here,
    with flat_fill's message.
    """
    try:
        if isinstance(regions, F.FlatError):
            raise regions
        result = F.flat_fill(drawing.square, raw, mask, regions=regions)
    except F.FlatError as exc:
        up = raw.resize(drawing.square.size, Image.Resampling.BICUBIC)
        return up, None, str(exc), _none_painted(request)
    matches = match_exact(result, request)
    result = apply_exact(result, request, matches)
    return result.composite, result, result.fallback, matches


def _none_painted(request: ExactRequest) -> tuple[ExactMatch, ...]:
    """The exact colours of a request for a drawing with no regions: none is painted."""
    return tuple(ExactMatch(c, "fallback") for c in request.unique)


# ---------------------------------------------------------------------------------------------
# the held-out test characters
# ---------------------------------------------------------------------------------------------
def held_out_gallery(profile: str, root: Path | None = None) -> list[tuple[str, str]]:
    """(line-art path, caption) of the held-out test characters (``split == "test"``), by id as numbers (19 before
    189); [] before step 01."""
    paths = Paths.for_profile(profile, root)
    try:
        df = read_manifest(paths.manifest)
    except (FileNotFoundError, ValueError) as exc:
        log.info("demo: no test gallery (%s)", exc)
        return []
    test = df[df["split"] == "test"]
    items = []
    for row in sorted(test.itertuples(), key=lambda r: _natural(str(r.id))):
        path = paths.root / str(row.lineart)
        if path.is_file():
            items.append((str(path), f"{row.id} {row.name}".strip()))
    return items




def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key that orders the digit runs of ``text`` as numbers: "19" < "189", "s2" < "s10"."""
    return tuple((0, int(t)) if t.isdigit() else (1, t.lower()) for t in re.split(r"(\d+)", text) if t)


def color_control_scores(profile: str, root: Path | None = None) -> dict[str, tuple[float, float, float]]:
    """Step 05's colour control per model (raw outputs, both instruction templates): (mean, 95 % CI low, high).

    Read from ``reports/<profile>/metrics.csv`` (rows ``metric == "color_control"``, ``prompt == "control:all"``,
    ``variant == "raw"``); {} before 05 has run or when the file cannot be read.
    """
    import pandas as pd

    path = output_files(Paths.for_profile(profile, root))["metrics_csv"]
    try:
        df = pd.read_csv(path)
        rows = df[(df["metric"] == "color_control") & (df["prompt"] == "control:all") & (df["variant"] == "raw")]
        return {str(r.model): (float(r.mean), float(r.ci_low), float(r.ci_high)) for r in rows.itertuples()}
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        log.info("demo: no colour control from 05 (%s)", exc)
        return {}


def control_markdown(score: tuple[float, float, float] | None) -> str:
    """05's colour control of one model, in words for its column ("" when 05 has not scored it)."""
    if score is None:
        return ""
    mean, lo, hi = score
    text = f"05 colour control {mean:.3f} [{lo:.3f}, {hi:.3f}]"
    if hi < M.MIN_COLOR_SHARE:
        return f"⚠️ {text}: the colours the text names barely change its output"
    return text


def profile_resolution(profile: str, root: Path | None = None) -> int:
    """The resolution the profile's models were trained at (``train.resolution``)."""
    return load_study(profile, root, check=False).train.resolution


# ---------------------------------------------------------------------------------------------
# the Gradio app
# ---------------------------------------------------------------------------------------------
def _hand_over_unopened(image: gr.Image) -> gr.Image:
    """Make an input ``gr.Image`` pass its upload on unopened: a path, or bytes for a data: URL.

    Gradio would open the file with PIL before the handler runs and turn a broken file into a bare
    "Error"; :func:`prepare_lineart` gives the user a message instead. Set on the instance: a
    ``gr.Image`` subclass would make Gradio write a ``.pyi`` stub next to this module.
    """

    def preprocess(payload: Any) -> str | bytes | None:
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):
            return base64.b64decode(payload.url.split(",", 1)[-1])
        return payload.path

    image.preprocess = preprocess  # type: ignore[method-assign]
    return image


@dataclass
class DemoApp:
    """A built app and what it shows (for tests and the notebook)."""

    blocks: gr.Blocks
    profile: str
    models: dict[str, LoadedModel]
    gallery: list[tuple[str, str]]
    allowed_paths: list[str] = field(default_factory=list)


@dataclass
class Downloads:
    """The PNG files the page shows and offers for one click: written on first use, atomically, then kept.

    One instance per click (its own token in the file names), held in the page's session state, so switching the
    view or the transparent-background option writes at most the files not written yet and regenerates nothing.
    """

    out_dir: Path
    results: dict[str, ModelOutput]  # by model name
    files: dict[tuple[str, str, bool], Path] = field(default_factory=dict)
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    def _file(self, name: str, kind: str, transparent: bool, make: Any) -> Path | None:
        key = (name, kind, transparent)
        if key not in self.files:
            img = make()
            if img is None:
                return None
            r = self.results[name]
            path = self.out_dir / f"t2p_{name}_seed{r.seed}_{kind}{'_transparent' if transparent else ''}_{self.token}.png"
            atomic_write_image(img, path)
            self.files[key] = path
        return self.files[key]

    def coloured(self, name: str, view: str = DEFAULT_VIEW) -> Path | None:
        """The image of ``view`` (the coloured drawing for ``flat``); None when the model failed."""
        return self._file(name, _check_view(view), False, lambda: self.results[name].view(view))

    def flats(self, name: str, transparent: bool = True) -> Path | None:
        """The flats layer; None when the drawing was not flat-coloured."""
        return self._file(name, "flats", transparent, lambda: self.results[name].flats(transparent))

    def lines(self, name: str, transparent: bool = True) -> Path | None:
        """The line layer; None when the drawing has no strokes."""
        return self._file(name, "lines", transparent, lambda: self.results[name].lines(transparent))


def run_message(results: Sequence[ModelOutput], steps: int, random: bool = False) -> str:
    """The line above the outputs: models, seed and steps; how the drawing was scaled; what was asked for exact colours."""
    used = results[0].seed
    lines = [f"Done: {len(results)} model(s), seed {used}{' (random)' if random else ''}, {int(steps)} steps."]
    first = results[0]
    if first.frame_note:
        lines.append(f"Note: {first.frame_note}.")
    if first.size_note:
        lines.append(f"The flat view: {first.size_note}.")
    if first.request:
        lines.append("Exact colours: " + "; ".join(first.request.describe())
                     + f". The models were asked: “{first.request.text}”.")
    return "  \n".join(lines)


def _pixelated(img: Image.Image | None) -> list[str]:
    """CSS classes of an output image: pixelated when it is shown larger than it is (the model's 64 px)."""
    small = img is not None and max(img.size) < OUTPUT_HEIGHT
    return ["t2p-output", "t2p-pixelated"] if small else ["t2p-output"]


def _column(r: ModelOutput, files: Downloads, view: str, transparent: bool) -> list[Any]:
    """The values of one model's column: image, read-out, and the three download buttons."""
    import gradio as gr

    if r.error:
        return [gr.update(value=None), r.markdown(view), *[gr.update(visible=False)] * 3]
    coloured, flats, lines = files.coloured(r.name, view), files.flats(r.name, transparent), files.lines(r.name, transparent)
    img = r.view(view)
    assert img is not None and coloured is not None
    bg = "transparent" if transparent else "white"
    return [gr.update(value=str(coloured), elem_classes=_pixelated(img)), r.markdown(view),
            gr.update(value=str(coloured), label=f"Coloured PNG ({view}, {img.width}×{img.height})", visible=True),
            gr.update(value=str(flats) if flats else None, label=f"Flats layer PNG ({bg} background)",
                      visible=flats is not None),
            gr.update(value=str(lines) if lines else None, label=f"Line layer PNG ({bg} background)",
                      visible=lines is not None)]


def build_demo(profile: str = "cpu", root: Path | None = None, device: str = "auto",
               models: dict[str, LoadedModel] | None = None, backend: str | None = None) -> DemoApp:
    """The Gradio app with what it serves (:func:`build_app` returns just the ``gr.Blocks``)."""
    import gradio as gr

    paths = Paths.for_profile(profile, root)
    cfg = load_study(profile, paths.root).compare  # the whole params file checked, as the runner does
    backend = backend or cfg.unet_backend  # default: the profile's compare.unet_backend, as 05 runs the models
    models = load_models(profile, paths.root, device, backend=backend) if models is None else models
    avail = [m for m in models.values() if m.available]
    resolution = profile_resolution(profile, paths.root)
    gallery = held_out_gallery(profile, paths.root)
    control = color_control_scores(profile, paths.root)
    out_dir = Path(tempfile.mkdtemp(prefix="t2p-demo-"))

    with gr.Blocks(title="t2p: colour line art with text", analytics_enabled=False) as blocks:
        gr.Markdown(
            "# t2p: colour line art with a sentence\n"
            "Upload a line art (any size and format; transparent backgrounds stay transparent) or pick a held-out "
            "test character, type how it should look, and every trained model colours it with the same seed. "
            f"The models see it padded to a square and resized to {resolution} px; the **flat** view fills the "
            f"drawing's closed regions with their colours at the drawing's own size (up to {F.MAX_SIDE} px on the "
            "longest side; larger drawings are scaled down), **raw** is the model's own output and "
            "**mask-protected** that output with outline and background restored from the line art. Hex codes and "
            "CSS colour names (“a #3a7bd5 body”, “a teal belly”) are asked as their basic colour and painted "
            "exactly in the flat view. Under each output: the colours your text names and whether the text made "
            "the model paint them (✓ hit: the colour covers at least 3 % of the character, and at least 3 % more "
            "than the same model paints with the same seed when the colour words are left out; ✗ there anyway: "
            "it paints that colour unasked too), and the colours actually used.")
        gr.Markdown(models_markdown(profile, models, paths.root), elem_id="t2p-models")
        with gr.Row():
            with gr.Column(scale=1):
                image_in = _hand_over_unopened(gr.Image(
                    label="Line art", type="filepath", sources=["upload", "clipboard"], height=280,
                    elem_id="t2p-lineart", elem_classes=["t2p-input"]))
                if gallery:
                    gal = gr.Gallery(value=gallery, label="…or pick a held-out test character", columns=8, rows=2,
                                     height=220, allow_preview=False, object_fit="contain", elem_id="t2p-gallery")
                    gal.select(_pick(gallery), outputs=image_in, show_progress="hidden")
                else:
                    gr.Markdown(f"No test characters yet: `./run_all.sh {profile}` writes them (step 01).")
            with gr.Column(scale=1):
                instruction = gr.Textbox(label="Instruction", value=SEED_INSTRUCTION, lines=2, max_lines=4,
                                         elem_id="t2p-instruction")
                gr.Examples(examples=[[e] for e in EXAMPLES], inputs=[instruction], label="Examples")
                steps = gr.Slider(1, 100, value=cfg.steps, step=1, label="Steps")  # the profile's compare.steps
                tg = gr.Slider(0.0, 20.0, value=cfg.text_guidance, step=0.5, label="Text guidance")
                ig = gr.Slider(0.0, 5.0, value=cfg.image_guidance, step=0.1, label="Image guidance")
                with gr.Row():
                    # no minimum / maximum: Gradio would refuse an out-of-range number with a bare "Error" on
                    # every output; check_seed says what is wrong in the message line instead
                    seed = gr.Number(value=0, label=f"Seed (0 to {MAX_SEED})", elem_id="t2p-seed")
                    random_seed = gr.Checkbox(value=False, label="Random seed")
                button = gr.Button("Colour it", variant="primary", elem_id="t2p-run")
        message = gr.Markdown("", elem_id="t2p-message")
        with gr.Row():
            view = gr.Radio(list(VIEWS), value=DEFAULT_VIEW, label="Show", elem_id="t2p-view",
                            info="flat: at the drawing's size; raw and mask-protected: the model's output")
            transparent = gr.Checkbox(value=True, label="Transparent background for the layer downloads",
                                      elem_id="t2p-transparent")
        shown = gr.State(None)
        outs: list[Any] = []
        with gr.Row(equal_height=False):
            for m in avail:
                with gr.Column(min_width=180, elem_classes=["t2p-model"]):
                    ctl = control_markdown(control.get(m.name))
                    gr.Markdown(f"**{m.label}**  \n<small>{m.status}</small>" + (f"  \n<small>{ctl}</small>" if ctl else ""),
                                elem_id=f"t2p-head-{m.name}")
                    outs.append(gr.Image(label=m.label, type="filepath", format="png", image_mode=None,
                                         interactive=False, height=OUTPUT_HEIGHT, buttons=["download", "fullscreen"],
                                         elem_classes=["t2p-output"], elem_id=f"t2p-out-{m.name}"))
                    outs.append(gr.Markdown("", elem_classes=["t2p-readout"], elem_id=f"t2p-readout-{m.name}"))
                    for kind, what in (("download", "Coloured PNG"), ("flats", "Flats layer PNG"),
                                       ("lines", "Line layer PNG")):
                        outs.append(gr.DownloadButton(what, visible=False, size="sm", elem_id=f"t2p-{kind}-{m.name}"))

        def columns(files: Downloads, chosen: str, clear: bool) -> list[Any]:
            values: list[Any] = []
            for m in avail:
                values += _column(files.results[m.name], files, chosen, bool(clear))
            return values

        def cleared() -> list[Any]:
            """The outputs emptied: they showed another drawing than the one just refused."""
            values: list[Any] = []
            for _ in avail:
                values += [gr.update(value=None), "", *[gr.update(value=None, visible=False)] * 3]
            return values

        def run(image: Any, text: str, n_steps: float, t_g: float, i_g: float, seed_value: Any,
                random: bool, chosen: str, clear: bool) -> list[Any]:
            """The button. Whatever fails, it answers with a message and leaves the inputs alone: every input is
            checked (colorize) before a model runs, and what goes back to the page is plain text, paths and a seed
            in range, so the event stream cannot break (a broken stream reloads the page)."""
            keep = [gr.skip()] * len(outs)
            try:
                if not avail:
                    return [f"⚠️ {no_models_message(profile, paths.root)}", gr.skip(), gr.skip(), *keep]
                drawn = random or seed_value is None
                results = colorize(image, text, models=models, steps=int(n_steps), text_guidance=t_g,
                                   image_guidance=i_g, seed=None if drawn else seed_value, resolution=resolution,
                                   outline_l=cfg.outline_l, threads=cfg.torch_threads)
                files = Downloads(out_dir, {r.name: r for r in results})
                return [run_message(results, int(n_steps), drawn), int(results[0].seed), files,
                        *columns(files, chosen, clear)]
            except DrawingError as exc:  # another drawing than the one the outputs show: they go
                return [f"⚠️ {exc}", gr.skip(), None, *cleared()]
            except DemoInputError as exc:  # a setting: the outputs still show this drawing, they stay
                return [f"⚠️ {exc}", gr.skip(), gr.skip(), *keep]
            except Exception as exc:  # the app keeps running whatever happens
                log.exception("demo: request failed")
                return [f"⚠️ Something went wrong: {_short(exc)}", gr.skip(), gr.skip(), *keep]

        def show(chosen: str, clear: bool, files: Downloads | None) -> list[Any]:
            """Switch the view or the layers' background: files written from what the last click made."""
            if files is None:
                return [gr.skip()] * len(outs)
            try:
                return columns(files, chosen, clear)
            except Exception:  # e.g. the temporary folder was removed: keep what is shown
                log.exception("demo: switching the view failed")
                return [gr.skip()] * len(outs)

        # the inputs are kept in the browser (localStorage, encrypted with this server's secret) on every upload and
        # click, and put back when the page loads: even a reload (a server restart, a lost connection) keeps them
        saved = gr.BrowserState({}, storage_key=f"t2p-demo-{profile}")
        inputs = [image_in, instruction, steps, tg, ig, seed, random_seed]

        def remember(image: Any, text: Any, n_steps: Any, t_g: Any, i_g: Any, seed_value: Any, random: Any) -> dict:
            return remembered(image, text, n_steps, t_g, i_g, seed_value, random)

        def restore(state: Any) -> list[Any]:
            return restored(state, len(inputs))

        image_in.change(remember, inputs=inputs, outputs=saved, queue=False, show_progress="hidden")
        button.click(remember, inputs=inputs, outputs=saved, queue=False, show_progress="hidden").then(
            run, inputs=[image_in, instruction, steps, tg, ig, seed, random_seed, view, transparent],
            outputs=[message, seed, shown, *outs], concurrency_limit=1)
        blocks.load(restore, inputs=saved, outputs=inputs, show_progress="hidden")
        for control_box in (view, transparent):
            control_box.change(show, inputs=[view, transparent, shown], outputs=outs, show_progress="hidden")
    return DemoApp(blocks, profile, models, gallery, [str(paths.processed), str(out_dir)])


def _number(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if np.isfinite(f) else None


def remembered(image: Any, text: Any, steps: Any, text_guidance: Any, image_guidance: Any, seed: Any,
               random: Any) -> dict[str, Any]:
    """The inputs as the browser keeps them: JSON-safe whatever they are (a line art sent as bytes, e.g. pasted from
    the clipboard, has no path and is not kept; a number that is not finite is dropped)."""
    return {"image": image if isinstance(image, str) else None, "instruction": "" if text is None else str(text),
            "steps": _number(steps), "text_guidance": _number(text_guidance), "image_guidance": _number(image_guidance),
            "seed": _number(seed), "random": bool(random)}


def restored(state: Any, n: int = 7) -> list[Any]:
    """The values :func:`remembered` kept, for the page's inputs in its order; a skip for each value not kept (or
    an upload whose file is gone)."""
    import gradio as gr

    state = state if isinstance(state, dict) else {}
    image, text, random = state.get("image"), state.get("instruction"), state.get("random")
    # numbers as floats again: the browser sends 1.8e19 back as the JSON integer 18446744073709552000, which, as a
    # Python int, Gradio could not send to the page (orjson: "Integer exceeds 64-bit range"), and the page would reload
    values = [image if isinstance(image, str) and Path(image).is_file() else None,
              text if isinstance(text, str) and text else None,
              *(_number(state.get(k)) for k in ("steps", "text_guidance", "image_guidance", "seed")),
              random if isinstance(random, bool) else None]
    return [gr.skip() if v is None else v for v in values][:n]


def _pick(gallery: Sequence[tuple[str, str]]) -> Any:
    """The gallery's select handler: the picked character's line-art path."""
    from gradio import SelectData

    def pick(evt: SelectData) -> str:
        return gallery[evt.index][0]

    pick.__annotations__ = {"evt": SelectData, "return": str}  # real classes: Gradio injects SelectData by type

    return pick


def build_app(profile: str = "cpu", root: Path | None = None, device: str = "auto",
              models: dict[str, LoadedModel] | None = None, backend: str | None = None) -> gr.Blocks:
    """The Gradio app for ``profile`` (pipelines loaded once per process); launch it with :func:`launch_demo`."""
    return build_demo(profile, root, device, models, backend).blocks


def launch_demo(profile: str = "cpu", *, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
                inline: bool | None = None, block: bool = False, root: Path | None = None, device: str = "auto",
                models: dict[str, LoadedModel] | None = None, backend: str | None = None) -> DemoApp:
    """Build and start the app (127.0.0.1 unless ``host`` says otherwise; a public link only with ``share``).

    ``inline=True`` shows it in a notebook cell (JupyterLab, Colab) and returns at once; ``block``
    keeps the calling thread serving (the command line).
    """
    app = build_demo(profile, root, device, models, backend)
    app.blocks.queue(default_concurrency_limit=1)
    app.blocks.launch(server_name=host, server_port=port, share=share, inline=inline, prevent_thread_lock=not block,
                      allowed_paths=app.allowed_paths, css=CSS, ssr_mode=False, show_error=True, quiet=False,
                      pwa=False, mcp_server=False, max_file_size=MAX_UPLOAD)
    return app


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m t2p_utils.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="cpu", help="which models/<profile>/ to serve: smoke, cpu or full (default cpu)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="also create a public gradio.live link (needs internet)")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    p.add_argument("--backend", default=None, choices=BACKENDS,
                   help="what runs the UNets on CPU: auto (onnxruntime where it can, else PyTorch), onnx or torch "
                        "(default: the profile's compare.unet_backend, auto in every built-in profile)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    launch_demo(args.profile, host=args.host, port=args.port, share=args.share, inline=False, block=True,
                device=args.device, backend=args.backend)


if __name__ == "__main__":
    main()
