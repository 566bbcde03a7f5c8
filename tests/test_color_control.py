"""Known-answer tests of the causal colour-control metric and the coverage-weighted adherence.

Each metric must fail the model it is meant to catch: a fake that ignores the text (the same
image for every asked colour) and pure noise score about 0; a fake that paints the asked colour
scores about 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from t2p_utils.compare import metrics as M
from t2p_utils.config import compare as CC
from t2p_utils.core.colors import BASIC_PROTOTYPES

S = 48
COLORS = list(CC.CONTROL_COLORS)


def region() -> np.ndarray:
    m = np.zeros((S, S), dtype=bool)
    m[8:40, 10:38] = True
    return m


def painter(color: str, share: float = 1.0) -> np.ndarray:
    """A white image whose region is painted ``color`` over its top ``share`` of rows (grey below)."""
    img = np.full((S, S, 3), 255, dtype=np.uint8)
    m = region()
    rows = np.nonzero(m.any(axis=1))[0]
    cut = rows[0] + int(round(share * len(rows)))
    top = m.copy()
    top[cut:] = False
    img[m] = (128, 128, 128)
    img[top] = BASIC_PROTOTYPES[color]
    return img


def per_character_scores(make, n: int = 12) -> list[float]:
    return [M.color_control(M.color_control_matrix({c: make(c, k) for c in COLORS}, region(), COLORS))
            for k in range(n)]


def test_a_model_that_ignores_the_text_scores_exactly_zero() -> None:
    rng = np.random.default_rng(0)
    fixed = [rng.integers(0, 256, (S, S, 3), dtype=np.uint8) for _ in range(12)]
    scores = per_character_scores(lambda c, k: fixed[k])  # same image whatever colour is asked
    assert scores == pytest.approx([0.0] * 12, abs=1e-12)
    ci = M.bootstrap_ci(scores)
    assert ci.ci_low <= 0.0 <= ci.ci_high


def test_a_colourful_image_that_ignores_the_text_still_scores_zero() -> None:
    # multi-coloured "blotches" pass colour adherence, but not colour control
    rainbow = np.full((S, S, 3), 255, dtype=np.uint8)
    m = region()
    ys, xs = np.nonzero(m)
    for i, c in enumerate(COLORS):
        sel = (xs % len(COLORS)) == i
        rainbow[ys[sel], xs[sel]] = BASIC_PROTOTYPES[c]
    assert M.color_adherence(rainbow, m, "Turn it into a creature with a red body.") == 1.0
    assert M.color_control(M.color_control_matrix({c: rainbow for c in COLORS}, m, COLORS)) == pytest.approx(0.0)


def test_painting_the_asked_colour_scores_one() -> None:
    scores = per_character_scores(lambda c, k: painter(c))
    assert np.mean(scores) == pytest.approx(1.0)


def test_painting_the_asked_colour_on_part_of_the_body_scores_that_share() -> None:
    scores = per_character_scores(lambda c, k: painter(c, share=0.25))
    assert np.mean(scores) == pytest.approx(0.25, abs=0.02)


def test_noise_scores_about_zero() -> None:
    rng = np.random.default_rng(1)
    scores = per_character_scores(lambda c, k: rng.integers(0, 256, (S, S, 3), dtype=np.uint8), n=20)
    ci = M.bootstrap_ci(scores, seed=0)
    assert abs(ci.mean) < 0.02
    assert ci.ci_low <= 0.0 <= ci.ci_high


def test_matrix_is_asked_by_measured_shares() -> None:
    mat = M.color_control_matrix({c: painter(c) for c in COLORS}, region(), COLORS)
    assert list(mat.index) == COLORS and list(mat.columns) == COLORS
    assert np.allclose(np.diag(mat.to_numpy()), 1.0) and mat.to_numpy().sum() == pytest.approx(len(COLORS))


def test_control_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="not basic colour terms"):
        M.color_control_matrix({"rouge": painter("red")}, region(), ["rouge"])
    with pytest.raises(ValueError, match="no output for asked colour"):
        M.color_control_matrix({"red": painter("red")}, region(), ["red", "blue"])
    assert np.isnan(M.color_control(pd.DataFrame([[1.0]], index=["red"], columns=["red"])))


def test_named_share_weights_adherence_by_coverage() -> None:
    m = region()
    text = "Turn it into a creature with a red body and blue at the top."
    assert M.named_share(painter("red"), m, text) == pytest.approx(1.0)
    half = painter("red", share=0.5)  # red top half, grey bottom half
    assert M.named_share(half, m, text) == pytest.approx(0.5, abs=0.05)
    rng = np.random.default_rng(2)
    noise = rng.integers(0, 256, (S, S, 3), dtype=np.uint8)
    assert M.color_adherence(noise, m, text) == 1.0  # noise touches every colour at 3 %...
    assert M.named_share(noise, m, text) < 0.35  # ...but covers little of the body with the named ones
    assert np.isnan(M.named_share(noise, m, "Turn it into a creature."))


def test_settings_are_never_chosen_on_the_test_split(tmp_path) -> None:
    from t2p_utils.compare.run import score_split
    from t2p_utils.config import CompareConfig, Paths

    with pytest.raises(ValueError, match="never test"):
        score_split(Paths("smoke", tmp_path), object(), CompareConfig(), split="test")


def test_min_snr_weights_known_values() -> None:
    from t2p_utils.train.loss import ddpm_scheduler, min_snr_weights

    for prediction in ("epsilon", "v_prediction"):
        sched = ddpm_scheduler(prediction)
        t = __import__("torch").tensor([0, 300, 999])
        a = sched.alphas_cumprod[t].double()
        snr = a / (1 - a)
        w = min_snr_weights(sched, t, 5.0).double()
        expect = snr.clamp(max=5.0) / (snr + 1 if prediction == "v_prediction" else snr)
        assert np.allclose(w.numpy(), expect.numpy())
        # low noise (t = 0, SNR >> 5) is down-weighted; high noise keeps weight ~1 (epsilon) or ~SNR (v)
        assert w[0] < 0.01 and (w[2] == pytest.approx(1.0) if prediction == "epsilon" else w[2] < 0.01)


def test_text_time_unet_output_depends_on_the_prompt_embedding() -> None:
    import torch

    from t2p_utils.train.models import build_unet

    unet = build_unet("tiny", 32, text_time=True).eval()
    assert unet.config.addition_embed_type == "text"
    x = torch.randn(1, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    e1 = torch.zeros(1, 77, 32)
    e2 = torch.ones(1, 77, 32)
    with torch.no_grad():
        d = (unet(x, torch.tensor([500]), e1).sample - unet(x, torch.tensor([500]), e2).sample).abs().mean()
    assert d > 1e-4
