"""Inference: load a saved InstructPix2Pix pipeline and colour line art with it.

Evaluation (05), the demo and the benchmarks import this module, not the trainer.

- :func:`load_pipeline` a saved pipeline folder (``models/<p>/ip2p_<source>/``) or a hub id;
- :func:`generate` batched, image ``i`` seeded with ``seed + i`` (outputs independent of the batch size);
- :func:`make_pipeline` around trained parts (the trainer saves these), :func:`set_sampler` swaps the sampler.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from t2p_utils.config.params import ConfigError
from t2p_utils.config.train import SAMPLERS
from t2p_utils.core.progress import tqdm

if TYPE_CHECKING:
    import torch



def _scheduler_class(sampler: str) -> Any:
    from diffusers import DDIMScheduler, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler

    classes = {"euler_ancestral": EulerAncestralDiscreteScheduler, "euler": EulerDiscreteScheduler,
               "ddim": DDIMScheduler}
    if sampler not in classes:
        raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
    return classes[sampler]


def set_sampler(pipe: Any, sampler: str) -> Any:
    """Swap ``pipe``'s scheduler for ``sampler`` (one of :data:`SAMPLERS`), keeping its noise schedule; returns ``pipe``."""
    pipe.scheduler = _scheduler_class(sampler).from_config(pipe.scheduler.config)
    return pipe


def make_pipeline(vae: Any, text_encoder: Any, tokenizer: Any, unet: Any, noise_scheduler: Any,
                  sampler: str = "euler_ancestral") -> Any:
    """An IP2P pipeline around trained parts, sampling with Euler-ancestral (as timbrooks/instruct-pix2pix) by default."""
    from diffusers import StableDiffusionInstructPix2PixPipeline

    scheduler = _scheduler_class(sampler).from_config(noise_scheduler.config)
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_pipeline(model_dir: str | Path, device: str = "cpu", dtype: torch.dtype | None = None) -> Any:
    """Load a saved (or hub) IP2P pipeline; fp32 on CPU, fp16 on CUDA unless ``dtype`` says otherwise."""
    import torch
    from diffusers import StableDiffusionInstructPix2PixPipeline

    src = str(model_dir)
    local = Path(src)
    looks_local = local.exists() or local.is_absolute() or src.startswith(".") or src.count("/") != 1
    if looks_local and not (local / "model_index.json").exists():
        raise FileNotFoundError(f"{local} is not a saved pipeline (no model_index.json): run notebooks/04_finetune.ipynb first")
    if dtype is None:
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
    kwargs: dict[str, Any] = {"torch_dtype": dtype}
    if not local.exists():  # a hub id (full profile): skip the safety checker the study does not use
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(src, **kwargs)
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(
    pipe: Any,
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    steps: int = 100,
    text_guidance: float = 7.5,
    image_guidance: float = 1.5,
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = False,
) -> list[Image.Image]:
    """Edit ``images[i]`` with ``prompts[i]``; batched, image ``i`` seeded with ``seed + i``.

    The seeding per image makes the outputs independent of ``batch_size``.
    """
    import torch

    if len(images) != len(prompts):
        raise ValueError(f"generate() got {len(images)} images but {len(prompts)} prompts")
    device = pipe.device
    gen_device = "cpu" if device.type == "mps" else device
    out: list[Image.Image] = []
    for i in tqdm(range(0, len(images), batch_size), desc="generate", disable=not progress, leave=False):
        ims = [im.convert("RGB") for im in images[i : i + batch_size]]
        gens = [torch.Generator(device=gen_device).manual_seed(seed + i + k) for k in range(len(ims))]
        res = pipe(prompt=list(prompts[i : i + batch_size]), image=ims, num_inference_steps=steps,
                   guidance_scale=text_guidance, image_guidance_scale=image_guidance, generator=gens,
                   output_type="pil")
        out.extend(res.images)
    return out
