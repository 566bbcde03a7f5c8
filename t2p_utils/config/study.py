"""One params file, loaded once and checked whole: :class:`StudyConfig` (its paths, its seed and one typed dataclass
per step).

Every step's settings come from the same file through :func:`t2p_utils.config.params.section` (unknown keys rejected, the
top-level ``seed:`` given to every section that has a seed). :func:`load_study` checks every section before it
returns (types, unknown keys, each dataclass's own ranges) and raises one :class:`~t2p_utils.config.params.ConfigError`
with a line per problem, ``<file> [<section>]: key '<key>' must be <valid>, got <value>``; ``./run_all.sh`` also
checks the paths a step will read (:meth:`StudyConfig.problems`) and stops before step 01. The notebooks and the
demo load their settings through it, so they get the same check::

    study = load_study("cpu")            # or a user params file: load_study("my.yaml")
    study.seed, study.paths.models, study.compare.steps, study.train.max_train_steps

The check imports no torch (a second with Python's start-up): every step's dataclass lives in this package
(:mod:`t2p_utils.config.scrape`, :mod:`~t2p_utils.config.captions`, :mod:`~t2p_utils.config.train`,
:mod:`~t2p_utils.config.compare`), apart from the code that runs the step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from t2p_utils.config.captions import CaptionConfig
from t2p_utils.config.compare import CompareConfig
from t2p_utils.config.params import ConfigError, Paths, apply_overrides, load_params, section
from t2p_utils.config.scrape import ScrapeConfig
from t2p_utils.config.train import TrainConfig

#: section -> the dataclass of the step that reads it
STEP_CONFIGS: dict[str, type] = {
    "scrape": ScrapeConfig,
    "captions": CaptionConfig,
    "train": TrainConfig,
    "compare": CompareConfig,
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
        return section(self.params, name, STEP_CONFIGS[name])

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

    def problems(self, check_paths: bool = False) -> list[str]:
        """Every problem of the file, a line each (``<file> [<section>]: ...``), across all sections; with
        ``check_paths`` also the files and folders a step will read that do not exist (the runner's check: once 01
        has ingested them, the notebooks and the demo no longer need them)."""
        src = self.params.get("_source", "params")
        found: list[str] = []
        seed = self.params.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            found.append(f"{src}: top-level key 'seed' must be int, got {seed!r}")
        built: dict[str, Any] = {}
        for name in STEP_CONFIGS:
            try:
                built[name] = getattr(self, name)  # the cached dataclass: built once, checked once
            except ConfigError as exc:
                found += exc.problems
        if check_paths:
            found += self._path_problems(src, built)
        return found

    def check(self, check_paths: bool = False) -> StudyConfig:
        """``self``, or one :class:`ConfigError` listing every problem (:meth:`problems`)."""
        found = self.problems(check_paths)
        if found:
            raise ConfigError("\n".join(found), problems=found)
        return self

    def _path_problems(self, src: str, built: dict[str, Any]) -> list[str]:
        found = []
        scrape, captions, train = built.get("scrape"), built.get("captions"), built.get("train")
        if scrape is not None and scrape.source in ("kaggle", "folder"):
            key = f"{scrape.source}_dir"
            value = getattr(scrape, key)
            folder = self.paths.user_path(value) if value else None
            if folder is None or not folder.is_dir():
                found.append(f"{src} [scrape]: key {key!r} must name an existing folder, got {value!r}"
                             + (f" (looked for {folder})" if folder else f" (source: {scrape.source} reads it)"))
        if captions is not None and captions.reference_file:
            file = self.paths.user_path(captions.reference_file)
            if not file.is_file():
                found.append(f"{src} [captions]: key 'reference_file' must name an existing file, got "
                             f"{captions.reference_file!r} (looked for {file})")
        evaluate_only = (self.params.get("compare") or {}).get("models_from")
        if train is not None and train.model_source == "pretrained" and not evaluate_only \
                and train.pretrained_model.startswith(("/", ".", "~")):
            folder = self.paths.user_path(train.pretrained_model)
            if not folder.is_dir():
                found.append(f"{src} [train]: key 'pretrained_model' must be a hub id (owner/name) or an existing "
                             f"folder, got {train.pretrained_model!r} (looked for {folder})")
        return found


def load_study(profile: str | Path, root: Path | None = None, check: bool = True,
               overrides: Iterable[str] = ()) -> StudyConfig:
    """The :class:`StudyConfig` of a built-in profile name or a user params file, every section checked
    (:meth:`StudyConfig.check`; ``check=False``: built on first use, each section checked then).

    ``overrides``: ``section.key[.key...]=value`` settings on top of the file (:func:`~t2p_utils.config.params.
    apply_overrides`; the trainer's and the benchmarks' ``--set``), checked like the file's own keys."""
    paths = Paths.for_profile(profile, root)
    params = load_params(paths.spec, paths.root)
    if overrides:
        params = apply_overrides(params, overrides)
    study = StudyConfig(paths, params)
    return study.check() if check else study
