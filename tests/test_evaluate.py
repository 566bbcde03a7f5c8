"""05_compare on synthetic creatures: oracle backends with known answers, then a tiny real pipeline."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from t2p_utils.compare import metrics as M
from t2p_utils.compare.findings import findings, headline_table
from t2p_utils.compare.items import CompareError, caption_of, load_test_items, showcase_ids
from t2p_utils.compare.run import CompareResult, load_result, output_files, run_compare
from t2p_utils.config import CompareConfig, Paths, load_study, section
from t2p_utils.config import compare as CC
from t2p_utils.inference.backends import PipelineBackend
from t2p_utils.scrape.synthetic import make_synthetic

REPO = Path(__file__).resolve().parents[1]
N_CREATURES = 30  # -> 3 test ids


def make_root(tmp: Path, n: int = N_CREATURES) -> Paths:
    shutil.copytree(REPO / "params", tmp / "params")
    paths = Paths.for_profile("smoke", root=tmp)
    make_synthetic(paths, n=n, size=64, seed=42)
    return paths


def fake_model(paths: Paths, name: str) -> None:
    folder = paths.model(name)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text("{}")


class OracleBackend:
    """``ip2p_clip`` returns the ground truth colour image; every other model returns the line art unchanged."""

    def __init__(self, paths: Paths) -> None:
        self.truth: dict[bytes, Image.Image] = {}
        for p in paths.lineart_dir.glob("*.png"):
            line = Image.open(p).convert("RGB")
            self.truth[line.tobytes()] = Image.open(paths.color_dir / p.name).convert("RGB")
        self.loads: list[str] = []
        self.calls: list[dict[str, Any]] = []

    def load(self, source: str, device: str) -> str:
        self.loads.append(source)
        return Path(source).name

    def generate(self, pipe: str, images: list[Image.Image], prompts: list[str], steps: int,
                 text_guidance: float, image_guidance: float, seed: int) -> list[Image.Image]:
        self.calls.append({"pipe": pipe, "n": len(images), "tg": text_guidance, "ig": image_guidance, "seed": seed})
        if pipe == "ip2p_clip":
            return [self.truth[im.tobytes()].copy() for im in images]
        return [im.copy() for im in images]


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Paths, CompareConfig, OracleBackend, CompareResult]:
    paths = make_root(tmp_path_factory.mktemp("oracle"))
    for name in ("ip2p_cnn_lstm", "ip2p_clip"):
        fake_model(paths, name)
    cfg = load_study("smoke", paths.root).compare
    backend = OracleBackend(paths)
    return paths, cfg, backend, run_compare(paths, cfg, backend=backend)


def test_params_sections_build_configs() -> None:
    smoke = load_study("smoke", REPO).compare
    full = load_study("full", REPO).compare
    assert "base" not in smoke.models and "base" in full.models
    assert full.clip_direction and not smoke.clip_direction
    assert load_study("cpu", REPO).compare.outline_l == 60.0 and full.outline_l == 35.0
    assert min(full.sweep_image_guidance) == 1.0 and max(full.sweep_image_guidance) == 2.2
    assert min(full.sweep_text_guidance) == 3.0 and max(full.sweep_text_guidance) == 12.0
    with pytest.raises(ValueError, match="unknown key"):
        section({"compare": {"stepz": 3}}, "compare", CompareConfig)


def test_showcase_rule_is_an_even_spread() -> None:
    ids = [f"s{i:03d}" for i in range(10, 0, -1)]  # unsorted on purpose
    assert showcase_ids(ids, 3) == ["s001", "s005", "s010"]  # positions 0, round(4.5) = 4, 9
    assert showcase_ids(ids, 1) == ["s001"]
    assert showcase_ids(ids[:2], 5) == ["s009", "s010"]
    assert caption_of("Turn it into a red cat.") == "a red cat"


def test_oracle_rows_and_known_values(oracle_run: Any) -> None:
    paths, _cfg, _backend, res = oracle_run
    s = res.samples
    assert len(s) == 3 * 2 * 4 * 2  # ids x models x variants (raw, protected, upsampled, flat) x prompts (one seed)
    assert sorted(s["id"].unique()) == res.summary["test_ids"] and len(res.summary["test_ids"]) == 3
    gt = s[(s.model == "ip2p_clip") & (s.prompt == "faithful") & s.variant.isin(["raw", "protected"])]
    assert (gt["psnr"] == math.inf).all() and (gt["delta_e"] == 0).all() and np.allclose(gt["ssim"], 1.0)
    assert (gt["leakage"] == 0).all() and (gt["line_preservation"] == 1).all()
    assert (gt["adherence"] >= 0.5).all()  # the body colour at least is present
    cf = s[(s.model == "ip2p_clip") & (s.prompt == "counterfactual") & (s.variant == "raw")]
    assert (cf["adherence"] == 0).all()  # counterfactual colours are by construction absent from the truth
    assert cf["psnr"].isna().all()
    blank = s[(s.model == "ip2p_cnn_lstm") & (s.variant == "raw")]
    assert (blank["adherence"] == 0).all() and (blank["leakage"] == 0).all() and (blank["line_preservation"] == 1).all()
    assert (blank.loc[blank.prompt == "faithful", "delta_e"] > 5).all()
    for rel in s["image"]:
        assert (paths.reports / rel).exists()


def test_flat_variant_is_the_drawing_at_its_size_with_known_values(oracle_run: Any) -> None:
    """The oracle paints the 64 px ground truth: flat-filled onto the 256 px drawing it is nearly the 256 px truth,
    its strokes exactly the drawing's; the line art returned unchanged stays the drawing (white regions)."""
    paths, cfg, _backend, res = oracle_run
    s = res.samples.set_index(["model", "variant", "prompt", "id"])
    assert cfg.drawing_size == 256 and cfg.drawing_outline_l == 35.0
    for sid in res.summary["test_ids"]:
        flat = s.loc[("ip2p_clip", "flat", "faithful", sid)]
        up = s.loc[("ip2p_clip", "upsampled", "faithful", sid)]
        assert flat["line_preservation"] == 1.0 and flat["leakage"] < 0.01 and flat["fell_back"] == 0.0
        assert flat["region_purity"] == 1.0 and flat["delta_e"] < 5.0 and flat["ssim"] > 0.9
        assert flat["delta_e"] < up["delta_e"] and flat["line_preservation"] > up["line_preservation"]
        img = Image.open(paths.reports / flat["image"])
        assert img.size == (256, 256)  # the drawing's size, not the model's 64 px
        line = np.asarray(Image.open(paths.processed / "drawing256" / "lineart" / f"{sid}.png").convert("RGB"))
        blank = s.loc[("ip2p_cnn_lstm", "flat", "faithful", sid)]
        assert blank["line_preservation"] == 1.0 and blank["leakage"] == 0.0
        same = np.abs(np.asarray(Image.open(paths.reports / blank["image"]).convert("RGB")).astype(int) - line).max(-1) <= 3
        assert same.mean() > 0.99  # (a sliver of 30-50 px between two outlines may take the 64 px outline's grey)
        assert np.isnan(s.loc[("ip2p_clip", "raw", "faithful", sid), "region_purity"])


