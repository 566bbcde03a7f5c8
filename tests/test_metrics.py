"""Known-answer tests of the comparison metrics and their bootstrap statistics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from t2p_utils.compare import metrics as M

S = 40  # image side


def white(size: int = S) -> np.ndarray:
    return np.full((size, size, 3), 255, dtype=np.uint8)


def square_mask(lo: int = 10, hi: int = 30, size: int = S) -> np.ndarray:
    m = np.zeros((size, size), dtype=bool)
    m[lo:hi, lo:hi] = True
    return m


def red_square() -> np.ndarray:
    img = white()
    img[square_mask()] = (220, 30, 40)
    return img


def outlined_lineart() -> np.ndarray:
    """A white square with a 1-px near-black outline on its border (the synthetic outline colour)."""
    img = white()
    m = square_mask()
    inner = square_mask(11, 29)
    img[m & ~inner] = (13, 19, 26)
    return img


# ---------------------------------------------------------------------------------------------
def test_identical_images_score_perfectly() -> None:
    img = red_square()
    assert M.psnr(img, img) == math.inf
    assert M.ssim(img, img) == pytest.approx(1.0)
    assert M.delta_e_in_mask(img, img, square_mask()) == pytest.approx(0.0)


def test_psnr_known_value() -> None:
    a = np.zeros((8, 8, 3), dtype=np.uint8)
    b = np.full((8, 8, 3), 10, dtype=np.uint8)  # MSE = 100
    assert M.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100))


def test_ssim_drops_for_different_images() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (S, S, 3), dtype=np.uint8)
    assert M.ssim(noise, red_square()) < 0.2


def test_delta_e_only_counts_inside_mask() -> None:
    gt = red_square()
    out = gt.copy()
    out[:5, :5] = (0, 0, 255)  # a change in the background only
    assert M.delta_e_in_mask(out, gt, square_mask()) == pytest.approx(0.0)
    out2 = gt.copy()
    out2[square_mask()] = (40, 90, 220)  # red -> blue everywhere in the mask
    de = M.delta_e_in_mask(out2, gt, square_mask())
    assert de > 40  # red vs blue is a very large CIEDE2000


def test_different_sizes_raise_naming_both() -> None:
    with pytest.raises(ValueError, match=r"output is 40x40.*target is 32x24"):
        M.psnr(white(), np.zeros((24, 32, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="32x32"):
        M.background_leakage(white(), np.zeros((32, 32), dtype=bool))


def test_red_square_adherence() -> None:
    img, m = red_square(), square_mask()
    assert M.color_adherence(img, m, "Turn it into a red creature") == 1.0
    assert M.color_adherence(img, m, "Turn it into a blue creature") == 0.0
    assert M.color_adherence(img, m, "make it red and blue") == 0.5
    assert M.color_adherence(img, m, "crimson please") == 1.0  # synonym
    assert math.isnan(M.color_adherence(img, m, "Turn it into a creature"))


def test_adherence_three_percent_threshold() -> None:
    img, m = red_square(), square_mask()  # 400 mask pixels
    img = img.copy()
    rows = np.argwhere(m)
    img[tuple(rows[:20].T)] = (40, 90, 220)  # 5 % blue
    assert M.color_adherence(img, m, "blue") == 1.0
    img2 = red_square()
    img2[tuple(rows[:8].T)] = (40, 90, 220)  # 2 % blue
    assert M.color_adherence(img2, m, "blue") == 0.0


def test_adherence_excludes_outline_pixels() -> None:
    line = outlined_lineart()
    out = red_square()
    out[M.outline_mask(line)] = (13, 19, 26)  # the outline kept: 76 of 400 pixels are black
    assert M.color_adherence(out, square_mask(), "black") == 1.0
    assert M.color_adherence(out, square_mask(), "black", exclude=M.outline_mask(line)) == 0.0


def test_background_only_change_leakage_equals_area_share() -> None:
    out = red_square()
    m = square_mask()
    out[0:10, :] = (50, 170, 60)  # paint a 10-row band of the background green
    bg = (~m).sum()
    assert M.background_leakage(out, m) == pytest.approx(10 * S / bg)
    assert M.background_leakage(red_square(), m) == 0.0
    # a faint tint (ΔE < 10 from white) is not leakage
    faint = red_square()
    faint[~m] = (250, 250, 246)
    assert M.background_leakage(faint, m) == 0.0


def test_line_preservation() -> None:
    line = outlined_lineart()
    n_out = int(M.outline_mask(line).sum())
    assert n_out == 76
    assert M.line_preservation(line, line) == 1.0
    assert M.line_preservation(white(), line) == 0.0
    out = line.copy()
    ys, xs = np.nonzero(M.outline_mask(line))
    out[ys[:19], xs[:19]] = (220, 30, 40)  # a quarter of the outline painted over red
    assert M.line_preservation(out, line) == pytest.approx(57 / 76)
    assert math.isnan(M.line_preservation(line, white()))


def test_protect_restores_outline_and_background() -> None:
    line = outlined_lineart()
    noisy = np.random.default_rng(1).integers(0, 256, (S, S, 3), dtype=np.uint8)
    prot = np.asarray(M.protect(noisy, line, square_mask()))
    assert M.background_leakage(prot, square_mask()) == 0.0
    assert M.line_preservation(prot, line) == 1.0
    inner = square_mask() & ~M.outline_mask(line)
    np.testing.assert_array_equal(prot[inner], noisy[inner])  # the colouring itself is untouched


def test_pil_inputs_and_rgba_on_white() -> None:
    rgba = Image.new("RGBA", (S, S), (0, 0, 0, 0))
    assert M.psnr(rgba, white()) == math.inf  # transparent -> white
    assert M.to_mask(Image.fromarray((square_mask() * 255).astype(np.uint8))).sum() == 400


def test_score_dicts_have_expected_values() -> None:
    line = outlined_lineart()
    gt = red_square()
    gt[M.outline_mask(line)] = (13, 19, 26)
    f = M.score_faithful(gt, gt, line, square_mask(), "a red creature")
    assert set(f) == set(M.FAITHFUL_METRICS)
    assert (f["psnr"], f["delta_e"], f["leakage"], f["line_preservation"], f["adherence"]) == (math.inf, 0.0, 0.0, 1.0, 1.0)
    c = M.score_counterfactual(gt, line, square_mask(), "a blue creature")
    assert set(c) == set(M.COUNTERFACTUAL_METRICS)
    assert c["adherence"] == 0.0


# ---------------------------------------------------------------------------------------------
def test_bootstrap_contains_mean_and_is_deterministic() -> None:
    x = np.random.default_rng(3).normal(5.0, 2.0, size=50)
    a = M.bootstrap_ci(x, n_boot=1000, seed=7)
    b = M.bootstrap_ci(x, n_boot=1000, seed=7)
    assert a == b
    assert a.ci_low < a.mean < a.ci_high
    assert a.mean == pytest.approx(x.mean())
    # width close to the normal theory 95 % interval (2 * 1.96 * sd / sqrt(n))
    expected = 2 * 1.96 * x.std(ddof=1) / np.sqrt(50)
    assert (a.ci_high - a.ci_low) == pytest.approx(expected, rel=0.25)
    assert a.n == 50


def test_bootstrap_edge_cases() -> None:
    e = M.bootstrap_ci([float("nan")])
    assert e.n == 0 and math.isnan(e.mean)
    one = M.bootstrap_ci([3.0, float("nan")])
    assert (one.mean, one.ci_low, one.ci_high, one.n) == (3.0, 3.0, 3.0, 1)
    inf = M.bootstrap_ci([math.inf, 30.0, 40.0], n_boot=200)
    assert inf.mean == math.inf and inf.ci_high == math.inf and inf.ci_low >= 30.0


def test_paired_difference_sign_and_pairing() -> None:
    ids = [f"s{i}" for i in range(30)]
    rng = np.random.default_rng(0)
    base = pd.Series(rng.normal(0, 10, 30), index=ids)  # large between-character variance
    better = base + 1.0 + rng.normal(0, 0.1, 30)
    d = M.paired_difference(better, base, n_boot=1000, seed=0)
    assert d.mean == pytest.approx(1.0, abs=0.1)
    assert d.ci_low > 0  # pairing detects the 1-point gain despite the spread of 10
    r = M.paired_difference(base, better, n_boot=1000, seed=0)
    assert r.mean == pytest.approx(-d.mean) and r.ci_high < 0
    # only common ids are paired
    partial = M.paired_difference(better.iloc[:10], base, n_boot=100)
    assert partial.n == 10
    with pytest.raises(ValueError, match="one value per id"):
        M.paired_difference(pd.Series([1.0, 2.0], index=["a", "a"]), base)


# ---------------------------------------------------------------------------------------------
def tiny_clip_scorer() -> M.ClipDirectionScorer:
    """A random open_clip model small enough for CPU tests (OpenAI's BPE tokenizer, bundled with open_clip)."""
    import open_clip
    import torch
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(0)
    model = CLIP(
        embed_dim=16,
        vision_cfg=CLIPVisionCfg(layers=1, width=32, head_width=16, patch_size=8, image_size=32),
        text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=1),
    ).eval()
    pre = open_clip.transform.image_transform(32, is_train=False)
    return M.ClipDirectionScorer(model, pre, open_clip.get_tokenizer("ViT-B-32"))


