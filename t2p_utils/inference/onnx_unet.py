"""A small UNet run by onnxruntime on CPU: the same weights, a quarter of the per-step overhead.

The ``cpu`` profile's UNet is small (32/64/128 channels on a 16 x 16 latent), so on a CPU one
denoising step is spent mostly in PyTorch's per-operator dispatch, not in arithmetic: ~60-90 ms
for the three classifier-free-guidance branches in eager mode, ~25-35 ms for the same graph in
onnxruntime (``benchmarks/bench_demo.py --backend torch|onnx``). The demo therefore swaps
``pipe.unet`` for :class:`OnnxUNet`, which

* exports the loaded UNet in memory with ``torch.onnx.export`` (the TorchScript exporter: a few
  seconds; the dynamo one takes a minute), one graph per latent size, batch and text length free;
* feeds the diffusers pipeline exactly what ``UNet2DConditionModel`` would return (its outputs agree
  to ~1e-6; ``tests/test_onnx_unet.py`` compares both the UNet outputs and whole pipeline images);
* keeps ``config``, ``device`` and ``dtype``, which the pipeline reads.

:func:`accelerate_unet` applies it where it helps and is safe (a CPU pipeline in fp32 with a UNet
under :data:`MAX_ONNX_PARAMS` parameters and onnxruntime importable) and otherwise leaves the
pipeline alone and says why. Nothing is written to disk; nothing is downloaded.
"""

from __future__ import annotations

import io
import logging
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from t2p_utils.config.compare import BACKENDS

log = logging.getLogger(__name__)

#: Larger UNets (SD 1.5: 860 M) stay on torch: their graph does not fit in one in-memory protobuf (2 GB).
MAX_ONNX_PARAMS = 100_000_000
OPSET = 18


class OnnxUnavailable(RuntimeError):
    """onnxruntime cannot run this UNet (the message says why); the pipeline keeps its torch UNet."""


@dataclass(frozen=True)
class UNetEngine:
    """Which engine runs a pipeline's UNet, in words for the page and the benchmark."""

    name: str  # "onnx" or "torch"
    detail: str

    def __str__(self) -> str:
        return self.detail


