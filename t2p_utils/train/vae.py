"""The scratch models' shared VAE: trained once on the train sprites (and their recoloured copies), reused by every source."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from t2p_utils.config.params import Paths
from t2p_utils.config.train import TrainConfig
from t2p_utils.core.io import atomic_path, atomic_write_json
from t2p_utils.core.progress import phase
from t2p_utils.core.stamps import cache_key, file_stamp
from t2p_utils.train.data import Example, load_image, to_unit

log = logging.getLogger(__name__)


def _manifest_rows(paths: Paths, split: str) -> pd.DataFrame:
    if not paths.manifest.exists():
        return pd.DataFrame(columns=["id", "color", "lineart", "mask"])
    from t2p_utils.core.manifest import read_manifest

    df = read_manifest(paths.manifest)
    return df[df["split"] == split]


def _load_sprite(paths: Paths, row: Any, resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(colour RGB, mask bool, line art grey) of one manifest row at ``resolution``."""
    rgb = load_image(paths.root / row.color, resolution)
    line = load_image(paths.root / row.lineart, resolution)[..., 0]
    with Image.open(paths.root / row.mask) as im:
        mask = np.asarray(im.convert("L").resize((resolution, resolution), Image.Resampling.NEAREST)) > 127
    return rgb, mask, line


