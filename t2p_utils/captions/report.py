"""What notebooks 02 and 03 show: caption samples, the sources table, the CNN-LSTM's vocabulary and loss curve, the
caption grid.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from t2p_utils.captions.sets import load_manifest, read_caption_csv
from t2p_utils.config.captions import CaptionConfig
from t2p_utils.config.params import Paths

log = logging.getLogger(__name__)


def sample_captions(paths: Paths, source: str, n: int = 8, seed: int = 0, only_generated: bool = True) -> pd.DataFrame:
    """A few rows of a caption CSV (by default ids whose caption came from the captioner)."""
    df = read_caption_csv(paths.captions(source))
    if only_generated and source != "reference":
        df = df[df["caption_source"] != "reference"]
    return df.sample(min(n, len(df)), random_state=seed)[["id", "split", "caption_source", "caption"]]


def sources_table(paths: Paths, cfg: CaptionConfig, sources: list[str] | None = None) -> pd.DataFrame:
    """Which captioner produced each caption CSV, whether it is a stand-in, and the counts."""
    rows = []
    for s in sources or ["reference"] + [x for x in cfg.sources if x != "reference"]:
        meta = paths.captions(s).with_suffix(".json")
        if not meta.exists():
            raise FileNotFoundError(f"{meta} is missing: run the captioning step for source {s!r} first")
        info = json.loads(meta.read_text())
        rows.append({"source": s, "csv": str(paths.captions(s).relative_to(paths.root)),
                     "captioner": info["captioner"], "stand_in": info["stand_in"], "ids": info["n_ids"],
                     "reference_captions": info["n_reference"], "captioner_captions": info["n_generated"],
                     "palette_swapped_pairs": int((info.get("recolor") or {}).get("n_recolored", 0)),
                     "part_recoloured_pairs": int((info.get("recolor") or {}).get("n_part", 0)),
                     "skipped": len(info["skipped"])})
    return pd.DataFrame(rows)


def vocab_table(trained: Any) -> pd.DataFrame:
    """The CNN-LSTM vocabulary story: size, words that became <unk>, and which colour words survived."""
    from t2p_utils.core.colors import SYNONYMS

    v = trained.vocab
    colour_kept = sorted(w for w in v.itos if w in SYNONYMS)
    colour_unk = sorted(w for w in v.unk_words if w in SYNONYMS)
    return pd.DataFrame([
        {"what": "training words (types)", "value": len(v.counts)},
        {"what": f"vocabulary (count >= {v.min_count}, with specials)", "value": len(v)},
        {"what": "word types that became <unk>", "value": len(v.unk_words)},
        {"what": "colour words kept", "value": ", ".join(colour_kept) or "-"},
        {"what": "colour words that became <unk>", "value": ", ".join(colour_unk) or "-"},
        {"what": "best epoch (early stopping)", "value": trained.best_epoch},
    ])


def _figure_path(paths: Paths, name: str) -> Path:
    out = paths.reports / "figures" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def plot_loss_curve(paths: Paths, trained: Any) -> Any:
    """Train/validation loss per epoch of the CNN-LSTM, best epoch marked; saved as cnn_lstm_loss.png."""
    import matplotlib.pyplot as plt

    h = pd.DataFrame(trained.history)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(h["epoch"], h["train_loss"], label="train (teacher forcing)")
    ax.plot(h["epoch"], h["val_loss"], label="validation")
    ax.axvline(trained.best_epoch, color="gray", ls="--", lw=1, label=f"best epoch {trained.best_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy per token")
    ax.set_title(f"CNN-LSTM captioner ({paths.profile})")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(_figure_path(paths, "cnn_lstm_loss.png"), dpi=120)
    return fig


def plot_caption_samples(paths: Paths, sources: list[str], n: int = 6, seed: int = 0, name: str = "caption_samples.png"
                         ) -> Any:
    """Colour images of ``n`` ids that got captioner captions, with each source's generated caption."""
    import textwrap

    import matplotlib.pyplot as plt
    from PIL import Image

    tables = {s: read_caption_csv(paths.captions(s)).set_index("id") for s in sources}
    first = tables[sources[0]]
    pool = first[first["caption_source"] != "reference"].index.tolist() or first.index.tolist()
    ids = sorted(np.random.default_rng(seed).choice(pool, size=min(n, len(pool)), replace=False).tolist())
    manifest = load_manifest(paths).set_index("id")
    # a stand-in is named as such in the figure too ("clip (palette stand-in)")
    labels = {s: f"{s} (palette stand-in)" if tables[s]["stand_in"].astype(str).eq("True").any() else s for s in sources}
    fig, axes = plt.subplots(1, len(ids), figsize=(2.4 * len(ids), 2.3 + 0.7 * len(sources)), squeeze=False)
    for ax, sid in zip(axes[0], ids, strict=True):
        ax.imshow(Image.open(paths.root / manifest.at[sid, "color"]).convert("RGB"))
        ax.set_xticks([])
        ax.set_yticks([])
        lines = [f"{sid}"] + ["\n".join(textwrap.wrap(f"{labels[s]}: {tables[s].at[sid, 'generated']}", 34)) for s in sources]
        ax.set_xlabel("\n".join(lines), fontsize=7, loc="left")
    fig.tight_layout()
    fig.savefig(_figure_path(paths, name), dpi=120, bbox_inches="tight")
    return fig
