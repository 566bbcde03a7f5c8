"""Latency of the demo's button: one image, 20 steps, per model, through ``t2p_utils.demo.app.colorize``.

    .venv/bin/python benchmarks/bench_demo.py --profile cpu            # target: <= 1 s per model, 64 px, 2 cores
    .venv/bin/python benchmarks/bench_demo.py --profile cpu --backend torch   # the UNet on PyTorch, for comparison
    .venv/bin/python benchmarks/bench_demo.py --profile cpu --runs 9 --threads 2
    .venv/bin/python benchmarks/bench_demo.py --profile cpu --drawing-size 1024   # the flat view of a 1024 px drawing

Models: the trained pipelines of ``models/<profile>/`` (loaded by ``t2p_utils.demo.app.load_models``,
as the app does); when there are none, the smoke models (``models/smoke/``); when there are none
either (or with ``--random-weights``), pipelines of the profile's architecture (``train.arch``,
``train.resolution``) with random weights, built in code -- the same arithmetic as trained ones,
so the same latency. The table says which was used.

Input: the first held-out test character of the profile (or a drawn ellipse), the seed's
instruction, ``compare.torch_threads`` torch threads (as the app), the UNet run by ``--backend``
(``auto`` as the app: onnxruntime where it can, see ``t2p_utils.inference.onnx_unet``), one warm-up call per model,
then the median of ``--runs`` timed calls. A call includes the flat view at the drawing's own size
(``t2p_utils.core.flat``; ``--drawing-size`` scales the input drawing first, to time it on a large upload). The load
average is printed with the figures: on a shared machine they are an upper bound.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from t2p_utils.config import Paths, load_study
from t2p_utils.config.compare import BACKENDS
from t2p_utils.demo import app as D
from t2p_utils.inference.onnx_unet import OnnxUNet

TARGET_S = 1.0


def random_weight_models(profile: str, backend: str = "auto") -> tuple[dict[str, D.LoadedModel], Path]:
    """Two pipelines of ``profile``'s scratch architecture with random weights, saved and loaded like trained ones."""
    from t2p_utils.inference.pipeline import make_pipeline
    from t2p_utils.train.loss import ddpm_scheduler
    from t2p_utils.train.models import build_text_encoder, build_unet, build_vae
    from t2p_utils.train.tokenizer import offline_clip_tokenizer

    cfg = load_study(profile).train
    extra = {"latent_channels": cfg.vae.latent_channels} if cfg.vae.latent_channels != 4 else {}
    tmp = Path(tempfile.mkdtemp(prefix="t2p-bench-demo-"))
    shutil.copytree(Paths.for_profile(profile).params_file.parent, tmp / "params")
    pipe = make_pipeline(build_vae(cfg.arch, cfg.resolution, **extra), build_text_encoder(cfg.arch),
                         offline_clip_tokenizer(), build_unet(cfg.arch, cfg.resolution, **extra), ddpm_scheduler())
    for name in ("ip2p_cnn_lstm", "ip2p_clip"):
        pipe.save_pretrained(Paths.for_profile(profile, tmp).model(name))
    return D.load_models(profile, tmp, "cpu", backend=backend), tmp


def pick_models(profile: str, random_weights: bool = False,
                backend: str = "auto") -> tuple[dict[str, D.LoadedModel], str, str]:
    """(models, profile whose settings apply, what they are)."""
    if random_weights:
        models, _ = random_weight_models(profile, backend)
        arch = load_study(profile).train.arch
        return models, profile, f"random weights, {profile} architecture ({arch}), built in code (--random-weights)"
    models = D.load_models(profile, device="cpu", backend=backend)
    if any(m.available for m in models.values()):
        return models, profile, f"trained models in models/{profile}/"
    if profile != "smoke":
        smoke = D.load_models("smoke", device="cpu", backend=backend)
        if any(m.available for m in smoke.values()):
            return smoke, "smoke", f"no models in models/{profile}/: the smoke models (models/smoke/), tiny architecture"
    models, _ = random_weight_models(profile, backend)
    arch = load_study(profile).train.arch
    return models, profile, f"no trained models: random weights, {profile} architecture ({arch}), built in code"


