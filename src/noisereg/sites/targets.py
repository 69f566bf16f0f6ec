"""Noise on training labels: label smoothing, label flips, DisturbLabel, and regression-target noise.

Each noise is a pure tensor function (new tensors out, the caller's tensors never changed in place,
keyword-only ``generator``) and a small frozen config for ``noisereg.sites.attach(model, config,
at="targets")``, whose handle applies it in training only.

Labels come as integer class indices of any shape ``[batch, ...]`` or as soft targets, floating
point with the classes on the last dimension ``[batch, ..., C]``. Strengths are numbers or tensors of
shape ``[batch]`` (one per sample, as everywhere in noisereg).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
from collections.abc import Mapping
from typing import Literal, cast

import torch
from torch import Tensor

from noisereg._checks import check_int
from noisereg.noise.additive import gaussian
from noisereg.noise.base import NoiseKind, check_generator, check_strength, is_identity, torch_generator
from noisereg.schedules import Schedule
from noisereg.seeding import NoiseGenerator

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
Pattern = Literal["symmetric", "pair", "uniform"] | Mapping[int, int] | Tensor

#: Patrini et al. 2017's asymmetric noise for MNIST: 2→7, 3→8, 5↔6, 7→1 (other digits never flip).
PATRINI_MNIST: Mapping[int, int] = types.MappingProxyType({2: 7, 3: 8, 5: 6, 6: 5, 7: 1})

_PATTERNS = ("symmetric", "pair", "uniform")


def class_count(y: Tensor, num_classes: int | None) -> int:
    """The class count: from soft targets' last dimension, else ``num_classes`` (required for ids)."""
    if not isinstance(y, Tensor):
        raise TypeError(f"targets must be a torch.Tensor, got {type(y).__name__}")
    if y.is_floating_point():
        if y.dim() < 2:
            raise ValueError(
                f"soft targets must have shape [batch, ..., classes], got {list(y.shape)}; "
                "class indices must be an integer tensor"
            )
        if num_classes is not None and num_classes != y.shape[-1]:
            raise ValueError(f"{num_classes=} does not match the soft targets' last dimension {y.shape[-1]}")
        return y.shape[-1]
    if y.dtype == torch.bool or y.is_complex():
        raise TypeError(f"targets must be integer class indices or float soft targets, got dtype={y.dtype}")
    if num_classes is None:
        raise ValueError("num_classes is required with integer class indices (e.g. num_classes=10)")
    return check_int(num_classes, "num_classes", low=1)


def _check_ids(y: Tensor, classes: int, ignore_index: int | None) -> None:
    if torch.compiler.is_compiling() or y.numel() == 0:
        return
    valid = (y >= 0) & (y < classes)
    if ignore_index is not None:
        valid |= y == ignore_index
    if not bool(valid.all()):
        bad = y[~valid][:3].tolist()
        ignored = "" if ignore_index is None else f" (or {ignore_index=})"
        raise ValueError(f"class indices must be in [0, {classes}){ignored}, got {bad}")


def as_soft(y: Tensor, classes: int, dtype: torch.dtype | None = None) -> Tensor:
    """Float targets with classes on the last dim: one-hot for ids, ``y`` itself for soft targets."""
    if y.is_floating_point():
        return y
    _check_ids(y, classes, None)
    out = torch.nn.functional.one_hot(y.long(), classes)
    return out.to(dtype or torch.get_default_dtype())


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


def _pattern_matrix(pattern: Pattern, classes: int, device: torch.device) -> Tensor:
    """The destination distribution D of a flipped label: row c is where a flipped c goes."""
    eye = torch.eye(classes, device=device)
    if isinstance(pattern, str):
        if pattern == "symmetric":
            if classes < 2:
                raise ValueError("pattern='symmetric' needs at least 2 classes")
            return (1.0 - eye) / (classes - 1)
        if pattern == "uniform":
            return torch.full((classes, classes), 1.0 / classes, device=device)
        return eye.roll(1, dims=1)
    if isinstance(pattern, Tensor):
        # A row of zeros means "never flips": the flipped label is the label itself.
        matrix = pattern.to(device=device, dtype=torch.float32)
        return matrix + torch.diag((matrix.sum(dim=1) == 0).to(matrix.dtype))
    matrix = eye.clone()
    for source, target in pattern.items():
        matrix[source] = eye[target]
    return matrix


