"""The user's own data, loss and model factory, checked and turned into what the per-replica loop takes.

Torch is imported here (the user's objects are torch objects); nothing is trained.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset, TensorDataset

from noisereg._checks import about, check_int
from noisereg.engine.loop import Part
from noisereg.seeding import derive_seed

__all__ = [
    "UserFold",
    "as_factory",
    "check_targets",
    "describe_part",
    "import_object",
    "infer_task",
    "make_loss",
    "split_data",
    "training_part",
]

_CLASSIFICATION_LOSSES = (nn.CrossEntropyLoss, nn.NLLLoss, nn.BCELoss, nn.BCEWithLogitsLoss)
_REGRESSION_LOSSES = (nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss)


@dataclasses.dataclass(frozen=True)
class UserFold:
    """One train/test split of the user's data; ``role`` as in :class:`noisereg.study.data.Fold`."""

    train: Part
    test: Part
    role: str = "test"


def import_object(path: str, *, name: str) -> Any:
    """The object named ``"package.module:attribute"``; raises ValueError naming ``name`` otherwise."""
    if not isinstance(path, str) or path.count(":") != 1:
        raise ValueError(f"{name}={path!r} must be an import path 'package.module:attribute'")
    module_name, attribute = path.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{name}={path!r}: cannot import module {module_name!r} ({exc})") from exc
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{name}={path!r}: module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    return target


def as_factory(model: Any) -> Callable[[], nn.Module]:
    """A zero-argument factory of fresh modules: ``model`` itself if it is a callable, else (a module)
    a deep copy whose every submodule with ``reset_parameters`` is re-initialized (under the caller's
    seeded generator). Raises TypeError for anything else, and when the factory returns a non-module."""
    if isinstance(model, nn.Module):
        template = copy.deepcopy(model)

        def fresh() -> nn.Module:
            module = copy.deepcopy(template)
            for sub in module.modules():
                if callable(getattr(sub, "reset_parameters", None)):
                    # checked callable above; nn.Module's attribute typing says Tensor | Module
                    cast(Any, sub).reset_parameters()
            return module

        return fresh
    if not callable(model):
        raise TypeError(
            f"model must be an nn.Module or a function returning one (e.g. lambda: MyNet()), got {type(model).__name__}"
        )

    def built() -> nn.Module:
        module = model()
        if not isinstance(module, nn.Module):
            raise TypeError(f"model() must return an nn.Module, got {type(module).__name__}")
        return module

    return built


def _check_finite(values: Tensor, label: str, name: str) -> None:
    # a NaN trains without an error and turns every weight it reaches into NaN
    if values.is_floating_point() and len(values) and not bool(torch.isfinite(values).all()):
        bad = (~torch.isfinite(values)).reshape(len(values), -1).any(1).nonzero().flatten()
        raise ValueError(
            f"{name}: {label} has NaN or infinite values in {len(bad)} sample(s) (the first: sample "
            f"{int(bad[0])}); remove or impute them before the study"
        )


def _as_part(value: Any, *, name: str) -> Part:
    if isinstance(value, TensorDataset):  # its tensors are at hand; another Dataset is read only to train
        for i, tensor in enumerate(value.tensors):
            _check_finite(tensor, f"tensors[{i}]", name)
    if isinstance(value, Dataset):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2:
        x, y = (torch.as_tensor(np.asarray(v)) if not isinstance(v, Tensor) else v for v in value)
        if x.is_floating_point() is False and x.dtype != torch.long:
            x = x.to(torch.float32)
        if len(x) != len(y):
            raise ValueError(f"{name}: x has {len(x)} samples but y has {len(y)}")
        if len(x) == 0:
            raise ValueError(f"{name}: no samples")
        _check_finite(x, "x", name)
        _check_finite(y, "y", name)
        return (x, y)
    raise TypeError(f"{name} must be (x, y) tensors or arrays, or a torch Dataset, got {type(value).__name__}")


def training_part(data: Any) -> Part:
    """The part of ``data`` that trains (all of it when it is one set), for inferring the task."""
    if isinstance(data, Mapping) and "train" in data:
        return _as_part(data["train"], name="data['train']")
    return _as_part(data, name="data")


def _labels(part: Part) -> Tensor | None:
    if isinstance(part, tuple):
        return part[1]
    targets = getattr(part, "targets", None)
    return torch.as_tensor(np.asarray(targets)) if targets is not None else None


def infer_task(loss: Any, part: Part) -> str:
    """``classification`` or ``regression``: from a known loss, else from the dtype of the labels."""
    if loss in ("ce", "bce") or isinstance(loss, _CLASSIFICATION_LOSSES):
        return "classification"
    if loss == "mse" or isinstance(loss, _REGRESSION_LOSSES):
        return "regression"
    labels = _labels(part)
    if labels is None:
        raise ValueError("task='auto' cannot tell classification from regression for this loss and data: pass task=")
    return "regression" if labels.is_floating_point() else "classification"


class ShapedLoss:
    """torch's ``BCEWithLogitsLoss`` (``bce``) or ``MSELoss`` (``mse``), mean over the batch, with the
    targets reshaped to the outputs. ``noisereg_loss`` names it for the engine, which computes these
    two in closed form for an MLP (:mod:`noisereg.engine.lowering`)."""

    def __init__(self, name: str) -> None:
        self.noisereg_loss = name
        self._fn = nn.BCEWithLogitsLoss() if name == "bce" else nn.MSELoss()

    def __call__(self, out: Tensor, y: Tensor) -> Tensor:
        return self._fn(out, y.to(out.dtype).reshape(out.shape))

    def __repr__(self) -> str:
        return f"ShapedLoss({self.noisereg_loss!r})"


