"""Line art from a dream-world SVG: keep the near-black outline fills, turn every other fill white.

In these SVGs the outlines are separate paths filled near-black (``#0d131a``, ``#0f141b``
and a few neighbours); colour regions are other paths. Recolouring every fill that is not
near-black to white and rendering gives a clean line drawing on white.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: A fill counts as outline when every channel is at most this value (0x30): that catches
#: all outline colours seen in the 751 dream-world sprites (#0d131a, #0f141b, #0d161f, #061922).
OUTLINE_MAX_CHANNEL = 0x30

_HEX6 = re.compile(r"#([0-9a-fA-F]{6})\b")
_HEX3 = re.compile(r"#([0-9a-fA-F]{3})\b")
# fill="..." / stroke="..." attributes and fill:...; stroke:... inside style="..."
_PAINT = re.compile(r'(?P<key>\b(?:fill|stroke|stop-color)\s*(?:=\s*"|:\s*))(?P<val>#[0-9a-fA-F]{3,6}|url\([^)]*\)|[a-zA-Z]+)')


class SvgError(ValueError):
    """The file is not an SVG we can read (empty, truncated, not XML, no <svg> root)."""


def parse_hex(value: str) -> tuple[int, int, int] | None:
    m = _HEX6.fullmatch(value)
    if m:
        h = m.group(1)
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
    m = _HEX3.fullmatch(value)
    if m:
        h = m.group(1)
        return int(h[0] * 2, 16), int(h[1] * 2, 16), int(h[2] * 2, 16)
    return None


def is_outline(value: str) -> bool:
    rgb = parse_hex(value)
    if rgb is None:
        return value.lower() == "black"
    return max(rgb) <= OUTLINE_MAX_CHANNEL


@dataclass(frozen=True)
class LineartResult:
    svg: str
    outline_paints: int  # how many fill/stroke values were kept as outline
    other_paints: int  # how many were turned white


def to_lineart(svg_text: str) -> LineartResult:
    """Recolour an SVG: outline paints stay, every other paint (colours, gradients) becomes white."""
    if "<svg" not in svg_text:
        raise SvgError("no <svg> element found")
    kept = changed = 0

    def repl(m: re.Match[str]) -> str:
        nonlocal kept, changed
        val = m.group("val")
        if val.lower() in ("none", "transparent", "currentcolor", "inherit"):
            return m.group(0)
        if is_outline(val):
            kept += 1
            return m.group(0)
        changed += 1
        return m.group("key") + "#ffffff"

    out = _PAINT.sub(repl, svg_text)
    return LineartResult(out, kept, changed)
