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
        for k, v in (full.get(name) or {}).items():
            if dataclasses.is_dataclass(default[k]):  # a nested mapping (captions.cnn_lstm): key by key
                sub = dataclasses.asdict(default[k])
                wrong += [f"{name}.{k}.{kk}: code {sub[kk]!r}, full.yaml {vv!r}" for kk, vv in v.items() if sub[kk] != vv]
            elif default[k] != v:
                wrong.append(f"{name}.{k}: code {default[k]!r}, full.yaml {v!r}")
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


# ------------------------------------------------------------------ one loader: nesting, extends, --set (issue 21)
def _user(root: Path, text: str) -> Path:
    path = root / "mine.yaml"
    path.write_text(text)
    return path


def test_the_cnn_lstm_settings_are_their_own_mapping() -> None:
    from t2p_utils.config import load_study
    from t2p_utils.config.captions import CnnLstmConfig

    smoke = load_study("smoke").captions
    assert isinstance(smoke.cnn_lstm, CnnLstmConfig)
    assert (smoke.cnn_lstm.image_size, smoke.cnn_lstm.epochs, smoke.cnn_lstm.lr) == (32, 60, 0.005)
    assert smoke.cnn_lstm.seed == smoke.seed == 42  # the section's seed reaches its parts


def test_extends_merges_at_every_depth(tmp_root: Path) -> None:
    from t2p_utils.config import load_study

    study = load_study(str(_user(tmp_root, "extends: smoke\ncaptions:\n  cnn_lstm:\n    lr: 0.01\n")), tmp_root)
    assert study.captions.cnn_lstm.lr == 0.01
    assert study.captions.cnn_lstm.image_size == 32 and study.captions.cnn_lstm.epochs == 60  # smoke's, kept


def test_set_overrides_any_depth_and_is_checked() -> None:
    from t2p_utils.config import load_study

    study = load_study("smoke", overrides=["captions.cnn_lstm.epochs=2", "compare.seeds=[0, 1]",
                                           "train.max_train_steps=7"])
    assert (study.captions.cnn_lstm.epochs, study.compare.seeds, study.train.max_train_steps) == (2, [0, 1], 7)
    assert load_study("smoke").captions.cnn_lstm.epochs == 60  # the file is untouched
    with pytest.raises(ConfigError, match=r"cnn_lstm: unknown key 'epochz' \(did you mean 'epochs'\?\)"):
        load_study("smoke", overrides=["captions.cnn_lstm.epochz=2"])
    with pytest.raises(ConfigError, match=r"cnn_lstm: key 'epochs' must be int, got 'two'"):
        load_study("smoke", overrides=["captions.cnn_lstm.epochs=two"])
    with pytest.raises(ConfigError, match="write section.key=value"):
        load_study("smoke", overrides=["epochs=2"])


def test_an_old_flat_key_names_its_new_place(tmp_root: Path) -> None:
    from t2p_utils.config import load_study

    path = _user(tmp_root, "extends: smoke\ncaptions:\n  epochs: 3\n  beam_size: 2\n")
    with pytest.raises(ConfigError) as err:
        load_study(str(path), tmp_root)
    assert len(err.value.problems) == 2
    assert "key 'epochs' moved to 'cnn_lstm.epochs': write it under cnn_lstm: as epochs: 3" in str(err.value)
    assert "key 'beam_size' moved to 'cnn_lstm.beam_size'" in str(err.value) and str(path) in str(err.value)


def test_notebooks_demo_runner_and_cli_read_params_only_through_load_study() -> None:
    """No raw params reads (load_params, section) outside t2p_utils.config: one loader, no second set of defaults."""
    import ast
    import json

    repo = Path(__file__).resolve().parents[1]
    sources = {p: p.read_text() for p in (repo / "t2p_utils").rglob("*.py") if "config" not in p.parts}
    for nb in (repo / "notebooks").glob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        sources[nb] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    raw = {"load_params", "section", "section_values", "from_dict"}
    found = []
    for path, text in sources.items():
        tree = ast.parse(text)
        imported = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                    and (n.module or "").startswith("t2p_utils.config") for a in n.names} & raw
        found += [f"{path.relative_to(repo)}:{n.lineno}" for n in ast.walk(tree)
                  if isinstance(n, ast.Call) and getattr(n.func, "id", None) in imported]
    assert found == [], found


def test_the_vae_settings_are_their_own_mapping_and_old_keys_name_it(tmp_root: Path) -> None:
    from t2p_utils.config import VaeConfig, load_study

    cpu = load_study("cpu").train
    assert isinstance(cpu.vae, VaeConfig) and (cpu.vae.steps, cpu.vae.recolor_copies) == (1200, 1)
    path = _user(tmp_root, "extends: cpu\ntrain:\n  vae_steps: 600\n  vae:\n    batch_size: 0\n")
    with pytest.raises(ConfigError) as err:
        load_study(str(path), tmp_root)
    text = str(err.value)
    assert "key 'vae_steps' moved to 'vae.steps': write it under vae: as steps: 600" in text
    assert "vae: key 'batch_size' must be >= 1, got 0" in text


@pytest.mark.parametrize("name", ["cpu_20min.yaml", "tuxpaint.yaml"])
def test_the_benchmark_params_files_pass_the_check(name: str) -> None:
    from t2p_utils.config import load_study

    assert load_study(str(Path(__file__).resolve().parents[1] / "benchmarks" / name), check=False).problems() == []
