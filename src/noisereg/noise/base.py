"""What every noise kind shares: input checks, strength broadcasting, clip and mask, the config base.

Conventions that hold for every kind (and that the contract suite in ``tests/noise`` checks):

- ``x`` must be a floating-point tensor. Integer or boolean tensors (token ids, labels) raise a
  ``TypeError``: put noise on embeddings or targets instead.
- A strength is a Python number or a tensor of shape ``[batch]``, broadcast along dim 0. A stack of
  replicas ``[replicas, batch, ...]`` therefore takes one strength per replica.
- ``mask`` is a boolean tensor broadcastable to ``x``; ``True`` marks a position left untouched
  (padding). ``clip=(low, high)`` clamps the noisy output; neither is applied where no noise is.
- dtype and device are kept. Noise is drawn in the input's dtype for float32/float64 and in float32 for
  float16/bfloat16 inputs (bf16 draws on CPU have clipped tails), then cast back to the input's dtype.
- At the identity strength (``std=0``, ``rate=0``, ``snr_db=inf``, ...) the input itself is returned.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, ClassVar, cast

import torch
from torch import Tensor

from noisereg._checks import check_real, expected_range
from noisereg._compat.torch_private import values_readable
from noisereg.noise.kinds import KINDS
from noisereg.schedules import Schedule, resolve, span
from noisereg.seeding import NoiseGenerator
from noisereg.streams import Stream

__all__ = ["NoiseKind", "Strength", "Clip"]

Strength = float | Tensor
Clip = tuple[float, float] | None

_LOW_PRECISION = (torch.float16, torch.bfloat16)
_NO_INPUT = torch.empty(0)  # the x that check_strength needs when a config is checked without one


def check_input(x: object, *, kind: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{kind} noise: x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        hint = (
            " Token ids and labels cannot take additive noise: use embedding noise"
            " (noisereg.attach(..., at='embeddings')) or target noise instead."
        )
        raise TypeError(f"{kind} noise: x must be a floating-point tensor, got dtype={x.dtype}.{hint}")
    return x


def can_inspect_values(tensor: Tensor) -> bool:
    """Whether ``tensor``'s values may be read for validation: not while compiling or under vmap/grad
    transforms, where data-dependent checks either break the graph or are refused."""
    return not torch.compiler.is_compiling() and values_readable(tensor)


def draw_dtype(x: Tensor) -> torch.dtype:
    return torch.float32 if x.dtype in _LOW_PRECISION else x.dtype


def check_strength(
    value: object,
    *,
    name: str,
    x: Tensor,
    low: float = 0.0,
    low_open: bool = False,
    high: float = math.inf,
    high_open: bool = False,
    allow_inf: bool = False,
) -> Strength:
    """Validate a scalar or per-sample strength; return it as a float or a tensor broadcast to ``x``.

    Per-sample tensors are checked only where their values can be read (see can_inspect_values).
    """
    expected = expected_range(low, high, low_open=low_open, high_open=high_open, allow_inf=allow_inf)
    if isinstance(value, Tensor):
        if value.dim() > 1 or (value.dim() == 1 and x.dim() >= 1 and value.shape[0] not in (1, x.shape[0])):
            raise ValueError(
                f"{name} must be a number or a tensor of shape [batch]={list(x.shape[:1])}, "
                f"got shape {list(value.shape)}"
            )
        value = value.to(dtype=draw_dtype(x), device=x.device)
        if can_inspect_values(value):
            finite_ok = torch.isfinite(value) | (allow_inf & torch.isinf(value) & (value > 0))
            above = value > low if low_open else value >= low
            below = value < high if high_open else value <= high
            if not bool((finite_ok & above & below).all()):
                bad = value[~(finite_ok & above & below)][:3].tolist()
                raise ValueError(f"{name} must be {expected}, got values {bad}")
        return value.reshape((-1,) + (1,) * (x.dim() - 1)) if value.dim() == 1 else value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}={value!r} must be a float or a tensor of shape [batch]")
    return check_real(value, name, low=low, high=high, low_open=low_open, high_open=high_open, allow_inf=allow_inf)


def check_main_strength(value: object, *, kind: str, x: Tensor) -> Strength:
    """:func:`check_strength` for the main strength of ``kind``, with the bounds of its entry in the table of kinds."""
    entry = KINDS[kind]
    return check_strength(value, name=entry.strength, x=x, **entry.bounds)


def is_identity(value: object, identity: float) -> bool:
    """True when a scalar strength equals the kind's identity value (tensors are never short-cut)."""
    return not isinstance(value, Tensor) and value == identity


