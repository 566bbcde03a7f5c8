"""05_compare: run every model on every test character and score it (DESIGN.md section 7).

For each test id (``split == "test"`` in the manifest) and each model, two instructions from
the reference captions CSV (``paths.reference_captions``):

* ``faithful`` -- describes the character's real colours; scored against the ground truth
  (PSNR, SSIM, ΔE2000 in the mask, background leakage, line preservation, colour adherence);
* ``counterfactual`` -- asks for colours the character does not have; no ground truth exists,
  so it is scored on its text (colour adherence) and on the line art (leakage, lines).

Each output is scored as four variants:

* ``raw`` -- what the pipeline produced, at the model's resolution;
* ``protected`` -- outline and background copied back from the line art after generation
  (:func:`t2p_utils.compare.metrics.protect`), a variant beyond the seed that removes failure mode 1 by construction;
* ``upsampled`` -- the raw output resized (bicubic) to the drawing's size (``compare.drawing_size``, 256 px by
  default; :mod:`t2p_utils.compare.drawing`): what a user would get by simply enlarging it;
* ``flat`` -- the drawing coloured flat at its own size (:func:`t2p_utils.core.flat.flat_fill`): each closed region of
  the line art filled with the model's colour for it, the strokes exactly as drawn, the background as given.

``upsampled`` and ``flat`` are scored against the ground truth rendered at the drawing's size, with outline pixels
at L* < ``compare.drawing_outline_l``; they also get ``region_purity`` (:func:`t2p_utils.compare.metrics.region_purity`)
and ``fell_back`` (1 where the flat fill refused the drawing, e.g. strokes with large gaps, and the
upsampled output stands in).

Models (``compare.models`` in params/<profile>.yaml): ``base`` (zero-shot
``timbrooks/instruct-pix2pix``, ``full`` only), ``ip2p_cnn_lstm`` and ``ip2p_clip`` (required,
made by notebooks/04_finetune.ipynb), and optional variants such as ``ip2p_reference``
(evaluated when their folder exists).

Outputs under ``paths.reports``: ``samples/<model>/<prompt>/<id>_seed<k>.png`` (raw images),
``compare_samples.csv`` (one row per id x model x variant x prompt x seed),
``metrics.csv`` / ``metrics.json`` (mean, bootstrap 95 % CI, n per model x variant x prompt x metric),
``paired.csv`` (paired differences between models over the same ids), ``sweep.csv`` and
``compare_summary.json`` (config, models, stand-ins, timings).
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import itertools
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from PIL import Image

from t2p_utils.compare import metrics as M
from t2p_utils.compare.drawing import DrawingFiles, make_drawings
from t2p_utils.config.compare import CompareConfig
from t2p_utils.config.params import Paths, load_params, resolve_device
from t2p_utils.core.flat import FlatError, flat_fill, segment
from t2p_utils.core.io import atomic_open, atomic_write_image, atomic_write_json
from t2p_utils.core.manifest import read_manifest
from t2p_utils.core.progress import tqdm
from t2p_utils.core.reference_csv import read_reference_csv
from t2p_utils.core.standins import SCRATCH_STAND_IN, captioner_stand_in, clip_label
from t2p_utils.core.threads import torch_threads
from t2p_utils.inference.onnx_unet import accelerate_unet, engine_of, torch_threads_beside
from t2p_utils.scrape.derive import derived_counts

log = logging.getLogger(__name__)

PROMPTS: tuple[str, ...] = ("faithful", "counterfactual")
VARIANTS: tuple[str, ...] = ("raw", "protected", "upsampled", "flat")
#: The variants made at the drawing's size (``compare.drawing_size``) and scored against the drawing's ground truth.
DRAWING_VARIANTS: tuple[str, ...] = ("upsampled", "flat")
#: The variants colour control is measured on.
CONTROL_VARIANTS: tuple[str, ...] = ("raw", "flat")
REQUIRED_MODELS: tuple[str, ...] = ("ip2p_cnn_lstm", "ip2p_clip")
ZERO_SHOT = "base"

#: Human-readable names of the models (stand-ins are appended by :func:`resolve_models`).
MODEL_LABELS: dict[str, str] = {
    "base": "zero-shot IP2P",
    "ip2p_cnn_lstm": "CNN-LSTM captions",
    "ip2p_clip": "CLIP captions",
    "ip2p_reference": "reference captions",
    "ip2p_palette": "palette captions",
}

#: How the offline profiles' models differ from the real ones (also stated by the report).

SAMPLE_COLUMNS: tuple[str, ...] = (
    "id", "model", "variant", "prompt", "seed", "instruction", "image",
    "psnr", "ssim", "delta_e", "leakage", "line_preservation", "adherence", "named_share", "clip_direction",
    "region_purity", "fell_back", "note",
)
CONTROL_COLUMNS: tuple[str, ...] = ("id", "model", "variant", "template", "asked", "seed", "image", "asked_share",
                                    "color_control")
BINDING_COLUMNS: tuple[str, ...] = ("id", "model", "variant", "template", "places", "a", "b", "seed", "prompt_ab",
                                    "prompt_ba", "image_ab", "image_ba", "binding")
#: Templates whose name ends so are phrasings no training caption used; "all" averages the others, "heldout" these.
HELDOUT = "_heldout"


class CompareError(RuntimeError):
    """An input of 05_compare is missing or inconsistent; the message names the step that makes it."""



# ---------------------------------------------------------------------------------------------
# inference backend (the training helper's load_pipeline / generate)
# ---------------------------------------------------------------------------------------------
class Backend(Protocol):
    def load(self, source: str, device: str) -> Any: ...

    def generate(
        self, pipe: Any, images: list[Image.Image], prompts: list[str], steps: int,
        text_guidance: float, image_guidance: float, seed: int,
    ) -> list[Image.Image]: ...


@dataclass
class TrainBackend:
    """Inference through ``t2p_utils.inference.pipeline.load_pipeline`` and ``t2p_utils.inference.pipeline.generate``.

    ``unet_backend`` (``compare.unet_backend``): what runs the UNet, see :func:`t2p_utils.inference.onnx_unet.accelerate_unet`.
    """

    unet_backend: str = "auto"

    def load(self, source: str, device: str) -> Any:
        from t2p_utils.inference.pipeline import load_pipeline

        pipe = load_pipeline(source, device)
        accelerate_unet(pipe, self.unet_backend)
        return pipe

    def generate(self, pipe: Any, images: list[Image.Image], prompts: list[str], steps: int,
                 text_guidance: float, image_guidance: float, seed: int) -> list[Image.Image]:
        from t2p_utils.inference.pipeline import generate

        with torch_threads(torch_threads_beside(pipe, None)):
            return generate(pipe, images, prompts, steps, text_guidance, image_guidance, seed)


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    name: str  # folder name under models/<p>/ (or "base")
    source: str  # what load_pipeline gets: a folder path or a hub id
    label: str  # for tables and figures
    stand_ins: tuple[str, ...] = ()  # offline stand-ins this model is made with

    @property
    def display(self) -> str:
        """The label for tables and figures (stand-ins are listed in the summary, not in every cell)."""
        return self.label


def _json_stand_ins(folder: Path) -> list[str]:
    """``stand_in`` / ``caption_stand_in`` values of the JSON files directly inside ``folder`` (e.g. train_summary.json)."""
    found: list[str] = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        for key in ("stand_in", "caption_stand_in"):  # the training helper's train_summary.json uses the latter
            val = data.get(key)
            if isinstance(val, str) and val:
                found.append(val)
            elif isinstance(val, list | tuple):
                found.extend(str(v) for v in val if v)
            elif isinstance(val, dict):
                found.extend(f"{k}: {v}" for k, v in val.items() if v)
    return found


def model_paths(paths: Paths, cfg: CompareConfig) -> Paths:
    """Where the evaluated models live: this profile's ``models/``, or ``compare.models_from``'s (evaluate-only)."""
    return Paths.for_profile(cfg.models_from, paths.root) if cfg.models_from else paths


def resolve_models(paths: Paths, cfg: CompareConfig, params: dict[str, Any] | None = None) -> list[ModelSpec]:
    """The models to evaluate, in config order; raises :class:`CompareError` for a missing required model."""
    owner = model_paths(paths, cfg)
    if owner is not paths or params is None:  # the stand-in labels follow the profile that trained the models
        params = load_params(owner.spec, owner.root)
    offline = owner.profile != "full"
    clip_backend = str((params.get("captions") or {}).get("clip_backend", "palette" if offline else "interrogator"))
    model_source = str((params.get("train") or {}).get("model_source", "scratch" if offline else "pretrained"))
    specs: list[ModelSpec] = []
    for name in cfg.models:
        label = MODEL_LABELS.get(name, name)
        if name == ZERO_SHOT:
            if model_source != "pretrained":
                log.info("skipping the zero-shot base model: it needs %s from the hub (profiles that fine-tune it)",
                         cfg.base_model)
                continue
            specs.append(ModelSpec(name, cfg.base_model, f"{label} ({cfg.base_model})"))
            continue
        folder = owner.model(name)
        if not (folder / "model_index.json").exists():
            if name in REQUIRED_MODELS:
                what = "is missing" if not folder.exists() else "has no model_index.json (an unfinished training run?)"
                fix = (f"train them first with ./run_all.sh {owner.spec} (compare.models_from: {cfg.models_from})"
                       if cfg.models_from else
                       f"run notebooks/04_finetune.ipynb (profile {paths.profile!r}) first; it trains "
                       f"{', '.join(REQUIRED_MODELS)} (use force=True there to retrain)")
                raise CompareError(f"{folder} {what}: {fix}")
            log.info("optional model %s not found at %s: skipped", name, folder)
            continue
        stand = _json_stand_ins(folder)
        if model_source == "scratch" and not any("scratch" in s for s in stand):
            stand.append(SCRATCH_STAND_IN)
        if name == "ip2p_clip" and clip_backend != "interrogator":
            if not any(clip_backend in s for s in stand):
                stand.append(captioner_stand_in(clip_backend))
            label = clip_label(clip_backend)
        specs.append(ModelSpec(name, str(folder), label, tuple(dict.fromkeys(stand))))
    if not specs:
        raise CompareError(f"no model to evaluate: compare.models is {cfg.models} in {paths.params_file}")
    return specs


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


# ---------------------------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------------------------
def variant_images(out: Image.Image, images: dict[str, Any], outline_l: float = M.OUTLINE_L
                   ) -> tuple[dict[str, Image.Image], str]:
    """Every variant of one output (see the module docstring) and the flat fill's note ("" when it filled).

    ``images``: :func:`_open_item`'s dict; without a ``drawing`` only ``raw`` and ``protected`` are made."""
    outs: dict[str, Image.Image] = {"raw": out, "protected": M.protect(out, images["lineart"], images["mask"], outline_l)}
    drawing = images.get("drawing")
    if drawing is None:
        return outs, ""
    outs["upsampled"] = out.resize(drawing["lineart"].size, Image.Resampling.BICUBIC)
    outs["flat"], note = flat_variant(out, drawing)
    return outs, note


