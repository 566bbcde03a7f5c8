"""Fine-tune InstructPix2Pix on (line art, instruction, colour image) triples.

One entry point, two ways in:

- command line: ``accelerate launch -m t2p_utils.train --config params/cpu.yaml [--profile cpu]
  [--source cnn_lstm] [--resume_from_checkpoint latest] [--force]``;
- in process (notebook 04): ``train(cfg, paths, source) -> Path`` of the saved pipeline.

The recipe is the one of diffusers' ``examples/instruct_pix2pix/train_instruct_pix2pix.py``
(an epsilon-prediction loss on the edited image's latents, the input image's latents
concatenated to the noisy latents, conditioning dropout for classifier-free guidance, EMA,
mixed precision, gradient accumulation and checkpointing, the same random flip on input and
target, checkpoints with a total limit, resume, seeded validation, a saved pipeline and a
model card), written for this study:

- data: ``data/instructions/<p>/<source>/metadata.jsonl`` (``input_image``, ``edit_prompt``,
  ``edited_image``, image paths relative to that folder), loaded once into memory;
- model sources: ``pretrained`` (``timbrooks/instruct-pix2pix``, already 8 input channels; or a
  plain text-to-image SD whose ``conv_in`` is widened 4 -> 8 with zero weights) and
  ``scratch`` (SD-architecture models built from :mod:`t2p_utils.train.models`, one small
  VAE trained once and shared by every caption source, the offline CLIP tokenizer);
- caching (``cache_latents``): the VAE and the text encoder are frozen, so the posterior of
  each target (mean, std), the mode of each input, for both flip orientations, and each
  prompt's embedding are computed once; every step still *samples* the target latent and the
  noise, exactly as the recipe does;
- determinism: every random draw of optimiser step ``s`` (batch indices, flips, latent sample,
  noise, timesteps, dropout) comes from a ``torch.Generator`` seeded with ``(seed, s, micro)``,
  so a run resumed from a checkpoint repeats the uninterrupted run exactly.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from PIL import Image

from t2p_utils.config.params import RUNS_DIR, SECTIONS, Paths, resolve_device
from t2p_utils.config.study import load_study
from t2p_utils.config.train import TrainConfig
from t2p_utils.core.io import atomic_path, atomic_write_image, atomic_write_json, atomic_write_text
from t2p_utils.core.progress import phase, tqdm
from t2p_utils.core.stamps import cache_key
from t2p_utils.core.standins import SCRATCH_MODEL_CARD, SCRATCH_STAND_IN
from t2p_utils.core.threads import torch_threads
from t2p_utils.inference.pipeline import generate, make_pipeline
from t2p_utils.train.checkpoints import usable_checkpoint
from t2p_utils.train.data import (
    BatchOrder,
    Example,
    available_sources,
    caption_stand_in,
    data_fingerprint,
    load_pairs,
    read_metadata,
    run_dir_for,
    step_generator,
    to_unit,
)
from t2p_utils.train.loss import ddpm_scheduler, ip2p_loss
from t2p_utils.train.vae import ensure_shared_vae, shared_vae

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------ data


# ------------------------------------------------------------------------------ randomness


# ----------------------------------------------------------------------------- components
@dataclass
class Components:
    vae: Any
    text_encoder: Any
    tokenizer: Any
    unet: Any
    noise_scheduler: Any
    description: str  # for the model card









def build_components(cfg: TrainConfig, paths: Paths, examples: Sequence[Example], force_vae: bool = False) -> Components:
    """VAE, text encoder, tokenizer, 8-channel UNet and training noise scheduler for ``cfg``."""
    from t2p_utils.train.models import build_text_encoder, build_unet, widen_conv_in

    if cfg.model_source == "scratch":
        from t2p_utils.train.tokenizer import offline_clip_tokenizer

        vae = shared_vae(cfg, paths, examples, force=force_vae)
        text_encoder = build_text_encoder(cfg.arch, seed=cfg.seed)
        unet = build_unet(cfg.arch, cfg.resolution, seed=cfg.seed, latent_channels=vae.config.latent_channels,
                          text_time=cfg.text_time_embedding)
        ae = ("no VAE but an exact 4x4 pixel fold (diffusion on folded pixels: "
              "`t2p_utils.train.models.SpaceToDepthAutoencoder`)" if cfg.autoencoder == "space_to_depth" else
              f"a small VAE trained once on this profile's images (`{paths.model('vae').relative_to(paths.root)}`)")
        te = ("a small CLIP text transformer trained from scratch with the UNet" if cfg.train_text_encoder
              else "a frozen random-weight CLIP text transformer")
        desc = (f"trained from scratch: SD-architecture `{cfg.arch}` UNet (random init, seed {cfg.seed}), {ae}, {te} "
                f"and the real CLIP BPE tokenizer (built offline from open_clip's vocabulary). {SCRATCH_MODEL_CARD}")
        return Components(vae, text_encoder, offline_clip_tokenizer(), unet, ddpm_scheduler(cfg.prediction_type), desc)

    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    src, rev = cfg.pretrained_model, cfg.revision
    tokenizer = CLIPTokenizer.from_pretrained(src, subfolder="tokenizer", revision=rev)
    text_encoder = CLIPTextModel.from_pretrained(src, subfolder="text_encoder", revision=rev)
    vae = AutoencoderKL.from_pretrained(src, subfolder="vae", revision=rev)
    unet = UNet2DConditionModel.from_pretrained(src, subfolder="unet", revision=rev)
    noise_scheduler = DDPMScheduler.from_pretrained(src, subfolder="scheduler", revision=rev)
    widened = widen_conv_in(unet)
    desc = f"fine-tuned from `{src}`" + (" (conv_in widened from 4 to 8 channels, new channels zero)" if widened else "")
    return Components(vae, text_encoder, tokenizer, unet, noise_scheduler, desc)


def tokenize(tokenizer: Any, prompts: Sequence[str]) -> torch.Tensor:
    return tokenizer(list(prompts), max_length=tokenizer.model_max_length, padding="max_length", truncation=True,
                     return_tensors="pt").input_ids


@torch.no_grad()
def encode_prompts(tokenizer: Any, text_encoder: Any, prompts: Sequence[str], device: torch.device,
                   dtype: torch.dtype = torch.float32, batch_size: int = 64) -> torch.Tensor:
    out = []
    for i in range(0, len(prompts), batch_size):
        ids = tokenize(tokenizer, prompts[i : i + batch_size]).to(device)
        out.append(text_encoder(ids)[0].to(dtype))
    return torch.cat(out)


@torch.no_grad()
def encode_images(vae: Any, images_u8: torch.Tensor, device: torch.device, dtype: torch.dtype,
                  batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """VAE posterior (mean, std) of uint8 images, unscaled, in float32 on the CPU."""
    means, stds = [], []
    for i in range(0, images_u8.shape[0], batch_size):
        post = vae.encode(to_unit(images_u8[i : i + batch_size]).to(device, dtype)).latent_dist
        means.append(post.mean.float().cpu())
        stds.append(post.std.float().cpu())
    return torch.cat(means), torch.cat(stds)


@dataclass
class LatentCache:
    """Frozen-encoder outputs: [flip] -> (N,4,h,w) tensors, and one embedding per unique prompt."""

    target_mean: list[torch.Tensor]
    target_std: list[torch.Tensor]
    input_mode: list[torch.Tensor]
    prompt_emb: torch.Tensor  # (n_unique, L, D)
    prompt_index: torch.Tensor  # (N,) index into prompt_emb


def build_cache(comp: Components, inputs: torch.Tensor, targets: torch.Tensor, prompts: Sequence[str],
                device: torch.device, dtype: torch.dtype, flips: bool) -> LatentCache:
    tm, ts, im = [], [], []
    # recoloured copies share their line art: encode each distinct input once
    group: dict[bytes, int] = {}  # input bytes -> index into ``distinct``
    firsts: list[int] = []  # the first row of each distinct input
    where_list: list[int] = []
    for i in range(inputs.shape[0]):
        key = inputs[i].numpy().tobytes()
        if key not in group:
            group[key] = len(firsts)
            firsts.append(i)
        where_list.append(group[key])
    where = torch.tensor(where_list)
    distinct = inputs[firsts]
    for flip in ([False, True] if flips else [False]):
        x_in = distinct.flip(-1) if flip else distinct
        x_out = targets.flip(-1) if flip else targets
        m, s = encode_images(comp.vae, x_out, device, dtype)
        tm.append(m)
        ts.append(s)
        im.append(encode_images(comp.vae, x_in, device, dtype)[0][where])  # the mode of a Gaussian is its mean
    unique = sorted(set(prompts))
    emb = encode_prompts(comp.tokenizer, comp.text_encoder, unique, device, dtype).float().cpu()
    lookup = {p: i for i, p in enumerate(unique)}
    return LatentCache(tm, ts, im, emb, torch.tensor([lookup[p] for p in prompts], dtype=torch.long))


# ------------------------------------------------------------------------------ utilities
def _checkpoints(run_dir: Path) -> list[Path]:
    dirs = [d for d in run_dir.glob("checkpoint-*") if d.is_dir() and d.name.split("-")[-1].isdigit()]
    return sorted(dirs, key=lambda d: int(d.name.split("-")[-1]))


def _image_grid(rows: Sequence[Sequence[Image.Image]], pad: int = 2) -> Image.Image:
    w, h = rows[0][0].size
    ncol = max(len(r) for r in rows)
    grid = Image.new("RGB", (ncol * (w + pad) + pad, len(rows) * (h + pad) + pad), (128, 128, 128))
    for i, r in enumerate(rows):
        for j, im in enumerate(r):
            grid.paste(im.convert("RGB").resize((w, h)), (pad + j * (w + pad), pad + i * (h + pad)))
    return grid


# ------------------------------------------------------------------------------ training
@dataclass
class TrainResult:
    model_dir: Path
    log: pd.DataFrame
    skipped: bool


def train(
    cfg: TrainConfig,
    paths: Paths,
    source: str,
    resume_from_checkpoint: str | None = None,
    force: bool = False,
    stop_after: int | None = None,
    force_vae: bool = False,
) -> Path:
    """Train one IP2P model (see :func:`_train`), on ``cfg.cpu_threads`` threads when on CPU. ``force_vae`` trains
    the shared scratch VAE again too (:func:`train_all` does that once, before the models)."""
    with torch_threads(0 if torch.cuda.is_available() else cfg.cpu_threads):
        return _train(cfg, paths, source, resume_from_checkpoint, force, stop_after, force_vae)


def _train(
    cfg: TrainConfig,
    paths: Paths,
    source: str,
    resume_from_checkpoint: str | None = None,
    force: bool = False,
    stop_after: int | None = None,
    force_vae: bool = False,
) -> Path:
    """Train one IP2P model on ``data/instructions/<p>/<source>`` and save it to ``paths.model(f"ip2p_{source}")``.

    Skips the work when that folder already holds a model trained with the same settings on the
    same data by the same code (unless ``force``). ``resume_from_checkpoint``: ``"latest"`` or a checkpoint folder
    name/path in ``paths.models/runs/ip2p_<source>``. ``stop_after`` ends the run after that many
    optimiser steps without saving a pipeline (used to test resuming). Returns the model folder.
    """
    examples = read_metadata(paths.instructions(source))
    # settings, data and the code that trains (this module and everything it imports): t2p_utils.core.stamps
    fp = {"config": cfg.fingerprint(), "data": data_fingerprint(examples), "source": source,
          "code": cache_key(code=[__name__])}
    model_dir = paths.model(f"ip2p_{source}")
    done = model_dir / "train_summary.json"
    if not force and done.exists() and json.loads(done.read_text(encoding="utf-8")).get("fingerprint") == fp:
        log.info("%s is up to date (same settings, data and code); skipping (force=True retrains)", model_dir)
        return model_dir

    run = _setup(cfg, paths, source, examples, fp, force_vae)            # setup
    global_step, log_rows = _resume(run, resume_from_checkpoint)         # resume
    if global_step == 0:
        _validate(run, 0)
    last_step = cfg.max_train_steps if stop_after is None else min(cfg.max_train_steps, stop_after)
    pbar = tqdm(total=last_step, initial=global_step, desc=f"train {source}", mininterval=2.0,  # resumed: from there
                disable=not run.accelerator.is_local_main_process)
    t_start = time.perf_counter()
    while global_step < last_step:                                       # the loop
        t0 = time.perf_counter()
        loss = _train_step(run, global_step)
        global_step += 1
        dt = time.perf_counter() - t0
        log_rows.append({"step": global_step, "loss": loss, "lr": run.lr_scheduler.get_last_lr()[0],
                         "step_seconds": dt, "it_per_s": 1.0 / dt, "samples_per_s": run.samples_per_step / dt,
                         "elapsed_s": time.perf_counter() - t_start})
        pbar.update(1)
        pbar.set_postfix(loss=f"{loss:.4f}")
        if global_step % cfg.log_every == 0:
            _write_log(run, log_rows, run.run_dir / "train_log.csv")
        if global_step % cfg.checkpointing_steps == 0:
            _save_checkpoint(run, global_step, log_rows)
        if global_step % cfg.validation_steps == 0 or global_step == cfg.max_train_steps:
            _validate(run, global_step)
    pbar.close()
    _write_log(run, log_rows, run.run_dir / "train_log.csv")
    run.accelerator.wait_for_everyone()
    if global_step < cfg.max_train_steps:
        log.info("stopped after step %d of %d (stop_after); no pipeline saved", global_step, cfg.max_train_steps)
    elif run.accelerator.is_main_process:
        _save(run, global_step, log_rows, model_dir)                     # save
    run.accelerator.end_training()
    return model_dir


@dataclass
class _Run:
    """What one training run holds between its phases (:func:`_train`)."""

    cfg: TrainConfig
    paths: Paths
    source: str
    examples: list[Example]
    fp: dict[str, Any]
    run_dir: Path
    accelerator: Any
    comp: Components
    unet: Any
    text_encoder: Any
    optimizer: Any
    lr_scheduler: Any
    ema: Any
    mixed: str
    weight_dtype: torch.dtype
    inputs_u8: torch.Tensor
    targets_u8: torch.Tensor
    prompts: list[str]
    null_emb: torch.Tensor
    prompt_ids: torch.Tensor | None  # a trained text encoder runs every step: its token ids are what gets cached
    prompt_row: torch.Tensor | None
    null_ids: torch.Tensor | None
    cache: LatentCache | None
    order: BatchOrder
    val: tuple[list[Image.Image], list[Image.Image], list[str]]  # validation inputs, targets, prompts

    @property
    def train_te(self) -> bool:
        return self.cfg.train_text_encoder

    @property
    def global_batch(self) -> int:
        return self.cfg.train_batch_size * self.accelerator.num_processes

    @property
    def samples_per_step(self) -> int:
        return self.global_batch * self.cfg.gradient_accumulation_steps

    def trained_params(self) -> list[torch.nn.Parameter]:
        mods = [self.accelerator.unwrap_model(self.unet)]
        if self.train_te:
            mods.append(self.accelerator.unwrap_model(self.text_encoder))
        return [p for m in mods for p in m.parameters()]


def _setup(cfg: TrainConfig, paths: Paths, source: str, examples: list[Example], fp: dict[str, Any],
           force_vae: bool = False) -> _Run:
    """Images in memory, the accelerator, the models, EMA, optimiser and schedule, cached encoder outputs."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    phase(f"{source}: loading {len(examples)} training pairs")
    inputs_u8, targets_u8 = load_pairs(examples, cfg.resolution)  # fails early, naming a bad image file
    device = resolve_device()
    mixed = cfg.mixed_precision if device == "cuda" else "no"
    if mixed != cfg.mixed_precision:
        log.info("no CUDA: training in fp32 instead of %s", cfg.mixed_precision)
    accelerator = Accelerator(mixed_precision=mixed, gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                              cpu=device == "cpu")
    if cfg.allow_tf32 and device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    set_seed(cfg.seed)

    comp = build_components(cfg, paths, examples, force_vae=force_vae)
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed, torch.float32)
    train_te = cfg.train_text_encoder
    comp.vae.requires_grad_(False).eval()
    comp.vae.to(accelerator.device, dtype=weight_dtype)
    text_encoder = comp.text_encoder
    if train_te:
        text_encoder.requires_grad_(True).train()
        text_encoder.to(accelerator.device)
    else:
        text_encoder.requires_grad_(False).eval()
        text_encoder.to(accelerator.device, dtype=weight_dtype)
    unet = comp.unet
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()

    ema = None
    if cfg.use_ema:
        from diffusers import UNet2DConditionModel

        ema = (EMAModel(list(unet.parameters()) + list(text_encoder.parameters()), decay=cfg.ema_decay) if train_te else
               EMAModel(unet.parameters(), decay=cfg.ema_decay, model_cls=UNet2DConditionModel, model_config=unet.config))

    groups = [{"params": list(unet.parameters()), "lr": cfg.learning_rate}]
    if train_te:
        groups.append({"params": list(text_encoder.parameters()),
                       "lr": cfg.text_encoder_learning_rate or cfg.learning_rate})
    optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                  weight_decay=cfg.adam_weight_decay, eps=cfg.adam_epsilon)
    lr_scheduler = get_scheduler(cfg.lr_scheduler, optimizer=optimizer,
                                 num_warmup_steps=cfg.lr_warmup_steps * accelerator.num_processes,
                                 num_training_steps=cfg.max_train_steps * accelerator.num_processes)
    if train_te:
        unet, text_encoder, optimizer, lr_scheduler = accelerator.prepare(unet, text_encoder, optimizer, lr_scheduler)
    else:
        unet, optimizer, lr_scheduler = accelerator.prepare(unet, optimizer, lr_scheduler)
    if ema is not None:
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)

    prompts = [e.edit_prompt for e in examples]
    null_emb = encode_prompts(comp.tokenizer, comp.text_encoder, [""], accelerator.device, weight_dtype)
    unique_prompts = sorted(set(prompts))
    row_of = {p: i for i, p in enumerate(unique_prompts)}
    cache = None
    if cfg.cache_latents:
        phase(f"{source}: caching latents of {len(examples)} pairs")
        t0 = time.perf_counter()
        cache = build_cache(comp, inputs_u8, targets_u8, prompts, accelerator.device, weight_dtype, cfg.random_flip)
        log.info("cached latents of %d pairs and %d prompts in %.1f s", len(examples), cache.prompt_emb.shape[0],
                 time.perf_counter() - t0)
    return _Run(cfg, paths, source, examples, fp, run_dir_for(paths, source), accelerator, comp, unet, text_encoder,
                optimizer, lr_scheduler, ema, mixed, weight_dtype, inputs_u8, targets_u8, prompts, null_emb,
                tokenize(comp.tokenizer, unique_prompts) if train_te else None,
                torch.tensor([row_of[p] for p in prompts], dtype=torch.long) if train_te else None,
                tokenize(comp.tokenizer, [""]) if train_te else None,
                cache, BatchOrder(len(examples), cfg.seed), _validation_set(cfg, source, examples, inputs_u8, targets_u8))


