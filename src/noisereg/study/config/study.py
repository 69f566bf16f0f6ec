"""Study files: the pydantic models of a study, TOML loading, and errors that name the user's key path.

A study file is TOML. Everything is validated before any work starts; a mistake is reported as
:class:`StudyConfigError`, one line per problem, each naming the key path the user wrote::

    arms[2].noise.std: must be >= 0, got -0.1
    optimizer: unknown key 'lrate'; did you mean 'lr'?

The schema (every table rejects unknown keys):

- ``name`` (run directory name), ``description``, ``claim`` (a published claim the study tests,
  shown in the report beside what it measured), ``topic`` (what kind of claim it tests, e.g.
  ``"flat minima"``: ``noisereg study --list`` groups the built-in studies by it), ``seed`` (root
  seed, default 0), ``seeds`` (seeds per arm, default 30; or ``{ max, step }``, a sequential study:
  :class:`~noisereg.study.config.sequential.SeedRounds`), ``metric`` (``accuracy`` | ``loss`` | ``r2``; default accuracy for
  classification, r2 for regression), ``curve_points`` (bound on stored points per curve),
  ``baseline`` (name of the no-noise arm; default the first arm without noise), ``noise_generator``
  (what draws the noise on a CPU: ``philox``, the default, or ``torch``; see
  :func:`noisereg.seeding.set_noise_generator`).
- ``[data]``: see :class:`DataConfig`; ``[split]``: :class:`SplitConfig`; ``[model]``:
  :class:`MLPConfig` / :class:`LinearConfig` / :class:`CNNConfig` / :class:`RecurrentConfig`; ``[optimizer]``;
  ``[training]``; ``[[arms]]``: :class:`ArmConfig`; ``[selection]``: :class:`SelectionConfig`;
  ``[robustness]``: :class:`~noisereg.study.config.robustness.RobustnessConfig`.

This module imports neither torch nor the engine: the runner turns the validated config into engine
objects, and the report reads the stored config as plain data.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from noisereg._checks import SEED_MAX, warn_deprecated
from noisereg.study.config.data import DataConfig, SplitConfig
from noisereg.study.config.keypaths import StudyConfigError, message, problems
from noisereg.study.config.model import CNNConfig, LinearConfig, MLPConfig, ModelConfig, RecurrentConfig, modern_model
from noisereg.study.config.noise import (
    NoiseConfig,
    check_sites,
    noise_strength_path,
    warn_earlier_spellings,
    with_value,
)
from noisereg.study.config.optimizer import OptimizerConfig
from noisereg.study.config.robustness import RobustnessConfig
from noisereg.study.config.search import SearchConfig, check_search
from noisereg.study.config.sequential import Seeds, check_rounds, max_seeds
from noisereg.study.config.strict import FiniteOrInf, Strict

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
    "parse_config",
]


class TrainingConfig(Strict):
    """Epochs, batch size, how often test metrics are recorded, and the loss.

    ``loss = 'auto'`` picks bce for two classes, ce for more, mse for regression. ``patience``
    (epochs) turns on early stopping on the validation loss: ``validation`` (a fraction in (0, 1))
    of every fold's training rows is held out, stratified, to decide it; each replica ends with the
    weights of its best validation epoch (see :class:`noisereg.engine.Group`). ``hessian_trace``
    (a number of probe vectors, >= 2) measures, after training, the trace of the Hessian of the clean
    training loss on each test fold's training rows for every replica (Hutchinson's estimator,
    :func:`noisereg.curvature.hessian_trace`; float64, eval mode): the sharpness that flat-minimum
    claims are about, reported per arm and paired with the baseline.
    """

    epochs: Annotated[int, Field(ge=1)]
    batch_size: Annotated[int, Field(ge=1)] = 32
    eval_every: Annotated[int, Field(ge=1)] = 10
    patience: Annotated[int, Field(ge=1)] | None = None
    validation: Annotated[float, Field(gt=0, lt=1)] | None = None
    loss: Literal["auto", "bce", "ce", "mse"] = "auto"
    hessian_trace: Annotated[int, Field(ge=2)] | None = None

    @model_validator(mode="after")
    def _validation_for_patience(self) -> TrainingConfig:
        if (self.patience is None) != (self.validation is None):
            raise ValueError("patience and validation go together: early stopping needs validation rows")
        return self


class GridConfig(Strict):
    """Values for one strength of the arm's noise; ``param`` is its path inside ``noise``
    (``"std"`` for a single site, ``"[1].std"`` for the second of several, ``"std.eta"`` for a
    schedule's parameter). Without ``param`` the arm must have exactly one site."""

    values: Annotated[list[FiniteOrInf], Field(min_length=1)]
    param: str | None = None


class ArmConfig(Strict):
    """A named noise setting: ``noise`` is one table or a list of tables (sites used together);
    no ``noise`` means no noise. ``grid`` (a list of values, or a :class:`GridConfig`) makes one cell
    per value; ``search`` (a :class:`SearchConfig`) makes cells whose values a sampler proposes.
    ``standardize`` overrides ``data.standardize`` for this arm only (its folds are rescaled, or not,
    with the training part's statistics; the samples, seeds and batch order stay the same, so arms
    with and without it are paired). ``weight_decay`` overrides ``optimizer.weight_decay`` for this
    arm only (same seeds, so a weight-decay arm and a noise arm are paired): for ``sgd`` and ``adam``
    it adds ``weight_decay``·θ to the gradient, i.e. minimizes loss + (weight_decay/2)·‖θ‖². With the
    mean squared error of n training rows that is ridge regression Σ(y − ŷ)² + λ‖θ‖² with
    λ = n·weight_decay/2. ``sam_rho`` > 0 trains this arm with SAM's two-gradient step (Foret et al.
    2021, ρ the ascent radius; see :class:`noisereg.engine.OptimSpec`), a baseline for weight noise.
    ``versus`` names another arm (without grid or search) that this one is also
    compared with, seed by seed, besides the baseline."""

    name: Annotated[str, Field(min_length=1, max_length=80)]
    noise: list[NoiseConfig] = []
    grid: GridConfig | None = None
    search: SearchConfig | None = None
    standardize: bool | None = None
    weight_decay: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    sam_rho: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    versus: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            data = dict(data)
            if isinstance(data.get("noise"), Mapping):
                data["noise"] = [data["noise"]]
            if isinstance(data.get("grid"), list):
                data["grid"] = {"values": data["grid"]}
        return data

    @model_validator(mode="after")
    def _grid_target(self) -> ArmConfig:
        check_sites(self.noise)
        if self.grid is not None:
            if not self.noise:
                raise ValueError("grid needs noise to vary: this arm has no 'noise'")
            noise_strength_path(self.noise, self.grid.param)
            if len(set(self.grid.values)) != len(self.grid.values):
                raise ValueError(f"grid values must be distinct, got {self.grid.values}")
            for i, value in enumerate(self.grid.values):
                try:
                    with_value(self.noise, self.grid.param, value)
                except ValidationError as exc:
                    err = exc.errors()[0]
                    field = self.grid.param or noise_strength_path(self.noise, None)[1][0]
                    raise ValueError(f"grid.values[{i}] sets {field}: {message(err)}") from None
        if self.search is not None:
            check_search(self.noise, self.search, has_grid=self.grid is not None)
        return self

    def cells(self) -> list[tuple[float | None, list[Any]]]:
        """(grid value or None, the noise of that cell) for each cell of this arm."""
        if self.grid is None:
            return [(None, list(self.noise))]
        return [(v, with_value(self.noise, self.grid.param, v)) for v in self.grid.values]


class SelectionConfig(Strict):
    """Choose an arm's grid value by k-fold cross-validation on the training part.

    ``criterion``: the held-out score (:mod:`noisereg.study.selection`): ``likelihood`` (minimum mean
    validation loss: maximum cross-validated likelihood, Holmstrom & Koistinen 1992), ``accuracy``,
    ``brier`` (minimum Brier score; classifiers), ``calibrated`` (likelihood after temperature
    scaling; classifiers) or ``early`` (likelihood at the epoch where the mean validation loss is
    lowest). ``rule``: ``best``, or ``one_se`` (the least noise within one standard error of the
    best). The defaults are the procedure that did best on ``benchmarks/selection.py`` (see the
    docs' selection benchmark page). Every criterion's choice is reported; the chosen value's test result is the grid cell
    trained on the whole training part. ``seeds``: how many of the study's seeds (the first ones)
    also train on the CV folds; default all. Fewer keep the cost of CV down: the CV score averages
    seeds x folds trainings. ``racing`` (with ``seeds = { max, step }``): a value whose CV score is
    clearly worse than that of another value the screen keeps trains no more CV folds; its comparison
    with the baseline goes on until decided (:mod:`noisereg.study.rounds`). ``screen`` (default true; classifiers, every criterion but ``accuracy``):
    a value whose mean CV accuracy is more than two standard errors below the best value's cannot be
    chosen, so that likelihood does not prefer a network that predicts the class frequencies over
    overconfident ones that classify better (:mod:`noisereg.study.selection`). A ``search`` arm
    proposes values by the unscreened criterion; the screen applies to the final choice. ``guard``
    (default true): the gain check — the chosen value is kept only where the CV shows it beats no noise
    (the grid's 0) in held-out accuracy, or squared error for regression: the one-sided 95% lower bound
    of the paired per-fold gain is above zero; otherwise the choice is no noise, and the report says
    why (:func:`noisereg.study.selection.gain_check`). It needs 0 in the grid (without it, nothing is
    checked) and does not steer a ``search``.

    ``nested = true`` also estimates the whole procedure ("choose the value by this CV, then train")
    by nested cross-validation of the training part: for each of the ``folds`` outer folds, the value
    is chosen by the same criterion and rule from an inner ``folds``-fold CV of the other rows, trained
    on those rows and tested on the outer fold, beside the baseline arm trained on the same rows. The
    report gives the chosen values and the mean gain over the baseline with a t-interval over the
    outer folds. It costs ``folds`` × (``folds`` + 1) more trainings per value and ``selection.seeds``
    seed, and ``folds`` per seed for the baseline; not with a ``search`` arm nor the ``early`` criterion.
    """

    arm: str
    folds: Annotated[int, Field(ge=2)] = 5
    criterion: Literal["likelihood", "accuracy", "brier", "calibrated", "early"] = "likelihood"
    rule: Literal["best", "one_se"] = "one_se"
    seeds: Annotated[int, Field(ge=1)] | None = None
    nested: bool = False
    screen: bool = True
    racing: bool = False
    guard: bool = True


class StudyConfig(Strict):
    """A whole study (see the module docstring for the file layout)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)]
    description: str = ""
    claim: str = ""
    topic: str = ""
    seed: Annotated[int, Field(ge=0, le=SEED_MAX)] = 0
    seeds: Seeds = 30
    metric: Literal["accuracy", "loss", "r2"] | None = None
    curve_points: Annotated[int, Field(ge=2, le=1000)] = 100
    baseline: str | None = None
    noise_generator: Literal["philox", "torch"] = "philox"
    data: DataConfig
    split: SplitConfig
    model: ModelConfig = MLPConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    training: TrainingConfig
    arms: Annotated[list[ArmConfig], Field(min_length=1)]
    selection: SelectionConfig | None = None
    robustness: RobustnessConfig = RobustnessConfig()

    @model_validator(mode="before")
    @classmethod
    def _model_family(cls, data: Any) -> Any:
        # [model] kind is the earlier spelling of family (silent here: parse_config warns with the key path)
        if isinstance(data, Mapping) and "model" in data:
            return {**data, "model": modern_model(data["model"])}
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> StudyConfig:
        names = [a.name for a in self.arms]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"arm names must be unique; repeated: {dupes}")
        if self.baseline is not None and self.baseline not in names:
            raise ValueError(f"baseline={self.baseline!r} is not an arm; arms: {names}")
        if self.baseline is None and not any(not a.noise for a in self.arms):
            raise ValueError("no arm without noise to compare with: add one (no 'noise' key) or set baseline")
        if self.selection is not None:
            if self.selection.arm not in names:
                close = difflib.get_close_matches(self.selection.arm, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; arms: {names}"
                raise ValueError(f"selection.arm={self.selection.arm!r} is not an arm{hint}")
            chosen = self.arms[names.index(self.selection.arm)]
            if chosen.grid is None and chosen.search is None:
                raise ValueError(f"selection.arm={self.selection.arm!r} has no grid or search to choose from")
            if self.selection.seeds is not None and self.selection.seeds > self.max_seeds:
                raise ValueError(f"selection.seeds={self.selection.seeds} exceeds the study's seeds={self.max_seeds}")
            if self.split.kind != "holdout":
                raise ValueError("selection cross-validates inside a holdout training part: use split.kind = 'holdout'")
            if self.selection.nested and self.selection.criterion == "early":
                raise ValueError("selection.nested keeps no held-out loss curves: use a criterion other than 'early'")
            if self.selection.nested and chosen.search is not None:
                raise ValueError(
                    f"selection.nested needs a grid: arm {chosen.name!r} has a search (its values are proposed one by one)"
                )
            base = self.arms[names.index(self.baseline_arm)]
            if self.selection.nested and base.standardize not in (None, self.data.standardize):
                raise ValueError(
                    f"selection.nested: the baseline {base.name!r} must use data.standardize (it trains on the nested folds)"
                )
        smoothing = self.robustness.smoothing.seeds
        if smoothing is not None and smoothing > self.max_seeds:
            raise ValueError(f"robustness.smoothing.seeds={smoothing} exceeds the study's seeds={self.max_seeds}")
        for i, arm in enumerate(self.arms):
            if arm.search is not None and (self.selection is None or self.selection.arm != arm.name):
                raise ValueError(
                    f"arms[{i}].search needs [selection] arm = {arm.name!r}: the sampler ranks values by their "
                    "cross-validated score, never by the test set"
                )
        self._check_contrasts(names)
        check_rounds(self)
        return self

    def _check_contrasts(self, names: list[str]) -> None:
        """``standardize`` and ``versus`` of each arm (see :class:`ArmConfig`)."""
        for i, arm in enumerate(self.arms):
            if arm.standardize and self.data.value_range is not None:
                raise ValueError(
                    f"arms[{i}].standardize = true with data.value_range: standardizing would undo the [0, 1] map"
                )
            if arm.standardize is not None and (
                self.selection is not None
                and self.selection.arm == arm.name
                and arm.standardize != self.data.standardize
            ):
                raise ValueError(
                    f"arms[{i}].standardize: the selection arm uses data.standardize (its CV folds are shared)"
                )
            if arm.versus is None:
                continue
            if arm.versus not in names:
                close = difflib.get_close_matches(arm.versus, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; arms: {names}"
                raise ValueError(f"arms[{i}].versus={arm.versus!r} is not an arm{hint}")
            other = self.arms[names.index(arm.versus)]
            if arm.versus == arm.name:
                raise ValueError(f"arms[{i}].versus={arm.versus!r} names the arm itself")
            for which in (arm, other):
                if which.grid is not None or which.search is not None:
                    raise ValueError(
                        f"arms[{i}].versus: {which.name!r} has a grid or search; compare arms of one cell each"
                    )

    @property
    def max_seeds(self) -> int:
        """The most seeds a cell trains (``seeds``, or its ``max`` in a sequential study)."""
        return max_seeds(self.seeds)

    @property
    def baseline_arm(self) -> str:
        """The name of the arm every other arm is compared with."""
        return self.baseline or next(a.name for a in self.arms if not a.noise)


def parse_config(raw: Mapping[str, Any], *, source: str = "study") -> StudyConfig:
    """Validate a study given as plain data (a parsed TOML document); raise :class:`StudyConfigError`.

    Noise tables in the earlier spelling of built-in study files (``site = "before"``, ``layers = [0]``,
    a search's ``sites``) are read as today's (``at = "activations", where = "before"``, ``select``,
    ``places``), with a ``DeprecationWarning`` that names each key path and what to write instead."""
    if not isinstance(raw, Mapping):
        raise TypeError(f"a study must be a mapping of keys, got {type(raw).__name__}")
    warn_earlier_spellings(raw, source)
    model = raw.get("model")
    if isinstance(model, Mapping) and "kind" in model and "family" not in model:
        warn_deprecated(f"{source}: model.kind = {model['kind']!r} is deprecated: write family = {model['kind']!r}")
    try:
        return StudyConfig.model_validate(dict(raw))
    except ValidationError as exc:
        raise StudyConfigError(problems(exc, raw), source) from None


def parse_stored(raw: Mapping[str, Any], *, source: str) -> StudyConfig:
    """A configuration read back from a store, as this version reads it: one stored before the
    ``noise_generator`` key existed had its noise drawn by torch's generator, and keeps it."""
    with warnings.catch_warnings():  # old spellings in a stored study are not the reader's to fix
        warnings.simplefilter("ignore", DeprecationWarning)
        return parse_config({"noise_generator": "torch", **raw}, source=source)
