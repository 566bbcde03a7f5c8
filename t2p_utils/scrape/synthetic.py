"""Synthetic line-art creatures for the ``smoke`` profile and the tests.

Each creature is a few outlined shapes with flat fills of *known* colours, named like the
parts the captions talk about (body, belly, eyes, ears, tail). The generator writes the
same file contracts as the real sprites (``color/ lineart/ mask/`` PNGs and
``manifest.csv``), plus the ground truth colours per part in the manifest's ``parts``
column, so every later step and test can run without the network and check its answers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from t2p_utils.config.params import Paths
from t2p_utils.core.io import atomic_write_image, atomic_write_json
from t2p_utils.core.manifest import MANIFEST_COLUMNS, write_manifest
from t2p_utils.core.stamps import cache_key

log = logging.getLogger(__name__)

#: Basic colour terms with one clean sRGB value each (used for fills of known colour).
SYNTH_COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 40),
    "orange": (245, 140, 20),
    "yellow": (250, 220, 40),
    "green": (50, 170, 60),
    "blue": (40, 90, 220),
    "purple": (140, 60, 190),
    "pink": (245, 140, 190),
    "brown": (130, 80, 40),
}
OUTLINE = (13, 19, 26)  # the near-black of the dream-world outlines (#0d131a)
SPECIES = ("creature", "cat", "bird", "blob", "fox", "turtle")


@dataclass(frozen=True)
class Creature:
    sprite_id: str
    species: str
    parts: dict[str, str]  # part name -> basic colour term


def _ellipse(draw: ImageDraw.ImageDraw, box: tuple[float, ...], fill: tuple[int, ...] | None, width: int) -> None:
    draw.ellipse(box, fill=fill, outline=OUTLINE, width=width)


def draw_creature(c: Creature, size: int, rng: np.random.Generator) -> tuple[Image.Image, Image.Image, Image.Image]:
    """Draw one creature at ``size`` px: (colour RGB, line art RGB, mask L)."""
    s = size
    lw = max(1, s // 48)
    jitter = lambda a: a * s + rng.uniform(-0.03, 0.03) * s  # noqa: E731
    shapes: list[tuple[str, tuple[float, ...]]] = []
    # ears (two small ellipses above the body), then tail, body, belly, eyes
    if "ears" in c.parts:
        shapes.append(("ears", (jitter(0.28), jitter(0.12), jitter(0.42), jitter(0.38))))
        shapes.append(("ears", (jitter(0.58), jitter(0.12), jitter(0.72), jitter(0.38))))
    if "tail" in c.parts:
        shapes.append(("tail", (jitter(0.70), jitter(0.50), jitter(0.93), jitter(0.72))))
    shapes.append(("body", (jitter(0.18), jitter(0.25), jitter(0.82), jitter(0.90))))
    shapes.append(("belly", (jitter(0.33), jitter(0.52), jitter(0.67), jitter(0.85))))
    e = 0.07
    shapes.append(("eyes", (jitter(0.34), jitter(0.36), jitter(0.34) + e * s, jitter(0.36) + e * s)))
    shapes.append(("eyes", (jitter(0.56), jitter(0.36), jitter(0.56) + e * s, jitter(0.36) + e * s)))

    color = Image.new("RGB", (s, s), "white")
    line = Image.new("RGB", (s, s), "white")
    mask = Image.new("L", (s, s), 0)
    dc, dl, dm = ImageDraw.Draw(color), ImageDraw.Draw(line), ImageDraw.Draw(mask)
    for part, box in shapes:
        box = (min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3]))
        _ellipse(dc, box, SYNTH_COLORS[c.parts[part]], lw)
        _ellipse(dl, box, (255, 255, 255), lw)
        dm.ellipse(box, fill=255, outline=255, width=lw)
    return color, line, mask


def random_creature(sprite_id: str, rng: np.random.Generator) -> Creature:
    names = list(SYNTH_COLORS)
    body, belly, eyes, extra = rng.choice(names, size=4, replace=False)
    parts = {"body": str(body), "belly": str(belly), "eyes": str(eyes)}
    if rng.random() < 0.5:
        parts["ears"] = str(extra)
    if rng.random() < 0.5:
        parts["tail"] = str(rng.choice([str(body), str(extra)]))
    return Creature(sprite_id, str(rng.choice(SPECIES)), parts)


def describe(c: Creature) -> str:
    """A short BLIP-like caption naming every part's colour (the smoke reference caption)."""
    bits = [f"a {c.parts['belly']} belly", f"{c.parts['eyes']} eyes"]
    for part in ("ears", "tail"):
        if part in c.parts:
            bits.append(f"{c.parts[part]} {part}")
    return f"a drawing of a {c.parts['body']} {c.species} with " + ", ".join(bits[:-1]) + f" and {bits[-1]}"


