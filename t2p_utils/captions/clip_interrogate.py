"""CLIP interrogation captions (the seed's second captioner) with clip-interrogator 0.6.0.

* :class:`ClipSettings`: model names (``clip_model_name`` "ViT-L-14/openai", ``caption_model_name``
  "blip-large"), ``mode`` (``fast`` / ``classic`` / ``best``; the seed's captions look like
  ``best``: a BLIP caption followed by a chain of flavour phrases), batch size, device.
* :func:`make_interrogator`: on a machine with hub access it loads the real weights by name
  (open_clip + transformers, through the package's own loaders). Ready model objects can be
  passed instead (the tests pass tiny random ones from :func:`tiny_models`).
* :func:`interrogate_files`: BLIP captions are generated in batches, then the package's own
  ranking/chaining (``interrogate_fast`` / ``interrogate_classic`` / ``interrogate``) runs per
  image. Every finished image is appended to a JSONL cache keyed by the image's sha256 and the
  settings, so an interrupted run resumes where it stopped.

Note: clip-interrogator's ``Config`` has ``clip_model``/``caption_model``/... as plain class
attributes, not dataclass fields, so they are set after construction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from t2p_utils.config.params import resolve_device
from t2p_utils.core.io import rgb_on_white, sha256_file

log = logging.getLogger(__name__)

MODES = ("fast", "classic", "best")
LABEL_FILES = ("artists.txt", "flavors.txt", "mediums.txt", "movements.txt", "negative.txt")


@dataclass(frozen=True)
class ClipSettings:
    clip_model_name: str = "ViT-L-14/openai"
    caption_model_name: str = "blip-large"
    mode: str = "fast"
    batch_size: int = 8
    device: str = "auto"  # auto -> cuda when available, else cpu
    caption_max_length: int = 32
    max_flavors: int = 32
    download_cache: bool = True  # fetch precomputed label embeddings from the hub (full profile)
    data_path: str = ""  # label lists folder; "" = the package's own data/
    chunk_size: int = 2048
    flavor_intermediate_count: int = 2048

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"clip mode must be one of {MODES}, not {self.mode!r} (params captions.clip_mode)")
        if "/" not in self.clip_model_name:
            raise ValueError(
                f"clip_model_name must be '<open_clip architecture>/<pretrained tag>', e.g. 'ViT-L-14/openai', "
                f"not {self.clip_model_name!r}"
            )
        if self.batch_size < 1:
            raise ValueError("clip batch_size must be >= 1")

    def key(self) -> str:
        """Fingerprint of everything that changes a caption (part of the cache key)."""
        fields = {k: v for k, v in asdict(self).items() if k not in ("batch_size", "device", "download_cache", "chunk_size")}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def make_interrogator(settings: ClipSettings, cache_path: Path, *, clip_model: Any = None, clip_preprocess: Any = None,
                      caption_model: Any = None, caption_processor: Any = None, quiet: bool = True) -> Any:
    """A ``clip_interrogator.Interrogator``; loads weights by name unless model objects are given.

    ``cache_path`` holds the label-embedding cache (safetensors) that the package writes.
    """
    from clip_interrogator import Config, Interrogator

    device = resolve_device(settings.device)
    cfg = Config(
        clip_model_name=settings.clip_model_name,
        caption_model_name=settings.caption_model_name,
        caption_max_length=settings.caption_max_length,
        cache_path=str(cache_path),
        download_cache=settings.download_cache,
        chunk_size=settings.chunk_size,
        flavor_intermediate_count=settings.flavor_intermediate_count,
        device=device,
        quiet=quiet,
    )
    if settings.data_path:
        missing = [f for f in LABEL_FILES if not (Path(settings.data_path) / f).exists()]
        if missing:
            raise FileNotFoundError(f"clip-interrogator label folder {settings.data_path} lacks {missing}")
        cfg.data_path = settings.data_path
    # plain class attributes in clip-interrogator 0.6.0's Config: set after construction
    cfg.clip_model, cfg.clip_preprocess = clip_model, clip_preprocess
    cfg.caption_model, cfg.caption_processor = caption_model, caption_processor
    if (clip_model is None) != (clip_preprocess is None) or (caption_model is None) != (caption_processor is None):
        raise ValueError("pass clip_model with clip_preprocess, and caption_model with caption_processor")
    log.info("clip-interrogator: %s + %s, mode %s, on %s", settings.clip_model_name, settings.caption_model_name,
             settings.mode, device)
    try:
        return Interrogator(cfg)
    except OSError as exc:  # transformers / open_clip / huggingface_hub report missing weights as OSError
        raise OSError(
            f"could not load {settings.caption_model_name!r} / {settings.clip_model_name!r} weights ({exc}). The real "
            "clip-interrogator needs the Hugging Face hub (or a warm cache); without it set captions.clip_backend: "
            "palette in params/<profile>.yaml (the offline stand-in)"
        ) from exc


def open_rgb(path: Path) -> Image.Image:
    """RGB image with transparent parts composited onto white."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path} is missing: re-run notebooks/01_scrape.ipynb (force=True) to render it")
    with Image.open(path) as img:
        return rgb_on_white(img)


