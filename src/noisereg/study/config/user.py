"""Study files of the user's own model: ``[model] factory = "pkg.module:make_net"`` and
``[data] loader = "pkg.module:load"``, with arms in the vocabulary of ``noisereg.attach``.

A study file whose ``[model]`` table has a ``factory`` key is one of these (:func:`is_user_study`);
``noisereg study FILE`` runs it through :func:`noisereg.study.run_model`. The schema::

    name = "mynet"              # run directory name; claim and topic as in built-in study files
    seeds = 10                  # seed, description, metric, folds (k-fold over the loaded data) also
    [model]
    factory = "mypkg.nets:make_net"   # called as make_net(**kwargs) for every replica
    kwargs = { width = 32 }
    [data]
    loader = "mypkg.data:load"  # load(**kwargs) -> (x, y) | Dataset | {"train": ..., "test": ...}
    [training]
    epochs = 50                 # batch_size (32), eval_every (1), loss ("auto" | "ce" | "bce" | "mse"
                                # | "pkg.module:loss"), task ("auto" | "classification" | "regression")
    [optimizer]                 # as in every study file: name, lr, weight_decay, ...
    [[arms]]
    name = "blocks"
    noise = [{ kind = "gaussian", std = 0.1, at = "activations", select = "blocks.*.act", where = "before" }]
    grid = [0.03, 0.1, 0.3]     # or { site = 1, values = [...] } for an arm of several sites

``kind`` is one of :data:`USER_KINDS`; its other keys are the kind's parameters (numbers; schedules are
for the Python entry), and ``at``, ``select``, ``where``, ``arg``, ``mask``, ``biases``, ``resample``,
``increments``, ``scale_by_lr`` are attach's. No torch here: the bridge imports the factory, loader and kinds and
reports a failing import or call under the key that named it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from noisereg.study.config.keypaths import StudyConfigError, problems
from noisereg.study.config.noise import Strict
from noisereg.study.config.optimizer import OptimizerConfig

__all__ = [
    "USER_KINDS",
    "FactoryConfig",
    "LoaderConfig",
    "UserArmConfig",
    "UserSiteConfig",
    "UserStudyConfig",
    "UserTrainingConfig",
    "is_user_study",
    "parse_user_config",
]

USER_KINDS = (
    "gaussian",
    "uniform",
    "rademacher",
    "multiplicative_gaussian",
    "speckle",
    "gaussian_dropout",
    "alpha_dropout",
    "snr_gaussian",
    "impulse",
    "filter_gaussian",
    "shot",
    "colored",
    "spatial",
    "label_smoothing",
    "label_flip",
    "disturb_label",
    "mixup",
    "cutmix",
    "neftune",
    "symnoise",
    "noisytune",
)
"""Kinds a user study file may name (the same names as built-in study files, where those have them)."""

ImportPath = Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")]


class FactoryConfig(Strict):
    """``factory``: import path of a function or class returning a fresh ``nn.Module``; ``kwargs``: its arguments."""

    factory: ImportPath
    kwargs: dict[str, Any] = {}


class LoaderConfig(Strict):
    """``loader``: import path of a function returning the data; ``kwargs``: its arguments."""

    loader: ImportPath
    kwargs: dict[str, Any] = {}


class UserSiteConfig(BaseModel):
    """One site: ``kind`` and its parameters, and attach's options. Keys other than these are the
    kind's parameters, checked when the kind is built (an unknown one is named there)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: Literal[USER_KINDS]  # type: ignore[valid-type]
    at: Literal["input", "activations", "embeddings", "weights", "gradients", "targets"] = "input"
    select: str | None = None
    where: Literal["before", "after", "state"] | None = None
    arg: int | str | None = None
    mask: str | None = None
    biases: bool | None = None
    resample: Literal["step", "forward", "manual"] | None = None
    increments: Literal["none", "independent", "anticorrelated"] | None = None
    scale_by_lr: bool | None = None

    def options(self) -> dict[str, Any]:
        """attach's options that the file sets."""
        names = ("select", "where", "arg", "mask", "biases", "resample", "increments", "scale_by_lr")
        return {k: getattr(self, k) for k in names if getattr(self, k) is not None}

    def parameters(self) -> dict[str, Any]:
        """The kind's own parameters (every other key)."""
        return dict(self.model_extra or {})


