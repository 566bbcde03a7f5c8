"""Known-answer tests of the causal binding metric, the places it measures, part-level recolouring and the
instruction phrasings (issue 20).

The metric must fail the models it is meant to catch: one that paints the whole body the first colour named
(the seed's failure mode 2) scores 0, as does one that ignores the text and pure noise; one that paints each
place as asked scores about 1.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from t2p_utils.captions.recolor import RecolorSettings, part_copies, part_recolor
from t2p_utils.captions.templates import (
    NP_FRAMES,
    heldout_frames,
    instruction_for,
    parse_places,
    phrasings,
    place_imperatives,
)
from t2p_utils.compare import metrics as M
from t2p_utils.compare.binding import binding_pair_of
from t2p_utils.config import compare as CC
from t2p_utils.core.colors import BASIC_PROTOTYPES, color_coverage
from t2p_utils.core.palette import PaletteSettings, palette_caption
from t2p_utils.core.places import PLACE_PAIRS, PlaceError, place_masks, split_masks

S = 48


def region(k: int = 0) -> np.ndarray:
    """A blob per character: rectangles of varying size and place."""
    m = np.zeros((S, S), dtype=bool)
    m[6 + k % 4: 42 - k % 3, 8 + k % 5: 40 - k % 2] = True
    return m


def place_painter(region_: np.ndarray, pair: str, first: str, second: str) -> np.ndarray:
    """Paints the first place of ``pair`` ``first`` and the rest ``second`` (the model binding means)."""
    img = np.full((S, S, 3), 255, dtype=np.uint8)
    p1, p2 = split_masks(region_, pair, 0.5)
    img[p1] = BASIC_PROTOTYPES[first]
    img[p2] = BASIC_PROTOTYPES[second]
    return img


def body_painter(region_: np.ndarray, color: str) -> np.ndarray:
    img = np.full((S, S, 3), 255, dtype=np.uint8)
    img[region_] = BASIC_PROTOTYPES[color]
    return img


def scores(make_ab, make_ba, n: int = 10) -> list[float]:
    out = []
    for k in range(n):
        a, b = binding_pair_of(k, CC.BINDING_PAIRS)
        pair = list(PLACE_PAIRS)[k % 2]
        r = region(k)
        out.append(M.binding_score(make_ab(r, pair, a, b, k), make_ba(r, pair, a, b, k), r, pair, a, b))
    return out


def test_painting_each_place_as_asked_scores_about_one() -> None:
    s = scores(lambda r, p, a, b, k: place_painter(r, p, a, b), lambda r, p, a, b, k: place_painter(r, p, b, a))
    assert np.mean(s) == pytest.approx(1.0, abs=1e-9)


def test_painting_the_whole_body_the_first_colour_named_scores_zero() -> None:
    # "red at the top and blue at the bottom" -> all red; the swap -> all blue (failure mode 2)
    s = scores(lambda r, p, a, b, k: body_painter(r, a), lambda r, p, a, b, k: body_painter(r, b))
    assert s == pytest.approx([0.0] * 10, abs=1e-12)
    # whatever the one colour: the second named, or a fixed one
    s = scores(lambda r, p, a, b, k: body_painter(r, b), lambda r, p, a, b, k: body_painter(r, a))
    assert s == pytest.approx([0.0] * 10, abs=1e-12)


def test_a_model_that_ignores_the_text_scores_exactly_zero() -> None:
    rng = np.random.default_rng(0)
    fixed = [rng.integers(0, 256, (S, S, 3), dtype=np.uint8) for _ in range(10)]
    s = scores(lambda r, p, a, b, k: fixed[k], lambda r, p, a, b, k: fixed[k])
    assert s == pytest.approx([0.0] * 10, abs=1e-12)
    # a fixed two-tone image, right for one order only, is not credited either
    s = scores(lambda r, p, a, b, k: place_painter(r, p, a, b), lambda r, p, a, b, k: place_painter(r, p, a, b))
    assert s == pytest.approx([0.0] * 10, abs=1e-12)


def test_noise_scores_about_zero() -> None:
    rng = np.random.default_rng(1)
    s = scores(lambda *_: rng.integers(0, 256, (S, S, 3), dtype=np.uint8),
               lambda *_: rng.integers(0, 256, (S, S, 3), dtype=np.uint8), n=30)
    assert abs(M.bootstrap_ci(s).mean) < 0.02


def test_swapped_places_score_minus_one_and_half_right_scores_half() -> None:
    s = scores(lambda r, p, a, b, k: place_painter(r, p, b, a), lambda r, p, a, b, k: place_painter(r, p, a, b))
    assert np.mean(s) == pytest.approx(-1.0, abs=1e-9)
    # the first place painted as asked, the second left white both ways: half the terms
    def half(r, p, first, second):
        img = place_painter(r, p, first, second)
        img[split_masks(r, p, 0.5)[1]] = 255
        return img
    s = scores(lambda r, p, a, b, k: half(r, p, a, b), lambda r, p, a, b, k: half(r, p, b, a))
    assert np.mean(s) == pytest.approx(0.5, abs=1e-9)


def test_binding_rejects_bad_colours() -> None:
    r = region()
    img = body_painter(r, "red")
    with pytest.raises(ValueError, match="must differ"):
        M.binding_score(img, img, r, "top_bottom", "red", "red")
    with pytest.raises(ValueError, match="basic colour term"):
        M.binding_score(img, img, r, "top_bottom", "red", "teal")
    with pytest.raises(PlaceError, match="empty"):
        place_masks(np.zeros((S, S), bool))


def test_places_are_disjoint_and_where_the_words_say() -> None:
    r = region()
    p = place_masks(r)
    assert not (p["top"] & p["bottom"]).any() and not (p["middle"] & p["edges"]).any()
    ys_top, ys_bottom = np.nonzero(p["top"])[0], np.nonzero(p["bottom"])[0]
    assert ys_top.max() < ys_bottom.min()
    cy, cx = np.argwhere(r).mean(0)
    d = lambda m: np.hypot(*(np.argwhere(m) - (cy, cx)).T).mean()
    assert d(p["middle"]) < d(p["edges"])
    for pair in PLACE_PAIRS:
        a, b = split_masks(r, pair, 0.4)
        assert not (a & b).any() and ((a | b) == r).all()
        assert a.sum() == pytest.approx(0.4 * r.sum(), rel=0.15)


def test_binding_prompts_fill_both_colours() -> None:
    for _, template in {**CC.BINDING_TEMPLATES, **CC.BINDING_HELDOUT}.values():
        text = M.binding_prompt(template, "orange", "blue")
        assert "orange" in text and "blue" in text and "{" not in text
    assert M.binding_prompt(CC.BINDING_TEMPLATES["body_belly"][1], "orange", "red") == \
        "Turn it into a creature with an orange body and a red belly at the bottom."


# --- part-level recolouring: the training pairs that carry binding -------------------------------------

def sprite() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A two-colour creature with a black outline: green above, yellow below."""
    m = region()
    rgb = np.full((S, S, 3), 255, dtype=np.uint8)
    rgb[m] = BASIC_PROTOTYPES["green"]
    rgb[m & (np.arange(S)[:, None] > 28)] = BASIC_PROTOTYPES["yellow"]
    edge = m & ~np.pad(m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:], 1)
    rgb[edge] = 0
    line = np.full((S, S), 255, dtype=np.uint8)
    line[edge] = 0
    return rgb, m, line


