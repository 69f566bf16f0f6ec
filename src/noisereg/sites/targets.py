"""Noise on training labels: label smoothing, label flips, DisturbLabel, and regression-target noise.

Each noise is a pure tensor function (new tensors out, the caller's tensors never changed in place,
keyword-only ``generator``) and a small frozen config for ``noisereg.sites.attach(model, config,
at="targets")``, whose handle applies it in training only.

Labels come as integer class indices of any shape ``[batch, ...]`` or as soft targets, floating
point with the classes on the last dimension ``[batch, ..., C]`` (:mod:`noisereg.sites.labels`).
Strengths are numbers or tensors of shape ``[batch]`` (one per sample, as everywhere in noisereg).
Label smoothing, regression-target noise and the configs are here; the flips are in
:mod:`noisereg.sites.label_flips`, and importable from here too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

import torch  # noqa: F401 - the namespace of the doctests below
from torch import Tensor

from noisereg._checks import check_int
from noisereg.noise.additive import gaussian
from noisereg.noise.base import NoiseKind, check_strength, is_identity
from noisereg.schedules import Schedule
from noisereg.seeding import NoiseGenerator
from noisereg.sites.label_flips import PATRINI_MNIST, check_pattern, disturb_labels, flip_labels, transition_matrix
from noisereg.sites.labels import as_soft, class_count

__all__ = [
    "PATRINI_MNIST",
    "label_smoothing",
    "flip_labels",
    "disturb_labels",
    "transition_matrix",
    "regression_noise",
    "LabelSmoothing",
    "LabelFlip",
    "DisturbLabel",
]

Spread = Literal["all", "others"]


def label_smoothing(
    y: Tensor,
    epsilon: float | Tensor,
    *,
    num_classes: int | None = None,
    spread: Spread = "all",
    generator: NoiseGenerator | None = None,
) -> Tensor:
    """Label smoothing (Szegedy et al. 2016): soft targets that move mass ε off the labelled class.

    ``spread="all"`` (the default, as torch's ``cross_entropy(label_smoothing=ε)``):
    ỹ = (1 − ε)·y + ε/C. ``spread="others"``: ỹ = (1 − ε)·y + ε/(C − 1)·(1 − y), so the true class
    keeps exactly 1 − ε. y is the one-hot of integer ids or given soft targets; rows keep summing to 1.

    Args:
        y: class indices ``[batch, ...]`` or soft targets ``[batch, ..., C]``.
        epsilon: in [0, 1]; a float or a tensor of shape [batch].
        num_classes: C, required with class indices.
        spread: "all" or "others".
        generator: unused (label smoothing draws nothing); accepted so every target noise shares one
            signature.

    Returns float soft targets ``[batch, ..., C]`` (given soft targets themselves at ε = 0).

    Raises:
        TypeError, ValueError: ε outside [0, 1], class ids without ``num_classes`` or outside [0, C),
            an unknown ``spread``.

    >>> label_smoothing(torch.tensor([0]), 0.5, num_classes=2).tolist()
    [[0.75, 0.25]]
    """
    if spread not in ("all", "others"):
        raise ValueError(f"{spread=} must be 'all' or 'others'")
    classes = class_count(y, num_classes)
    soft = as_soft(y, classes)
    eps = check_strength(epsilon, name="epsilon", x=soft, high=1.0)
    if is_identity(eps, 0.0):
        return soft
    if spread == "all":
        return soft * (1.0 - eps) + eps / classes
    if classes < 2:
        raise ValueError("spread='others' needs at least 2 classes")
    return soft * (1.0 - eps) + (1.0 - soft) * (eps / (classes - 1))


def regression_noise(y: Tensor, std: float | Tensor, *, generator: NoiseGenerator | None = None) -> Tensor:
    """Noise on regression targets: ỹ = y + σ·ε, ε ~ N(0, I) (:func:`noisereg.noise.gaussian`).

    Args:
        y: float targets; std: >= 0, a float or a tensor of shape [batch]; generator: a noisereg
        Stream (CPU) or torch.Generator.

    Returns:
        The noisy targets, a new tensor (``y`` itself at ``std=0``).

    Raises:
        TypeError: y is not floating point. ValueError: std is negative, NaN or infinite.

    >>> regression_noise(torch.tensor([1.0, 2.0]), 0.0).tolist()
    [1.0, 2.0]
    """
    return gaussian(y, std, generator=generator)


def _check_fields(kind: NoiseKind) -> None:
    NoiseKind.__post_init__(kind)
    classes = getattr(kind, "num_classes", None)
    if classes is not None:
        check_int(classes, "num_classes", low=1)


@dataclasses.dataclass(frozen=True)
class LabelSmoothing(NoiseKind, kind="label_smoothing"):
    """Config of :func:`label_smoothing`; ``spread="all"`` (torch's formula) by default.

    Fields: the parameters of :func:`label_smoothing` but the targets and ``generator``; the strength may be a
    :class:`~noisereg.schedules.Schedule`. Called on the targets: ``kind(y, step=..., generator=...)``.

    Raises:
        TypeError, ValueError: as :func:`label_smoothing`, when the config is made (a schedule: by its range).

    >>> LabelSmoothing(epsilon=0.1, num_classes=2)(torch.tensor([0]))
    tensor([[0.9500, 0.0500]])
    """

    epsilon: float | Schedule | Tensor = 0.1
    num_classes: int | None = None
    spread: Spread = "all"

    # The target is named y, not x: a signature the base's (x, *args, **kwargs) does not cover.
    function = staticmethod(label_smoothing)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.spread not in ("all", "others"):
            raise ValueError(f"spread={self.spread!r} must be 'all' or 'others'")
        _check_fields(self)


@dataclasses.dataclass(frozen=True)
class LabelFlip(NoiseKind, kind="label_flip"):
    """Config of :func:`flip_labels`: flip with probability ``rate`` along ``pattern``.

    A mapping pattern is stored as sorted ``(source, target)`` pairs so the config stays hashable.

    Fields: the parameters of :func:`flip_labels` but the targets and ``generator``; the strength may be a
    :class:`~noisereg.schedules.Schedule`. Called on the targets: ``kind(y, step=..., generator=...)``.

    Raises:
        TypeError, ValueError: as :func:`flip_labels`, when the config is made (a schedule: by its range).

    >>> LabelFlip(rate=0.0, num_classes=3)(torch.tensor([0, 1, 2])).tolist()
    [0, 1, 2]
    """

    rate: float | Schedule | Tensor = 0.1
    num_classes: int | None = None
    pattern: Literal["symmetric", "pair", "uniform"] | tuple[tuple[int, int], ...] | Tensor = "symmetric"
    ignore_index: int | None = -100

    # The target is named y, not x: a signature the base's (x, *args, **kwargs) does not cover.
    function = staticmethod(flip_labels)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        pattern = check_pattern(self.pattern, self.num_classes)
        if isinstance(pattern, Mapping):
            object.__setattr__(self, "pattern", tuple(sorted(pattern.items())))
        _check_fields(self)


@dataclasses.dataclass(frozen=True)
class DisturbLabel(NoiseKind, kind="disturb_label"):
    """Config of :func:`disturb_labels`: redraw over all C classes with probability ``alpha``.

    Fields: the parameters of :func:`disturb_labels` but the targets and ``generator``; the strength may be a
    :class:`~noisereg.schedules.Schedule`. Called on the targets: ``kind(y, step=..., generator=...)``.

    Raises:
        TypeError, ValueError: as :func:`disturb_labels`, when the config is made (a schedule: by its range).

    >>> DisturbLabel(alpha=0.0, num_classes=3)(torch.tensor([0, 1, 2])).tolist()
    [0, 1, 2]
    """

    alpha: float | Schedule | Tensor = 0.1
    num_classes: int | None = None
    ignore_index: int | None = -100

    # The target is named y, not x: a signature the base's (x, *args, **kwargs) does not cover.
    function = staticmethod(disturb_labels)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        _check_fields(self)