def test_summary_means_match_samples_and_paired_sign(oracle_run: Any) -> None:
    _, _, _, res = oracle_run
    m = res.metrics.set_index(["model", "variant", "prompt", "metric"])
    s = res.samples
    want = s[(s.model == "ip2p_cnn_lstm") & (s.variant == "raw") & (s.prompt == "faithful")]["delta_e"].mean()
    row = m.loc[("ip2p_cnn_lstm", "raw", "faithful", "delta_e")]
    assert row["mean"] == pytest.approx(want) and row["n"] == 3 and row["ci_low"] <= want <= row["ci_high"]
    assert ("ip2p_cnn_lstm", "raw", "counterfactual", "psnr") not in m.index
    p = res.paired.set_index(["a", "b", "prompt", "metric"])
    d = p.loc[("ip2p_cnn_lstm/raw", "ip2p_clip/raw", "faithful", "delta_e")]
    assert d["mean_diff"] == pytest.approx(want) and d["verdict"] == "ip2p_clip/raw better"
    ad = p.loc[("ip2p_cnn_lstm/raw", "ip2p_clip/raw", "faithful", "adherence")]
    assert ad["mean_diff"] < 0 and ad["verdict"] == "ip2p_clip/raw better"


def test_files_labels_and_stand_ins(oracle_run: Any) -> None:
    paths, _cfg, _backend, res = oracle_run
    files = output_files(paths)
    assert all(p.exists() for p in files.values())
    js = json.loads(files["metrics_json"].read_text())
    assert js["ip2p_clip"]["raw"]["faithful"]["psnr"]["mean"] == "inf"
    assert "palette stand-in" in js["ip2p_clip"]["label"]
    assert any("palette" in x for x in res.summary["stand_in"]) and any("scratch" in x for x in res.summary["stand_in"])
    assert [m.name for m in res.models] == ["ip2p_cnn_lstm", "ip2p_clip"]  # ip2p_reference absent -> skipped
    table = headline_table(res)
    assert list(table.index.get_level_values("variant")) == ["raw", "protected", "upsampled", "flat"] * 2
    assert table.loc[("CNN-LSTM captions", "raw"), "leakage ↓"].startswith("0.000 [")
    found = findings(res)
    assert found[0].startswith("smoke profile")
    de = next(line for line in found if line.startswith("faithful instruction, delta_e"))
    assert "CLIP captions (palette stand-in) beats CNN-LSTM captions" in de  # oracle ΔE 0 vs the unchanged line art