def _validation_set(cfg: TrainConfig, source: str, examples: list[Example], inputs_u8: torch.Tensor,
                    targets_u8: torch.Tensor) -> tuple[list[Image.Image], list[Image.Image], list[str]]:
    """The first few training pairs (a check that the model learns them), preferring pairs captioned by this
    source itself when the metadata says who wrote each prompt."""
    n = len(examples)
    own = [i for i, e in enumerate(examples)
           if e.caption_source and (e.caption_source == source or (source != "reference" and e.caption_source != "reference"))]
    idx = (own + [i for i in range(n) if i not in set(own)])[: min(cfg.num_validation_images, n)]
    return ([Image.fromarray(inputs_u8[i].permute(1, 2, 0).numpy()) for i in idx],
            [Image.fromarray(targets_u8[i].permute(1, 2, 0).numpy()) for i in idx],
            [examples[i].edit_prompt for i in idx])


def _resume(run: _Run, resume_from_checkpoint: str | None) -> tuple[int, list[dict[str, Any]]]:
    """(the step to start from, the log so far): a fresh run clears the run folder; ``"latest"`` or a named
    checkpoint restores the accelerator state, unless the checkpoints come from other settings or data, or are those of
    a model that finished under other code. An interrupted run resumes across a code edit (the checkpoints key on
    settings and data; the runner forces a finished 04 whose code changed: ``CODE_FORCES``)."""
    acc, run_dir = run.accelerator, run.run_dir
    global_step, log_rows = 0, []
    ckpt: Path | None = None
    if resume_from_checkpoint == "latest":
        found = _checkpoints(run_dir) if run_dir.exists() else []
        ckpt = usable_checkpoint(found, move_aside=acc.is_main_process)  # a broken one: the one before, or afresh
    elif resume_from_checkpoint is not None:
        ckpt = Path(resume_from_checkpoint)
        if not ckpt.is_absolute():
            ckpt = run_dir / ckpt.name
        if not ckpt.exists():
            raise FileNotFoundError(f"checkpoint {ckpt} does not exist; use 'latest' or one of {[d.name for d in _checkpoints(run_dir)]}")
    info_file = run_dir / "run_info.json"
    made_by = json.loads(info_file.read_text())["fingerprint"] if ckpt is not None and info_file.exists() else run.fp
    if _without_code(made_by) != _without_code(run.fp):
        log.warning("checkpoints in %s come from other settings or data; starting a new run", run_dir)
        ckpt = None
    elif made_by != run.fp and made_by == _saved_fingerprint(run.paths.model(f"ip2p_{run.source}")):
        # the checkpoints of a model that finished under other code: resuming would save its weights again
        log.info("checkpoints in %s are those of the model trained by other code; starting a new run", run_dir)
        ckpt = None
    elif made_by != run.fp:  # an interrupted run, the code edited since: it goes on (an hour of training kept)
        log.warning("resuming %s, made by other code (t2p_utils.train.loop or a module it imports changed): the run "
                    "goes on under this code (force=True starts afresh)", ckpt)
    if ckpt is None:
        if resume_from_checkpoint is not None:
            log.info("no checkpoint to resume from in %s; starting a new run", run_dir)
        if acc.is_main_process:
            shutil.rmtree(run_dir, ignore_errors=True)
    else:
        acc.load_state(str(ckpt))
        global_step = int(ckpt.name.split("-")[-1])
        if (ckpt / "train_log.csv").exists():
            log_rows = pd.read_csv(ckpt / "train_log.csv").to_dict("records")
        log.info("resumed from %s at step %d", ckpt, global_step)
        phase(f"resuming {run.source} from {ckpt.name} of {run.cfg.max_train_steps}")
    run_dir.mkdir(parents=True, exist_ok=True)
    if acc.is_main_process:
        atomic_write_json({"fingerprint": run.fp}, info_file)
    return global_step, log_rows


