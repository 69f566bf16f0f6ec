"""The model's own randomness under the vectorized path: replica r draws what it draws trained alone.

A lone replica (:mod:`noisereg.engine.loop`) trains with torch's global generator seeded
``derive_seed(seed, "train")``; its dropout modules, functional dropout (``F.dropout`` in a ``forward``,
the attention dropout of ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer``) and other random
calls draw from it in the order of its forward. Under ``vmap`` torch refuses them
(``randomness="error"``: one draw for the stack would tie the replicas together).

:class:`ModelRandomness` is a ``TorchFunctionMode`` held around the vectorized forward. It takes the
random calls on a value batched over the replicas (:data:`RANDOM_CALLS`) and runs each once per replica
on that replica's slice, with torch's global generator in replica r's state (advanced by replica r's
draws only; the caller's state is restored after each call), so the draws have the shapes and the
order of a lone replica's. Attention with ``dropout_p > 0`` is written out as torch's CPU math path
(scores, softmax, dropout of the weights, product with the values), its dropout taken per replica the
same way; the rest runs batched. Calls with a ``generator=`` of their own are left to torch (``vmap``
refuses them and the model trains per replica).

While the mode is active every other torch call passes through it unchanged (and torch's fused
transformer fast paths, which skip inputs under a torch-function mode, take their batchable unfused
path).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from noisereg._compat.torch_private import functional_names, is_batched
from noisereg.engine.injection import Form
from noisereg.engine.replica_slices import on_replicas

__all__ = ["RANDOM_CALLS", "ModelRandomness", "ReplicaDropout", "user_reason"]

# torch's own functions, held here: torch.nn.functional's names are replaced while the mode runs one
_ATTENTION, _DROPOUT = F.scaled_dot_product_attention, F.dropout

# call -> (name, position) of its "training" flag, or None when it always draws
RANDOM_CALLS: dict[Callable[..., Any], tuple[str, int] | None] = {
    F.dropout: ("training", 2),
    F.alpha_dropout: ("training", 2),
    F.feature_alpha_dropout: ("training", 2),
    F.dropout1d: ("training", 2),
    F.dropout2d: ("training", 2),
    F.dropout3d: ("training", 2),
    torch.dropout: ("train", 2),
    torch.alpha_dropout: ("train", 2),
    torch.feature_dropout: ("train", 2),
    torch.feature_alpha_dropout: ("train", 2),
    torch.bernoulli: None,
    torch.rand_like: None,
    torch.randn_like: None,
    torch.randint_like: None,
    torch.poisson: None,
    Tensor.bernoulli: None,
}
"""The random calls a replica makes on its own stream (a value batched over the replicas first)."""

_IN_PLACE = {
    Tensor.bernoulli_,
    Tensor.uniform_,
    Tensor.normal_,
    Tensor.exponential_,
    Tensor.geometric_,
    Tensor.cauchy_,
    Tensor.log_normal_,
    Tensor.random_,
}


# torch.nn.functional's functions that draw nothing, called often: no names to replace for them
_UNTOUCHED = {F.linear, F.relu, F.gelu, F.layer_norm, F.pad, F.softmax, F.cross_entropy, F.embedding}


def _draws(func: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> bool:
    """Whether this call of a random function draws (dropout in eval mode or with p = 0 does not)."""
    flag = RANDOM_CALLS.get(func)
    if flag is not None:
        name, position = flag
        training = kwargs.get(name, args[position] if len(args) > position else True)
        p = kwargs.get("p", args[1] if len(args) > 1 else 0.5)
        return bool(training) and float(p) > 0.0
    return True


def user_reason(error: BaseException) -> str | None:
    """torch's refusal of a random call under ``vmap``, worded for a user; None for other errors."""
    if "random operation" not in str(error):
        return None
    return (
        "the model draws random numbers inside forward that cannot come from each replica's own stream "
        "(a draw from a generator of its own, generator=, or into a tensor that does not hold the "
        "replicas' values)"
    )


def _drawn_per_replica(states: list[Tensor], xs: Tensor, draw: Callable[[Tensor], Tensor]) -> Tensor:
    """``draw(xs[r])`` for each replica r, stacked, with torch's global generator in state ``states[r]``
    (updated to where replica r's draws leave it); the caller's state is restored after."""
    caller = torch.get_rng_state()
    out = []
    try:
        for r, value in enumerate(xs.unbind(0)):
            torch.set_rng_state(states[r])
            out.append(draw(value))
            states[r] = torch.get_rng_state()
    finally:
        torch.set_rng_state(caller)
    return torch.stack(out)


