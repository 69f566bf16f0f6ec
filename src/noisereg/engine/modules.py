"""Replicas of any ``nn.Module`` (a small CNN, a GRU classifier, ...) through ``torch.func``.

The general path beside the hand-written MLP: each replica's module is built by ``factory`` under its
own seed, the parameters of all replicas are stacked into one flat buffer (contiguous ``[R, ...]``
blocks in ``named_parameters`` order, like :class:`~noisereg.engine.replicas.StackedMLP`), and the
forward pass is ``torch.func.vmap`` over ``torch.func.functional_call``. Gradients come from autograd
on the flat buffer, so the optimizers, clipping and gradient noise are the MLP path's own.

Noise sites: ``input``, ``targets``, ``gradients``, and hidden ``before``/``after`` noise at the places
``ModuleSpec.hidden`` names: hidden layer i is ``(before, after)``, the qualified names of the module whose
output is the layer's linear output (a Conv2d, a Linear) and of its activation; noise goes on that
module's output (a recurrent layer's output sequence, the first item of its ``(output, state)``),
replica r's from its own stream (:func:`noisereg.engine.vectorized.on_replicas`). Modules must have
no buffers (BatchNorm running statistics cannot be batched this way) and no randomness of their own
(use the engine's sites instead of dropout layers).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from noisereg._compat.torch_private import batch_rnn_rules
from noisereg.engine.losses import training_loss
from noisereg.engine.replica_slices import on_replicas
from noisereg.engine.vocabulary import HIDDEN_SITES
from noisereg.seeding import derive_seed, seeded_global_rng
from noisereg.sites.activations import noisy_value

__all__ = ["ModuleSpec", "StackedModule", "initial_module"]


@dataclass(frozen=True)
class ModuleSpec:
    """Any model, built by ``factory()`` (no arguments; a top-level function or class so that worker
    processes can receive it). It maps inputs [n, ...] to outputs [n, out_features].

    ``name`` labels the model in reports. The module's own initialization runs under each replica's
    seed (see :func:`initial_module`). ``hidden``: per hidden layer, the qualified names of the
    submodules whose outputs take its ``before`` and ``after`` noise (the same name twice where the layer
    has no separate activation module, e.g. a GRU's output sequence).
    """

    factory: Callable[[], nn.Module]
    out_features: int
    name: str = "module"
    hidden: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not callable(self.factory):
            raise TypeError(f"factory={self.factory!r} must be a callable that returns an nn.Module")
        if isinstance(self.out_features, bool) or not isinstance(self.out_features, int) or self.out_features < 1:
            raise ValueError(f"out_features={self.out_features!r} must be an int >= 1")
        if not isinstance(self.hidden, tuple) or not all(
            isinstance(h, tuple) and len(h) == 2 and all(isinstance(n, str) for n in h) for h in self.hidden
        ):
            raise TypeError(f"hidden={self.hidden!r} must be a tuple of (before, after) module-name pairs")


def initial_module(spec: ModuleSpec, seed: int) -> nn.Module:
    """The module of the replica with root ``seed``: ``spec.factory()`` with torch's global generator
    seeded from ``derive_seed(seed, "init")`` by :func:`~noisereg.seeding.seeded_global_rng`, so the
    caller's global random state is left as it was."""
    with seeded_global_rng(derive_seed(seed, "init")):
        module = spec.factory()
    if not isinstance(module, nn.Module):
        raise TypeError(f"ModuleSpec.factory returned {type(module).__name__}, expected an nn.Module")
    if any(True for _ in module.buffers()):
        names = [n for n, _ in module.named_buffers()]
        raise ValueError(
            f"ModuleSpec.factory built a module with buffers {names}; modules with buffers (BatchNorm) "
            "are not supported"
        )
    return module


class StackedModule:
    """R replicas of one module: parameters in one flat buffer and a vmapped forward pass."""

    def __init__(self, spec: ModuleSpec, seeds: Sequence[int], *, device: torch.device, dtype: torch.dtype) -> None:
        self.spec, self.replicas, self.device, self.dtype = spec, len(seeds), device, dtype
        modules = [initial_module(spec, seed) for seed in seeds]
        self.base = modules[0].to(device=device, dtype=dtype)
        self.names = [name for name, _ in self.base.named_parameters()]
        self.shapes = [tuple(p.shape) for _, p in self.base.named_parameters()]
        self.numel = self.replicas * sum(math.prod(s) for s in self.shapes)
        self.params = torch.zeros(self.numel + -self.numel % 64, device=device, dtype=dtype)
        for view, name in zip(self.views(self.params), self.names, strict=True):
            view.copy_(torch.stack([dict(m.named_parameters())[name].detach() for m in modules]))

        if any(isinstance(m, nn.RNNBase) for m in self.base.modules()):
            batch_rnn_rules()
        self._vmapped = vmap(self._one, randomness="error")
        self.vectorized = True
        self._noise: tuple[object, int, int] | None = None  # (hidden streams, step, epoch) while training
        for layer, places in enumerate(spec.hidden):
            for which, name in enumerate(places):
                try:
                    module = self.base.get_submodule(name)
                except AttributeError as error:
                    raise ValueError(
                        f"ModuleSpec.hidden[{layer}] names {name!r}, which the module does not have"
                    ) from error
                module.register_forward_hook(self._hidden_hook(layer, which, name))

    def _hidden_hook(self, layer: int, which: int, name: str) -> Callable[..., object]:
        """The forward hook that puts hidden layer ``layer``'s before (``which`` 0) or after (1) noise on
        ``name``'s output, each replica's slice from its own streams, while training."""
        label = f"{HIDDEN_SITES[which]!r} noise of hidden layer {layer} ({name!r})"

        def hook(module: nn.Module, args: tuple, output: object) -> object:
            if self._noise is None:
                return None
            hidden, step, epoch = self._noise
            streams = hidden[layer][which]  # type: ignore[index]
            if not streams:
                return None

            def noisy(stack: Tensor) -> Tensor:
                stack = stack.clone()  # the streams may write in place; the module's output is autograd's
                for stream in streams:
                    stack, _ = stream.apply(stack, step=step, epoch=epoch, slot=(layer, which))
                return stack

            if not self.vectorized:
                raise ValueError(
                    f"{label}: hidden-layer noise needs the module under vmap, which {self.spec.name!r} is not"
                )
            return noisy_value(output, lambda x, packed: on_replicas(x, noisy), where=label)

        return hook

    def views(self, flat: Tensor) -> list[Tensor]:
        """Views [R, *shape] of each parameter in a flat buffer laid out like ``params``."""
        out, offset = [], 0
        for shape in self.shapes:
            size = self.replicas * math.prod(shape)
            out.append(flat[offset : offset + size].view((self.replicas, *shape)))
            offset += size
        return out

    def blocks(self, flat: Tensor) -> list[Tensor]:
        return [v.reshape(self.replicas, -1) for v in self.views(flat)]

    def torch_index(self) -> Tensor:
        """[R, P]: position in ``params`` of each replica's parameters in ``named_parameters`` order."""
        return torch.cat(self.blocks(torch.arange(self.params.numel(), device=self.device)), dim=1)

    def export_state(self) -> dict[str, Tensor]:
        return {name: v.clone() for name, v in zip(self.names, self.views(self.params), strict=True)}

    def input_view(self, x: Tensor) -> Tensor:
        return x

    def augment(self, x: Tensor) -> Tensor:
        return x

    def _one(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(self.base, params, (x,))

    def forward(self, flat: Tensor, x: Tensor) -> Tensor:
        """Outputs zᵀ [R, out, n] for inputs x [R, n, ...].

        Under ``vmap`` where torch can batch the module's operations; otherwise (e.g. ``nn.GRU``,
        which has no batching rule) one replica after another.
        """
        params = dict(zip(self.names, self.views(flat), strict=True))
        if self.vectorized:
            try:
                return self._vmapped(params, x).transpose(1, 2)
            except RuntimeError as error:
                if "randomness" in str(error):
                    raise ValueError(
                        f"the module of {self.spec.name!r} draws random numbers (dropout?); replicas need "
                        "their own streams: put that noise on an engine site instead"
                    ) from error
                if "Batching rule not implemented" not in str(error):
                    raise
                self.vectorized = False
        out = [self._one({k: v[r] for k, v in params.items()}, x[r]) for r in range(self.replicas)]
        return torch.stack(out).transpose(1, 2)

    def forward_eval(self, x: Tensor, rows: int | None = None) -> Tensor:
        return self.forward(self.params, x)

    def compute_grads(
        self, loss: str, x: Tensor, q: Tensor, hidden: object, *, step: int, epoch: int, grads: Tensor
    ) -> Tensor:
        """Write d(mean loss)/d params of every replica into ``grads``; return the outputs zᵀ."""
        leaf = self.params.detach().requires_grad_(True)
        self._noise = (hidden, step, epoch)
        try:
            with torch.enable_grad():
                zT = self.forward(leaf, x)
                (grad,) = torch.autograd.grad(training_loss(loss, zT, q).sum(), leaf)
        finally:
            self._noise = None
        grads.copy_(grad)
        return zT.detach()
