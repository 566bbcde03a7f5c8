"""The test characters 05 colours: their images, instructions and drawings, and how one output is scored as each
variant.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from t2p_utils.compare import metrics as M
from t2p_utils.compare.drawing import DrawingFiles, make_drawings
from t2p_utils.config.compare import CompareConfig
from t2p_utils.config.params import Paths
from t2p_utils.core.flat import FlatError, flat_fill, segment
from t2p_utils.core.manifest import read_manifest
from t2p_utils.core.reference_csv import read_reference_csv

log = logging.getLogger(__name__)


PROMPTS: tuple[str, ...] = ("faithful", "counterfactual")


VARIANTS: tuple[str, ...] = ("raw", "protected", "upsampled", "flat")


#: The variants made at the drawing's size (``compare.drawing_size``) and scored against the drawing's ground truth.
DRAWING_VARIANTS: tuple[str, ...] = ("upsampled", "flat")


@dataclass(frozen=True)
class TestItem:
    id: str
    faithful: str  # "" when the character has no colour image (no ground truth to be faithful to)
    counterfactual: str
    color: Path | None  # the ground truth; None for line art without a colour image (user data)
    lineart: Path
    mask: Path
    drawing: DrawingFiles | None = None  # the same character at the drawing's size (compare.drawing_size)


def showcase_ids(ids: Sequence[str], k: int) -> list[str]:
    """``k`` ids spread evenly over the sorted ids (first, last and equal steps between): fixed, not cherry-picked."""
    ids = sorted(ids)
    if k >= len(ids):
        return list(ids)
    if k == 1:
        return [ids[0]]
    return [ids[round(i * (len(ids) - 1) / (k - 1))] for i in range(k)]


def load_test_items(paths: Paths, max_test: int = 0) -> list[TestItem]:
    """Test ids (sorted) with their instructions and image paths; clear errors for what is missing."""
    manifest = read_manifest(paths.manifest)
    test = manifest[manifest["split"] == "test"].sort_values("id")
    if test.empty:
        raise CompareError(f"{paths.manifest} has no test rows: re-run notebooks/01_scrape.ipynb (it assigns the splits)")
    if max_test > 0:
        test = test.iloc[:max_test]
    ref_path = paths.reference_captions
    try:
        ref = read_reference_csv(ref_path)
    except FileNotFoundError as exc:
        raise CompareError(
            f"{ref_path} is missing: for smoke run notebooks/01_scrape.ipynb; for cpu/full it is committed in git"
        ) from exc
    ref = ref.drop_duplicates("id", keep="last").set_index("id")

    def text(i: str, col: str) -> str:
        return str(ref.at[i, col]).strip() if i in ref.index else ""

    has_color = dict(zip(test["id"], test["color"].astype(str).ne(""), strict=True))
    missing = [i for i in test["id"] if not text(i, "counterfactual") or (has_color[i] and not text(i, "faithful"))]
    if missing:
        fix = ("re-run notebooks/01_scrape.ipynb with force=True (it writes the smoke and user-profile instructions)"
               if paths.profile == "smoke" or paths.is_user
               else f"add faithful and counterfactual instructions for them to {ref_path}")
        raise CompareError(
            f"test id(s) {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''} have no faithful/counterfactual "
            f"instruction in {ref_path}: {fix}"
        )
    items = []
    for row in test.itertuples():
        files = {k: paths.root / getattr(row, k) if str(getattr(row, k)) else None for k in ("color", "lineart", "mask")}
        for k, p in files.items():
            if p is not None and not p.exists():
                raise CompareError(f"{p} ({k} image of test id {row.id}) is missing: re-run notebooks/01_scrape.ipynb")
        items.append(TestItem(row.id, text(row.id, "faithful"), text(row.id, "counterfactual"), **files))
    return items


def caption_of(instruction: str) -> str:
    """The output caption of an instruction for CLIP direction similarity ("Turn it into X." -> "X")."""
    text = instruction.strip().rstrip(".")
    prefix = "turn it into "
    return text[len(prefix):] if text.lower().startswith(prefix) else text


def variant_images(out: Image.Image, images: dict[str, Any], outline_l: float = M.OUTLINE_L
                   ) -> tuple[dict[str, Image.Image], str]:
    """Every variant of one output (see the module docstring) and the flat fill's note ("" when it filled).

    ``images``: :func:`open_item`'s dict; without a ``drawing`` only ``raw`` and ``protected`` are made."""
    outs: dict[str, Image.Image] = {"raw": out, "protected": M.protect(out, images["lineart"], images["mask"], outline_l)}
    drawing = images.get("drawing")
    if drawing is None:
        return outs, ""
    outs["upsampled"] = out.resize(drawing["lineart"].size, Image.Resampling.BICUBIC)
    outs["flat"], note = flat_variant(out, drawing)
    return outs, note


