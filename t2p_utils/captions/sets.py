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
import shutil
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

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


def instruction_line(input_image: str, edit_prompt: str, edited_image: str, **extra: Any) -> str:
    """One ``metadata.jsonl`` line: ``datasets``' imagefolder loads ``<name>_file_name`` as image column ``<name>``."""
    return json.dumps({"input_image_file_name": input_image, "edit_prompt": edit_prompt,
                       "edited_image_file_name": edited_image, **extra}) + "\n"


def write_instructions(paths: Paths, source: str, table: pd.DataFrame, manifest: pd.DataFrame,
                       splits: tuple[str, ...] = ("train",), templates: str = "fixed", seed: int = 42) -> Path:
    """The instruction dataset folder: image copies plus ``metadata.jsonl`` (rows with a caption only).

    ``templates``: ``fixed`` writes each row's ``instruction`` (the seed's frame); ``varied`` phrases its caption
    with :func:`t2p_utils.captions.templates.instruction_for` (seeded by ``seed`` and the id)."""
    from t2p_utils.captions.templates import instruction_for

    folder = paths.instructions(source)
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "input").mkdir(parents=True)
    (folder / "edited").mkdir()
    rel = manifest.set_index("id")
    use = table[table["split"].isin(splits) & (table["instruction"] != "")]
    with atomic_open(folder / "metadata.jsonl", "w", encoding="utf-8") as fh:
        for r in use.itertuples(index=False):
            inp, out = f"input/{r.id}.png", f"edited/{r.id}.png"
            shutil.copyfile(paths.root / rel.at[r.id, "lineart"], folder / inp)
            shutil.copyfile(paths.root / rel.at[r.id, "color"], folder / out)
            text = r.instruction if templates == "fixed" else instruction_for(r.caption, templates, seed, str(r.id))
            fh.write(instruction_line(inp, text, out, id=r.id, caption_source=r.caption_source))
    return folder


