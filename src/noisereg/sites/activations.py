"""Noise on what flows between modules: a module's input (the model's input) or its output (activations).

Hooks place the noise, so the model's code, parameters and state dict stay as they are. Outputs may be
a tensor, a ``PackedSequence`` (noise on its data) or a tuple whose first item is one of those: an
LSTM/GRU's ``(output, state)`` takes noise on the output sequence and leaves the state alone.

For the "before or after the activation" choice of the reference case study, with
``nn.Sequential(nn.Linear(2, 500), nn.ReLU(), nn.Linear(500, 1))``:

- before ReLU: ``select="0"`` (the Linear's output), or ``select=nn.ReLU, where="before"``;
- after ReLU: ``select=nn.ReLU`` (``where="after"`` is the default).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, cast

from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence
from torch.utils.hooks import RemovableHandle

from noisereg.layers import NoiseLayer, registry
from noisereg.noise.base import NoiseKind
from noisereg.sites.placement import MaskSource, Placement, argument_position, padding_mask, stream_seed
from noisereg.sites.selectors import Selector, select_modules

__all__ = ["place_input", "place_activations", "noisy_value"]

Where = Literal["after", "before", "state"]  # "state": recurrent layers only (sites/recurrent.py)


def noisy_value(value: Any, noise: Callable[[Tensor, bool], Tensor], *, where: str) -> Any:
    """Apply ``noise(x, packed)`` to a tensor, a PackedSequence's data, or the first item of a tuple."""
    if isinstance(value, Tensor):
        if not value.is_floating_point():
            raise ValueError(
                f"noise {where} got an integer tensor (dtype={value.dtype}): token ids cannot take "
                "additive noise; put the noise on the embeddings with attach(model, NEFTune(alpha=5), "
                "at='embeddings') or on their output with at='activations', select=nn.Embedding"
            )
        return noise(value, False)
    if isinstance(value, PackedSequence):
        # Packed data holds no padding: [total real steps, features].
        data = noisy_value(value.data, lambda x, packed: noise(x, True), where=where)
        return value._replace(data=data)
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], (Tensor, PackedSequence)):
        first = noisy_value(value[0], noise, where=where)
        if hasattr(value, "_fields"):
            # A named tuple (hasattr does not narrow the type for the checker).
            named = cast(Any, value)
            return named._replace(**{named._fields[0]: first})
        return type(value)([first, *value[1:]])
    raise TypeError(
        f"noise {where} needs a tensor, a PackedSequence or a tuple whose first item is one, got {type(value).__name__}"
    )


def _apply(layer: NoiseLayer, module: nn.Module, masks: MaskSource, value: Any, where: str) -> Any:
    layer.training = module.training
    attention = masks.current()

    def noise(x: Tensor, packed: bool) -> Tensor:
        return layer(x, None if attention is None or packed else padding_mask(attention, x))

    return noisy_value(value, noise, where=where)


def _argument_slot(module: nn.Module, arg: int | str) -> tuple[int | None, str | None]:
    """(position, keyword) under which ``arg`` reaches ``module.forward``."""
    if isinstance(arg, bool) or not isinstance(arg, (int, str)):
        raise TypeError(f"arg={arg!r} must be a position (int >= 0) or an argument name (str)")
    if isinstance(arg, int):
        if arg < 0:
            raise ValueError(f"arg={arg} must be >= 0")
        return arg, None
    return argument_position(module, arg, option="arg"), arg


def _input_hook(
    layer: NoiseLayer, masks: MaskSource, arg: int | str, label: str, slot: tuple[int | None, str | None]
) -> Callable[[nn.Module, tuple, dict], tuple[tuple, dict]]:
    position, keyword = slot

    def hook(mod: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if keyword is not None and keyword in kwargs:
            kwargs = dict(kwargs)
            kwargs[keyword] = _apply(layer, mod, masks, kwargs[keyword], label)
            return args, kwargs
        if position is not None and position < len(args):
            args = (*args[:position], _apply(layer, mod, masks, args[position], label), *args[position + 1 :])
            return args, kwargs
        raise ValueError(f"noise {label}: the call passed no argument arg={arg!r}")

    return hook


def place_hooks(
    root: nn.Module,
    kind: NoiseKind,
    modules: list[tuple[str, nn.Module]],
    *,
    site: str,
    where: Where,
    arg: int | str,
    seed: int | None,
    masks: MaskSource,
) -> list[Placement]:
    """One noise layer per module, on its input (``where="before"``) or output (``"after"``)."""
    # Check every module's arguments before placing anything, so an error leaves no hook behind.
    slots = [_argument_slot(module, arg) for _, module in modules] if where == "before" else []
    placements = []
    for i, (name, module) in enumerate(modules):
        label = f"{where} {name!r}" if name else f"{where} the model"
        layer = NoiseLayer(kind, seed=stream_seed(seed, site, f"{where}:{name}"))
        if where == "after":

            def hook(mod: nn.Module, args: tuple, output: Any, layer: NoiseLayer = layer, label: str = label) -> Any:
                return _apply(layer, mod, masks, output, label)

            handle = module.register_forward_hook(hook)
            key: tuple[Any, ...] = ("after", module)
        else:
            handle = module.register_forward_pre_hook(_input_hook(layer, masks, arg, label, slots[i]), with_kwargs=True)
            key = ("before", module, arg)
        registry.add_beside(module, layer)

        def undo(module: nn.Module = module, layer: NoiseLayer = layer, handle: RemovableHandle = handle) -> None:
            handle.remove()
            registry.remove_beside(module, layer)

        placements.append(Placement(site, label, key, layer, module, undo))
    return placements


def place_input(
    root: nn.Module,
    kind: NoiseKind,
    *,
    select: Selector | None,
    arg: int | str,
    seed: int | None,
    masks: MaskSource,
) -> list[Placement]:
    """Noise on the model's input (argument ``arg`` of its forward), or on the inputs of ``select``."""
    modules = [("", root)] if select is None else select_modules(root, select)
    for name, module in modules:
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            raise ValueError(
                f"at='input' on embedding {name or type(module).__name__!r}: its input is token ids, which "
                "cannot take additive noise; use at='embeddings' (NEFTune) to put noise on its output"
            )
    return place_hooks(root, kind, modules, site="input", where="before", arg=arg, seed=seed, masks=masks)


def place_activations(
    root: nn.Module,
    kind: NoiseKind,
    *,
    select: Selector | None,
    where: Where,
    seed: int | None,
    masks: MaskSource,
) -> list[Placement]:
    """Noise on the outputs (``where="after"``) or inputs (``"before"``) of the modules ``select`` names."""
    if select is None:
        raise ValueError(
            "at='activations' needs select=: a name pattern such as 'layers.*.fc1' or a module type such "
            "as nn.ReLU (noise after ReLU) or nn.Linear (noise on the linear output, before the activation)"
        )
    if where not in ("after", "before"):
        raise ValueError(f"{where=} must be 'after' (the module's output) or 'before' (its input)")
    modules = select_modules(root, select)
    return place_hooks(root, kind, modules, site="activations", where=where, arg=0, seed=seed, masks=masks)
