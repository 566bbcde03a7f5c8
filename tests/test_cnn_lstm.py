"""CNN-LSTM captioner: vocabulary, overfitting a tiny set, greedy vs beam, save/load, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from t2p_utils.captions.cnn_lstm import (
    UNK,
    CnnLstmConfig,
    Vocab,
    beam_decode,
    caption_images,
    greedy_decode,
    load_captioner,
    load_images,
    save_captioner,
    sequence_log_likelihood,
    split_train_val,
    tokenize,
    train_captioner,
)

CAPTIONS = [
    "a drawing of a red bird with a yellow belly",
    "a blue cat with green eyes",
    "a drawing of a fox, sitting down",
    "a pink blob with purple ears and a brown tail",
]
COLOURS = [(220, 30, 40), (40, 90, 220), (245, 140, 20), (245, 140, 190)]


def _images(size: int = 16) -> torch.Tensor:
    imgs = torch.zeros(len(COLOURS), 3, size, size)
    for i, c in enumerate(COLOURS):
        imgs[i] = torch.tensor(c, dtype=torch.float32)[:, None, None] / 255.0
        imgs[i, :, : size // 2 : 1 + i] = 1.0  # a distinct white stripe pattern per image
    return imgs


TINY = CnnLstmConfig(image_size=16, emb_dim=32, hidden_dim=64, cnn_channels=8, min_count=1, max_len=16,
                     epochs=150, batch_size=4, lr=1e-2, patience=1000, val_fraction=0.0, beam_size=3, seed=0)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models: one torch thread is much faster than two on a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def overfit(_one_thread) -> object:
    return train_captioner(_images(), CAPTIONS, TINY, progress=False)


def test_tokenize_and_vocab_unk_below_min_count() -> None:
    assert tokenize("A drawing, with a <unk> body.") == ["a", "drawing", ",", "with", "a", "<unk>", "body"]
    caps = ["a drawing of a cat", "a drawing of a red cat", "a drawing of a dog"]
    v = Vocab.build(caps, min_count=2)
    assert v.itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert set(v.itos[4:]) == {"a", "drawing", "of", "cat"}
    assert v.unk_words == ["dog", "red"]
    assert v.decode(v.encode("a red dog")) == "a <unk> <unk>"
    assert v.decode(v.encode("a drawing of a cat")) == "a drawing of a cat"
    assert v.decode(v.encode("a drawing, of a cat")) == "a drawing <unk> of a cat"  # "," unseen in training
    v2 = Vocab.build(["a cat, sitting", "a dog, sitting"], min_count=1)
    assert v2.decode(v2.encode("a cat, sitting")) == "a cat, sitting"


def test_split_train_val_deterministic() -> None:
    tr, va = split_train_val(20, 0.15, seed=1)
    assert len(va) == 3 and len(tr) == 17 and not set(tr) & set(va)
    np.testing.assert_array_equal(va, split_train_val(20, 0.15, seed=1)[1])


def test_overfits_tiny_set_exactly(overfit) -> None:
    assert overfit.history[-1]["train_loss"] < overfit.history[0]["train_loss"] / 10
    assert caption_images(overfit, _images(), beam_size=1, progress=False) == CAPTIONS
    assert caption_images(overfit, _images(), beam_size=3, progress=False) == CAPTIONS


def test_beam_at_least_as_likely_as_greedy() -> None:
    # a barely trained model, where greedy and beam disagree more often
    cfg = CnnLstmConfig(**{**TINY.__dict__, "epochs": 3})
    trained = train_captioner(_images(), CAPTIONS, cfg, progress=False)
    imgs = _images()
    g_ids, g_scores = greedy_decode(trained.model, imgs, cfg.max_len)
    for i, img in enumerate(imgs):
        ids, score = beam_decode(trained.model, img, beam_size=4, max_len=cfg.max_len)
        assert score >= g_scores[i] - 1e-5
        if len(ids) < cfg.max_len:  # ended with <eos>: the score is the sequence's log-likelihood
            assert sequence_log_likelihood(trained.model, img, ids) == pytest.approx(score, abs=1e-4)
        if len(g_ids[i]) < cfg.max_len:
            assert sequence_log_likelihood(trained.model, img, g_ids[i]) == pytest.approx(g_scores[i], abs=1e-4)


def test_unk_where_rare_words_were() -> None:
    caps = ["a drawing with a red body"] + ["a drawing with a body"] * 3 + ["a drawing with a blue body"]
    imgs = _images().repeat(2, 1, 1, 1)[:5]
    cfg = CnnLstmConfig(**{**TINY.__dict__, "min_count": 2, "epochs": 60})
    trained = train_captioner(imgs, caps, cfg, progress=False)
    assert UNK in trained.vocab.itos and "red" not in trained.vocab.stoi and "blue" not in trained.vocab.stoi
    out = caption_images(trained, imgs[:1], beam_size=1, progress=False)[0]
    assert out in {"a drawing with a <unk> body", "a drawing with a body"}


def test_save_load_roundtrip_and_determinism(overfit, tmp_path: Path) -> None:
    save_captioner(overfit, tmp_path / "cnn_lstm")
    loaded = load_captioner(tmp_path / "cnn_lstm")
    assert loaded.vocab.itos == overfit.vocab.itos and loaded.best_epoch == overfit.best_epoch
    imgs = _images()
    torch.testing.assert_close(loaded.model(imgs, torch.ones(4, 3, dtype=torch.long)),
                               overfit.model(imgs, torch.ones(4, 3, dtype=torch.long)))
    cfg = CnnLstmConfig(**{**TINY.__dict__, "epochs": 4})
    a = train_captioner(imgs, CAPTIONS, cfg, progress=False)
    b = train_captioner(imgs, CAPTIONS, cfg, progress=False)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    with pytest.raises(FileNotFoundError, match="02_cnn_lstm"):
        load_captioner(tmp_path / "nothing")


def test_early_stopping_keeps_best_epoch() -> None:
    imgs = _images()
    cfg = CnnLstmConfig(**{**TINY.__dict__, "epochs": 80, "patience": 3})
    # validation captions unrelated to the images: val loss soon rises -> stops early
    trained = train_captioner(imgs, CAPTIONS, cfg, val_images=imgs, val_captions=CAPTIONS[::-1], progress=False)
    vals = [h["val_loss"] for h in trained.history]
    assert len(vals) < 80
    # the kept epoch is the best one (improvements under 1e-4 do not count) and training stopped 3 epochs later
    assert vals[trained.best_epoch - 1] <= min(vals) + 1e-4
    assert all(v > vals[trained.best_epoch - 1] - 1e-4 for v in vals[trained.best_epoch :])
    assert len(vals) == trained.best_epoch + 3
    # the returned model is the best epoch's: its validation loss is the recorded one
    from t2p_utils.captions.cnn_lstm import evaluate_loss

    seqs = [trained.vocab.encode(c) for c in CAPTIONS[::-1]]
    assert evaluate_loss(trained.model, imgs, seqs, cfg.max_len) == pytest.approx(vals[trained.best_epoch - 1], abs=1e-5)


def test_load_images_composites_alpha_on_white(tmp_path: Path) -> None:
    from PIL import Image

    img = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    img.paste((0, 0, 255, 255), (0, 0, 4, 8))
    img.save(tmp_path / "a.png")
    x = load_images([tmp_path / "a.png"], 8)
    assert x.shape == (1, 3, 8, 8)
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(x[0, :, 0, 7], torch.tensor([1.0, 1.0, 1.0]))
    with pytest.raises(FileNotFoundError, match="01_scrape"):
        load_images([tmp_path / "missing.png"], 8)
