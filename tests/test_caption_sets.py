"""Captioning step end to end on the smoke creatures: CSVs, instruction folders, quality table, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from t2p_utils.captions.run import run_captions
from t2p_utils.captions.sets import build_table, clean_caption, read_caption_csv
from t2p_utils.captions.templates import heldout_frames, phrasings
from t2p_utils.config import CaptionConfig, ConfigError, Paths, load_params, load_study, section
from t2p_utils.core.colors import color_words

pytestmark = pytest.mark.integration


def _smoke() -> tuple[Paths, CaptionConfig]:
    """(paths, cfg) of the smoke profile under ``$T2P_ROOT``: what the notebook helpers take."""
    return Paths.for_profile("smoke"), load_study("smoke").captions


@pytest.fixture
def captioned(smoke_data):
    paths, creatures = smoke_data
    summary = run_captions(*_smoke(), progress=False)
    return paths, creatures, summary


def test_profiles_parse_and_smoke_uses_stand_in() -> None:
    for p in ("smoke", "cpu", "full"):
        cfg = load_study(p).captions
        assert "cnn_lstm" in cfg.sources and "clip" in cfg.sources
    assert load_study("smoke").captions.clip_backend == "palette"
    assert load_study("cpu").captions.clip_backend == "palette"
    full = load_study("full").captions
    assert (full.clip_backend, full.clip_model_name, full.caption_model_name) == ("interrogator", "ViT-L-14/openai", "blip-large")
    with pytest.raises(ConfigError, match="unknown key"):
        section({"captions": {"epochz": 3}}, "captions", CaptionConfig)
    with pytest.raises(ValueError, match="clip_backend"):
        CaptionConfig(clip_backend="gpt")


@pytest.mark.filterwarnings("ignore")
def test_smoke_captions_instructions_and_quality(captioned) -> None:
    paths, creatures, summary = captioned
    parts = {c.sprite_id: c.parts for c in creatures}
    assert summary["source"].tolist() == ["reference", "cnn_lstm", "clip", "palette"]
    cfg = load_study("smoke").captions
    n_train = 38  # 48 creatures, 80/10/10
    n_kept = round(cfg.reference_share * n_train)
    for source in ("cnn_lstm", "clip", "palette"):
        df = read_caption_csv(paths.captions(source), expected_ids=list(parts))
        assert len(df) == 48
        assert (df["instruction"] == "Turn it into " + df["caption"]).all()
        assert (df["caption_source"] == "reference").sum() == n_kept
        gen = df[df["caption_source"] != "reference"]
        assert len(gen) == 48 - n_kept
        meta = [json.loads(x) for x in (paths.instructions(source) / "metadata.jsonl").read_text().splitlines()]
        originals = [m for m in meta if not m.get("augmentation")]
        assert len(originals) == n_train  # train split only: test stays held out
        # smoke: one palette-swapped and two part-level recoloured copies per train pair, captioned by the source's
        # own captioner
        recoloured = [m for m in meta if m.get("augmentation")]
        info = json.loads(paths.captions(source).with_suffix(".json").read_text())["recolor"]
        if source in cfg.recolor_sources:
            assert cfg.part_copies == 2 and cfg.instruction_templates == "varied"
            swaps = [m for m in recoloured if m["edited_image_file_name"].endswith("_rc0.png")]
            part = [m for m in recoloured if "_pc" in m["edited_image_file_name"]]
            assert len(swaps) + len(part) == len(recoloured)
            assert len(recoloured) == info["n_recolored"] + info["n_part"]
            assert info["n_recolored"] + info["n_part"] == n_train * (cfg.recolor_copies + cfg.part_copies) - sum(
                "copy" in x["what"] for x in info["skipped"])
            assert len(swaps) >= n_train // 2 and len(part) >= n_train
            assert all(m["augmentation"].startswith("part: ") for m in part)
            assert {m["input_image_file_name"] for m in recoloured} <= {m["input_image_file_name"] for m in originals}
            assert all(m["caption_source"] != "reference" for m in recoloured)
        else:  # no model trains on it (captions.recolor_sources): not augmented
            assert recoloured == [] and info["n_recolored"] == 0 and info["n_part"] == 0
        caption_of = dict(zip(df["id"], df["caption"], strict=True))
        for m in meta:
            assert {"input_image_file_name", "edit_prompt", "edited_image_file_name"} <= set(m)
            assert (paths.instructions(source) / m["input_image_file_name"]).exists()
            assert (paths.instructions(source) / m["edited_image_file_name"]).exists()
            assert not any(m["edit_prompt"].startswith(f) for f in heldout_frames())
            if not m.get("augmentation"):  # varied phrasings of the id's own caption, seeded
                assert m["edit_prompt"] in {t for t, _ in phrasings(caption_of[m["id"]])}
        prompts = [m["edit_prompt"] for m in meta]
        assert sum(p.startswith("Turn it into ") for p in prompts) < len(prompts)  # not one template
    clip = pd.read_csv(paths.captions("clip"), dtype=str, keep_default_na=False)
    assert set(clip.loc[clip["caption_source"] != "reference", "caption_source"]) == {"palette (stand-in for clip-interrogator)"}
    assert (clip.loc[clip["caption_source"] != "reference", "stand_in"] == "True").all()
    assert json.loads(paths.captions("clip").with_suffix(".json").read_text())["stand_in"] is True
    # the palette captions of generated rows name the creature's body and belly colours and nothing it lacks
    pal = pd.read_csv(paths.captions("palette"), dtype=str, keep_default_na=False)
    for r in pal.itertuples():
        w = set(color_words(r.generated))
        assert {parts[r.id]["body"], parts[r.id]["belly"]} <= w <= set(parts[r.id].values())
    # the reference source: kept reference captions only; never overwrites the smoke reference input
    ref_csv = paths.captions("reference")
    assert ref_csv != paths.reference_captions and len(pd.read_csv(ref_csv)) == n_kept
    assert "faithful" in pd.read_csv(paths.reference_captions, comment="#").columns

    from t2p_utils.captions.quality import quality_table

    table = quality_table(*_smoke()).set_index("source")
    assert (paths.reports / "caption_quality.csv").exists() and (paths.reports / "caption_quality.json").exists()
    assert table.loc["reference", "color_precision"] == pytest.approx(1.0)
    assert table.loc["reference", "color_recall"] == pytest.approx(1.0)  # smoke references name every part
    assert table.loc["palette", "color_precision"] == pytest.approx(1.0)
    assert 0.4 < table.loc["palette", "color_recall"] < 1.0  # small parts (eyes) are not named
    assert bool(table.loc["clip", "stand_in"]) and not bool(table.loc["palette", "stand_in"])
    assert table.loc["cnn_lstm", "bleu_n"] == 48 - n_kept
    assert 0.0 <= table.loc["cnn_lstm", "bleu4"] <= 1.0
    assert table.loc["cnn_lstm", "unk_rate"] >= 0.0


def test_second_run_is_cached_and_force_rebuilds(captioned) -> None:
    paths, _, _ = captioned
    before = paths.captions("palette").stat().st_mtime_ns
    again = run_captions(*_smoke(), ["palette"], progress=False)
    assert again["cached"].tolist() == [True]
    assert paths.captions("palette").stat().st_mtime_ns == before
    forced = run_captions(*_smoke(), ["palette"], force=True, progress=False)
    assert forced["cached"].tolist() == [False]


def test_bad_input_named(smoke_data, tmp_path: Path) -> None:
    paths, _ = smoke_data
    # a reference id unknown to the manifest
    ref = paths.reference_captions
    backup = tmp_path / "ref.csv"
    shutil.copy(ref, backup)
    with open(ref, "a", encoding="utf-8") as fh:
        fh.write("zz999,train,a ghost,,\n")
    with pytest.raises(ValueError, match=r"zz999"):
        run_captions(*_smoke(), ["palette"], progress=False)
    shutil.copy(backup, ref)
    # a missing image
    paths.image("color", "s003").unlink()
    with pytest.raises(FileNotFoundError, match=r"s003"):
        run_captions(*_smoke(), ["palette"], progress=False)
    # a caption CSV with missing ids
    csv = tmp_path / "c.csv"
    pd.DataFrame({"id": ["a"], "caption": ["x"], "instruction": ["Turn it into x"]}).to_csv(csv, index=False)
    with pytest.raises(ValueError, match=r"c\.csv.*'b'"):
        read_caption_csv(csv, expected_ids=["a", "b"])


def test_clean_caption_and_empty_captions_are_recorded_skips() -> None:
    assert clean_caption("a  Pokémon\nwith  red eyes") == ("a Pokemon with red eyes", "non-ascii transliterated")
    assert clean_caption("   ") == ("", "empty caption")
    manifest = pd.DataFrame({"id": ["a", "b", "c"], "split": ["train"] * 3})
    kept = pd.DataFrame({"id": ["a"], "caption": ["a red cat"]})
    table, notes = build_table("palette", manifest, kept, ["x", "", "a café"], "palette", False)
    assert table["caption"].tolist() == ["a red cat", "", "a cafe"]
    assert table["instruction"].tolist() == ["Turn it into a red cat", "", "Turn it into a cafe"]
    assert table["caption_source"].tolist() == ["reference", "palette", "palette"]
    assert [n["id"] for n in notes] == ["b", "c"] and "skipped" in notes[0]["what"]


def test_params_section_only_known_keys() -> None:
    for p in ("smoke", "cpu", "full"):
        section(load_params(p), "captions", CaptionConfig)  # raises on unknown keys


@pytest.mark.filterwarnings("ignore")
def test_clip_source_through_real_interrogator_code_with_tiny_models(smoke_data, monkeypatch) -> None:
    """The ``clip`` glue with clip-interrogator itself (tiny random models), labelled as a stand-in."""
    import dataclasses

    import torch

    import t2p_utils.captions.run as cap

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    paths, _ = smoke_data
    cfg = dataclasses.replace(load_study("smoke").captions, clip_backend="tiny", clip_mode="fast", clip_batch_size=16)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = cap.run_source(paths, "clip", cfg, progress=False)
    finally:
        torch.set_num_threads(threads)
    df = read_caption_csv(paths.captions("clip"))
    gen = df[df["caption_source"] != "reference"]
    assert run.stand_in and "tiny random models" in run.captioner and len(gen) == run.n_generated > 0
    # fast mode: "<BLIP caption>, <label>, <label>, ..." with labels from the tiny label lists
    from t2p_utils.captions.clip_interrogate import TINY_LABELS

    labels = {x for v in TINY_LABELS.values() for x in v}
    for c in gen["generated"]:
        assert any(lab in c for lab in labels), c
    cache = paths.interim / "clip_captions_tiny.jsonl"
    # one cached record per image: the 48 sprites and the recoloured train copies, captioned by the same code
    assert len(cache.read_text().splitlines()) == 48 + run.n_recolored + run.n_part and run.n_recolored > 0 < run.n_part


def test_cnn_lstm_reused_unless_settings_change(smoke_data) -> None:
    import dataclasses

    from t2p_utils.captions.sets import train_or_load_cnn_lstm

    paths, _ = smoke_data
    smoke = load_study("smoke").captions
    cfg = dataclasses.replace(smoke, cnn_lstm=dataclasses.replace(smoke.cnn_lstm, epochs=2))
    first = train_or_load_cnn_lstm(paths, cfg, progress=False)
    stamp = (paths.model("cnn_lstm") / "model.safetensors").stat().st_mtime_ns
    again = train_or_load_cnn_lstm(paths, cfg, progress=False)
    assert (paths.model("cnn_lstm") / "model.safetensors").stat().st_mtime_ns == stamp
    assert again.vocab.itos == first.vocab.itos and len(again.history) == 2
    changed = train_or_load_cnn_lstm(paths, dataclasses.replace(cfg, cnn_lstm=dataclasses.replace(cfg.cnn_lstm, epochs=3)),
                                     progress=False)
    assert len(changed.history) == 3
    data = json.loads((paths.model("cnn_lstm") / "data.json").read_text())
    assert len(data["train_ids"]) == round(cfg.reference_share * 38) and len(data["val_ids"]) == 5


def test_changed_reference_captions_invalidate_outputs(smoke_data) -> None:
    paths, _ = smoke_data
    assert run_captions(*_smoke(), ["palette"], progress=False)["cached"].tolist() == [False]
    assert run_captions(*_smoke(), ["palette"], progress=False)["cached"].tolist() == [True]
    text = paths.reference_captions.read_text()
    paths.reference_captions.write_text(text.replace("a drawing of", "a picture of", 1))
    assert run_captions(*_smoke(), ["palette"], progress=False)["cached"].tolist() == [False]