class ModelRandomness(TorchFunctionMode):
    """While entered (around the vmapped forward), the model's random calls draw per replica:
    replica r from torch's global generator in state ``states[r]``, which advances as replica r draws."""

    def __init__(self, states: Sequence[Tensor]) -> None:
        super().__init__()
        self.states = list(states)
        self._replacements: dict[str, Callable[..., Any]] | None = None

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is _ATTENTION:
            p = kwargs.get("dropout_p", args[4] if len(args) > 4 else 0.0)
            if p > 0.0 and is_batched(args[0]):
                return self._attention(*args, **kwargs)
        elif (func in RANDOM_CALLS or func in _IN_PLACE) and "generator" not in kwargs:
            x = args[0] if args else None
            if isinstance(x, Tensor) and is_batched(x) and _draws(func, args, kwargs):
                return self._per_replica(func, x, args[1:], kwargs)
        elif getattr(func, "__module__", None) == F.__name__ and func not in _UNTOUCHED:
            # the mode is off while a function it caught runs: torch.nn.functional's Python functions
            # (multi-head attention) reach their random calls through the module's names instead
            with functional_names(self._names):
                return func(*args, **kwargs)
        return func(*args, **kwargs)

    @property
    def _names(self) -> dict[str, Callable[..., Any]]:
        if self._replacements is None:
            self._replacements = {
                f.__name__: functools.partial(self._caught, f)
                for f in (_ATTENTION, *RANDOM_CALLS)
                if getattr(F, f.__name__, None) is f
            }
        return self._replacements

    def _caught(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.__torch_function__(func, (), args, kwargs)

    def _per_replica(self, func: Callable[..., Any], x: Tensor, rest: Sequence[Any], kwargs: dict[str, Any]) -> Tensor:
        in_place = func in _IN_PLACE or bool(kwargs.get("inplace", rest[2] if len(rest) > 2 else False))

        def draw(value: Tensor) -> Tensor:
            # draws fill a tensor in memory order: the lone replica's value has the layout of its slice
            # without the replica dim (batch_first attention returns a transposed one), so a dense copy
            # in the slice's dim order draws what it draws
            return func(value.clone(memory_format=torch.preserve_format), *rest, **kwargs)

        result = on_replicas(x, lambda xs: _drawn_per_replica(self.states, xs, draw))
        return x.copy_(result) if in_place else result

    def _attention(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        attn_mask: Tensor | None = None,
        dropout_p: float = 0.0,
        is_causal: bool = False,
        scale: float | None = None,
        enable_gqa: bool = False,
    ) -> Tensor:
        """torch's math attention (the path a lone replica takes on the CPU with dropout), dropout per
        replica: softmax(q·kᵀ·scale + mask), its dropout, times v."""
        root = math.sqrt(scale if scale is not None else 1.0 / math.sqrt(query.shape[-1]))
        if enable_gqa and key.shape[-3] != query.shape[-3]:
            key = key.repeat_interleave(query.shape[-3] // key.shape[-3], -3)
            value = value.repeat_interleave(query.shape[-3] // value.shape[-3], -3)
        scores = (query * root) @ (key.transpose(-2, -1) * root)
        if is_causal:
            keep = torch.ones(scores.shape[-2], scores.shape[-1], dtype=torch.bool, device=scores.device).tril()
            scores = scores.masked_fill(~keep, float("-inf"))
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:
                scores = scores.masked_fill(~attn_mask, float("-inf"))
            else:
                scores = scores + attn_mask
        weights = torch.softmax(scores, -1)
        if attn_mask is not None or is_causal:  # a fully masked row gives zeros, as torch's safe softmax
            weights = weights.masked_fill(scores.eq(float("-inf")).all(-1, keepdim=True), 0.0)
        weights = self._per_replica(_DROPOUT, weights, (dropout_p, True), {})
        return weights @ value


class ReplicaDropout:
    """A user's ``nn.Dropout(p)`` on the stacked MLP kernels (:mod:`noisereg.engine.lowering`), with a
    :class:`~noisereg.engine.injection.SiteStream`'s ``apply``: replica r's mask is ``F.dropout`` of
    ones shaped like its slice, drawn from torch's global generator in state ``states[r]`` (a list
    shared by the group's dropouts, advanced as replica r draws), so that it is the mask the lone
    replica's dropout draws at that point of its forward (torch's CPU dropout is the input times
    ``bernoulli(1 − p) / (1 − p)`` drawn in memory order). Returns ``(x·m, m)``: the kernels take
    the mask as the derivative."""

    form: Form = "multiplicative"
    closed_form = True

    def __init__(self, p: float, states: list[Tensor]) -> None:
        self.p, self.states = p, states

    def apply(self, x: Tensor, *, step: int, epoch: int, slot: object = None) -> tuple[Tensor, Tensor]:
        ones = torch.ones_like(x[0], memory_format=torch.contiguous_format)
        mask = _drawn_per_replica(self.states, x, lambda _: _DROPOUT(ones, self.p, True))
        return x.mul_(mask), mask
