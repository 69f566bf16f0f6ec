"""The ``[robustness]`` table of a study file: noisy evaluation, corruption suite, calibration, smoothing.

::

    [robustness]
    constants = "cifar10"          # severity constants: "cifar10" | "imagenet" (images in [0, 1]) | "tabular"
    corruptions = ["gaussian", "shot", "impulse", "speckle"]   # default: every one the constants define
    severities = [1, 2, 3, 4, 5]
    ece_bins = 15

    [robustness.monitor]           # during training, every evaluation, every replica
    corruption = "gaussian"
    severity = 3                   # or std = 0.1 (an explicit Gaussian σ)

    [robustness.smoothing]         # certification by randomized smoothing after training
    sigma = 0.25
    n0 = 100
    n = 1000
    alpha = 0.001
    inputs = 50                    # test inputs certified per seed (evenly spread over its test parts)
    seeds = 10                     # certify the first 10 seeds only

Every key has a default, so a study without the table gets the noisy evaluation during training and,
for classifiers, calibration, the corruption suite with tabular levels and a small certification. The
names of corruptions and their fit to the constants and the data are checked with
:mod:`noisereg.robustness`'s own checks when the study is prepared (before training), and reported
under these key paths. This module imports no torch.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from noisereg._checks import SEED_MAX
from noisereg.study.config.strict import Strict

__all__ = ["RobustnessConfig", "MonitorConfig", "SmoothingConfig", "SMOOTHING_SEEDS"]

SMOOTHING_SEEDS = 10

Severity = Annotated[int, Field(ge=1, le=5)]


class MonitorConfig(Strict):
    """Noisy evaluation while training: each replica's test inputs corrupted once with ``corruption``
    at ``severity`` (of ``robustness.constants``), or with Gaussian noise of standard deviation ``std``
    (clipped to [0, 1] for image constants), and evaluated at every evaluated epoch."""

    enabled: bool = True
    corruption: str = "gaussian"
    severity: Severity = 3
    std: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _std_or_severity(self) -> MonitorConfig:
        if self.std is not None:
            if self.corruption != "gaussian":
                raise ValueError(
                    f"std is a Gaussian standard deviation; corruption = {self.corruption!r} uses severity"
                )
            if "severity" in self.model_fields_set:
                raise ValueError("give severity or std, not both")
        return self


class SmoothingConfig(Strict):
    """Certified accuracy by randomized smoothing (Cohen et al. 2019) of each replica: ``inputs`` test
    inputs per seed, ``n0`` selection and ``n`` estimation samples, level ``alpha``; certified accuracy at
    ``radii`` (default: 9 radii from 0 to the largest that n samples can certify,
    σ·Φ⁻¹(alpha^(1/n))). ``seeds``: only the first that many seeds are certified (default
    :data:`SMOOTHING_SEEDS`, or all when the study has fewer): certification is the costly part of
    the suite, about n0 + n forward passes per input."""

    enabled: bool = True
    sigma: Annotated[float, Field(gt=0)] = 0.25
    n0: Annotated[int, Field(ge=1)] = 100
    n: Annotated[int, Field(ge=2)] = 1000
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.001
    inputs: Annotated[int, Field(ge=1)] = 50
    seeds: Annotated[int, Field(ge=1)] | None = None
    radii: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1)] | None = None
    batch_size: Annotated[int, Field(ge=1)] = 1000

    @model_validator(mode="after")
    def _prelude(self) -> SmoothingConfig:
        if self.n0 >= self.n:
            raise ValueError(
                f"n0={self.n0} must be < n={self.n}: the selection samples are meant to be a small prelude"
            )
        return self


class RobustnessConfig(Strict):
    """What is measured beyond clean accuracy (see the module docstring).

    ``enabled`` runs the suite after training (calibration, corruptions, smoothing): by default for
    classifiers; ``true`` on a regression is refused. ``seed`` fixes the corruption and smoothing
    noise, the same for every arm and seed (common random numbers, so arms are compared on the same
    corrupted inputs). ``scale`` is the feature scale of tabular levels (default 1: standardized).
    """

    enabled: bool | None = None
    constants: Literal["cifar10", "imagenet", "tabular"] = "tabular"
    corruptions: Annotated[list[str], Field(min_length=1)] | None = None
    severities: Annotated[list[Severity], Field(min_length=1)] = [1, 2, 3, 4, 5]
    scale: Annotated[float, Field(gt=0)] | None = None
    seed: Annotated[int, Field(ge=0, le=SEED_MAX)] = 0
    ece_bins: Annotated[int, Field(ge=1)] = 15
    batch_size: Annotated[int, Field(ge=1)] = 1000
    monitor: MonitorConfig = MonitorConfig()
    smoothing: SmoothingConfig = SmoothingConfig()

    @model_validator(mode="after")
    def _distinct(self) -> RobustnessConfig:
        for name, values in (("corruptions", self.corruptions or []), ("severities", self.severities)):
            if len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct, got {values}")
        if self.scale is not None and self.constants != "tabular":
            raise ValueError(f"scale is the feature scale of tabular levels; {self.constants!r} images are in [0, 1]")
        return self