def check_pattern(pattern: object, classes: int | None) -> Pattern:
    """Validate a flip pattern: a name, a {source: target} mapping or a [C, C] destination matrix."""
    if isinstance(pattern, str):
        if pattern not in _PATTERNS:
            raise ValueError(f"{pattern=} must be one of {_PATTERNS}, a mapping or a [C, C] tensor")
        return cast(Pattern, pattern)
    if isinstance(pattern, Tensor):
        ok = pattern.dim() == 2 and pattern.shape[0] == pattern.shape[1] and pattern.is_floating_point()
        if not ok or (classes is not None and pattern.shape[0] != classes):
            shape = list(pattern.shape)
            raise ValueError(f"pattern must be a float [C, C] matrix with C={classes}, got {shape}")
        sums = pattern.sum(dim=1)
        ones = (sums - 1.0).abs() < 1e-5
        if not bool((pattern >= 0).all() & (ones | (sums == 0)).all()):
            raise ValueError("pattern rows must be probabilities summing to 1 (or all 0: never flip)")
        return pattern
    if isinstance(pattern, (Mapping, tuple, list)):
        try:
            pairs = dict(pattern)
        except (TypeError, ValueError):
            raise TypeError(f"{pattern=} must be a mapping or a sequence of (source, target) pairs") from None
        limit = math.inf if classes is None else classes
        for k, v in pairs.items():
            for name, c in (("source", k), ("target", v)):
                if isinstance(c, bool) or not isinstance(c, numbers.Integral) or not 0 <= int(c) < limit:
                    raise ValueError(f"pattern {name} class {c!r} must be an int in [0, {limit})")
        return types.MappingProxyType(pairs)
    raise TypeError(
        "pattern must be a str, a mapping, (source, target) pairs or a tensor, "
        f"got {type(pattern).__name__}"
    )


def transition_matrix(num_classes: int, rate: float, pattern: Pattern = "symmetric") -> Tensor:
    """T[i, j] = P(noisy label j | clean label i) for :func:`flip_labels`: T = (1 − rate)·I + rate·D.

    D is the pattern's destination distribution; a class that a mapping does not name never flips.
    Use it for loss correction or to compute the expected realized flip rate 1 − Σ_i p_i T[i, i].

    Args:
        num_classes: C >= 2.
        rate: the flip probability in [0, 1].
        pattern: as :func:`flip_labels`.

    Returns:
        The [C, C] float matrix T; its rows sum to 1.

    Raises:
        TypeError, ValueError: ``num_classes``, ``rate`` or ``pattern`` out of range, naming it.

    >>> transition_matrix(2, 0.2)
    tensor([[0.8000, 0.2000],
            [0.2000, 0.8000]])
    """
    classes = check_int(num_classes, "num_classes", low=1)
    strength = check_strength(rate, name="rate", x=torch.empty(0), high=1.0)
    dest = _pattern_matrix(check_pattern(pattern, classes), classes, torch.device("cpu"))
    return (1.0 - strength) * torch.eye(classes) + strength * dest


def _draw_destinations(
    hard: Tensor, classes: int, pattern: Pattern, generator: torch.Generator | None
) -> Tensor:
    shape, device = hard.shape, hard.device
    if pattern == "symmetric":
        other = torch.randint(0, classes - 1, shape, generator=generator, device=device)
        return other + (other >= hard).to(other.dtype)
    if pattern == "uniform":
        return torch.randint(0, classes, shape, generator=generator, device=device)
    dest = _pattern_matrix(pattern, classes, device)
    if not isinstance(pattern, Tensor):
        return dest.argmax(dim=1)[hard]
    rows = dest[hard.reshape(-1)]
    return torch.multinomial(rows, 1, generator=generator).reshape(shape) if rows.numel() else hard