def flat_variant(out: Image.Image, drawing: dict[str, Any]) -> tuple[Image.Image, str]:
    """The flat variant of one output on its drawing (:func:`open_item`'s ``drawing`` dict) and the fill's note."""
    if drawing["regions"] is None:  # the drawing cannot be flat-filled at all (no stroke): the enlarged raw stands in
        return out.resize(drawing["lineart"].size, Image.Resampling.BICUBIC), drawing["note"]
    res = flat_fill(drawing["lineart"], out, drawing["mask"], regions=drawing["regions"])
    return res.composite.convert("RGB"), res.fallback


def score_output(out: Image.Image, item: TestItem, prompt: str, instruction: str,
                 images: dict[str, Any], outline_l: float = M.OUTLINE_L, drawing_outline_l: float = M.OUTLINE_L,
                 variants: tuple[dict[str, Image.Image], str] | None = None) -> dict[str, dict[str, float]]:
    """Metrics of one output for every variant: ``{"raw": {...}, "protected": {...}, "upsampled": ..., "flat": ...}``.

    ``variants``: :func:`variant_images` of this output when the caller made them already."""
    outs, note = variants or variant_images(out, images, outline_l)
    scores: dict[str, dict[str, float]] = {}
    for variant, img in outs.items():
        at_drawing = variant in DRAWING_VARIANTS
        d = images["drawing"] if at_drawing else images
        thr = drawing_outline_l if at_drawing else outline_l
        if prompt == "faithful":
            s = M.score_faithful(img, d["color"], d["lineart"], d["mask"], instruction, thr)
        else:
            s = {"psnr": math.nan, "ssim": math.nan, "delta_e": math.nan,
                 **M.score_counterfactual(img, d["lineart"], d["mask"], instruction, thr)}
        s["clip_direction"] = math.nan
        s["region_purity"] = (M.region_purity(img, d["lineart"], regions=d["regions"])
                              if at_drawing and d["regions"] is not None else math.nan)
        s["fell_back"] = float(bool(note)) if variant == "flat" else math.nan
        scores[variant] = s
    return scores


def open_rgb(path: Path) -> Image.Image:
    """An RGB image; transparency (if any) composited onto white, as the sprites are rendered."""
    with Image.open(path) as im:
        return Image.fromarray(M.to_rgb(im))


def open_item(item: TestItem) -> dict[str, Any]:
    with Image.open(item.mask) as mask:
        opened: dict[str, Any] = {"color": open_rgb(item.color) if item.color else None,
                                  "lineart": open_rgb(item.lineart), "mask": mask.convert("L")}
    if item.drawing is not None:
        d = item.drawing
        with Image.open(d.mask) as mask:
            drawing: dict[str, Any] = {"color": open_rgb(d.color) if d.color else None, "lineart": open_rgb(d.lineart),
                                       "mask": mask.convert("L"), "note": ""}
        try:
            drawing["regions"] = segment(drawing["lineart"], drawing["mask"])
        except FlatError as exc:
            log.warning("test id %s: %s (%s): its flat variant is the upsampled output", item.id, exc, d.lineart)
            drawing["regions"], drawing["note"] = None, str(exc)
        opened["drawing"] = drawing
    return opened


def model_size(images: dict[str, Any]) -> dict[str, Any]:
    """:func:`open_item`'s images without the drawing: only the model-size variants get made and scored."""
    return {k: v for k, v in images.items() if k != "drawing"}


def with_drawings(paths: Paths, cfg: CompareConfig, items: list[TestItem], seed: int) -> list[TestItem]:
    """``items`` with their drawings at ``compare.drawing_size`` (made by :func:`t2p_utils.compare.drawing.make_drawings`)."""
    if not cfg.drawing_size or not items:
        return items
    files = make_drawings(paths, [i.id for i in items], cfg.drawing_size, seed)
    return [dataclasses.replace(i, drawing=files[i.id]) for i in items]


class CompareError(RuntimeError):
    """An input of 05_compare is missing or inconsistent; the message names the step that makes it."""