def check_mask(mask: object, x: Tensor) -> Tensor | None:
    if mask is None:
        return None
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = f"dtype={mask.dtype}" if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"mask must be a bool tensor (True = leave untouched), got {got}")
    try:
        torch.broadcast_shapes(mask.shape, x.shape)
    except RuntimeError:
        raise ValueError(f"mask of shape {list(mask.shape)} does not broadcast to x of shape {list(x.shape)}") from None
    if torch.broadcast_shapes(mask.shape, x.shape) != x.shape:
        raise ValueError(f"mask of shape {list(mask.shape)} would enlarge x of shape {list(x.shape)}")
    return mask


def check_clip(clip: object) -> Clip:
    if clip is None:
        return None
    if (
        not isinstance(clip, (tuple, list))
        or len(clip) != 2
        or not all(isinstance(c, numbers.Real) and not isinstance(c, bool) for c in clip)
    ):
        raise TypeError(f"clip={clip!r} must be None or a pair (low, high) of numbers")
    low, high = float(clip[0]), float(clip[1])
    if not low <= high:
        raise ValueError(f"clip={clip!r} must have low <= high")
    return low, high


def finish(noisy: Tensor, x: Tensor, *, mask: Tensor | None, clip: Clip) -> Tensor:
    """Clip, cast back to the input's dtype and restore masked positions, in place where possible."""
    if clip is not None:
        noisy = noisy.clamp_(clip[0], clip[1])
    if noisy.dtype != x.dtype:
        noisy = noisy.to(x.dtype)
    if mask is not None:
        noisy = torch.where(mask, x, noisy)
    return noisy


def check_generator(generator: object, x: Tensor) -> NoiseGenerator | None:
    if generator is None:
        return None
    if isinstance(generator, Stream):
        if x.device.type != "cpu":
            raise ValueError(
                f"a noisereg Stream draws on the CPU but x is on {x.device}: use a torch.Generator on the "
                f"input's device (noisereg.seeding.noise_generator(seed, x.device))"
            )
        return generator
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator, a noisereg Stream or None, got {type(generator).__name__}"
        )
    if generator.device.type != x.device.type:
        raise ValueError(
            f"generator is on {generator.device} but x is on {x.device}: make the generator on the "
            f"input's device (noisereg.seeding.make_generator(seed, x.device))"
        )
    return generator


@torch.compiler.disable
def _from_stream(stream: Stream, normal: bool, shape: torch.Size, dtype: torch.dtype) -> Tensor:
    # Compiled graphs call the numba kernel as an opaque step (graph break), never trace it.
    drawn = torch.float64 if dtype == torch.float64 else torch.float32
    values = stream.normal(shape, drawn) if normal else stream.uniform(shape, drawn)
    return values if drawn == dtype else values.to(dtype)