def augment_instructions(paths: Paths, source: str, cfg: CaptionConfig, table: pd.DataFrame, manifest: pd.DataFrame,
                         captioner: str, progress: bool = True) -> dict[str, Any]:
    """Add ``cfg.recolor_copies`` palette-swapped and ``cfg.part_copies`` part-level recoloured copies of every
    train pair to ``source``'s instruction folder.

    Each copy keeps the line art (the input) and gets its own caption from ``source``'s captioner,
    the same one that captioned the originals (the ``reference`` source has no captioner and is
    not augmented). A sprite with an empty mask or nothing but outline, and a copy whose recolouring
    leaves no basic colour covering 3 % of the character, are skipped and recorded.
    Returns ``{"n_recolored", "n_part", "skipped", "settings", ...}`` (also written to the provenance JSON).
    """
    from t2p_utils.captions.recolor import RecolorSettings, RecolorSkip, part_copies, recolor_copies, region_of
    from t2p_utils.captions.templates import instruction_for
    from t2p_utils.core.colors import dominant_colors
    from t2p_utils.core.io import atomic_write_image
    from t2p_utils.core.palette import load_lineart, load_rgb_mask
    from t2p_utils.core.progress import tqdm

    settings = RecolorSettings(copies=cfg.recolor_copies, k=cfg.recolor_k, seed=cfg.seed)
    out: dict[str, Any] = {"n_recolored": 0, "n_part": 0, "skipped": [], "settings": asdict(settings),
                           "part_copies": cfg.part_copies, "instruction_templates": cfg.instruction_templates}
    if ((cfg.recolor_copies <= 0 and cfg.part_copies <= 0) or source == "reference"
            or (cfg.recolor_sources is not None and source not in cfg.recolor_sources)):
        return out
    folder = paths.instructions(source)
    rel = manifest.set_index("id")
    use = table[(table["split"] == "train") & (table["instruction"] != "")]
    made: list[tuple[str, str, str]] = []  # (id, edited file relative to folder, augmentation note)
    for key, sid in enumerate(tqdm(use["id"].tolist(), desc=f"recolour {source}", disable=not progress)):
        rgb, mask = load_rgb_mask(paths.root / rel.at[sid, "color"], paths.root / rel.at[sid, "mask"])
        line = load_lineart(paths.root / rel.at[sid, "lineart"])
        try:
            copies = [(rc, f"rc{c}", "palette swap to " + ", ".join(rc.targets))
                      for c, rc in enumerate(recolor_copies(rgb, mask, line, settings, key=key))]
            copies += [(rc, f"pc{c}", note)
                       for c, (rc, note) in enumerate(part_copies(rgb, mask, line, cfg.part_copies, settings, key))]
        except RecolorSkip as exc:
            out["skipped"].append({"id": sid, "what": f"not recoloured: {exc}"})
            continue
        region = region_of(rgb, mask, line, settings.line_threshold)
        for rc, tag, note in copies:
            if rc.changed == 0 or not dominant_colors(rc.image, region):
                out["skipped"].append({"id": sid, "what": f"copy {tag}: the recolouring leaves no colour to name"})
                continue
            name = f"edited/{sid}_{tag}.png"
            atomic_write_image(Image.fromarray(rc.image), folder / name)
            made.append((sid, name, note))
    if made:
        caps = caption_image_files(paths, source, cfg, [folder / m[1] for m in made],
                                   [paths.root / rel.at[m[0], "mask"] for m in made],
                                   [paths.root / rel.at[m[0], "lineart"] for m in made], progress)
        original = (folder / "metadata.jsonl").read_text(encoding="utf-8")
        with atomic_open(folder / "metadata.jsonl", "w", encoding="utf-8") as fh:
            fh.write(original)
            for (sid, name, note), cap in zip(made, caps, strict=True):
                text, _ = clean_caption(cap)
                if not text:
                    out["skipped"].append({"id": sid, "what": f"{name}: empty caption from {captioner}"})
                    continue
                inp = f"input/{sid}.png"
                instr = instruction_for(text, cfg.instruction_templates, cfg.seed, f"{sid}/{name}")
                fh.write(instruction_line(inp, instr, name, id=sid, caption_source=captioner, augmentation=note))
                out["n_part" if note.startswith("part:") else "n_recolored"] += 1
    log.info("%s: %d palette-swapped and %d part-level recoloured pairs added (%d skipped)", source, out["n_recolored"],
             out["n_part"], len(out["skipped"]))
    return out


@dataclass
class CaptionRun:
    source: str
    csv: Path
    instructions: Path
    captioner: str
    stand_in: bool
    n_ids: int
    n_reference: int
    n_generated: int
    skipped: list[dict[str, str]]
    cached: bool = False
    n_recolored: int = 0  # palette-swapped training pairs added to the instruction folder
    n_part: int = 0  # part-level recoloured training pairs added to it
    recolor_skipped: list[dict[str, str]] = field(default_factory=list)


