"""Figures of 05_compare: the seed's grid, the guidance sweep grid and per-metric bar charts.

All figures are drawn with matplotlib's object API (no pyplot state) and saved as PNG under
``paths.reports / "figures"``; every function returns the path it wrote.

* :func:`seed_grid` -- the seed's layout: one row per showcase character, columns
  line art | instruction text | each model's output | ground truth. Showcase characters are
  chosen by :func:`t2p_utils.compare.run.showcase_ids` (an even spread over the sorted test ids).
  For counterfactual instructions the last column shows the original colours, labelled as
  such (there is no ground truth for a colour scheme the character never had).
* :func:`sweep_grid` -- one model, one character: image guidance (rows) x text guidance (columns).
* :func:`metric_bars` -- one panel per metric, bars per model and variant with 95 % bootstrap CIs.
"""

from __future__ import annotations

import logging
import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image

from t2p_utils.compare.drawing import DrawingFiles, drawing_dir
from t2p_utils.compare.items import TestItem, load_test_items, open_rgb
from t2p_utils.compare.metrics import HIGHER_IS_BETTER
from t2p_utils.compare.run import CompareResult
from t2p_utils.config.params import Paths
from t2p_utils.core.io import atomic_path

log = logging.getLogger(__name__)

VARIANT_STYLE = {"raw": {"hatch": "", "alpha": 1.0}, "protected": {"hatch": "//", "alpha": 0.55},
                 "upsampled": {"hatch": "..", "alpha": 0.4}, "flat": {"hatch": "xx", "alpha": 0.8}}
#: What each variant's figures say it shows.
VARIANT_TITLES = {"raw": "raw outputs", "protected": "mask-protected outputs",
                  "upsampled": "raw outputs enlarged to the drawing's size", "flat": "flat-coloured drawings"}
METRIC_TITLES = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "delta_e": "ΔE2000 in mask",
    "leakage": "background leakage",
    "line_preservation": "line preservation",
    "adherence": "colour adherence",
    "clip_direction": "CLIP direction sim.",
    "region_purity": "region purity",
}


def figures_dir(paths: Paths) -> Path:
    d = paths.reports / "figures"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _save(fig: Figure, path: Path, dpi: int = 120) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    log.info("figure -> %s", path)
    return path


def wrap(text: str, width: int = 30, max_lines: int = 7) -> str:
    """Wrap ``text`` to ``width`` characters, cutting after ``max_lines`` lines with an ellipsis."""
    lines = textwrap.wrap(text, width=width, break_long_words=True, break_on_hyphens=False) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: width - 1].rstrip() + "…"
    return "\n".join(lines)


def _show(ax: Axes, img: Image.Image | None, title: str | None = None, missing: str = "missing") -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    if img is None:
        ax.text(0.5, 0.5, missing, ha="center", va="center", fontsize=8, color="gray", transform=ax.transAxes)
    else:
        ax.imshow(np.asarray(img.convert("RGB")), interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=9)


def _open(path: Path) -> Image.Image | None:
    return open_rgb(path) if path.exists() else None


