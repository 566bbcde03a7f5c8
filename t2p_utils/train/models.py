"""Stable-Diffusion-architecture models built from configs (random weights, no download).

Three sizes share the SD layout (``UNet2DConditionModel`` + ``AutoencoderKL`` +
``CLIPTextModel`` + CLIP tokenizer), so every scratch model is a regular diffusers
InstructPix2Pix pipeline:

- ``tiny``: a few thousand parameters per block, for the ``smoke`` profile and the tests;
- ``small``: the ``cpu`` profile (UNet channels 32/64/128 on a 4x-downsampling VAE);
- ``sd15``: the full Stable Diffusion 1.5 sizes with an 8-channel ``conv_in`` (benchmarks only).

Also here: :func:`widen_conv_in` (the IP2P surgery from 4 to 8 input channels) and
:func:`train_vae`, the one small VAE that all ``cpu``/``smoke`` UNets share.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, ModelMixin, UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from transformers import CLIPTextConfig, CLIPTextModel

from t2p_utils.core.progress import tqdm

log = logging.getLogger(__name__)

ARCHS: tuple[str, ...] = ("tiny", "small", "sd15")
LATENT_CHANNELS = 4
VOCAB_SIZE = 49408  # CLIP's BPE vocabulary (t2p_utils.train.tokenizer)
MAX_TOKENS = 77


def _check_arch(arch: str) -> str:
    if arch not in ARCHS:
        raise ValueError(f"unknown model size {arch!r}: choose one of {', '.join(ARCHS)}")
    return arch


def text_encoder_config(arch: str) -> CLIPTextConfig:
    """CLIP text transformer; ``sd15`` is CLIP ViT-L/14's text tower (768 wide, 12 layers)."""
    _check_arch(arch)
    common = dict(vocab_size=VOCAB_SIZE, max_position_embeddings=MAX_TOKENS, bos_token_id=49406, eos_token_id=49407,
                  pad_token_id=49407, hidden_act="quick_gelu")
    if arch == "tiny":
        return CLIPTextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                              projection_dim=32, **common)
    if arch == "small":
        return CLIPTextConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                              projection_dim=64, **common)
    return CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                          projection_dim=768, **common)


def vae_kwargs(arch: str, latent_channels: int = LATENT_CHANNELS) -> dict:
    """AutoencoderKL config; tiny/small downsample 4x (3 blocks), sd15 8x (4 blocks)."""
    _check_arch(arch)
    if arch == "tiny":
        blocks, groups, layers = (8, 16, 16), 8, 1
    elif arch == "small":
        # full-resolution convolutions dominate the cost: 16 channels at 64 px trains at ~0.7 s per
        # batch of 16 on one core, 32 channels at ~1.5 s (measured, notebooks/04_finetune.ipynb)
        blocks, groups, layers = (16, 32, 64), 8, 1
    else:
        blocks, groups, layers = (128, 256, 512, 512), 32, 2
    return dict(
        in_channels=3, out_channels=3, latent_channels=latent_channels,
        down_block_types=("DownEncoderBlock2D",) * len(blocks), up_block_types=("UpDecoderBlock2D",) * len(blocks),
        block_out_channels=blocks, layers_per_block=layers, norm_num_groups=groups,
        scaling_factor=0.18215,
    )


