"""The ``[data]`` and ``[split]`` tables of a study file: where the samples come from and how they
are split into training and test parts (:mod:`noisereg.study.data` loads and splits them)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from noisereg._checks import NUMPY_SEED_MAX
from noisereg.study.config.strict import Strict

__all__ = ["DataConfig", "SplitConfig"]


class DataConfig(Strict):
    """Where the samples come from.

    ``source``: ``circles`` / ``moons`` (sklearn generators: ``n_samples``, ``noise``, ``factor`` for
    circles, ``random_state``; ``test_samples`` draws a separate test sample of that size from the same
    distribution with ``test_random_state``, default ``random_state + 1``), a bundled scikit-learn set
    (``digits``, ``breast_cancer``, ``wine``, ``iris``, ``diabetes``), or ``file`` (``path`` to a
    .csv/.npz/.parquet file with a ``target`` column; ``task`` is then required). ``standardize``
    rescales features to zero mean and unit variance with statistics of the training part only;
    ``standardize_target`` does the same for regression targets. ``value_range = [low, high]``
    instead maps every feature from that known range to [0, 1], x' = (x − low) / (high − low) (pixel
    intensities: digits are in [0, 16]), the range the image corruption constants are defined on; it
    needs ``standardize = false``, and data outside the range are refused.
    """

    source: Literal["circles", "moons", "digits", "breast_cancer", "wine", "iris", "diabetes", "file"]
    n_samples: Annotated[int, Field(ge=2)] = 100
    noise: Annotated[float, Field(ge=0)] = 0.1
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.8
    random_state: Annotated[int, Field(ge=0, le=NUMPY_SEED_MAX)] = 0
    test_samples: Annotated[int, Field(ge=1)] | None = None
    test_random_state: Annotated[int, Field(ge=0, le=NUMPY_SEED_MAX)] | None = None
    path: str | None = None
    target: str | None = None
    task: Literal["auto", "classification", "regression"] = "auto"
    standardize: bool = True
    standardize_target: bool = True
    value_range: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _source_keys(self) -> DataConfig:
        generated = self.source in ("circles", "moons")
        if self.source == "file":
            if self.path is None or self.target is None:
                raise ValueError("source = 'file' needs 'path' and 'target'")
            if self.task == "auto":
                raise ValueError("source = 'file' needs task = 'classification' or 'regression'")
        elif self.path is not None or self.target is not None:
            raise ValueError(f"'path' and 'target' are for source = 'file', not {self.source!r}")
        if not generated and self.test_samples is not None:
            raise ValueError(f"test_samples draws fresh test data: only for circles/moons, not {self.source!r}")
        if self.value_range is not None:
            low, high = self.value_range
            if not low < high:
                raise ValueError(f"value_range={list(self.value_range)} must be [low, high] with low < high")
            if self.standardize:
                raise ValueError(
                    "value_range maps the features to [0, 1]; set standardize = false (standardizing would undo it)"
                )
        return self


class SplitConfig(Strict):
    """How samples are split. ``holdout``: the first ``n_train`` samples train, the rest (or the
    fresh test sample) test; ``shuffle = true`` permutes first with ``shuffle_seed``. ``kfold``:
    stratified k-fold (plain k-fold for regression) over all samples, ``folds`` >= 2; every seed
    trains once per fold and its metric is the mean over folds."""

    kind: Literal["holdout", "kfold"] = "holdout"
    n_train: Annotated[int, Field(ge=2)] | None = None
    folds: Annotated[int, Field(ge=2)] = 5
    shuffle: bool = False
    shuffle_seed: Annotated[int, Field(ge=0, le=NUMPY_SEED_MAX)] = 0

    @model_validator(mode="after")
    def _kind_keys(self) -> SplitConfig:
        if self.kind == "holdout" and self.n_train is None:
            raise ValueError("kind = 'holdout' needs n_train (the first n_train samples train)")
        if self.kind == "kfold" and self.n_train is not None:
            raise ValueError("n_train is for kind = 'holdout'; kfold uses every sample for testing once")
        return self