def seed_grid(paths: Paths, result: CompareResult, prompt: str = "faithful", variant: str = "raw",
              ids: list[str] | None = None, out: Path | None = None) -> Path | None:
    """The seed's grid for ``prompt`` (faithful / counterfactual) on the showcase characters (by default those that
    have a ``prompt`` instruction); None when no character has one (own line art without colour images)."""
    seed = int(result.samples["seed"].min())
    s = result.samples
    if variant not in set(s["variant"]):
        log.info("no %s variant in this run", variant)
        return None
    # protected is made from the raw image here; the drawing-size variants were saved by 05
    s = s[(s.prompt == prompt) & (s.variant == ("raw" if variant == "protected" else variant)) & (s.seed == seed)]
    ids = ids or [i for i in result.showcase if i in set(s["id"])] or sorted(set(s["id"]))[: len(result.showcase)]
    if not ids:
        log.info("no %s outputs to show: no test character has a %s instruction", prompt, prompt)
        return None
    items: dict[str, TestItem] = {i.id: i for i in load_test_items(paths) if i.id in ids}
    s = s.set_index(["id", "model"])
    models = result.models
    last = "ground truth" if prompt == "faithful" else "original colours\n(not the target)"
    cols = ["line art", f"{prompt} instruction", *[m.display for m in models], last]
    widths = [1.0, 1.45] + [1.0] * (len(models) + 1)
    fig = Figure(figsize=(1.45 * sum(widths), 1.5 * len(ids) + 0.6))
    axes = fig.subplots(len(ids), len(cols), gridspec_kw={"width_ratios": widths}, squeeze=False)
    at_drawing = variant in ("upsampled", "flat")
    for r, sid in enumerate(ids):
        item = items[sid]
        line = open_rgb(item.lineart)
        mask = Image.open(item.mask).convert("L")
        drawing = _drawing_of(paths, result, sid) if at_drawing else None
        _show(axes[r, 0], open_rgb(drawing.lineart) if drawing else line)
        axes[r, 0].set_ylabel(sid, fontsize=9)
        tax = axes[r, 1]
        _show(tax, None)
        tax.texts[-1].remove()
        used = s.loc[sid, "instruction"] if sid in s.index.get_level_values("id") else None
        instruction = str(used.iloc[0]) if used is not None else getattr(item, prompt)  # the text the models got
        tax.text(0.0, 0.5, wrap(instruction, width=27, max_lines=8), fontsize=7.5, va="center", ha="left",
                 transform=tax.transAxes, family="sans-serif")
        for c, m in enumerate(models, start=2):
            img = None
            if (sid, m.name) in s.index:
                img = _open(paths.reports / s.loc[(sid, m.name), "image"])
                if img is not None and variant == "protected":
                    from t2p_utils.compare.metrics import protect

                    img = protect(img, line, mask, float(result.summary.get("outline_l", 35.0)))
            _show(axes[r, c], img)
        truth = drawing.color if drawing else item.color
        _show(axes[r, -1], open_rgb(truth) if truth else None, missing="no colour image")
    for c, name in enumerate(cols):
        axes[0, c].set_title(wrap(name, 18, 3), fontsize=8.5)
    what = VARIANT_TITLES.get(variant, f"{variant} outputs")
    if at_drawing:
        what += f" at {result.summary.get('drawing_size', '?')} px"
    fig.suptitle(f"{paths.profile}: {prompt} instructions, {what}, seed {seed}", fontsize=10)
    fig.tight_layout()
    return _save(fig, out or figures_dir(paths) / f"grid_{prompt}_{variant}.png")


def _drawing_of(paths: Paths, result: CompareResult, sprite_id: str) -> DrawingFiles | None:
    """The drawing 05 made for ``sprite_id`` at ``compare.drawing_size`` (None when the run made none)."""
    size = int(result.summary.get("drawing_size") or 0)
    if not size:
        return None
    d = drawing_dir(paths, size)
    line = d / "lineart" / f"{sprite_id}.png"
    if not line.exists():
        return None
    color = d / "color" / f"{sprite_id}.png"
    return DrawingFiles(color if color.exists() else None, line, d / "mask" / f"{sprite_id}.png")


