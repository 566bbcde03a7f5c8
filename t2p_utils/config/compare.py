"""The ``compare:`` section (05_compare): :class:`CompareConfig` and the prompts of its causal tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from t2p_utils.config.train import SAMPLERS
from t2p_utils.core.colors import BASIC_COLORS
from t2p_utils.core.places import PLACE_PAIRS
from t2p_utils.core.standins import PRETRAINED_IP2P

#: What runs the UNets in 05 and the demo (t2p_utils.inference.onnx_unet).
BACKENDS: tuple[str, ...] = ("auto", "onnx", "torch")


#: The colours asked one at a time by the colour-control test (at least these five, DESIGN.md section 7).
CONTROL_COLORS: tuple[str, ...] = ("red", "blue", "green", "yellow", "purple")


#: Its instruction templates: the whole body, and one part (the rest of the body fixed to white).
CONTROL_TEMPLATES: dict[str, str] = {
    "body": "Turn it into a creature with a {color} body.",
    "part": "Turn it into a creature with a white body and {color} at the top.",
}


#: Colour pairs the binding test asks (two colours, then their swap), one pair per character in turn.
BINDING_PAIRS: tuple[tuple[str, str], ...] = (("red", "blue"), ("yellow", "purple"), ("green", "red"),
                                              ("blue", "yellow"), ("purple", "green"))


#: Its instructions: (place pair of :data:`t2p_utils.core.places.PLACE_PAIRS`, template with ``{a}``/``{b}`` the colours
#: of the first/second place; ``{a_}``/``{b_}`` the same with "a"/"an"). ``*_heldout``: phrasings no training
#: caption used (:mod:`t2p_utils.captions.templates` keeps them out of training).
BINDING_TEMPLATES: dict[str, tuple[str, str]] = {
    "top_bottom": ("top_bottom", "Turn it into a creature with {a} at the top and {b} at the bottom."),
    "body_belly": ("top_bottom", "Turn it into a creature with {a_} body and {b_} belly at the bottom."),
    "middle_edges": ("middle_edges", "Turn it into a creature with {a} in the middle and {b} around the edges."),
}


BINDING_HELDOUT: dict[str, tuple[str, str]] = {
    "top_bottom_heldout": ("top_bottom", "Color the character's top {a} and its bottom {b}."),
    "middle_edges_heldout": ("middle_edges", "Please use {a} for the centre and {b} for the outside."),
}


#: Colour-control phrasings no training caption used (next to :data:`CONTROL_TEMPLATES`, the training template's).
CONTROL_HELDOUT: dict[str, str] = {
    "body_heldout": "Color the character's body {color}.",
    "part_heldout": "Please make the body white and put {color} on the top.",
}


@dataclass
class CompareConfig:
    """The ``compare:`` section of params/<profile>.yaml."""

    models: list[str] = field(default_factory=lambda: ["base", "ip2p_cnn_lstm", "ip2p_clip", "ip2p_reference"])
    models_from: str = ""  # evaluate-only: score the models another profile trained (e.g. "cpu"); "" = this profile's
    base_model: str = PRETRAINED_IP2P  # hub id of the zero-shot model (profiles that fine-tune it)
    steps: int = 50  # inference steps
    text_guidance: float = 7.5  # IP2P's s_T
    image_guidance: float = 1.5  # IP2P's s_I
    sampler: str = ""  # "" = each pipeline's saved scheduler; else one of t2p_utils.inference.pipeline.SAMPLERS for every model
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    batch_size: int = 8
    max_test: int = 0  # 0 = every test id; otherwise the first N by sorted id
    showcase: int = 5  # characters in the seed-style grids
    sweep_model: str = "ip2p_clip"
    sweep_image_guidance: list[float] = field(default_factory=lambda: [1.0, 1.4, 1.8, 2.2])
    sweep_text_guidance: list[float] = field(default_factory=lambda: [3.0, 5.0, 7.5, 10.0, 12.0])
    sweep_ids: int = 2  # showcase characters in the sweep
    n_boot: int = 2000
    clip_direction: bool = True  # CLIP direction similarity (needs hub weights: off offline)
    clip_model: str = "ViT-L-14"
    clip_pretrained: str = "openai"
    clip_input_caption: str = "a black and white line drawing of a character"
    outline_l: float = 35.0  # line-art pixels with L* below this are outline (line preservation, protection)
    # the drawing at its own size (t2p_utils.compare.drawing): the flat and upsampled variants are made and scored at this
    # size against the ground truth rendered at it; 0 = no drawing-size variants
    drawing_size: int = 256
    drawing_outline_l: float = 35.0  # outline pixels of the drawing (L* below this) for its line preservation
    # colour control (the causal test): each colour asked in turn, per template, same seed per character
    control_colors: list[str] = field(default_factory=lambda: list(CONTROL_COLORS))
    # the training template's phrasings and (names ending "_heldout") phrasings no training caption used
    control_templates: dict[str, str] = field(default_factory=lambda: {**CONTROL_TEMPLATES, **CONTROL_HELDOUT})
    control_max_test: int = 0  # 0 = every test id
    # binding (the causal part-level test, t2p_utils.compare.metrics.binding_score): per character one colour pair (in turn
    # from binding_pairs) asked at two places and swapped, same seed; name -> [place pair, template with {a} {b}]
    binding_templates: dict[str, list[str]] = field(
        default_factory=lambda: {k: list(v) for k, v in {**BINDING_TEMPLATES, **BINDING_HELDOUT}.items()})
    binding_pairs: list[list[str]] = field(default_factory=lambda: [list(p) for p in BINDING_PAIRS])
    binding_max_test: int = -1  # -1 = as control_max_test; 0 = every test id
    device: str = "auto"  # auto -> cuda when available, else cpu
    torch_threads: int = 0  # CPU threads for inference; 0 = torch's default (tiny models run faster on 1)
    # what runs the UNets: "auto" = onnxruntime for a small fp32 UNet on CPU (t2p_utils.inference.onnx_unet: same weights,
    # images within 2/255 of PyTorch's, ~1.5x faster at batch 8), PyTorch otherwise (GPU, fp16, SD 1.5); or "torch"
    unet_backend: str = "auto"

    def __post_init__(self) -> None:
        if self.drawing_size and not 16 <= self.drawing_size <= 1024:
            raise ValueError(f"compare: drawing_size must be 0 (off) or 16..1024 px, not {self.drawing_size}")
        if self.steps < 1 or self.batch_size < 1 or self.showcase < 1 or self.n_boot < 10:
            raise ValueError("compare: steps, batch_size, showcase must be >= 1 and n_boot >= 10")
        if not self.seeds:
            raise ValueError("compare: seeds must list at least one seed")
        if not self.models:
            raise ValueError("compare: models must list at least one model")
        if len(self.control_colors) < 2:
            raise ValueError("compare: control_colors must list at least two colours")
        bad = [c for c in self.control_colors if c not in BASIC_COLORS]
        if bad:
            raise ValueError(f"compare: control_colors {bad} are not basic colour terms {list(BASIC_COLORS)}")
        if self.unet_backend not in BACKENDS:
            raise ValueError(f"compare: unet_backend must be one of {list(BACKENDS)}, not {self.unet_backend!r}")
        if self.sampler and self.sampler not in SAMPLERS:
            raise ValueError(f"compare: sampler must be empty or one of {list(SAMPLERS)}, not {self.sampler!r}")
        bad = [k for k, t in self.control_templates.items() if "{color}" not in t]
        if bad:
            raise ValueError(f"compare: control_templates {bad} lack the {{color}} placeholder")
        for name, spec in self.binding_templates.items():
            if (len(spec) != 2 or spec[0] not in PLACE_PAIRS
                    or not all(f"{{{x}}}" in spec[1] or f"{{{x}_}}" in spec[1] for x in "ab")):
                raise ValueError(f"compare: binding_templates[{name!r}] must be [place pair, template]: a pair of "
                                 f"{list(PLACE_PAIRS)} and a template naming {{a}} (or {{a_}}) and {{b}} (or {{b_}}), "
                                 f"not {spec!r}")
        bad_pairs = [p for p in self.binding_pairs
                     if len(p) != 2 or p[0] == p[1] or any(c not in BASIC_COLORS for c in p)]
        if bad_pairs or (self.binding_templates and not self.binding_pairs):
            raise ValueError(f"compare: binding_pairs must list pairs of two different basic colour terms "
                             f"{list(BASIC_COLORS)}, not {bad_pairs or self.binding_pairs}")