def unet_kwargs(arch: str, sample_size: int, cross_attention_dim: int | None = None,
                latent_channels: int = LATENT_CHANNELS, text_time: bool = False) -> dict:
    """UNet2DConditionModel config with 2 x ``latent_channels`` inputs (noisy latents + image latents).

    ``text_time``: also add an attention-pooled text embedding to the time embedding
    (``addition_embed_type="text"``), so the prompt modulates every ResNet block, not only the
    cross-attention layers; a global "red body" needs no spatial attention to take effect.
    """
    _check_arch(arch)
    if arch == "tiny":
        blocks, layers, groups, head = (16, 32), 1, 8, 4
        down = ("CrossAttnDownBlock2D", "DownBlock2D")
        up = ("UpBlock2D", "CrossAttnUpBlock2D")
        xdim = 32
    elif arch == "small":
        # cross-attention only at 1/2 and 1/4 of the latent size: the 16x16 attention cost
        # 2x the step time on the 2-core CPU for no visible gain (notebooks/04_finetune.ipynb)
        blocks, layers, groups, head = (32, 64, 128), 2, 16, 8
        down = ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
        up = ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")
        xdim = 64
    else:
        blocks, layers, groups, head = (320, 640, 1280, 1280), 2, 32, 8
        down = ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
        up = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3
        xdim = 768
    xdim = cross_attention_dim or xdim
    extra = {"addition_embed_type": "text", "addition_embed_type_num_heads": max(1, xdim // 16)} if text_time else {}
    return dict(
        sample_size=sample_size, in_channels=2 * latent_channels, out_channels=latent_channels,
        down_block_types=down, up_block_types=up, block_out_channels=blocks, layers_per_block=layers,
        norm_num_groups=groups, attention_head_dim=head, cross_attention_dim=xdim, **extra,
    )


def vae_downsample(arch: str) -> int:
    return 2 ** (len(vae_kwargs(arch)["block_out_channels"]) - 1)


def build_unet(arch: str, resolution: int, vae_arch: str | None = None, seed: int = 0,
               latent_channels: int = LATENT_CHANNELS, text_time: bool = False) -> UNet2DConditionModel:
    """A randomly initialised UNet for ``resolution`` px images and 2 x ``latent_channels`` inputs (seeded)."""
    torch.manual_seed(seed)
    sample = resolution // vae_downsample(vae_arch or arch)
    return UNet2DConditionModel(**unet_kwargs(arch, sample, text_encoder_config(arch).hidden_size, latent_channels,
                                              text_time))


def build_vae(arch: str, resolution: int, seed: int = 0, latent_channels: int = LATENT_CHANNELS) -> AutoencoderKL:
    torch.manual_seed(seed)
    return AutoencoderKL(sample_size=resolution, **vae_kwargs(arch, latent_channels))


def build_text_encoder(arch: str, seed: int = 0) -> CLIPTextModel:
    torch.manual_seed(seed)
    return CLIPTextModel(text_encoder_config(arch)).eval()


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# conv_in surgery -----------------------------------------------------------------------
def widen_conv_in(unet: UNet2DConditionModel, in_channels: int = 2 * LATENT_CHANNELS) -> bool:
    """Give a text-to-image UNet the IP2P input: ``in_channels`` channels, new ones zero.

    The first (original) input channels keep their weights and the bias is kept, so the
    widened model computes exactly what it computed before on the noisy latents while the
    image-latent channels start with no effect. A UNet that already has ``in_channels``
    inputs (``timbrooks/instruct-pix2pix``) is left untouched (cf. diffusers issue #3455).
    Returns whether the UNet was changed.
    """
    old = unet.conv_in
    if old.in_channels == in_channels:
        return False
    if old.in_channels > in_channels:
        raise ValueError(f"conv_in has {old.in_channels} input channels, more than the {in_channels} asked for")
    new = torch.nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                          device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels].copy_(old.weight)
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)
    log.info("widened conv_in from %d to %d input channels (new channels zero-initialised)", old.in_channels, in_channels)
    return True


