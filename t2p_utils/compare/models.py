"""Which models 05 scores: the zero-shot base, the fine-tuned ones under ``models/<p>/`` (or another profile's), with
their labels and stand-ins.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from t2p_utils.compare.items import CompareError
from t2p_utils.config.compare import CompareConfig
from t2p_utils.config.params import Paths
from t2p_utils.config.study import StudyConfig, load_study
from t2p_utils.core.standins import SCRATCH_STAND_IN, captioner_stand_in, clip_label

log = logging.getLogger(__name__)


REQUIRED_MODELS: tuple[str, ...] = ("ip2p_cnn_lstm", "ip2p_clip")


ZERO_SHOT = "base"


#: Human-readable names of the models (stand-ins are appended by :func:`resolve_models`).
MODEL_LABELS: dict[str, str] = {
    "base": "zero-shot IP2P",
    "ip2p_cnn_lstm": "CNN-LSTM captions",
    "ip2p_clip": "CLIP captions",
    "ip2p_reference": "reference captions",
    "ip2p_palette": "palette captions",
}


@dataclass(frozen=True)
class ModelSpec:
    name: str  # folder name under models/<p>/ (or "base")
    source: str  # what load_pipeline gets: a folder path or a hub id
    label: str  # for tables and figures
    stand_ins: tuple[str, ...] = ()  # offline stand-ins this model is made with

    @property
    def display(self) -> str:
        """The label for tables and figures (stand-ins are listed in the summary, not in every cell)."""
        return self.label


def _json_stand_ins(folder: Path) -> list[str]:
    """``stand_in`` / ``caption_stand_in`` values of the JSON files directly inside ``folder`` (e.g. train_summary.json)."""
    found: list[str] = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        for key in ("stand_in", "caption_stand_in"):  # the training helper's train_summary.json uses the latter
            val = data.get(key)
            if isinstance(val, str) and val:
                found.append(val)
            elif isinstance(val, list | tuple):
                found.extend(str(v) for v in val if v)
            elif isinstance(val, dict):
                found.extend(f"{k}: {v}" for k, v in val.items() if v)
    return found


def model_paths(paths: Paths, cfg: CompareConfig) -> Paths:
    """Where the evaluated models live: this profile's ``models/``, or ``compare.models_from``'s (evaluate-only)."""
    return Paths.for_profile(cfg.models_from, paths.root) if cfg.models_from else paths


def resolve_models(paths: Paths, cfg: CompareConfig, study: StudyConfig | None = None) -> list[ModelSpec]:
    """The models to evaluate, in config order; raises :class:`CompareError` for a missing required model.

    The stand-in labels follow the profile that trained the models (``compare.models_from``, else this one):
    its ``captions.clip_backend`` and ``train.model_source``."""
    owner = model_paths(paths, cfg)
    if owner is not paths or study is None:
        study = load_study(owner.spec, owner.root, check=False)
    clip_backend, model_source = study.captions.clip_backend, study.train.model_source
    specs: list[ModelSpec] = []
    for name in cfg.models:
        label = MODEL_LABELS.get(name, name)
        if name == ZERO_SHOT:
            if model_source != "pretrained":
                log.info("skipping the zero-shot base model: it needs %s from the hub (profiles that fine-tune it)",
                         cfg.base_model)
                continue
            specs.append(ModelSpec(name, cfg.base_model, f"{label} ({cfg.base_model})"))
            continue
        folder = owner.model(name)
        if not (folder / "model_index.json").exists():
            if name in REQUIRED_MODELS:
                what = "is missing" if not folder.exists() else "has no model_index.json (an unfinished training run?)"
                fix = (f"train them first with ./run_all.sh {owner.spec} (compare.models_from: {cfg.models_from})"
                       if cfg.models_from else
                       f"run notebooks/04_finetune.ipynb (profile {paths.profile!r}) first; it trains "
                       f"{', '.join(REQUIRED_MODELS)} (use force=True there to retrain)")
                raise CompareError(f"{folder} {what}: {fix}")
            log.info("optional model %s not found at %s: skipped", name, folder)
            continue
        stand = _json_stand_ins(folder)
        if model_source == "scratch" and not any("scratch" in s for s in stand):
            stand.append(SCRATCH_STAND_IN)
        if name == "ip2p_clip" and clip_backend != "interrogator":
            if not any(clip_backend in s for s in stand):
                stand.append(captioner_stand_in(clip_backend))
            label = clip_label(clip_backend)
        specs.append(ModelSpec(name, str(folder), label, tuple(dict.fromkeys(stand))))
    if not specs:
        raise CompareError(f"no model to evaluate: compare.models is {cfg.models} in {paths.params_file}")
    return specs
