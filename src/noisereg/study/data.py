"""Data for studies: generated and bundled data sets, user files, splits, folds and standardization.

Everything here is numpy (no torch): the runner turns :class:`Fold` arrays into tensors. Every check
runs before training and raises :class:`DataError` naming the study key and, for files, the column and
rows at fault.

Standardization (``data.standardize``): each fold's features are rescaled with the mean and the
standard deviation (ddof = 0) of that fold's training rows only, x' = (x − mean_train) / std_train; a
constant feature keeps std 1. Regression targets are rescaled the same way when
``data.standardize_target`` is set (losses are then on that scale; R² is unchanged by it).
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from sklearn import datasets as skdata
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from noisereg.study.config import DataConfig, SplitConfig
from noisereg.study.data_files import DataError, check_finite, first_text, read_columns

__all__ = ["DataError", "Dataset", "Fold", "load_dataset", "make_folds"]

Task = Literal["classification", "regression"]


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Features ``x`` [n, f] (float64), targets ``y`` [n] (class codes 0..K−1, or floats), and for
    generated data an optional separate test sample."""

    name: str
    task: Task
    x: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    classes: tuple[str, ...] = ()
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        return len(self.classes)


Role = Literal["test", "cv", "nested_test", "nested_cv"]


@dataclasses.dataclass(frozen=True)
class Fold:
    """One training/testing arrangement. ``role = 'test'``: trains on the whole training part (of
    outer fold ``outer``) and tests on the test part; ``role = 'cv'``: a cross-validation fold of the
    training part, whose ``x_test`` is its held-out part. Nested cross-validation of the training
    part: ``role = 'nested_test'`` trains on all of it but outer fold ``outer`` and tests on that fold;
    ``role = 'nested_cv'`` is a cross-validation fold of that outer fold's training rows. ``x_val``
    (optional) is for early stopping."""

    name: str
    role: Role
    outer: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    @property
    def shape_key(self) -> tuple[int, int, int]:
        """(train, validation, test) sizes: folds with equal keys can share one batched training."""
        return len(self.y_train), 0 if self.y_val is None else len(self.y_val), len(self.y_test)


def _bundled(source: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...], Task]:
    loader = {
        "digits": skdata.load_digits,
        "breast_cancer": skdata.load_breast_cancer,
        "wine": skdata.load_wine,
        "iris": skdata.load_iris,
        "diabetes": skdata.load_diabetes,
    }[source]
    bunch = loader()
    names = tuple(str(n) for n in getattr(bunch, "feature_names", [f"x{i}" for i in range(bunch.data.shape[1])]))
    if source == "diabetes":
        return bunch.data.astype(np.float64), bunch.target.astype(np.float64), names, (), "regression"
    classes = tuple(str(c) for c in getattr(bunch, "target_names", np.unique(bunch.target)))
    return bunch.data.astype(np.float64), bunch.target.astype(np.int64), names, classes, "classification"