def test_sweep_covers_the_grid(oracle_run: Any) -> None:
    _, cfg, backend, res = oracle_run
    sw = res.sweep
    assert len(sw) == len(cfg.sweep_image_guidance) * len(cfg.sweep_text_guidance)
    assert set(sw["model"]) == {"ip2p_clip"} and set(sw["id"]) == {res.showcase[0]}
    sweep_calls = {(c["ig"], c["tg"]) for c in backend.calls if c["n"] == 1}
    assert sweep_calls == {(ig, tg) for ig in cfg.sweep_image_guidance for tg in cfg.sweep_text_guidance}
    assert (sw["delta_e"] == 0).all()  # the oracle ignores guidance


def test_rerun_skips_unless_forced(oracle_run: Any) -> None:
    paths, cfg, backend, res = oracle_run
    n_loads = len(backend.loads)
    again = run_compare(paths, cfg, backend=backend)
    assert len(backend.loads) == n_loads  # nothing regenerated
    pd.testing.assert_frame_equal(again.metrics, res.metrics, check_dtype=False)
    forced = run_compare(paths, cfg, backend=backend, force=True)
    assert len(backend.loads) == n_loads + 2
    pd.testing.assert_frame_equal(forced.metrics, res.metrics)


def test_full_profile_adds_zero_shot_base_seeds_and_clip_direction(tmp_path: Path) -> None:
    from test_metrics import tiny_clip_scorer

    shutil.copytree(REPO / "params", tmp_path / "params")
    paths = Paths.for_profile("full", root=tmp_path)
    make_synthetic(paths, n=N_CREATURES, size=64, seed=42)
    for name in ("ip2p_cnn_lstm", "ip2p_clip"):
        fake_model(paths, name)
    cfg = load_study("full", paths.root).compare
    assert cfg.seeds == [0, 1, 2] and "base" in cfg.models and cfg.clip_direction
    cfg = dataclasses.replace(cfg, n_boot=200, seeds=[0, 1], sweep_image_guidance=[1.0, 2.2], sweep_text_guidance=[3.0, 12.0],
                              torch_threads=1)
    backend = OracleBackend(paths)
    factory_calls: list[str] = []

    def factory(c: CompareConfig, device: str) -> Any:
        factory_calls.append(f"{c.clip_model}/{c.clip_pretrained}")
        return tiny_clip_scorer()

    res = run_compare(paths, cfg, backend=backend, clip_scorer_factory=factory)
    assert factory_calls == ["ViT-L-14/openai"]
    assert backend.loads[0] == "timbrooks/instruct-pix2pix"  # the zero-shot base comes from the hub
    base = res.models[0]
    assert base.name == "base" and "timbrooks/instruct-pix2pix" in base.display and base.stand_ins == ()
    assert res.summary["stand_in"] == [] and "CLIP" in res.models[2].display and "stand-in" not in res.models[2].display
    s = res.samples
    assert len(s) == 3 * 3 * 4 * 2 * 2  # models x ids x variants x prompts x seeds
    at_model_size = s[s.variant.isin(["raw", "protected"])]
    assert at_model_size["clip_direction"].notna().all() and at_model_size["clip_direction"].between(-1, 1).all()
    # the base stand-in returns the line art unchanged: no image direction, similarity 0
    assert (s.loc[(s.model == "base") & (s.variant == "raw"), "clip_direction"] == 0).all()
    m = res.metrics.set_index(["model", "variant", "prompt", "metric"])
    assert m.loc[("ip2p_clip", "raw", "faithful", "clip_direction"), "n"] == 3  # seeds averaged per id first
    assert len(res.sweep) == 2 * 2 * 2  # image x text guidance x two sweep characters (full: sweep_ids 2)


