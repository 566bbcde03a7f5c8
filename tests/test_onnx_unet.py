"""The onnxruntime UNet (t2p_utils.inference.onnx_unet): same outputs as the torch UNet, same images, clear fallbacks."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from t2p_utils.inference import onnx_unet as O
from t2p_utils.inference.pipeline import generate, make_pipeline
from t2p_utils.train.loss import ddpm_scheduler
from t2p_utils.train.models import build_text_encoder, build_unet, build_vae
from t2p_utils.train.tokenizer import offline_clip_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "text_time"])
def unet(request: pytest.FixtureRequest) -> torch.nn.Module:
    """A random tiny UNet for 32 px images (8 x 8 latents), with and without the pooled text in its time embedding."""
    return build_unet("tiny", 32, seed=3, text_time=request.param).eval().requires_grad_(False)


def _inputs(unet: torch.nn.Module, batch: int, hw: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sample = torch.randn(batch, unet.config.in_channels, hw, hw, generator=g)
    text = torch.randn(batch, 77, unet.config.cross_attention_dim, generator=g)
    return sample, text


@pytest.mark.parametrize("batch", [1, 3])
def test_outputs_match_the_torch_unet_at_every_timestep_form(unet: torch.nn.Module, batch: int) -> None:
    fast = O.OnnxUNet(unet)
    sample, text = _inputs(unet, batch)
    outs = []
    for t in (torch.tensor(999.0), torch.tensor(10), 500, torch.full((batch,), 250.0)):  # 0-d float / int, int, 1-d
        with torch.no_grad():
            want = unet(sample, t, encoder_hidden_states=text, return_dict=False)[0]
        got = fast(sample, t, encoder_hidden_states=text, return_dict=False)[0]
        assert got.shape == want.shape and got.dtype == torch.float32
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
        outs.append(got)
    assert not torch.allclose(outs[0], outs[1], atol=1e-3)  # the timestep reaches the graph
    assert fast(sample, 500, encoder_hidden_states=text).sample.shape == sample[:, :4].shape  # return_dict=True


def test_other_text_and_latent_sizes_get_their_own_graph(unet: torch.nn.Module) -> None:
    fast = O.OnnxUNet(unet)
    sample, text = _inputs(unet, 2, hw=16, seed=1)
    with torch.no_grad():
        want = unet(sample, 300, encoder_hidden_states=text[:, :20], return_dict=False)[0]
    got = fast(sample, 300, encoder_hidden_states=text[:, :20], return_dict=False)[0]
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert set(fast._sessions) == {(8, 8), (16, 16)}


def test_kwargs_outside_the_graph_are_refused(unet: torch.nn.Module) -> None:
    fast = O.OnnxUNet(unet)
    sample, text = _inputs(unet, 1)
    with pytest.raises(ValueError, match="cross_attention_kwargs.*backend='torch'"):
        fast(sample, 1, encoder_hidden_states=text, cross_attention_kwargs={"scale": 0.5})
    with pytest.raises(ValueError, match="timestep_cond"):
        fast(sample, 1, encoder_hidden_states=text, timestep_cond=torch.zeros(1, 4))
    fast(sample, 1, encoder_hidden_states=text, added_cond_kwargs=None, timestep_cond=None)  # None is fine


def _pipe(text_time: bool = False) -> object:
    return make_pipeline(build_vae("tiny", 32), build_text_encoder("tiny"), offline_clip_tokenizer(),
                         build_unet("tiny", 32, seed=1, text_time=text_time), ddpm_scheduler())


def _lineart() -> Image.Image:
    im = Image.new("RGB", (32, 32), "white")
    ImageDraw.Draw(im).ellipse((4, 4, 27, 27), outline=(0, 0, 0), width=2)
    return im


def test_pipeline_images_match_torch_and_repeat_exactly() -> None:
    torch_pipe, onnx_pipe = _pipe(text_time=True), _pipe(text_time=True)
    engine = O.accelerate_unet(onnx_pipe, "onnx")
    assert engine.name == "onnx" and "onnxruntime" in str(engine) and isinstance(onnx_pipe.unet, O.OnnxUNet)
    assert O.accelerate_unet(onnx_pipe, "auto").name == "onnx"  # already accelerated: kept, not wrapped twice
    assert O.torch_threads_beside(onnx_pipe, 4) == 1 and O.torch_threads_beside(torch_pipe, 4) == 4
    assert isinstance(onnx_pipe.unet.torch_unet, torch.nn.Module) and not isinstance(onnx_pipe.unet.torch_unet, O.OnnxUNet)
    images, prompts = [_lineart()] * 3, ["make it red", "make it blue", ""]
    want = np.stack([np.asarray(im, dtype=int) for im in generate(torch_pipe, images, prompts, steps=8, seed=5)])
    got = np.stack([np.asarray(im, dtype=int) for im in generate(onnx_pipe, images, prompts, steps=8, seed=5)])
    again = np.stack([np.asarray(im, dtype=int) for im in generate(onnx_pipe, images, prompts, steps=8, seed=5)])
    assert np.abs(got - want).max() <= 2  # 8-bit levels: float noise only
    assert (got == again).all()  # deterministic
    other = np.stack([np.asarray(im, dtype=int) for im in generate(onnx_pipe, images, prompts, steps=8, seed=6)])
    assert np.abs(other - got).max() > 10  # the seed still matters (the images are not constant)


def test_auto_falls_back_to_torch_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = _pipe()
    original = pipe.unet
    assert O.accelerate_unet(pipe, "torch").name == "torch" and pipe.unet is original

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    b = O.accelerate_unet(pipe, "auto")
    assert b.name == "torch" and "onnxruntime is not installed" in str(b) and pipe.unet is original
    with pytest.raises(O.OnnxUnavailable, match="pip install"):
        O.accelerate_unet(pipe, "onnx")
    monkeypatch.delitem(sys.modules, "onnxruntime")

    monkeypatch.setattr(O, "MAX_ONNX_PARAMS", 1000)
    b = O.accelerate_unet(pipe, "auto")
    assert b.name == "torch" and "M parameters" in str(b) and pipe.unet is original
    monkeypatch.undo()

    pipe.unet.to(torch.float16)
    b = O.accelerate_unet(pipe, "auto")
    assert b.name == "torch" and "torch.float16" in str(b) and pipe.unet is original
    with pytest.raises(ValueError, match="backend must be one of"):
        O.accelerate_unet(pipe, "tensorrt")