def run_source(paths: Paths, source: str, cfg: CaptionConfig, force: bool = False, progress: bool = True) -> CaptionRun:
    """Caption all ids for ``source`` and write its CSV, provenance JSON and instruction folder (idempotent)."""
    if source not in CAPTION_SOURCES:
        raise ValueError(f"unknown caption source {source!r}; choose from {CAPTION_SOURCES}")
    csv = paths.captions(source)
    meta = csv.with_suffix(".json")
    folder = paths.instructions(source)
    # the set's key: the whole captions: section, what it reads, and the code that makes it (this module and
    # everything it imports: the captioners, the recolouring, the phrasings)
    inputs = inputs_fingerprint(paths)
    key = cache_key(cfg, inputs, code=[__name__])
    if not force and csv.exists() and meta.exists() and (folder / "metadata.jsonl").exists():
        info = json.loads(meta.read_text())
        if info.get("key") == key:
            log.info("%s captions up to date in %s (force=True rebuilds)", source, csv)
            rec = info.get("recolor") or {}
            return CaptionRun(source, csv, folder, info["captioner"], info["stand_in"], info["n_ids"],
                              info["n_reference"], info["n_generated"], info["skipped"], cached=True,
                              n_recolored=int(rec.get("n_recolored", 0)), n_part=int(rec.get("n_part", 0)),
                              recolor_skipped=list(rec.get("skipped", [])))
    manifest = load_manifest(paths)
    refs = load_references(paths, manifest)
    kept = training_references(refs, cfg)
    captioner, stand_in = captioner_name(source, cfg)
    generated = None if source == "reference" else generate(paths, source, cfg, manifest, progress)
    table, notes = build_table(source, manifest, kept, generated, captioner, stand_in)
    write_caption_csv(table, csv)
    write_instructions(paths, source, table, manifest, templates=cfg.instruction_templates, seed=cfg.seed)
    aug = augment_instructions(paths, source, cfg, table, manifest, captioner, progress)
    n_ref = int((table["caption_source"] == "reference").sum())
    run = CaptionRun(source, csv, folder, captioner, stand_in, len(table), n_ref, len(table) - n_ref, notes,
                     n_recolored=aug["n_recolored"], n_part=aug["n_part"], recolor_skipped=aug["skipped"])
    atomic_write_json({"source": source, "captioner": captioner, "stand_in": stand_in, "n_ids": run.n_ids,
                       "n_reference": n_ref, "n_generated": run.n_generated, "skipped": notes, "recolor": aug,
                       "instructions_splits": ["train"], "config": asdict(cfg), "inputs": inputs, "key": key}, meta)
    log.info("%s: %d ids (%d reference, %d from %s) -> %s", source, run.n_ids, n_ref, run.n_generated, captioner, csv)
    return run


def run_captions(paths: Paths, cfg: CaptionConfig, sources: list[str] | None = None, force: bool = False,
                 progress: bool = True) -> pd.DataFrame:
    """Run ``sources`` (default: ``reference`` plus the profile's ``captions.sources``); a summary table."""
    todo = sources if sources is not None else ["reference"] + [s for s in cfg.sources if s != "reference"]
    runs = [run_source(paths, s, cfg, force=force, progress=progress) for s in todo]
    return pd.DataFrame([{k: v for k, v in asdict(r).items() if k not in ("skipped", "recolor_skipped")}
                         | {"n_skipped": len(r.skipped), "n_recolor_skipped": len(r.recolor_skipped)}
                         for r in runs])


def sample_captions(paths: Paths, source: str, n: int = 8, seed: int = 0, only_generated: bool = True) -> pd.DataFrame:
    """A few rows of a caption CSV (by default ids whose caption came from the captioner)."""
    df = read_caption_csv(paths.captions(source))
    if only_generated and source != "reference":
        df = df[df["caption_source"] != "reference"]
    return df.sample(min(n, len(df)), random_state=seed)[["id", "split", "caption_source", "caption"]]


# ----------------------------------------------------------------------------------------------
# notebook helpers: tables and figures (figures are saved under reports/<p>/figures/ and returned)
# ----------------------------------------------------------------------------------------------

def sources_table(paths: Paths, cfg: CaptionConfig, sources: list[str] | None = None) -> pd.DataFrame:
    """Which captioner produced each caption CSV, whether it is a stand-in, and the counts."""
    rows = []
    for s in sources or ["reference"] + [x for x in cfg.sources if x != "reference"]:
        meta = paths.captions(s).with_suffix(".json")
        if not meta.exists():
            raise FileNotFoundError(f"{meta} is missing: run the captioning step for source {s!r} first")
        info = json.loads(meta.read_text())
        rows.append({"source": s, "csv": str(paths.captions(s).relative_to(paths.root)),
                     "captioner": info["captioner"], "stand_in": info["stand_in"], "ids": info["n_ids"],
                     "reference_captions": info["n_reference"], "captioner_captions": info["n_generated"],
                     "palette_swapped_pairs": int((info.get("recolor") or {}).get("n_recolored", 0)),
                     "part_recoloured_pairs": int((info.get("recolor") or {}).get("n_part", 0)),
                     "skipped": len(info["skipped"])})
    return pd.DataFrame(rows)


