"""Backends that colour a batch of line art with a saved pipeline: the protocol 05 and the benchmarks call, the pipeline
backend (PyTorch, or the UNet on onnxruntime), and batched generation."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image

from t2p_utils.config.compare import CompareConfig
from t2p_utils.core.threads import torch_threads
from t2p_utils.inference.onnx_unet import accelerate_unet, torch_threads_beside

log = logging.getLogger(__name__)


class Backend(Protocol):
    def load(self, source: str, device: str) -> Any: ...

    def generate(
        self, pipe: Any, images: list[Image.Image], prompts: list[str], steps: int,
        text_guidance: float, image_guidance: float, seed: int,
    ) -> list[Image.Image]: ...


@dataclass
class PipelineBackend:
    """Inference through ``t2p_utils.inference.pipeline.load_pipeline`` and ``t2p_utils.inference.pipeline.generate``.

    ``unet_backend`` (``compare.unet_backend``): what runs the UNet, see :func:`t2p_utils.inference.onnx_unet.accelerate_unet`.
    """

    unet_backend: str = "auto"

    def load(self, source: str, device: str) -> Any:
        from t2p_utils.inference.pipeline import load_pipeline

        pipe = load_pipeline(source, device)
        accelerate_unet(pipe, self.unet_backend)
        return pipe

    def generate(self, pipe: Any, images: list[Image.Image], prompts: list[str], steps: int,
                 text_guidance: float, image_guidance: float, seed: int) -> list[Image.Image]:
        from t2p_utils.inference.pipeline import generate

        with torch_threads(torch_threads_beside(pipe, None)):
            return generate(pipe, images, prompts, steps, text_guidance, image_guidance, seed)


def generate_batched(backend: Backend, pipe: Any, images: list[Image.Image], prompts: list[str], cfg: CompareConfig,
                      seed: int, text_guidance: float, image_guidance: float) -> list[Image.Image]:
    outs: list[Image.Image] = []
    for start in range(0, len(images), cfg.batch_size):
        batch = backend.generate(pipe, images[start:start + cfg.batch_size], prompts[start:start + cfg.batch_size],
                                 cfg.steps, text_guidance, image_guidance, seed + start)
        outs.extend(im.convert("RGB") for im in batch)
    if len(outs) != len(images):
        raise RuntimeError(f"generate returned {len(outs)} images for {len(images)} inputs")
    return outs