def test_clear_errors(tmp_path: Path) -> None:
    paths = Paths.for_profile("smoke", root=tmp_path)
    shutil.copytree(REPO / "params", tmp_path / "params")
    cfg = load_study("smoke", tmp_path).compare
    with pytest.raises(FileNotFoundError, match="01_scrape"):
        run_compare(paths, cfg, backend=OracleBackend(paths))
    make_synthetic(paths, n=N_CREATURES, size=64, seed=42)
    with pytest.raises(CompareError, match=r"ip2p_cnn_lstm is missing: run notebooks/04_finetune.ipynb"):
        run_compare(paths, cfg, backend=OracleBackend(paths))
    fake_model(paths, "ip2p_cnn_lstm")
    paths.model("ip2p_clip").mkdir(parents=True)
    with pytest.raises(CompareError, match="ip2p_clip has no model_index.json.*04_finetune"):
        run_compare(paths, cfg, backend=OracleBackend(paths))
    fake_model(paths, "ip2p_clip")
    ref = paths.reference_captions
    lines = ref.read_text().splitlines()
    test_id = load_test_items(paths)[1].id
    ref.write_text("\n".join(ln for ln in lines if not ln.startswith(test_id + ",")) + "\n")
    with pytest.raises(CompareError, match=rf"test id\(s\) {test_id} have no faithful.*01_scrape"):
        run_compare(paths, cfg, backend=OracleBackend(paths))


# ---------------------------------------------------------------------------------------------
# a tiny random diffusers pipeline through the real load/generate path
# ---------------------------------------------------------------------------------------------
def save_tiny_pipeline(folder: Path) -> None:
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

    from t2p_utils.train.models import build_text_encoder, build_unet, build_vae
    from t2p_utils.train.tokenizer import offline_clip_tokenizer

    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=build_vae("tiny", 64), text_encoder=build_text_encoder("tiny"), tokenizer=offline_clip_tokenizer(),
        unet=build_unet("tiny", 64),
        scheduler=EulerAncestralDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)


def test_tiny_pipeline_end_to_end_is_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch

    threads = torch.get_num_threads()
    paths = make_root(tmp_path)
    save_tiny_pipeline(paths.model("ip2p_cnn_lstm"))
    shutil.copytree(paths.model("ip2p_cnn_lstm"), paths.model("ip2p_clip"))
    # the code defaults are the full recipe (3 seeds, 2 sweep characters, CLIP from the hub): this test's are tiny
    cfg = CompareConfig(models=["ip2p_cnn_lstm", "ip2p_clip"], steps=2, max_test=2, sweep_image_guidance=[1.0],
                          sweep_text_guidance=[3.0, 12.0], n_boot=100, device="cpu", torch_threads=1, seeds=[0],
                          sweep_ids=1, clip_direction=False)
    backend = PipelineBackend()  # t2p_utils.inference.pipeline.load_pipeline / generate
    first = run_compare(paths, cfg, backend=backend)
    assert len(first.samples) == 2 * 2 * 4 * 2
    img = Image.open(paths.reports / first.samples["image"].iloc[0])
    assert img.size == (64, 64)
    flat = first.samples[first.samples.variant == "flat"]
    assert {Image.open(paths.reports / p).size for p in flat["image"]} == {(256, 256)}
    assert (flat["line_preservation"] == 1).all()  # the drawing's strokes, exactly
    prot = first.samples[first.samples.variant == "protected"]
    assert (prot["leakage"] == 0).all() and (prot["line_preservation"] == 1).all()
    # identical weights in both folders and per-call seeds -> identical outputs for both models
    raw = first.samples[first.samples.variant == "raw"].set_index(["prompt", "id", "model"])["ssim"].unstack()
    np.testing.assert_allclose(raw["ip2p_clip"], raw["ip2p_cnn_lstm"])
    second = run_compare(paths, cfg, backend=backend, force=True)
    pd.testing.assert_frame_equal(first.samples, second.samples)
    assert len(second.sweep) == 2
    assert torch.get_num_threads() == threads  # run_compare restores the thread count it changed