def _without_code(fp: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fp.items() if k != "code"}


def _saved_fingerprint(model_dir: Path) -> dict[str, Any] | None:
    """The fingerprint of the model saved in ``model_dir`` (its ``train_summary.json``), None when there is none."""
    try:
        return json.loads((model_dir / "train_summary.json").read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def _micro_batch(run: _Run, idx: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(target latents, input-image latents, prompt embeddings or None) of one micro-batch: from the cache, or by
    encoding the images (the same random draws either way: flips, then the posterior sample)."""
    cfg, device, dtype = run.cfg, run.accelerator.device, run.weight_dtype
    bsz = len(idx)
    flip = (torch.rand(bsz, generator=g) < 0.5) if cfg.random_flip else torch.zeros(bsz, dtype=torch.bool)
    if run.cache is not None:
        c, f = run.cache, flip.long()
        mean = torch.stack([c.target_mean[int(fi)][i] for fi, i in zip(f, idx)])
        std = torch.stack([c.target_std[int(fi)][i] for fi, i in zip(f, idx)])
        image_latents = torch.stack([c.input_mode[int(fi)][i] for fi, i in zip(f, idx)])
        text_emb = None if run.train_te else c.prompt_emb[c.prompt_index[idx]].to(device)
        latents = mean + std * torch.randn(mean.shape, generator=g)
        return latents.to(device), image_latents.to(device), text_emb
    x_in, x_out = to_unit(run.inputs_u8[idx]), to_unit(run.targets_u8[idx])
    fl = flip.reshape(-1, 1, 1, 1)
    x_in, x_out = torch.where(fl, x_in.flip(-1), x_in), torch.where(fl, x_out.flip(-1), x_out)
    vae = run.comp.vae
    with torch.no_grad():
        post = vae.encode(x_out.to(device, dtype)).latent_dist
        eps_z = torch.randn(post.mean.shape, generator=g).to(device, post.mean.dtype)
        latents = post.mean + post.std * eps_z
        image_latents = vae.encode(x_in.to(device, dtype)).latent_dist.mode()
        text_emb = None if run.train_te else run.text_encoder(
            tokenize(run.comp.tokenizer, [run.prompts[int(i)] for i in idx]).to(device))[0]
    return latents, image_latents, text_emb


def _train_step(run: _Run, global_step: int) -> float:
    """One optimiser step (``gradient_accumulation_steps`` micro-batches); returns its mean loss."""
    cfg, acc = run.cfg, run.accelerator
    accum, rank = cfg.gradient_accumulation_steps, acc.process_index
    step_loss = 0.0
    for micro in range(accum):
        g = step_generator(cfg.seed, global_step, micro)
        start = (global_step * accum + micro) * run.global_batch
        idx = run.order.indices(start, run.global_batch)[rank * cfg.train_batch_size : (rank + 1) * cfg.train_batch_size]
        latents, image_latents, text_emb = _micro_batch(run, idx, g)
        latents = latents.float() * run.comp.vae.config.scaling_factor
        with acc.accumulate(run.unet):
            null = run.null_emb
            if run.train_te:  # the prompts and the empty prompt (conditioning dropout) through the trained encoder
                ids = torch.cat([run.prompt_ids[run.prompt_row[idx]], run.null_ids]).to(acc.device)
                both = run.text_encoder(ids)[0]
                text_emb, null = both[:-1], both[-1:]
            loss = ip2p_loss(run.unet, run.comp.noise_scheduler, latents, image_latents, text_emb, null,
                             cfg.conditioning_dropout_prob, g, run.weight_dtype, cfg.snr_gamma)
            step_loss += acc.gather(loss.detach().repeat(len(idx))).mean().item() / accum
            acc.backward(loss)
            if acc.sync_gradients:
                acc.clip_grad_norm_(run.trained_params(), cfg.max_grad_norm)
            run.optimizer.step()
            run.lr_scheduler.step()
            run.optimizer.zero_grad(set_to_none=True)
    if run.ema is not None:
        run.ema.step(run.trained_params())
    return step_loss


def _validate(run: _Run, step: int) -> None:
    """Generate the validation pairs (EMA weights when used) and save input | output | target as one grid."""
    images, targets, prompts = run.val
    if not run.accelerator.is_main_process or not images:
        return
    cfg, ema = run.cfg, run.ema
    model, te = run.accelerator.unwrap_model(run.unet), run.accelerator.unwrap_model(run.text_encoder)
    if ema is not None:
        ema.store(run.trained_params())
        ema.copy_to(run.trained_params())
    model.eval()
    te.eval()
    pipe = make_pipeline(run.comp.vae, te, run.comp.tokenizer, model, run.comp.noise_scheduler, cfg.sampler)
    with torch.autocast(run.accelerator.device.type, enabled=run.mixed != "no", dtype=run.weight_dtype):
        outs = generate(pipe, images, prompts, steps=cfg.validation_inference_steps,
                        text_guidance=cfg.text_guidance, image_guidance=cfg.image_guidance, seed=cfg.seed)
    model.train()
    te.train(run.train_te)
    if ema is not None:
        ema.restore(run.trained_params())
    out = run.run_dir / "validation" / f"step-{step:06d}"
    atomic_write_image(_image_grid([[a, b, c] for a, b, c in zip(images, outs, targets)]), out.with_suffix(".png"))
    atomic_write_json({"columns": ["input", "output", "target"], "prompts": prompts, "step": step,
                       "inference_steps": cfg.validation_inference_steps, "seed": cfg.seed}, out.with_suffix(".json"))


def _write_log(run: _Run, log_rows: list[dict[str, Any]], path: Path) -> None:
    if run.accelerator.is_main_process:
        atomic_write_text(pd.DataFrame(log_rows).to_csv(index=False), path)


def _save_checkpoint(run: _Run, step: int, log_rows: list[dict[str, Any]]) -> None:
    """``checkpoint-<step>`` (accelerator state and the log so far), the oldest removed beyond the total limit."""
    limit = run.cfg.checkpoints_total_limit
    if run.accelerator.is_main_process and limit is not None:
        existing = _checkpoints(run.run_dir)
        for old in existing[: max(0, len(existing) - limit + 1)]:
            log.info("removing old checkpoint %s (checkpoints_total_limit=%d)", old.name, limit)
            shutil.rmtree(old)
    target = run.run_dir / f"checkpoint-{step}"
    run.accelerator.save_state(str(target))
    _write_log(run, log_rows, target / "train_log.csv")
    log.info("saved %s", target)


def _save(run: _Run, global_step: int, log_rows: list[dict[str, Any]], model_dir: Path) -> None:
    """The trained pipeline (EMA weights when used, fp32), its log, validation grids, summary and model card."""
    from t2p_utils.train.report import model_card

    cfg, acc, comp = run.cfg, run.accelerator, run.comp
    model, te = acc.unwrap_model(run.unet), acc.unwrap_model(run.text_encoder)
    if run.ema is not None:
        run.ema.copy_to(run.trained_params())
    if cfg.gradient_checkpointing:
        model.disable_gradient_checkpointing()
    te.eval()
    pipe = make_pipeline(comp.vae.to(torch.float32), te.to(torch.float32), comp.tokenizer,
                         model.to(torch.float32), comp.noise_scheduler, cfg.sampler)
    df = pd.DataFrame(log_rows)
    tenth = max(1, len(df) // 10)
    summary = {
        "fingerprint": run.fp, "source": run.source, "profile": run.paths.profile, "n_pairs": len(run.examples),
        "caption_stand_in": caption_stand_in(run.paths, run.source), "model": comp.description,
        "stand_in": SCRATCH_STAND_IN if cfg.model_source == "scratch" else None,
        "steps": global_step, "final_loss_mean_last_10pct": float(df["loss"].tail(tenth).mean()),
        "first_loss_mean_first_10pct": float(df["loss"].head(tenth).mean()),
        "median_it_per_s": float(df["it_per_s"].median()), "median_samples_per_s": float(df["samples_per_s"].median()),
        "train_seconds": float(df["step_seconds"].sum()), "device": str(acc.device), "mixed_precision": run.mixed,
        "config": dataclasses.asdict(cfg),
    }
    with atomic_path(model_dir, folder=True) as tmp:
        pipe.save_pretrained(tmp)
        atomic_write_text(df.to_csv(index=False), tmp / "train_log.csv")
        if (run.run_dir / "validation").exists():
            shutil.copytree(run.run_dir / "validation", tmp / "validation")
        atomic_write_text(model_card(cfg, run.paths, run.source, summary), tmp / "README.md")
        atomic_write_json(summary, tmp / "train_summary.json")
    log.info("saved the pipeline to %s", model_dir)


def train_all(paths: Paths, cfg: TrainConfig, force: bool = False) -> dict[str, Path]:
    """Train one model per caption source in ``cfg.sources`` that has an instruction folder.

    Up-to-date models are skipped; an interrupted run resumes from its latest checkpoint
    (when that checkpoint has the same settings and data); ``force`` starts afresh, the shared scratch VAE
    included (everything the step makes). A shared VAE trained again (forced, other settings, or its files broken)
    retrains the models too: their checkpoints hold latents of the old one.
    """
    sources = available_sources(paths, cfg.sources)
    if not sources:
        raise FileNotFoundError(f"no instruction folder for any of {cfg.sources} under {paths.instructions('x').parent}: "
                                "run the captioning notebooks 02 and 03 first")
    if cfg.model_source == "scratch":  # the shared VAE first, once (the workers load it instead of racing to train it)
        with torch_threads(0 if torch.cuda.is_available() else cfg.cpu_threads):
            _, vae_trained = ensure_shared_vae(cfg, paths, read_metadata(paths.instructions(sources[0])), force=force)
        if vae_trained and not force and any(paths.model(f"ip2p_{s}").exists() or run_dir_for(paths, s).exists()
                                             for s in sources):
            log.info("the shared VAE was trained again: retraining the models on it (afresh)")
            force = True
    resume = None if force else "latest"
    workers = min(cfg.parallel_sources, len(sources))
    if workers <= 1 or torch.cuda.is_available():
        return {s: train(cfg, paths, s, resume_from_checkpoint=resume, force=force) for s in sources}
    cores = cfg.cpu_threads or torch.get_num_threads()
    each = dataclasses.replace(cfg, cpu_threads=max(1, cores // workers))
    phase(f"training {', '.join(sources)} in {workers} processes, {each.cpu_threads} thread(s) each")
    with worker_pool(workers) as pool:
        futures = {s: pool.submit(_train_in_worker, each, paths, s, resume, force) for s in sources}
        done = {s: f.result() for s, f in futures.items()}
    log.info("trained %s; each worker's console output: %s", ", ".join(done),
             ", ".join(str(worker_log(paths, s)) for s in done))
    return done


def worker_pool(workers: int) -> Any:
    """The ``ProcessPoolExecutor`` of :func:`train_all`: ``spawn`` workers that die with the process that started
    them (:func:`_die_with_parent`), so a killed run (``kill -9`` of ./run_all.sh, whose kernel then exits) leaves no
    worker training on, writing ``models/<p>/`` under the next run."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_die_with_parent, initargs=(os.getpid(),))


#: how often a worker's watchdog looks whether its parent still lives
PARENT_POLL_S = 0.5


def _die_with_parent(parent: int) -> None:
    """A worker's initializer: end this process when ``parent`` (the process that started it) ends.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, the kernel kills it the moment the parent's thread that started it
    exits (the pool starts its workers from the caller's thread, which waits in :func:`train_all` until they are
    done). Everywhere, and in case the parent died before the prctl: a daemon thread that exits the process once its
    parent pid is no longer ``parent`` (orphans are re-parented to init or a subreaper)."""
    import signal
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):  # no libc symbol: the watchdog still runs
            pass
    if os.getppid() != parent:  # already orphaned
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="t2p-parent-watch", daemon=True).start()