def flat_variant(out: Image.Image, drawing: dict[str, Any]) -> tuple[Image.Image, str]:
    """The flat variant of one output on its drawing (:func:`_open_item`'s ``drawing`` dict) and the fill's note."""
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


def _open_item(item: TestItem) -> dict[str, Any]:
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


def _model_size(images: dict[str, Any]) -> dict[str, Any]:
    """:func:`_open_item`'s images without the drawing: only the model-size variants get made and scored."""
    return {k: v for k, v in images.items() if k != "drawing"}


def with_drawings(paths: Paths, cfg: CompareConfig, items: list[TestItem], seed: int) -> list[TestItem]:
    """``items`` with their drawings at ``compare.drawing_size`` (made by :func:`t2p_utils.compare.drawing.make_drawings`)."""
    if not cfg.drawing_size or not items:
        return items
    files = make_drawings(paths, [i.id for i in items], cfg.drawing_size, seed)
    return [dataclasses.replace(i, drawing=files[i.id]) for i in items]


def summarise(samples: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Mean and bootstrap 95 % CI per model x variant x prompt x metric; seeds averaged per id first."""
    metric_cols = [c for c in ("psnr", "ssim", "delta_e", "leakage", "line_preservation", "adherence", "named_share",
                               "clip_direction", "region_purity", "fell_back") if c in samples.columns]
    per_id = samples.groupby(["model", "variant", "prompt", "id"], sort=False)[metric_cols].mean().reset_index()
    rows = []
    for (model, variant, prompt), grp in per_id.groupby(["model", "variant", "prompt"], sort=False):
        for metric in metric_cols:
            vals = grp[metric].to_numpy(dtype=np.float64)
            if np.isnan(vals).all():
                continue
            ci = M.bootstrap_ci(vals, n_boot=n_boot, seed=seed)
            rows.append({"model": model, "variant": variant, "prompt": prompt, "metric": metric, **ci.as_dict()})
    return pd.DataFrame(rows, columns=["model", "variant", "prompt", "metric", "mean", "ci_low", "ci_high", "n"])


def paired_differences(samples: pd.DataFrame, models: Sequence[str], n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Paired differences (a - b over the same ids) between every pair of models, per variant, prompt and metric.

    Also ``protected - raw`` within each model. ``verdict`` names the better side when the
    95 % interval excludes 0 (direction from :data:`t2p_utils.compare.metrics.HIGHER_IS_BETTER`), else "no clear difference".
    """
    metric_cols = [c for c in M.HIGHER_IS_BETTER if c in samples.columns]
    per_id = samples.groupby(["model", "variant", "prompt", "id"])[metric_cols].mean().sort_index()
    pairs: list[tuple[tuple[str, str], tuple[str, str]]] = []
    for variant in VARIANTS:
        pairs += [((a, variant), (b, variant)) for a, b in itertools.combinations(models, 2)]
    pairs += [((m, "protected"), (m, "raw")) for m in models]
    pairs += [((m, "flat"), (m, "upsampled")) for m in models]  # the fill itself, at one resolution
    rows = []
    for (ma, va), (mb, vb) in pairs:
        for prompt in PROMPTS:
            try:
                da, db = per_id.loc[(ma, va, prompt)], per_id.loc[(mb, vb, prompt)]
            except KeyError:
                continue
            for metric in metric_cols:
                if da[metric].isna().all() or db[metric].isna().all():
                    continue
                d = M.paired_difference(da[metric], db[metric], n_boot=n_boot, seed=seed)
                if d.n == 0:
                    continue
                if d.ci_low > 0 or d.ci_high < 0:
                    a_better = (d.mean > 0) == M.HIGHER_IS_BETTER[metric]
                    verdict = f"{ma}/{va} better" if a_better else f"{mb}/{vb} better"
                else:
                    verdict = "no clear difference"
                rows.append({"a": f"{ma}/{va}", "b": f"{mb}/{vb}", "prompt": prompt, "metric": metric,
                             "mean_diff": d.mean, "ci_low": d.ci_low, "ci_high": d.ci_high, "n": d.n, "verdict": verdict})
    return pd.DataFrame(rows, columns=["a", "b", "prompt", "metric", "mean_diff", "ci_low", "ci_high", "n", "verdict"])


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------
@dataclass
class CompareResult:
    samples: pd.DataFrame
    metrics: pd.DataFrame
    paired: pd.DataFrame
    sweep: pd.DataFrame
    models: list[ModelSpec]
    showcase: list[str]
    summary: dict[str, Any]
    control: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(CONTROL_COLUMNS)))
    binding: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(BINDING_COLUMNS)))


