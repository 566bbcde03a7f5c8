"""What notebook 04 shows of a training run, and the model card saved with each pipeline.

Tables (caption sources, a run summary, the lever table), figures (loss curves, validation
grids) and computed findings, all read back from the files a run of :mod:`t2p_utils.train.loop`
leaves in ``models/<p>/``; nothing here trains.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from t2p_utils.config import TrainConfig
from t2p_utils.config.params import Paths
from t2p_utils.train.data import available_sources, caption_stand_in, read_metadata


def model_card(cfg: TrainConfig, paths: Paths, source: str, summary: dict[str, Any]) -> str:
    """A Hugging Face model card (README.md) for a trained pipeline folder."""
    rel = lambda p: os.path.relpath(p, paths.model(f"ip2p_{source}"))
    stand_in = summary.get("caption_stand_in")
    base = cfg.pretrained_model if cfg.model_source == "pretrained" else None
    lines = [
        "---",
        "library_name: diffusers",
        "pipeline_tag: image-to-image",
        "tags: [instruct-pix2pix, line-art-colorization, t2p]",
        *([f"base_model: {base}"] if base else []),
        "---",
        "",
        f"# t2p InstructPix2Pix — `{source}` captions ({paths.profile} profile)",
        "",
        "Colours uncoloured character line art from a text instruction (\"Turn it into ...\").",
        "",
        "## Data",
        f"- {summary['n_pairs']} (line art, instruction, colour image) training pairs from "
        f"`{paths.instructions(source).relative_to(paths.root)}/metadata.jsonl`, {cfg.resolution} px.",
        f"- Caption source: `{source}`" + (f" — **stand-in**: {stand_in}." if stand_in else "."),
        "- Images: Pokémon dream-world sprites (© The Pokémon Company), or synthetic creatures in the smoke profile; "
        "not redistributed.",
        "",
        "## Training",
        f"- Model: {summary['model']}",
        f"- {summary['steps']} optimiser steps, batch {cfg.train_batch_size} x {cfg.gradient_accumulation_steps} "
        f"accumulation, lr {cfg.learning_rate} ({cfg.lr_scheduler}), "
        f"{'fp32' if summary['mixed_precision'] == 'no' else summary['mixed_precision'] + ' mixed'} precision on "
        f"{summary['device']}, EMA {'on' if cfg.use_ema else 'off'}, conditioning dropout {cfg.conditioning_dropout_prob}, "
        f"random flip {'on' if cfg.random_flip else 'off'}, gradient checkpointing "
        f"{'on' if cfg.gradient_checkpointing else 'off'}, seed {cfg.seed}.",
        f"- Loss: {summary['first_loss_mean_first_10pct']:.4f} (first 10 % of steps) -> "
        f"{summary['final_loss_mean_last_10pct']:.4f} (last 10 %); {summary['median_it_per_s']:.2f} it/s, "
        f"{summary['median_samples_per_s']:.1f} samples/s; {summary['train_seconds']:.0f} s of training.",
        "- Loss curve and throughput: [train_log.csv](train_log.csv); validation grids (input | output | target): "
        "[validation/](validation/).",
        "",
        "## Use",
        "```python",
        "from t2p_utils.inference.pipeline import generate, load_pipeline",
        f"pipe = load_pipeline('{paths.model(f'ip2p_{source}').relative_to(paths.root)}')",
        f"out = generate(pipe, [lineart], ['Turn it into a red creature with a yellow belly'], steps={cfg.inference_steps}, "
        f"text_guidance={cfg.text_guidance}, image_guidance={cfg.image_guidance}, seed={cfg.seed})",
        "```",
        "",
        "## Evaluation",
        f"Metrics on the held-out test split: [{rel(paths.reports)}]({rel(paths.reports)}) "
        "(notebooks/05_compare.ipynb, `reports/<profile>/index.html`).",
        "",
    ]
    return "\n".join(lines)


def sources_table(paths: Paths, cfg: TrainConfig) -> pd.DataFrame:
    """The caption sources the config asks for, whether their instruction folder exists, and stand-ins."""
    found = set(available_sources(paths))
    rows = []
    for s in cfg.sources:
        folder = paths.instructions(s)
        n = len(read_metadata(folder)) if s in found else 0
        rows.append({"source": s, "pairs": n, "found": s in found, "stand_in": caption_stand_in(paths, s) or "",
                     "model": str(paths.model(f"ip2p_{s}").relative_to(paths.root))})
    return pd.DataFrame(rows)


def training_summary(paths: Paths, sources: Sequence[str]) -> pd.DataFrame:
    """One row per trained model from its ``train_summary.json``."""
    rows = []
    for s in sources:
        f = paths.model(f"ip2p_{s}") / "train_summary.json"
        if not f.exists():
            continue
        d = json.loads(f.read_text(encoding="utf-8"))
        rows.append({"source": s, "steps": d["steps"], "pairs": d["n_pairs"],
                     "loss first 10%": round(d["first_loss_mean_first_10pct"], 4),
                     "loss last 10%": round(d["final_loss_mean_last_10pct"], 4),
                     "it/s": round(d["median_it_per_s"], 2), "samples/s": round(d["median_samples_per_s"], 1),
                     "train s": round(d["train_seconds"], 1), "device": d["device"],
                     "caption stand-in": d.get("caption_stand_in") or ""})
    vae = paths.model("vae") / "vae_summary.json"
    if any(_saved_autoencoder(paths.model(f"ip2p_{s}")) == "SpaceToDepthAutoencoder" for s in sources):
        rows.append({"source": "(shared VAE)", "steps": 0, "pairs": 0, "train s": 0.0,
                     "caption stand-in": "none: an exact 4x4 pixel fold (lossless, colour terms kept 1.00 by construction)"})
    elif vae.exists():
        v = json.loads(vae.read_text(encoding="utf-8"))
        rows.append({"source": "(shared VAE)", "steps": v["steps"], "pairs": v["n_images"],
                     "loss last 10%": round(v["final_loss"], 4), "train s": round(v["seconds"], 1),
                     "caption stand-in": f"reconstruction PSNR {v['psnr']:.1f} dB"
                     + (f", colour terms kept {v['color_keep']:.2f}" if v.get("color_keep") is not None else "")})
    return pd.DataFrame(rows)


def _saved_autoencoder(model_dir: Path) -> str | None:
    """The class name of a saved pipeline's ``vae`` (None when there is none)."""
    f = model_dir / "vae" / "config.json"
    return json.loads(f.read_text(encoding="utf-8")).get("_class_name") if f.exists() else None


