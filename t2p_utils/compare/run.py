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
import itertools
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from t2p_utils.compare import metrics as M
from t2p_utils.compare.binding import BINDING_COLUMNS, run_binding
from t2p_utils.compare.control import CONTROL_COLUMNS, run_control
from t2p_utils.compare.items import (
    PROMPTS,
    CompareError,
    TestItem,
    caption_of,
    load_test_items,
    model_size,
    open_item,
    score_output,
    showcase_ids,
    variant_images,
    with_drawings,
)
from t2p_utils.compare.models import ModelSpec, model_paths, resolve_models
from t2p_utils.compare.stats import (
    control_per_id,
    paired_binding,
    paired_control,
    paired_differences,
    per_id,
    summarise,
    summarise_binding,
    summarise_control,
)
from t2p_utils.config.compare import CompareConfig
from t2p_utils.config.params import Paths, resolve_device
from t2p_utils.config.study import load_study
from t2p_utils.core.io import atomic_open, atomic_write_image, atomic_write_json
from t2p_utils.core.manifest import read_manifest
from t2p_utils.core.progress import tqdm
from t2p_utils.core.stamps import cache_key, file_stamp
from t2p_utils.core.threads import torch_threads
from t2p_utils.inference.backends import Backend, PipelineBackend, generate_batched
from t2p_utils.inference.onnx_unet import engine_of
from t2p_utils.scrape.derive import derived_counts

log = logging.getLogger(__name__)


#: How the offline profiles' models differ from the real ones (also stated by the report).

SAMPLE_COLUMNS: tuple[str, ...] = (
    "id", "model", "variant", "prompt", "seed", "instruction", "image",
    "psnr", "ssim", "delta_e", "leakage", "line_preservation", "adherence", "named_share", "clip_direction",
    "region_purity", "fell_back", "note",
)


# ---------------------------------------------------------------------------------------------
# inference backend (the training helper's load_pipeline / generate)
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------------------------


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
    """Changes when the model's files change (names, sizes and modification times:
    :func:`t2p_utils.core.stamps.file_stamp` of its folder), so a retrained model is re-run; a hub id is itself."""
    folder = Path(spec.source)
    if not folder.is_dir():
        return spec.source  # a hub id
    return cache_key(inputs=file_stamp(folder))


def _item_files(item: TestItem) -> dict[str, str]:
    """The content of a test item's images (and of its drawing's), by role."""
    files = {"color": item.color, "lineart": item.lineart, "mask": item.mask}
    if item.drawing is not None:
        files |= {f"drawing_{k}": getattr(item.drawing, k) for k in ("color", "lineart", "mask")}
    return {k: file_stamp(p) if p is not None else "none" for k, p in files.items()}