def output_files(paths: Paths) -> dict[str, Path]:
    r = paths.reports
    return {
        "samples": r / "compare_samples.csv",
        "metrics_csv": r / "metrics.csv",
        "metrics_json": r / "metrics.json",
        "paired": r / "paired.csv",
        "sweep": r / "sweep.csv",
        "control": r / "control.csv",
        "binding": r / "binding.csv",
        "summary": r / "compare_summary.json",
    }


def sample_path(paths: Paths, model: str, prompt: str, sprite_id: str, seed: int, variant: str = "raw") -> Path:
    suffix = "" if variant == "raw" else f"_{variant}"
    return paths.reports / "samples" / model / prompt / f"{sprite_id}_seed{seed}{suffix}.png"


def sweep_path(paths: Paths, model: str, sprite_id: str, ig: float, tg: float) -> Path:
    return paths.reports / "samples" / "sweep" / model / f"{sprite_id}_ig{ig:g}_tg{tg:g}.png"


def _fingerprint(spec: ModelSpec) -> str:
    """Changes when the model's files change (sizes and modification times), so a retrained model is re-run."""
    folder = Path(spec.source)
    if not folder.is_dir():
        return spec.source  # a hub id
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _state(cfg: CompareConfig, specs: list[ModelSpec], items: list[TestItem]) -> dict[str, Any]:
    return {
        "config": dataclasses.asdict(cfg),
        "models": {s.name: _fingerprint(s) for s in specs},
        "tests": hashlib.sha256(json.dumps([dataclasses.astuple(i)[:3] for i in items]).encode()).hexdigest()[:16],
    }


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, index=False)


def _generate_batched(backend: Backend, pipe: Any, images: list[Image.Image], prompts: list[str], cfg: CompareConfig,
                      seed: int, text_guidance: float, image_guidance: float) -> list[Image.Image]:
    outs: list[Image.Image] = []
    for start in range(0, len(images), cfg.batch_size):
        batch = backend.generate(pipe, images[start:start + cfg.batch_size], prompts[start:start + cfg.batch_size],
                                 cfg.steps, text_guidance, image_guidance, seed + start)
        outs.extend(im.convert("RGB") for im in batch)
    if len(outs) != len(images):
        raise RuntimeError(f"generate returned {len(outs)} images for {len(images)} inputs")
    return outs


def control_path(paths: Paths, model: str, template: str, color: str, sprite_id: str, seed: int,
                 variant: str = "raw") -> Path:
    suffix = "" if variant == "raw" else f"_{variant}"
    return paths.reports / "samples" / model / "control" / template / color / f"{sprite_id}_seed{seed}{suffix}.png"


def control_region(images: dict[str, Any], outline_l: float) -> np.ndarray:
    """The character region colour control is measured on: the mask minus the line art's outline."""
    return M.to_mask(images["mask"]) & ~M.outline_mask(images["lineart"], outline_l)


def control_regions(images: dict[str, Any], cfg: CompareConfig) -> dict[str, np.ndarray]:
    """The regions colour control and binding are measured on, per variant: ``raw`` the model-size character region,
    ``flat`` the drawing's (when the item has a drawing)."""
    out = {"raw": control_region(images, cfg.outline_l)}
    if images.get("drawing") is not None:
        out["flat"] = control_region(images["drawing"], cfg.drawing_outline_l)
    return out


def scored_variants(raw: dict[str, Image.Image], images: dict[str, Any],
                    regions: dict[str, np.ndarray]) -> dict[str, tuple[dict[str, Image.Image], np.ndarray]]:
    """``variant -> (outputs, region)`` for one item's outputs (keyed by asked colour or order): the raw outputs and,
    where the item has a drawing, the same outputs flat-filled onto it (:func:`flat_variant`)."""
    out = {"raw": (raw, regions["raw"])}
    if "flat" in regions:
        out["flat"] = ({k: flat_variant(img, images["drawing"])[0] for k, img in raw.items()}, regions["flat"])
    return out


