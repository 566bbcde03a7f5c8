"""Colour names and colour differences shared by captioning, training checks and evaluation.

Everything speaks the eleven basic colour terms of Berlin & Kay (:data:`BASIC_COLORS`).

* Pixels are named by their nearest colour (Euclidean distance in CIELAB) among matplotlib's
  XKCD (949) and CSS4 (148) named colours; every table colour is first mapped to a basic term
  through the colour word in its name ("dusty teal" -> "teal" -> blue, "pinkish tan" -> brown;
  CSS names run words together: "deepskyblue" -> blue). Three rules fix what names get wrong:
  achromatic table colours (chroma < 8) are white/gray/black by lightness (xkcd "pale grey" is
  #fdfdfe); pale colours named brown (L* > 75: "light tan", "beige") are yellow or white; a colour
  whose name holds no colour word ("burlywood", "xkcd:dust") takes the term of its nearest
  worded neighbour in Lab.
  Borderline hues stay borderline: (99, 66, 146) is "darkslateblue" and so blue, not purple.
* Text is named with :func:`color_words`, which maps synonyms ("grey" -> "gray",
  "crimson" -> "red", "violet" -> "purple") onto the same eleven terms.
* :func:`delta_e2000` is CIEDE2000 (Sharma, Wu & Dalal 2005) as implemented by scikit-image.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
from matplotlib import colors as mcolors
from scipy.spatial import cKDTree
from skimage.color import deltaE_ciede2000, rgb2lab

BASIC_COLORS: tuple[str, ...] = (
    "black",
    "white",
    "gray",
    "red",
    "orange",
    "yellow",
    "green",
    "blue",
    "purple",
    "pink",
    "brown",
)

#: One prototype sRGB value per basic term (used when a table colour's name has no colour word).
BASIC_PROTOTYPES: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
    "red": (215, 25, 35),
    "orange": (245, 135, 20),
    "yellow": (250, 225, 40),
    "green": (40, 160, 60),
    "blue": (35, 85, 215),
    "purple": (130, 50, 170),
    "pink": (245, 140, 190),
    "brown": (125, 75, 35),
}

#: Colour words (in text and in table names) -> basic term. Basic terms map to themselves.
SYNONYMS: dict[str, str] = {
    **{c: c for c in BASIC_COLORS},
    # gray / black / white
    "grey": "gray", "greyish": "gray", "grayish": "gray", "silver": "gray", "silvery": "gray",
    "charcoal": "gray", "ash": "gray", "slate": "gray", "gunmetal": "gray", "steel": "gray",
    "blackish": "black", "ebony": "black", "jet": "black",
    "whitish": "white", "ivory": "white", "cream": "white", "snow": "white", "pearl": "white",
    "eggshell": "white",
    # red family
    "reddish": "red", "crimson": "red", "scarlet": "red", "maroon": "red", "ruby": "red",
    "cherry": "red", "burgundy": "red", "vermilion": "red", "vermillion": "red", "carmine": "red",
    "wine": "red", "blood": "red", "brick": "red",
    # orange / yellow
    "orangish": "orange", "orangey": "orange", "orangy": "orange", "amber": "orange",
    "tangerine": "orange", "apricot": "orange", "peach": "orange", "rust": "orange",
    "yellowish": "yellow", "yellowy": "yellow", "golden": "yellow", "gold": "yellow",
    "lemon": "yellow", "mustard": "yellow", "canary": "yellow", "blond": "yellow", "blonde": "yellow",
    # green
    "greenish": "green", "greeny": "green", "lime": "green", "olive": "green", "emerald": "green",
    "jade": "green", "mint": "green", "chartreuse": "green", "moss": "green", "forest": "green",
    "sage": "green",
    # blue
    "blueish": "blue", "bluish": "blue", "bluey": "blue", "navy": "blue", "azure": "blue",
    "cyan": "blue", "teal": "blue", "turquoise": "blue", "aqua": "blue", "cobalt": "blue",
    "sapphire": "blue", "cerulean": "blue", "indigo": "blue", "sky": "blue", "ultramarine": "blue",
    "denim": "blue", "periwinkle": "blue",
    # purple / pink
    "purplish": "purple", "purpley": "purple", "purply": "purple", "violet": "purple",
    "lavender": "purple", "lilac": "purple", "mauve": "purple", "plum": "purple",
    "amethyst": "purple", "eggplant": "purple", "aubergine": "purple", "grape": "purple",
    "pinkish": "pink", "pinky": "pink", "rose": "pink", "rosy": "pink", "magenta": "pink",
    "fuchsia": "pink", "salmon": "pink", "coral": "pink", "blush": "pink", "cerise": "pink",
    # brown
    "brownish": "brown", "browny": "brown", "tan": "brown", "beige": "brown", "khaki": "brown",
    "chocolate": "brown", "coffee": "brown", "mocha": "brown", "umber": "brown", "sienna": "brown",
    "bronze": "brown", "copper": "brown", "chestnut": "brown", "caramel": "brown", "taupe": "brown",
    "sepia": "brown", "mahogany": "brown", "cinnamon": "brown", "sand": "brown", "sandy": "brown",
}

#: Table colours with chroma below this are named by lightness alone (white / gray / black).
ACHROMATIC_CHROMA = 8.0
WHITE_L = 90.0
BLACK_L = 28.0  # sprites draw "black" fur as charcoal, e.g. (62, 58, 57) at L* 25
#: Table colours named brown but lighter than this ("light tan", "beige") count as yellow (chroma >= 25) or white.
PALE_L = 75.0
PALE_YELLOW_CHROMA = 25.0

_WORD = re.compile(r"[a-z]+")


def _as_float_rgb(rgb: np.ndarray) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.shape[-1] != 3:
        raise ValueError(f"expected RGB values with a last axis of 3, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    arr = arr.astype(np.float64)
    if arr.size and arr.max() > 1.0:  # float values on the 0..255 scale
        arr = arr / 255.0
    return np.clip(arr, 0.0, 1.0)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of sRGB values: uint8 0..255, or float in 0..1 (floats above 1 are read as 0..255)."""
    return rgb2lab(_as_float_rgb(rgb))


