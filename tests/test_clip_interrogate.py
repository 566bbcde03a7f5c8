"""clip-interrogator path with tiny random open_clip + BLIP models built offline.

The package's own code runs for real: label tables are embedded (and cached to safetensors),
ranked and chained; only the weights are tiny and random.
"""

from __future__ import annotations

import os
import re

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from PIL import Image

from t2p_utils.captions import clip_interrogate as cc


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster on a busy 2-core machine
    work = tmp_path_factory.mktemp("tiny_clip")
    models = cc.tiny_models(work / "models", seed=0)
    labels = cc.write_label_lists(work / "labels")
    images = []
    for i, rgb in enumerate([(220, 30, 40), (40, 90, 220), (250, 220, 40), (50, 170, 60), (140, 60, 190)]):
        img = Image.new("RGBA", (48, 48), (0, 0, 0, 0))
        img.paste((*rgb, 255), (8 + i, 8, 40, 40))
        images.append(work / f"img{i}.png")
        img.save(images[-1])
    d = {"work": work, "models": models, "labels": labels, "images": images}
    d["ci"] = cc.make_interrogator(_settings(d), work / "label_cache", **models)
    yield d
    torch.set_num_threads(threads)


def _settings(tiny: dict, mode: str = "fast") -> cc.ClipSettings:
    return cc.ClipSettings(clip_model_name="t2p-tiny-clip/none", caption_model_name="blip-large", mode=mode,
                           batch_size=2, device="cpu", download_cache=False, data_path=str(tiny["labels"]),
                           max_flavors=4, flavor_intermediate_count=16, caption_max_length=8)


def _ci(tiny: dict, settings: cc.ClipSettings):
    """The shared interrogator: the mode is an argument of interrogate_files, not of the models."""
    return tiny["ci"]


def test_settings_validation_and_key() -> None:
    with pytest.raises(ValueError, match="mode"):
        cc.ClipSettings(mode="quick")
    with pytest.raises(ValueError, match="ViT-L-14/openai"):
        cc.ClipSettings(clip_model_name="ViT-L-14")
    a, b = cc.ClipSettings(), cc.ClipSettings(batch_size=2)
    assert a.key() == b.key()  # batch size does not change captions
    assert a.key() != cc.ClipSettings(mode="best").key()
    assert cc.ClipSettings().clip_model_name == "ViT-L-14/openai" and cc.ClipSettings().caption_model_name == "blip-large"


def test_fast_mode_ranks_labels_with_the_clip_model(tiny: dict) -> None:
    settings = _settings(tiny, "fast")
    ci = _ci(tiny, settings)
    # the package embedded its label tables and cached them
    assert (tiny["work"] / "label_cache" / "t2p-tiny-clip_none_flavors.safetensors").exists()
    img = cc.open_rgb(tiny["images"][0])
    cap = cc.blip_captions(ci, [img])[0]
    prompt = cc.interrogate_image(ci, img, "fast", cap, max_flavors=4)
    parts = prompt.split(", ")
    # our own ranking with the same tiny CLIP: cosine similarity of image and every label
    model, pre = tiny["models"]["clip_model"], tiny["models"]["clip_preprocess"]
    merged = ci.artists.labels + ci.flavors.labels + ci.mediums.labels + ci.movements.labels + ci.trendings.labels
    with torch.no_grad():
        f = model.encode_image(pre(img).unsqueeze(0))
        f = f / f.norm(dim=-1, keepdim=True)
        t = model.encode_text(ci.tokenize(merged))
        t = t / t.norm(dim=-1, keepdim=True)
    sims = (t @ f.T).squeeze(1).numpy()
    expected = [merged[i] for i in np.argsort(-sims)[:4]]
    assert prompt.startswith(cap or "a drawing")
    assert parts[-4:] == expected


def test_batched_blip_captions_match_single_image_captions(tiny: dict) -> None:
    ci = _ci(tiny, _settings(tiny))
    imgs = [cc.open_rgb(p) for p in tiny["images"][:3]]
    batched = cc.blip_captions(ci, imgs)
    single = [ci.generate_caption(im) for im in imgs]
    assert batched == single
    words = {w for c in batched for w in re.findall(r"[a-z]+", c)}
    assert words and words <= {w.lower() for w in cc.TINY_WORDS}  # decoded with the tiny WordPiece vocab


@pytest.mark.parametrize("mode", ["classic", "best"])
def test_classic_and_best_modes_use_labels(tiny: dict, mode: str) -> None:
    settings = _settings(tiny, mode)
    ci = _ci(tiny, settings)
    recs = cc.interrogate_files(ci, tiny["images"][:2], settings, tiny["work"] / f"cache_{mode}.jsonl", progress=False)
    labels = set(ci.artists.labels + ci.flavors.labels + ci.mediums.labels + ci.movements.labels + ci.trendings.labels)
    for r in recs:
        assert r["caption"].startswith(r["blip_caption"] or "a drawing")
        extra = r["caption"][len(r["blip_caption"] or "a drawing"):].strip(", ")
        if mode == "classic":  # "<caption>, <medium> <artist>, <trending>, <movement>, <flavours>"
            assert any(m in extra for m in ci.mediums.labels) and any(a in extra for a in ci.artists.labels)
        else:
            assert all(p in labels for p in extra.split(", ") if p), extra
        assert r["mode"] == mode


def test_cache_resumes_after_interruption(tiny: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tiny, "fast")
    ci = _ci(tiny, settings)
    cache = tiny["work"] / "cache_resume.jsonl"
    calls: list[int] = []
    real = cc.blip_captions

    def counting(ci_, images):
        calls.append(len(images))
        return real(ci_, images)

    monkeypatch.setattr(cc, "blip_captions", counting)
    first = cc.interrogate_files(ci, tiny["images"][:3], settings, cache, progress=False)
    assert calls == [2, 1]  # batches of 2
    # simulate an interrupted write: a half line at the end
    with open(cache, "a", encoding="utf-8") as fh:
        fh.write('{"sha256": "abc", "ke')
    calls.clear()
    allrecs = cc.interrogate_files(ci, tiny["images"], settings, cache, progress=False)
    assert calls == [2]  # only the two new images
    assert [r["caption"] for r in allrecs[:3]] == [r["caption"] for r in first]
    assert len({r["sha256"] for r in allrecs}) == 5
    calls.clear()
    again = cc.interrogate_files(ci, tiny["images"], settings, cache, progress=False)
    assert calls == [] and again == allrecs
    with pytest.raises(FileNotFoundError, match="missing"):
        cc.interrogate_files(ci, [tiny["work"] / "nope.png"], settings, cache, progress=False)


def test_real_weights_without_hub_give_a_clear_error(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing to load offline
    with pytest.raises(OSError, match="clip_backend: palette"):
        cc.make_interrogator(cc.ClipSettings(device="cpu"), tmp_path / "cache")