def test_part_recolour_paints_each_place_its_colour_and_keeps_lines_and_background() -> None:
    rgb, m, line = sprite()
    rc = part_recolor(rgb, m, line, "top_bottom", ("red", "blue"), 0.5)
    inner = m & (line >= 200)
    top, bottom = split_masks(inner, "top_bottom", 0.5)
    assert color_coverage(rc.image, top)["red"] > 0.95
    assert color_coverage(rc.image, bottom)["blue"] > 0.95
    assert (rc.image[line < 200] == rgb[line < 200]).all() and (rc.image[~m] == 255).all()
    assert rc.targets == ["red", "blue"] and rc.shares[0] == pytest.approx(0.5, abs=0.1)


def test_part_copies_differ_one_place_at_a_time_and_are_seeded() -> None:
    rgb, m, line = sprite()
    settings = RecolorSettings(seed=3)
    copies = part_copies(rgb, m, line, 4, settings, key=0)
    notes = [n for _, n in copies]
    assert len(copies) == 4
    (a, b), (b2, a2), (c, b3), (a3, c2) = ([w.rstrip(",") for w in n.split()[1:5:2]] for n in notes)
    assert (a, b) == (a2, b2) and b3 == b and a3 == a and c2 == c and len({a, b, c}) == 3
    again = part_copies(rgb, m, line, 4, settings, key=0)
    assert all((x.image == y.image).all() for (x, _), (y, _) in zip(copies, again))
    assert "middle" in part_copies(rgb, m, line, 1, settings, key=1)[0][1]  # place pairs alternate with the key
    assert part_copies(rgb, m, line, 0, settings, key=0) == []