# the exact space-to-depth "autoencoder" ------------------------------------------------------
class SpaceToDepthAutoencoder(ModelMixin, ConfigMixin):
    """A lossless stand-in for the VAE: each ``patch`` x ``patch`` block of pixels becomes channels.

    ``encode`` folds a (N, 3, H, W) image in [-1, 1] into (N, 3 * patch**2, H / patch, W / patch)
    "latents" minus ``shift``; ``decode`` unfolds them. Nothing is learned and the round trip is
    exact, so the UNet works in pixel space at the small latent size of a 4x VAE (diffusion on
    folded pixels, as in pixel-space diffusion models). Measured on the cpu profile (64 px, val
    sprites): the learned small VAE's own round trip of the ground truth scored SSIM 0.64 and
    ΔE2000 20.6 and kept the basic colour term of 0.56 of character pixels, which capped every
    UNet trained on it; this one scores 1.0, 0 and 1.0 by construction and costs no training.
    But the ``small`` UNet cannot use it: measured with ``benchmarks/levers.py`` (cpu recipe,
    800 steps, 20 val sprites, ``reports/cpu/levers.csv`` row ``space_to_depth``), its outputs
    stay speckled with noise (colour control 0.06, SSIM 0.18, leakage 0.77, against 0.2+ / 0.4 /
    0.2 with the learned VAE): 96 folded input channels into a 32-channel first level is too
    narrow. Kept as the ``train.autoencoder`` option for wider UNets.
    It quacks like ``AutoencoderKL`` where the IP2P pipeline and the trainer touch it
    (``encode().latent_dist``, ``decode().sample``, ``config.block_out_channels``,
    ``config.latent_channels``, ``config.scaling_factor``), so it saves and loads with the pipeline.
    """

    @register_to_config
    def __init__(self, patch: int = 4, in_channels: int = 3, shift: float = 0.0, scaling_factor: float = 1.0,
                 latent_channels: int | None = None, block_out_channels: tuple[int, ...] | None = None) -> None:
        super().__init__()
        channels = in_channels * patch * patch
        if latent_channels not in (None, channels):
            raise ValueError(f"latent_channels must be in_channels * patch**2 = {channels}, not {latent_channels}")
        levels = int(round(math.log2(patch)))
        if 2 ** levels != patch:
            raise ValueError(f"patch must be a power of two, not {patch}")
        # the pipeline reads its downsampling factor as 2 ** (len(block_out_channels) - 1)
        self.register_to_config(latent_channels=channels, block_out_channels=[channels] * (levels + 1))
        # one saved number (diffusers writes no weights file for a model without state): gives .dtype / .device
        self.register_buffer("patch_size", torch.tensor(float(patch)))

    def encode(self, x: torch.Tensor, return_dict: bool = True) -> AutoencoderKLOutput | tuple:
        mean = F.pixel_unshuffle(x, self.config.patch) - self.config.shift
        logvar = torch.full_like(mean, -30.0)  # std exp(-15): a point mass, so sample() == mode()
        dist = DiagonalGaussianDistribution(torch.cat([mean, logvar], dim=1))
        return AutoencoderKLOutput(latent_dist=dist) if return_dict else (dist,)

    def decode(self, z: torch.Tensor, return_dict: bool = True, generator: torch.Generator | None = None
               ) -> DecoderOutput | tuple:
        x = F.pixel_shuffle(z + self.config.shift, self.config.patch)
        return DecoderOutput(sample=x) if return_dict else (x,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x).latent_dist.mode()).sample


def space_to_depth_autoencoder(images: torch.Tensor, patch: int = 4) -> SpaceToDepthAutoencoder:
    """The exact autoencoder with ``shift`` = the mean and ``scaling_factor`` = 1/std of ``images`` (N,3,H,W in [-1, 1])
    folded, so that scaled latents are centred with unit variance, as :func:`train_vae` arranges for the learned VAE."""
    x = images.float()
    mean = float(x.mean())
    std = float((x - mean).std())
    return SpaceToDepthAutoencoder(patch=patch, in_channels=x.shape[1], shift=mean, scaling_factor=1.0 / max(std, 1e-6))


# the shared small VAE --------------------------------------------------------------------
def start_with_small_variance(vae: AutoencoderKL, logvar: float = -10.0) -> None:
    """Make the untrained posterior almost deterministic (std = exp(logvar / 2)).

    With the default init the posterior std is ~1, so early on the decoder sees mostly noise
    and learns only the mean grey image; measured on the sprites, 400 steps then gave a
    colourless 16.9 dB reconstruction. Zeroing the logvar rows of ``quant_conv`` and setting
    their bias to ``logvar`` starts the VAE as a plain autoencoder (the KL weight is tiny).
    """
    qc = vae.quant_conv
    if qc is None:
        return
    c = vae.config.latent_channels
    with torch.no_grad():
        qc.weight[c:].zero_()
        qc.bias[c:].fill_(logvar)


@dataclass
class VaeResult:
    steps: int
    seconds: float
    final_loss: float
    psnr: float  # reconstruction PSNR on the training images, dB
    scaling_factor: float
    color_keep: float | None = None  # share of character pixels whose basic colour term survives encode -> decode


