"""The IP2P training objective, as pure functions: conditioning dropout, the loss, min-SNR weights, the noise schedule."""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


def conditioning_dropout(
    text_emb: torch.Tensor,
    image_latents: torch.Tensor,
    null_text_emb: torch.Tensor,
    prob: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The IP2P example's dropout: one uniform draw ``u`` per sample.

    ``u < 2p``: prompt replaced by the empty prompt's embedding; ``p <= u < 3p``: input-image
    latents zeroed. So a share ``p`` loses only the text, ``p`` both, ``p`` only the image
    (the paper's 5 % / 5 % / 5 % with p = 0.05). Returns (text, image, text_dropped, image_dropped).
    """
    bsz = text_emb.shape[0]
    u = torch.rand(bsz, generator=generator).to(text_emb.device)
    drop_text = u < 2 * prob
    drop_image = (u >= prob) & (u < 3 * prob)
    text = torch.where(drop_text.reshape(bsz, 1, 1), null_text_emb.to(text_emb.dtype).expand_as(text_emb), text_emb)
    image = image_latents * (~drop_image).to(image_latents.dtype).reshape(bsz, 1, 1, 1)
    return text, image, drop_text, drop_image


def ip2p_loss(
    unet: Any,
    noise_scheduler: Any,
    latents: torch.Tensor,
    image_latents: torch.Tensor,
    text_emb: torch.Tensor,
    null_text_emb: torch.Tensor,
    dropout_prob: float,
    generator: torch.Generator,
    weight_dtype: torch.dtype = torch.float32,
    snr_gamma: float | None = None,
) -> torch.Tensor:
    """The IP2P training loss of one micro-batch.

    ``latents``: scaled latents of the edited images; ``image_latents``: unscaled mode of the
    input images (what the pipeline concatenates at inference). Noise, timesteps and the
    conditioning dropout are drawn from ``generator`` in that order. ``snr_gamma``: min-SNR-gamma
    weighting of each sample's MSE (``min(SNR, gamma) / SNR`` for epsilon, ``/ (SNR + 1)`` for v).
    """
    device = latents.device
    bsz = latents.shape[0]
    noise = torch.randn(latents.shape, generator=generator).to(device)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (bsz,), generator=generator).to(device)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    if dropout_prob > 0:
        text_emb, image_latents, _, _ = conditioning_dropout(text_emb, image_latents, null_text_emb, dropout_prob, generator)
    model_in = torch.cat([noisy, image_latents.to(noisy.dtype)], dim=1)
    prediction_type = noise_scheduler.config.prediction_type
    if prediction_type == "epsilon":
        target = noise
    elif prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, timesteps)
    else:
        raise ValueError(f"unknown prediction type {prediction_type}")
    cond = text_emb.to(weight_dtype)
    pred = unet(model_in, timesteps, cond).sample
    if snr_gamma is None:
        return F.mse_loss(pred.float(), target.float(), reduction="mean")
    snr = min_snr_weights(noise_scheduler, timesteps.cpu(), snr_gamma).to(device)
    per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    return (per_sample * snr).mean()


def min_snr_weights(noise_scheduler: Any, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-sample loss weights of min-SNR-gamma: ``min(SNR, gamma) / SNR`` (epsilon) or ``/ (SNR + 1)`` (v), with
    the SNR from diffusers' :func:`~diffusers.training_utils.compute_snr` (as diffusers' training examples do)."""
    from diffusers.training_utils import compute_snr

    snr = compute_snr(noise_scheduler, timesteps)
    clipped = torch.clamp(snr, max=gamma)
    denom = snr + 1.0 if noise_scheduler.config.prediction_type == "v_prediction" else snr
    return clipped / denom


def ddpm_scheduler(prediction_type: str = "epsilon") -> Any:
    """SD-1.x's training noise schedule (scaled linear betas, 1000 steps; epsilon prediction by default)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         clip_sample=False, prediction_type=prediction_type, steps_offset=1)