def blip_captions(ci: Any, images: Sequence[Image.Image]) -> list[str]:
    """One batched caption-model call for several images (the package captions one at a time)."""
    ci._prepare_caption()
    inputs = ci.caption_processor(images=list(images), return_tensors="pt").to(ci.device)
    if not ci.config.caption_model_name.startswith("git-"):
        inputs = inputs.to(ci.dtype)
    tokens = ci.caption_model.generate(**inputs, max_new_tokens=ci.config.caption_max_length)
    return [t.strip() for t in ci.caption_processor.batch_decode(tokens, skip_special_tokens=True)]


def interrogate_image(ci: Any, image: Image.Image, mode: str, caption: str, max_flavors: int = 32) -> str:
    """The package's own prompt building for one image, given its caption."""
    caption = caption or "a drawing"  # the package would re-caption an empty string
    if mode == "fast":
        return ci.interrogate_fast(image, max_flavors=max_flavors, caption=caption)
    if mode == "classic":
        return ci.interrogate_classic(image, max_flavors=3, caption=caption)
    if mode == "best":
        return ci.interrogate(image, max_flavors=max_flavors, caption=caption)
    raise ValueError(f"unknown clip mode {mode!r}; choose one of {MODES}")


class CaptionCache:
    """Append-only JSONL of finished captions, keyed by (image sha256, settings key).

    A half-written last line (an interrupted run) is ignored on reading.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.records: dict[tuple[str, str], dict[str, Any]] = {}
        self._newline_first = False
        if self.path.exists():
            text = self.path.read_text(encoding="utf-8")
            self._newline_first = bool(text) and not text.endswith("\n")  # a half-written last line
            for n, line in enumerate(text.splitlines(), 1):
                try:
                    rec = json.loads(line)
                    self.records[(rec["sha256"], rec["key"])] = rec
                except (json.JSONDecodeError, KeyError):
                    log.warning("%s line %d is unreadable (interrupted write?): ignored", self.path, n)

    def get(self, sha: str, key: str) -> dict[str, Any] | None:
        return self.records.get((sha, key))

    def add(self, rec: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(("\n" if self._newline_first else "") + json.dumps(rec, sort_keys=True) + "\n")
            self._newline_first = False
            fh.flush()
            os.fsync(fh.fileno())
        self.records[(rec["sha256"], rec["key"])] = rec


def interrogate_files(ci: Any, files: Sequence[Path], settings: ClipSettings, cache_file: Path,
                      progress: bool = True) -> list[dict[str, Any]]:
    """Interrogate every file (cached ones are read back); returns records in ``files`` order.

    Record keys: sha256, key, file, blip_caption, caption, mode, clip_model_name, caption_model_name.
    """
    from t2p_utils.core.progress import tqdm

    cache = CaptionCache(cache_file)
    key = settings.key()
    shas = [sha256_file(Path(f)) if Path(f).exists() else "" for f in files]
    missing = [str(f) for f, s in zip(files, shas, strict=True) if not s]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image(s) missing, e.g. {missing[:3]}: re-run notebooks/01_scrape.ipynb")
    todo = [i for i, s in enumerate(shas) if cache.get(s, key) is None]
    log.info("clip-interrogator: %d of %d images cached in %s, %d to do", len(files) - len(todo), len(files), cache_file, len(todo))
    bar = tqdm(total=len(todo), desc=f"clip {settings.mode}", disable=not progress)
    for start in range(0, len(todo), settings.batch_size):
        batch = todo[start : start + settings.batch_size]
        images = [open_rgb(Path(files[i])) for i in batch]
        caps = blip_captions(ci, images)
        for i, img, cap in zip(batch, images, caps, strict=True):
            prompt = interrogate_image(ci, img, settings.mode, cap, settings.max_flavors)
            cache.add({
                "sha256": shas[i], "key": key, "file": str(files[i]), "blip_caption": cap, "caption": prompt,
                "mode": settings.mode, "clip_model_name": settings.clip_model_name,
                "caption_model_name": settings.caption_model_name,
            })
            bar.update(1)
    bar.close()
    return [dict(cache.get(s, key) or {}) for s in shas]


# --------------------------------------------------------------------------------------------
# Tiny random models (tests, and a code-path check where no weights can be downloaded)
# --------------------------------------------------------------------------------------------

TINY_CLIP_NAME = "t2p-tiny-clip"
TINY_CLIP_CFG: dict[str, Any] = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    # vocab and context length of open_clip's default SimpleTokenizer, which the interrogator uses
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
TINY_WORDS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "drawing", "of", "cartoon", "creature",
              "with", "and", "red", "blue", "yellow", "green", "body", "belly", "eyes", ",")
TINY_LABELS: dict[str, list[str]] = {
    "artists.txt": ["Ken Sugimori", "Atsuko Nishida"],
    "flavors.txt": ["cute", "flat colors", "vibrant colors", "pastel", "line art", "red and blue"],
    "mediums.txt": ["a drawing", "a cartoon", "vector art"],
    "movements.txt": ["pop art", "anime"],
    "negative.txt": ["blurry", "ugly"],
}


def write_label_lists(folder: Path, labels: dict[str, list[str]] | None = None) -> Path:
    """Write clip-interrogator's five label lists (one label per line) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, items in (labels or TINY_LABELS).items():
        (folder / name).write_text("\n".join(items) + "\n", encoding="utf-8")
    return folder


