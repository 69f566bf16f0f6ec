"""Noisy activation functions (Gulcehre, Moczulski, Denil & Bengio 2016): noise where a unit saturates.

For a hard-saturating h with linearization u (hard tanh: h = clip(x, −1, 1), u = x; hard sigmoid:
h = clip(x/4 + 1/2, 0, 1), u = x/4 + 1/2) and Δ = h(x) − u(x) (zero in the linear regime):

    φ(x) = α·h(x) + (1 − α)·u(x) + d(x)·σ(x)·ξ,  d(x) = −sgn(x)·sgn(1 − α),  σ(x) = c·(sigmoid(p·Δ) − ½)²

ξ ~ N(0, 1), or |N(0, 1)| with ``half_normal=True`` (the noise then always points along d(x)). σ is 0
where the unit is not saturated, so the noise appears only where the gradient of h vanishes. p is
learned; c may follow a schedule (the paper anneals it). In eval mode ξ is replaced by its mean
(0, or √(2/π) for half-normal noise), the paper's deterministic test-time function. α ≠ 1 (α = 1
makes d(x) = 0: no noise).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
from torch import Tensor, nn

from noisereg._checks import check_int, check_real
from noisereg.layers import NoiseLayer
from noisereg.noise.base import NoiseKind, Strength, check_generator, check_input, check_strength, draw_dtype, randn
from noisereg.schedules import Schedule
from noisereg.seeding import NoiseGenerator

__all__ = ["noisy_hard_activation", "SaturationNoise", "NoisyHardTanh", "NoisyHardSigmoid"]

HardActivation = Literal["hard_tanh", "hard_sigmoid"]


def noisy_hard_activation(
    x: Tensor,
    c: Strength,
    *,
    activation: HardActivation = "hard_tanh",
    alpha: float = 1.15,
    half_normal: bool = True,
    p: float | Tensor = 1.0,
    expected: bool = False,
    generator: NoiseGenerator | None = None,
) -> Tensor:
    """φ(x) of the module docstring; ``expected=True`` uses E[ξ] instead of drawing ξ.

    Args:
        c: noise scale >= 0 (a float or a [batch] tensor); alpha: != 1, default 1.15 as the authors'
            code; p: learned slope, a float or a tensor broadcastable to x (e.g. one per feature).

    Raises:
        TypeError: x is not floating point. ValueError: ``c`` negative or not finite, ``alpha`` = 1 or
            not finite, an unknown ``activation``.

    >>> noisy_hard_activation(torch.tensor([0.5]), 0.5, expected=True)  # no noise inside [-1, 1]
    tensor([0.5000])
    """
    check_input(x, kind="noisy_hard_activation")
    if activation not in ("hard_tanh", "hard_sigmoid"):
        raise ValueError(f"{activation=} must be 'hard_tanh' or 'hard_sigmoid'")
    if check_real(alpha, "alpha") == 1:
        raise ValueError(f"{alpha=} must be a finite number other than 1 (alpha = 1 gives no noise)")
    c = check_strength(c, name="c", x=x)
    generator = check_generator(generator, x)
    dtype = draw_dtype(x)
    z = x.to(dtype)
    u = z if activation == "hard_tanh" else z * 0.25 + 0.5
    h = u.clamp(-1.0, 1.0) if activation == "hard_tanh" else u.clamp(0.0, 1.0)
    delta = h - u
    direction = -torch.sign(z) * math.copysign(1.0, 1.0 - alpha)
    sigma = c * (torch.sigmoid(p * delta) - 0.5).square()
    if expected:
        xi: Tensor | float = math.sqrt(2.0 / math.pi) if half_normal else 0.0
    else:
        xi = randn(z.shape, generator, dtype=dtype, device=z.device)
        xi = xi.abs() if half_normal else xi
    return (alpha * h + (1.0 - alpha) * u + direction * sigma * xi).to(x.dtype)


@dataclasses.dataclass(frozen=True)
class SaturationNoise(NoiseKind, kind="saturation"):
    """Config of :func:`noisy_hard_activation` (with p = 1; the modules learn p)."""

    c: float | Schedule | Tensor = 0.5
    activation: HardActivation = "hard_tanh"
    alpha: float = 1.15
    half_normal: bool = True

    function = staticmethod(noisy_hard_activation)

    def __post_init__(self) -> None:
        super().__post_init__()
        check = torch.zeros(1)
        noisy_hard_activation(check, 0.0, activation=self.activation, alpha=self.alpha, expected=True)


class _NoisyHard(NoiseLayer):
    activation: HardActivation

    def __init__(
        self,
        c: float | Schedule = 0.5,
        *,
        alpha: float = 1.15,
        half_normal: bool = True,
        num_features: int | None = None,
        seed: int | None = None,
    ) -> None:
        kind = SaturationNoise(c=c, activation=self.activation, alpha=alpha, half_normal=half_normal)
        super().__init__(kind, seed=seed)
        if num_features is not None:  # None: one p; an int: one p per feature
            check_int(num_features, "num_features", low=1)
        self.p = nn.Parameter(torch.ones(() if num_features is None else (num_features,)))

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        active = self.active
        step = self._advance() if active else self.step
        kwargs = self.kind.resolved(step)
        c = kwargs.pop("c")
        if active:
            self._count()
        return noisy_hard_activation(
            x, c, p=self.p, expected=not active, generator=self.generator(x.device) if active else None, **kwargs
        )


class NoisyHardTanh(_NoisyHard):
    """Hard tanh with noise where it saturates (|x| > 1); see the module docstring.

    Args:
        c: the noise scale, a number >= 0 or a schedule of the step (the paper anneals it).
        alpha: the slope mix α of the module docstring, a finite number other than 1.
        half_normal: draw ξ from |N(0, 1)|, so that the noise always points along d(x); else N(0, 1).
        num_features: None for one learned p, or an int >= 1 for one p per feature of the last dimension.
        seed: int >= 0 for a private, reproducible stream (as :class:`~noisereg.layers.NoiseLayer`).

    Raises:
        TypeError, ValueError: ``c``, ``alpha``, ``num_features`` or ``seed`` out of range, naming it.

    >>> NoisyHardTanh(seed=0).eval()(torch.tensor([0.5, 3.0])).shape
    torch.Size([2])
    """

    activation = "hard_tanh"


class NoisyHardSigmoid(_NoisyHard):
    """Hard sigmoid clip(x/4 + 1/2, 0, 1), noisy where it saturates (|x| > 2); see the module docstring.

    Args:
        c: the noise scale, a number >= 0 or a schedule of the step.
        alpha: the slope mix α of the module docstring, a finite number other than 1.
        half_normal: draw ξ from |N(0, 1)|; else N(0, 1).
        num_features: None for one learned p, or an int >= 1 for one p per feature of the last dimension.
        seed: int >= 0 for a private, reproducible stream.

    Raises:
        TypeError, ValueError: ``c``, ``alpha``, ``num_features`` or ``seed`` out of range, naming it.

    >>> NoisyHardSigmoid(seed=0)(torch.tensor([0.0])).tolist()  # no noise where it does not saturate
    [0.5]
    """

    activation = "hard_sigmoid"
