"""Binding, the causal part-level test: two colours asked at two places and then swapped, same seed; does each colour
go where the words put it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from t2p_utils.compare import metrics as M
from t2p_utils.compare.control import control_regions, scored_variants
from t2p_utils.compare.items import TestItem
from t2p_utils.config.compare import CompareConfig
from t2p_utils.config.params import Paths
from t2p_utils.core.io import atomic_write_image
from t2p_utils.core.progress import tqdm
from t2p_utils.inference.backends import Backend, generate_batched

log = logging.getLogger(__name__)


BINDING_COLUMNS: tuple[str, ...] = ("id", "model", "variant", "template", "places", "a", "b", "seed", "prompt_ab",
                                    "prompt_ba", "image_ab", "image_ba", "binding")


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
        outs = {o: generate_batched(backend, pipe, lines, p, cfg, seed, cfg.text_guidance, cfg.image_guidance)
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
