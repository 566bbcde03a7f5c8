"""The demo's function behind the button (no Gradio server): input conversion, models, read-out, protection.

Models: tiny random pipelines saved in code (``save_tiny_pipeline`` of test_evaluate.py) and
loaded through the real ``load_models`` path, plus fake pipelines that paint the colour the
instruction names, so that hit / miss and the protected variant are checked on known pixels.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from test_evaluate import save_tiny_pipeline  # the tiny IP2P pipeline the evaluation tests build

from t2p_utils.config import Paths
from t2p_utils.core.colors import BASIC_PROTOTYPES, color_words, rgb_to_lab
from t2p_utils.demo import app as D
from t2p_utils.runner import colab
from t2p_utils.scrape.synthetic import make_synthetic

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def ring_lineart(size: int = 64, width: int = 3, box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """A black ellipse outline on white: the character is what it encloses."""
    im = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(im).ellipse(box or (8, 8, size - 9, size - 9), outline=(0, 0, 0), width=width)
    return im


def creature_lineart(size: int = 256, mode: str = "RGB") -> Image.Image:
    """A body (ellipse) split by a belly line, with one eye: four closed regions, none over half the page
    (t2p_utils.core.flat's leak check takes one region over half the page for a frame)."""
    im = Image.new(mode, (size, size), "white" if mode == "RGB" else (255, 255, 255, 0))
    pen = ImageDraw.Draw(im)
    w = max(2, size // 64)
    ink = (0, 0, 0) if mode == "RGB" else (0, 0, 0, 255)
    pen.ellipse((size * 0.12, size * 0.12, size * 0.88, size * 0.88), outline=ink, width=w)
    pen.line((size * 0.12, size * 0.6, size * 0.88, size * 0.6), fill=ink, width=w)
    pen.ellipse((size * 0.3, size * 0.3, size * 0.42, size * 0.42), outline=ink, width=w)
    return im


def wide_lineart() -> Image.Image:
    """A 300 x 200 drawing: an ellipse split by a line."""
    im = Image.new("RGB", (300, 200), "white")
    pen = ImageDraw.Draw(im)
    pen.ellipse((60, 20, 240, 180), outline="black", width=5)
    pen.line((60, 120, 240, 120), fill="black", width=5)
    return im


class PaintPipe:
    """Stands in for an IP2P pipeline: paints the whole image (outline and background too) in the first
    colour the prompt names, or returns the input unchanged when it names none. ``fail`` raises instead."""

    device = torch.device("cpu")

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[dict[str, Any]] = []

    def __call__(self, prompt: list[str], image: list[Image.Image], num_inference_steps: int, guidance_scale: float,
                 image_guidance_scale: float, generator: list[torch.Generator], output_type: str) -> SimpleNamespace:
        self.calls.append({"prompt": prompt, "steps": num_inference_steps, "seed": generator[0].initial_seed(),
                           "seeds": [g.initial_seed() for g in generator]})
        if self.fail:
            raise RuntimeError("out of paint")
        out = []
        for p, im in zip(prompt, image, strict=True):
            words = color_words(p)
            out.append(Image.new("RGB", im.size, BASIC_PROTOTYPES[words[0]]) if words else im.copy())
        return SimpleNamespace(images=out)


def painter(name: str = "ip2p_paint", fail: bool = False) -> D.LoadedModel:
    return D.LoadedModel(name, f"painter {name}", ("a fake that paints the named colour",), "memory", PaintPipe(fail))


class DeafPipe(PaintPipe):
    """Ignores the text, as the CNN-LSTM-caption model does: the same image for every prompt, its fixed palette
    (blue top, green bottom) covering the character whatever colour is asked."""

    def __call__(self, prompt: list[str], image: list[Image.Image], num_inference_steps: int, guidance_scale: float,
                 image_guidance_scale: float, generator: list[torch.Generator], output_type: str) -> SimpleNamespace:
        self.calls.append({"prompt": prompt, "seeds": [g.initial_seed() for g in generator]})
        out = []
        for im in image:
            a = np.empty((im.height, im.width, 3), np.uint8)
            a[: im.height // 2], a[im.height // 2:] = BASIC_PROTOTYPES["blue"], BASIC_PROTOTYPES["green"]
            out.append(Image.fromarray(a))
        return SimpleNamespace(images=out)


class PartlyDeafPipe(PaintPipe):
    """Paints the first colour the prompt names in the top half and green in the bottom half, asked or not."""

    def __call__(self, prompt: list[str], image: list[Image.Image], num_inference_steps: int, guidance_scale: float,
                 image_guidance_scale: float, generator: list[torch.Generator], output_type: str) -> SimpleNamespace:
        out = []
        for p, im in zip(prompt, image, strict=True):
            a = np.full((im.height, im.width, 3), 255, np.uint8)
            words = color_words(p)
            if words:
                a[: im.height // 2] = BASIC_PROTOTYPES[words[0]]
            a[im.height // 2:] = BASIC_PROTOTYPES["green"]
            out.append(Image.fromarray(a))
        return SimpleNamespace(images=out)


def fake(pipe: Any, name: str = "fake") -> D.LoadedModel:
    return D.LoadedModel(name, f"fake {name}", (), "memory", pipe)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    """A smoke root: 30 synthetic creatures (3 test ids) and models/smoke/ with two tiny pipelines,
    one folder whose weights are broken and one without model_index.json."""
    root = tmp_path_factory.mktemp("demo")
    shutil.copytree(REPO / "params", root / "params")
    paths = Paths.for_profile("smoke", root)
    make_synthetic(paths, n=30, size=64, seed=42)
    save_tiny_pipeline(paths.model("ip2p_cnn_lstm"))
    shutil.copytree(paths.model("ip2p_cnn_lstm"), paths.model("ip2p_clip"))
    shutil.copytree(paths.model("ip2p_cnn_lstm"), paths.model("ip2p_reference"))
    for f in (paths.model("ip2p_reference") / "unet").glob("*.safetensors"):
        f.write_bytes(b"this is not a safetensors file")
    paths.model("ip2p_palette").mkdir()  # an unfinished training run: no model_index.json
    (paths.model("runs")).mkdir()  # training runs are not models
    return paths


@pytest.fixture(scope="module")
def models(demo_root: Paths) -> dict[str, D.LoadedModel]:
    D.clear_cache()
    return D.load_models("smoke", demo_root.root, "cpu")


# ------------------------------------------------------------------------------ input conversion
def _transparent_palette(im: Image.Image) -> Image.Image:
    """A palette PNG whose white is transparent (and stored as black), as drawing apps export it."""
    p = im.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    white = int(np.asarray(p)[0, 0])
    pal = p.getpalette()
    pal[3 * white: 3 * white + 3] = [0, 0, 0]
    p.putpalette(pal)
    p.info["transparency"] = white
    return p


def test_any_browser_image_becomes_a_padded_square_on_white() -> None:
    wide = Image.new("RGBA", (200, 100), (0, 0, 0, 0))  # transparent background
    ImageDraw.Draw(wide).rectangle((10, 10, 189, 89), outline=(0, 0, 0, 255), width=4)
    out = D.prepare_lineart(wide, 64)
    assert out.mode == "RGB" and out.size == (64, 64)
    arr = np.asarray(out)
    assert (arr[:14] == 255).all() and (arr[-14:] == 255).all()  # padded top and bottom with white, not stretched
    ys, xs = np.nonzero(arr.min(axis=2) < 128)
    assert (xs.max() - xs.min()) / (ys.max() - ys.min()) == pytest.approx(180 / 80, rel=0.1)  # aspect kept
    assert arr[32, 32].tolist() == [255, 255, 255]  # transparent -> white

    big = ring_lineart(512, width=24)
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=85)
    variants: dict[str, Any] = {
        "jpeg bytes": buf.getvalue(),
        "16-bit gray": Image.fromarray(np.asarray(big.convert("L"), dtype=np.uint16) * 257),
        "float array": np.asarray(big, dtype=np.float32) / 255.0,
        "palette with transparency": _transparent_palette(big),
        "cmyk": big.convert("CMYK"),
        "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 50"><ellipse cx="50" cy="25" rx="45" '
                b'ry="20" fill="none" stroke="#000" stroke-width="4"/></svg>'),
    }
    for what, src in variants.items():
        out = D.prepare_lineart(src, 64)
        assert out.size == (64, 64) and out.mode == "RGB", what
        arr = np.asarray(out.convert("L"))
        assert arr.min() < 80 and arr[0, 0] > 245, what  # dark outline on a white corner


def test_character_mask_is_what_the_outline_encloses() -> None:
    mask = D.character_mask(ring_lineart(64))
    assert mask[32, 32] and mask[9, 32] and not mask[2, 2] and not mask[62, 62]
    assert 0.4 < mask.mean() < 0.7


def test_bad_inputs_raise_clear_messages(tmp_path: Path) -> None:
    line = ring_lineart()
    with pytest.raises(D.DemoInputError, match="not an image"):
        D.prepare_lineart(b"%PDF-1.4 definitely not a picture", 64)
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    with pytest.raises(D.DemoInputError, match="notes.png is not an image"):
        D.colorize(str(not_image), "Turn it into a red creature", models={"p": painter()})
    for empty in ("", "   \n", None):
        with pytest.raises(D.DemoInputError, match="instruction is empty"):
            D.colorize(line, empty, models={"p": painter()})  # type: ignore[arg-type]
    huge = io.BytesIO()
    Image.new("1", (8000, 6000)).save(huge, "PNG")  # 48 megapixels, a few kB of PNG
    with pytest.raises(D.DemoInputError, match=r"8000 x 6000 pixels \(48.0 megapixels\).*at most 40"):
        D.prepare_lineart(huge.getvalue(), 64)
    with pytest.raises(D.DemoInputError, match="No line art"):
        D.prepare_lineart(None, 64)
    with pytest.raises(D.DemoInputError, match="blank"):
        D.prepare_lineart(Image.new("RGBA", (64, 64), (0, 0, 0, 0)), 64)  # all transparent -> all white
    with pytest.raises(D.DemoInputError, match="empty \\(0 bytes\\)"):
        D.prepare_lineart(b"", 64)


# ------------------------------------------------------------------------------ models
def test_models_load_once_with_labels_and_unavailable_reasons(demo_root: Paths, models: dict[str, D.LoadedModel]) -> None:
    assert list(models) == ["ip2p_cnn_lstm", "ip2p_clip", "ip2p_reference", "ip2p_palette"]  # compare.models first
    assert [m.name for m in models.values() if m.available] == ["ip2p_cnn_lstm", "ip2p_clip"]
    assert models["ip2p_reference"].error.startswith("failed to load:")  # the broken weights, with the reason
    assert "model_index.json" in models["ip2p_palette"].error and "./run_all.sh smoke" in models["ip2p_palette"].error
    # labels and stand-ins come from t2p_utils.compare.run.resolve_models
    assert models["ip2p_cnn_lstm"].label == "CNN-LSTM captions"
    assert models["ip2p_clip"].label == "CLIP captions (palette stand-in)"
    assert "palette captioner instead of CLIP" in models["ip2p_clip"].status
    assert "trained from scratch" in models["ip2p_cnn_lstm"].status
    assert D.load_models("smoke", demo_root.root, "cpu") is models  # cached: loaded once per process
    text = D.models_markdown("smoke", models, demo_root.root)
    assert "ip2p_reference" in text and "unavailable" in text and "failed to load" in text


def test_unets_run_on_onnxruntime_with_torch_images_and_torch_on_request(demo_root: Paths,
                                                                         models: dict[str, D.LoadedModel]) -> None:
    fast = models["ip2p_clip"]
    assert fast.engine.name == "onnx" and "onnxruntime" in D.models_markdown("smoke", models, demo_root.root)
    slow = D.load_models("smoke", demo_root.root, "cpu", backend="torch")["ip2p_clip"]
    assert slow.engine.name == "torch" and slow.pipe is not fast.pipe  # its own cache entry
    a, b = (D.colorize(ring_lineart(), "Turn it into a red creature", models={m.name: m}, steps=4, seed=7)[0]
            for m in (fast, slow))
    assert np.abs(np.asarray(a.image, dtype=int) - np.asarray(b.image, dtype=int)).max() <= 2
    assert D.parse_args(["--backend", "torch"]).backend == "torch" and D.parse_args([]).backend is None
    with pytest.raises(ValueError, match="backend must be one of"):
        D.load_models("smoke", demo_root.root, "cpu", backend="tpu")


def test_no_models_names_the_command_that_trains_them(tmp_root: Path) -> None:
    assert D.load_models("cpu", tmp_root, "cpu") == {}
    msg = D.no_models_message("cpu", tmp_root)
    assert "./run_all.sh cpu" in msg and str(tmp_root / "models" / "cpu") in msg
    assert "./run_all.sh cpu" in D.models_markdown("cpu", {}, tmp_root)
    with pytest.raises(D.DemoInputError, match="No model is available"):
        D.colorize(ring_lineart(), "Turn it into a red creature", models={})
    assert D.held_out_gallery("cpu", tmp_root) == []  # before step 01: no gallery, no crash


# ------------------------------------------------------------------------------ the button
def test_one_image_per_model_of_the_right_size_and_red_is_read_out(models: dict[str, D.LoadedModel]) -> None:
    mixed = {**models, "ip2p_paint": painter()}
    outs = D.colorize(ring_lineart(), "Turn it into a red creature", models=mixed, steps=2, seed=3)
    assert [o.name for o in outs] == ["ip2p_cnn_lstm", "ip2p_clip", "ip2p_paint"]  # the unavailable ones are skipped
    for o in outs:
        assert o.error is None and o.image.size == (64, 64) and o.image.mode == "RGB" and o.seed == 3
        assert o.readout.asked == ("red",) and "red" in o.readout.markdown()
    paint = outs[-1]
    assert paint.readout.hits == ("red",) and paint.readout.used == ("red",)
    assert paint.readout.coverage["red"] == pytest.approx(1.0)
    assert "red ✓ hit (100%; 0% unasked)" in paint.markdown()
    # identical weights, one seed for all -> identical outputs; the seed is reproducible
    np.testing.assert_array_equal(np.asarray(outs[0].image), np.asarray(outs[1].image))
    again = D.colorize(ring_lineart(), "Turn it into a red creature", models=models, steps=2, seed=3)
    np.testing.assert_array_equal(np.asarray(again[0].image), np.asarray(outs[0].image))


def test_hit_and_miss_on_what_was_painted() -> None:
    outs = D.colorize(ring_lineart(), "Turn it into a blue creature with a yellow belly",
                      models={"p": painter()}, steps=20, resolution=48)
    r = outs[0].readout
    assert outs[0].image.size == (48, 48)
    assert r.asked == ("blue", "yellow") and r.hits == ("blue",) and r.misses == ("yellow",)
    assert "yellow ✗ miss (0%)" in r.markdown() and "1/2" in r.markdown()
    none = D.colorize(ring_lineart(), "Make it look nice", models={"p": painter()})[0]
    assert none.readout.asked == () and "names no colour" in none.readout.markdown()


def _lightness(im: Image.Image) -> np.ndarray:
    return rgb_to_lab(np.asarray(im))[..., 0]


def test_protected_variant_keeps_outline_dark_and_background_white() -> None:
    line = ring_lineart(width=4)
    raw, = D.colorize(line, "Turn it into a red creature", models={"p": painter()}, protect=False, outline_l=60.0)
    prot, = D.colorize(line, "Turn it into a red creature", models={"p": painter()}, protect=True, outline_l=60.0)
    outline = rgb_to_lab(np.asarray(line))[..., 0] < 60.0
    assert outline.sum() > 100
    assert (_lightness(raw.image)[outline] >= 35).all()  # the painter covered the lines
    assert (_lightness(prot.image)[outline] < 60.0).all()  # protected: every outline pixel dark again
    inside = D.character_mask(line)
    assert (np.asarray(prot.image)[~inside] == 255).all()  # background restored to white
    assert prot.protected and prot.readout.hits == ("red",) and "mask-protected" in prot.markdown("mask-protected")
    assert prot.image is prot.protected_image and raw.image is raw.raw  # `image`: the view protect asks for
    np.testing.assert_array_equal(np.asarray(raw.protected_image), np.asarray(prot.image))  # both views, one click


def test_random_seed_is_reported_and_shared() -> None:
    p1, p2 = painter("a"), painter("b")
    outs = D.colorize(ring_lineart(), "Turn it into a red creature", models={"a": p1, "b": p2}, seed=None, steps=7)
    assert outs[0].seed == outs[1].seed and 0 <= outs[0].seed < 2**31
    assert p1.pipe.calls[0]["seed"] == p2.pipe.calls[0]["seed"] == outs[0].seed and p1.pipe.calls[0]["steps"] == 7


def test_a_model_failing_at_generation_leaves_the_others_working() -> None:
    outs = D.colorize(ring_lineart(), "Turn it into a red creature",
                      models={"bad": painter("bad", fail=True), "good": painter("good")})
    assert outs[0].image is None and "out of paint" in outs[0].error and "out of paint" in outs[0].markdown()
    assert outs[1].image is not None and outs[1].readout.hits == ("red",)


def test_out_of_range_settings_are_refused() -> None:
    with pytest.raises(D.DemoInputError, match="Steps must be between 1"):
        D.colorize(ring_lineart(), "red", models={"p": painter()}, steps=0)
    with pytest.raises(D.DemoInputError, match="guidance"):
        D.colorize(ring_lineart(), "red", models={"p": painter()}, text_guidance=-1)


# ------------------------------------------------------------------------------ the flat view at the drawing's size
def test_a_256_px_drawing_comes_back_256_px_flat_and_the_raw_output_at_the_models_size() -> None:
    line = creature_lineart(256)
    out, = D.colorize(line, "Turn it into a red creature", models={"p": painter()}, resolution=64)
    assert out.raw.size == out.protected_image.size == out.image.size == (64, 64)
    assert out.flat.size == (256, 256) and out.flat.mode == "RGB" and out.flat_ok and out.flat_note == ""
    assert out.size_note == "" and out.view("flat") is out.flat and out.view("raw") is out.raw
    flat = np.asarray(out.flat)
    stroke = out.flat_result.regions.stroke
    np.testing.assert_array_equal(flat[stroke], np.asarray(line)[stroke])  # the lines exactly as drawn
    assert tuple(flat[100, 128]) == BASIC_PROTOTYPES["red"] and tuple(flat[3, 3]) == (255, 255, 255)
    # each view has its own read-out, on what it shows
    assert set(out.readouts) == set(D.VIEWS) and out.readouts["flat"].hits == ("red",)
    assert "flat, 256×256" in out.markdown() and "raw, 64×64" in out.markdown("raw")
    with pytest.raises(ValueError, match="view must be one of"):
        out.view("sepia")
    wide, = D.colorize(wide_lineart(), "a red thing", models={"p": painter()})
    assert wide.flat.size == (300, 300)  # padded to a square, as the model input, never stretched


def test_a_2000_px_drawing_comes_back_at_max_side_with_a_note() -> None:
    outs = D.colorize(creature_lineart(2000), "Turn it into a red creature", models={"p": painter()})
    out = outs[0]
    assert out.flat.size == (D.F.MAX_SIDE, D.F.MAX_SIDE) == (1024, 1024) and out.raw.size == (64, 64)
    assert out.flat_ok and "2000x2000" in out.size_note and "1024x1024" in out.size_note
    assert f"The flat view: {out.size_note}." in D.run_message(outs, 20)
    d = D.prepare_drawing(wide_lineart().resize((3000, 2000)), 64)  # scaled to fit, then padded
    assert d.square.size == (1024, 1024) and d.size == (3000, 2000) and "3000x2000" in d.note


def test_downloads_are_written_atomically_and_the_layers_have_alpha_when_transparent(tmp_path: Path) -> None:
    outs = D.colorize(creature_lineart(256), "Turn it into a red creature", models={"p": painter()})
    files = D.Downloads(tmp_path, {o.name: o for o in outs})
    name = outs[0].name
    coloured, raw = files.coloured(name), files.coloured(name, "raw")
    assert Image.open(coloured).size == (256, 256) and Image.open(raw).size == (64, 64)
    for transparent, mode in ((True, "RGBA"), (False, "RGB")):
        flats, lines = files.flats(name, transparent), files.lines(name, transparent)
        assert flats.is_file() and lines.is_file() and flats != lines
        with Image.open(flats) as f, Image.open(lines) as li:
            assert (f.mode, li.mode, f.size, li.size) == (mode, mode, (256, 256), (256, 256))
            if transparent:
                assert f.getpixel((3, 3))[3] == 0 and f.getpixel((128, 100)) == (*BASIC_PROTOTYPES["red"], 255)
                assert li.getpixel((128, 100))[3] == 0 and li.getpixel((128, int(256 * 0.6)))[3] == 255  # ink opaque
    assert files.flats(name) == files.flats(name, True)  # written once, then kept
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".png"] * 6  # no partial file left behind
    with pytest.raises(ValueError, match="view must be one of"):
        files.coloured(name, "sepia")


def test_a_transparent_drawing_keeps_its_transparent_background() -> None:
    out, = D.colorize(creature_lineart(200, "RGBA"), "a red thing", models={"p": painter()})
    assert out.flat.mode == "RGBA" and out.flat.size == (200, 200)
    assert out.flat.getpixel((2, 2))[3] == 0 and out.flat.getpixel((100, 80)) == (*BASIC_PROTOTYPES["red"], 255)
    assert out.raw.mode == "RGB"  # the model saw it on white


def test_exact_colours_are_asked_as_basic_terms_painted_exactly_and_reported() -> None:
    p = painter()
    outs = D.colorize(creature_lineart(256), "Turn it into a #3a7bd5 creature", models={"p": p})
    out = outs[0]
    assert p.pipe.calls[0]["prompt"] == ["Turn it into a blue creature", "Turn it into a creature"]  # the basic term
    flat = np.asarray(out.flat)
    assert tuple(flat[100, 128]) == (58, 123, 213) and tuple(flat[200, 128]) == (58, 123, 213)
    assert tuple(np.asarray(out.raw)[30, 30]) == BASIC_PROTOTYPES["blue"]  # the raw view: as the model painted
    assert [m.status for m in out.exact] == ["applied"]
    assert "painted exactly #3a7bd5 in the 3 regions painted blue" in out.markdown()
    assert "exact colours are painted in the flat view only" in out.markdown("raw")
    assert out.readouts["flat"].hits == ("blue",)  # #3a7bd5 is blue to the read-out too
    msg = D.run_message(outs, 20)
    assert "#3a7bd5 → asked as “blue”" in msg and "“Turn it into a blue creature”" in msg
    # a term the model did not paint: nothing changes, and the page says so
    out, = D.colorize(creature_lineart(256), "Turn it into a red creature with a teal belly", models={"p": painter()})
    assert out.exact[0].status == "not painted" and "painted no region blue" in out.markdown()
    assert tuple(np.asarray(out.flat)[100, 128]) == BASIC_PROTOTYPES["red"]


def _photo(size: int = 128) -> Image.Image:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:size, :size]
    rgb = np.stack([x * 2, y * 2, 255 - x - y], -1) + rng.integers(0, 40, (size, size, 3))
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def test_a_blank_page_a_photo_and_a_page_with_no_dark_line_give_clear_messages() -> None:
    models = {"p": painter()}
    with pytest.raises(D.DemoInputError, match="blank"):
        D.colorize(Image.new("RGB", (256, 256), "white"), "a red thing", models=models)
    with pytest.raises(D.DemoInputError, match="not look like line art: looks like a colour image") as photo:
        D.colorize(_photo(), "a red thing", models=models)
    assert "folder" not in str(photo.value)  # step 01's advice about its input folders is not shown
    pencil = Image.new("RGB", (256, 256), "white")
    ImageDraw.Draw(pencil).ellipse((30, 30, 220, 220), outline=(190, 190, 190), width=3)  # too light for a stroke
    with pytest.raises(D.DemoInputError, match="no outline found"):
        D.colorize(pencil, "a red thing", models=models)
    with pytest.raises(D.DemoInputError, match="mostly dark"):
        D.colorize(Image.new("RGB", (64, 64), (20, 20, 20)), "a red thing", models=models)
    assert models["p"].pipe.calls == []  # refused before any model ran


@pytest.mark.parametrize(("cut", "why"), [
    ((120, 0, 150, 255), "lies in regions that reach the image border"),  # a 30 px slice out of every stroke
    ((0, 0, 255, 160), "no closed region"),  # only the bottom arc of the body is left
])
def test_strokes_with_big_gaps_fall_back_to_the_raw_output_upsampled_with_the_note(
        tmp_path: Path, cut: tuple[int, int, int, int], why: str) -> None:
    line = creature_lineart(256)
    ImageDraw.Draw(line).rectangle(cut, fill="white")
    out, = D.colorize(line, "a red thing", models={"p": painter()})
    assert not out.flat_ok and why in out.flat_note
    expected = np.asarray(out.raw.resize((256, 256), Image.Resampling.BICUBIC))
    flat, drawn = np.asarray(out.flat), np.asarray(line.convert("RGB"))
    strokes = out.flat_result.regions.stroke
    assert (flat[strokes] == drawn[strokes]).all()  # the drawing's strokes, exactly
    from t2p_utils.scrape.userdata import mask_from_lineart

    inside = mask_from_lineart(drawn)[0] & ~strokes
    np.testing.assert_array_equal(flat[inside], expected[inside])  # the raw output enlarged inside, not a blob
    assert (flat[~inside & ~strokes] == 255).all()  # the page stays white
    assert ("not flat-coloured, the model's output enlarged instead (the drawing's lines and background kept): "
            f"{out.flat_note}") in out.markdown()
    assert out.flats() is None and out.lines() is not None  # no flats layer to offer; the lines are still the lines
    files = D.Downloads(tmp_path, {out.name: out})
    assert files.flats(out.name) is None and files.lines(out.name).is_file() and files.coloured(out.name).is_file()


def test_a_drawing_flat_fill_cannot_segment_shows_the_raw_output_with_its_message(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise D.F.FlatError("no dark stroke found")

    monkeypatch.setattr(D.F, "flat_fill", refuse)
    out, = D.colorize(creature_lineart(128), "a #3a7bd5 thing", models={"p": painter()})
    assert out.flat_result is None and out.flat_note == "no dark stroke found" and out.flat.size == (128, 128)
    assert out.flats() is None and out.lines() is None and out.raw.size == (64, 64)
    assert out.exact[0].status == "fallback" and "no dark stroke found" in out.markdown()


def test_gallery_lists_the_held_out_test_characters(demo_root: Paths) -> None:
    gallery = D.held_out_gallery("smoke", demo_root.root)
    from t2p_utils.core.manifest import read_manifest

    df = read_manifest(demo_root.manifest)
    ids = df.loc[df["split"] == "test", "id"].astype(str)
    assert [Path(p).stem for p, _ in gallery] == sorted(ids, key=D._natural)
    assert all(Path(p).is_file() for p, _ in gallery)
    outs = D.colorize(gallery[0][0], "Turn it into a green creature", models={"p": painter()})  # a path works too
    assert outs[0].readout.hits == ("green",)


def test_gallery_orders_ids_as_numbers(tmp_root: Path) -> None:
    assert sorted(["189", "19", "2", "s10", "s2", "110"], key=D._natural) == ["2", "19", "110", "189", "s2", "s10"]
    paths = Paths.for_profile("smoke", tmp_root)
    make_synthetic(paths, n=30, size=64, seed=42)
    from t2p_utils.core.manifest import read_manifest, write_manifest

    df = read_manifest(paths.manifest)
    test = df.index[df["split"] == "test"]
    for new_id, i in zip(("189", "19", "2"), test, strict=False):  # ids as step 01 writes Pokédex numbers
        df.loc[i, "id"] = new_id
    write_manifest(df.to_dict("records"), paths.manifest)
    assert [c.split()[0] for _, c in D.held_out_gallery("smoke", tmp_root)][:3] == ["2", "19", "189"]


# ------------------------------------------------------------------------------ seeds (issue 22)
def test_seeds_are_whole_numbers_from_0_to_2_to_the_32_minus_1() -> None:
    assert D.MAX_SEED == 2**32 - 1
    assert [D.check_seed(v) for v in (0, 7, 7.0, np.int64(9), D.MAX_SEED, float(D.MAX_SEED), None)] == [
        0, 7, 7, 9, D.MAX_SEED, D.MAX_SEED, None]
    for bad, why in ((-1, "-1 is negative"), (2**64, "18446744073709551616 is too large"),
                     (float(2**64), "is too large"), (D.MAX_SEED + 1, "too large"), (1.5, "1.5 is not"),
                     (float("inf"), "inf is not"), (float("nan"), "nan is not"), ("12", "not str"), (True, "not bool")):
        with pytest.raises(D.DemoInputError, match=why) as err:
            D.check_seed(bad)
        assert f"from 0 to {D.MAX_SEED}" in str(err.value), bad  # the message says the range
        assert not isinstance(err.value, D.DrawingError)  # a setting: the page keeps the outputs it shows


def test_colorize_refuses_a_seed_out_of_range_before_any_model_runs() -> None:
    model = painter()
    for bad in (-1, 2**64, 2**70, 1.5):
        with pytest.raises(D.DemoInputError, match=f"from 0 to {D.MAX_SEED}"):
            D.colorize(ring_lineart(), "a red thing", models={"p": model}, seed=bad)
    assert model.pipe.calls == []
    out, = D.colorize(ring_lineart(), "a red thing", models={"p": model}, seed=D.MAX_SEED)
    assert out.seed == D.MAX_SEED and model.pipe.calls[0]["seeds"] == [D.MAX_SEED, D.MAX_SEED]
    json.dumps(out.seed)  # what the page sends back to the seed box


def test_drawing_errors_are_told_apart_from_setting_errors() -> None:
    for src in (None, b"not an image", Image.new("RGBA", (64, 64), (0, 0, 0, 0)), _photo(),
                Image.new("RGB", (64, 64), "black")):
        with pytest.raises(D.DrawingError):
            D.colorize(src, "a red thing", models={"p": painter()})
    with pytest.raises(D.DemoInputError) as err:
        D.colorize(ring_lineart(), "", models={"p": painter()})
    assert not isinstance(err.value, D.DrawingError)


def test_the_inputs_the_browser_keeps_are_json_safe_and_come_back() -> None:
    kept = D.remembered(b"pasted bytes", "a red thing", 20.0, 5.0, 1.5, float(2**64), False)
    assert json.loads(json.dumps(kept)) == kept and kept["image"] is None and kept["seed"] == float(2**64)
    kept = D.remembered("/no/such/file.png", None, float("inf"), None, "x", float("nan"), 1)
    assert json.loads(json.dumps(kept, allow_nan=False)) == kept
    assert kept["steps"] is None and kept["seed"] is None and kept["random"] is True
    import gradio as gr

    back = D.restored(D.remembered(str(REPO / "README.md"), "a red thing", 20, 5.0, 1.5, -3, False))
    assert back == [str(REPO / "README.md"), "a red thing", 20.0, 5.0, 1.5, -3.0, False]  # as typed, even a bad seed
    skip = gr.skip()
    assert D.restored({"image": "/no/such/file.png"})[0] == skip  # an upload whose file is gone
    assert D.restored(None) == [skip] * 7 and D.restored("garbage") == [skip] * 7
    # JavaScript sends a kept 1.8e19 back as the integer 18446744073709552000: a float again, or Gradio cannot send it
    back = D.restored({"seed": 18446744073709552000, "steps": "20", "instruction": 5, "random": "yes"})
    assert back[5] == float(2**64) and isinstance(back[5], float) and back[2] == 20.0
    assert back[1] == skip and back[6] == skip
    import orjson

    orjson.dumps([v for v in back if v is not skip])


# ------------------------------------------------------------------------------ the read-out rule (issue 22)
def test_without_color_words_leaves_the_rest_of_the_instruction() -> None:
    assert D.without_color_words(D.SEED_INSTRUCTION) == "Turn it into a creature with a belly and a face and back."
    assert D.without_color_words("Turn it into a purple and pink cat.") == "Turn it into a cat."
    assert D.without_color_words("a crimson, white or blue-green flag") == "a flag"
    assert D.without_color_words("Make it look nice") == "Make it look nice"
    assert D.without_color_words("credit the bred cat") == "credit the bred cat"  # words, not substrings


def test_a_model_that_ignores_the_text_is_credited_with_no_hit() -> None:
    deaf = DeafPipe()
    for colour in ("blue", "green", "red"):
        out, = D.colorize(creature_lineart(128), f"Turn it into a {colour} creature.", models={"d": fake(deaf)},
                          seed=5)
        for view in D.VIEWS:
            r = out.readouts[view]
            assert r.hits == (), (colour, view)  # its fixed palette is no evidence the text was followed
            if colour in ("blue", "green"):
                assert r.present == (colour,) and r.anyway == (colour,) and r.coverage[colour] > 0.3, (colour, view)
                assert r.coverage[colour] == pytest.approx(r.unasked[colour]), (colour, view)
                assert f"{colour} ✗ there anyway" in out.markdown(view)
            else:
                assert r.misses == ("red",)
            assert "✓ hit" not in out.markdown(view) and "0/1 painted because asked" in out.markdown(view)
    # both prompts went to the model in one batch, from the same seed
    assert deaf.calls[0]["prompt"] == ["Turn it into a blue creature.", "Turn it into a creature."]
    assert deaf.calls[0]["seeds"] == [5, 5]


def test_a_model_that_paints_the_asked_colour_is_credited_with_it() -> None:
    out, = D.colorize(creature_lineart(128), "Turn it into a red creature.", models={"p": painter()})
    for view in D.VIEWS:
        r = out.readouts[view]
        assert r.hits == ("red",) and r.unasked == {"red": 0.0}, view
    assert "red ✓ hit (100%; 0% unasked)" in out.markdown("raw")
    assert out.unasked_prompt == "Turn it into a creature." and out.unasked.size == out.raw.size
    assert "unasked: “Turn it into a creature.”, same seed" in out.markdown()


def test_each_asked_colour_is_credited_on_its_own() -> None:
    # paints the asked colour on top and green below, asked or not: red is a hit, green is there anyway
    out, = D.colorize(creature_lineart(128), "a red creature with a green belly", models={"p": fake(PartlyDeafPipe())})
    r = out.readouts["raw"]
    assert r.asked == ("red", "green") and r.hits == ("red",) and r.anyway == ("green",) and r.misses == ()
    assert "1/2 painted because asked" in r.markdown()


def test_no_colour_asked_means_one_image_per_model_and_nothing_to_credit() -> None:
    model = painter()
    out, = D.colorize(ring_lineart(), "Make it look nice", models={"p": model})
    assert [len(c["prompt"]) for c in model.pipe.calls] == [1] and out.unasked is None
    assert out.readout.asked == () and "names no colour" in out.markdown()


def test_a_readout_without_an_unasked_output_credits_nothing() -> None:
    red = Image.new("RGB", (32, 32), BASIC_PROTOTYPES["red"])
    region = np.ones((32, 32), bool)
    r = D.read_colors(red, "a red thing", region)
    assert r.present == ("red",) and r.hits == () and "not checked against an unasked output" in r.markdown()
    r = D.read_colors(red, "a red thing", region, unasked=Image.new("RGB", (32, 32), "white"))
    assert r.hits == ("red",) and r.gain("red") == pytest.approx(1.0)
    r = D.read_colors(red, "a red thing", region, unasked=red)
    assert r.hits == () and r.anyway == ("red",)


def test_05s_colour_control_is_shown_with_each_model(tmp_root: Path) -> None:
    assert D.color_control_scores("cpu", tmp_root) == {}  # before 05
    reports = tmp_root / "reports" / "cpu"
    reports.mkdir(parents=True)
    (reports / "metrics.csv").write_text(
        "model,variant,prompt,metric,mean,ci_low,ci_high,n\n"
        "ip2p_cnn_lstm,raw,control:body,color_control,0.002,0.001,0.003,40\n"
        "ip2p_cnn_lstm,flat,control:all,color_control,0.0005,-0.001,0.002,40\n"
        "ip2p_cnn_lstm,raw,control:all,color_control,0.0018,0.0014,0.0022,40\n"
        "ip2p_clip,raw,control:all,color_control,0.342,0.320,0.364,40\n"
        "ip2p_clip,raw,faithful,ssim,0.5,0.4,0.6,77\n")
    scores = D.color_control_scores("cpu", tmp_root)
    assert scores == {"ip2p_cnn_lstm": (0.0018, 0.0014, 0.0022), "ip2p_clip": (0.342, 0.320, 0.364)}
    assert D.control_markdown(scores["ip2p_cnn_lstm"]).startswith("⚠️ 05 colour control 0.002 [0.001, 0.002]: the "
                                                                  "colours the text names barely change its output")
    assert D.control_markdown(scores["ip2p_clip"]) == "05 colour control 0.342 [0.320, 0.364]"
    assert D.control_markdown(None) == ""


# ------------------------------------------------------------------------------ smaller things (issue 22)
def test_an_animated_gif_says_only_its_first_frame_is_coloured() -> None:
    frames = [creature_lineart(96), ring_lineart(96), creature_lineart(96).rotate(90)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    d = D.prepare_drawing(buf.getvalue(), 64)
    assert d.frames == 3 and d.frame_note == "the upload is an animation of 3 frames: only its first frame is coloured"
    outs = D.colorize(buf.getvalue(), "a red thing", models={"p": painter()})
    assert outs[0].frame_note == d.frame_note and f"Note: {d.frame_note}." in D.run_message(outs, 20)
    still = io.BytesIO()
    frames[0].save(still, "GIF")
    assert D.prepare_drawing(still.getvalue(), 64).frame_note == ""
    assert "Note:" not in D.run_message(D.colorize(still.getvalue(), "a red thing", models={"p": painter()}), 20)


def test_cli_binds_localhost_by_default() -> None:
    args = D.parse_args(["--profile", "smoke"])
    assert (args.profile, args.host, args.port, args.share) == ("smoke", "127.0.0.1", 7860, False)
    assert D.parse_args(["--share", "--host", "0.0.0.0"]).share
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"


# ------------------------------------------------------------------------------ Colab set-up
def test_colab_setup_does_nothing_outside_colab(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    calls: list[Any] = []
    cwd = os.getcwd()
    assert colab.setup_colab(tmp_path, run=lambda *a, **k: calls.append(a)) is None
    assert calls == [] and os.getcwd() == cwd


def test_colab_setup_clones_installs_once_and_changes_into_the_repo(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "google.colab", SimpleNamespace())
    prefix = tmp_path / "prefix"
    prefix.mkdir()
    monkeypatch.setattr(sys, "prefix", str(prefix))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    repo = tmp_path / "t2p"
    calls: list[list[str]] = []

    def run(cmd: list[str], check: bool) -> None:
        calls.append(cmd)
        if cmd[:2] == ["git", "clone"]:
            repo.mkdir()
            shutil.copy(REPO / "pyproject.toml", repo / "pyproject.toml")

    assert colab.setup_colab(repo, run=run) == repo
    assert calls[0] == ["git", "clone", "--depth", "1", colab.REPO_URL, str(repo)]
    assert calls[1] == [sys.executable, "-m", "pip", "install", "-q", "-e", str(repo)]
    assert Path(os.getcwd()) == repo and str(repo) in sys.path
    # the stamp is what scripts/env.sh writes, so a second call installs nothing
    stamp = (prefix / ".t2p-installed").read_text().strip()
    assert stamp == hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:16]
    calls.clear()
    colab.setup_colab(repo, run=run)
    assert calls == []


def test_colab_cell_is_guarded_and_notebooks_use_one_url() -> None:
    cell = colab.setup_cell()
    assert 'if "google.colab" in sys.modules:' in cell and colab.REPO_URL in cell
    ns: dict[str, Any] = {}
    exec(compile(cell, "<colab cell>", "exec"), ns)  # noqa: S102 - outside Colab: runs and does nothing
    assert "T2P_REPO_URL" not in ns
    for nb in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = ["".join(c["source"]) for c in json.loads(nb.read_text(encoding="utf-8"))["cells"]]
        setup = [c for c in cells if c.startswith(colab.CELL_MARKER)]
        assert setup in ([], [cell]), f"{nb.name}: its Colab cell differs from t2p_utils.runner.colab.setup_cell()"
