"""Study files: pydantic models of every table, TOML loading, and errors that name the key path.

Nothing here imports torch: a study file is checked completely before any training starts, and the
report can read a stored configuration without the engine.
"""

from noisereg.study.config.files import DEFAULT_STUDY, builtin_studies, builtin_topics, load_config, resolve_study
from noisereg.study.config.study import (
    ArmConfig,
    CNNConfig,
    DataConfig,
    GridConfig,
    LinearConfig,
    MLPConfig,
    NoiseConfig,
    OptimizerConfig,
    RecurrentConfig,
    RobustnessConfig,
    SearchConfig,
    SelectionConfig,
    SplitConfig,
    StudyConfig,
    StudyConfigError,
    TrainingConfig,
    parse_config,
    parse_stored,
)
from noisereg.study.config.user import UserStudyConfig

__all__ = [
    "StudyConfig",
    "DataConfig",
    "SplitConfig",
    "MLPConfig",
    "LinearConfig",
    "CNNConfig",
    "RecurrentConfig",
    "OptimizerConfig",
    "TrainingConfig",
    "ArmConfig",
    "GridConfig",
    "SearchConfig",
    "SelectionConfig",
    "StudyConfigError",
    "NoiseConfig",
    "RobustnessConfig",
    "load_config",
    "parse_config",
    "parse_stored",
    "builtin_studies",
    "builtin_topics",
    "resolve_study",
    "DEFAULT_STUDY",
    "UserStudyConfig",
]