@pytest.fixture(scope="module")
def tiny_clip() -> M.ClipDirectionScorer:
    return tiny_clip_scorer()


def test_clip_direction_matches_manual_formula(tiny_clip: M.ClipDirectionScorer) -> None:
    line = Image.fromarray(outlined_lineart())
    out = Image.fromarray(red_square())
    got = tiny_clip.direction_similarity([line], [out], ["a line drawing"], ["a red creature"])
    ei = tiny_clip.encode_images([out, line])
    et = tiny_clip.encode_texts(["a red creature", "a line drawing"])
    di, dt = (ei[0] - ei[1]).numpy(), (et[0] - et[1]).numpy()
    manual = float(di @ dt / np.linalg.norm(di) / np.linalg.norm(dt))
    assert got[0] == pytest.approx(manual, abs=1e-5)
    assert -1.0 <= got[0] <= 1.0


def test_clip_direction_symmetries(tiny_clip: M.ClipDirectionScorer) -> None:
    a, b = Image.fromarray(outlined_lineart()), Image.fromarray(red_square())
    fwd = tiny_clip.direction_similarity([a], [b], ["x drawing"], ["a red creature"])[0]
    flip_text = tiny_clip.direction_similarity([a], [b], ["a red creature"], ["x drawing"])[0]
    flip_both = tiny_clip.direction_similarity([b], [a], ["a red creature"], ["x drawing"])[0]
    assert flip_text == pytest.approx(-fwd, abs=1e-6)
    assert flip_both == pytest.approx(fwd, abs=1e-6)
    unchanged = tiny_clip.direction_similarity([a], [a], ["x"], ["a red creature"])[0]
    assert unchanged == 0.0  # no image change -> no direction
    with pytest.raises(ValueError, match="equal lengths"):
        tiny_clip.direction_similarity([a, a], [b], ["x"], ["y"])


def test_outline_threshold_for_anti_aliased_line_art() -> None:
    line = outlined_lineart()
    gray = line.copy()
    gray[M.outline_mask(line)] = (110, 110, 110)  # an anti-aliased 64 px outline: L* ~ 46
    assert M.outline_mask(gray).sum() == 0 and math.isnan(M.line_preservation(gray, gray))
    assert M.outline_mask(gray, 60).sum() == 76
    assert M.line_preservation(gray, gray, 60) == 1.0
    assert M.line_preservation(white(), gray, 60) == 0.0
    f = M.score_faithful(gray, gray, gray, square_mask(), "gray", outline_l=60)
    assert f["line_preservation"] == 1.0 and f["adherence"] == 0.0  # the gray outline is excluded from the region
