"""Mixing samples and their targets: mixup and CutMix, returning (inputs, soft targets).

Pure functions (new tensors out, the caller's never changed in place, keyword-only ``generator``) and
frozen configs for ``noisereg.sites.attach(model, Mixup(0.2, num_classes=10), at="targets")``, whose
handle is called as ``x, y = handle(x, y)`` and mixes in training only.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import torch
from torch import Tensor

from noisereg._checks import check_int, check_real
from noisereg._compat.torch_private import beta_symmetric
from noisereg.layers import NoiseLayer
from noisereg.noise.base import NoiseKind, check_generator, draw_dtype, torch_generator
from noisereg.schedules import Schedule
from noisereg.seeding import NoiseGenerator
from noisereg.sites.labels import as_soft, class_count

__all__ = ["mixup", "cutmix", "MixingKind", "Mixup", "CutMix", "MixingLayer"]


def _check_alpha(alpha: object) -> float:
    return check_real(alpha, "alpha", low=0.0)


def _check_pair(x: Tensor, y: Tensor, *, kind: str, min_dims: int) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < min_dims:
        got = f"dtype={x.dtype}, shape={list(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{kind}: x must be a float tensor with at least {min_dims} dims, got {got}")
    if not isinstance(y, Tensor) or y.dim() == 0 or y.shape[0] != x.shape[0]:
        found = list(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"{kind}: y must be a tensor with the batch size {x.shape[0]} of x first, got {found}")


def _mixing_targets(y: Tensor, num_classes: int | None, dtype: torch.dtype) -> Tensor:
    """Targets as floats to mix: one-hot for class ids, soft targets or regression values as given."""
    if y.is_floating_point():
        return y.to(dtype)
    return as_soft(y, class_count(y, num_classes), dtype)


def _draw_lambda(
    alpha: float, n: int, dtype: torch.dtype, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    return beta_symmetric(alpha, n, generator=generator, device=device).to(dtype)


def _by_sample(values: Tensor, ndim: int) -> Tensor:
    return values.reshape((-1,) + (1,) * (ndim - 1))


def mixup(
    x: Tensor,
    y: Tensor,
    alpha: float,
    *,
    num_classes: int | None = None,
    per_sample: bool = False,
    generator: NoiseGenerator | None = None,
) -> tuple[Tensor, Tensor]:
    """mixup (Zhang et al. 2018): x̃ = λ·x + (1 − λ)·x[π], ỹ = λ·y + (1 − λ)·y[π], λ ~ Beta(α, α).

    π is a random permutation of the batch, so any batch size works (odd ones too; a batch of one
    mixes with itself). One λ per batch as in the paper, or one per sample with ``per_sample=True``.
    y may be class ids (turned into one-hot, ``num_classes`` required), soft targets, or regression
    values; the soft targets of a row sum to one when y's rows do. New tensors are returned; x and y
    are never changed. α = 0 returns (x, y) unchanged.

    Args:
        x: float inputs [batch, ...].
        y: targets [batch] (class ids or regression values) or soft targets [batch, C].
        alpha: α >= 0 of Beta(α, α).
        num_classes: C, required with class ids.
        per_sample: one λ per sample instead of one per batch.
        generator: a noisereg Stream (CPU) or torch.Generator; None: torch's global one.

    Returns:
        ``(x̃, ỹ)``, new tensors; ỹ is float.

    Raises:
        TypeError, ValueError: x not floating point, x and y of different batch sizes, α negative,
            class ids without ``num_classes``.

    >>> x, y = torch.eye(4), torch.tensor([0, 1, 0, 1])
    >>> xm, ym = mixup(x, y, 0.2, num_classes=2, generator=torch.Generator().manual_seed(0))
    >>> xm.shape, ym.shape, bool(torch.allclose(ym.sum(1), torch.ones(4)))
    (torch.Size([4, 4]), torch.Size([4, 2]), True)
    """
    _check_pair(x, y, kind="mixup", min_dims=1)
    alpha = _check_alpha(alpha)
    generator = torch_generator(check_generator(generator, x))
    if alpha == 0.0:
        return x, y
    dtype = draw_dtype(x)
    soft = _mixing_targets(y, num_classes, dtype)
    batch = x.shape[0]
    lam = _draw_lambda(alpha, batch if per_sample else 1, dtype, generator, x.device)
    perm = torch.randperm(batch, generator=generator, device=x.device)
    lx, ly = _by_sample(lam, x.dim()), _by_sample(lam, soft.dim())
    mixed_x = (lx * x.to(dtype) + (1.0 - lx) * x[perm].to(dtype)).to(x.dtype)
    return mixed_x, ly * soft + (1.0 - ly) * soft[perm]


def _box_span(size: int, cut: Tensor, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """[n, size] booleans: positions inside a span of length ``cut`` centred at a uniform position."""
    centre = torch.randint(0, size, cut.shape, generator=generator, device=device)
    low = centre - cut // 2
    pos = torch.arange(size, device=device)
    return (pos >= low.clamp(0, size)[:, None]) & (pos < (low + cut).clamp(0, size)[:, None])


def cutmix(
    x: Tensor,
    y: Tensor,
    alpha: float,
    *,
    num_classes: int | None = None,
    per_sample: bool = False,
    generator: NoiseGenerator | None = None,
) -> tuple[Tensor, Tensor]:
    """CutMix (Yun et al. 2019): paste a box of x[π] into x; mix targets by the box's area.

    x has shape [batch, ..., H, W] (boxes cut from the last two dims). λ ~ Beta(α, α); a box of sides
    ⌊H·√(1 − λ)⌋ × ⌊W·√(1 − λ)⌋ centred at a uniform pixel, clipped to the image, is taken from x[π];
    then λ = 1 − box area / (H·W) (the clipped area) and ỹ = λ·y + (1 − λ)·y[π]. One box per batch, or
    one per sample with ``per_sample=True``. Any batch size works; x and y are never changed.

    Args:
        x: float images [batch, ..., H, W].
        y, alpha, num_classes, per_sample, generator: as :func:`mixup`.

    Returns:
        ``(x̃, ỹ)``, new tensors; ỹ is float.

    Raises:
        TypeError, ValueError: as :func:`mixup`, and for x with fewer than three dimensions.

    >>> x, y = torch.zeros(2, 1, 4, 4), torch.tensor([0, 1])
    >>> xm, ym = cutmix(x, y, 1.0, num_classes=2, generator=torch.Generator().manual_seed(0))
    >>> xm.shape, ym.shape
    (torch.Size([2, 1, 4, 4]), torch.Size([2, 2]))
    """
    _check_pair(x, y, kind="cutmix", min_dims=3)
    alpha = _check_alpha(alpha)
    generator = torch_generator(check_generator(generator, x))
    if alpha == 0.0:
        return x, y
    dtype, device = draw_dtype(x), x.device
    soft = _mixing_targets(y, num_classes, dtype)
    batch, (height, width) = x.shape[0], x.shape[-2:]
    n = batch if per_sample else 1
    lam = _draw_lambda(alpha, n, torch.float64, generator, device)
    perm = torch.randperm(batch, generator=generator, device=device)
    side = torch.sqrt(1.0 - lam)
    inside = [_box_span(size, (size * side).floor().long(), generator, device) for size in (height, width)]
    box = inside[0][:, :, None] & inside[1][:, None, :]
    area = box.sum(dim=(1, 2)).to(dtype) / (height * width)
    box = box.reshape((n,) + (1,) * (x.dim() - 3) + (height, width))
    ly = _by_sample(1.0 - area, soft.dim())
    return torch.where(box, x[perm], x), ly * soft + (1.0 - ly) * soft[perm]


@dataclasses.dataclass(frozen=True)
class MixingKind(NoiseKind):
    """Base of the mixing configs: a noise kind on a pair, ``kind(x, y, step=..., generator=...)``."""

    alpha: float | Schedule = 1.0
    num_classes: int | None = None
    per_sample: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_classes is not None:
            check_int(self.num_classes, "num_classes", low=1)

    def __call__(  # type: ignore[override]
        self, x: Tensor, y: Tensor, *, step: int = 0, generator: NoiseGenerator | None = None
    ) -> tuple[Tensor, Tensor]:
        kwargs: dict[str, Any] = self.resolved(step)
        alpha = kwargs.pop(self.strength_field)
        # A mixing kind's function returns the pair, which the base's signature does not say.
        return cast(tuple[Tensor, Tensor], type(self).function(x, y, alpha, generator=generator, **kwargs))


@dataclasses.dataclass(frozen=True)
class Mixup(MixingKind, kind="mixup"):
    """Config of :func:`mixup` (α = 0.2 by default).

    Fields: the parameters of :func:`mixup` but ``x``, ``y`` and ``generator``; ``alpha`` may be a
    :class:`~noisereg.schedules.Schedule`. Called as ``kind(x, y, step=..., generator=...)``.

    Raises:
        TypeError, ValueError: as :func:`mixup`, when the config is made (a schedule: by its range).

    >>> Mixup(alpha=0.0)(torch.ones(2, 3), torch.tensor([0.5, 1.5]))[1].tolist()
    [0.5, 1.5]
    """

    alpha: float | Schedule = 0.2

    function = staticmethod(mixup)  # type: ignore[assignment]  # (x, y, alpha) -> the mixed pair


@dataclasses.dataclass(frozen=True)
class CutMix(MixingKind, kind="cutmix"):
    """Config of :func:`cutmix` (α = 1 by default, as in the paper).

    Fields: the parameters of :func:`cutmix` but ``x``, ``y`` and ``generator``; ``alpha`` may be a
    :class:`~noisereg.schedules.Schedule`. Called as ``kind(x, y, step=..., generator=...)``.

    Raises:
        TypeError, ValueError: as :func:`cutmix`, when the config is made (a schedule: by its range).

    >>> CutMix(alpha=0.0)(torch.ones(2, 1, 2, 2), torch.tensor([0.5, 1.5]))[1].tolist()
    [0.5, 1.5]
    """

    alpha: float | Schedule = 1.0

    function = staticmethod(cutmix)  # type: ignore[assignment]  # (x, y, alpha) -> the mixed pair


class MixingLayer(NoiseLayer):
    """A :class:`~noisereg.layers.NoiseLayer` for a mixing kind: ``forward(x, y) -> (x̃, ỹ)``.

    Same switch, clock, seed and counter as every noise layer: mixes in training (or when forced on by
    ``noise_enabled``), returns ``(x, y)`` unchanged otherwise and at α = 0.
    """

    def __init__(self, kind: MixingKind, *, seed: int | None = None) -> None:
        if not isinstance(kind, MixingKind):
            raise TypeError(f"kind must be Mixup or CutMix, got {type(kind).__name__}")
        super().__init__(kind, seed=seed)

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        if not self.active:
            return x, y
        step = self._advance()
        if self.kind.is_off(step):
            return x, y
        self._count()
        # __init__ admits mixing kinds only.
        return cast(MixingKind, self.kind)(x, y, step=step, generator=self.generator(x.device))