def worker_log(paths: Paths, source: str) -> Path:
    return paths.models / RUNS_DIR / f"ip2p_{source}.worker.log"  # beside the run folder, which a fresh run clears


def _train_in_worker(cfg: TrainConfig, paths: Paths, source: str, resume: str | None, force: bool) -> Path:
    """:func:`train` in a worker process of :func:`train_all`, its console output (logs, raw bars) in
    ``runs/ip2p_<source>.worker.log``: two workers writing bars to one terminal interleave them. The
    progress file (``T2P_PROGRESS_FILE``) still reports both to ``./run_all.sh``."""
    import contextlib

    out = worker_log(paths, source)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh, contextlib.redirect_stderr(fh), contextlib.redirect_stdout(fh):
        logging.basicConfig(level=logging.INFO, stream=fh, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                            force=True)
        return train(cfg, paths, source, resume_from_checkpoint=resume, force=force)


# -------------------------------------------------------------------------- command line
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m t2p_utils.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, help="params/<profile>.yaml (its train: section)")
    p.add_argument("--profile", help="smoke | cpu | full (default: the config file's profile)")
    p.add_argument("--source", action="append", help="caption source(s) to train (default: the config's sources found on disk)")
    p.add_argument("--resume_from_checkpoint", default=None, help='"latest" or a checkpoint-<step> folder')
    p.add_argument("--force", action="store_true", help="retrain even when an up-to-date model exists")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a train: key (YAML value), e.g. --set max_train_steps=10, or any section.key=value")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[Path]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    if args.config is None and args.profile is None:
        raise SystemExit("give --config params/<profile>.yaml or --profile <profile>")
    spec = args.config or args.profile  # a built-in profile name or a params file (a user profile's too)
    # --set max_train_steps=10 is train.max_train_steps=10; any section.key=value works too
    sets = [item if item.split("=", 1)[0].split(".")[0] in SECTIONS else f"train.{item}" for item in args.set]
    cfg = load_study(spec, overrides=sets).train
    paths = Paths.for_profile(spec)
    sources = args.source or available_sources(paths, cfg.sources)
    if not sources:
        raise SystemExit(f"no caption source to train: none of {cfg.sources} has {paths.instructions('<source>')}/metadata.jsonl")
    # --force retrains the shared scratch VAE too, once (with the first source)
    return [train(cfg, paths, s, resume_from_checkpoint=args.resume_from_checkpoint, force=args.force,
                  force_vae=args.force and i == 0) for i, s in enumerate(sources)]


if __name__ == "__main__":
    main(sys.argv[1:])
