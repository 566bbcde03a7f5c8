"""Colour control, the causal test: each colour asked in turn (same seed per character); how much of the asked colour
each output shows.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from t2p_utils.compare import metrics as M
from t2p_utils.compare.items import TestItem, flat_variant
from t2p_utils.config.compare import CompareConfig
from t2p_utils.config.params import Paths
from t2p_utils.core.io import atomic_write_image
from t2p_utils.core.progress import tqdm
from t2p_utils.inference.backends import Backend, generate_batched

log = logging.getLogger(__name__)


CONTROL_COLUMNS: tuple[str, ...] = ("id", "model", "variant", "template", "asked", "seed", "image", "asked_share",
                                    "color_control")


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
        outs[(tname, color)] = generate_batched(backend, pipe, lines, [template.format(color=color)] * len(items), cfg,
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