def lineart(profile: str, resolution: int) -> tuple[Image.Image | str, str]:
    gallery = D.held_out_gallery(profile)
    if gallery:
        return gallery[0][0], f"test character {gallery[0][1]}"
    im = Image.new("RGB", (resolution, resolution), "white")
    ImageDraw.Draw(im).ellipse((6, 6, resolution - 7, resolution - 7), outline=(0, 0, 0), width=2)
    return im, "a drawn ellipse"


def torch_difference(m: D.LoadedModel, call: Any, image: Image.Image) -> int | None:
    """For a model whose UNet onnxruntime runs: the largest 8-bit difference from the same call on its PyTorch UNet."""
    fast = m.pipe.unet
    if not isinstance(fast, OnnxUNet):
        return None
    engine = m.engine
    m.pipe.unet, m.engine = fast.torch_unet, None
    try:
        _, reference = call()
    finally:
        m.pipe.unet, m.engine = fast, engine
    return int(np.abs(np.asarray(image, dtype=int) - np.asarray(reference, dtype=int)).max())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: compare.torch_threads)")
    ap.add_argument("--protect", action="store_true", help="time the mask-protected variant")
    ap.add_argument("--backend", default="auto", choices=BACKENDS,
                    help="what runs the UNet: auto (as the app: onnxruntime where it can), onnx or torch")
    ap.add_argument("--drawing-size", type=int, default=None,
                    help="scale the input drawing to this many px (longest side) first: times the flat view of a large "
                         "upload (default: the drawing as it is)")
    ap.add_argument("--random-weights", action="store_true",
                    help="time pipelines of the profile's architecture with random weights even when trained ones exist")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    models, used_profile, what = pick_models(args.profile, args.random_weights, args.backend)
    load_s = time.perf_counter() - t0
    cfg = load_study(used_profile).compare
    threads = args.threads if args.threads is not None else cfg.torch_threads
    resolution = D.profile_resolution(used_profile)
    src, src_what = lineart(used_profile, resolution)
    if args.drawing_size:
        im = D.prepare_drawing(src, resolution, max_side=args.drawing_size).square
        src = im.resize((args.drawing_size, args.drawing_size), Image.Resampling.LANCZOS)
        src_what += f" scaled to {args.drawing_size} px"
    avail = [m for m in models.values() if m.available]
    print(f"models: {what}; loaded in {load_s:.1f} s")
    for m in models.values():
        if not m.available:
            print(f"  unavailable: {m.name}: {m.error}")
    print(f"input: {src_what}, models at {resolution} px, {args.steps} steps, torch threads {threads or torch.get_num_threads()} "
          "(1 for a model whose UNet onnxruntime runs), "
          f"protect={args.protect}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before")

    rows = []
    for m in avail:
        def call(m: D.LoadedModel = m) -> tuple[float, Image.Image]:
            start = time.perf_counter()
            out = D.colorize(src, D.SEED_INSTRUCTION, models={m.name: m}, steps=args.steps, seed=0, protect=args.protect,
                             resolution=resolution, outline_l=cfg.outline_l, threads=threads)[0]
            return time.perf_counter() - start, out.image

        _, image = call()  # warm-up
        times = [call()[0] for _ in range(args.runs)]
        rows.append((m.name, m.label, str(m.engine).split(" (")[0], statistics.median(times), min(times), max(times),
                     torch_difference(m, call, image)))
    start = time.perf_counter()
    D.colorize(src, D.SEED_INSTRUCTION, models=models, steps=args.steps, seed=0, protect=args.protect,
               resolution=resolution, outline_l=cfg.outline_l, threads=threads)
    all_s = time.perf_counter() - start

    print(f"\n| model | label | UNet run by | median s | min s | max s | <= {TARGET_S:g} s | max diff vs PyTorch /255 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, label, engine, med, lo, hi, diff in rows:
        print(f"| {name} | {label} | {engine} | {med:.3f} | {lo:.3f} | {hi:.3f} | {'yes' if med <= TARGET_S else 'NO'} "
              f"| {'-' if diff is None else diff} |")
    print(f"\nall {len(avail)} models for one click (one call): {all_s:.3f} s; "
          f"load average {os.getloadavg()[0]:.2f} after ({args.runs} timed runs per model)")


if __name__ == "__main__":
    main()
