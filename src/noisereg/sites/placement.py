"""What every site shares: the record of one placed noise, stream seeds, masks, running noise beside a module.

A site places one :class:`~noisereg.layers.NoiseLayer` per place (a module's input or output, a
parameter, an optimizer, the targets) and returns :class:`Placement` records; ``attach`` turns them into
a handle. Noise that sits beside a module (not inside it) is run with the host module's train/eval
mode, so ``model.eval()`` switches it off like any child layer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from noisereg.layers import NoiseLayer
from noisereg.seeding import current_rank, derive_seed, rank_seed

__all__ = [
    "Placement",
    "stream_seed",
    "MaskSource",
    "padding_mask",
    "run_beside",
    "argument_position",
    "documents_from_positions",
    "documents_from_cu_seqlens",
]


@dataclasses.dataclass(eq=False)
class Placement:
    """One noise placed by a site.

    ``key`` is ``(position, object, *extra)``: the place (a module, parameter or optimizer, and where
    on it), so that attaching the same site twice is caught; ``host`` is the module whose mode
    switches the noise (None: on whenever called, as gradient noise at an optimizer step); ``undo``
    takes it off; ``refresh``, where given, makes held noise be drawn anew (weight noise); ``save`` and
    ``load`` give and take the place's noise state for a checkpoint (default: the layer's extra state).
    """

    site: str
    where: str
    key: tuple[Any, ...]
    layer: NoiseLayer
    host: nn.Module | None
    undo: Callable[[], None]
    refresh: Callable[[], None] | None = None
    save: Callable[[], dict[str, Any]] | None = None
    load: Callable[[dict[str, Any]], None] | None = None

    def noise_state(self) -> dict[str, Any]:
        return self.save() if self.save is not None else self.layer.get_extra_state()

    def load_noise_state(self, state: dict[str, Any]) -> None:
        if self.load is not None:
            self.load(state)
        else:
            self.layer.set_extra_state(state)


def stream_seed(seed: int | None, site: str, name: str) -> int | None:
    """The seed of one place's noise: ``derive_seed(seed, site, name)``; None uses torch's global RNG.

    Under ``torch.distributed`` with more than one process the rank is a key too,
    :func:`noisereg.seeding.rank_seed` ``(seed, site, name, rank=rank)``: the same seed on every rank would otherwise give
    every replica the same noise.
    """
    if seed is None:
        return None
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return rank_seed(seed, site, name, rank=current_rank())
    return derive_seed(seed, site, name)


def run_beside(layer: NoiseLayer, host: nn.Module, *inputs: Any) -> Any:
    """Call a noise layer that is not a child of ``host`` in ``host``'s train/eval mode."""
    layer.training = host.training
    return layer(*inputs)


def padding_mask(attention_mask: Tensor, like: Tensor) -> Tensor:
    """noisereg's mask (True = leave untouched) from an attention mask (1/True = real token).

    Trailing dimensions of size 1 are added so that a [batch, length] mask covers [batch, length, d].
    """
    if not isinstance(attention_mask, Tensor):
        raise TypeError(f"attention mask must be a tensor, got {type(attention_mask).__name__}")
    pad = ~attention_mask.bool()
    while pad.dim() < like.dim():
        pad = pad.unsqueeze(-1)
    return pad


def documents_from_positions(position_ids: Tensor) -> Tensor:
    """Document labels of packed rows from ``position_ids`` that restart at 0 for each document.

    >>> documents_from_positions(torch.tensor([[0, 1, 2, 0, 1, 0]]))
    tensor([[1, 1, 1, 2, 2, 3]])
    """
    if not isinstance(position_ids, Tensor) or position_ids.is_floating_point():
        raise TypeError("position_ids must be an integer tensor [batch, L]")
    return (position_ids == 0).long().cumsum(dim=-1)