def flip_labels(
    y: Tensor,
    rate: float | Tensor,
    *,
    num_classes: int | None = None,
    pattern: Pattern = "symmetric",
    ignore_index: int | None = -100,
    generator: NoiseGenerator | None = None,
) -> Tensor:
    """Label noise: each label is flipped with probability ``rate`` to a class drawn from ``pattern``.

    P(flip) = rate exactly (one uniform draw per label), so the realized rate is the stated one in
    expectation. Where a flipped label goes:

    - ``"symmetric"`` (default): uniformly to one of the C − 1 other classes (rate/(C − 1) each);
    - ``"pair"``: c → (c + 1) mod C;
    - ``"uniform"``: uniformly over all C classes, itself included (DisturbLabel);
    - a mapping ``{source: target}``, e.g. :data:`PATRINI_MNIST`; unnamed classes never flip;
    - a [C, C] tensor D: row c is the distribution of a flipped c (a zero row: never flips).

    Integer ids come back as ids of the same dtype; positions equal to ``ignore_index`` are kept.
    Soft targets come back as soft targets: a flip from the row's argmax a to b swaps columns a and b,
    so one-hot rows become the one-hot of b and smoothed rows stay smoothed.

    Paper: Patrini et al. 2017 (asymmetric maps); the flip rate is exact unlike some implementations.

    Args:
        y: class ids ``[batch, ...]`` or soft targets ``[batch, ..., C]``.
        rate: the flip probability in [0, 1]; a float or a tensor of shape [batch].
        num_classes: C, required with class ids.
        pattern: where a flipped label goes (above).
        ignore_index: a label left as it is (None: none).
        generator: a noisereg Stream (CPU) or torch.Generator; None: torch's global one.

    Returns:
        Noisy targets of y's shape and dtype, a new tensor.

    Raises:
        ValueError: ids outside [0, C), a rate outside [0, 1] or a malformed pattern.

    >>> flip_labels(torch.tensor([0, 1, 2]), 1.0, num_classes=3, pattern="pair").tolist()
    [1, 2, 0]
    """
    classes = class_count(y, num_classes)
    pattern = check_pattern(pattern, classes)
    soft_input = y.is_floating_point()
    if not soft_input:
        _check_ids(y, classes, ignore_index)
    hard = y.argmax(dim=-1) if soft_input else y.long()
    ignored = None if soft_input or ignore_index is None else hard == ignore_index
    if ignored is not None:
        hard = hard.masked_fill(ignored, 0)
    generator = torch_generator(check_generator(generator, y))
    u = torch.rand(hard.shape, generator=generator, device=y.device)
    rate = check_strength(rate, name="rate", x=u, high=1.0)
    if is_identity(rate, 0.0):
        return y
    if pattern == "symmetric" and classes < 2:
        raise ValueError("pattern='symmetric' needs at least 2 classes")
    dest = _draw_destinations(hard, classes, pattern, generator)
    flip = u < rate
    if ignored is not None:
        flip &= ~ignored
    if not soft_input:
        return torch.where(flip, dest, y.long()).to(y.dtype)
    new = torch.where(flip, dest, hard)
    cols = torch.arange(classes, device=y.device).expand(y.shape).clone()
    cols.scatter_(-1, hard.unsqueeze(-1), new.unsqueeze(-1))
    cols.scatter_(-1, new.unsqueeze(-1), hard.unsqueeze(-1))
    return y.gather(-1, cols)


def disturb_labels(
    y: Tensor,
    alpha: float | Tensor,
    *,
    num_classes: int | None = None,
    ignore_index: int | None = -100,
    generator: NoiseGenerator | None = None,
) -> Tensor:
    """DisturbLabel (Xie et al. 2016): with probability α a label is redrawn uniformly over all C classes.

    The redraw can land on the true class, so a label changes with probability α·(C − 1)/C. This is
    :func:`flip_labels` with ``pattern="uniform"``.

    Args:
        y: class ids [batch, ...]; alpha: in [0, 1]; num_classes: C; ignore_index: a label left as
        it is (e.g. -100); generator: a noisereg Stream (CPU) or torch.Generator.

    Returns:
        The noisy class ids, a new tensor of y's shape and dtype.

    Raises:
        TypeError, ValueError: as :func:`flip_labels`.

    >>> disturb_labels(torch.tensor([0, 1, 2]), 0.0, num_classes=3).tolist()
    [0, 1, 2]
    """
    return flip_labels(
        y, alpha, num_classes=num_classes, pattern="uniform", ignore_index=ignore_index, generator=generator
    )


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