def randn(
    shape: torch.Size | tuple[int, ...], generator: NoiseGenerator | None, *, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """N(0, 1) values: from a noisereg Stream (CPU), a torch.Generator, or torch's global one (None)."""
    if isinstance(generator, Stream):
        return _from_stream(generator, True, torch.Size(shape), dtype)
    return torch.randn(shape, generator=generator, dtype=dtype, device=device)


def rand(
    shape: torch.Size | tuple[int, ...], generator: NoiseGenerator | None, *, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """U[0, 1) values, from the same choice of generator as :func:`randn`."""
    if isinstance(generator, Stream):
        return _from_stream(generator, False, torch.Size(shape), dtype)
    return torch.rand(shape, generator=generator, dtype=dtype, device=device)


def torch_generator(generator: NoiseGenerator | None) -> torch.Generator | None:
    """A torch.Generator for draws a Stream does not make (Poisson, Beta, randint, randperm, multinomial):
    a stream gives one seeded from its next block; a torch.Generator or None is returned as is."""
    return generator.spawn_generator() if isinstance(generator, Stream) else generator


def randn_like(x: Tensor, generator: NoiseGenerator | None) -> Tensor:
    return randn(x.shape, generator, dtype=draw_dtype(x), device=x.device)


def stream_writable(x: Tensor) -> bool:
    """Whether a Stream's kernel may read and write ``x``'s memory itself: a plain contiguous
    float32/float64 CPU tensor, outside ``torch.compile`` and ``torch.func`` transforms."""
    return (
        type(x) is Tensor
        and x.dtype in (torch.float32, torch.float64)
        and x.device.type == "cpu"
        and x.is_contiguous()
        and not torch.compiler.is_compiling()
        and values_readable(x)
    )


class _ShiftedNormal(torch.autograd.Function):
    """x + std·ε drawn by a Stream in one pass; its derivative in x is the identity."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, std: float, stream: Stream) -> Tensor:
        return stream.add_normal(x.detach(), std)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        return grad, None, None


def add_normal(x: Tensor, std: float | Tensor, generator: NoiseGenerator | None) -> Tensor:
    """``x + std·ε`` for ε = ``randn_like(x, generator)``, rounded as ``(ε·std) + x``, in the draw's dtype.

    With a :class:`Stream`, a number ``std`` and a plain contiguous float32/float64 CPU ``x`` outside
    ``torch.compile`` and ``torch.func`` transforms, the Stream's kernel writes ``x + std·ε`` in one
    pass, bit for bit the same as the three passes (draw, scale, add) it replaces; they ran as long
    as the draw itself on a layer's activations.
    """
    if isinstance(generator, Stream) and isinstance(std, numbers.Real) and stream_writable(x):
        if torch.is_grad_enabled() and x.requires_grad:
            return cast(Tensor, _ShiftedNormal.apply(x, float(std), generator))
        return generator.add_normal(x, float(std))
    return randn_like(x, generator).mul_(std).add_(x)


def rand_like(x: Tensor, generator: NoiseGenerator | None) -> Tensor:
    return rand(x.shape, generator, dtype=draw_dtype(x), device=x.device)


@dataclasses.dataclass(frozen=True)
class NoiseKind:
    """Base of the small frozen configs, one per noise kind.

    A config holds the parameters of its kind's pure function; any strength may be a
    :class:`~noisereg.schedules.Schedule`, resolved at the step the caller passes. Subclasses name
    their entry of :data:`~noisereg.noise.kinds.KINDS` (``class Gaussian(NoiseKind, kind="gaussian")``),
    which gives ``strength_field`` (the field that is "how much noise"), ``identity`` (its value for
    no noise) and ``strength_bounds`` (the range the function accepts, as keyword arguments of
    :func:`check_strength`), and set ``function`` (the pure tensor function).

    The strength is checked when the config is made: a number against ``strength_bounds``, a built-in
    schedule by the range of values it can take (:func:`~noisereg.schedules.span`), so that
    ``Gaussian(std=-1.0)`` or ``Gaussian(std=Linear(1.0, -1.0, 10))`` raise ``ValueError`` at once. A
    schedule whose range cannot be known (any callable) is checked at each step it is resolved, and
    the error names the kind, the step and the value. A per-sample tensor is checked where it meets
    ``x`` (its shape must match the batch).

    Raises:
        TypeError, ValueError: when a config is made with a strength out of ``strength_bounds``.

    >>> from noisereg.noise import Gaussian
    >>> from noisereg.schedules import Linear
    >>> noise = Gaussian(std=Linear(0.2, 0.0, steps=10))
    >>> noise.strength_field, noise.resolved(step=5)["std"], noise.is_off(step=10)
    ('std', 0.1, True)
    >>> Gaussian(std=-1.0)
    Traceback (most recent call last):
    ...
    ValueError: Gaussian.std=-1.0 must be finite and >= 0
    """

    kind: ClassVar[str]
    strength_field: ClassVar[str]
    identity: ClassVar[float] = 0.0
    strength_bounds: ClassVar[dict[str, Any]] = {"low": 0.0}
    #: whether dim 0 of the tensor the kind is given has a meaning (filters): then the engine applies it
    #: to each weight tensor in its own shape, not to the weights flattened into one vector
    per_tensor: ClassVar[bool] = False

    def __post_init__(self) -> None:
        value = self.strength
        if isinstance(value, Tensor):
            return
        name = f"{type(self).__name__}.{self.strength_field}"
        if not callable(value):
            check_strength(value, name=name, x=_NO_INPUT, **self.strength_bounds)
            return
        ends = span(value)
        for end in ends or ():
            try:
                check_real(end, name, **self.strength_bounds)
            except ValueError:
                raise ValueError(
                    f"{name}={value!r} reaches {end!r}; {self.strength_field} must be "
                    f"{expected_range(**self.strength_bounds)} at every step"
                ) from None

    def __init_subclass__(cls, kind: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind is not None:
            entry = KINDS[kind]
            cls.kind, cls.strength_field, cls.identity = kind, entry.strength, entry.identity
            cls.strength_bounds = entry.bounds

    @staticmethod
    def function(x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        raise TypeError("NoiseKind is abstract: use one of the kinds in noisereg.noise")

    @property
    def strength(self) -> float | Schedule | Tensor:
        return getattr(self, self.strength_field)

    def with_strength(self, value: float | Schedule | Tensor) -> NoiseKind:
        """A copy with the main strength replaced (grids and per-replica strengths use this)."""
        return dataclasses.replace(self, **{self.strength_field: value})

    def resolved(self, step: int = 0) -> dict[str, Any]:
        """The function's keyword arguments with every schedule evaluated at ``step``.

        Raises:
            ValueError: a scheduled strength is out of ``strength_bounds`` at ``step`` (the message
                names the kind, the step, the value and the schedule).
        """
        kwargs = {f.name: resolve(getattr(self, f.name), step) for f in dataclasses.fields(self)}
        schedule, value = self.strength, kwargs[self.strength_field]
        if callable(schedule) and isinstance(value, numbers.Real):
            try:
                check_real(value, self.strength_field, **self.strength_bounds)
            except (TypeError, ValueError) as exc:
                raise type(exc)(
                    f"{type(self).__name__}.{self.strength_field} at step {step} is {value!r} (from {schedule!r}); "
                    f"it must be {expected_range(**self.strength_bounds)}"
                ) from None
        return kwargs

    def is_off(self, step: int = 0) -> bool:
        return is_identity(resolve(self.strength, step), self.identity)

    def __call__(
        self,
        x: Tensor,
        *,
        step: int = 0,
        generator: NoiseGenerator | None = None,
        mask: Tensor | None = None,
        documents: Tensor | None = None,
    ) -> Tensor:
        kwargs = self.resolved(step)
        strength = kwargs.pop(self.strength_field)
        for name, value, shown in (("mask", mask, "a mask"), ("documents", documents, "documents")):
            if name in self._function_params():
                kwargs[name] = value
            elif value is not None:
                raise ValueError(f"{type(self).__name__} does not take {shown}")
        return type(self).function(x, strength, generator=generator, **kwargs)

    @classmethod
    def _function_params(cls) -> tuple[str, ...]:
        code = cls.function.__code__
        return code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