def documents_from_cu_seqlens(cu_seq_lens: Tensor, shape: torch.Size | tuple[int, int]) -> Tensor:
    """Document labels [batch, L] from cumulative sequence lengths over the flattened batch.

    ``cu_seq_lens`` = [0, l_1, l_1 + l_2, ...] as flash-attention's varlen kernels and
    transformers' ``DataCollatorWithFlattening`` give it.

    >>> documents_from_cu_seqlens(torch.tensor([0, 3, 5]), (1, 6))
    tensor([[0, 0, 0, 1, 1, 2]])
    """
    if not isinstance(cu_seq_lens, Tensor) or cu_seq_lens.is_floating_point() or cu_seq_lens.dim() != 1:
        raise TypeError("cu_seq_lens must be a 1-d integer tensor [documents + 1]")
    flat = torch.arange(shape[0] * shape[1], device=cu_seq_lens.device)
    return torch.bucketize(flat, cu_seq_lens[1:].to(flat.dtype), right=True).reshape(shape[0], shape[1])


class MaskSource:
    """Where a hook site finds the attention mask (and, for packed rows, the documents) of a forward.

    A mask registered with :meth:`use` (a ``with`` block) wins; otherwise, with ``argument`` set,
    the mask is read from the root model's forward call, by keyword or by position. With
    ``packed=True`` the forward's ``cu_seq_lens_q`` (flash-attention varlen) or ``position_ids``
    (restarting at 0 for each document) are read too, for :meth:`documents`.
    """

    _PACKED = ("cu_seq_lens_q", "position_ids")

    def __init__(self, root: nn.Module, argument: str | None, *, packed: bool = False) -> None:
        self.registered: Tensor | None = None
        self.captured: Tensor | None = None
        self.packing: dict[str, Tensor] = {}
        self._hooks: list[Any] = []
        if argument is None and not packed:
            return
        if argument is not None and not isinstance(argument, str):
            raise TypeError(f"mask={argument!r} must be the name of the model's attention-mask argument")
        position = None if argument is None else argument_position(root, argument, option="mask")
        packed_positions = {name: _optional_position(root, name) for name in self._PACKED} if packed else {}

        def capture(module: nn.Module, args: tuple, kwargs: dict) -> None:
            if argument is not None and argument in kwargs:
                self.captured = kwargs[argument]
            elif position is not None and len(args) > position:
                self.captured = args[position]
            else:
                self.captured = None
            self.packing = {}
            for name, at in packed_positions.items():
                value = kwargs.get(name, args[at] if at is not None and len(args) > at else None)
                if isinstance(value, Tensor):
                    self.packing[name] = value

        def release(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            self.captured = None
            self.packing = {}

        self._hooks = [
            root.register_forward_pre_hook(capture, with_kwargs=True),
            root.register_forward_hook(release, with_kwargs=True, always_call=True),
        ]

    def current(self) -> Tensor | None:
        return self.registered if self.registered is not None else self.captured

    def documents(self, shape: torch.Size) -> Tensor | None:
        """Document labels [batch, L] of the current forward's packed rows (None: not packed)."""
        if "cu_seq_lens_q" in self.packing:
            return documents_from_cu_seqlens(self.packing["cu_seq_lens_q"], shape)
        if "position_ids" in self.packing:
            positions = self.packing["position_ids"]
            return documents_from_positions(positions.expand(shape[0], -1)) if positions.shape[-1] == shape[1] else None
        return None

    @contextlib.contextmanager
    def use(self, attention_mask: Tensor) -> Iterator[None]:
        if not isinstance(attention_mask, Tensor):
            got = type(attention_mask).__name__
            raise TypeError(f"attention_mask must be a tensor (1 = real token), got {got}")
        previous, self.registered = self.registered, attention_mask
        try:
            yield
        finally:
            self.registered = previous

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []


def _optional_position(module: nn.Module, argument: str) -> int | None:
    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return None
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return positional.index(argument) if argument in positional else None


def argument_position(module: nn.Module, argument: str, *, option: str) -> int | None:
    """Position of ``module.forward``'s argument ``argument`` (None: keyword-only or taken by **kwargs).

    Raises ValueError naming ``option`` when ``forward`` has no such argument.
    """
    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return None
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = [p.name for p in params]
    if argument not in names and not any(p.kind == p.VAR_KEYWORD for p in params):
        raise ValueError(
            f"{option}={argument!r} is not an argument of {type(module).__name__}.forward (arguments: {names})"
        )
    return positional.index(argument) if argument in positional else None
