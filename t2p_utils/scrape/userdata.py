"""Step 01 for your own line art: the Kaggle sketch2pokemon layout and a plain folder of characters.

Two sources (``ScrapeConfig.source``):

- ``kaggle``: the original study's folder (CycleGAN layout, same-named files, A = line art,
  B = colour). Any subset that makes sense works: ``trainA/ trainB/`` (train only),
  ``testA/ testB/`` (test only) or all four; a ``testA/`` image without its colour pair is a
  test character with no ground truth; a ``trainA/`` image without one is skipped.
- ``folder``: ``lineart/`` (+ optional ``color/``) holding images of any format, size and
  aspect, paired by file stem. Characters with a colour image are split into train / val /
  test (``val_frac``, ``test_frac``, seeded); those without one are test characters.

Every image is composited onto white (transparent backgrounds too), padded to a square (never
stretched) and resized to ``size``. The character mask is the colour image's non-white (or
opaque) pixels joined with the outline, holes filled; without a colour image it is what the
outline encloses. Each file's fate is a manifest row: ``status`` ok / error with the reason in
``error`` (unpaired, unreadable, not line art, no outline found), what was done to it in
``notes`` (padded, mask derived). The run stops only when nothing usable is left, naming the folder.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError
from scipy import ndimage

from t2p_utils.config.params import ConfigError, Paths
from t2p_utils.core.io import atomic_write_image, sha256_file
from t2p_utils.core.manifest import write_manifest
from t2p_utils.scrape.render import LINEART_MAX_SHARE, LINEART_MIN_SHARE, outline_share
from t2p_utils.scrape.split import assign_splits

if TYPE_CHECKING:
    from t2p_utils.config import ScrapeConfig

log = logging.getLogger(__name__)

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
#: line-art pixels darker than this (0..255 luma) are outline
OUTLINE_LUMA = 128
#: a line drawing has few strongly coloured pixels: above this share the file is taken for a colour image
MAX_CHROMATIC_SHARE = 0.10
#: chroma (max - min channel, 0..255) above which a pixel counts as coloured
CHROMA = 60
#: a line drawing needs at least this share of outline pixels ...
MIN_OUTLINE_SHARE = 0.002
#: ... and is mostly light: above this share of dark pixels it is not line art on a light background
MAX_DARK_SHARE = 0.6
#: outlines and masks are found at this many times the output size (thin lines survive; then downsampled)
WORK_SCALE = 4
#: refuse images above this many pixels (a decompression bomb or a poster, not a character sheet)
MAX_PIXELS = 40_000_000


class NotLineArt(ValueError):
    """The image cannot serve as line art; the message says why (recorded per file, never fatal)."""


@dataclass(frozen=True)
class Prepared:
    rgb: np.ndarray  # size x size x 3 uint8, on white
    alpha: np.ndarray | None  # size x size bool (opaque pixels), None when the file had no transparency
    note: str  # what was done beyond resizing ("padded from 255x256", "")


def load_square(path: Path, size: int) -> Prepared:
    """An image file as a ``size`` x ``size`` RGB array on white: transparency composited, padded to a square
    (centred, white), never stretched. Raises ``ValueError`` naming the file when it is not a readable image."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ValueError(f"{path}: {im.width}x{im.height} is too large (over {MAX_PIXELS:,} pixels)")
            im = ImageOps.exif_transpose(im)
            im.load()
            rgba = im.convert("RGBA")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc
    w, h = rgba.size
    has_alpha = bool(np.asarray(rgba.getchannel("A")).min() < 255)
    side = max(w, h)
    square = Image.new("RGBA", (side, side), (255, 255, 255, 0))
    square.paste(rgba, ((side - w) // 2, (side - h) // 2))
    if side != size:
        square = square.resize((size, size), Image.Resampling.LANCZOS if side > size else Image.Resampling.BICUBIC)
    arr = np.asarray(square, dtype=np.float32)
    a = arr[..., 3:4] / 255.0
    rgb = np.clip(arr[..., :3] * a + 255.0 * (1 - a), 0, 255).round().astype(np.uint8)
    note = f"padded from {w}x{h}" if w != h else ""
    return Prepared(rgb, (arr[..., 3] >= 128) if has_alpha else None, note)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def outline_of(rgb: np.ndarray) -> np.ndarray:
    """The outline pixels of a line drawing (dark)."""
    return _luma(rgb) < OUTLINE_LUMA


def check_lineart(rgb: np.ndarray) -> None:
    """Raise :class:`NotLineArt` when ``rgb`` does not look like dark lines on a light background."""
    chroma = rgb.max(axis=-1).astype(np.int16) - rgb.min(axis=-1)
    coloured = float((chroma > CHROMA).mean())
    if coloured > MAX_CHROMATIC_SHARE:
        raise NotLineArt(f"looks like a colour image, not line art ({coloured:.0%} of its pixels are coloured): "
                         "put colour images in the colour folder")
    dark = float(outline_of(rgb).mean())
    if dark < MIN_OUTLINE_SHARE:
        raise NotLineArt(f"no outline found ({dark:.2%} dark pixels): line art needs dark lines on a light background")
    if dark > MAX_DARK_SHARE:
        raise NotLineArt(f"mostly dark ({dark:.0%} of pixels): line art needs dark lines on a light background")


def mask_from_lineart(rgb: np.ndarray) -> tuple[np.ndarray, str]:
    """The character region of a line drawing: what its outline encloses (bool), and a note on how it was found.

    Small gaps in the outline are bridged first (a morphological closing of 2 px at the working size)."""
    outline = outline_of(rgb)
    closed = ndimage.binary_closing(outline, structure=ndimage.generate_binary_structure(2, 1), iterations=2)
    filled = ndimage.binary_fill_holes(closed)
    if filled.sum() >= 1.5 * max(1, outline.sum()):
        return filled, "mask: enclosed by the outline"
    # an open outline encloses nothing: the outline grown by a few pixels stands in for the region
    grown = ndimage.binary_fill_holes(ndimage.binary_dilation(outline, iterations=max(3, rgb.shape[0] // 64)))
    return grown, "mask: outline not closed, so the mask is the outline grown by a few pixels"


def mask_from_color(color: Prepared, lineart_rgb: np.ndarray) -> np.ndarray:
    """The character region given its colour image: opaque (or non-white) pixels and the outline, holes filled."""
    body = color.alpha if color.alpha is not None else (color.rgb < 235).any(axis=-1)
    return ndimage.binary_fill_holes(body | outline_of(lineart_rgb))


def shrink_lineart(rgb: np.ndarray, size: int) -> Image.Image:
    """Line art from the working size down to ``size``, lines thickened first (a min filter) so that thin strokes
    stay dark instead of fading to grey."""
    img = Image.fromarray(rgb, "RGB")
    factor = rgb.shape[0] / size
    if factor >= 2:
        k = max(3, int(factor // 2) * 2 - 1)
        img = img.filter(ImageFilter.MinFilter(k))
    return img.resize((size, size), Image.Resampling.LANCZOS) if img.width != size else img


def shrink_mask(mask: np.ndarray, size: int) -> Image.Image:
    """A bool mask at the working size down to ``size`` (a pixel is in when at least half of its area is)."""
    img = Image.fromarray(mask.astype(np.uint8) * 255, "L")
    if img.width != size:
        img = img.resize((size, size), Image.Resampling.BOX)
    return Image.fromarray(np.where(np.asarray(img) >= 128, 255, 0).astype(np.uint8), "L")


@dataclass(frozen=True)
class PairJob:
    sprite_id: str
    name: str
    lineart: Path
    color: Path | None
    split: str  # "train" / "test" from the folder layout, "" to be assigned


def _row(paths: Paths, job: PairJob, source: str, status: str, error: str = "", notes: str = "",
         has_color: bool = False, lineart_ok: bool = False) -> dict[str, object]:
    ok = status == "ok"
    rel = lambda k: str(paths.image(k, job.sprite_id).relative_to(paths.root)) if ok else ""
    return {"id": job.sprite_id, "name": job.name, "split": job.split if ok else "", "source": source,
            "source_path": str(job.lineart), "sha256": sha256_file(job.lineart) if job.lineart.is_file() else "",
            "color": rel("color") if has_color else "", "lineart": rel("lineart"), "mask": rel("mask"),
            "status": status, "error": error, "lineart_ok": lineart_ok, "notes": notes,
            "color_source": str(job.color) if job.color else ""}


def process_pair(paths: Paths, job: PairJob, size: int, source: str) -> dict[str, object]:
    """Prepare one character (line art + optional colour image) and return its manifest row; never raises.

    Outline, line-art check and mask are computed at ``WORK_SCALE`` x ``size``, then brought down to ``size``."""
    work = size * WORK_SCALE
    try:
        line = load_square(job.lineart, work)
        check_lineart(line.rgb)
        notes = [f"line art {line.note}"] if line.note else []
        if job.color is not None:
            color = load_square(job.color, work)
            if color.note:
                notes.append(f"colour {color.note}")
            mask = mask_from_color(color, line.rgb)
        else:
            mask, how = mask_from_lineart(line.rgb)
            notes.append(how + " (no colour image)")
    except ValueError as exc:  # NotLineArt too: recorded, never fatal
        msg = str(exc)
        return _row(paths, job, source, "error", msg if str(job.lineart) in msg or str(job.color) in msg
                    else f"{job.lineart.name}: {msg}")
    if not mask.any():
        return _row(paths, job, source, "error", f"{job.lineart.name}: empty character mask")
    mask_img = shrink_mask(mask, size)
    line_img = shrink_lineart(line.rgb, size)
    if job.color is not None:
        color_img = Image.fromarray(color.rgb, "RGB").resize((size, size), Image.Resampling.LANCZOS)
        atomic_write_image(color_img, paths.image("color", job.sprite_id))
    atomic_write_image(line_img, paths.image("lineart", job.sprite_id))
    atomic_write_image(mask_img, paths.image("mask", job.sprite_id))
    share = outline_share(line_img, mask_img)
    ok = LINEART_MIN_SHARE <= share <= LINEART_MAX_SHARE
    if not ok:
        notes.append(f"outline share {share:.3f} out of range")
    return _row(paths, job, source, "ok", "", "; ".join(notes), has_color=job.color is not None, lineart_ok=ok)


def _images(folder: Path) -> dict[str, Path]:
    """Image files of ``folder`` by stem (hidden files and other suffixes ignored)."""
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES}


def _unpaired(paths: Paths, job_id: str, path: Path, why: str) -> dict[str, object]:
    """The manifest row of a file without its pair (recorded as an error, never prepared)."""
    return _row(paths, PairJob(job_id, path.stem, path, None, ""), "", "error", f"{path.name}: {why}")


def _run_jobs(paths: Paths, jobs: list[PairJob], size: int, source: str) -> list[dict[str, object]]:
    from t2p_utils.core.progress import tqdm

    return [process_pair(paths, j, size, source) for j in tqdm(jobs, desc="prepare", disable=len(jobs) < 20)]


def _finish(paths: Paths, rows: list[dict[str, object]], folder: Path, cfg: ScrapeConfig) -> pd.DataFrame:
    """Assign the missing splits (seeded; characters without a colour image go to test), write the manifest."""
    if not rows:
        raise ConfigError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}): nothing to run the study on")
    df = pd.DataFrame(rows)
    ok = df["status"].eq("ok")
    if not ok.any():
        reasons = "; ".join(df["error"].astype(str).head(5))
        raise ConfigError(f"{folder}: none of its {len(df)} images is usable ({reasons}{' ...' if len(df) > 5 else ''}): "
                          "fix the files (line art: dark lines on white; colour pairs with the same file name)")
    colour = df["color"].astype(str).ne("")
    todo = ok & df["split"].eq("") & colour
    if todo.any():
        df.loc[todo, "split"] = assign_splits(df.loc[todo, "id"].tolist(), [True] * int(todo.sum()), {},
                                              val_frac=cfg.val_frac, test_frac=cfg.test_frac, seed=cfg.seed)
    df.loc[ok & ~colour, "split"] = "test"  # no ground truth: scored on colour control only, never trained on
    train = df.index[ok & df["split"].eq("train") & df["source"].eq("kaggle")]
    if len(train) and df.loc[ok, "split"].eq("val").sum() == 0 and cfg.val_frac > 0:
        # the Kaggle layout has no validation folder: every k-th training pair (deterministic)
        df.loc[train[:: max(1, round(1 / cfg.val_frac))], "split"] = "val"
    out = write_manifest(df.to_dict("records"), paths.manifest)
    n_bad = int((~ok).sum())
    log.info("%s: %d characters usable (%s), %d skipped%s", folder, int(ok.sum()),
             ", ".join(f"{s} {int((out['split'] == s).sum())}" for s in ("train", "val", "test")), n_bad,
             f" (see {paths.manifest}, column error)" if n_bad else "")
    return out


def _user_dir(value: str, key: str, paths: Paths, layout: str) -> Path:
    """``scrape.<key>`` as a folder: absolute, or relative to the params file's folder, else to the repository."""
    root = paths.user_path(value) if value else None
    if root is None or not root.is_dir():
        raise ConfigError(f"scrape.{key} {value!r} is not a folder (looked for {root}): set it in {paths.params_file} "
                          f"to {layout}")
    return root.resolve()


def ingest_kaggle(paths: Paths, cfg: ScrapeConfig) -> pd.DataFrame:
    """A sketch2pokemon folder: any of ``trainA/ trainB/ testA/ testB/`` (same-named files, A = line art)."""
    root = _user_dir(cfg.kaggle_dir, "kaggle_dir", paths, "the unpacked sketch2pokemon dataset (trainA/ trainB/ testA/ testB/)")
    present = [d for d in ("trainA", "trainB", "testA", "testB") if (root / d).is_dir()]
    if not {"trainA", "testA"} & set(present):
        raise ConfigError(f"{root} has neither trainA/ nor testA/ (found: {', '.join(present) or 'none'}): "
                          "expected the sketch2pokemon layout trainA/ trainB/ testA/ testB/ (A = line art, B = colour)")
    jobs: list[PairJob] = []
    rows: list[dict[str, object]] = []
    for split in ("train", "test"):
        lines, colours = _images(root / f"{split}A"), _images(root / f"{split}B")
        for stem, b in colours.items():
            if stem not in lines:
                rows.append(_unpaired(paths, f"{split}-{stem}", b, f"colour image without line art in {split}A/"))
        for stem, a in lines.items():
            b = colours.get(stem)
            if b is None and split == "train":
                rows.append(_unpaired(paths, f"{split}-{stem}", a, "no colour pair in trainB/ (a training pair needs both)"))
                continue
            jobs.append(PairJob(f"{split}-{stem}", stem, a, b, split))
    rows += _run_jobs(paths, jobs, cfg.size, "kaggle")
    for r in rows:
        r["source"] = "kaggle"
    return _finish(paths, rows, root, cfg)


def ingest_folder(paths: Paths, cfg: ScrapeConfig) -> pd.DataFrame:
    """A plain folder: ``lineart/`` (+ optional ``color/``), any image format and size, paired by file stem."""
    root = _user_dir(cfg.folder_dir, "folder_dir", paths, "a folder with lineart/ (and optionally color/)")
    if not (root / "lineart").is_dir():
        raise ConfigError(f"{root} has no lineart/ folder: put the line drawings in {root / 'lineart'} "
                          "(and their colour versions, same file names, in color/)")
    lines, colours = _images(root / "lineart"), _images(root / "color")
    rows = [_unpaired(paths, stem, p, "colour image without line art in lineart/") for stem, p in colours.items()
            if stem not in lines]
    jobs = [PairJob(stem, stem, p, colours.get(stem), "") for stem, p in lines.items()]
    rows += _run_jobs(paths, jobs, cfg.size, "folder")
    for r in rows:
        r["source"] = "folder"
    return _finish(paths, rows, root, cfg)


def ingest_summary(manifest: pd.DataFrame) -> pd.DataFrame:
    """What happened to each file, counted: usable per split, with / without a colour image, skipped by reason."""
    ok = manifest[manifest["status"] == "ok"]
    has_color = ok["color"].astype(str) != ""
    rows = [{"what": f"split {s}", "count": int((ok["split"] == s).sum())} for s in ("train", "val", "test")]
    rows.append({"what": "with a colour image (ground truth)", "count": int(has_color.sum())})
    rows.append({"what": "line art only (mask derived from the outline)", "count": int((~has_color).sum())})
    notes = manifest.get("notes", pd.Series([""] * len(manifest))).astype(str)
    rows.append({"what": "padded to a square", "count": int(notes.str.contains("padded").sum())})
    bad = manifest[manifest["status"] != "ok"]
    for reason, n in _reasons(bad["error"].astype(str)).items():
        rows.append({"what": f"skipped: {reason}", "count": n})
    return pd.DataFrame(rows)


def _reasons(errors: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in errors:
        key = e.split(": ", 1)[1] if ": " in e else e
        key = key.split(" (")[0]
        out[key] = out.get(key, 0) + 1
    return out