def delta_e2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference between two broadcastable Lab arrays (last axis = L, a, b)."""
    return np.asarray(deltaE_ciede2000(np.asarray(lab1, dtype=np.float64), np.asarray(lab2, dtype=np.float64)))


def color_words(text: str) -> list[str]:
    """Basic colour terms named in ``text``, synonyms mapped, in order of first mention, unique."""
    out: list[str] = []
    for word in _WORD.findall(str(text).lower()):
        term = SYNONYMS.get(word)
        if term is None and word.endswith("s"):
            term = SYNONYMS.get(word[:-1]) if word[:-1] in BASIC_COLORS else None  # "reds", "blues"
        if term is not None and term not in out:
            out.append(term)
    return out


def _name_term(name: str, lab: np.ndarray) -> str | None:
    """Basic term of a named table colour from its name, or None when the name has no colour word."""
    chroma = float(np.hypot(lab[1], lab[2]))
    if chroma < ACHROMATIC_CHROMA:  # achromatic: lightness decides ("xkcd:pale grey" is #fdfdfe)
        return "white" if lab[0] >= WHITE_L else ("black" if lab[0] <= BLACK_L else "gray")
    name = name.split(":", 1)[-1].lower().split(" with ")[0]  # "blue with a hint of purple" -> "blue"
    words = [t for t in (_word_term(w) for w in _WORD.findall(name)) if t]
    if not words:
        return None
    term = words[-1]  # head of the compound: "greenish blue" -> blue
    if term == "brown" and lab[0] > PALE_L:  # "light tan", "beige": pale, not perceived as brown
        term = "yellow" if chroma >= PALE_YELLOW_CHROMA else "white"
    return term


def _word_term(word: str) -> str | None:
    """Basic term of one word of a table name; CSS names run words together ("deepskyblue")."""
    if word in SYNONYMS:
        return SYNONYMS[word]
    best: tuple[int, int, str] | None = None  # (end position, length, term): the right-most, longest match
    for key, term in SYNONYMS.items():
        if len(key) < 3 or (len(key) < 4 and key not in BASIC_COLORS and key != "tan"):
            continue
        pos = word.rfind(key)
        if pos >= 0:
            cand = (pos + len(key), len(key), term)
            best = cand if best is None or cand[:2] > best[:2] else best
    return best[2] if best else None


@lru_cache(maxsize=1)
def color_table() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """(names, Lab values [N,3], basic-term index [N]) of the XKCD + CSS4 tables plus the prototypes."""
    names: list[str] = []
    rgbs: list[tuple[float, float, float]] = []
    for table in (mcolors.XKCD_COLORS, mcolors.CSS4_COLORS):
        for name, hexval in table.items():
            names.append(name)
            rgbs.append(mcolors.to_rgb(hexval))
    for term, rgb in BASIC_PROTOTYPES.items():
        names.append(f"basic:{term}")
        rgbs.append(tuple(v / 255.0 for v in rgb))
    labs = rgb_to_lab(np.asarray(rgbs, dtype=np.float64))
    named = [_name_term(n, lab) for n, lab in zip(names, labs, strict=True)]
    # colours whose name has no colour word ("xkcd:dust", "burlywood") take the term of the nearest worded colour
    worded = np.array([t is not None for t in named])
    nearest = cKDTree(labs[worded]).query(labs[~worded])[1]
    fill = iter(np.asarray(named, dtype=object)[worded][nearest])
    terms = np.array([BASIC_COLORS.index(t if t is not None else next(fill)) for t in named], dtype=np.int64)
    return tuple(names), labs, terms


@lru_cache(maxsize=1)
def _tree() -> cKDTree:
    return cKDTree(color_table()[1])


def lab_color_terms(lab: np.ndarray) -> np.ndarray:
    """Basic-term index (into :data:`BASIC_COLORS`) of Lab values [..., 3]."""
    lab = np.asarray(lab, dtype=np.float64)
    _, idx = _tree().query(lab.reshape(-1, 3))
    return color_table()[2][idx].reshape(lab.shape[:-1])


def pixel_color_terms(rgb: np.ndarray) -> np.ndarray:
    """Basic-term index (into :data:`BASIC_COLORS`) of every pixel of an RGB image [H, W, 3].

    Unique colours are named once, so large flat-coloured images cost little.
    """
    arr = np.asarray(rgb)
    if arr.ndim < 1 or arr.shape[-1] != 3:
        raise ValueError(f"pixel_color_terms needs an RGB array [..., 3], got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.round(_as_float_rgb(arr) * 255.0).astype(np.uint8)
    flat = arr.reshape(-1, 3).astype(np.int32)
    packed = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    uniq, inverse = np.unique(packed, return_inverse=True)
    uniq_rgb = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], axis=1).astype(np.uint8)
    terms = lab_color_terms(rgb_to_lab(uniq_rgb))
    return terms[inverse.reshape(-1)].reshape(arr.shape[:-1])


def name_color(rgb: tuple[int, int, int] | np.ndarray) -> str:
    """The basic term of one sRGB colour (uint8 0..255)."""
    return BASIC_COLORS[int(pixel_color_terms(np.asarray(rgb, dtype=np.uint8).reshape(1, 3))[0])]


def _as_mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., -1] if m.shape[-1] in (2, 4) else m[..., 0]
    if m.shape != shape:
        raise ValueError(f"mask shape {m.shape} does not match the image's {shape}")
    if m.dtype == bool:
        return m
    return m > (127 if m.dtype == np.uint8 or m.max() > 1 else 0.5)


def color_coverage(rgb: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """Share of the mask's pixels named by each basic term (all eleven keys, shares sum to 1).

    ``mask``: bool, or uint8 (> 127 is inside), or None for the whole image. An empty mask
    gives all zeros.
    """
    arr = np.asarray(rgb)
    m = _as_mask(mask, arr.shape[:2])
    n = int(m.sum())
    if n == 0:
        return {c: 0.0 for c in BASIC_COLORS}
    counts = np.bincount(pixel_color_terms(arr[m]), minlength=len(BASIC_COLORS))
    return {c: float(counts[i]) / n for i, c in enumerate(BASIC_COLORS)}


def dominant_colors(rgb: np.ndarray, mask: np.ndarray | None = None, min_share: float = 0.03) -> list[str]:
    """Basic terms covering at least ``min_share`` of the mask, most common first."""
    cov = color_coverage(rgb, mask)
    return [c for c, s in sorted(cov.items(), key=lambda kv: -kv[1]) if s >= min_share and s > 0]