def make_loss(loss: Any, task: str) -> tuple[str, Callable[[Tensor, Tensor], Tensor], float]:
    """(name, loss function, decision threshold of a single output) of ``loss``: a name (``ce``,
    ``bce`` = BCEWithLogits, ``mse``, ``auto``) or the user's callable. ``bce``/``mse`` reshape the
    targets to the outputs; ``nn.BCELoss`` (probabilities) thresholds at 0.5, everything else at 0."""
    if loss == "auto":
        loss = "ce" if task == "classification" else "mse"
    if loss == "ce":
        return "ce", nn.CrossEntropyLoss(), 0.0
    if loss in ("bce", "mse"):
        return loss, ShapedLoss(loss), 0.0
    if isinstance(loss, str) or not callable(loss):
        raise ValueError(f"loss={loss!r} must be 'auto', 'ce', 'bce', 'mse' or a callable loss(outputs, targets)")
    name = type(loss).__name__ if isinstance(loss, nn.Module) else getattr(loss, "__qualname__", repr(loss))
    return name, loss, 0.5 if isinstance(loss, nn.BCELoss) else 0.0


def _subset(part: Part, index: np.ndarray) -> Part:
    if isinstance(part, tuple):
        i = torch.as_tensor(index, dtype=torch.long)
        return (part[0][i], part[1][i])
    return Subset(part, index.tolist())


def split_data(data: Any, folds: int | None, task: str, seed: int) -> tuple[list[UserFold], Part]:
    """The folds of ``data`` and its training part (for checks). ``data``: ``{"train": ..., "test": ...}``
    (one holdout split), or one part with ``folds`` = k >= 2: k-fold (stratified for classification
    with known labels), shuffled with ``derive_seed(seed, "folds")``; each sample is tested once."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if isinstance(data, Mapping):
        unknown = set(data) - {"train", "test"}
        if unknown or "train" not in data or "test" not in data:
            raise ValueError(f"data as a dict needs exactly the keys 'train' and 'test', got {sorted(data)}")
        if folds is not None:
            with about("folds"):
                raise ValueError(
                    f"folds={folds} splits one data set; data already has 'train' and 'test' parts: pass folds=None"
                )
        train, test = _as_part(data["train"], name="data['train']"), _as_part(data["test"], name="data['test']")
        return [UserFold(train, test)], train
    part = _as_part(data, name="data")
    n = len(part[0]) if isinstance(part, tuple) else len(part)  # type: ignore[arg-type]
    labels = _labels(part)
    with about("folds"):
        if folds is None:
            raise ValueError(
                "folds=None: data is one set; pass folds=k (k >= 2) for k-fold, or data={'train': ..., 'test': ...}"
            )
        folds = check_int(folds, "folds", low=2)
        if folds > n:
            raise ValueError(f"folds={folds} is more than the {n} samples of data: each test fold needs one")
        if task == "classification" and labels is not None:
            values, counts = torch.unique(labels, return_counts=True)
            fewest = int(counts.min())
            if fewest < folds:
                rare = values[counts.argmin()].item()
                fix = f"pass folds <= {fewest}" if fewest >= 2 else f"add samples of class {rare!r} or drop it"
                raise ValueError(
                    f"folds={folds} is more than the {fewest} sample(s) of class {rare!r} in data: "
                    f"stratified folds put every class in each test fold; {fix}"
                )
    state = derive_seed(seed, "folds") % (2**32)
    if task == "classification" and labels is not None:
        splitter: Any = StratifiedKFold(n_splits=folds, shuffle=True, random_state=state)
        pieces = splitter.split(np.zeros(n), labels.numpy())
    else:
        pieces = KFold(n_splits=folds, shuffle=True, random_state=state).split(np.zeros(n))
    return [UserFold(_subset(part, tr), _subset(part, te)) for tr, te in pieces], part


def check_targets(part: Part, task: str, loss: str, *, name: str = "data") -> None:
    """Refuse labels that ``loss`` cannot train on, before training: a classification with fewer than
    two classes, ``ce`` on labels that are not class indices, ``bce`` on labels other than 0 and 1.
    ``name`` is the argument that holds ``part``; a Dataset without ``targets`` is not checked."""
    labels = _labels(part)
    if task != "classification" or labels is None:
        return
    classes = [v.item() for v in torch.unique(labels)]
    if len(classes) < 2:
        with about("data"):
            raise ValueError(f"{name}: y has the single class {classes}; a classification study needs two or more")
    if loss == "ce" and (labels.is_floating_point() or labels.is_complex() or classes[0] < 0):
        raise ValueError(
            f"loss='ce' needs class indices 0, 1, ... as labels, but y of {name} has dtype {labels.dtype} "
            f"and classes {classes[:5]}{' ...' if len(classes) > 5 else ''}"
        )
    if loss == "bce" and not set(classes) <= {0, 1}:
        shown = f"{classes[:5]}{' ...' if len(classes) > 5 else ''}"
        hint = "loss='ce' (several classes)" if len(classes) > 2 else "labels 0 and 1"
        raise ValueError(
            f"loss='bce' needs labels 0 and 1, but y of {name} has {len(classes)} classes {shown}: use {hint}"
        )


def describe_part(part: Part, task: str) -> dict[str, Any]:
    """Sizes, feature shape and classes of one part (for the study's stored metadata)."""
    out: dict[str, Any] = {"n": len(part[0]) if isinstance(part, tuple) else len(part)}  # type: ignore[arg-type]
    labels = _labels(part)
    if task == "classification" and labels is not None:
        out["classes"] = [v.item() for v in torch.unique(labels)]
    if isinstance(part, tuple):
        out["features"] = list(part[0].shape[1:])
    return out
