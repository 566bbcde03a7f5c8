"""Your own line art: user params files, the kaggle and folder sources, derived instructions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from owndata import creature, write_folder, write_kaggle
from PIL import Image

from t2p_utils.config import ConfigError, Paths, ScrapeConfig, load_params, load_study, resolve_profile
from t2p_utils.core.colors import color_coverage, color_words
from t2p_utils.core.manifest import read_manifest
from t2p_utils.scrape.derive import ABSENT_MAX_SHARE, FAITHFUL_MIN_SHARE, prepare_references, reference_summary
from t2p_utils.scrape.run import scrape
from t2p_utils.scrape.userdata import NotLineArt, check_lineart, load_square, mask_from_lineart


def _params(root: Path, name: str, body: dict) -> Path:
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


# ------------------------------------------------------------------ user profiles
def test_a_params_file_is_a_profile_named_by_its_key_or_stem(tmp_root: Path) -> None:
    keyed = _params(tmp_root, "whatever", {"profile": "mine", "extends": "cpu"})
    plain = _params(tmp_root, "kaggle_pairs", {"extends": "smoke"})
    assert resolve_profile(str(keyed), tmp_root) == ("mine", keyed.resolve())
    paths = Paths.for_profile(str(plain), tmp_root)
    assert (paths.profile, paths.is_user, paths.spec) == ("kaggle_pairs", True, str(plain.resolve()))
    assert paths.models == tmp_root / "models" / "kaggle_pairs" and paths.processed.name == "kaggle_pairs"
    assert resolve_profile("cpu", tmp_root) == ("cpu", None)
    assert resolve_profile(str(tmp_root / "params" / "cpu.yaml"), tmp_root) == ("cpu", None)


def test_extends_starts_from_a_built_in_profile_and_own_keys_win(tmp_root: Path) -> None:
    path = _params(tmp_root, "mine", {"extends": "cpu", "seed": 7, "compare": {"steps": 3}})
    params, cpu = load_params(str(path), tmp_root), load_params("cpu", tmp_root)
    assert params["seed"] == 7 and params["compare"]["steps"] == 3
    assert params["compare"]["text_guidance"] == cpu["compare"]["text_guidance"]  # inherited key by key
    assert params["train"] == cpu["train"] and params["profile"] == "mine"


@pytest.mark.parametrize(("body", "match"), [
    ({"extends": "cpu", "compare": {"stepz": 3}}, None),  # checked by the step's dataclass (below)
    ({"extends": "cpu", "trian": {}}, "unknown top-level key.*trian.*valid keys are"),
    ({"extends": "gpu"}, "extends: 'gpu' must be a built-in profile"),
    ({"profile": "cpu"}, "a built-in profile: its outputs would overwrite"),
    ({"profile": "../up"}, "must be letters, digits"),
])
def test_bad_user_params_are_rejected_with_the_fix(tmp_root: Path, body: dict, match: str | None) -> None:
    path = _params(tmp_root, "bad", body)
    if match is None:
        with pytest.raises(ConfigError, match="unknown key.*stepz.*valid keys"):
            load_study(str(path), tmp_root)
        return
    with pytest.raises(ConfigError, match=match):
        load_params(str(path), tmp_root)


def test_a_missing_params_file_is_named(tmp_root: Path) -> None:
    with pytest.raises(ConfigError, match="nope.yaml does not exist"):
        Paths.for_profile("nope.yaml", tmp_root)


# ------------------------------------------------------------------ images
def test_odd_sizes_are_padded_not_stretched_and_transparency_becomes_white(tmp_path: Path) -> None:
    img = Image.new("RGBA", (40, 80), (255, 255, 255, 0))
    img.paste(Image.new("RGBA", (40, 80), (10, 10, 10, 255)), (0, 0))
    img.save(tmp_path / "tall.png")
    out = load_square(tmp_path / "tall.png", 64)
    assert out.rgb.shape == (64, 64, 3) and out.note == "padded from 40x80"
    assert (out.rgb[:, :14] == 255).all() and (out.rgb[:, -14:] == 255).all()  # white bars, not a stretched square
    assert (out.rgb[:, 20:44] < 20).all()
    half = Image.new("RGBA", (64, 64), (200, 0, 0, 0))
    half.paste(Image.new("RGBA", (32, 64), (200, 0, 0, 255)), (0, 0))
    half.save(tmp_path / "half.png")
    out = load_square(tmp_path / "half.png", 64)
    assert (out.rgb[:, 40:] == 255).all() and out.alpha is not None and out.alpha[:, :30].all() and not out.alpha[:, 34:].any()


def test_not_an_image_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_text("not a picture")
    with pytest.raises(ValueError, match=r"x.png: not a readable image"):
        load_square(tmp_path / "x.png", 64)


def test_line_art_checks_catch_colour_images_and_empty_pages() -> None:
    _, color, line, _ = creature(0)
    check_lineart(np.asarray(line))  # a real line drawing passes
    with pytest.raises(NotLineArt, match="looks like a colour image"):
        check_lineart(np.asarray(color))
    with pytest.raises(NotLineArt, match="no outline found"):
        check_lineart(np.full((64, 64, 3), 255, np.uint8))
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    with pytest.raises(NotLineArt):
        check_lineart(noise)


def test_the_mask_of_bare_line_art_is_what_the_outline_encloses() -> None:
    _, _, line, mask = creature(3)
    got, how = mask_from_lineart(np.asarray(line))
    truth = np.asarray(mask) > 127
    iou = (got & truth).sum() / (got | truth).sum()
    assert iou > 0.9 and how.startswith("mask: enclosed")


# ------------------------------------------------------------------ sources
def _scrape(tmp_root: Path, name: str, scrape_cfg: dict) -> tuple[Paths, pd.DataFrame]:
    path = _params(tmp_root, name, {"extends": "smoke", "scrape": scrape_cfg})
    paths = Paths.for_profile(str(path), tmp_root)
    from t2p_utils.config import section

    return paths, scrape(paths, section(load_params(paths.spec, tmp_root), "scrape", ScrapeConfig))


def test_kaggle_test_only_with_an_odd_size_and_unpaired_files(tmp_root: Path) -> None:
    data = tmp_root / "sketch2pokemon"
    write_kaggle(data, test=6, odd=True, unpaired=True)
    paths, manifest = _scrape(tmp_root, "k", {"source": "kaggle", "kaggle_dir": str(data)})
    ok = manifest[manifest["status"] == "ok"]
    assert set(ok["id"]) == {f"test-{j}" for j in range(6)} and set(ok["split"]) == {"test"}
    odd = manifest.set_index("id").loc["test-0"]
    assert "padded from 255x256" in odd["notes"]
    assert Image.open(paths.root / odd["color"]).size == (64, 64)
    orphan = manifest[manifest["source_path"].str.endswith("orphan.jpg")]
    assert orphan["status"].tolist() == ["error"] and "colour image without line art" in orphan["error"].iloc[0]
    assert read_manifest(paths.manifest)["id"].tolist() == ok["id"].tolist()


def test_kaggle_train_and_test_keeps_the_folder_splits(tmp_root: Path) -> None:
    data = tmp_root / "k2"
    write_kaggle(data, train=10, test=3, unpaired=True)
    _, manifest = _scrape(tmp_root, "k2", {"source": "kaggle", "kaggle_dir": str(data)})
    ok = manifest[manifest["status"] == "ok"].set_index("id")
    assert (ok.loc[[f"test-{j}" for j in range(3)], "split"] == "test").all()
    assert set(ok.loc[[f"train-{j}" for j in range(10)], "split"]) == {"train", "val"}
    lonely = manifest[manifest["source_path"].str.endswith("lonely.jpg")]
    assert lonely["status"].tolist() == ["error"] and "no colour pair" in lonely["error"].iloc[0]


def test_a_kaggle_folder_without_a_layout_names_what_it_expects(tmp_root: Path) -> None:
    (tmp_root / "empty").mkdir()
    with pytest.raises(ConfigError, match="neither trainA/ nor testA/"):
        _scrape(tmp_root, "k3", {"source": "kaggle", "kaggle_dir": str(tmp_root / "empty")})


def test_folder_source_with_bad_files_records_each_and_keeps_the_rest(tmp_root: Path) -> None:
    data = tmp_root / "chars"
    write_folder(data, with_color=12, lineart_only=2)
    creature(50)[1].save(data / "lineart" / "photo.png")  # a colour image where line art belongs
    (data / "lineart" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    creature(51)[1].save(data / "color" / "no_line.jpg")
    (data / "lineart" / "readme.txt").write_text("not an image: ignored")
    paths, manifest = _scrape(tmp_root, "f", {"source": "folder", "folder_dir": "chars"})  # relative to the params file
    rows = manifest.set_index("id")
    assert "looks like a colour image" in rows.at["photo", "error"]
    assert "not a readable image" in rows.at["broken", "error"]
    assert "colour image without line art" in rows.at["no_line", "error"]
    ok = manifest[manifest["status"] == "ok"].set_index("id")
    assert len(ok) == 14
    assert (ok.loc[["char_12", "char_13"], "split"] == "test").all()  # no colour image: test only
    assert (ok.loc[["char_12", "char_13"], "color"] == "").all()
    assert "no colour image" in ok.at["char_12", "notes"]
    assert "padded from 80x64" in ok.at["char_02", "notes"]
    assert (ok["split"] == "train").sum() >= 8
    mask = np.asarray(Image.open(paths.root / ok.at["char_12", "mask"])) > 127
    assert 0.15 < mask.mean() < 0.9


def test_a_folder_with_nothing_usable_stops_naming_the_folder(tmp_root: Path) -> None:
    data = tmp_root / "photos"
    (data / "lineart").mkdir(parents=True)
    creature(1)[1].save(data / "lineart" / "a.png")
    with pytest.raises(ConfigError, match=r"photos: none of its 1 images is usable \(a.png: looks like a colour"):
        _scrape(tmp_root, "p", {"source": "folder", "folder_dir": str(data)})


# ------------------------------------------------------------------ derived instructions
def _region(paths: Paths, row: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.asarray(Image.open(paths.root / row["color"]).convert("RGB"))
    mask = np.asarray(Image.open(paths.root / row["mask"]).convert("L")) > 127
    line = np.asarray(Image.open(paths.root / row["lineart"]).convert("L"))
    return rgb, mask & (line >= 200)


def test_derived_instructions_name_true_colours_and_absent_ones(tmp_root: Path) -> None:
    data = tmp_root / "chars"
    write_folder(data, with_color=20, lineart_only=2)
    paths, manifest = _scrape(tmp_root, "d", {"source": "folder", "folder_dir": str(data), "test_frac": 0.3})
    table = prepare_references(paths)
    ref = pd.read_csv(paths.reference_captions, comment="#", dtype=str, keep_default_na=False).set_index("id")
    rows = manifest[manifest["status"] == "ok"].set_index("id")
    tested = 0
    for sid, row in rows[rows["split"] == "test"].iterrows():
        cf = color_words(ref.at[sid, "counterfactual"])
        assert cf and ref.at[sid, "counterfactual_origin"].startswith("derived")
        if not row["color"]:
            assert ref.at[sid, "faithful"] == ""  # no ground truth, no faithful instruction
            continue
        cover = color_coverage(*_region(paths, row))
        faithful = color_words(ref.at[sid, "faithful"])
        assert faithful and all(cover[c] >= FAITHFUL_MIN_SHARE for c in faithful), (sid, faithful, cover)
        assert all(cover[c] < ABSENT_MAX_SHARE for c in cf), (sid, cf, cover)
        tested += 1
    assert tested >= 3
    train = rows[rows["split"] == "train"].index
    assert (ref.loc[train, "caption"] != "").all() and (ref.loc[train, "caption_origin"].str.startswith("derived")).all()
    assert set(table["column"]) == {"caption", "faithful", "counterfactual"}
    assert table.loc[table["origin"].str.startswith("none"), "count"].sum() == 2  # two faithful without ground truth
    # same data, same seed: the same instructions
    again = prepare_references(paths)
    pd.testing.assert_frame_equal(table, again)


def test_a_users_reference_file_wins_over_derivation(tmp_root: Path) -> None:
    data = tmp_root / "chars"
    write_folder(data, with_color=10)
    (tmp_root / "mine.csv").write_text("id,faithful\nchar_00,Turn it into a creature with a gold body.\n")
    path = _params(tmp_root, "u", {"extends": "smoke", "scrape": {"source": "folder", "folder_dir": str(data),
                                                                   "test_frac": 1.0},
                                   "captions": {"reference_file": "mine.csv"}})
    paths = Paths.for_profile(str(path), tmp_root)
    from t2p_utils.config import section

    scrape(paths, section(load_params(paths.spec, tmp_root), "scrape", ScrapeConfig))
    prepare_references(paths)
    ref = pd.read_csv(paths.reference_captions, comment="#", dtype=str, keep_default_na=False).set_index("id")
    assert ref.at["char_00", "faithful"] == "Turn it into a creature with a gold body."
    assert ref.at["char_00", "faithful_origin"] == "your reference file"
    assert ref.at["char_01", "faithful_origin"].startswith("derived")
    summary = reference_summary(paths)
    assert summary.query("column == 'faithful' and origin == 'your reference file'")["count"].tolist() == [1]


def test_the_params_seed_decides_split_instructions_and_weights(tmp_root: Path) -> None:
    """Two params files differing only in ``seed:``: different splits, derived instructions and weights; the same
    seed twice: identical ones."""
    import dataclasses
    import json

    import torch
    from safetensors.torch import load_file
    from test_train import TINY, write_instructions

    from t2p_utils.config import TrainConfig, section
    from t2p_utils.scrape.synthetic import make_synthetic
    from t2p_utils.train.loop import train

    data = tmp_root / "chars"
    write_folder(data, with_color=24)
    made = {}
    for name, seed in (("s1", 1), ("s1_again", 1), ("s2", 2)):
        path = _params(tmp_root, name, {"extends": "smoke", "seed": seed,
                                         "scrape": {"source": "folder", "folder_dir": str(data), "test_frac": 0.25}})
        paths = Paths.for_profile(str(path), tmp_root)
        params = load_params(paths.spec, tmp_root)
        manifest = scrape(paths, section(params, "scrape", ScrapeConfig))
        prepare_references(paths)
        ref = pd.read_csv(paths.reference_captions, comment="#", dtype=str, keep_default_na=False)
        made[name] = (manifest.set_index("id")["split"].to_dict(), ref.set_index("id")["counterfactual"].to_dict(),
                      section(params, "train", TrainConfig).seed)
    assert made["s1"] == made["s1_again"]
    assert made["s1"][0] != made["s2"][0]  # the split
    common = [i for i, s in made["s1"][0].items() if s == "test" and made["s2"][0].get(i) == "test"]
    assert common and any(made["s1"][1][i] != made["s2"][1][i] for i in common)  # the seeded swaps
    assert (made["s1"][2], made["s2"][2]) == (1, 2)  # the trainer's seed

    smoke = Paths.for_profile("smoke", tmp_root)
    make_synthetic(smoke, n=12, size=64, seed=3)
    weights = {}
    for name, seed in (("a", made["s1"][2]), ("b", made["s1"][2]), ("c", made["s2"][2])):
        write_instructions(smoke, name)
        cfg = dataclasses.replace(TrainConfig(**TINY), seed=seed, max_train_steps=2, use_ema=False, mixed_precision="no")
        d = train(cfg, smoke, name)
        weights[name] = load_file(d / "unet" / "diffusion_pytorch_model.safetensors")
        assert json.loads((d / "train_summary.json").read_text())["config"]["seed"] == seed
    same = [torch.equal(weights["a"][k], weights["b"][k]) for k in weights["a"]]
    differ = [torch.equal(weights["a"][k], weights["c"][k]) for k in weights["a"]]
    assert all(same) and not all(differ)
