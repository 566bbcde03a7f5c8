"""Builders of user data folders for the tests: synthetic creatures saved the way users keep their images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from t2p_utils.scrape.synthetic import Creature, draw_creature, random_creature


def creature(i: int, size: int = 64, seed: int = 7) -> tuple[Creature, Image.Image, Image.Image, Image.Image]:
    """Creature ``i`` (deterministic): (creature, colour RGB, line art RGB, mask L)."""
    c = random_creature(f"c{i:03d}", np.random.default_rng([seed, i]))
    return (c, *draw_creature(c, size, np.random.default_rng([seed, 100 + i])))


def transparent(img: Image.Image) -> Image.Image:
    """White pixels made transparent (how line art is often exported)."""
    rgba = img.convert("RGBA")
    arr = np.asarray(rgba).copy()
    arr[(arr[..., :3] > 250).all(axis=-1), 3] = 0
    return Image.fromarray(arr, "RGBA")


def widen(img: Image.Image, extra: int = 16) -> Image.Image:
    """The image on a wider white canvas (an odd, non-square size)."""
    out = Image.new(img.mode, (img.width + extra, img.height), (255, 255, 255) if img.mode == "RGB" else 255)
    out.paste(img, (extra // 2, 0))
    return out


def write_kaggle(root: Path, train: int = 0, test: int = 0, size: int = 64, odd: bool = False,
                 unpaired: bool = False) -> dict[str, Creature]:
    """A sketch2pokemon-layout folder: ``train`` and ``test`` pairs as JPEGs (A = line art, B = colour).

    ``odd``: the first test pair is 255x256 (as one of the real Kaggle files); ``unpaired``: one extra testB
    file without its line art and one trainA file without its colour image.
    """
    made: dict[str, Creature] = {}
    k = 0
    for split, n in (("train", train), ("test", test)):
        if not n:
            continue
        (root / f"{split}A").mkdir(parents=True, exist_ok=True)
        (root / f"{split}B").mkdir(parents=True, exist_ok=True)
        for j in range(n):
            c, color, line, _ = creature(k, size)
            k += 1
            if odd and split == "test" and j == 0:
                color, line = color.resize((size * 4 - 1, size * 4)), line.resize((size * 4 - 1, size * 4))
            line.save(root / f"{split}A" / f"{j}.jpg", quality=95)
            color.save(root / f"{split}B" / f"{j}.jpg", quality=95)
            made[f"{split}-{j}"] = c
    if unpaired:
        (root / "testB").mkdir(parents=True, exist_ok=True)
        creature(99, size)[1].save(root / "testB" / "orphan.jpg")
        if train:
            creature(98, size)[2].save(root / "trainA" / "lonely.jpg")
    return made


def write_folder(root: Path, with_color: int, lineart_only: int = 0, size: int = 64) -> dict[str, Creature]:
    """A plain ``folder`` source: ``lineart/`` PNGs on transparent backgrounds (every third one non-square) and
    ``color/`` JPEGs for the first ``with_color`` creatures; the last ``lineart_only`` have no colour image."""
    (root / "lineart").mkdir(parents=True, exist_ok=True)
    (root / "color").mkdir(parents=True, exist_ok=True)
    made = {}
    for i in range(with_color + lineart_only):
        c, color, line, _ = creature(i, size)
        stem = f"char_{i:02d}"
        if i % 3 == 2:
            line, color = widen(line), widen(color)
        transparent(line).save(root / "lineart" / f"{stem}.png")
        if i < with_color:
            color.save(root / "color" / f"{stem}.jpg", quality=95)
        made[stem] = c
    return made
