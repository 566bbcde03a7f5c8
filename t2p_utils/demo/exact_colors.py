"""Exact colours: a hex code or a CSS colour name in the text, painted exactly in the flat-coloured drawing.

The models understand the eleven basic colour terms (:data:`t2p_utils.core.colors.BASIC_COLORS`) and little else. A
user who writes *"a #3a7bd5 body"* or *"a teal belly"* wants that exact colour, so:

1. :func:`parse_exact` finds the exact colours of an instruction and names each by its nearest basic term
   (:func:`t2p_utils.core.colors.name_color`, the rule that names the model's pixels in every metric of the study), and
   rewrites the instruction with the basic term in its place: *"a #3a7bd5 body"* -> *"a blue body"*, the text the
   model is asked;
2. after the model has painted and :func:`t2p_utils.core.flat.flat_fill` has filled the drawing's closed regions,
   :func:`apply_exact` gives every character region whose flat colour the same rule names with that term the exact
   colour (:func:`t2p_utils.core.flat.recolor`); :func:`match_exact` says, per colour, what happened.

What counts as an exact colour:

* ``#rgb`` and ``#rrggbb`` hex codes (any case; ``#rgba`` and ``#rrggbbaa`` are left alone: no alpha);
* the 148 CSS4 colour names of :data:`matplotlib.colors.CSS4_COLORS`, run together as CSS writes them
  (``"darkslateblue"``) or as words separated by spaces or hyphens (``"dark slate blue"``, ``"sky-blue"``),
  longest match first -- except the basic terms themselves (and ``grey``), which are what the model is asked
  anyway, and a run of basic terms only (``"yellow green"`` stays two colours, not CSS ``yellowgreen``).
  A CSS name is taken for a colour wherever it stands: *"holding a tomato"* asks for the colour tomato. The page
  says what was mapped, so such a reading is visible.

Terms follow the pixel-naming rule, not the word: CSS ``azure`` (240, 255, 255) is named white, ``khaki``
(240, 230, 140) yellow, although :func:`t2p_utils.core.colors.color_words` reads the words as blue and brown. The model is
asked the term its painted regions will be named by, so the regions it paints for the colour are the ones found.

Two exact colours with the same basic term (*"a navy body and #3a7bd5 eyes"*, both blue): the regions are told
apart only by their term, so the **first** colour of the instruction wins every region of that term and the
later one is reported as not applied (``status == "shadowed"``). A colour that occurs twice counts once.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
from matplotlib import colors as mcolors

from t2p_utils.core.colors import BASIC_COLORS, name_color, pixel_color_terms
from t2p_utils.core.flat import FlatResult, recolor

RGB = tuple[int, int, int]
#: Words that are basic terms already: the model is asked them as they are.
BASIC_WORDS: frozenset[str] = frozenset(BASIC_COLORS) | {"grey"}
#: A CSS name written as words has at most this many words ("light goldenrod yellow").
MAX_NAME_WORDS = 4
#: ``#rgb`` or ``#rrggbb``, not part of a longer hex run or word.
HEX = re.compile(r"(?<![\w#])#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})(?![0-9A-Za-z_])")
_WORD = re.compile(r"[A-Za-z]+")
_SEPARATOR = re.compile(r"[ \t-]+")
_ARTICLE = re.compile(r"(?i)\b(an?)(\s+)$")

Status = Literal["applied", "not painted", "shadowed", "fallback"]


def _css_names() -> dict[str, RGB]:
    out: dict[str, RGB] = {}
    for name, value in mcolors.CSS4_COLORS.items():
        if name not in BASIC_WORDS:
            r, g, b = (round(v * 255.0) for v in mcolors.to_rgb(value))
            out[name] = (r, g, b)
    return out


#: CSS4 colour names that are not basic terms -> sRGB.
CSS_COLORS: dict[str, RGB] = _css_names()


@dataclass(frozen=True)
class ExactColor:
    """One exact colour found in an instruction."""

    text: str  # as written: "#3a7bd5", "teal", "Sky Blue"
    rgb: RGB
    term: str  # its nearest basic term (t2p_utils.core.colors.name_color): what the model is asked
    kind: Literal["hex", "css"]
    start: int  # span in the instruction
    end: int

    @property
    def hex(self) -> str:
        return "#{:02x}{:02x}{:02x}".format(*self.rgb)

    @property
    def label(self) -> str:
        """How the page names it: the hex code, with the CSS name when one was written."""
        return self.hex if self.kind == "hex" else f"{self.text} ({self.hex})"


@dataclass(frozen=True)
class ExactRequest:
    """An instruction with its exact colours: what the user wrote, what the model is asked, and the colours."""

    instruction: str  # as the user wrote it
    text: str  # each exact colour replaced by its basic term: the model's instruction
    colors: tuple[ExactColor, ...] = ()  # in order of the text, every occurrence

    def __bool__(self) -> bool:
        return bool(self.colors)

    @property
    def unique(self) -> tuple[ExactColor, ...]:
        """The colours, each sRGB value once (its first occurrence)."""
        seen: set[RGB] = set()
        out = []
        for c in self.colors:
            if c.rgb not in seen:
                seen.add(c.rgb)
                out.append(c)
        return tuple(out)

    def describe(self) -> list[str]:
        """One line per colour: how it was asked (``#3a7bd5 → asked as “blue”``)."""
        return [f"{c.label} → asked as “{c.term}”" for c in self.unique]


@dataclass(frozen=True)
class ExactMatch:
    """What :func:`apply_exact` does with one exact colour in one flat result."""

    color: ExactColor
    status: Status
    labels: tuple[int, ...] = ()  # the regions it paints (empty unless applied)
    share: float = 0.0  # of the character's region pixels (strokes excluded)
    by: ExactColor | None = None  # the earlier colour that took the term (status "shadowed")

    @property
    def applied(self) -> bool:
        return self.status == "applied"

    def describe(self) -> str:
        c = self.color
        if self.status == "applied":
            n = len(self.labels)
            return (f"{c.label}: painted exactly {c.hex} in the {n} region{'s' if n != 1 else ''} painted "
                    f"{c.term} ({self.share:.0%} of the character)")
        if self.status == "shadowed":
            assert self.by is not None
            return (f"{c.label}: not used: {self.by.label} came first and took every region painted {c.term} "
                    "(regions are told apart by their basic colour only)")
        if self.status == "fallback":
            return f"{c.label}: not used: the drawing could not be flat-coloured, so no region takes an exact colour"
        return f"{c.label}: not used: the model painted no region {c.term}"


def _term(rgb: RGB) -> str:
    return name_color(np.asarray(rgb, dtype=np.uint8))


def _hex_rgb(digits: str) -> RGB:
    if len(digits) == 3:
        digits = "".join(ch * 2 for ch in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def _css_matches(instruction: str, taken: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """(start, end, CSS name) of the CSS colour names in ``instruction``, longest first, outside ``taken`` spans."""
    words = [(m.start(), m.end(), m.group().lower()) for m in _WORD.finditer(instruction)]
    found: list[tuple[int, int, str]] = []
    i = 0
    while i < len(words):
        hit = None
        for n in range(min(MAX_NAME_WORDS, len(words) - i), 0, -1):
            run = words[i:i + n]
            # words of a run are separated by spaces or hyphens only
            if any(not _SEPARATOR.fullmatch(instruction[a[1]:b[0]]) for a, b in itertools.pairwise(run)):
                continue
            name = "".join(w for _, _, w in run)
            if name not in CSS_COLORS or (n > 1 and all(w in BASIC_WORDS for _, _, w in run)):
                continue
            start, end = run[0][0], run[-1][1]
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            hit = (start, end, name, n)
            break
        if hit is None:
            i += 1
            continue
        found.append(hit[:3])
        i += hit[3]
    return found


def _with_article(before: str, word: str) -> str:
    """``before`` with a trailing "a"/"an" fitted to ``word`` ("a #ff8800 belly" -> "an orange belly")."""
    m = _ARTICLE.search(before)
    if not m:
        return before
    article = "an" if word[:1].lower() in "aeiou" else "a"
    if m.group(1)[0].isupper():
        article = article.capitalize()
    return before[:m.start()] + article + m.group(2)


def parse_exact(instruction: str) -> ExactRequest:
    """The exact colours of ``instruction`` (hex codes, CSS names) and the instruction the model is asked.

    >>> r = parse_exact("a #3a7bd5 body")
    >>> r.text, r.colors[0].rgb, r.colors[0].term
    ('a blue body', (58, 123, 213), 'blue')

    Text naming only basic terms comes back unchanged, with no colour.
    """
    text = str(instruction)
    spans: list[tuple[int, int, RGB, Literal["hex", "css"]]] = []
    for m in HEX.finditer(text):
        spans.append((m.start(), m.end(), _hex_rgb(m.group(1)), "hex"))
    for start, end, name in _css_matches(text, [(s, e) for s, e, _, _ in spans]):
        spans.append((start, end, CSS_COLORS[name], "css"))
    spans.sort()
    colors: list[ExactColor] = []
    out = []
    pos = 0
    for start, end, rgb, kind in spans:
        written = text[start:end]
        term = _term(rgb)
        colors.append(ExactColor(written, rgb, term, kind, start, end))
        word = term.capitalize() if written[:1].isupper() else term
        out.append(_with_article(text[pos:start], word))
        out.append(word)
        pos = end
    out.append(text[pos:])
    return ExactRequest(text, "".join(out), tuple(colors))


def match_exact(result: FlatResult, request: ExactRequest) -> tuple[ExactMatch, ...]:
    """Per exact colour (each value once, in order of the text): which regions of ``result`` it paints.

    A region is a candidate when it is not background and its flat colour (as the model painted it, before any exact
    colour) has the colour's basic term; the first colour with a term takes all of its regions.
    """
    if not request:
        return ()
    if not result.ok:
        return tuple(ExactMatch(c, "fallback") for c in request.unique)
    regions = result.regions
    terms = np.asarray(pixel_color_terms(result.region_colors))
    candidate = ~regions.background
    candidate[0] = False  # label 0: the strokes
    areas = regions.areas.astype(np.float64)
    total = float(areas[candidate].sum())
    owner: dict[str, ExactColor] = {}
    out = []
    for c in request.unique:
        if c.term in owner:
            out.append(ExactMatch(c, "shadowed", by=owner[c.term]))
            continue
        hit = candidate & (terms == BASIC_COLORS.index(c.term))
        if not hit.any():
            out.append(ExactMatch(c, "not painted"))
            continue
        owner[c.term] = c
        labels = tuple(int(i) for i in np.flatnonzero(hit))
        out.append(ExactMatch(c, "applied", labels, float(areas[hit].sum()) / total if total else 0.0))
    return tuple(out)


def apply_exact(result: FlatResult, request: ExactRequest,
                matches: tuple[ExactMatch, ...] | None = None) -> FlatResult:
    """``result`` with every region an exact colour takes (:func:`match_exact`) painted in that exact sRGB value.

    ``matches``: :func:`match_exact`'s answer when the caller has it already. A result that fell back to the raw
    output, or a request no region matches, comes back unchanged (the same object).
    """
    matches = match_exact(result, request) if matches is None else matches
    applied = [m for m in matches if m.applied]
    if not applied:
        return result
    colors = result.region_colors.copy()
    for m in applied:
        colors[list(m.labels)] = m.color.rgb
    return recolor(result, colors)