def levers_table(paths: Paths) -> pd.DataFrame:
    """``reports/<p>/levers.csv`` (written by ``benchmarks/levers.py``): each measured recipe -> colour control and
    binding on the validation split (training template and held-out phrasings), quality and time; empty when no lever
    was measured for this profile. Rows measured before binding existed have those cells empty."""
    f = paths.reports / "levers.csv"
    if not f.exists():
        return pd.DataFrame()
    cols = ["tag", "source", "overrides", "train_steps", "train_s", "samples_per_s", "control_all", "control_low",
            "control_heldout", "binding_all", "binding_heldout", "flat_control_all", "flat_binding_all", "ssim",
            "delta_e", "leakage", "named_share", "n_val", "inference_steps", "text_guidance", "threads", "load"]
    df = pd.read_csv(f)
    return df[[c for c in cols if c in df.columns]]


def figures_dir(paths: Paths) -> Path:
    d = paths.reports / "figures"
    d.mkdir(parents=True, exist_ok=True)
    return d


def plot_loss_curves(paths: Paths, sources: Sequence[str], window: int = 20) -> Path:
    """Training loss (raw and moving average) and samples/s of every trained source; saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for s in sources:
        f = paths.model(f"ip2p_{s}") / "train_log.csv"
        if not f.exists():
            continue
        df = pd.read_csv(f)
        label = s + (" (palette stand-in)" if caption_stand_in(paths, s) else "")
        line, = ax.plot(df["step"], df["loss"], alpha=0.25)
        ax.plot(df["step"], df["loss"].rolling(min(window, len(df)), min_periods=1).mean(), color=line.get_color(),
                label=label)
        ax2.plot(df["step"], df["samples_per_s"].rolling(min(window, len(df)), min_periods=1).median(),
                 color=line.get_color(), label=label)
    ax.set(xlabel="optimiser step", ylabel="MSE (epsilon)", title="training loss (faint: per step)")
    ax.set_yscale("log")
    ax2.set(xlabel="optimiser step", ylabel="samples / s", title="throughput (moving median)")
    ax.legend()
    fig.tight_layout()
    out = figures_dir(paths) / "04_loss_curves.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_validation(paths: Paths, source: str, max_steps: int = 4) -> Path | None:
    """The seeded validation grids (rows: examples; columns: input | output | target) at a few steps."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    folder = paths.model(f"ip2p_{source}") / "validation"
    files = sorted(folder.glob("step-*.png"))
    if not files:
        return None
    pick = [files[round(i)] for i in np.linspace(0, len(files) - 1, min(max_steps, len(files)))]
    pick = list(dict.fromkeys(pick))
    fig, axes = plt.subplots(1, len(pick), figsize=(3.2 * len(pick), 4.2), squeeze=False)
    for ax, f in zip(axes[0], pick):
        meta = json.loads(f.with_suffix(".json").read_text(encoding="utf-8"))
        ax.imshow(Image.open(f), interpolation="nearest")
        ax.set_title(f"step {meta['step']}")
        ax.axis("off")
    prompts = json.loads(pick[-1].with_suffix(".json").read_text(encoding="utf-8"))["prompts"]
    stand = caption_stand_in(paths, source)
    fig.suptitle(f"{source}{' (' + stand + ')' if stand else ''}: input | output | target per row\n"
                 + "\n".join(f"{i + 1}. {p[:90]}" for i, p in enumerate(prompts)), fontsize=8)
    fig.tight_layout()
    out = figures_dir(paths) / f"04_validation_{source}.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def findings_text(paths: Paths, sources: Sequence[str]) -> str:
    """A markdown paragraph of what this run's training did, computed from the saved summaries."""
    df = training_summary(paths, sources)
    models = df[df["source"] != "(shared VAE)"] if not df.empty else df
    if models.empty:
        return "No model was trained (no instruction folder found)."
    parts = []
    for _, r in models.iterrows():
        label = r["source"] + (f" ({r['caption stand-in']})" if r["caption stand-in"] else "")
        parts.append(f"- **{label}**: {r['steps']} steps on {r['pairs']} pairs, loss {r['loss first 10%']:.3f} -> "
                     f"{r['loss last 10%']:.3f} (mean of the first / last 10 % of steps), {r['samples/s']:.1f} samples/s "
                     f"on {r['device']}, {r['train s']:.0f} s.")
    vae = df[df["source"] == "(shared VAE)"]
    if not vae.empty:
        v = vae.iloc[0]
        parts.append(f"- shared VAE: {v['caption stand-in']}." if v["steps"] == 0 else
                     f"- shared VAE: {v['steps']} steps on {v['pairs']} images, {v['caption stand-in']}, {v['train s']:.0f} s.")
    return "\n".join(parts)
