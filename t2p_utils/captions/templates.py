"""Instruction phrasings: how a caption becomes the sentence a training pair is asked with.

The seed's rule is one template, ``"Turn it into " + caption``, and a model trained on it follows nothing
else. With ``captions.instruction_templates: varied`` every training pair (originals and recoloured copies,
every source alike, so the CNN-LSTM/CLIP comparison stays fair) gets one phrasing drawn with a seed from
its id and copy:

* noun-phrase frames around the caption, any caption: "Turn it into {np}" (the seed's, drawn most often),
  "Make it {np}.", "Colour it as {np}.", "Paint it as {np}.", "Draw it as {np}.", "{np}.";
* imperatives that name each place, when the caption reads like the palette captioner's
  ("a creature with a blue body, a yellow belly at the bottom and red at the top"):
  "Colour the body blue, the belly yellow and the top red." and
  "Paint it blue with a yellow belly at the bottom and red at the top.".

The phrasings 05 scores as *held out* (:data:`t2p_utils.config.compare.CONTROL_HELDOUT`,
:data:`t2p_utils.config.compare.BINDING_HELDOUT`: "Color the character's ...", "Please ...") use frames none of
these produce; :func:`heldout_frames` names them and a test checks that no training instruction starts
with one.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

from t2p_utils.config.captions import INSTRUCTION_TEMPLATES as MODES

SEED_FRAME = "Turn it into {np}"
#: Noun-phrase frames (``{np}``: the caption) and the weight each is drawn with.
NP_FRAMES: dict[str, float] = {SEED_FRAME: 0.4, "Make it {np}.": 0.1, "Colour it as {np}.": 0.1,
                               "Paint it as {np}.": 0.1, "Draw it as {np}.": 0.1, "{np}.": 0.05}
#: Weight of each place-naming imperative (drawn only for captions :func:`parse_places` reads).
PLACE_FRAME_WEIGHT = 0.075

_ART = r"(?:an? )?"
_COLOR = r"([a-z]+)"
#: A palette-style colour phrase -> the place word the imperative uses for it.
_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"^{_ART}{_COLOR} body$"), "body"),
    (re.compile(rf"^{_ART}{_COLOR} belly at the bottom$"), "belly"),
    (re.compile(rf"^{_COLOR} at the top$"), "top"),
    (re.compile(rf"^{_COLOR} at the bottom$"), "bottom"),
    (re.compile(rf"^{_COLOR} around the edges$"), "edges"),
    (re.compile(rf"^{_COLOR} in the middle$"), "middle"),
    (re.compile(rf"^{_COLOR} patches$"), "patches"),
)


def parse_places(caption: str) -> tuple[str, list[tuple[str, str, str]]] | None:
    """``("creature", [(place, colour, phrase), ...])`` of a caption "a <subject> with <phrase>, ... and <phrase>",
    or None when any phrase is not a colour at a place (reference captions, most CNN-LSTM captions).

    >>> parse_places("a creature with a blue body and red at the top")
    ('creature', [('body', 'blue', 'a blue body'), ('top', 'red', 'red at the top')])
    >>> parse_places("an orange lizard with a flame on its tail") is None
    True
    """
    m = re.fullmatch(r"an? ([a-z]+) with (.+)", caption.strip().rstrip("."))
    if m is None:
        return None
    parts = re.split(r", | and ", m.group(2))
    out = []
    for part in parts:
        for pattern, place in _PHRASES:
            hit = pattern.match(part)
            if hit:
                out.append((place, hit.group(1), part))
                break
        else:
            return None
    return (m.group(1), out) if out else None


def _join(bits: list[str]) -> str:
    return bits[0] if len(bits) == 1 else ", ".join(bits[:-1]) + " and " + bits[-1]


def place_imperatives(caption: str) -> list[str]:
    """The place-naming imperatives of a parsable caption (empty list otherwise).

    >>> place_imperatives("a creature with a blue body and a yellow belly at the bottom")
    ['Colour the body blue and the belly yellow.', 'Paint it blue with a yellow belly at the bottom.']
    """
    parsed = parse_places(caption)
    if parsed is None:
        return []
    _, phrases = parsed
    out = []
    if all(p != "patches" for p, _, _ in phrases):
        out.append("Colour " + _join([f"the {p} {c}" for p, c, _ in phrases]) + ".")
    if phrases[0][0] == "body" and len(phrases) > 1:
        out.append(f"Paint it {phrases[0][1]} with " + _join([ph for _, _, ph in phrases[1:]]) + ".")
    return out


def phrasings(caption: str) -> list[tuple[str, float]]:
    """Every training phrasing of ``caption`` with its (unnormalised) weight."""
    caption = caption.strip()
    if not caption:
        raise ValueError("empty caption: cannot build an instruction from it")
    out = [(frame.format(np=caption), w) for frame, w in NP_FRAMES.items()]
    out += [(s, PLACE_FRAME_WEIGHT) for s in place_imperatives(caption)]
    return out


def instruction_for(caption: str, mode: str, seed: int, key: str) -> str:
    """The training instruction of ``caption``: the seed's frame (``fixed``) or one phrasing drawn with
    ``(seed, key)`` (``varied``; ``key`` names the pair, e.g. ``"25/rc1"``), the same on every run."""
    if mode not in MODES:
        raise ValueError(f"captions.instruction_templates must be one of {MODES}, not {mode!r}")
    if mode == "fixed":
        return SEED_FRAME.format(np=caption.strip())
    options = phrasings(caption)
    w = np.array([x[1] for x in options], dtype=np.float64)
    rng = np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])
    return options[int(rng.choice(len(options), p=w / w.sum()))][0]


def heldout_frames() -> list[str]:
    """The opening words of the held-out phrasings 05 scores (no training instruction may start with one)."""
    from t2p_utils.config.compare import BINDING_HELDOUT, CONTROL_HELDOUT

    texts = [t for _, t in BINDING_HELDOUT.values()] + list(CONTROL_HELDOUT.values())
    return sorted({" ".join(t.split()[:2]) for t in texts})