def test_the_palette_captioner_names_the_recoloured_places() -> None:
    # the chain the clip source trains on: part recolouring -> its own captioner -> a caption with places
    rgb, m, line = sprite()
    rc = part_recolor(rgb, m, line, "top_bottom", ("red", "blue"), 0.35)  # the top smaller: "red at the top"
    cap = palette_caption(rc.image, m, PaletteSettings(min_share=0.08), line).caption
    assert cap == "a creature with a blue body and red at the top"
    assert parse_places(cap) == ("creature", [("body", "blue", "a blue body"), ("top", "red", "red at the top")])


# --- phrasings --------------------------------------------------------------------------------------------

def test_fixed_mode_is_the_seeds_rule() -> None:
    assert instruction_for("a red cat", "fixed", 0, "1") == "Turn it into a red cat"
    with pytest.raises(ValueError, match="instruction_templates"):
        instruction_for("a red cat", "random", 0, "1")


def test_varied_phrasings_are_seeded_cover_every_frame_and_keep_the_caption() -> None:
    cap = "a creature with a blue body, a yellow belly at the bottom and red at the top"
    seen = {instruction_for(cap, "varied", 42, f"id{k}") for k in range(400)}
    assert seen == {p for p, _ in phrasings(cap)}
    assert "Colour the body blue, the belly yellow and the top red." in seen
    assert "Paint it blue with a yellow belly at the bottom and red at the top." in seen
    assert instruction_for(cap, "varied", 42, "id7") == instruction_for(cap, "varied", 42, "id7")
    turn = sum(instruction_for(cap, "varied", 1, f"k{k}").startswith("Turn it into") for k in range(1000))
    assert turn / 1000 == pytest.approx(NP_FRAMES["Turn it into {np}"] / (sum(NP_FRAMES.values()) + 0.15), abs=0.05)


def test_captions_without_places_get_only_noun_phrase_frames() -> None:
    assert place_imperatives("an orange lizard with a flame on its tail") == []
    assert place_imperatives("a drawing of a creature with a <unk> on its head") == []
    assert len(phrasings("an orange lizard with a flame on its tail")) == len(NP_FRAMES)


def test_no_training_phrasing_uses_a_held_out_frame() -> None:
    frames = heldout_frames()
    assert frames  # the held-out phrasings exist
    caps = ["a creature with a blue body and red at the top", "a creature with a white body and green patches",
            "an orange lizard with a flame on its tail", "a creature with a red body and blue around the edges"]
    for cap in caps:
        for text, _ in phrasings(cap):
            assert not any(text.startswith(f) for f in frames), text


def test_written_instruction_folders_use_no_held_out_frame(tmp_path) -> None:
    """The instruction dataset the models train on (any folder on disk, e.g. after a smoke run) never opens with a
    held-out frame; checked here on a folder written by write_instructions in varied mode."""
    from t2p_utils.captions.instructions import write_instructions
    from t2p_utils.config import Paths

    paths = Paths("smoke", tmp_path)
    img = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (8, 8), "white").save(img)
    manifest = pd.DataFrame({"id": ["1", "2"], "lineart": ["x.png"] * 2, "color": ["x.png"] * 2})
    table = pd.DataFrame({"id": ["1", "2"], "split": ["train"] * 2,
                          "caption": ["a creature with a red body and blue at the top", "a cat"],
                          "instruction": ["Turn it into a creature with a red body and blue at the top",
                                          "Turn it into a cat"], "caption_source": ["palette"] * 2})
    folder = write_instructions(paths, "clip", table, manifest, templates="varied", seed=0)
    lines = [json.loads(x) for x in (folder / "metadata.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    for rec in lines:
        assert not any(rec["edit_prompt"].startswith(f) for f in heldout_frames())
        assert ("red" in rec["edit_prompt"]) == (rec["id"] == "1")