def _state(cfg: CompareConfig, specs: list[ModelSpec], items: list[TestItem], seed: int = 0) -> dict[str, Any]:
    """What 05's outputs were made from: its key (:func:`t2p_utils.core.stamps.cache_key` of the compare: section,
    the models, the test items with their images, the study's seed, and the code: this module and everything it
    imports, metrics, figures' inputs, the inference backends ...) and, to read, the models' fingerprints."""
    models = {s.name: _fingerprint(s) for s in specs}
    tests = [[i.id, i.faithful, i.counterfactual, _item_files(i)] for i in items]
    return {"key": cache_key(cfg, {"models": models, "tests": tests, "seed": seed}, code=[__name__]),
            "models": models}


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, index=False)


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
        items = with_drawings(paths, cfg, items, load_study(paths.spec, paths.root, check=False).seed or 0)
    opened = {i.id: open_item(i) for i in items}
    run_cfg = dataclasses.replace(cfg, steps=steps or cfg.steps, text_guidance=text_guidance or cfg.text_guidance,
                                  image_guidance=image_guidance or cfg.image_guidance, control_max_test=0,
                                  binding_max_test=0,
                                  control_templates={k: v for k, v in cfg.control_templates.items()
                                                     if templates is None or k in templates})

    import tempfile

    backend = PipelineBackend()

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
    faithful = generate_batched(backend, pipe, [opened[i.id]["lineart"] for i in items],
                                 [i.faithful for i in items], run_cfg, run_cfg.seeds[0], run_cfg.text_guidance,
                                 run_cfg.image_guidance)
    scores = [score_output(o, i, "faithful", i.faithful, opened[i.id] if flat else model_size(opened[i.id]),
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

    ``backend`` defaults to :class:`PipelineBackend`; ``clip_scorer_factory`` defaults to
    :meth:`ClipDirectionScorer.from_open_clip` (only called when ``cfg.clip_direction``).
    """
    t0 = time.perf_counter()
    study = load_study(paths.spec, paths.root, check=False)
    for old in (paths.reports / "figures").glob("*.png"):  # the 05 notebook draws its figures anew after this:
        if old.name.startswith(COMPARE_FIGURES):  # one it no longer draws (no ground truth, a model gone) must go
            old.unlink()
    items = with_drawings(paths, cfg, load_test_items(paths, cfg.max_test), study.seed or 0)
    specs = resolve_models(paths, cfg, study)
    showcase = showcase_ids([i.id for i in items], cfg.showcase)
    files = output_files(paths)
    state = _state(cfg, specs, items, study.seed or 0)
    if not force and all(p.exists() for p in files.values()):
        old = json.loads(files["summary"].read_text(encoding="utf-8"))
        if old.get("state") == state:
            log.info("05_compare outputs are up to date (%s); pass force=True to recompute", files["summary"])
            return load_result(paths)

    with torch_threads(cfg.torch_threads):
        return _run(paths, cfg, study.seed or 0, items, specs, showcase, files, state, backend or PipelineBackend(cfg.unet_backend),
                    clip_scorer_factory, t0)


def _run(paths: Paths, cfg: CompareConfig, study_seed: int, items: list[TestItem], specs: list[ModelSpec],
         showcase: list[str], files: dict[str, Path], state: dict[str, Any], backend: Backend,
         clip_scorer_factory: Callable[[CompareConfig, str], M.ClipDirectionScorer] | None, t0: float) -> CompareResult:
    """Every model in turn: the test prompts (:func:`_score_prompts`), colour control, binding and, for the sweep
    model, the guidance sweep (:func:`_sweep`); then the summaries, written to ``files``."""
    device = resolve_device(cfg.device)
    sweep_model = cfg.sweep_model if cfg.sweep_model in {s.name for s in specs} else specs[-1].name
    with_truth = [i for i in items if i.faithful]  # line art without a colour image has no faithful instruction
    sweep_items = [i for i in with_truth if i.id in showcase[: max(1, cfg.sweep_ids)]] or with_truth[:1]
    opened = {i.id: open_item(i) for i in items}
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
        rows += _score_prompts(paths, cfg, backend, pipe, spec.name, items, opened, scorer)
        control_parts.append(run_control(paths, cfg, backend, pipe, spec.name, items, opened))
        binding_parts.append(run_binding(paths, cfg, backend, pipe, spec.name, items, opened))
        if spec.name == sweep_model and sweep_items:
            sweep_rows += _sweep(paths, cfg, backend, pipe, spec.name, sweep_items, opened)
        del pipe
        gc.collect()
        timings[spec.name] = round(time.perf_counter() - t_model, 2)

    samples = pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))
    control = pd.concat(control_parts, ignore_index=True) if control_parts else pd.DataFrame(columns=list(CONTROL_COLUMNS))
    binding = pd.concat([b for b in binding_parts if not b.empty] or [pd.DataFrame(columns=list(BINDING_COLUMNS))],
                        ignore_index=True)
    metrics_df = pd.concat([summarise_control(control, cfg.n_boot, study_seed),
                            summarise_binding(binding, cfg.n_boot, study_seed),
                            summarise(samples, n_boot=cfg.n_boot, seed=study_seed)], ignore_index=True)
    names = [s.name for s in specs]
    paired = pd.concat([paired_control(control, names, cfg.n_boot, study_seed),
                        paired_binding(binding, names, cfg.n_boot, study_seed),
                        paired_differences(samples, names, n_boot=cfg.n_boot, seed=study_seed)], ignore_index=True)
    sweep = pd.DataFrame(sweep_rows, columns=list(SWEEP_COLUMNS))
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
    for name, frame in (("samples", samples), ("metrics_csv", metrics_df), ("paired", paired), ("sweep", sweep),
                        ("control", control), ("binding", binding)):
        _write_csv(frame, files[name])
    atomic_write_json(_metrics_json(metrics_df, specs), files["metrics_json"])
    atomic_write_json(summary, files["summary"])
    log.info("05_compare: %d samples scored in %.1f s -> %s", len(samples), summary["seconds"]["total"], paths.reports)
    return CompareResult(samples, metrics_df, paired, sweep, specs, showcase, summary, control, binding)


SWEEP_COLUMNS: tuple[str, ...] = ("id", "model", "image_guidance", "text_guidance", "image", "delta_e", "leakage",
                                  "line_preservation", "adherence")


def _score_prompts(paths: Paths, cfg: CompareConfig, backend: Backend, pipe: Any, model: str, items: list[TestItem],
                   opened: dict[str, dict[str, Any]], scorer: M.ClipDirectionScorer | None) -> list[dict[str, Any]]:
    """One model on every test character's faithful and counterfactual instruction, each seed: the images written,
    every variant scored (a :data:`SAMPLE_COLUMNS` row each)."""
    rows: list[dict[str, Any]] = []
    for prompt, seed in tqdm(list(itertools.product(PROMPTS, cfg.seeds)), desc=model, leave=False):
        these = [i for i in items if getattr(i, prompt)]
        if not these:
            continue
        instr = [getattr(i, prompt) for i in these]
        lines = [opened[i.id]["lineart"] for i in these]
        outs = generate_batched(backend, pipe, lines, instr, cfg, seed, cfg.text_guidance, cfg.image_guidance)
        clip: dict[str, list[float]] = {}
        if scorer is not None:  # one batched CLIP pass per variant
            protected = [M.protect(o, opened[i.id]["lineart"], opened[i.id]["mask"], cfg.outline_l)
                         for i, o in zip(these, outs, strict=True)]
            src, dst = [cfg.clip_input_caption] * len(these), [caption_of(t) for t in instr]
            clip = {"raw": scorer.direction_similarity(lines, outs, src, dst).tolist(),
                    "protected": scorer.direction_similarity(lines, protected, src, dst).tolist()}
        for k, (item, out) in enumerate(zip(these, outs, strict=True)):
            path = sample_path(paths, model, prompt, item.id, seed)
            atomic_write_image(out, path)
            variants = variant_images(out, opened[item.id], cfg.outline_l)
            images = {v: path for v in variants[0] if v not in ("flat",)}  # protected/upsampled: made from raw
            if "flat" in variants[0]:
                images["flat"] = sample_path(paths, model, prompt, item.id, seed, "flat")
                atomic_write_image(variants[0]["flat"], images["flat"])
            scores = score_output(out, item, prompt, instr[k], opened[item.id], cfg.outline_l,
                                  cfg.drawing_outline_l, variants)
            for variant, s in scores.items():
                if clip and variant in clip:
                    s["clip_direction"] = float(clip[variant][k])
                rows.append({"id": item.id, "model": model, "variant": variant, "prompt": prompt, "seed": seed,
                             "instruction": instr[k], "image": str(images[variant].relative_to(paths.reports)),
                             **s, "note": variants[1] if variant == "flat" else ""})
    return rows


def _sweep(paths: Paths, cfg: CompareConfig, backend: Backend, pipe: Any, model: str, items: list[TestItem],
           opened: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The guidance sweep of one model over the showcase characters (a :data:`SWEEP_COLUMNS` row each)."""
    rows = []
    for ig, tg in tqdm(list(itertools.product(cfg.sweep_image_guidance, cfg.sweep_text_guidance)),
                       desc=f"sweep {model}", leave=False):
        outs = generate_batched(backend, pipe, [opened[i.id]["lineart"] for i in items],
                                [i.faithful for i in items], cfg, cfg.seeds[0], tg, ig)
        for item, out in zip(items, outs, strict=True):
            path = sweep_path(paths, model, item.id, ig, tg)
            atomic_write_image(out, path)
            s = score_output(out, item, "faithful", item.faithful, model_size(opened[item.id]), cfg.outline_l)["raw"]
            rows.append({"id": item.id, "model": model, "image_guidance": ig, "text_guidance": tg,
                         "image": str(path.relative_to(paths.reports)),
                         **{k: s[k] for k in ("delta_e", "leakage", "line_preservation", "adherence")}})
    return rows


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