def counterfactual(c: Creature, rng: np.random.Generator) -> dict[str, str]:
    """The same creature with every part recoloured to a colour it does not have."""
    used = set(c.parts.values())
    spare = [n for n in SYNTH_COLORS if n not in used] or list(SYNTH_COLORS)
    return {p: str(rng.choice(spare)) for p in c.parts}


def make_synthetic(paths: Paths, n: int = 48, size: int = 64, seed: int = 42, force: bool = False) -> list[Creature]:
    """Write ``n`` synthetic creatures for ``paths.profile``: images, manifest, reference captions.

    Deterministic in ``seed``; splits are 80/10/10 by id order (no families here).
    """
    from t2p_utils.core.reference_csv import write_reference_csv  # local import: keeps module import light

    rng = np.random.default_rng(seed)
    creatures = [random_creature(f"s{i:03d}", rng) for i in range(n)]
    # a creature's images are drawn again unless they exist with the key they were drawn with: its size, seed and
    # parts, and the code that draws it (this module and what it imports: t2p_utils.core.stamps.cache_key)
    state_file = paths.processed / "synthetic_state.json"
    try:
        state = {} if force else dict(json.loads(state_file.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        state = {}
    keys = {c.sprite_id: cache_key({"size": size, "seed": seed}, {"id": c.sprite_id, "species": c.species,
                                                                  "parts": c.parts}, code=[__name__])
            for c in creatures}
    rows = []
    n_test = max(2, round(0.1 * n))
    n_val = max(2, round(0.1 * n))
    for i, c in enumerate(creatures):
        split = "test" if i >= n - n_test else ("val" if i >= n - n_test - n_val else "train")
        out = {k: paths.image(k, c.sprite_id) for k in ("color", "lineart", "mask")}
        if state.get(c.sprite_id) != keys[c.sprite_id] or not all(p.exists() for p in out.values()):
            color, line, mask = draw_creature(c, size, np.random.default_rng([seed, i]))
            atomic_write_image(color, out["color"])
            atomic_write_image(line, out["lineart"])
            atomic_write_image(mask, out["mask"])
            state[c.sprite_id] = keys[c.sprite_id]
        rows.append(
            {
                "id": c.sprite_id,
                "name": f"synthetic {c.species} {i}",
                "split": split,
                "source": "synthetic",
                "source_path": "",
                "sha256": "",
                "color": str(out["color"].relative_to(paths.root)),
                "lineart": str(out["lineart"].relative_to(paths.root)),
                "mask": str(out["mask"].relative_to(paths.root)),
                "status": "ok",
                "error": "",
                "lineart_ok": True,
                "parts": json.dumps(c.parts, sort_keys=True),
            }
        )
    assert set(rows[0]) == set(MANIFEST_COLUMNS) | {"parts"}
    atomic_write_json(state, state_file)
    write_manifest(rows, paths.manifest)
    ref = []
    for i, c in enumerate(creatures):
        cf = counterfactual(c, np.random.default_rng([seed, 1000 + i]))
        ref.append(
            {
                "id": c.sprite_id,
                "split": rows[i]["split"],
                "caption": describe(c),
                "faithful": "Turn it into " + describe(c).replace("a drawing of ", "") + ".",
                "counterfactual": "Turn it into " + describe(Creature(c.sprite_id, c.species, cf)).replace("a drawing of ", "") + ".",
            }
        )
    write_reference_csv(
        ref,
        paths.reference_captions,
        provenance="generated by t2p_utils.scrape.synthetic from the known part colours of each synthetic creature",
    )
    log.info("wrote %d synthetic creatures to %s", n, paths.processed)
    return creatures
