"""04_finetune's data: the instruction folders (``metadata.jsonl``), their images, and the seeded batch order."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from t2p_utils.config.params import RUNS_DIR, Paths
from t2p_utils.config.study import load_study
from t2p_utils.core.io import rgb_on_white
from t2p_utils.core.stamps import cache_key, file_stamp
from t2p_utils.core.standins import PALETTE_CAPTIONS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    input_image: Path
    edit_prompt: str
    edited_image: Path
    caption_source: str = ""  # optional metadata field: which captioner wrote this prompt


METADATA_FIELDS = ("input_image", "edit_prompt", "edited_image")  # read as "<name>_file_name" (imagefolder) or "<name>"


def read_metadata(folder: Path) -> list[Example]:
    """Read ``folder/metadata.jsonl`` (diffusers' instruct_pix2pix format); paths resolved against ``folder``."""
    folder = Path(folder)
    path = folder / "metadata.jsonl"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: run the captioning notebooks (02_cnn_lstm_captioning / 03_clip_captioning) "
            "for this profile first; they write the instruction folders"
        )
    out: list[Example] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} line {n} is not valid JSON ({exc}); re-run the captioning step") from exc
        row = {k: row.get(f"{k}_file_name", row.get(k)) for k in METADATA_FIELDS} | {
            "caption_source": row.get("caption_source")}
        missing = [k for k in METADATA_FIELDS if not str(row.get(k) or "").strip()]
        if missing:
            raise ValueError(f"{path} line {n} lacks {missing}; each line needs {list(METADATA_FIELDS)} "
                             "(image paths as <name>_file_name)")
        out.append(Example(folder / row["input_image"], str(row["edit_prompt"]), folder / row["edited_image"],
                           str(row.get("caption_source") or "")))
    if not out:
        raise ValueError(f"{path} holds no examples; re-run the captioning step that writes it")
    return out


def load_image(path: Path, resolution: int) -> np.ndarray:
    """An RGB uint8 array (resolution, resolution, 3); transparent pixels become white."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"training image {path} is missing: re-run the step that wrote it (01_scrape or the captioning notebook)")
    try:
        with Image.open(path) as im:
            im = rgb_on_white(im)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"training image {path} cannot be read ({exc}); delete it and re-run the step that wrote it") from exc
    if im.size != (resolution, resolution):
        im = im.resize((resolution, resolution), Image.Resampling.BICUBIC)
    return np.asarray(im, dtype=np.uint8)


def load_pairs(examples: Sequence[Example], resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) as uint8 tensors (N, 3, H, W)."""
    ins = np.stack([load_image(e.input_image, resolution) for e in examples])
    outs = np.stack([load_image(e.edited_image, resolution) for e in examples])
    return torch.from_numpy(ins).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(outs).permute(0, 3, 1, 2).contiguous()


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] (the recipe's ``2 * (x / 255) - 1``)."""
    return x.float().div(127.5).sub(1.0)


def caption_stand_in(paths: Paths, source: str) -> str | None:
    """What a caption source stands in for, when it is an offline stand-in (named in every output)."""
    folder = paths.instructions(source)
    for name in ("provenance.json", "info.json", "captions.json"):
        f = folder / name
        if f.exists():
            try:
                value = json.loads(f.read_text(encoding="utf-8")).get("stand_in")
            except (json.JSONDecodeError, AttributeError):
                value = None
            if value:
                return str(value)
    if source == "clip" and load_study(paths.spec, paths.root, check=False).captions.clip_backend == "palette":
        return PALETTE_CAPTIONS
    return None


def step_generator(seed: int, step: int, micro: int = 0) -> torch.Generator:
    """The generator of one micro-batch: a pure function of (seed, optimiser step, micro-step)."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step) * 1_009 + int(micro) + 17)


class BatchOrder:
    """Sample indices as a function of position only: epoch ``e`` is a permutation seeded by (seed, e)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            self._perms = {epoch: torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))}
        return self._perms[epoch]

    def indices(self, start: int, count: int) -> torch.Tensor:
        out = []
        for pos in range(start, start + count):
            epoch, r = divmod(pos, self.n)
            out.append(int(self._perm(epoch)[r]))
        return torch.tensor(out, dtype=torch.long)


def data_fingerprint(examples: Sequence[Example]) -> str:
    """The key of the training pairs (:func:`t2p_utils.core.stamps.cache_key` of their inputs): each pair's file
    names, prompt and the content of its two images, so re-rendered images with the same names count as new data."""
    return cache_key(inputs=[[e.input_image.name, e.edit_prompt, e.edited_image.name, file_stamp(e.input_image),
                              file_stamp(e.edited_image)] for e in examples])


def run_dir_for(paths: Paths, source: str) -> Path:
    return paths.models / RUNS_DIR / f"ip2p_{source}"


def available_sources(paths: Paths, wanted: Sequence[str] | None = None) -> list[str]:
    """Caption sources with an instruction folder on disk (in ``wanted`` order when given)."""
    root = paths.instructions("x").parent
    found = sorted(d.name for d in root.iterdir() if (d / "metadata.jsonl").exists()) if root.exists() else []
    if wanted is None:
        return found
    return [s for s in wanted if s in found]