def train_vae(
    images: torch.Tensor,
    arch: str,
    steps: int,
    batch_size: int,
    lr: float,
    kl_weight: float,
    seed: int,
    chroma_weight: float = 10.0,
    latent_channels: int = LATENT_CHANNELS,
    check: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[AutoencoderKL, VaeResult]:
    """Train an ``AutoencoderKL`` on ``images`` (N,3,H,W in [-1,1]).

    Loss: MSE of the luminance (channel mean) + ``chroma_weight`` x MSE of the chroma (each
    channel minus the mean) + ``kl_weight`` x KL. Measured on the sprites (64 px, 400 steps of
    8): a plain MSE or L1 loss learns shapes first and stays colourless (grey, 16.7 dB, chroma
    0.03 vs 0.11 in the images); weighting chroma 10x gives recognisable colours in the same
    steps, which is what the colouring study needs from its decoder.

    Random horizontal flips; the batches and flips come from a seeded generator, so the same
    call twice gives the same weights. Afterwards ``scaling_factor`` is set to 1/std of the
    latents (as SD did), so scaled latents have unit variance for the UNet. ``check``: colour
    images (N,3,H,W in [-1,1]) and their character regions (N,H,W bool) on which
    :func:`color_keep` is measured after training.
    """
    n, _, h, _ = images.shape
    vae = build_vae(arch, h, seed=seed, latent_channels=latent_channels)
    start_with_small_variance(vae)
    vae.train()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    loss_val = float("nan")
    for _ in tqdm(range(steps), desc="vae", leave=False, mininterval=2.0):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
        x = images[idx]
        flip = torch.rand(len(idx), generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
        rec = vae.decode(z).sample
        rec_y, x_y = rec.mean(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)
        loss = F.mse_loss(rec_y, x_y) + chroma_weight * F.mse_loss(rec - rec_y, x - x_y) + kl_weight * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        loss_val = float(loss.detach())
    seconds = time.perf_counter() - t0
    vae.eval()
    with torch.no_grad():
        mus, mses = [], []
        for i in range(0, n, 64):
            x = images[i : i + 64]
            mu = vae.encode(x).latent_dist.mean
            mus.append(mu)
            rec = vae.decode(mu).sample.clamp(-1, 1)
            mses.append(((rec - x) / 2).pow(2).mean(dim=(1, 2, 3)))
        std = torch.cat(mus).std().item()
        mse = torch.cat(mses).mean().item()
    scaling = 1.0 / max(std, 1e-6)
    vae.register_to_config(scaling_factor=scaling)
    keep = color_keep(vae, *check) if check is not None else None
    result = VaeResult(steps, seconds, loss_val, float(10 * np.log10(1.0 / max(mse, 1e-12))), scaling, keep)
    log.info("VAE (%s): %d steps in %.1f s, loss %.4f, reconstruction PSNR %.1f dB, scaling %.3f, colour terms kept %s",
             arch, steps, seconds, loss_val, result.psnr, scaling, "n/a" if keep is None else f"{keep:.3f}")
    return vae, result


@torch.no_grad()
def round_trip(vae: AutoencoderKL, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """encode -> posterior mean -> decode of images in [-1, 1]; returns the reconstructions in [-1, 1]."""
    out = []
    for i in range(0, images.shape[0], batch_size):
        mu = vae.encode(images[i : i + batch_size]).latent_dist.mean
        out.append(vae.decode(mu).sample.clamp(-1, 1))
    return torch.cat(out)


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """(N,3,H,W) in [-1, 1] -> uint8 (N,H,W,3)."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def color_keep(vae: AutoencoderKL, images: torch.Tensor, regions: torch.Tensor) -> float:
    """Share of region pixels whose basic colour term (:mod:`t2p_utils.core.colors`) is the same after the round trip.

    The issue's bar for the shared VAE is 0.9: a decoder that turns blue into teal-grey
    cannot show whether a UNet followed "blue".
    """
    from t2p_utils.core.colors import pixel_color_terms

    was = vae.training
    vae.eval()
    rec = to_uint8_hwc(round_trip(vae, images))
    vae.train(was)
    src = to_uint8_hwc(images)
    m = regions.cpu().numpy().astype(bool)
    if not m.any():
        return float("nan")
    return float(np.mean(pixel_color_terms(src[m]) == pixel_color_terms(rec[m])))
