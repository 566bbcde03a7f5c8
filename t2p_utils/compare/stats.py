"""05's summaries: means with bootstrap intervals per model, paired differences over the same characters, per-template
control and binding.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from t2p_utils.compare import metrics as M
from t2p_utils.compare.items import PROMPTS, VARIANTS

log = logging.getLogger(__name__)


#: The variants colour control is measured on.
CONTROL_VARIANTS: tuple[str, ...] = ("raw", "flat")


#: Templates whose name ends so are phrasings no training caption used; "all" averages the others, "heldout" these.
HELDOUT = "_heldout"


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
