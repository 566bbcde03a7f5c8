"""The ``train:`` section (:class:`TrainConfig`), importable without torch.

:mod:`t2p_utils.train.loop` (which imports torch, diffusers and accelerate, seconds) re-exports it; the params check
that ``./run_all.sh`` runs before step 01 (:meth:`t2p_utils.config.study.StudyConfig.problems`) builds it from here, so a
bad ``train:`` key is reported in a second, not after 01-03 have run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from t2p_utils.config.params import CAPTION_SOURCES, FieldChecks
from t2p_utils.core.stamps import NOT_STAMPED, cache_key
from t2p_utils.core.standins import PRETRAINED_IP2P

#: The samplers a pipeline can be given (t2p_utils.inference.pipeline; read here without torch).
SAMPLERS: tuple[str, ...] = ("euler_ancestral", "euler", "ddim")

MODEL_SOURCES: tuple[str, ...] = ("scratch", "pretrained")
AUTOENCODERS: tuple[str, ...] = ("learned", "space_to_depth")



@dataclass
class VaeConfig:
    """The ``train.vae:`` mapping: the scratch models' shared VAE (t2p_utils.train.vae), trained once, used by every
    caption source."""

    steps: int = 400
    batch_size: int = 16
    learning_rate: float = 1e-3
    kl_weight: float = 1e-6
    chroma_weight: float = 10.0  # weight of the colour (chroma) error in the VAE loss
    latent_channels: int = 4  # scratch latent channels (SD: 4)
    recolor_copies: int = 0  # palette-swapped copies of each train colour image the VAE also learns from

    def __post_init__(self) -> None:
        c = FieldChecks(self)
        c.positive("learning_rate").at_least(1, "steps", "batch_size", "latent_channels")
        c.at_least(0, "kl_weight", "chroma_weight", "recolor_copies")
        c.raise_if_any("train.vae")

@dataclass
class TrainConfig:
    """The ``train:`` section of ``params/<profile>.yaml`` (defaults: the seed's full recipe)."""

    #: keys that moved into the ``vae:`` mapping: a params file that still has them gets an error naming the new place
    MOVED: ClassVar[dict[str, str]] = {f"vae_{k}": f"vae.{k}" for k in (
        "steps", "batch_size", "learning_rate", "kl_weight", "chroma_weight", "latent_channels", "recolor_copies")}

    # which captions to train on (notebook 04 trains one model per source found on disk)
    # (fields with metadata=NOT_STAMPED say how or what is run, not what a model learns: left out of fingerprint())
    sources: list[str] = field(default_factory=lambda: ["cnn_lstm", "clip", "reference"], metadata=NOT_STAMPED)
    # model
    model_source: str = "pretrained"  # pretrained | scratch
    pretrained_model: str = PRETRAINED_IP2P  # hub id or local folder (an IP2P or a plain SD pipeline)
    revision: str | None = None
    arch: str = "small"  # scratch sizes (t2p_utils.train.models): tiny | small | sd15
    # scratch models' autoencoder: "learned" = a small AutoencoderKL trained once (paths.model("vae")) with the
    # vae: settings below; "space_to_depth" = the exact 4x4 pixel fold (scratch_models.SpaceToDepthAutoencoder)
    autoencoder: str = "learned"
    vae: VaeConfig = field(default_factory=VaeConfig)  # its own mapping, ``vae:``
    # data
    resolution: int = 256
    random_flip: bool = True
    cache_latents: bool = True
    # optimisation
    train_batch_size: int = 2
    gradient_accumulation_steps: int = 4
    gradient_checkpointing: bool = True
    max_train_steps: int = 15000
    learning_rate: float = 5e-5
    lr_scheduler: str = "constant"  # any diffusers.optimization.get_scheduler name
    lr_warmup_steps: int = 0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    mixed_precision: str = "fp16"  # no | fp16 | bf16 (forced to "no", i.e. fp32, on CPU)
    allow_tf32: bool = True
    use_ema: bool = True
    ema_decay: float = 0.9999
    conditioning_dropout_prob: float = 0.05
    # scratch models: train the text encoder with the UNet (a frozen random one cannot tell colour words apart)
    train_text_encoder: bool = False
    text_encoder_learning_rate: float | None = None  # None: learning_rate
    snr_gamma: float | None = None  # min-SNR-gamma loss weighting (Hang et al. 2023); None: plain MSE
    prediction_type: str = "epsilon"  # scratch models: epsilon | v_prediction
    text_time_embedding: bool = False  # scratch UNets: pooled text added to the time embedding (see scratch_models)
    sampler: str = "euler_ancestral"  # the saved pipeline's scheduler: euler_ancestral (as IP2P) | euler | ddim
    seed: int = 42
    # torch threads on CPU (None: torch's default); tiny models run best on 1
    cpu_threads: int | None = field(default=None, metadata=NOT_STAMPED)
    # CPU only: train up to this many caption sources at once, one process each, the cores split between them (two
    # 1-thread processes beat one 2-thread process on small UNets)
    parallel_sources: int = field(default=1, metadata=NOT_STAMPED)
    # checkpoints and logs
    checkpointing_steps: int = field(default=5000, metadata=NOT_STAMPED)
    checkpoints_total_limit: int | None = field(default=2, metadata=NOT_STAMPED)
    log_every: int = field(default=10, metadata=NOT_STAMPED)
    # seeded validation images during training
    validation_steps: int = 2500
    num_validation_images: int = 4
    validation_inference_steps: int = 20
    # inference settings recorded in the model card and used by generate() callers
    inference_steps: int = field(default=100, metadata=NOT_STAMPED)
    text_guidance: float = field(default=7.5, metadata=NOT_STAMPED)
    image_guidance: float = field(default=1.5, metadata=NOT_STAMPED)

    def __post_init__(self) -> None:
        c = FieldChecks(self)
        c.one_of("model_source", MODEL_SOURCES).one_of("arch", tuple(SCRATCH_UNET_DOWNSAMPLE))
        c.each_of("sources", CAPTION_SOURCES)
        c.one_of("autoencoder", AUTOENCODERS).one_of("mixed_precision", ("no", "fp16", "bf16"))
        c.one_of("sampler", SAMPLERS).one_of("prediction_type", ("epsilon", "v_prediction"))
        c.positive("learning_rate", "text_encoder_learning_rate", "adam_epsilon", "max_grad_norm")
        c.positive("snr_gamma", valid="> 0 (or null for plain MSE)")
        c.at_least(1, "max_train_steps", "train_batch_size", "gradient_accumulation_steps",
                   "checkpointing_steps", "log_every", "validation_steps",
                   "validation_inference_steps", "inference_steps", "parallel_sources", "checkpoints_total_limit")
        c.at_least(0, "lr_warmup_steps",
                   "adam_weight_decay", "num_validation_images", "text_guidance", "image_guidance", "cpu_threads")
        c.within(0, 1, "adam_beta1", "adam_beta2", "ema_decay", high_open=True)
        c.within(0, 1 / 3, "conditioning_dropout_prob", valid="in [0, 1/3] (3 disjoint dropout cases)")
        factor, why = resolution_factor(self)
        if factor:
            c.multiple_of("resolution", factor, why)
        c.raise_if_any("train")

    def fingerprint(self) -> str:
        """A short hash of every setting that changes the trained weights (:func:`t2p_utils.core.stamps.cache_key`
        of the fields not marked ``NOT_STAMPED``)."""
        return cache_key(self)




#: a scratch model's VAE downsampling and its UNet's (2 per level below the top), per arch (t2p_utils.train.models,
#: which imports torch; tests/test_params_check.py keeps these to it); the space-to-depth autoencoder folds 4x4
SCRATCH_VAE_DOWNSAMPLE: dict[str, int] = {"tiny": 4, "small": 4, "sd15": 8}
SCRATCH_UNET_DOWNSAMPLE: dict[str, int] = {"tiny": 2, "small": 4, "sd15": 8}
SPACE_TO_DEPTH_PATCH = 4
#: a pre-trained Stable Diffusion / InstructPix2Pix pipeline: its VAE downsamples 8x (diffusers asks a multiple of 8)
PRETRAINED_FACTOR = 8


def resolution_factor(cfg: TrainConfig) -> tuple[int, str]:
    """(what ``cfg.resolution`` must be a multiple of, why) for the model ``cfg`` trains; 0 for an unknown arch."""
    if cfg.model_source == "pretrained":
        return PRETRAINED_FACTOR, "the pre-trained model's VAE downsamples 8x"
    if cfg.arch not in SCRATCH_UNET_DOWNSAMPLE:
        return 0, ""
    fold = SPACE_TO_DEPTH_PATCH if cfg.autoencoder == "space_to_depth" else SCRATCH_VAE_DOWNSAMPLE[cfg.arch]
    unet = SCRATCH_UNET_DOWNSAMPLE[cfg.arch]
    what = "the 4x4 fold" if cfg.autoencoder == "space_to_depth" else f"its VAE {fold}x"
    return fold * unet, f"the {cfg.arch} scratch model: {what}, then its UNet {unet}x"
