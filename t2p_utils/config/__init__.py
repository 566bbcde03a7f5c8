"""Every step's settings and the one way to read them: ``load_study(profile_or_file)``.

One params file (``params/<profile>.yaml`` or yours) holds a section per step; :func:`load_study` reads it, follows
``extends:``, gives the top-level ``seed:`` to every section that has one, and checks every section before it returns
(:mod:`t2p_utils.config.study`). The sections' dataclasses live here, apart from the code that runs the step, so the
check imports no torch:

=================  ===================================  =====================================
section            dataclass                            read by
=================  ===================================  =====================================
``scrape:``        :class:`~.scrape.ScrapeConfig`       01_scrape (:mod:`t2p_utils.scrape`)
``captions:``      :class:`~.captions.CaptionConfig`    02, 03 (:mod:`t2p_utils.captions`)
``train:``         :class:`~.train.TrainConfig`         04_finetune (:mod:`t2p_utils.train`)
``compare:``       :class:`~.compare.CompareConfig`     05_compare (:mod:`t2p_utils.compare`), the demo
=================  ===================================  =====================================

:mod:`~.params` holds the paths of a profile (:class:`Paths`), the YAML reading and the field checks.
"""

from t2p_utils.config.captions import CaptionConfig
from t2p_utils.config.compare import CompareConfig
from t2p_utils.config.params import (
    CAPTION_SOURCES,
    PROFILES,
    RUNS_DIR,
    SECTIONS,
    ConfigError,
    FieldChecks,
    Paths,
    check_profile,
    from_dict,
    is_params_path,
    load_params,
    repo_root,
    resolve_device,
    resolve_profile,
    section,
)
from t2p_utils.config.scrape import ScrapeConfig
from t2p_utils.config.study import STEP_CONFIGS, StudyConfig, load_study
from t2p_utils.config.train import TrainConfig, VaeConfig

__all__ = [
    "CAPTION_SOURCES", "PROFILES", "RUNS_DIR", "SECTIONS", "STEP_CONFIGS", "CaptionConfig", "CompareConfig",
    "ConfigError", "FieldChecks", "Paths", "ScrapeConfig", "StudyConfig", "TrainConfig", "VaeConfig", "check_profile",
    "from_dict", "is_params_path", "load_params", "load_study", "repo_root", "resolve_device", "resolve_profile",
    "section",
]
