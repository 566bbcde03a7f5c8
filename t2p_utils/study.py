"""One params file, loaded once: :class:`StudyConfig` (its paths, its seed and one typed dataclass per step).

Every step's settings come from the same file through :func:`t2p_utils.config.section` (unknown keys
rejected, the top-level ``seed:`` given to every section that has a seed). The step dataclasses are
built on first use, so reading ``compare`` (evaluation, the demo) never imports the trainer::

    study = load_study("cpu")            # or a user params file: load_study("my.yaml")
    study.seed, study.paths.models, study.compare.steps, study.train.max_train_steps
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Paths, load_params, section

if TYPE_CHECKING:
    from .caption_sets import CaptionConfig
    from .evaluate import CompareConfig
    from .scrape import ScrapeConfig
    from .train import TrainConfig

#: section -> (module, dataclass) of the step that reads it
STEP_CONFIGS: dict[str, tuple[str, str]] = {
    "scrape": ("scrape", "ScrapeConfig"),
    "captions": ("caption_sets", "CaptionConfig"),
    "train": ("train", "TrainConfig"),
    "compare": ("evaluate", "CompareConfig"),
}


@dataclass(frozen=True)
class StudyConfig:
    """A loaded params file: ``paths``, ``params`` (the raw sections) and the typed sections, built on first use."""

    paths: Paths
    params: dict[str, Any]

    @property
    def seed(self) -> int | None:
        return self.params.get("seed")

    def step(self, name: str) -> Any:
        """The dataclass of section ``name`` (one of :data:`STEP_CONFIGS`)."""
        module, cls = STEP_CONFIGS[name]
        return section(self.params, name, getattr(importlib.import_module(f"t2p_utils.{module}"), cls))

    @cached_property
    def scrape(self) -> ScrapeConfig:
        return self.step("scrape")

    @cached_property
    def captions(self) -> CaptionConfig:
        return self.step("captions")

    @cached_property
    def train(self) -> TrainConfig:
        return self.step("train")

    @cached_property
    def compare(self) -> CompareConfig:
        return self.step("compare")


def load_study(profile: str | Path, root: Path | None = None) -> StudyConfig:
    """The :class:`StudyConfig` of a built-in profile name or a user params file."""
    paths = Paths.for_profile(profile, root)
    return StudyConfig(paths, load_params(paths.spec, paths.root))