def test_unets_on_onnxruntime_score_as_on_pytorch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """compare.unet_backend: auto runs the UNets on onnxruntime (recorded in the summary and the findings); every
    score stays within float noise of the PyTorch run, and torch asks for PyTorch."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    paths = make_root(tmp_path)
    save_tiny_pipeline(paths.model("ip2p_clip"))
    runs = {}
    for engine in ("torch", "auto"):
        cfg = CompareConfig(models=["ip2p_clip"], steps=3, max_test=3, sweep_image_guidance=[1.0],
                              sweep_text_guidance=[5.0], n_boot=100, device="cpu", torch_threads=1, seeds=[0],
                              sweep_ids=1, clip_direction=False, unet_backend=engine)
        runs[engine] = run_compare(paths, cfg)  # the default backend: PipelineBackend(cfg.unet_backend)
    assert runs["torch"].summary["unet_engine"] == {"ip2p_clip": "PyTorch"}
    assert runs["auto"].summary["unet_engine"]["ip2p_clip"].startswith("onnxruntime")
    assert any(line.startswith("UNets run by:") and "onnxruntime" in line for line in findings(runs["auto"]))
    a, b = (r.samples.set_index(["id", "prompt", "variant"]).sort_index() for r in (runs["torch"], runs["auto"]))
    for col in ("ssim", "delta_e", "leakage", "line_preservation"):
        np.testing.assert_allclose(b[col], a[col], atol=0.02 if col != "delta_e" else 0.5)
    with pytest.raises(ValueError, match="unet_backend must be one of"):
        CompareConfig(unet_backend="tensorrt")


class PlaceOracle:
    """Binding's known answer through the whole 05 chain on the smoke creatures: ``ip2p_clip`` paints each place
    the colour the words put there (the truth recoloured in two tones, cut at the named places; outline and
    background kept), ``ip2p_cnn_lstm`` paints the whole character the first colour named (the seed's failure mode 2)."""

    def __init__(self, paths: Paths) -> None:
        from t2p_utils.core.palette import load_lineart, load_rgb_mask

        self.sprites: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for p in paths.lineart_dir.glob("*.png"):
            rgb, mask = load_rgb_mask(paths.color_dir / p.name, paths.mask_dir / p.name)
            self.sprites[Image.open(p).convert("RGB").tobytes()] = (rgb, mask, load_lineart(p))

    def load(self, source: str, device: str) -> str:
        return Path(source).name

    def generate(self, pipe: str, images: list[Image.Image], prompts: list[str], steps: int,
                 text_guidance: float, image_guidance: float, seed: int) -> list[Image.Image]:
        from t2p_utils.captions.recolor import part_recolor, recolor
        from t2p_utils.core.colors import color_words

        out = []
        for im, prompt in zip(images, prompts, strict=True):
            rgb, mask, line = self.sprites[im.tobytes()]
            words = list(dict.fromkeys(color_words(prompt)))
            if len(words) == 2 and pipe == "ip2p_clip":
                pair = "middle_edges" if any(w in prompt for w in ("middle", "centre")) else "top_bottom"
                out.append(Image.fromarray(part_recolor(rgb, mask, line, pair, (words[0], words[1])).image))
            elif words:
                out.append(Image.fromarray(recolor(rgb, mask, line, [words[0]] * 8).image))
            else:
                out.append(Image.fromarray(rgb))
        return out


def test_binding_known_answer_through_the_chain(tmp_path: Path) -> None:
    paths = make_root(tmp_path, n=40)  # -> 4 test ids
    for name in ("ip2p_cnn_lstm", "ip2p_clip"):
        fake_model(paths, name)
    cfg = dataclasses.replace(load_study("smoke", paths.root).compare, sweep_text_guidance=[3.0],
                              sweep_image_guidance=[1.5])
    res = run_compare(paths, cfg, backend=PlaceOracle(paths))
    b = res.binding
    n_ids = len(res.summary["test_ids"])
    assert len(b) == 2 * n_ids * len(cfg.binding_templates) * 2  # models x ids x templates x (raw, flat)
    assert set(b["template"]) == set(CC.BINDING_TEMPLATES) | set(CC.BINDING_HELDOUT)
    m = res.metrics.set_index(["model", "variant", "prompt", "metric"])
    for prompt in ("binding:all", "binding:heldout"):
        assert m.loc[("ip2p_clip", "raw", prompt, "binding")]["mean"] > 0.99  # each place as asked: 1
        for variant in ("raw", "flat"):  # the whole body the first colour named: 0
            assert m.loc[("ip2p_cnn_lstm", variant, prompt, "binding")]["mean"] == pytest.approx(0.0, abs=1e-9)
        # the flat fill gives each closed region one colour: a creature whose body is one region cut in two by
        # the place keeps only part of the binding (the ceiling of flat binding is the drawing's region structure)
        assert 0.25 < m.loc[("ip2p_clip", "flat", prompt, "binding")]["mean"] < 0.75
    p = res.paired.set_index(["a", "b", "prompt"])
    d = p.loc[("ip2p_cnn_lstm/raw", "ip2p_clip/raw", "binding:all")]
    assert d["mean_diff"] < -0.6 and d["ci_high"] < 0
    row = b.iloc[0]
    assert (paths.reports / row["image_ab"]).exists() and (paths.reports / row["image_ba"]).exists()
    assert row["prompt_ab"] != row["prompt_ba"] and {row["a"], row["b"]} <= set(M.BASIC_COLORS)
    again = load_result(paths)
    assert len(again.binding) == len(b)