def run_control(paths: Paths, cfg: CompareConfig, backend: Backend, pipe: Any, model: str, items: list[TestItem],
                opened: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Colour control of one model: every item x template x colour, one seed per item shared by its colours.

    Measured on the raw outputs (the model's region) and, for items with a drawing, on their flat variant (the
    drawing's region at its size)."""
    seed = cfg.seeds[0]
    items = items[: cfg.control_max_test] if cfg.control_max_test > 0 else items
    lines = [opened[i.id]["lineart"] for i in items]
    regions = {i.id: control_regions(opened[i.id], cfg) for i in items}
    rows: list[dict[str, Any]] = []
    jobs = list(itertools.product(cfg.control_templates.items(), cfg.control_colors))
    outs: dict[tuple[str, str], list[Image.Image]] = {}
    for (tname, template), color in tqdm(jobs, desc=f"colour control {model}", leave=False):
        # the same seeds for every colour: item k gets seed + k whatever was asked
        outs[(tname, color)] = _generate_batched(backend, pipe, lines, [template.format(color=color)] * len(items), cfg,
                                                 seed, cfg.text_guidance, cfg.image_guidance)
    for tname in cfg.control_templates:
        for k, item in enumerate(items):
            per_variant = scored_variants({c: outs[(tname, c)][k] for c in cfg.control_colors}, opened[item.id],
                                          regions[item.id])
            for variant, (per_color, region) in per_variant.items():
                matrix = M.color_control_matrix(per_color, region, cfg.control_colors)
                score = M.color_control(matrix)
                for c, img in per_color.items():
                    path = control_path(paths, model, tname, c, item.id, seed, variant)
                    atomic_write_image(img, path)
                    rows.append({"id": item.id, "model": model, "variant": variant, "template": tname, "asked": c,
                                 "seed": seed, "image": str(path.relative_to(paths.reports)),
                                 "asked_share": float(matrix.at[c, c]), "color_control": score})
    return pd.DataFrame(rows, columns=list(CONTROL_COLUMNS))


def _control_variant(control: pd.DataFrame) -> pd.DataFrame:
    """``control`` with a ``variant`` column (control.csv of runs before the flat variant had none: raw)."""
    return control if "variant" in control.columns else control.assign(variant="raw")


def per_id(df: pd.DataFrame, value: str) -> pd.DataFrame:
    """One ``value`` per model x variant x template x id, plus template ``all`` (the mean over the training
    template's phrasings) and ``heldout`` (over the held-out ones, names ending :data:`HELDOUT`), where there are any."""
    cols = ["model", "variant", "template", "id", value]
    if df.empty:
        return pd.DataFrame(columns=cols)
    per = df.groupby(["model", "variant", "template", "id"], sort=False)[value].first().reset_index()
    held = per["template"].astype(str).str.endswith(HELDOUT)
    parts = [per]
    for name, sub in (("all", per[~held]), ("heldout", per[held])):
        if not sub.empty:
            parts.append(sub.groupby(["model", "variant", "id"], sort=False)[value].mean().reset_index()
                         .assign(template=name)[per.columns])
    return pd.concat(parts, ignore_index=True)


def control_per_id(control: pd.DataFrame) -> pd.DataFrame:
    """One colour-control value per model x variant x template x id, plus template ``all`` (the mean over the training
    template's phrasings) and ``heldout`` (the mean over the held-out ones)."""
    return per_id(_control_variant(control), "color_control")


def _summarise_per_id(per: pd.DataFrame, value: str, kind: str, n_boot: int, seed: int) -> pd.DataFrame:
    rows = []
    for (model, variant, template), grp in per.groupby(["model", "variant", "template"], sort=False):
        ci = M.bootstrap_ci(grp[value].to_numpy(dtype=np.float64), n_boot=n_boot, seed=seed)
        rows.append({"model": model, "variant": variant, "prompt": f"{kind}:{template}", "metric": value, **ci.as_dict()})
    return pd.DataFrame(rows, columns=["model", "variant", "prompt", "metric", "mean", "ci_low", "ci_high", "n"])


def summarise_control(control: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Colour control per model, variant and template (and ``all``, ``heldout``) as rows of the metrics table (prompt
    ``control:<template>``)."""
    return _summarise_per_id(control_per_id(control), "color_control", "control", n_boot, seed)


def summarise_binding(binding: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Binding per model, variant and template (and ``all``, ``heldout``) as rows of the metrics table (prompt
    ``binding:<template>``)."""
    return _summarise_per_id(per_id(binding, "binding"), "binding", "binding", n_boot, seed)


def _paired_per_id(per: pd.DataFrame, value: str, kind: str, models: Sequence[str], n_boot: int,
                   seed: int) -> pd.DataFrame:
    rows = []

    def add(a: str, va: str, b: str, vb: str, template: str) -> None:
        sa = per[(per.model == a) & (per.variant == va) & (per.template == template)].set_index("id")[value]
        sb = per[(per.model == b) & (per.variant == vb) & (per.template == template)].set_index("id")[value]
        if sa.empty or sb.empty:
            return
        d = M.paired_difference(sa, sb, n_boot=n_boot, seed=seed)
        verdict = ("no clear difference" if d.ci_low <= 0 <= d.ci_high
                   else f"{a}/{va} better" if d.mean > 0 else f"{b}/{vb} better")
        rows.append({"a": f"{a}/{va}", "b": f"{b}/{vb}", "prompt": f"{kind}:{template}", "metric": value,
                     "mean_diff": d.mean, "ci_low": d.ci_low, "ci_high": d.ci_high, "n": d.n, "verdict": verdict})

    templates = list(per["template"].unique()) if not per.empty else []
    variants = [v for v in CONTROL_VARIANTS if not per.empty and v in set(per["variant"])]
    for variant in variants:
        for a, b in itertools.combinations(models, 2):
            for template in templates:
                add(a, variant, b, variant, template)
    if "flat" in variants:
        for m in models:
            for template in templates:
                add(m, "flat", m, "raw", template)
    return pd.DataFrame(rows, columns=["a", "b", "prompt", "metric", "mean_diff", "ci_low", "ci_high", "n", "verdict"])


def paired_control(control: pd.DataFrame, models: Sequence[str], n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Paired colour-control differences (a - b over the same ids) between every pair of models, per variant and
    template, and flat - raw within each model."""
    return _paired_per_id(control_per_id(control), "color_control", "control", models, n_boot, seed)


def paired_binding(binding: pd.DataFrame, models: Sequence[str], n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Paired binding differences (a - b over the same ids), as :func:`paired_control`."""
    return _paired_per_id(per_id(binding, "binding"), "binding", "binding", models, n_boot, seed)


def binding_path(paths: Paths, model: str, template: str, sprite_id: str, seed: int, order: str,
                 variant: str = "raw") -> Path:
    suffix = "" if variant == "raw" else f"_{variant}"
    return paths.reports / "samples" / model / "binding" / template / f"{sprite_id}_seed{seed}_{order}{suffix}.png"


def binding_pair_of(k: int, pairs: Sequence[Sequence[str]]) -> tuple[str, str]:
    """The colour pair asked of the ``k``-th character (in turn through ``pairs``)."""
    a, b = pairs[k % len(pairs)]
    return str(a), str(b)


def run_binding(paths: Paths, cfg: CompareConfig, backend: Backend, pipe: Any, model: str, items: list[TestItem],
                opened: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Binding of one model: per item and template, its colour pair asked at two places and swapped, one seed.

    Scored (:func:`t2p_utils.compare.metrics.binding_score`) on the raw outputs over the model's character region and, for
    items with a drawing, on their flat variant over the drawing's."""
    n = cfg.control_max_test if cfg.binding_max_test < 0 else cfg.binding_max_test
    items = items[:n] if n > 0 else items
    if not cfg.binding_templates or not items:
        return pd.DataFrame(columns=list(BINDING_COLUMNS))
    seed = cfg.seeds[0]
    lines = [opened[i.id]["lineart"] for i in items]
    regions = {i.id: control_regions(opened[i.id], cfg) for i in items}
    pairs = [binding_pair_of(k, cfg.binding_pairs) for k in range(len(items))]
    rows: list[dict[str, Any]] = []
    for tname, (places, template) in tqdm(list(cfg.binding_templates.items()), desc=f"binding {model}", leave=False):
        prompts = {"ab": [M.binding_prompt(template, a, b) for a, b in pairs],
                   "ba": [M.binding_prompt(template, b, a) for a, b in pairs]}
        # the same seeds both ways: item k gets seed + its batch offset whichever order was asked
        outs = {o: _generate_batched(backend, pipe, lines, p, cfg, seed, cfg.text_guidance, cfg.image_guidance)
                for o, p in prompts.items()}
        for k, item in enumerate(items):
            per_variant = scored_variants({o: outs[o][k] for o in outs}, opened[item.id], regions[item.id])
            a, b = pairs[k]
            for variant, (imgs, region) in per_variant.items():
                files = {}
                for o, img in imgs.items():
                    files[o] = binding_path(paths, model, tname, item.id, seed, o, variant)
                    atomic_write_image(img, files[o])
                rows.append({"id": item.id, "model": model, "variant": variant, "template": tname, "places": places,
                             "a": a, "b": b, "seed": seed, "prompt_ab": prompts["ab"][k], "prompt_ba": prompts["ba"][k],
                             "image_ab": str(files["ab"].relative_to(paths.reports)),
                             "image_ba": str(files["ba"].relative_to(paths.reports)),
                             "binding": M.binding_score(imgs["ab"], imgs["ba"], region, places, a, b)})
    return pd.DataFrame(rows, columns=list(BINDING_COLUMNS))


def score_split(paths: Paths, pipe: Any, cfg: CompareConfig, split: str = "val", n: int = 20,
                steps: int | None = None, text_guidance: float | None = None, image_guidance: float | None = None,
                caption_source: str = "clip", templates: Sequence[str] | None = None,
                flat: bool = False, with_binding: bool = True) -> dict[str, float]:
    """Colour control and faithful metrics of one pipeline on the first ``n`` ids of a non-test split.

    For choosing a recipe and inference settings without looking at the test split: the
    faithful instruction of an id is its ``caption_source`` caption (``data/captions/<p>/<source>.csv``).
    Returns means (``control_<template>``, ``ssim``, ``delta_e``, ``leakage``, ``named_share``) and
    ``control_low`` (the bootstrap lower bound of the mean control over templates); with ``flat``, the same for
    the flat variant at ``compare.drawing_size`` (``flat_control_<template>``, ``flat_ssim``, ``flat_delta_e``,
    ``flat_leakage``, ``flat_line_preservation``, ``flat_region_purity``, ``flat_fell_back``); with ``with_binding``,
    binding per template (``binding_<template>``, ``binding_all``, ``binding_heldout``; ``flat_binding_*``).
    """
    if split == "test":
        raise ValueError("score_split is for choosing settings: use the val (or train) split, never test")
    manifest = read_manifest(paths.manifest)
    rows = manifest[manifest["split"] == split].sort_values("id").head(n)
    if rows.empty:
        raise CompareError(f"{paths.manifest} has no {split!r} rows: re-run notebooks/01_scrape.ipynb")
    caps = pd.read_csv(paths.captions(caption_source), dtype=str, keep_default_na=False).set_index("id")
    items = [TestItem(r.id, caps.at[r.id, "instruction"], "", paths.root / r.color, paths.root / r.lineart,
                      paths.root / r.mask) for r in rows.itertuples()]
    if flat and cfg.drawing_size:
        items = with_drawings(paths, cfg, items, int(load_params(paths.spec, paths.root).get("seed", 0)))
    opened = {i.id: _open_item(i) for i in items}
    run_cfg = dataclasses.replace(cfg, steps=steps or cfg.steps, text_guidance=text_guidance or cfg.text_guidance,
                                  image_guidance=image_guidance or cfg.image_guidance, control_max_test=0,
                                  binding_max_test=0,
                                  control_templates={k: v for k, v in cfg.control_templates.items()
                                                     if templates is None or k in templates})

    import tempfile

    backend = TrainBackend()

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Paths(paths.profile, Path(tmp))
        control = run_control(scratch, run_cfg, backend, pipe, "m", items, opened)
        binding = run_binding(scratch, run_cfg, backend, pipe, "m", items, opened) if with_binding else None
    per = control_per_id(control)
    out: dict[str, float] = {}
    tables = [(per, "color_control", "control")] + ([] if binding is None else [(per_id(binding, "binding"), "binding",
                                                                                 "binding")])
    for table, value, kind in tables:
        for (variant, template), grp in table.groupby(["variant", "template"]):
            out[("" if variant == "raw" else f"{variant}_") + f"{kind}_{template}"] = float(grp[value].mean())
    out["control_low"] = M.bootstrap_ci(per.loc[(per.template == "all") & (per.variant == "raw"), "color_control"]).ci_low
    faithful = _generate_batched(backend, pipe, [opened[i.id]["lineart"] for i in items],
                                 [i.faithful for i in items], run_cfg, run_cfg.seeds[0], run_cfg.text_guidance,
                                 run_cfg.image_guidance)
    scores = [score_output(o, i, "faithful", i.faithful, opened[i.id] if flat else _model_size(opened[i.id]),
                           cfg.outline_l, cfg.drawing_outline_l) for o, i in zip(faithful, items, strict=True)]
    for k in ("ssim", "delta_e", "leakage", "named_share"):
        out[k] = float(np.nanmean([sc["raw"][k] for sc in scores]))
    if flat and all("flat" in sc for sc in scores):
        for k in ("ssim", "delta_e", "leakage", "line_preservation", "region_purity", "fell_back"):
            out[f"flat_{k}"] = float(np.nanmean([sc["flat"][k] for sc in scores]))
    return out


#: the figures the 05 notebook draws (t2p_utils.compare.figures), by file-name prefix
COMPARE_FIGURES: tuple[str, ...] = ("grid_", "sweep", "bars_", "ladder_")


def run_compare(
    paths: Paths,
    cfg: CompareConfig,
    force: bool = False,
    backend: Backend | None = None,
    clip_scorer_factory: Callable[[CompareConfig, str], M.ClipDirectionScorer] | None = None,
) -> CompareResult:
    """Generate and score every test id with every model; idempotent unless ``force``.

    ``backend`` defaults to :class:`TrainBackend`; ``clip_scorer_factory`` defaults to
    :meth:`ClipDirectionScorer.from_open_clip` (only called when ``cfg.clip_direction``).
    """
    t0 = time.perf_counter()
    params = load_params(paths.spec, paths.root)
    for old in (paths.reports / "figures").glob("*.png"):  # the 05 notebook draws its figures anew after this:
        if old.name.startswith(COMPARE_FIGURES):  # one it no longer draws (no ground truth, a model gone) must go
            old.unlink()
    items = with_drawings(paths, cfg, load_test_items(paths, cfg.max_test), int(params.get("seed", 0)))
    specs = resolve_models(paths, cfg, params)
    showcase = showcase_ids([i.id for i in items], cfg.showcase)
    files = output_files(paths)
    state = _state(cfg, specs, items)
    if not force and all(p.exists() for p in files.values()):
        old = json.loads(files["summary"].read_text(encoding="utf-8"))
        if old.get("state") == state:
            log.info("05_compare outputs are up to date (%s); pass force=True to recompute", files["summary"])
            return load_result(paths)

    with torch_threads(cfg.torch_threads):
        return _run(paths, cfg, params, items, specs, showcase, files, state, backend or TrainBackend(cfg.unet_backend),
                    clip_scorer_factory, t0)


def _run(paths: Paths, cfg: CompareConfig, params: dict[str, Any], items: list[TestItem], specs: list[ModelSpec],
         showcase: list[str], files: dict[str, Path], state: dict[str, Any], backend: Backend,
         clip_scorer_factory: Callable[[CompareConfig, str], M.ClipDirectionScorer] | None, t0: float) -> CompareResult:
    device = resolve_device(cfg.device)
    sweep_model = cfg.sweep_model if cfg.sweep_model in {s.name for s in specs} else specs[-1].name
    with_truth = [i for i in items if i.faithful]  # line art without a colour image has no faithful instruction
    sweep_items = [i for i in with_truth if i.id in showcase[: max(1, cfg.sweep_ids)]] or with_truth[:1]
    opened = {i.id: _open_item(i) for i in items}
    scorer = (clip_scorer_factory or (lambda c, d: M.ClipDirectionScorer.from_open_clip(c.clip_model, c.clip_pretrained, d)))(
        cfg, device) if cfg.clip_direction else None

    rows: list[dict[str, Any]] = []
    sweep_rows: list[dict[str, Any]] = []
    control_parts: list[pd.DataFrame] = []
    binding_parts: list[pd.DataFrame] = []
    timings: dict[str, float] = {}
    engines: dict[str, str] = {}
    for spec in specs:
        t_model = time.perf_counter()
        log.info("05_compare: %s (%s) from %s on %s", spec.name, spec.display, spec.source, device)
        pipe = backend.load(spec.source, device)
        engine = engine_of(pipe)
        if engine is not None:
            engines[spec.name] = str(engine)
            log.info("05_compare: %s's UNet is run by %s", spec.name, engine)
        if cfg.sampler:
            from t2p_utils.inference.pipeline import set_sampler

            set_sampler(pipe, cfg.sampler)
        for prompt, seed in tqdm(list(itertools.product(PROMPTS, cfg.seeds)), desc=spec.name, leave=False):
            these = [i for i in items if getattr(i, prompt)]
            if not these:
                continue
            instr = [getattr(i, prompt) for i in these]
            outs = _generate_batched(backend, pipe, [opened[i.id]["lineart"] for i in these], instr, cfg, seed,
                                     cfg.text_guidance, cfg.image_guidance)
            lines = [opened[i.id]["lineart"] for i in these]
            clip: dict[str, list[float]] = {}
            if scorer is not None:  # one batched CLIP pass per variant
                protected = [M.protect(o, opened[i.id]["lineart"], opened[i.id]["mask"], cfg.outline_l)
                             for i, o in zip(these, outs, strict=True)]
                src, dst = [cfg.clip_input_caption] * len(these), [caption_of(t) for t in instr]
                clip = {"raw": scorer.direction_similarity(lines, outs, src, dst).tolist(),
                        "protected": scorer.direction_similarity(lines, protected, src, dst).tolist()}
            for k, (item, out) in enumerate(zip(these, outs, strict=True)):
                path = sample_path(paths, spec.name, prompt, item.id, seed)
                atomic_write_image(out, path)
                variants = variant_images(out, opened[item.id], cfg.outline_l)
                images = {v: path for v in variants[0] if v not in ("flat",)}  # protected/upsampled: made from raw
                if "flat" in variants[0]:
                    images["flat"] = sample_path(paths, spec.name, prompt, item.id, seed, "flat")
                    atomic_write_image(variants[0]["flat"], images["flat"])
                scores = score_output(out, item, prompt, instr[k], opened[item.id], cfg.outline_l,
                                      cfg.drawing_outline_l, variants)
                for variant, s in scores.items():
                    if clip and variant in clip:
                        s["clip_direction"] = float(clip[variant][k])
                    rows.append({"id": item.id, "model": spec.name, "variant": variant, "prompt": prompt, "seed": seed,
                                 "instruction": instr[k], "image": str(images[variant].relative_to(paths.reports)),
                                 **s, "note": variants[1] if variant == "flat" else ""})
        control_parts.append(run_control(paths, cfg, backend, pipe, spec.name, items, opened))
        binding_parts.append(run_binding(paths, cfg, backend, pipe, spec.name, items, opened))
        if spec.name == sweep_model and sweep_items:
            grid = list(itertools.product(cfg.sweep_image_guidance, cfg.sweep_text_guidance))
            for ig, tg in tqdm(grid, desc=f"sweep {spec.name}", leave=False):
                outs = _generate_batched(backend, pipe, [opened[i.id]["lineart"] for i in sweep_items],
                                         [i.faithful for i in sweep_items], cfg, cfg.seeds[0], tg, ig)
                for item, out in zip(sweep_items, outs, strict=True):
                    path = sweep_path(paths, spec.name, item.id, ig, tg)
                    atomic_write_image(out, path)
                    s = score_output(out, item, "faithful", item.faithful, _model_size(opened[item.id]),
                                     cfg.outline_l)["raw"]
                    sweep_rows.append({"id": item.id, "model": spec.name, "image_guidance": ig, "text_guidance": tg,
                                       "image": str(path.relative_to(paths.reports)),
                                       **{k: s[k] for k in ("delta_e", "leakage", "line_preservation", "adherence")}})
        del pipe
        gc.collect()
        timings[spec.name] = round(time.perf_counter() - t_model, 2)

    samples = pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))
    control = pd.concat(control_parts, ignore_index=True) if control_parts else pd.DataFrame(columns=list(CONTROL_COLUMNS))
    binding = pd.concat([b for b in binding_parts if not b.empty] or [pd.DataFrame(columns=list(BINDING_COLUMNS))],
                        ignore_index=True)
    boot_seed = int(params.get("seed", 0))
    metrics_df = pd.concat([summarise_control(control, cfg.n_boot, boot_seed),
                            summarise_binding(binding, cfg.n_boot, boot_seed),
                            summarise(samples, n_boot=cfg.n_boot, seed=boot_seed)], ignore_index=True)
    names = [s.name for s in specs]
    paired = pd.concat([paired_control(control, names, cfg.n_boot, boot_seed),
                        paired_binding(binding, names, cfg.n_boot, boot_seed),
                        paired_differences(samples, names, n_boot=cfg.n_boot, seed=boot_seed)], ignore_index=True)
    sweep = pd.DataFrame(sweep_rows, columns=["id", "model", "image_guidance", "text_guidance", "image",
                                              "delta_e", "leakage", "line_preservation", "adherence"])
    summary = {
        "profile": paths.profile,
        "n_test": len(items),
        "n_without_ground_truth": sum(1 for i in items if i.color is None),
        "models_from": cfg.models_from,
        "models_dir": str(model_paths(paths, cfg).models.relative_to(paths.root)),
        "derived_instructions": derived_counts(paths),
        "test_ids": [i.id for i in items],
        "showcase": showcase,
        "sweep_model": sweep_model,
        "outline_l": cfg.outline_l,
        "drawing_size": cfg.drawing_size,
        "drawing_outline_l": cfg.drawing_outline_l,
        "device": device,
        "models": [{**dataclasses.asdict(s), "display": s.display} for s in specs],
        "stand_in": list(dict.fromkeys(x for s in specs for x in s.stand_ins)),
        "clip_direction": "computed" if scorer is not None else "skipped (needs hub CLIP weights; full profile only)",
        "control_colors": list(cfg.control_colors),
        "control_templates": dict(cfg.control_templates),
        "binding_templates": dict(cfg.binding_templates),
        "binding_pairs": [list(p) for p in cfg.binding_pairs],
        "seconds": {"total": round(time.perf_counter() - t0, 2), **timings},
        "unet_engine": engines,
        "state": state,
    }
    _write_csv(samples, files["samples"])
    _write_csv(metrics_df, files["metrics_csv"])
    atomic_write_json(_metrics_json(metrics_df, specs), files["metrics_json"])
    _write_csv(paired, files["paired"])
    _write_csv(sweep, files["sweep"])
    _write_csv(control, files["control"])
    _write_csv(binding, files["binding"])
    atomic_write_json(summary, files["summary"])
    log.info("05_compare: %d samples scored in %.1f s -> %s", len(samples), summary["seconds"]["total"], paths.reports)
    return CompareResult(samples, metrics_df, paired, sweep, specs, showcase, summary, control, binding)


def _metrics_json(metrics_df: pd.DataFrame, specs: list[ModelSpec]) -> dict[str, Any]:
    """``{model: {"label", "stand_in", variant: {prompt: {metric: {mean, ci_low, ci_high, n}}}}}`` (NaN/inf as strings)."""
    def clean(v: Any) -> Any:
        return v if not isinstance(v, float) or math.isfinite(v) else str(v)

    out: dict[str, Any] = {s.name: {"label": s.display, "stand_in": list(s.stand_ins)} for s in specs}
    for r in metrics_df.itertuples():
        out[r.model].setdefault(r.variant, {}).setdefault(r.prompt, {})[r.metric] = {
            "mean": clean(r.mean), "ci_low": clean(r.ci_low), "ci_high": clean(r.ci_high), "n": int(r.n)}
    return out


def load_result(paths: Paths) -> CompareResult:
    """Read the outputs of a finished :func:`run_compare` (for the notebook, grids and report)."""
    files = output_files(paths)
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise CompareError(f"{', '.join(missing)} missing: run notebooks/05_compare.ipynb first")
    summary = json.loads(files["summary"].read_text(encoding="utf-8"))
    read = lambda p: pd.read_csv(p, dtype={"id": str})
    specs = [ModelSpec(m["name"], m["source"], m["label"], tuple(m["stand_ins"])) for m in summary["models"]]
    return CompareResult(read(files["samples"]), read(files["metrics_csv"]), read(files["paired"]), read(files["sweep"]),
                         specs, summary["showcase"], summary, read(files["control"]), read(files["binding"]))


# ---------------------------------------------------------------------------------------------
# tables and prose for the notebook
# ---------------------------------------------------------------------------------------------
def headline_table(result: CompareResult, prompt: str = "faithful") -> pd.DataFrame:
    """One row per model x variant, one column per metric: ``mean [ci_low, ci_high]``."""
    df = result.metrics[result.metrics["prompt"] == prompt]
    labels = {s.name: s.display for s in result.models}
    order = [m for m in M.HIGHER_IS_BETTER if m in set(df["metric"])]

    def fmt(r: pd.Series) -> str:
        digits = 1 if r["metric"] in ("psnr", "delta_e") else 3
        return f"{r['mean']:.{digits}f} [{r['ci_low']:.{digits}f}, {r['ci_high']:.{digits}f}]"

    cells = df.assign(cell=df.apply(fmt, axis=1), model=df["model"].map(labels))
    table = cells.pivot_table(index=["model", "variant"], columns="metric", values="cell", aggfunc="first", sort=False)
    arrows = {m: f"{m} {'↑' if M.HIGHER_IS_BETTER[m] else '↓'}" for m in order}
    return table[order].rename(columns=arrows)


def _template_table(result: CompareResult, metric: str, kind: str) -> pd.DataFrame:
    m = result.metrics
    m = m[m["metric"] == metric]
    if m.empty:
        return pd.DataFrame()
    labels = {s.name: s.display for s in result.models}
    cells = m.assign(cell=m.apply(lambda r: f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]", axis=1),
                     model=m["model"].map(labels), template=m["prompt"].str.removeprefix(f"{kind}:"))
    return cells.pivot_table(index=["model", "variant"], columns="template", values="cell", aggfunc="first",
                             sort=False)


def control_table(result: CompareResult) -> pd.DataFrame:
    """Colour control per model and variant (rows) and template (columns): ``mean [ci_low, ci_high]``."""
    return _template_table(result, "color_control", "control")


def _clip_minus_cnn_lstm(paired: pd.DataFrame, metric: str, prompt: str) -> tuple[float, float, float] | None:
    """The paired difference CLIP − CNN-LSTM captions (raw outputs) of ``metric`` at ``prompt``: (mean, low, high)."""
    sel = paired[(paired["metric"] == metric) & (paired["prompt"] == prompt) & paired["a"].str.endswith("/raw")
                 & paired["b"].str.endswith("/raw")]
    for r in sel.itertuples():
        a, b = r.a.split("/")[0], r.b.split("/")[0]
        if {a, b} == {"ip2p_clip", "ip2p_cnn_lstm"}:
            sign = 1.0 if a == "ip2p_clip" else -1.0
            lo, hi = sorted((sign * r.ci_low, sign * r.ci_high))
            return sign * r.mean_diff + 0.0, lo + 0.0, hi + 0.0
    return None


def control_findings(result: CompareResult) -> list[str]:
    """What colour control says, first: whether each model follows colour words, and the paired comparison."""
    m, p = result.metrics, result.paired
    sel = m[(m["metric"] == "color_control") & (m["prompt"] == "control:all") & (m["variant"] == "raw")]
    if sel.empty:
        return []
    labels = {s.name: s.display for s in result.models}
    colors = ", ".join(result.summary.get("control_colors", []))
    out = []
    for r in sel.itertuples():
        follows = "follows colour words" if r.ci_low > 0.05 else (
            "does not clearly follow colour words" if r.ci_low > 0 else "does NOT follow colour words")
        out.append(f"colour control of {labels.get(r.model, r.model)}: {r.mean:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] "
                   f"over {r.n} test characters ({colors} asked in turn, one seed): it {follows} "
                   "(0 = ignores the text, 1 = paints the whole character in the asked colour)")
    if (sel["ci_low"] <= 0.05).all():
        out.append("no model here has learned to follow colour words, so the other metrics compare models that ignore "
                   "the text: they are not a finding about caption sources")
    clip_cnn = _clip_minus_cnn_lstm(p, "color_control", "control:all")
    if clip_cnn is not None:
        d, lo, hi = clip_cnn
        verdict = ("the CLIP-caption model follows colour words better: the interval excludes 0" if lo > 0 else
                   "the CNN-LSTM-caption model follows colour words better: the interval excludes 0" if hi < 0 else
                   "no clear difference: the interval includes 0")
        out.append(f"paired colour control, CLIP − CNN-LSTM captions: {d:.3f} [{lo:.3f}, {hi:.3f}]; {verdict}")
    return out


def binding_table(result: CompareResult) -> pd.DataFrame:
    """Binding per model and variant (rows) and template (columns): ``mean [ci_low, ci_high]``."""
    return _template_table(result, "binding", "binding")


def _metric_row(m: pd.DataFrame, model: str, variant: str, prompt: str, metric: str) -> pd.Series | None:
    sel = m[(m.model == model) & (m.variant == variant) & (m.prompt == prompt) & (m.metric == metric)]
    return None if sel.empty or not np.isfinite(sel.iloc[0]["mean"]) else sel.iloc[0]


def binding_findings(result: CompareResult) -> list[str]:
    """What binding says, first: whether each model puts each colour where the words put it (not only which colours),
    the paired CLIP - CNN-LSTM comparison, and whether phrasings no training caption used are followed."""
    m, p = result.metrics, result.paired
    labels = {s.name: s.display for s in result.models}
    rows = [(s.name, _metric_row(m, s.name, "raw", "binding:all", "binding")) for s in result.models]
    rows = [(k, r) for k, r in rows if r is not None]
    if not rows:
        return []
    out = []
    if all(r["ci_low"] <= 0.05 for _, r in rows):
        out.append("no model here binds colours to places: asked two colours at two places and then the swap, every "
                   "model moves them together (or not at all), so part-level instructions are not followed")
    for k, r in rows:
        verdict = ("binds colours to places" if r["ci_low"] > 0.05 else
                   "does not clearly bind colours to places" if r["ci_low"] > 0 else "does NOT bind colours to places")
        flat = _metric_row(m, k, "flat", "binding:all", "binding")
        held = _metric_row(m, k, "raw", "binding:heldout", "binding")
        extra = "".join([f"; flat-coloured drawing {flat['mean']:.3f} [{flat['ci_low']:.3f}, {flat['ci_high']:.3f}]"
                         if flat is not None else "",
                         f"; held-out phrasings {held['mean']:.3f} [{held['ci_low']:.3f}, {held['ci_high']:.3f}]"
                         if held is not None else ""])
        out.append(f"binding of {labels.get(k, k)}: {r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] over "
                   f"{int(r['n'])} test characters (two colours asked at two places, then swapped, one seed; 0 = paints "
                   f"one colour everywhere or ignores the text, 1 = each place as asked){extra}: it {verdict}")
    clip_cnn = _clip_minus_cnn_lstm(p, "binding", "binding:all")
    if clip_cnn is not None:
        d, lo, hi = clip_cnn
        verdict = ("the CLIP-caption model binds better" if lo > 0 else
                   "the CNN-LSTM-caption model binds better" if hi < 0 else "no clear difference")
        out.append(f"paired binding, CLIP − CNN-LSTM captions: {d:.3f} [{lo:.3f}, {hi:.3f}]; {verdict}")
    for k, label in labels.items():
        trained = _metric_row(m, k, "raw", "control:all", "color_control")
        held = _metric_row(m, k, "raw", "control:heldout", "color_control")
        if trained is None or held is None or trained["ci_low"] <= 0.05:
            continue
        ratio = held["mean"] / trained["mean"]
        out.append(f"phrasing, {label}: colour control on phrasings no training caption used {held['mean']:.3f} "
                   f"[{held['ci_low']:.3f}, {held['ci_high']:.3f}] vs {trained['mean']:.3f} on the training template's "
                   f"({ratio:.2f}×; {'at least' if ratio >= 0.8 else 'below'} 0.8×)")
    return out


def flat_findings(result: CompareResult) -> list[str]:
    """What the user gets back: the flat-coloured drawing at its size, next to the raw output enlarged to that size
    (same resolution, same ground truth), per model; and colour control of the flat drawing next to raw's."""
    m = result.metrics
    if "flat" not in set(m["variant"]):
        return []
    labels = {s.name: s.display for s in result.models}
    size = result.summary.get("drawing_size", "?")

    def cell(model: str, variant: str, prompt: str, metric: str, digits: int = 2) -> str | None:
        sel = m[(m.model == model) & (m.variant == variant) & (m.prompt == prompt) & (m.metric == metric)]
        if sel.empty or not np.isfinite(sel.iloc[0]["mean"]):
            return None
        r = sel.iloc[0]
        return f"{r['mean']:.{digits}f} [{r['ci_low']:.{digits}f}, {r['ci_high']:.{digits}f}]"

    out = []
    for spec in result.models:
        bits = []
        for metric, name, digits in (("line_preservation", "line fidelity", 2), ("leakage", "background leakage", 3),
                                     ("region_purity", "region purity", 2), ("delta_e", "ΔE2000", 1),
                                     ("ssim", "SSIM", 2)):
            flat, up = cell(spec.name, "flat", "faithful", metric, digits), cell(spec.name, "upsampled", "faithful",
                                                                                   metric, digits)
            if flat is not None:
                bits.append(f"{name} {flat}" + (f" (enlarged raw {up})" if up is not None else ""))
        if not bits:
            continue
        fb = m[(m.model == spec.name) & (m.variant == "flat") & (m.prompt == "faithful") & (m.metric == "fell_back")]
        fell = f"; the fill refused {fb.iloc[0]['mean']:.0%} of the drawings (strokes with large gaps: the raw " \
               "output enlarged, with the drawing's lines and background put back, stands in)" \
            if not fb.empty and fb.iloc[0]["mean"] > 0 else ""
        out.append(f"the drawing coloured flat at {size} px, {labels.get(spec.name, spec.name)}, faithful instruction: "
                   + ", ".join(bits) + fell)
    ctrl = m[(m.metric == "color_control") & (m.prompt == "control:all")]
    for spec in result.models:
        raw = ctrl[(ctrl.model == spec.name) & (ctrl.variant == "raw")]
        flat = ctrl[(ctrl.model == spec.name) & (ctrl.variant == "flat")]
        if raw.empty or flat.empty:
            continue
        r, f = raw.iloc[0], flat.iloc[0]
        out.append(f"colour control of {labels.get(spec.name, spec.name)}: flat {f['mean']:.3f} [{f['ci_low']:.3f}, "
                   f"{f['ci_high']:.3f}] vs raw {r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]")
    return out


def data_notes(summary: dict[str, Any]) -> list[str]:
    """Where the models and the test instructions came from, when that is not the profile's own training and
    hand-written instructions (evaluate-only profiles, derived instructions, line art without ground truth)."""
    notes = []
    if summary.get("models_from"):
        notes.append(f"Evaluate-only: these are the models of profile {summary['models_from']!r} "
                     f"({summary.get('models_dir', '')}), scored on this profile's line art; it trained nothing.")
    derived = summary.get("derived_instructions") or {}
    if derived:
        what = ", ".join(f"{n} {col}" for col, n in derived.items())
        notes.append(f"Derived, not hand-written ({what}): made by t2p_utils.scrape.derive, faithful instructions from the "
                     "palette colours of the colour image, counterfactual ones by a seeded swap to colours the character "
                     "lacks (seeded colours where there is no colour image); the <column>_origin columns of "
                     "reference_captions.csv say which cell is which.")
    if summary.get("n_without_ground_truth"):
        notes.append(f"{summary['n_without_ground_truth']} test character(s) have line art but no colour image: "
                     "they are scored on colour control and the counterfactual instruction only (no ground truth).")
    return notes


def findings(result: CompareResult) -> list[str]:
    """Plain-language findings computed from the numbers (no hard-coded conclusions).

    For the key metrics: the models ranked by mean (raw outputs), and whether the best two
    differ clearly (paired 95 % interval excluding zero); then leakage, and the stand-ins.
    """
    out: list[str] = []
    m = result.metrics
    p = result.paired
    labels = {s.name: s.display for s in result.models}
    n = result.summary.get("n_test", "?")

    def get(model: str, variant: str, prompt: str, metric: str) -> pd.Series | None:
        sel = m[(m.model == model) & (m.variant == variant) & (m.prompt == prompt) & (m.metric == metric)]
        return None if sel.empty else sel.iloc[0]

    def paired(a: str, b: str, prompt: str, metric: str) -> tuple[float, float, float] | None:
        for x, y, sign in ((a, b, 1.0), (b, a, -1.0)):
            sel = p[(p.a == f"{x}/raw") & (p.b == f"{y}/raw") & (p.prompt == prompt) & (p.metric == metric)]
            if not sel.empty:
                r = sel.iloc[0]
                lo, hi = sorted((sign * r.ci_low, sign * r.ci_high))
                return sign * r.mean_diff + 0.0, lo + 0.0, hi + 0.0  # + 0.0 turns -0.0 into 0.0
        return None

    if result.summary.get("profile") == "smoke":
        out.append("smoke profile: tiny models trained for a few steps on synthetic creatures, so these numbers "
                   "check the plumbing, not the method")
    out += data_notes(result.summary)
    out += binding_findings(result)
    out += control_findings(result)
    out += flat_findings(result)
    for prompt, metric in (("faithful", "delta_e"), ("faithful", "adherence"), ("counterfactual", "adherence"),
                           ("faithful", "clip_direction")):
        vals = [(s.name, get(s.name, "raw", prompt, metric)) for s in result.models]
        vals = [(k, v) for k, v in vals if v is not None and np.isfinite(v["mean"])]
        if not vals:
            continue
        vals.sort(key=lambda kv: kv[1]["mean"], reverse=M.HIGHER_IS_BETTER[metric])
        arrow = "higher" if M.HIGHER_IS_BETTER[metric] else "lower"
        ranked = "; ".join(f"{labels[k]} {v['mean']:.3g} [{v['ci_low']:.3g}, {v['ci_high']:.3g}]" for k, v in vals)
        line = f"{prompt} instruction, {metric} ({arrow} is better; raw outputs, {n} test characters): {ranked}"
        if len(vals) > 1:
            d = paired(vals[0][0], vals[1][0], prompt, metric)
            if d is not None:
                diff, lo, hi = d
                if lo > 0 or hi < 0:
                    line += (f". {labels[vals[0][0]]} beats {labels[vals[1][0]]}: paired difference {diff:.3g} "
                             f"[{lo:.3g}, {hi:.3g}], the interval excludes 0")
                else:
                    line += (f". The best two do not differ clearly (paired difference {diff:.3g} "
                             f"[{lo:.3g}, {hi:.3g}] includes 0)")
        out.append(line)
    leak = [(s.name, get(s.name, "raw", "faithful", "leakage")) for s in result.models]
    leak = [(k, v) for k, v in leak if v is not None]
    if leak:
        out.append("background leakage (failure mode 1) of raw outputs, faithful instruction: "
                   + ", ".join(f"{labels[k]} {v['mean']:.1%}" for k, v in leak)
                   + "; the mask-protected variant removes it by construction")
    if result.summary.get("stand_in"):
        out.append("stand-ins used: " + "; ".join(result.summary["stand_in"]))
    engines = result.summary.get("unet_engine") or {}
    if engines:
        out.append("UNets run by: " + "; ".join(f"{labels.get(k, k)}: {v}" for k, v in engines.items()))
    return out