class _Traced(torch.nn.Module):
    """The UNet with positional inputs and a plain tensor output, as the exporter wants it."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]


def _onnxruntime() -> Any:
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
        import onnxruntime
    except ImportError as exc:
        raise OnnxUnavailable(f"onnxruntime is not installed ({exc.name}); `pip install -e .` installs it") from exc
    return onnxruntime


class OnnxUNet(torch.nn.Module):
    """Drop-in for a diffusers ``UNet2DConditionModel`` inside a pipeline, evaluated by onnxruntime.

    ``threads``: onnxruntime intra-op threads (0: one per physical core). The torch UNet is kept
    (``.torch_unet``) but not run. ``added_cond_kwargs`` / ``cross_attention_kwargs`` (IP-adapters,
    LoRA scales) are not part of the exported graph and are refused.
    """

    def __init__(self, unet: torch.nn.Module, threads: int = 0) -> None:
        super().__init__()
        self._ort = _onnxruntime()
        dtype = next(unet.parameters()).dtype
        if dtype != torch.float32:
            raise OnnxUnavailable(f"the UNet is {dtype}, the ONNX path exports fp32 only")
        n_params = sum(p.numel() for p in unet.parameters())
        if n_params > MAX_ONNX_PARAMS:
            raise OnnxUnavailable(f"the UNet has {n_params / 1e6:.0f} M parameters (> {MAX_ONNX_PARAMS / 1e6:.0f} M: "
                                  "too large for an in-memory export)")
        self.torch_unet = unet.eval()
        self.config = unet.config
        self.threads = int(threads)
        self._sessions: dict[tuple[int, int], Any] = {}
        self._lock = threading.Lock()
        size = int(unet.config.sample_size)
        self.session((size, size))  # export now: the first click should not pay for it

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def engine(self) -> UNetEngine:
        threads = f"{self.threads} threads" if self.threads > 0 else "a thread per core"
        return UNetEngine("onnx", f"onnxruntime {self._ort.__version__} on CPU ({threads}), exported from the saved weights")

    def _export(self, hw: tuple[int, int]) -> bytes:
        cfg = self.config
        sample = torch.zeros(2, int(cfg.in_channels), *hw)
        timestep = torch.zeros(2)
        text = torch.zeros(2, 77, int(cfg.cross_attention_dim))
        buf = io.BytesIO()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings on shape checks that hold for every input it gets
            torch.onnx.export(
                _Traced(self.torch_unet), (sample, timestep, text), buf, dynamo=False, opset_version=OPSET,
                input_names=["sample", "timestep", "encoder_hidden_states"], output_names=["out"],
                dynamic_axes={"sample": {0: "batch"}, "timestep": {0: "batch"},
                              "encoder_hidden_states": {0: "batch", 1: "tokens"}, "out": {0: "batch"}},
            )
        return buf.getvalue()

    def session(self, hw: tuple[int, int]) -> Any:
        """The onnxruntime session for latents of height x width ``hw`` (exported on first use)."""
        with self._lock:
            if hw not in self._sessions:
                t0 = time.perf_counter()
                graph = self._export(hw)
                opts = self._ort.SessionOptions()
                opts.intra_op_num_threads = self.threads
                opts.inter_op_num_threads = 1
                opts.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                opts.log_severity_level = 3
                self._sessions[hw] = self._ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
                log.info("onnx_unet: exported and loaded the UNet for %dx%d latents in %.1f s", *hw,
                         time.perf_counter() - t0)
            return self._sessions[hw]

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | float,
                encoder_hidden_states: torch.Tensor, added_cond_kwargs: dict | None = None,
                cross_attention_kwargs: dict | None = None, return_dict: bool = True, **kwargs: Any) -> Any:
        extra = {k: v for k, v in kwargs.items() if v is not None}
        if added_cond_kwargs or cross_attention_kwargs or extra:
            names = sorted(extra) + ["added_cond_kwargs"] * bool(added_cond_kwargs) \
                + ["cross_attention_kwargs"] * bool(cross_attention_kwargs)
            raise ValueError(f"OnnxUNet does not support {', '.join(names)}: load the pipeline with backend='torch'")
        batch = sample.shape[0]
        t = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1)
        if t.numel() == 1:
            t = t.expand(batch)
        feed = {
            "sample": sample.detach().to("cpu", torch.float32).contiguous().numpy(),
            "timestep": t.contiguous().numpy(),
            "encoder_hidden_states": encoder_hidden_states.detach().to("cpu", torch.float32).contiguous().numpy(),
        }
        out = torch.from_numpy(self.session(tuple(sample.shape[-2:])).run(None, feed)[0])
        if not return_dict:
            return (out,)
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        return UNet2DConditionOutput(sample=out)


def accelerate_unet(pipe: Any, backend: str = "auto", threads: int = 0) -> UNetEngine:
    """Run ``pipe``'s UNet on onnxruntime where it can; returns what runs it.

    ``backend``: ``"onnx"`` (fail with :class:`OnnxUnavailable` when it cannot), ``"torch"`` (leave
    the pipeline alone) or ``"auto"`` (onnx where possible, else torch with the reason in ``detail``).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if isinstance(pipe.unet, OnnxUNet):
        return pipe.unet.engine
    if backend == "torch":
        return UNetEngine("torch", "PyTorch (asked for)")
    try:
        if pipe.unet.device.type != "cpu":
            raise OnnxUnavailable(f"the pipeline is on {pipe.unet.device}, where PyTorch is the fast path")
        unet = OnnxUNet(pipe.unet, threads)
    except Exception as exc:
        if backend == "onnx":
            raise exc if isinstance(exc, OnnxUnavailable) else OnnxUnavailable(f"export failed: {exc}") from exc
        log.info("onnx_unet: keeping the PyTorch UNet: %s", exc)
        return UNetEngine("torch", f"PyTorch (onnxruntime not used: {exc})")
    pipe.unet = unet
    return unet.engine


def engine_of(pipe: Any) -> UNetEngine | None:
    """What runs ``pipe``'s UNet now (None for a pipeline without a torch-style UNet, e.g. a test fake)."""
    unet = getattr(pipe, "unet", None)
    if isinstance(unet, OnnxUNet):
        return unet.engine
    if isinstance(unet, torch.nn.Module):
        return UNetEngine("torch", "PyTorch")
    return None


def torch_threads_beside(pipe: Any, threads: int | None) -> int | None:
    """The torch threads to generate with ``pipe``: one when onnxruntime runs its UNet, else ``threads``.

    Torch then runs only the small VAE and text encoder, and its idle OpenMP workers would spin on
    the cores onnxruntime computes on.
    """
    return 1 if isinstance(getattr(pipe, "unet", None), OnnxUNet) else threads