def sweep_grid(paths: Paths, result: CompareResult, sprite_id: str | None = None, out: Path | None = None) -> Path:
    """Image guidance (rows) x text guidance (columns) for the sweep model on one character."""
    sw = result.sweep
    if sw.empty:
        raise ValueError("the sweep is empty: set compare.sweep_image_guidance / sweep_text_guidance and re-run 05")
    sprite_id = sprite_id or str(sw["id"].iloc[0])
    sw = sw[sw["id"] == sprite_id]
    igs = sorted(sw["image_guidance"].unique())
    tgs = sorted(sw["text_guidance"].unique())
    model = str(sw["model"].iloc[0])
    label = next((m.display for m in result.models if m.name == model), model)
    item = next(i for i in load_test_items(paths) if i.id == sprite_id)
    fig = Figure(figsize=(1.35 * (len(tgs) + 1) + 0.3, 1.45 * len(igs) + 1.3))
    axes = fig.subplots(len(igs), len(tgs) + 1, squeeze=False)
    cells = sw.set_index(["image_guidance", "text_guidance"])
    for r, ig in enumerate(igs):
        for c, tg in enumerate(tgs, start=1):
            row = cells.loc[(ig, tg)]
            ax = axes[r, c]
            _show(ax, _open(paths.reports / row["image"]))
            ax.set_xlabel(f"ΔE {row['delta_e']:.1f}  adh {row['adherence']:.2f}", fontsize=7)
            if r == 0:
                ax.set_title(f"text guidance {tg:g}", fontsize=8)
        axes[r, 1].set_ylabel(f"image guidance {ig:g}", fontsize=8)
        if r == 0:
            _show(axes[r, 0], open_rgb(item.lineart), "line art")
        elif r == 1:
            _show(axes[r, 0], open_rgb(item.color) if item.color else None, "ground truth", missing="no colour image")
        else:
            axes[r, 0].set_axis_off()
    if len(igs) == 1:  # no room for the ground truth below the line art
        axes[0, 0].set_title("line art", fontsize=9)
    fig.suptitle(wrap(f"guidance sweep, {label}, {sprite_id}: \u201c{item.faithful}\u201d", 90, 3), fontsize=9)
    fig.tight_layout()
    return _save(fig, out or figures_dir(paths) / "sweep.png")


