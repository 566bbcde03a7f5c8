"""Throughput and peak memory of the IP2P training step, lever by lever.

    .venv/bin/python benchmarks/bench_train.py --arch small --resolution 64 --batch 8
    python benchmarks/bench_train.py --arch sd15 --resolution 256 --batch 32 --device cuda   # an H100

``--arch tiny|small|sd15`` builds the models of ``t2p_utils.train.models`` from config with
random weights (``sd15``: the full SD-1.5 sizes, 8-channel UNet; no download). The step is the
real one (``t2p_utils.train.loop.ip2p_loss``: noise, timesteps, conditioning dropout, UNet, MSE,
backward, AdamW step). Levers, switched on one after the other (``--levers`` picks which and
in what order), so each row shows what that lever adds on top of the previous row:

- ``cache``: latents and text embeddings precomputed (no VAE encoder / text encoder in the step);
- ``bf16``: autocast to bfloat16 (CUDA only: on CPU bf16 is ~15x slower here, so it is skipped);
- ``sdpa``: PyTorch scaled-dot-product attention (``AttnProcessor2_0``) instead of the classic
  matmul-softmax attention processor;
- ``fused_adamw``: ``torch.optim.AdamW(fused=True)``;
- ``channels_last``: UNet in ``torch.channels_last`` memory format;
- ``compile``: ``torch.compile(unet)``;
- ``checkpointing``: gradient checkpointing (saves memory, costs time: the only lever expected
  to lower samples/s; it is what lets the seed's batch fit a 24 GB card).

Target on an H100, ``--arch sd15 --resolution 256``: >= 80 samples/s with peak memory <= 22 GiB.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from t2p_utils.train.loss import ddpm_scheduler, ip2p_loss
from t2p_utils.train.models import (
    build_text_encoder,
    build_unet,
    build_vae,
    n_params,
    vae_downsample,
)

LEVERS = ("cache", "bf16", "sdpa", "fused_adamw", "channels_last", "compile", "checkpointing")


@dataclass
class Row:
    levers: str
    step_s: float
    samples_per_s: float
    peak_gib: float
    note: str = ""


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    # CPU: the process's peak resident set (monotone over the run; an upper bound per row)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_config(arch: str, resolution: int, batch: int, on: set[str], device: torch.device, steps: int,
               warmup: int, seed: int) -> Row:
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    note = ""
    bf16 = "bf16" in on and device.type == "cuda"
    if "bf16" in on and not bf16:
        note = "bf16 skipped on CPU"
    unet = build_unet(arch, resolution, seed=seed).to(device)
    unet.set_attn_processor(AttnProcessor2_0() if "sdpa" in on else AttnProcessor())
    if "checkpointing" in on:
        unet.enable_gradient_checkpointing()
    if "channels_last" in on:
        unet = unet.to(memory_format=torch.channels_last)
    unet.train()
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-5, fused=("fused_adamw" in on) or None)
    model = torch.compile(unet) if "compile" in on else unet
    sched = ddpm_scheduler()
    enc_dtype = torch.bfloat16 if bf16 else torch.float32
    vae = text = None
    latent = resolution // vae_downsample(arch)
    g = torch.Generator().manual_seed(seed)
    if "cache" not in on:
        vae = build_vae(arch, resolution, seed=seed).to(device, enc_dtype).eval().requires_grad_(False)
        text = build_text_encoder(arch, seed=seed).to(device, enc_dtype).requires_grad_(False)
        pixels = torch.rand(2, batch, 3, resolution, resolution, generator=g).mul(2).sub(1).to(device, enc_dtype)
        ids = torch.randint(0, 49406, (batch, 77), generator=g).to(device)
    else:
        lat = torch.randn(batch, 4, latent, latent, generator=g).to(device)
        img = torch.randn(batch, 4, latent, latent, generator=g).to(device)
        emb = torch.randn(batch, 77, unet.config.cross_attention_dim, generator=g).to(device)
    null = torch.zeros(1, 77, unet.config.cross_attention_dim, device=device)

    def step(i: int) -> None:
        gen = torch.Generator().manual_seed(seed + i)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            if "cache" not in on:
                with torch.no_grad():
                    latents = vae.encode(pixels[1]).latent_dist.sample().float() * vae.config.scaling_factor
                    image_latents = vae.encode(pixels[0]).latent_dist.mode().float()
                    e = text(ids)[0].float()
            else:
                latents, image_latents, e = lat, img, emb
            if "channels_last" in on:
                latents = latents.contiguous(memory_format=torch.channels_last)
            loss = ip2p_loss(model, sched, latents, image_latents, e, null, 0.05, gen)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for i in range(warmup):
        step(i)
    sync()
    t0 = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    sync()
    dt = (time.perf_counter() - t0) / steps
    row = Row("+".join(sorted(on, key=LEVERS.index)) or "baseline", dt, batch / dt, peak_memory_gib(device), note)
    return row


def main(argv: list[str] | None = None) -> list[Row]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=("tiny", "small", "sd15"), default="small")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--levers", default=",".join(LEVERS), help=f"comma list, in the order to add them ({','.join(LEVERS)})")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    levers = [x for x in args.levers.split(",") if x]
    unknown = [x for x in levers if x not in LEVERS]
    if unknown:
        p.error(f"unknown lever(s) {unknown}; choose from {', '.join(LEVERS)}")
    unet = build_unet(args.arch, args.resolution)
    print(f"arch={args.arch} resolution={args.resolution} batch={args.batch} device={device} "
          f"threads={torch.get_num_threads()} unet={n_params(unet) / 1e6:.1f}M params "
          f"latent={args.resolution // vae_downsample(args.arch)}px torch={torch.__version__}")
    del unet
    rows: list[Row] = []
    on: set[str] = set()
    configs = [set()] + [set(levers[: i + 1]) for i in range(len(levers))]
    for cfg in configs:
        try:
            row = run_config(args.arch, args.resolution, args.batch, cfg, device, args.steps, args.warmup, args.seed)
        except Exception as exc:  # noqa: BLE001 -- a lever unsupported here (e.g. compile without a compiler): say so, go on
            row = Row("+".join(sorted(cfg, key=LEVERS.index)) or "baseline", float("nan"), float("nan"), float("nan"),
                      f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}")
        rows.append(row)
        prev = rows[-2].samples_per_s if len(rows) > 1 else float("nan")
        ok = not (math.isnan(prev) or math.isnan(row.samples_per_s))
        gain = f"{row.samples_per_s / prev:5.2f}x" if ok else "   - "
        added = (sorted(cfg - on) or ["-"])[0]
        on = cfg
        print(f"{row.levers[:70]:70s} +{added:14s} {row.step_s:8.3f} s/step {row.samples_per_s:8.1f} samples/s "
              f"{gain} peak {row.peak_gib:6.2f} GiB {row.note}", flush=True)
    if device.type == "cuda" and args.arch == "sd15" and args.resolution == 256:
        best = max((r for r in rows if not math.isnan(r.samples_per_s) and r.peak_gib <= 22), default=None,
                   key=lambda r: r.samples_per_s)
        ok = best is not None and best.samples_per_s >= 80
        print(f"target (>= 80 samples/s, <= 22 GiB): {'met' if ok else 'NOT met'} by {best.levers if best else '-'}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return rows


if __name__ == "__main__":
    main()