def _generated(config: DataConfig, n: int, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    if config.source == "circles":
        x, y = skdata.make_circles(n_samples=n, noise=config.noise, factor=config.factor, random_state=random_state)
    else:
        x, y = skdata.make_moons(n_samples=n, noise=config.noise, random_state=random_state)
    return x.astype(np.float64), y.astype(np.int64)


def _from_file(config: DataConfig) -> Dataset:
    path = Path(str(config.path))
    columns = read_columns(path)
    target = str(config.target)
    if target not in columns:
        close = difflib.get_close_matches(target, list(columns), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataError(f"data.target={target!r} is not a column of {path}; columns: {list(columns)}{hint}")
    n = len(columns[target])
    feature_names = tuple(c for c in columns if c != target)
    if not feature_names:
        raise DataError(f"{path}: no feature columns besides the target {target!r}")
    for name in feature_names:
        col = columns[name]
        if len(col) != n:
            raise DataError(f"{path}: column {name!r} has {len(col)} rows, the target has {n}")
        if col.dtype.kind not in "biuf":
            raise DataError(f"{path}: feature column {name!r} is not numeric: {first_text(col)}")
    x = np.column_stack([columns[c].astype(np.float64) for c in feature_names])
    check_finite(x, feature_names, path)
    raw_y = columns[target]
    if config.task == "regression":
        if raw_y.dtype.kind not in "biuf":
            raise DataError(f"{path}: task = 'regression' needs a numeric target; {target!r} holds {raw_y[0]!r}")
        y: np.ndarray = raw_y.astype(np.float64)
        check_finite(y[:, None], (target,), path)
        return Dataset(path.stem, "regression", x, y, feature_names)
    if raw_y.dtype.kind == "f":
        check_finite(raw_y[:, None], (target,), path)
    labels, y = np.unique(raw_y, return_inverse=True)
    classes = tuple(str(int(c)) if raw_y.dtype.kind == "f" and float(c).is_integer() else str(c) for c in labels)
    return Dataset(path.stem, "classification", x, y.astype(np.int64), feature_names, classes)


def load_dataset(config: DataConfig) -> Dataset:
    """Load the data a study names (see :class:`~noisereg.study.config.DataConfig`), mapped to
    [0, 1] when ``data.value_range`` is set."""
    data = _load(config)
    if config.value_range is None:
        return data
    x_test = None if data.x_test is None else _to_unit(data.x_test, config.value_range, data.feature_names)
    return dataclasses.replace(data, x=_to_unit(data.x, config.value_range, data.feature_names), x_test=x_test)


def _load(config: DataConfig) -> Dataset:
    if config.source == "file":
        return _from_file(config)
    if config.source in ("circles", "moons"):
        x, y = _generated(config, config.n_samples, config.random_state)
        x_test = y_test = None
        if config.test_samples is not None:
            seed = config.random_state + 1 if config.test_random_state is None else config.test_random_state
            x_test, y_test = _generated(config, config.test_samples, seed)
        return Dataset(config.source, "classification", x, y, ("x0", "x1"), ("0", "1"), x_test, y_test)
    x, y, names, classes, task = _bundled(config.source)
    if config.task not in ("auto", task):
        raise DataError(f"data.task={config.task!r} but {config.source!r} is a {task} data set")
    return Dataset(config.source, task, x, y, names, classes)


def _to_unit(x: np.ndarray, value_range: tuple[float, float], names: tuple[str, ...]) -> np.ndarray:
    low, high = value_range
    outside = (x < low) | (x > high)
    if outside.any():
        j = int(np.flatnonzero(outside.any(axis=0))[0])
        raise DataError(
            f"data.value_range={[low, high]} but feature {names[j]!r} holds values in "
            f"[{x[:, j].min():g}, {x[:, j].max():g}] ({int(outside.sum())} value(s) outside the range)"
        )
    return (x - low) / (high - low)


# list[Any]: each place keeps what it was given (an array or None), which the callers unpack by position
def _scale(train: np.ndarray, *others: np.ndarray | None) -> list[Any]:
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return [(train - mean) / std] + [None if o is None else (o - mean) / std for o in others]


def _fold(
    name: str,
    role: Role,
    outer: int,
    data: Dataset,
    config: DataConfig,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    validation: float | None,
    seed: int,
) -> Fold:
    (xtr, ytr), (xte, yte) = train, test
    xva = yva = None
    if validation is not None:
        strat = ytr if data.task == "classification" else None
        try:
            tr, va = train_test_split(np.arange(len(ytr)), test_size=validation, random_state=seed, stratify=strat)
        except ValueError as exc:
            raise DataError(
                f"training.validation={validation}: cannot split the {len(ytr)} training rows of fold {name!r}: {exc}"
            ) from None
        xtr, ytr, xva, yva = xtr[tr], ytr[tr], xtr[va], ytr[va]
    if config.standardize:
        xtr, xte, xva = _scale(xtr, xte, xva)
    if data.task == "regression" and config.standardize_target:
        col: list[Any] = [None if v is None else v[:, None] for v in (ytr, yte, yva)]
        scaled: list[Any] = [None if v is None else v[:, 0] for v in _scale(*col)]
        ytr, yte, yva = scaled
    return Fold(name, role, outer, xtr, ytr, xte, yte, xva, yva)


def _splitter(data: Dataset, k: int, key: str, rows: np.ndarray, seed: int) -> KFold | StratifiedKFold:
    y = data.y[rows] if data.task == "classification" else None
    if len(rows) < k:
        raise DataError(f"{key}={k} but only {len(rows)} sample(s) are there to split")
    if y is not None:
        counts = np.bincount(y, minlength=data.n_classes)
        small = [(data.classes[c], int(n)) for c, n in enumerate(counts) if 0 < n < k]
        if small:
            raise DataError(f"{key}={k} but class(es) {small} have fewer members than folds (stratified split)")
        return StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return KFold(n_splits=k, shuffle=True, random_state=seed)


def make_folds(
    data: Dataset,
    split: SplitConfig,
    config: DataConfig,
    *,
    cv_folds: int | None = None,
    validation: float | None = None,
    nested: bool = False,
) -> list[Fold]:
    """The folds of a study: ``role='test'`` folds (one for holdout, k for kfold) then, with
    ``cv_folds``, that many cross-validation folds of the holdout training part; with ``nested`` too,
    for each of those k outer folds a ``nested_test`` fold (the outer fold's training rows against its
    held-out rows) and k ``nested_cv`` folds of its training rows.

    Holdout: the first ``split.n_train`` samples (after a permutation by ``shuffle_seed`` if
    ``split.shuffle``) train; the rest, or the generated fresh test sample, test. Kfold and the CV folds
    are stratified for classification and shuffled with ``split.shuffle_seed``. A CV fold tests on its
    held-out part (``x_test``); the real test part is not used by it. With ``validation`` (a fraction
    in (0, 1)), every fold's training rows are split once more, stratified, into training and
    validation rows (for early stopping).
    """
    seed = split.shuffle_seed
    n = len(data.y)
    if data.task == "classification" and len(np.unique(data.y)) < 2:
        only = data.classes[int(data.y[0])] if len(data.y) else "none"
        key = f"data.target={config.target!r}" if config.source == "file" else f"data.source={config.source!r}"
        raise DataError(f"{key}: the targets hold one class only ({only!r}); a classifier needs at least 2 classes")
    rows = np.arange(n)
    if split.kind == "kfold":
        splitter = _splitter(data, split.folds, "split.folds", rows, seed)
        folds = []
        for i, (tr, te) in enumerate(splitter.split(data.x, data.y if data.task == "classification" else None)):
            folds.append(
                _fold(
                    f"fold{i}",
                    "test",
                    i,
                    data,
                    config,
                    (data.x[tr], data.y[tr]),
                    (data.x[te], data.y[te]),
                    validation,
                    seed,
                )
            )
        return folds
    if split.shuffle:
        rows = np.random.default_rng(seed).permutation(n)
    n_train = int(split.n_train or 0)
    fresh = data.x_test is not None
    if n_train > n or (n_train == n and not fresh):
        raise DataError(f"split.n_train={n_train} leaves no test samples: the data has {n}")
    train_rows = rows[:n_train]
    if data.task == "classification" and len(np.unique(data.y[train_rows])) < 2:
        raise DataError(f"split.n_train={n_train}: the training part holds one class only")
    train = (data.x[train_rows], data.y[train_rows])
    # fresh: the data set brings its own test part, x_test and y_test together
    test = (
        cast(tuple[np.ndarray, np.ndarray], (data.x_test, data.y_test))
        if fresh
        else (data.x[rows[n_train:]], data.y[rows[n_train:]])
    )
    folds = [_fold("test", "test", 0, data, config, train, test, validation, seed)]
    if cv_folds is not None:
        splitter = _splitter(data, cv_folds, "selection.folds", train_rows, seed)
        y_strat = train[1] if data.task == "classification" else None
        outer = list(splitter.split(train[0], y_strat))
        for i, (tr, va) in enumerate(outer):
            held_out = (train[0][va], train[1][va])
            folds.append(
                _fold(f"cv{i}", "cv", 0, data, config, (train[0][tr], train[1][tr]), held_out, validation, seed)
            )
        if nested:
            folds += _nested_folds(data, config, train_rows, outer, cv_folds, validation, seed)
    return folds


def _nested_folds(
    data: Dataset,
    config: DataConfig,
    train_rows: np.ndarray,
    outer: list[tuple[np.ndarray, np.ndarray]],
    k: int,
    validation: float | None,
    seed: int,
) -> list[Fold]:
    """For each outer split (tr, va) of the training rows: its ``nested_test`` fold, then ``k``
    ``nested_cv`` folds of ``tr`` (stratified for classification, shuffled with ``seed``)."""
    folds = []
    for o, (tr, va) in enumerate(outer):
        rows = train_rows[tr]
        held_out = (data.x[train_rows[va]], data.y[train_rows[va]])
        folds.append(
            _fold(f"nest{o}", "nested_test", o, data, config, (data.x[rows], data.y[rows]), held_out, validation, seed)
        )
        inner = _splitter(data, k, "selection.folds", rows, seed)
        strat = data.y[rows] if data.task == "classification" else None
        for i, (itr, iva) in enumerate(inner.split(data.x[rows], strat)):
            train = (data.x[rows[itr]], data.y[rows[itr]])
            folds.append(
                _fold(
                    f"nest{o}cv{i}",
                    "nested_cv",
                    o,
                    data,
                    config,
                    train,
                    (data.x[rows[iva]], data.y[rows[iva]]),
                    validation,
                    seed,
                )
            )
    return folds
