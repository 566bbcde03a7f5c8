"""Every wording of the study's offline stand-ins, in one place.

Offline (no hub weights), the study swaps two real things for stand-ins and says so wherever a
result appears: the palette captioner instead of CLIP interrogation, and small models trained
from scratch instead of fine-tuning the pre-trained InstructPix2Pix. Each context has its own
sentence (a caption CSV's captioner column, a model card, the report's stand-in list); they
all live here.
"""

from __future__ import annotations

#: the hub id of the pre-trained InstructPix2Pix (the ``full`` profile fine-tunes it; 05 scores it zero-shot)
PRETRAINED_IP2P = "timbrooks/instruct-pix2pix"

#: the ``captioner`` / ``caption_source`` of captions the palette captioner made for the ``clip`` source
PALETTE_CAPTIONER = "palette (stand-in for clip-interrogator)"
#: the ``clip`` source of captions made by clip-interrogator's real code with tiny random models (tests)
TINY_CLIP_CAPTIONER = "clip-interrogator with tiny random models (code-path stand-in)"
#: a model trained on palette captions: what its captions stand in for (model cards, 04's tables)
PALETTE_CAPTIONS = "palette captioner (offline stand-in for CLIP interrogation)"
#: the same, in the list of a model's stand-ins (05, the report)
PALETTE_STAND_IN = "palette captioner instead of CLIP interrogation (no hub weights offline)"
#: a model trained from scratch (05, the report; prefixed "small " / "tiny " by profile)
SCRATCH_STAND_IN = f"SD-architecture model trained from scratch instead of fine-tuned {PRETRAINED_IP2P}"
#: a model trained from scratch, in the model card's summary
SCRATCH_MODEL_CARD = f"Offline stand-in for fine-tuning `{PRETRAINED_IP2P}`."


def clip_label(backend: str) -> str:
    """The display label of the model trained on ``clip`` captions made by ``backend`` (not ``interrogator``)."""
    return f"CLIP captions ({backend} stand-in)"


def captioner_stand_in(backend: str) -> str:
    """The stand-in line of a model whose ``clip`` captions came from ``backend`` (not ``interrogator``)."""
    return PALETTE_STAND_IN if backend == "palette" else (
        f"{backend} captioner instead of CLIP interrogation (no hub weights offline)")
