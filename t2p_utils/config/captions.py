"""The ``captions:`` section (02_cnn_lstm_captioning and 03_clip_captioning): :class:`CaptionConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from t2p_utils.config.params import CAPTION_SOURCES, FieldChecks
from t2p_utils.core.palette import PaletteSettings

#: What runs as the "clip" captioner: the palette stand-in, clip-interrogator, or its code with tiny random models.
CLIP_BACKENDS = ("palette", "interrogator", "tiny")
#: How training instructions are phrased (t2p_utils.captions.templates).
INSTRUCTION_TEMPLATES = ("fixed", "varied")


@dataclass
class CnnLstmConfig:
    """The ``captions.cnn_lstm:`` mapping: the CNN-LSTM captioner of step 02 (t2p_utils.captions.cnn_lstm)."""

    image_size: int = 128
    min_count: int = 3
    emb_dim: int = 128
    hidden_dim: int = 256
    cnn_channels: int = 48
    epochs: int = 60
    batch_size: int = 32
    lr: float = 2e-3
    patience: int = 8
    val_fraction: float = 0.15  # used only when no val ids have reference captions
    beam_size: int = 5
    max_len: int = 30
    seed: int = 42  # the section's seed unless set here (captions.seed, else the top-level seed)
    torch_threads: int = 1  # small models train much faster on one thread than on two busy cores (0 = torch default)

    def __post_init__(self) -> None:
        c = FieldChecks(self)
        c.within(0, 1, "val_fraction", high_open=True).positive("lr")  # 0: no held-out pairs (the tests' tiny runs)
        c.at_least(1, "image_size", "min_count", "emb_dim", "hidden_dim", "cnn_channels", "epochs", "batch_size",
                   "beam_size", "max_len")
        c.at_least(0, "patience", "torch_threads")
        c.raise_if_any("captions.cnn_lstm")


@dataclass
class CaptionConfig:
    """The ``captions:`` section of ``params/<profile>.yaml``."""

    #: keys that moved into a nested mapping: a params file that still has them gets an error naming the new place
    MOVED: ClassVar[dict[str, str]] = {k: f"cnn_lstm.{k}" for k in (
        "image_size", "min_count", "emb_dim", "hidden_dim", "cnn_channels", "epochs", "batch_size", "lr", "patience",
        "val_fraction", "beam_size", "max_len", "torch_threads")}

    sources: list[str] = field(default_factory=lambda: ["cnn_lstm", "clip", "palette"])
    seed: int = 42
    reference_share: float = 1.0  # share of train ids whose reference captions are used (seeded subset)
    reference_file: str = ""  # user profiles: your captions / test instructions CSV (id + caption, faithful, counterfactual)
    # the CNN-LSTM captioner (02): its own mapping, ``cnn_lstm:``
    cnn_lstm: CnnLstmConfig = field(default_factory=CnnLstmConfig)
    # CLIP interrogation ("palette" = offline stand-in; "tiny" = real package code with tiny random models)
    clip_backend: str = "interrogator"
    clip_model_name: str = "ViT-L-14/openai"
    caption_model_name: str = "blip-large"
    clip_mode: str = "best"
    clip_batch_size: int = 8
    clip_max_flavors: int = 32
    clip_download_cache: bool = True
    # palette captioner
    palette_k: int = 6
    palette_min_share: float = 0.08
    palette_max_colors: int = 4
    palette_max_pixels: int = 4096
    palette_workers: int = 1
    # caption metrics: ground-truth colours of real sprites cover at least this share of the character
    gt_min_share: float = 0.1
    # counterfactual recolouring (t2p_utils.captions.recolor): palette-swapped copies of every train pair, captioned by
    # the source's own captioner, so that the same line art appears with different colours and different words
    recolor_copies: int = 0
    recolor_k: int = 4  # colour clusters swapped per sprite
    recolor_sources: list[str] | None = field(default_factory=lambda: ["cnn_lstm", "clip"])  # None: all but reference
    # those a model trains on, since recolouring and re-captioning cost time
    # part-level recolouring (t2p_utils.captions.recolor.part_copies): copies of every train pair in two colours split at a
    # place (top/bottom, middle/edges) that differ one place at a time (a, b), (b, a), (c, b), ...; captioned the same
    # way, for the same recolor_sources
    part_copies: int = 0
    # the phrasing of training instructions (t2p_utils.captions.templates): "fixed" = the seed's "Turn it into <caption>";
    # "varied" = one of several frames and place-naming imperatives per pair, seeded
    instruction_templates: str = "fixed"

    def __post_init__(self) -> None:
        c = FieldChecks(self)
        c.each_of("sources", CAPTION_SOURCES).each_of("recolor_sources", CAPTION_SOURCES)
        c.one_of("clip_backend", CLIP_BACKENDS).one_of("instruction_templates", INSTRUCTION_TEMPLATES)
        c.within(0, 1, "reference_share", low_open=True).within(0, 1, "palette_min_share", "gt_min_share")
        c.at_least(1, "clip_batch_size", "palette_k", "palette_max_colors", "recolor_k")
        c.at_least(0, "recolor_copies", "part_copies")
        c.raise_if_any("captions")



def palette_settings(cfg: CaptionConfig) -> PaletteSettings:
    """The palette captioner's settings of this section (03's stand-in, 01's derived instructions)."""
    return PaletteSettings(k=cfg.palette_k, min_share=cfg.palette_min_share, max_pixels=cfg.palette_max_pixels,
                           max_colors=cfg.palette_max_colors, seed=cfg.seed)
