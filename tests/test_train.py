"""Training: the IP2P recipe pieces, save/load, resume equivalence and determinism (tiny models, CPU)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from t2p_utils.config import ConfigError, Paths, TrainConfig, VaeConfig, from_dict, load_params, section
from t2p_utils.inference.pipeline import generate, load_pipeline
from t2p_utils.train.data import read_metadata, run_dir_for
from t2p_utils.train.loop import main, train
from t2p_utils.train.loss import conditioning_dropout, ddpm_scheduler, ip2p_loss
from t2p_utils.train.models import build_text_encoder, build_unet, unet_kwargs, widen_conv_in

os.environ.setdefault("HF_HUB_OFFLINE", "1")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = dict(
    model_source="scratch", arch="tiny", resolution=32, train_batch_size=4, gradient_accumulation_steps=2,
    gradient_checkpointing=True, max_train_steps=4, learning_rate=1e-3, mixed_precision="fp16",
    checkpointing_steps=2, checkpoints_total_limit=1, validation_steps=100, num_validation_images=1,
    validation_inference_steps=2, vae=VaeConfig(steps=4, batch_size=4), use_ema=True, ema_decay=0.99, log_every=1,
)


def write_instructions(paths: Paths, source: str, n: int = 6) -> Path:
    """An instruction folder (diffusers' metadata.jsonl format) over the synthetic train images."""
    from t2p_utils.core.manifest import read_manifest
    from t2p_utils.core.reference_csv import read_reference_csv

    df = read_manifest(paths.manifest)
    ref = read_reference_csv(paths.reference_captions).set_index("id")
    folder = paths.instructions(source)
    folder.mkdir(parents=True, exist_ok=True)
    rows = df[df["split"] == "train"].head(n)
    with open(folder / "metadata.jsonl", "w", encoding="utf-8") as fh:
        for _, r in rows.iterrows():
            fh.write(json.dumps({
                "input_image": os.path.relpath(paths.root / r["lineart"], folder),
                "edit_prompt": "Turn it into " + ref.loc[r["id"], "caption"],
                "edited_image": os.path.relpath(paths.root / r["color"], folder),
                "caption_source": "reference" if r["id"] == "s000" else source,
            }) + "\n")
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Synthetic data, then: run A (4 steps), run A' (identical), run B (stopped at 2, resumed)."""
    from t2p_utils.scrape.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("root")
    shutil.copytree(Path(__file__).resolve().parents[1] / "params", root / "params")
    paths = Paths.for_profile("smoke", root)
    make_synthetic(paths, n=12, size=64, seed=3)
    for s in ("cnn_lstm", "clip", "reference", "palette"):
        write_instructions(paths, s)
    cfg = TrainConfig(**TINY)
    out = {"paths": paths, "cfg": cfg}
    out["a"] = train(cfg, paths, "cnn_lstm")
    out["a2"] = train(cfg, paths, "clip")
    train(cfg, paths, "reference", stop_after=2)
    out["b_ckpts"] = sorted(d.name for d in run_dir_for(paths, "reference").glob("checkpoint-*"))
    out["b"] = train(cfg, paths, "reference", resume_from_checkpoint="latest")
    train(dataclasses.replace(cfg, cache_latents=False), paths, "palette", stop_after=2)
    return out


def unet_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(model_dir / "unet" / "diffusion_pytorch_model.safetensors")


# ------------------------------------------------------------------------------ config
def test_unknown_config_key_rejected_with_valid_keys(tmp_root: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key.*learning_rat.*valid keys.*learning_rate"):
        from_dict(TrainConfig, {"learning_rat": 1e-4}, where="train")
    import yaml

    params = tmp_root / "params" / "smoke.yaml"
    data = yaml.safe_load(params.read_text())
    data["train"]["bogus_key"] = 3
    params.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="bogus_key"):
        section(load_params("smoke"), "train", TrainConfig)
    with pytest.raises(ConfigError, match="bogus_key"):
        main(["--profile", "smoke", "--set", "bogus_key=1"])


def test_profile_train_sections_load() -> None:
    for profile in ("smoke", "full"):
        cfg = section(load_params(profile), "train", TrainConfig)
        assert cfg.conditioning_dropout_prob == pytest.approx(0.05)
    # cpu: the recipe that follows colour words (issue 10) drops text or image for 3 x 10 % of samples
    cpu = section(load_params("cpu"), "train", TrainConfig)
    assert cpu.conditioning_dropout_prob == pytest.approx(0.1)
    assert (cpu.train_text_encoder, cpu.text_time_embedding, cpu.prediction_type) == (True, True, "v_prediction")
    full = section(load_params("full"), "train", TrainConfig)
    assert (full.model_source, full.pretrained_model, full.resolution, full.train_batch_size,
            full.gradient_accumulation_steps, full.max_train_steps, full.learning_rate, full.mixed_precision,
            full.use_ema, full.seed) == ("pretrained", "timbrooks/instruct-pix2pix", 256, 2, 4, 15000, 5e-5, "fp16", True, 42)


# ------------------------------------------------------------------------ recipe pieces
def test_widen_conv_in_keeps_old_channels_and_zeroes_new() -> None:
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    kw = unet_kwargs("tiny", 8, 32) | {"in_channels": 4}
    unet = UNet2DConditionModel(**kw).eval()
    old_w, old_b = unet.conv_in.weight.detach().clone(), unet.conv_in.bias.detach().clone()
    x, t, e = torch.randn(2, 4, 8, 8), torch.tensor([10, 500]), torch.randn(2, 77, 32)
    with torch.no_grad():
        before = unet(x, t, e).sample
    assert widen_conv_in(unet) is True
    assert unet.conv_in.weight.shape[1] == 8 and unet.config.in_channels == 8
    assert torch.equal(unet.conv_in.weight[:, :4], old_w)
    assert torch.count_nonzero(unet.conv_in.weight[:, 4:]) == 0
    assert torch.equal(unet.conv_in.bias, old_b)
    with torch.no_grad():  # the new image channels have no effect yet: same output as before
        after = unet(torch.cat([x, 5 * torch.randn(2, 4, 8, 8)], dim=1), t, e).sample
    torch.testing.assert_close(after, before)


def test_widen_conv_in_leaves_8_channel_unet_alone() -> None:
    unet = build_unet("tiny", 32)
    conv = unet.conv_in
    w = conv.weight.detach().clone()
    assert widen_conv_in(unet) is False
    assert unet.conv_in is conv and torch.equal(unet.conv_in.weight, w)


def test_conditioning_dropout_shares_and_values() -> None:
    n, p = 20000, 0.05
    text = torch.randn(n, 3, 2) + 10
    image = torch.randn(n, 4, 2, 2) + 10
    null = torch.zeros(1, 3, 2)
    t, im, dt, di = conditioning_dropout(text, image, null, p, torch.Generator().manual_seed(0))
    assert dt.float().mean().item() == pytest.approx(2 * p, abs=0.006)  # text dropped: u < 2p
    assert di.float().mean().item() == pytest.approx(2 * p, abs=0.006)  # image dropped: p <= u < 3p
    assert (dt & di).float().mean().item() == pytest.approx(p, abs=0.004)  # both dropped
    assert (~dt & ~di).float().mean().item() == pytest.approx(1 - 3 * p, abs=0.008)
    assert torch.equal(t[dt], torch.zeros_like(t[dt])) and torch.equal(t[~dt], text[~dt])
    assert torch.equal(im[di], torch.zeros_like(im[di])) and torch.equal(im[~di], image[~di])
    again = conditioning_dropout(text, image, null, p, torch.Generator().manual_seed(0))
    assert torch.equal(again[2], dt) and torch.equal(again[3], di)


def test_loss_decreases_on_a_fixed_batch() -> None:
    unet = build_unet("tiny", 32, seed=0)
    te = build_text_encoder("tiny", seed=0)
    sched = ddpm_scheduler()
    g = torch.Generator().manual_seed(1)
    latents, image_latents = torch.randn(4, 4, 8, 8, generator=g), torch.randn(4, 4, 8, 8, generator=g)
    with torch.no_grad():
        emb = te(torch.randint(0, 49406, (4, 77), generator=g))[0]
        null = te(torch.full((1, 77), 49407))[0]
    opt = torch.optim.AdamW(unet.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = ip2p_loss(unet, sched, latents, image_latents, emb, null, 0.0, torch.Generator().manual_seed(7))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


# ------------------------------------------------------------------ data errors
def test_missing_image_names_the_file(tmp_root: Path) -> None:
    paths = Paths.for_profile("smoke", tmp_root)
    folder = paths.instructions("clip")
    folder.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folder / "a.png")
    (folder / "bad.png").write_bytes(b"not a png")
    line = {"input_image": "a.png", "edit_prompt": "Turn it into x", "edited_image": "gone.png"}
    (folder / "metadata.jsonl").write_text(json.dumps(line) + "\n")
    cfg = TrainConfig(**TINY)
    with pytest.raises(FileNotFoundError, match="gone.png"):
        train(cfg, paths, "clip")
    (folder / "metadata.jsonl").write_text(json.dumps(line | {"edited_image": "bad.png"}) + "\n")
    with pytest.raises(ValueError, match="bad.png.*cannot be read"):
        train(cfg, paths, "clip")
    (folder / "metadata.jsonl").write_text(json.dumps({"input_image": "a.png"}) + "\n")
    with pytest.raises(ValueError, match="lacks.*edit_prompt"):
        read_metadata(folder)


# ------------------------------------------------------------------ end to end
def test_saved_pipeline_loads_and_generates(trained: dict) -> None:
    paths = trained["paths"]
    model_dir = trained["a"]
    assert model_dir == paths.model("ip2p_cnn_lstm")
    pipe = load_pipeline(model_dir, device="cpu")
    assert type(pipe).__name__ == "StableDiffusionInstructPix2PixPipeline"
    assert pipe.unet.config.in_channels == 8
    line = Image.open(paths.image("lineart", "s000")).convert("RGB").resize((32, 32))
    outs = generate(pipe, [line, line], ["Turn it into a red blob", "Turn it into a blue blob"], steps=2, seed=0,
                    batch_size=1)
    assert [o.size for o in outs] == [(32, 32), (32, 32)]
    again = generate(pipe, [line, line], ["Turn it into a red blob", "Turn it into a blue blob"], steps=2, seed=0,
                     batch_size=2)
    for o, o2 in zip(outs, again):  # per-image seeds: batching changes only float rounding, not the sample
        diff = np.abs(np.asarray(o, dtype=np.int16) - np.asarray(o2, dtype=np.int16))
        assert diff.mean() < 1.0, diff.mean()
    other = generate(pipe, [line], ["Turn it into a red blob"], steps=2, seed=1)
    assert np.abs(np.asarray(other[0], dtype=np.int16) - np.asarray(outs[0], dtype=np.int16)).mean() > 5


def test_run_artefacts(trained: dict) -> None:
    paths, model_dir = trained["paths"], trained["a"]
    log = pd.read_csv(model_dir / "train_log.csv")
    assert log["step"].tolist() == [1, 2, 3, 4]
    assert (log["samples_per_s"] > 0).all() and (log["it_per_s"] > 0).all()
    assert log["samples_per_s"].iloc[0] == pytest.approx(8 * log["it_per_s"].iloc[0])  # batch 4 x accumulation 2
    card = (model_dir / "README.md").read_text()
    assert "cnn_lstm" in card and "4 optimiser steps" in card and "train_log.csv" in card
    assert sorted(p.name for p in (model_dir / "validation").glob("*.png")) == ["step-000000.png", "step-000004.png"]
    # validation prefers pairs captioned by the source itself (s000 is marked as a reference caption)
    val = json.loads((model_dir / "validation" / "step-000004.json").read_text())
    first_own = read_metadata(paths.instructions("cnn_lstm"))[1].edit_prompt
    assert val["prompts"] == [first_own]
    summary = json.loads((model_dir / "train_summary.json").read_text())
    assert summary["mixed_precision"] == "no"  # fp16 asked, fp32 on CPU
    assert summary["caption_stand_in"] is None
    assert "from scratch" in summary["stand_in"]
    clip_summary = json.loads((trained["a2"] / "train_summary.json").read_text())
    assert "palette" in clip_summary["caption_stand_in"] and "stand-in" in (trained["a2"] / "README.md").read_text()
    # checkpoints_total_limit=1: only the last checkpoint is kept
    assert sorted(d.name for d in run_dir_for(paths, "cnn_lstm").glob("checkpoint-*")) == ["checkpoint-4"]
    assert (paths.model("vae") / "vae_summary.json").exists()


def test_two_identical_runs_give_identical_weights(trained: dict) -> None:
    a, a2 = unet_weights(trained["a"]), unet_weights(trained["a2"])
    assert a.keys() == a2.keys()
    assert all(torch.equal(a[k], a2[k]) for k in a)
    untrained = build_unet("tiny", 32, seed=trained["cfg"].seed).state_dict()
    assert not torch.equal(a["conv_in.weight"], untrained["conv_in.weight"])  # it did train


def test_resume_equals_uninterrupted_run(trained: dict) -> None:
    assert trained["b_ckpts"] == ["checkpoint-2"]
    a, b = unet_weights(trained["a"]), unet_weights(trained["b"])
    assert all(torch.equal(a[k], b[k]) for k in a)
    la = pd.read_csv(trained["a"] / "train_log.csv")["loss"].tolist()
    lb = pd.read_csv(trained["b"] / "train_log.csv")["loss"].tolist()
    assert lb == la


def test_a_truncated_checkpoint_falls_back_to_the_one_before_then_to_a_fresh_start(
        trained: dict, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 22: a checkpoint whose weights were cut short no longer blocks resuming (it used to fail every run with
    "SafetensorError: ... incomplete metadata"): the previous checkpoint, else a fresh start, and the log names it."""
    paths, cfg = trained["paths"], dataclasses.replace(trained["cfg"], checkpoints_total_limit=2)
    write_instructions(paths, "ckpt")  # the same pairs and prompts as run A's
    model_dir = train(cfg, paths, "ckpt")  # checkpoint-2 and checkpoint-4
    run_dir = run_dir_for(paths, "ckpt")
    broken = run_dir / "checkpoint-4" / "model.safetensors"
    os.truncate(broken, broken.stat().st_size // 2)
    (model_dir / "train_summary.json").unlink()  # as if the run had been stopped before saving its model
    with caplog.at_level("INFO"):
        train(cfg, paths, "ckpt", resume_from_checkpoint="latest")
    assert f"checkpoint checkpoint-4 is broken ({broken}: SafetensorError" in caplog.text
    assert "resuming from checkpoint-2 instead" in caplog.text and "at step 2" in caplog.text
    a, b = unet_weights(trained["a"]), unet_weights(model_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)  # steps 3-4 again from checkpoint-2: the uninterrupted result

    for ckpt in ("checkpoint-2", "checkpoint-4"):  # both broken now: a fresh start
        opt = run_dir / ckpt / "optimizer.bin"
        os.truncate(opt, opt.stat().st_size - 10)
    (model_dir / "train_summary.json").unlink()
    caplog.clear()
    with caplog.at_level("INFO"):
        train(cfg, paths, "ckpt", resume_from_checkpoint="latest")
    assert "checkpoint checkpoint-2 is broken" in caplog.text and "starting a new run" in caplog.text
    b = unet_weights(model_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_up_to_date_model_is_skipped(trained: dict) -> None:
    model_dir = trained["a"]
    stamp = (model_dir / "train_summary.json").stat().st_mtime_ns
    assert train(trained["cfg"], trained["paths"], "cnn_lstm") == model_dir
    assert (model_dir / "train_summary.json").stat().st_mtime_ns == stamp
    changed = dataclasses.replace(trained["cfg"], max_train_steps=1)
    assert changed.fingerprint() != trained["cfg"].fingerprint()


def test_uncached_encoding_matches_cached(trained: dict) -> None:
    """Encoding every step (no cache) draws the same flips, latents, noise and dropout as the cache."""
    cached = pd.read_csv(trained["a"] / "train_log.csv")["loss"].tolist()[:2]
    uncached = pd.read_csv(run_dir_for(trained["paths"], "palette") / "train_log.csv")["loss"].tolist()
    assert uncached == pytest.approx(cached, rel=1e-4)


def test_pretrained_source_widens_a_text_to_image_unet(trained: dict) -> None:
    """The full-profile path (``model_source: pretrained``) on a local 4-channel SD-style folder."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from t2p_utils.train.tokenizer import offline_clip_tokenizer

    paths = trained["paths"]
    base = paths.root / "fake_sd"
    torch.manual_seed(0)
    UNet2DConditionModel(**(unet_kwargs("tiny", 8, 32) | {"in_channels": 4})).save_pretrained(base / "unet")
    AutoencoderKL.from_pretrained(paths.model("vae")).save_pretrained(base / "vae")
    build_text_encoder("tiny").save_pretrained(base / "text_encoder")
    offline_clip_tokenizer().save_pretrained(base / "tokenizer")
    ddpm_scheduler().save_pretrained(base / "scheduler")
    cfg = dataclasses.replace(trained["cfg"], model_source="pretrained", pretrained_model=str(base), max_train_steps=1,
                              use_ema=False, learning_rate=1e-12)
    write_instructions(paths, "widen")
    model_dir = train(cfg, paths, "widen")
    summary = json.loads((model_dir / "train_summary.json").read_text())
    assert "widened from 4 to 8" in summary["model"]
    w = unet_weights(model_dir)["conv_in.weight"]
    old = load_file(base / "unet" / "diffusion_pytorch_model.safetensors")["conv_in.weight"]
    assert w.shape[1] == 8
    torch.testing.assert_close(w[:, :4], old, atol=1e-6, rtol=0)  # one step at lr 1e-12
    assert w[:, 4:].abs().max() < 1e-6


def test_parallel_sources_train_the_same_models(trained: dict, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """Two sources in two 1-thread processes give the weights a sequential 1-thread run gives."""
    from t2p_utils.scrape.synthetic import make_synthetic
    from t2p_utils.train.loop import train_all, worker_log

    shutil.copytree(Path(__file__).resolve().parents[1] / "params", tmp_path / "params")
    paths = Paths.for_profile("smoke", tmp_path)
    make_synthetic(paths, n=12, size=64, seed=3)
    for s in ("cnn_lstm", "clip"):
        write_instructions(paths, s)
    # one thread here as in the sequential runs (the one_thread fixture): float sums depend on the thread count
    cfg = dataclasses.replace(trained["cfg"], sources=["cnn_lstm", "clip"], parallel_sources=2)
    assert cfg.fingerprint() == trained["cfg"].fingerprint()  # how it is run does not change what it trains
    models = train_all(paths, cfg)
    assert list(models) == ["cnn_lstm", "clip"]
    for source, seq in (("cnn_lstm", trained["a"]), ("clip", trained["a2"])):
        par, ref = unet_weights(models[source]), unet_weights(seq)
        assert all(torch.equal(par[k], ref[k]) for k in ref), source
        assert json.loads((models[source] / "train_summary.json").read_text())["fingerprint"]["source"] == source
        assert f"train {source}" in worker_log(paths, source).read_text()  # each worker's bars go to its own log...
    assert "train clip" not in capfd.readouterr().err  # ...not to the shared terminal


def test_space_to_depth_autoencoder_is_exact_and_trains_a_loadable_pipeline(trained: dict, tmp_path: Path) -> None:
    from t2p_utils.train.models import SpaceToDepthAutoencoder, space_to_depth_autoencoder

    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ae = space_to_depth_autoencoder(x)
    lat = ae.encode(x).latent_dist
    assert lat.mean.shape == (3, 48, 8, 8)
    assert torch.allclose(ae.decode(lat.mode()).sample, x, atol=1e-6)
    assert torch.allclose(ae.decode(lat.sample()).sample, x, atol=1e-5)
    scaled = (lat.mean * ae.config.scaling_factor)
    assert abs(float(scaled.mean())) < 1e-4 and abs(float(scaled.std()) - 1) < 1e-3  # centred, unit variance
    with pytest.raises(ValueError, match="power of two"):
        SpaceToDepthAutoencoder(patch=3)

    shutil.copytree(Path(__file__).resolve().parents[1] / "params", tmp_path / "params")
    paths = trained["paths"].__class__.for_profile("smoke", tmp_path)
    from t2p_utils.scrape.synthetic import make_synthetic

    make_synthetic(paths, n=12, size=64, seed=3)
    write_instructions(paths, "clip")
    cfg = dataclasses.replace(trained["cfg"], autoencoder="space_to_depth")
    assert cfg.fingerprint() != trained["cfg"].fingerprint()
    model_dir = train(cfg, paths, "clip")
    assert not paths.model("vae").exists()  # nothing to train or save
    pipe = load_pipeline(model_dir)
    assert isinstance(pipe.vae, SpaceToDepthAutoencoder) and pipe.unet.config.in_channels == 96
    line = Image.new("RGB", (32, 32), "white")
    out = generate(pipe, [line], ["Turn it into a creature with a red body."], steps=2)
    assert out[0].size == (32, 32)
    assert "4x4 pixel fold" in (model_dir / "README.md").read_text()
    with pytest.raises(ConfigError, match="autoencoder"):
        TrainConfig(**{**TINY, "autoencoder": "jpeg"})