def vocab_table(trained: Any) -> pd.DataFrame:
    """The CNN-LSTM vocabulary story: size, words that became <unk>, and which colour words survived."""
    from t2p_utils.core.colors import SYNONYMS

    v = trained.vocab
    colour_kept = sorted(w for w in v.itos if w in SYNONYMS)
    colour_unk = sorted(w for w in v.unk_words if w in SYNONYMS)
    return pd.DataFrame([
        {"what": "training words (types)", "value": len(v.counts)},
        {"what": f"vocabulary (count >= {v.min_count}, with specials)", "value": len(v)},
        {"what": "word types that became <unk>", "value": len(v.unk_words)},
        {"what": "colour words kept", "value": ", ".join(colour_kept) or "-"},
        {"what": "colour words that became <unk>", "value": ", ".join(colour_unk) or "-"},
        {"what": "best epoch (early stopping)", "value": trained.best_epoch},
    ])


def _figure_path(paths: Paths, name: str) -> Path:
    out = paths.reports / "figures" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def plot_loss_curve(paths: Paths, trained: Any) -> Any:
    """Train/validation loss per epoch of the CNN-LSTM, best epoch marked; saved as cnn_lstm_loss.png."""
    import matplotlib.pyplot as plt

    h = pd.DataFrame(trained.history)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(h["epoch"], h["train_loss"], label="train (teacher forcing)")
    ax.plot(h["epoch"], h["val_loss"], label="validation")
    ax.axvline(trained.best_epoch, color="gray", ls="--", lw=1, label=f"best epoch {trained.best_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy per token")
    ax.set_title(f"CNN-LSTM captioner ({paths.profile})")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(_figure_path(paths, "cnn_lstm_loss.png"), dpi=120)
    return fig


def plot_caption_samples(paths: Paths, sources: list[str], n: int = 6, seed: int = 0, name: str = "caption_samples.png"
                         ) -> Any:
    """Colour images of ``n`` ids that got captioner captions, with each source's generated caption."""
    import textwrap

    import matplotlib.pyplot as plt
    from PIL import Image

    tables = {s: read_caption_csv(paths.captions(s)).set_index("id") for s in sources}
    first = tables[sources[0]]
    pool = first[first["caption_source"] != "reference"].index.tolist() or first.index.tolist()
    ids = sorted(np.random.default_rng(seed).choice(pool, size=min(n, len(pool)), replace=False).tolist())
    manifest = load_manifest(paths).set_index("id")
    # a stand-in is named as such in the figure too ("clip (palette stand-in)")
    labels = {s: f"{s} (palette stand-in)" if tables[s]["stand_in"].astype(str).eq("True").any() else s for s in sources}
    fig, axes = plt.subplots(1, len(ids), figsize=(2.4 * len(ids), 2.3 + 0.7 * len(sources)), squeeze=False)
    for ax, sid in zip(axes[0], ids, strict=True):
        ax.imshow(Image.open(paths.root / manifest.at[sid, "color"]).convert("RGB"))
        ax.set_xticks([])
        ax.set_yticks([])
        lines = [f"{sid}"] + ["\n".join(textwrap.wrap(f"{labels[s]}: {tables[s].at[sid, 'generated']}", 34)) for s in sources]
        ax.set_xlabel("\n".join(lines), fontsize=7, loc="left")
    fig.tight_layout()
    fig.savefig(_figure_path(paths, name), dpi=120, bbox_inches="tight")
    return fig
