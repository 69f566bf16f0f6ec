"""Per-replica noise on stacked tensors: each replica draws from its own stream.

A :class:`SiteStream` puts one site's noise on a stack ``[R, ...]`` whose dim 0 is the replica. Every
replica has its own kind (the site's kind with the replica's strength) and its own stream (a
:class:`~noisereg.streams.Stream` on a CPU, a ``torch.Generator`` elsewhere, as
:func:`noisereg.seeding.noise_generator` decides), so a replica's draws never depend on which other
replicas share its stack.

Two paths, one formula:

- the general path calls the kind itself (:mod:`noisereg.noise`) on each replica's slice with that
  replica's generator;
- the fast path, for :class:`~noisereg.noise.Gaussian`, :class:`~noisereg.noise.MultiplicativeGaussian`
  and :class:`~noisereg.noise.GaussianDropoutNoise` without clip, draws each replica's unit normals
  ε_r from the same stream into one preallocated stack (:func:`_draw_unit_normals`, the only place
  that draws directly; Streams of all replicas in one parallel call) and applies the core's own formula
  with per-replica strengths broadcast along dim 0: x + σ·ε (Gaussian) or x·(1 + σ·ε) (the others,
  σ = √(rate/(1−rate)) for Gaussian dropout). It consumes each generator exactly as the kind's
  function would and gives the same numbers; ``tests/engine/test_injection.py`` checks both.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Literal, NamedTuple, Protocol, cast

import numpy as np
import torch
from torch import Tensor

from noisereg import noise
from noisereg._checks import check_real
from noisereg.noise.base import NoiseKind, randn, stream_writable
from noisereg.noise.multiplicative import dropout_std
from noisereg.schedules import resolve
from noisereg.seeding import NoiseGenerator
from noisereg.streams import Stream, add_normals_to_rows_, fill_normals

__all__ = ["HiddenStream", "SiteStream"]

Form = Literal["additive", "multiplicative"]

_ADDITIVE = (noise.Gaussian,)
_MULTIPLICATIVE = (noise.MultiplicativeGaussian, noise.GaussianDropoutNoise)


class HiddenStream(Protocol):
    """What the MLP kernels call on a hidden layer's noise: a :class:`SiteStream`, or a user's model's
    own dropout (:class:`~noisereg.engine.model_randomness.ReplicaDropout`)."""

    @property
    def form(self) -> Form | None: ...

    @property
    def closed_form(self) -> bool: ...

    def apply(self, x: Tensor, *, step: int, epoch: int, slot: object = None) -> tuple[Tensor, Tensor | None]: ...


def _fast_form(kinds: Sequence[NoiseKind]) -> Form | None:
    kind_type = type(kinds[0])
    if any(type(k) is not kind_type or getattr(k, "clip", None) is not None for k in kinds):
        return None
    if kind_type in _ADDITIVE:
        return "additive"
    if kind_type in _MULTIPLICATIVE:
        return "multiplicative"
    return None


@torch.compiler.disable
def _draw_unit_normals(
    stack: Tensor, slices: Sequence[Tensor], generators: Sequence[NoiseGenerator], rows: Sequence[int]
) -> None:
    """Fill ``slices[r]`` (replica r's contiguous slice of ``stack``) with N(0, 1) draws from
    ``generators[r]`` for each r in ``rows``, consuming each stream exactly as the core's
    ``randn_like(x, g)`` does for a float32/float64 ``x`` of that shape, with the same numbers.

    Where every replica that draws has a Stream, all of them draw in one call on all cores (the
    others' slices are left alone); a Stream's values at (key, counter) do not depend on that grouping.
    """
    streams = [g for g in (generators[r] for r in rows) if isinstance(g, Stream)]
    if len(streams) == len(rows) and stack.dtype in (torch.float32, torch.float64):
        flat = stack.view(len(slices), -1)
        counters = [g.reserve(flat.shape[1]) for g in streams]
        fill_normals(flat, [g.key for g in streams], counters, rows=None if len(rows) == len(slices) else rows)
        return
    for r in rows:
        generator = generators[r]
        if isinstance(generator, Stream):
            slices[r].copy_(randn(slices[r].shape, generator, dtype=slices[r].dtype, device=stack.device))
        else:
            slices[r].normal_(generator=generator)


class _OnePass(NamedTuple):
    rows: np.ndarray
    keys: np.ndarray
    scales: np.ndarray
    streams: list[Stream]


class SiteStream:
    """One site's noise for the replicas of a stack.

    Args:
        kinds: one noise config per replica (the site's kind with that replica's strength).
        generators: one stream per replica for the stack's device (Stream or torch.Generator).
        name: the site's name for error messages (e.g. ``"sites[2]"``).
        clock: whether schedules read the step or the epoch.
        offset: added to the step (or epoch) ``apply`` is given: where the replicas' own counts start
            (a user's noise layers that drew before training, see :mod:`noisereg.engine.lowering`).

    ``apply(x, step=, epoch=)`` returns ``(x̃, multiplier)``: the multiplier m (x̃ = x·m, also dx̃/dx) on the
    fast multiplicative path, else None. On the fast path ``x`` is changed in place.
    """

    def __init__(
        self,
        kinds: Sequence[NoiseKind],
        generators: Sequence[NoiseGenerator],
        *,
        name: str,
        clock: Literal["step", "epoch"] = "step",
        offset: int = 0,
    ) -> None:
        if len(kinds) != len(generators) or not kinds:
            raise ValueError(f"{name}: need one kind and one generator per replica")
        self.clock, self.offset = clock, offset
        self.kinds = list(kinds)
        self.generators = list(generators)
        self.name = name
        self.form = _fast_form(self.kinds)
        self._constant = all(isinstance(k.strength, numbers.Real) for k in self.kinds)
        self._sigma_cache: dict[tuple[torch.dtype, torch.device], tuple[Tensor, list[int]]] = {}
        self._buffers: dict[object, tuple[Tensor, list[Tensor]]] = {}
        self._plans: dict[object, _OnePass] = {}
        self._all_streams = all(isinstance(g, Stream) for g in self.generators)

    @property
    def closed_form(self) -> bool:
        """Whether the fast path applies (its derivative is known in closed form)."""
        return self.form is not None

    def _count(self, step: int, epoch: int) -> int:
        """What the schedules read at this step and epoch."""
        return (epoch if self.clock == "epoch" else step) + self.offset

    def _unit_sigma(self, value: object) -> float:
        unit = check_real(value, f"{self.name}: strength")
        if isinstance(self.kinds[0], noise.GaussianDropoutNoise):
            if not 0.0 <= unit < 1.0:
                raise ValueError(f"{self.name}: rate={value!r} must be in [0, 1)")
            # dropout_std maps a float rate through math.sqrt: the result is a float, never a tensor
            return cast(float, dropout_std(unit))
        if unit < 0:
            raise ValueError(f"{self.name}: std={value!r} must be >= 0")
        return unit

    def _sigma(self, step: int, like: Tensor) -> tuple[Tensor, list[int]]:
        """Per-replica σ of ε, shaped [R, 1, ...] for ``like``, and the replicas with σ > 0."""
        key = (like.dtype, like.device)
        if self._constant and key in self._sigma_cache:
            sigma, rows = self._sigma_cache[key]
        else:
            values = [self._unit_sigma(resolve(k.strength, step)) for k in self.kinds]
            rows = [r for r, v in enumerate(values) if v != 0.0]
            sigma = torch.tensor(values, dtype=like.dtype, device=like.device)
            self._sigma_cache[key] = (sigma, rows)
        return sigma.view((-1,) + (1,) * (like.dim() - 1)), rows

    def _buffer(self, slot: object, like: Tensor) -> tuple[Tensor, list[Tensor]]:
        """A stack shaped like ``like`` kept under ``slot``, with its per-replica slices."""
        entry = self._buffers.get(slot)
        if entry is None or entry[0].shape != like.shape or entry[0].dtype != like.dtype:
            # Zeros, not empty: rows of replicas without noise at a step keep finite values, so that
            # σ·ε with σ = 0 adds exactly zero.
            buffer = torch.zeros_like(like, memory_format=torch.contiguous_format)
            entry = (buffer, list(buffer.unbind(0)))
            self._buffers[slot] = entry
        return entry

    def apply(self, x: Tensor, *, step: int, epoch: int, slot: object = None) -> tuple[Tensor, Tensor | None]:
        """Noise on ``x`` [R, ...] at this step or epoch; ``slot`` names the buffer (one per place of use)."""
        step = self._count(step, epoch)
        if self.form is None:
            return self._apply_general(x, step), None
        sigma, rows = self._sigma(step, x)
        if not rows:
            return x, None
        if self.form == "additive" and self._in_one_pass(x, rows):
            flat = x.view(x.shape[0], -1)
            plan = self._one_pass_plan(sigma, rows)
            counters = np.fromiter((g.reserve(flat.shape[1]) for g in plan.streams), np.uint64, len(plan.streams))
            add_normals_to_rows_(flat.numpy(), plan.rows, plan.keys, counters, plan.scales)
            return x, None
        eps, slices = self._buffer(slot, x)
        _draw_unit_normals(eps, slices, self.generators, rows)
        if self.form == "additive":
            # (σ·ε) + x as two roundings, as the core computes it (a fused x + σ·ε rounds once)
            return x.add_(eps.mul_(sigma)), None
        multiplier = eps.mul_(sigma).add_(1.0)
        return x.mul_(multiplier), multiplier

    def _one_pass_plan(self, sigma: Tensor, rows: list[int]) -> _OnePass:
        """The arrays the one-pass kernel takes for these rows and σ, made once for constant strengths
        (the engine applies a site at every step: building them each time cost more than the draw of
        a small layer)."""
        key = (sigma.dtype, tuple(rows))
        plan = self._plans.get(key) if self._constant else None
        if plan is None:
            streams = [cast(Stream, self.generators[r]) for r in rows]
            scales = np.asarray(
                sigma.view(-1)[rows].tolist(), dtype=np.float32 if sigma.dtype == torch.float32 else np.float64
            )
            plan = _OnePass(np.asarray(rows, np.int64), np.array([g.key for g in streams], np.uint64), scales, streams)
            if self._constant:
                self._plans[key] = plan
        return plan

    def _in_one_pass(self, x: Tensor, rows: Sequence[int]) -> bool:
        """Whether the Streams of ``rows`` can write x + σ·ε into ``x`` themselves: bit for bit the
        draw, scale and add, with no ε in memory and no pass over the replicas without noise."""
        in_place_ok = not (x.requires_grad and torch.is_grad_enabled())  # autograd must see the add
        return self._all_streams and in_place_ok and stream_writable(x)

    def unit_normals(self, like: Tensor, *, step: int, epoch: int, slot: object) -> tuple[Tensor, Tensor | None]:
        """Per-replica σ [R, 1, ...] and unit normals shaped like ``like`` (None when all σ are 0).

        For samplers that use the site's formula through another parametrization (projection).
        """
        if self.form != "additive":
            raise ValueError(f"{self.name}: unit normals are drawn for Gaussian noise only")
        sigma, rows = self._sigma(self._count(step, epoch), like)
        if not rows:
            return sigma, None
        eps, slices = self._buffer(slot, like)
        _draw_unit_normals(eps, slices, self.generators, rows)
        return sigma, eps

    def apply_filterwise(self, x: Tensor, *, step: int, epoch: int, slot: object) -> Tensor:
        """Filter-wise Gaussian noise (:class:`~noisereg.noise.FilterGaussian` without clip) on a stack
        of weight tensors ``x`` [R, filters, ...]: x_{r,i} + σ_r·‖x_{r,i}‖₂·ε, every replica at once.

        It consumes each replica's stream as the kind's function on ``x[r]`` does and applies the same
        formula, so it agrees with the general path to rounding (``tests/engine`` checks it).
        """
        step = self._count(step, epoch)
        values = [self._unit_sigma(resolve(k.strength, step)) for k in self.kinds]
        rows = [r for r, v in enumerate(values) if v != 0.0]
        if not rows:
            return x
        eps, slices = self._buffer(slot, x)
        _draw_unit_normals(eps, slices, self.generators, rows)
        norms = torch.linalg.vector_norm(x.reshape(x.shape[0], x.shape[1], -1), dim=2)
        scale = norms.mul_(torch.tensor(values, dtype=x.dtype, device=x.device).unsqueeze(1))
        return eps.mul_(scale.view(scale.shape + (1,) * (x.dim() - 2))).add_(x)

    def _apply_general(self, x: Tensor, step: int) -> Tensor:
        # unbind, not x[r]: under autograd each x[r]'s backward writes a zero tensor of the whole stack
        rows = zip(x.unbind(0), self.kinds, self.generators, strict=True)
        return torch.stack([xr if kind.is_off(step) else kind(xr, step=step, generator=g) for xr, kind, g in rows])