class UserGridConfig(Strict):
    site: Annotated[int, Field(ge=0)] = 0
    values: Annotated[list[float], Field(min_length=1)]


class UserArmConfig(Strict):
    """``noise``: one site table or a list of them (none: no noise); ``grid``: strengths of the
    (single, or ``grid.site``-th) site's main strength; ``versus``: another arm (neither with a grid)
    that this one is also compared with, seed by seed, as in built-in study files."""

    name: Annotated[str, Field(min_length=1, max_length=80)]
    noise: list[UserSiteConfig] = []
    grid: list[float] | UserGridConfig | None = None
    versus: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _single_table(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("noise"), Mapping):
            return {**data, "noise": [data["noise"]]}
        return data

    @model_validator(mode="after")
    def _grid_has_a_site(self) -> UserArmConfig:
        if self.grid is not None:
            site = self.grid.site if isinstance(self.grid, UserGridConfig) else 0
            if not self.noise:
                raise ValueError("grid needs noise to vary: this arm has no 'noise'")
            if isinstance(self.grid, list) and len(self.noise) > 1:
                raise ValueError(f"this arm has {len(self.noise)} sites: write grid = {{ site = i, values = [...] }}")
            if site >= len(self.noise):
                raise ValueError(f"grid.site={site} but the arm has {len(self.noise)} site(s)")
        return self


class UserTrainingConfig(Strict):
    epochs: Annotated[int, Field(ge=1)]
    batch_size: Annotated[int, Field(ge=1)] = 32
    eval_every: Annotated[int, Field(ge=1)] = 1
    loss: str = "auto"
    task: Literal["auto", "classification", "regression"] = "auto"

    @field_validator("loss")
    @classmethod
    def _loss_name_or_path(cls, loss: str) -> str:  # a field validator: the error names training.loss
        if loss not in ("auto", "ce", "bce", "mse") and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", loss):
            raise ValueError(
                f"loss={loss!r} must be 'auto', 'ce', 'bce', 'mse' or an import path 'package.module:name'"
            )
        return loss


class UserStudyConfig(Strict):
    """A study of the user's model (module docstring)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str = ""
    claim: str = ""
    topic: str = ""
    seed: Annotated[int, Field(ge=0)] = 0
    seeds: Annotated[int, Field(ge=1)] = 10
    folds: Annotated[int, Field(ge=2)] | None = None
    metric: Literal["accuracy", "loss", "r2"] | None = None
    model: FactoryConfig
    data: LoaderConfig
    training: UserTrainingConfig
    optimizer: OptimizerConfig = OptimizerConfig()
    arms: Annotated[list[UserArmConfig], Field(min_length=1)]

    @model_validator(mode="after")
    def _cross_checks(self) -> UserStudyConfig:
        names = [a.name for a in self.arms]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"arm names must be unique; repeated: {dupes}")
        if all(a.noise for a in self.arms):
            raise ValueError("no arm without noise to compare with: add one (no 'noise' key)")
        for i, arm in enumerate(self.arms):
            if arm.versus is None:
                continue
            other = next((a for a in self.arms if a.name == arm.versus), None)
            if other is None or other is arm:
                raise ValueError(f"arms[{i}].versus={arm.versus!r} must name another arm; arms: {names}")
            if arm.grid is not None or other.grid is not None:
                raise ValueError(f"arms[{i}].versus: compare arms without a grid")
        if self.optimizer.sam_rho:
            raise ValueError("optimizer.sam_rho is for built-in models; take SAM's two gradients in your own step")
        return self


def is_user_study(raw: Mapping[str, Any]) -> bool:
    """True when ``raw`` (a parsed study file) studies the user's model: its ``[model]`` names a factory."""
    model = raw.get("model")
    return isinstance(model, Mapping) and "factory" in model


def parse_user_config(raw: Mapping[str, Any], *, source: str = "study") -> UserStudyConfig:
    """Validate a user study given as plain data; raise :class:`StudyConfigError` with key paths."""
    try:
        return UserStudyConfig.model_validate(raw)
    except ValidationError as exc:
        raise StudyConfigError(problems(exc, raw), source) from None
