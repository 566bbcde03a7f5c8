"""What 05 found, in words and tables: the headline table, control and binding tables, and the findings the report and
notebook lead with.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from t2p_utils.compare import metrics as M
from t2p_utils.compare.run import CompareResult

log = logging.getLogger(__name__)


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