def metric_bars(paths: Paths, result: CompareResult, prompt: str = "faithful", out: Path | None = None) -> Path | None:
    """One panel per metric: mean per model (colours) and variant (hatching) with 95 % CI error bars (None: no rows)."""
    m = result.metrics[result.metrics["prompt"] == prompt]
    metrics = [k for k in HIGHER_IS_BETTER if k in set(m["metric"])]
    if not metrics:
        return None
    models = result.models
    variants = [v for v in VARIANT_STYLE if v in set(m["variant"])]
    ncol = min(3, len(metrics))
    nrow = math.ceil(len(metrics) / ncol)
    fig = Figure(figsize=(3.6 * ncol, 2.7 * nrow + 0.7))
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    colors = [f"C{i}" for i in range(len(models))]
    width = 0.8 / max(1, len(variants))
    for ax, metric in zip(axes, metrics, strict=False):
        sel = m[m["metric"] == metric].set_index(["model", "variant"])
        for vi, variant in enumerate(variants):
            for mi, spec in enumerate(models):
                x = mi + (vi - (len(variants) - 1) / 2) * width
                if (spec.name, variant) not in sel.index:
                    continue
                row = sel.loc[(spec.name, variant)]
                mean, lo, hi = float(row["mean"]), float(row["ci_low"]), float(row["ci_high"])
                if not np.isfinite(mean):
                    ax.text(x, 0, "∞" if mean > 0 else "n/a", ha="center", va="bottom", fontsize=9)
                    continue
                hi_err = hi - mean if np.isfinite(hi) else 0.0
                ax.bar(x, mean, width=width * 0.95, color=colors[mi], edgecolor="black", linewidth=0.5,
                       **VARIANT_STYLE[variant], label=variant if mi == 0 else None)
                ax.errorbar(x, mean, yerr=[[mean - lo], [hi_err]], color="black", capsize=3, linewidth=1)
                ax.annotate(f"{mean:.3g}", (x, hi if np.isfinite(hi) else mean), textcoords="offset points",
                            xytext=(0, 2), ha="center", va="bottom", fontsize=6)
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels([wrap(s.display, 16, 3) for s in models], fontsize=7)
        arrow = "↑" if HIGHER_IS_BETTER[metric] else "↓"
        ax.set_title(f"{METRIC_TITLES.get(metric, metric)} {arrow}", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.margins(y=0.12)
    for ax in axes[len(metrics):]:
        ax.set_axis_off()
    if len(variants) > 1 and metrics:
        axes[0].legend(fontsize=7, loc="best")
    n = int(m["n"].max()) if not m.empty else 0
    fig.suptitle(f"{paths.profile}: {prompt} instructions, mean over {n} test characters, 95% bootstrap CI", fontsize=10)
    fig.tight_layout()
    return _save(fig, out or figures_dir(paths) / f"bars_{prompt}.png")


def _ladder_rows(paths: Paths, result: CompareResult, df: pd.DataFrame,
                 ids: list[str] | None) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """(test items by id, ladder rows = (id, model) for the showcase ids (or ``ids``) x the models in ``df``)."""
    ids = ids or [i for i in result.showcase if i in set(df["id"])]
    items = {i.id: i for i in load_test_items(paths) if i.id in ids}
    models = [m for m in result.models if m.name in set(df["model"])]
    return items, [(sid, m) for sid in ids for m in models]


def color_ladder(paths: Paths, result: CompareResult, template: str = "body", ids: list[str] | None = None,
                 out: Path | None = None, variant: str = "raw") -> Path | None:
    """The colour ladder: rows = showcase characters x models, columns = line art then each asked colour (one seed).

    A model that follows the words changes colour along each row; one that ignores them repeats one image.
    ``variant``: ``raw`` (the model's outputs) or ``flat`` (the same outputs flat-coloured onto the drawing).
    """
    c = result.control
    if c is None or c.empty:
        return None
    if "variant" not in c.columns:
        c = c.assign(variant="raw")
    c = c[(c["template"] == template) & (c["variant"] == variant)]
    if c.empty:
        return None
    colors = list(dict.fromkeys(c["asked"]))
    items, rows = _ladder_rows(paths, result, c, ids)
    score = c.groupby(["model", "id"])["color_control"].first()
    fig = Figure(figsize=(1.25 * (len(colors) + 1) + 1.6, 1.3 * len(rows) + 0.9))
    axes = fig.subplots(len(rows), len(colors) + 1, squeeze=False)
    at = c.set_index(["id", "model", "asked"])["image"]
    for r, (sid, m) in enumerate(rows):
        drawing = _drawing_of(paths, result, sid) if variant == "flat" else None
        _show(axes[r, 0], open_rgb(drawing.lineart if drawing else items[sid].lineart))
        axes[r, 0].set_ylabel(wrap(f"{sid}\n{m.display}\ncontrol {score.get((m.name, sid), float('nan')):.2f}", 16, 5),
                              fontsize=6.5)
        for k, color in enumerate(colors, start=1):
            key = (sid, m.name, color)
            _show(axes[r, k], _open(paths.reports / at[key]) if key in at.index else None)
    for k, name in enumerate(["line art", *colors]):
        axes[0, k].set_title(name, fontsize=9)
    example = str(result.summary.get("control_templates", {}).get(template, template))
    what = "" if variant == "raw" else f", {VARIANT_TITLES.get(variant, variant)}"
    fig.suptitle(f"{paths.profile}: colour ladder ({template}: \"{example}\"), seed {int(c['seed'].min())}{what}",
                 fontsize=9)
    fig.tight_layout()
    suffix = "" if variant == "raw" else f"_{variant}"
    return _save(fig, out or figures_dir(paths) / f"ladder_{template}{suffix}.png")


def binding_ladder(paths: Paths, result: CompareResult, ids: list[str] | None = None, out: Path | None = None,
                   variant: str = "raw") -> Path | None:
    """The part ladder: rows = showcase characters x models; per binding template two columns, the character's colour
    pair asked at the template's two places and then swapped (same seed).

    A model that binds colours to places swaps them between the two columns; one that paints the whole body the first
    colour named swaps the whole body; one that ignores the words repeats one image.
    """
    b = result.binding
    if b is None or b.empty:
        return None
    b = b[b["variant"] == variant]
    if b.empty:
        return None
    templates = list(dict.fromkeys(b["template"]))
    items, rows = _ladder_rows(paths, result, b, ids)
    if not rows:
        return None
    at = b.set_index(["id", "model", "template"])
    fig = Figure(figsize=(1.15 * (2 * len(templates) + 1) + 1.6, 1.3 * len(rows) + 1.2))
    axes = fig.subplots(len(rows), 2 * len(templates) + 1, squeeze=False)
    for r, (sid, m) in enumerate(rows):
        drawing = _drawing_of(paths, result, sid) if variant == "flat" else None
        _show(axes[r, 0], open_rgb(drawing.lineart if drawing else items[sid].lineart))
        first = at.loc[(sid, m.name, templates[0])] if (sid, m.name, templates[0]) in at.index else None
        mean = b[(b["id"] == sid) & (b["model"] == m.name) & ~b["template"].str.endswith("_heldout")]["binding"].mean()
        pair = f"{first['a']} / {first['b']}" if first is not None else ""
        axes[r, 0].set_ylabel(wrap(f"{sid}\n{m.display}\n{pair}\nbinding {mean:.2f}", 16, 6), fontsize=6.5)
        for t, template in enumerate(templates):
            key = (sid, m.name, template)
            row = at.loc[key] if key in at.index else None
            for o, order in enumerate(("ab", "ba")):
                img = _open(paths.reports / row[f"image_{order}"]) if row is not None else None
                _show(axes[r, 1 + 2 * t + o], img)
    for t, template in enumerate(templates):
        place1, place2 = str(result.summary.get("binding_templates", {}).get(template, ["top_bottom"])[0]).split("_")
        axes[0, 1 + 2 * t].set_title(wrap(f"{template}\nA {place1}, B {place2}", 14, 3), fontsize=7)
        axes[0, 2 + 2 * t].set_title(wrap(f"{template}\nswap: B {place1}, A {place2}", 14, 3), fontsize=7)
    axes[0, 0].set_title("line art", fontsize=8)
    what = "" if variant == "raw" else f", {VARIANT_TITLES.get(variant, variant)}"
    example = str(result.summary.get("binding_templates", {}).get(templates[0], ["", templates[0]])[1]).format(
        a="A", b="B", a_="an A", b_="a B")
    fig.suptitle(wrap(f"{paths.profile}: part ladder, each character's colours A / B asked at two places and swapped, "
                      f"seed {int(b['seed'].min())}{what} (e.g. \"{example}\")", 140, 2), fontsize=9)
    fig.tight_layout()
    suffix = "" if variant == "raw" else f"_{variant}"
    return _save(fig, out or figures_dir(paths) / f"ladder_binding{suffix}.png")


def make_all_figures(paths: Paths, result: CompareResult) -> dict[str, Path]:
    """Every figure of 05_compare: seed grids (faithful, counterfactual, faithful mask-protected), the sweep, bar charts."""
    figs = {
        "grid_faithful": seed_grid(paths, result, "faithful"),
        "grid_counterfactual": seed_grid(paths, result, "counterfactual"),
        "grid_faithful_protected": seed_grid(paths, result, "faithful", "protected"),
        "grid_faithful_flat": seed_grid(paths, result, "faithful", "flat"),
        "grid_counterfactual_flat": seed_grid(paths, result, "counterfactual", "flat"),
        "bars_faithful": metric_bars(paths, result, "faithful"),
        "bars_counterfactual": metric_bars(paths, result, "counterfactual"),
    }
    if not result.sweep.empty:
        figs["sweep"] = sweep_grid(paths, result)
    for template in dict.fromkeys(result.control["template"]) if not result.control.empty else []:
        for variant in ("raw", "flat"):
            ladder = color_ladder(paths, result, template, variant=variant)
            if ladder is not None:
                figs[f"ladder_{template}" + ("" if variant == "raw" else f"_{variant}")] = ladder
    for variant in ("raw", "flat"):
        ladder = binding_ladder(paths, result, variant=variant)
        if ladder is not None:
            figs["ladder_binding" + ("" if variant == "raw" else f"_{variant}")] = ladder
    return figs


__all__ = ["binding_ladder", "color_ladder", "figures_dir", "make_all_figures", "metric_bars", "seed_grid", "sweep_grid", "wrap"]