def vae_images(paths: Paths, examples: Sequence[Example], resolution: int, recolor_copies: int = 0,
               seed: int = 42) -> torch.Tensor:
    """Images the shared VAE learns from: colour + line art of the manifest's train split when
    there is one (the same for every caption source), plus ``recolor_copies`` palette swaps of
    each colour image (so that it decodes every basic colour, not only the sprites' own), else
    the source's own pairs. uint8 (N,3,H,W)."""
    from t2p_utils.captions.recolor import RecolorSettings, RecolorSkip
    from t2p_utils.captions.recolor import recolor_copies as swaps

    rows = _manifest_rows(paths, "train")
    if rows.empty:
        arr = np.stack([load_image(f, resolution) for e in examples for f in (e.input_image, e.edited_image)])
        return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
    images: list[np.ndarray] = []
    settings = RecolorSettings(copies=recolor_copies, seed=seed)
    for k, row in enumerate(rows.itertuples()):
        rgb, mask, line = _load_sprite(paths, row, resolution)
        images += [np.repeat(line[..., None], 3, axis=2), rgb]
        if recolor_copies:
            try:
                images += [r.image for r in swaps(rgb, mask, line, settings, key=k)]
            except RecolorSkip:
                pass
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def vae_check_set(paths: Paths, resolution: int, max_images: int = 96) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Colour images of the validation split in [-1, 1] and their character regions (mask minus outline)."""
    from t2p_utils.captions.recolor import region_of

    rows = _manifest_rows(paths, "val").head(max_images)
    if rows.empty:
        return None
    ims, regions = [], []
    for row in rows.itertuples():
        rgb, mask, line = _load_sprite(paths, row, resolution)
        ims.append(rgb)
        regions.append(region_of(rgb, mask, line))
    return to_unit(torch.from_numpy(np.stack(ims)).permute(0, 3, 1, 2)), torch.from_numpy(np.stack(regions))


def shared_vae(cfg: TrainConfig, paths: Paths, examples: Sequence[Example], force: bool = False) -> Any:
    """Load the profile's scratch VAE from ``paths.model("vae")``, training it first if needed (see
    :func:`ensure_shared_vae`, which also says whether it trained).

    With ``cfg.autoencoder == "space_to_depth"`` nothing is trained or saved: the exact fold,
    centred and scaled by the statistics of the train colour images, is built on the spot.
    """
    return ensure_shared_vae(cfg, paths, examples, force)[0]


def _vae_settings(cfg: TrainConfig) -> dict[str, Any]:
    """The settings the shared VAE is trained with (recorded in ``vae_summary.json`` as ``config``)."""
    return {"arch": cfg.arch, "resolution": cfg.resolution, "steps": cfg.vae.steps, "batch": cfg.vae.batch_size,
            "lr": cfg.vae.learning_rate, "kl": cfg.vae.kl_weight, "chroma": cfg.vae.chroma_weight, "seed": cfg.seed,
            "latent_channels": cfg.vae.latent_channels, "recolor_copies": cfg.vae.recolor_copies}


def _vae_key(cfg: TrainConfig, paths: Paths, examples: Sequence[Example]) -> str:
    """The shared VAE's key (:func:`t2p_utils.core.stamps.cache_key`): its settings, the images it learns from (what
    :func:`vae_images` reads: the train split's colour, line art and mask files, else the source's pairs) and the code
    that trains it (this module and everything it imports: the models, the recolouring, ...)."""
    rows = _manifest_rows(paths, "train")
    if rows.empty:
        files = [f for e in examples for f in (e.input_image, e.edited_image)]
    else:
        files = [paths.root / getattr(row, k) for row in rows.itertuples() for k in ("color", "lineart", "mask")]
    return cache_key(_vae_settings(cfg), [file_stamp(f) for f in files], code=[__name__])


def vae_problem(folder: Path) -> str | None:
    """Why the saved VAE in ``folder`` cannot be loaded (its config or weights missing, the weights truncated or
    corrupt: :func:`t2p_utils.train.checkpoints.file_problem`), or None."""
    from t2p_utils.train.checkpoints import file_problem

    if not (folder / "config.json").is_file():
        return f"{folder / 'config.json'} is missing"
    weights = sorted(folder.glob("diffusion_pytorch_model*.safetensors")) or sorted(folder.glob("*.bin"))
    if not weights:
        return f"{folder} holds no weights (diffusion_pytorch_model.safetensors)"
    for f in weights:
        why = file_problem(f)
        if why:
            return f"{f.name} does not open ({why})"
    return None


def ensure_shared_vae(cfg: TrainConfig, paths: Paths, examples: Sequence[Example],
                      force: bool = False) -> tuple[Any, bool]:
    """(the shared scratch VAE, whether it was trained now). It is trained again with ``force``, when it was trained
    with other settings, images or code (:func:`_vae_key`), and when its files do not load (truncated by a full disk,
    say), instead of failing."""
    from diffusers import AutoencoderKL

    from t2p_utils.train.models import space_to_depth_autoencoder, train_vae

    if cfg.autoencoder == "space_to_depth":
        return space_to_depth_autoencoder(to_unit(vae_images(paths, examples, cfg.resolution))), False

    out = paths.model("vae")
    key = _vae_key(cfg, paths, examples)
    summary_file = out / "vae_summary.json"
    if force:
        log.info("training the shared VAE in %s again (force)", out)
    elif summary_file.exists():
        try:
            summary = json.loads(summary_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            summary = {}
        broken = vae_problem(out)
        if summary.get("key") != key:
            log.info("the VAE in %s was trained with other settings, images or code; training it again", out)
        elif broken:
            log.warning("the VAE in %s is broken (%s); training it again", out, broken)
        else:
            log.info("using the shared VAE in %s (trained earlier)", out)
            return AutoencoderKL.from_pretrained(out), False
    phase(f"training the shared VAE ({cfg.vae.steps} steps)")
    images = vae_images(paths, examples, cfg.resolution, cfg.vae.recolor_copies, cfg.seed)
    vae, res = train_vae(to_unit(images), cfg.arch, cfg.vae.steps, cfg.vae.batch_size, cfg.vae.learning_rate,
                         cfg.vae.kl_weight, cfg.seed, chroma_weight=cfg.vae.chroma_weight,
                         latent_channels=cfg.vae.latent_channels, check=vae_check_set(paths, cfg.resolution))
    with atomic_path(out, folder=True) as tmp:
        vae.save_pretrained(tmp)
        atomic_write_json({"key": key, "config": _vae_settings(cfg), "n_images": int(images.shape[0]),
                           **dataclasses.asdict(res)}, tmp / "vae_summary.json")
    return vae, True
