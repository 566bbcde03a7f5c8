"""Caption every sprite with one captioner and build the IP2P instruction datasets (steps 02 and 03).

The seed's recipe: training ids that have a reference caption keep it; every other id gets the
captioner's caption; every caption becomes ``"Turn it into " + caption``.

Outputs per profile ``<p>`` and source (``reference``, ``cnn_lstm``, ``clip``, ``palette``):

* ``data/captions/<p>/<source>.csv``: ``id, split, caption, instruction, caption_source,
  generated, stand_in`` for every manifest id (``reference``: the ids with reference captions).
  ``caption_source`` says where the final caption came from (``reference`` or the captioner,
  e.g. ``palette (stand-in for clip)``); ``generated`` is the captioner's own caption for every id,
  which :mod:`t2p_utils.captions.quality` scores.
* ``data/captions/<p>/<source>.json``: provenance (captioner, stand-in, settings, skipped ids).
* ``data/instructions/<p>/<source>/``: ``metadata.jsonl`` plus image copies ``input/<id>.png``
  (line art) and ``edited/<id>.png`` (colour), **train split only** (test stays held out).
  Each line has ``input_image_file_name``, ``edit_prompt``, ``edited_image_file_name`` (paths
  relative to the folder): ``load_dataset("imagefolder", data_dir=folder)`` turns each
  ``<column>_file_name`` into an image column ``<column>``, so the dataset has the columns
  ``input_image``, ``edit_prompt``, ``edited_image`` that diffusers' ``examples/instruct_pix2pix``
  reads by default (a test loads one). Our trainer reads the same lines (:func:`instruction_line`).

Bad input fails loudly: a missing manifest image or a reference id that is not in the manifest
raises with the file and the ids; an empty caption is a recorded skip (in the JSON, not in
the instructions); non-ASCII captions are transliterated to ASCII (recorded) because the
tokenizers downstream are ASCII-lower-case.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from t2p_utils.config.captions import CaptionConfig, palette_settings
from t2p_utils.config.params import CAPTION_SOURCES, Paths
from t2p_utils.core.io import atomic_open, atomic_write_json
from t2p_utils.core.reference_csv import read_reference_csv, to_instruction
from t2p_utils.core.stamps import cache_key, file_stamp
from t2p_utils.core.standins import PALETTE_CAPTIONER, TINY_CLIP_CAPTIONER

log = logging.getLogger(__name__)

CSV_COLUMNS = ("id", "split", "caption", "instruction", "caption_source", "generated", "stand_in")


def clip_settings(cfg: CaptionConfig) -> Any:
    from t2p_utils.captions.clip_interrogate import ClipSettings

    return ClipSettings(clip_model_name=cfg.clip_model_name, caption_model_name=cfg.caption_model_name,
                        mode=cfg.clip_mode, batch_size=cfg.clip_batch_size, max_flavors=cfg.clip_max_flavors,
                        download_cache=cfg.clip_download_cache)


def captioner_name(source: str, cfg: CaptionConfig) -> tuple[str, bool]:
    """(what produced the ``generated`` captions of ``source``, whether it is an offline stand-in)."""
    if source == "clip":
        if cfg.clip_backend == "palette":
            return PALETTE_CAPTIONER, True
        if cfg.clip_backend == "tiny":
            return TINY_CLIP_CAPTIONER, True
        return f"clip-interrogator {cfg.clip_model_name} + {cfg.caption_model_name} ({cfg.clip_mode})", False
    return source, False


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------

def load_manifest(paths: Paths) -> pd.DataFrame:
    """The manifest rows that can be captioned: those with a colour image (own line art may have none)."""
    from t2p_utils.core.manifest import read_manifest

    df = read_manifest(paths.manifest)
    df = df[df["color"].astype(str) != ""].reset_index(drop=True)
    missing = [sid for sid, rel in zip(df["id"], df["color"], strict=True) if not (paths.root / rel).exists()]
    missing += [sid for sid, rel in zip(df["id"], df["lineart"], strict=True) if not (paths.root / rel).exists()]
    if missing:
        raise FileNotFoundError(
            f"{paths.manifest} lists {len(set(missing))} id(s) whose images are missing, e.g. {sorted(set(missing))[:5]}: "
            "re-run notebooks/01_scrape.ipynb with force=True"
        )
    return df


def load_references(paths: Paths, manifest: pd.DataFrame) -> pd.DataFrame:
    """Reference captions (id, split, caption) of manifest ids; unknown ids are an error naming the file."""
    from t2p_utils.core.manifest import read_manifest

    ref = read_reference_csv(paths.reference_captions)
    unknown = sorted(set(ref["id"]) - set(read_manifest(paths.manifest)["id"]))
    if unknown:
        raise ValueError(
            f"{paths.reference_captions} has {len(unknown)} id(s) not in {paths.manifest}, e.g. {unknown[:5]}: "
            "fix the reference file or re-run 01_scrape"
        )
    ref = ref[["id", "caption"]].merge(manifest[["id", "split"]], on="id", how="inner")
    ref["caption"] = ref["caption"].map(lambda c: str(c).strip())
    return ref[ref["caption"] != ""].reset_index(drop=True)


def training_references(refs: pd.DataFrame, cfg: CaptionConfig) -> pd.DataFrame:
    """Reference captions that the recipe keeps: train ids, a seeded ``reference_share`` of them."""
    tr = refs[refs["split"] == "train"].reset_index(drop=True)
    if cfg.reference_share < 1:
        n = round(cfg.reference_share * len(tr))
        keep = np.sort(np.random.default_rng(cfg.seed).permutation(len(tr))[:n])
        tr = tr.iloc[keep].reset_index(drop=True)
    return tr


def clean_caption(caption: str) -> tuple[str, str]:
    """(ASCII caption on one line, note) — note is "" or says what was changed / why it is empty."""
    text = " ".join(str(caption).split())
    note = ""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
        text = " ".join(text.split())
        note = "non-ascii transliterated"
    if not text:
        note = "empty caption"
    return text, note


# ----------------------------------------------------------------------------------------------
# captioners
# ----------------------------------------------------------------------------------------------

def inputs_fingerprint(paths: Paths) -> dict[str, str]:
    """What every caption set (and the CNN-LSTM) reads, for its key (:func:`t2p_utils.core.stamps.file_stamp`): the
    manifest and the reference captions (sha256), and the folders of the images 01 rendered (names, sizes and
    modification times), so re-rendered images with an unchanged manifest count as new inputs too."""
    return {"manifest": file_stamp(paths.manifest), "reference": file_stamp(paths.reference_captions),
            **{kind: file_stamp(folder) for kind, folder in (("color", paths.color_dir), ("lineart", paths.lineart_dir),
                                                              ("mask", paths.mask_dir))}}


def _cnn_lstm_key(paths: Paths, cfg: CaptionConfig) -> str:
    """The CNN-LSTM's key: its settings and those choosing its training captions, the inputs, and the code that trains
    it (this module, which picks the captions, and everything it imports: t2p_utils.captions.cnn_lstm, ...)."""
    return cache_key({"cnn_lstm": cfg.cnn_lstm, "reference_share": cfg.reference_share, "seed": cfg.seed},
                     inputs_fingerprint(paths), code=[__name__])


def train_or_load_cnn_lstm(paths: Paths, cfg: CaptionConfig, force: bool = False, progress: bool = True) -> Any:
    """Train the CNN-LSTM on the kept reference captions of train ids (early stopping on val ids' references)."""
    from t2p_utils.captions.cnn_lstm import load_captioner, load_images, save_captioner, train_captioner

    folder = paths.model("cnn_lstm")
    if not force and (folder / "model.safetensors").exists():
        loaded = load_captioner(folder)
        data_json = folder / "data.json"
        same = data_json.exists() and json.loads(data_json.read_text()).get("key") == _cnn_lstm_key(paths, cfg)
        if same and asdict(loaded.config) == asdict(cfg.cnn_lstm):
            log.info("CNN-LSTM captioner found in %s (force=True retrains)", folder)
            return loaded
        log.info("CNN-LSTM captioner in %s was trained with other settings, inputs or code: retraining", folder)
    manifest = load_manifest(paths)
    refs = load_references(paths, manifest)
    train = training_references(refs, cfg)
    val = refs[refs["split"] == "val"]
    color = dict(zip(manifest["id"], manifest["color"], strict=True))
    images = load_images([paths.root / color[i] for i in train["id"]], cfg.cnn_lstm.image_size)
    kwargs: dict[str, Any] = {}
    if len(val):
        kwargs = {"val_images": load_images([paths.root / color[i] for i in val["id"]], cfg.cnn_lstm.image_size),
                  "val_captions": val["caption"].tolist()}
    trained = train_captioner(images, train["caption"].tolist(), cfg.cnn_lstm, progress=progress, **kwargs)
    save_captioner(trained, folder)
    atomic_write_json({"train_ids": train["id"].tolist(), "val_ids": val["id"].tolist(),
                       "inputs": inputs_fingerprint(paths), "key": _cnn_lstm_key(paths, cfg)}, folder / "data.json")
    log.info("CNN-LSTM: %d train captions, vocab %d, best epoch %d -> %s", len(train), len(trained.vocab),
             trained.best_epoch, folder)
    return trained


def generate(paths: Paths, source: str, cfg: CaptionConfig, manifest: pd.DataFrame, progress: bool = True) -> list[str]:
    """The captioner's own caption for every manifest id (in manifest order).

    Nothing here is forced: the CNN-LSTM is reused when its settings and inputs match, and the
    clip-interrogator cache is keyed by image content and settings.
    """
    return caption_image_files(paths, source, cfg, [paths.root / c for c in manifest["color"]],
                               [paths.root / m for m in manifest["mask"]], [paths.root / m for m in manifest["lineart"]],
                               progress)


def caption_image_files(paths: Paths, source: str, cfg: CaptionConfig, color: list[Path], mask: list[Path],
                        line: list[Path], progress: bool = True) -> list[str]:
    """``source``'s captioner on colour images (with their masks and line art, which the palette captioner uses)."""
    if source == "palette" or (source == "clip" and cfg.clip_backend == "palette"):
        from t2p_utils.core.palette import caption_files

        res = caption_files(list(zip(color, mask, line, strict=True)), palette_settings(cfg),
                            workers=cfg.palette_workers, progress=progress)
        return [r.caption for r in res]
    if source == "cnn_lstm":
        from t2p_utils.captions.cnn_lstm import caption_images, load_images

        # the saved model is reused when its settings match (training is seeded: retraining gives the same
        # model on CPU); call train_or_load_cnn_lstm(force=True) to retrain anyway
        trained = train_or_load_cnn_lstm(paths, cfg, force=False, progress=progress)
        return caption_images(trained, load_images(color, cfg.cnn_lstm.image_size), cfg.cnn_lstm.beam_size, progress=progress)
    if source == "clip":
        from t2p_utils.captions import clip_interrogate as cc

        settings = clip_settings(cfg)
        models: dict[str, Any] = {}
        if cfg.clip_backend == "tiny":
            models = cc.tiny_models(paths.interim / "tiny_clip", seed=cfg.seed)
            labels = cc.write_label_lists(paths.interim / "tiny_clip" / "labels")
            settings = cc.ClipSettings(**{**asdict(settings), "clip_model_name": f"{cc.TINY_CLIP_NAME}/none",
                                          "download_cache": False, "data_path": str(labels)})
        ci = cc.make_interrogator(settings, paths.interim / "clip_label_cache", **models)
        cache = paths.interim / f"clip_captions_{cfg.clip_backend}.jsonl"
        recs = cc.interrogate_files(ci, color, settings, cache, progress=progress)
        return [r["caption"] for r in recs]
    raise ValueError(f"source {source!r} has no captioner; choose from {CAPTION_SOURCES}")


def build_table(source: str, manifest: pd.DataFrame, kept_refs: pd.DataFrame, generated: list[str] | None,
                captioner: str, stand_in: bool) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Final caption per id (reference where kept, else generated) and the recorded skips/changes."""
    ref = dict(zip(kept_refs["id"], kept_refs["caption"], strict=True))
    rows, notes = [], []
    ids = manifest["id"].tolist() if source != "reference" else [i for i in manifest["id"] if i in ref]
    split = dict(zip(manifest["id"], manifest["split"], strict=True))
    gen = dict(zip(manifest["id"], generated, strict=True)) if generated is not None else {}
    for sid in ids:
        g, gnote = clean_caption(gen.get(sid, ref.get(sid, "")))
        if sid in ref:
            cap, note = clean_caption(ref[sid])
            origin = "reference"
        else:
            cap, note = g, gnote
            origin = captioner
        if note:
            notes.append({"id": sid, "what": f"{origin} caption: {note}" + (" (skipped)" if not cap else "")})
        rows.append({"id": sid, "split": split[sid], "caption": cap, "instruction": to_instruction(cap) if cap else "",
                     "caption_source": origin, "generated": g, "stand_in": bool(stand_in and origin != "reference")})
    return pd.DataFrame(rows, columns=list(CSV_COLUMNS)), notes


def write_caption_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, index=False)


def read_caption_csv(path: Path, expected_ids: list[str] | None = None) -> pd.DataFrame:
    """Read ``data/captions/<p>/<source>.csv``; with ``expected_ids``, missing ids are an error naming them."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run notebooks/02_cnn_lstm_captioning.ipynb / 03_clip_captioning.ipynb")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing_cols = [c for c in ("id", "caption", "instruction") if c not in df.columns]
    if missing_cols:
        raise ValueError(f"{path} lacks column(s) {missing_cols}: rebuild it with force=True")
    if expected_ids is not None:
        missing = sorted(set(expected_ids) - set(df["id"]))
        if missing:
            raise ValueError(f"{path} has no caption for {len(missing)} id(s), e.g. {missing[:5]}: rebuild it with force=True")
    return df




# ----------------------------------------------------------------------------------------------
# notebook helpers: tables and figures (figures are saved under reports/<p>/figures/ and returned)
# ----------------------------------------------------------------------------------------------