def tiny_models(workdir: Path, seed: int = 0) -> dict[str, Any]:
    """Random tiny open_clip + BLIP models and processors, built offline from configs.

    The BLIP processor needs a BERT WordPiece vocabulary; a tiny ``vocab.txt`` is written to
    ``workdir`` (BLIP's decoder starts from ``[DEC]``, its bos token).
    """
    import open_clip
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cfg_file = workdir / f"{TINY_CLIP_NAME}.json"
    cfg_file.write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(str(cfg_file))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        clip_model, _, preprocess = open_clip.create_model_and_transforms(TINY_CLIP_NAME, pretrained=None)
        vocab = workdir / "vocab.txt"
        vocab.write_text("\n".join(TINY_WORDS) + "\n", encoding="utf-8")
        tokenizer = BertTokenizer(str(vocab), bos_token="[DEC]")
        processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer)
        ids = {w: i for i, w in enumerate(TINY_WORDS)}
        blip_cfg = BlipConfig(
            text_config={"vocab_size": len(TINY_WORDS), "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "intermediate_size": 64, "max_position_embeddings": 64, "bos_token_id": ids["[DEC]"],
                         "pad_token_id": ids["[PAD]"], "sep_token_id": ids["[SEP]"], "eos_token_id": ids["[SEP]"]},
            vision_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
                           "image_size": 32, "patch_size": 16},
            projection_dim=16,
        )
        blip = BlipForConditionalGeneration(blip_cfg)
    clip_model.eval()
    blip.eval()
    return {"clip_model": clip_model, "clip_preprocess": preprocess, "caption_model": blip, "caption_processor": processor}
