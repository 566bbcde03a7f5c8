from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from t2p_utils.config import ConfigError, Paths, ScrapeConfig, from_dict, load_params, section


def test_paths_follow_the_data_contracts(tmp_root: Path) -> None:
    p = Paths.for_profile("cpu")
    assert p.root == tmp_root
    assert p.image("lineart", "25") == tmp_root / "data/processed/cpu/lineart/25.png"
    assert p.manifest == tmp_root / "data/processed/cpu/manifest.csv"
    assert p.captions("clip") == tmp_root / "data/captions/cpu/clip.csv"
    assert p.instructions("clip") == tmp_root / "data/instructions/cpu/clip"
    assert p.model("ip2p_clip") == tmp_root / "models/cpu/ip2p_clip"
    assert p.reports == tmp_root / "reports/cpu"
    # real profiles share the committed reference captions; smoke generates its own
    assert p.reference_captions == tmp_root / "data/captions/reference.csv"
    assert Paths.for_profile("smoke").reference_captions == tmp_root / "data/processed/smoke/reference_captions.csv"
    with pytest.raises(ValueError, match="color, lineart or mask"):
        p.image("sketch", "25")


def test_unknown_profile_names_the_choices(tmp_root: Path) -> None:
    with pytest.raises(ConfigError, match="smoke, cpu, full"):
        Paths.for_profile("gpu")


@pytest.mark.parametrize("profile", ["smoke", "cpu", "full"])
def test_every_committed_params_file_builds_every_step_config(profile: str) -> None:
    params = load_params(profile)
    assert params["profile"] == profile
    cfg = section(params, "scrape", ScrapeConfig)
    assert cfg.source == ("synthetic" if profile == "smoke" else "npm")


def test_malformed_yaml_names_the_file(tmp_root: Path) -> None:
    (tmp_root / "params" / "cpu.yaml").write_text("scrape: [unclosed\n")
    with pytest.raises(ConfigError, match=r"cpu\.yaml is not valid YAML"):
        load_params("cpu")


def test_unknown_key_lists_the_valid_keys() -> None:
    @dataclass
    class Cfg:
        steps: int = 3
        lr: float = 1e-3

    assert from_dict(Cfg, {"lr": 1}).lr == 1  # ints are fine where floats are expected
    with pytest.raises(ConfigError, match="unknown key.*stepz.*valid keys for Cfg are: lr, steps"):
        from_dict(Cfg, {"stepz": 4})
    with pytest.raises(ConfigError, match="'steps' must be int"):
        from_dict(Cfg, {"steps": "four"})


def test_bad_scrape_source_is_rejected() -> None:
    with pytest.raises(ConfigError, match="npm, http, kaggle, folder, synthetic"):
        ScrapeConfig(source="ftp")


def test_resolve_device_auto_and_explicit() -> None:
    import torch

    from t2p_utils.config import resolve_device

    assert resolve_device() == resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"


def test_the_top_level_seed_reaches_every_step_unless_a_section_sets_its_own() -> None:
    from t2p_utils.config import CaptionConfig, CompareConfig, ScrapeConfig, TrainConfig

    params = {"seed": 7, "train": {"seed": 3}, "captions": {}}
    assert section(params, "scrape", ScrapeConfig).seed == 7
    assert section(params, "captions", CaptionConfig).seed == 7
    assert section(params, "train", TrainConfig).seed == 3  # its own
    assert section(params, "compare", CompareConfig).seeds == CompareConfig().seeds  # no seed field: untouched
    assert section({}, "train", TrainConfig).seed == TrainConfig().seed


def test_code_defaults_are_the_full_recipe_so_no_default_disagrees() -> None:
    """``full.yaml`` is the seed's recipe and the dataclass defaults are the same recipe: a value full.yaml sets
    never differs from its code default (smoke and cpu state every value where they differ from it)."""
    import dataclasses

    from t2p_utils.config import CaptionConfig, CompareConfig, ScrapeConfig, TrainConfig

    full = load_params("full")
    wrong = []
    for name, cls in (("scrape", ScrapeConfig), ("captions", CaptionConfig), ("train", TrainConfig),
                      ("compare", CompareConfig)):
        default = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                   for f in dataclasses.fields(cls)}
        wrong += [f"{name}.{k}: code {default[k]!r}, full.yaml {v!r}" for k, v in (full.get(name) or {}).items()
                  if default[k] != v]
    assert wrong == []


def test_one_study_config_holds_every_step_and_reading_compare_does_not_import_the_trainer(tmp_root: Path) -> None:
    import subprocess
    import sys

    from t2p_utils.config.study import load_study

    path = tmp_root / "mine.yaml"
    path.write_text("extends: cpu\nseed: 11\ncompare: {steps: 4}\n")
    study = load_study(str(path))
    assert (study.paths.profile, study.seed) == ("mine", 11)
    assert study.compare == load_study(str(path)).compare and study.compare.steps == 4
    assert study.captions == load_study(str(path)).captions and study.captions.seed == 11
    assert study.train == load_study(str(path)).train and study.train.seed == 11 and study.scrape.seed == 11
    code = ("import sys; from t2p_utils.config.study import load_study; load_study('cpu').compare; "
            "print('t2p_utils.train.loop' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
