"""Noise on gradients, for any ``torch.optim`` optimizer: g̃ = g + N(0, σ_t²) before each step.

Placed with an optimizer step pre-hook (``Optimizer.register_step_pre_hook``) rather than a wrapper
class or per-parameter gradient hooks:

- the noise is drawn once per optimizer step, which is the step t of Neelakantan et al.'s schedule;
  gradient hooks would fire once per backward and double the noise under gradient accumulation;
- it comes after gradient clipping and accumulation, and before the optimizer's own scaling (Adam's
  moments see the noisy gradient, as in the paper and optax's ``add_noise``);
- the user keeps their optimizer object, its ``state_dict`` and their training loop unchanged, and
  the hook's handle removes the noise exactly; a wrapper would have to be threaded through the loop.

With ``optimizer.step(closure)`` (LBFGS, Lightning's automatic optimization) the gradients are
computed inside the step: the noise is added after each call of the closure, so it lands on the fresh
gradients. The schedule's step t counts optimizer steps since attaching (unless ``bind_clock`` gives the model's
clock). The documented default is Neelakantan et al. 2015's annealed Gaussian noise,
:func:`annealed_gaussian`: σ_t² = η / (1 + t)^0.55 with η ∈ {0.01, 0.3, 1.0}. With
``scale_by_lr=True`` the perturbation is multiplied by each parameter group's current learning rate:
g̃ = g + lr_t·(noise(g) − g), i.e. N(0, (lr_t·σ_t)²) for Gaussian noise, so the noise follows a
learning-rate schedule. (SGLD also ties the variance to the step size, for posterior sampling — a
different goal.)

Under ``torch.distributed`` the gradient noise is the same on every rank, unlike the other sites'
per-rank streams: DDP averages the gradients before the step, so this noise lands on the whole
batch's gradient, as in one process, and ranks that added different noise would step to different
weights (DDP never synchronizes the weights again).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from noisereg._checks import check_type
from noisereg.layers import NoiseLayer, registry
from noisereg.noise.additive import Gaussian
from noisereg.noise.base import NoiseKind
from noisereg.schedules import Annealed, Clock
from noisereg.seeding import derive_seed
from noisereg.sites.placement import Placement
from noisereg.sites.selectors import Selector, clean_name, parameter, select_parameters

__all__ = ["annealed_gaussian", "gradient_parameters", "place_gradients"]


def annealed_gaussian(eta: float = 0.01, gamma: float = 0.55) -> Gaussian:
    """Neelakantan et al. 2015's gradient noise: Gaussian with variance σ_t² = η / (1 + t)^γ.

    ``eta`` is the paper's η (a variance; the paper tries 0.01, 0.3 and 1.0), ``gamma`` its decay 0.55.
    Returns ``Gaussian(std=Annealed(eta, gamma))``, a composition of public pieces.

    Args:
        eta: η >= 0, the variance at step 0.
        gamma: γ >= 0, the decay exponent (default 0.55).

    Returns:
        A :class:`~noisereg.noise.Gaussian` config whose ``std`` is an :class:`~noisereg.schedules.Annealed` schedule.

    Raises:
        TypeError, ValueError: ``eta`` or ``gamma`` not a finite number >= 0.

    >>> annealed_gaussian(0.3)
    Gaussian(std=Annealed(eta=0.3, gamma=0.55), clip=None)
    """
    return Gaussian(std=Annealed(eta=eta, gamma=gamma))


def gradient_parameters(root: nn.Module, optimizer: torch.optim.Optimizer, select: Selector | None) -> dict[int, str]:
    """id -> clean name of the parameters whose gradients the noise of :func:`place_gradients` takes."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"at='gradients' needs optimizer= a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if select is None:
        named = {id(p): clean_name(name) for name, p in root.named_parameters()}
    else:
        chosen_names = select_parameters(root, select, biases=True)
        named = {id(parameter(owner, local)): name for name, owner, local in chosen_names}
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    chosen = {pid: name for pid, name in named.items() if pid in in_optimizer}
    if not chosen:
        raise ValueError(
            f"at='gradients': none of the {len(named)} selected parameters is in the optimizer: build the "
            "optimizer from this model's parameters (or pass the model the optimizer trains)"
        )
    return chosen


def place_gradients(
    root: nn.Module,
    kind: NoiseKind,
    *,
    optimizer: torch.optim.Optimizer,
    select: Selector | None,
    scale_by_lr: bool,
    seed: int | None,
) -> list[Placement]:
    """Gradient noise on the model's parameters that ``optimizer`` updates (see the module docstring)."""
    chosen = gradient_parameters(root, optimizer, select)
    check_type(scale_by_lr, "scale_by_lr", bool, "True or False")
    # derive_seed, not stream_seed: one stream on every rank keeps DDP replicas identical (module docstring)
    layer = NoiseLayer(kind, seed=None if seed is None else derive_seed(seed, "gradients", type(optimizer).__name__))
    own = layer.clock = Clock(auto=False)

    @torch.no_grad()
    def noise(opt: torch.optim.Optimizer) -> None:
        # An optimizer step is training by definition: only noise_enabled(model, False) turns it off.
        layer.training = True
        if not layer.active:
            return
        buckets: dict[tuple[torch.device, torch.dtype], list[tuple[Tensor, float]]] = {}
        for group in opt.param_groups:
            for p in group["params"]:
                if id(p) in chosen and p.grad is not None:
                    if p.grad.is_sparse:
                        raise ValueError(f"gradient noise: parameter {chosen[id(p)]!r} has a sparse gradient")
                    buckets.setdefault((p.grad.device, p.grad.dtype), []).append((p.grad, float(group["lr"])))
        for grads in buckets.values():
            flat = torch.cat([g.reshape(-1) for g, _ in grads])
            noisy = layer(flat)
            if noisy is flat:
                continue
            for (grad, lr), chunk in zip(grads, noisy.split([g.numel() for g, _ in grads]), strict=True):
                chunk = chunk.view_as(grad)
                grad.copy_(grad + lr * (chunk - grad) if scale_by_lr else chunk)

    def add_noise(opt: torch.optim.Optimizer, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        # args holds the optimizer itself first, then step's own arguments.
        closure = kwargs.get("closure", args[1] if len(args) > 1 else None)
        if closure is None:
            noise(opt)
            return None

        # step(closure) computes the gradients inside the step (LBFGS, Lightning's automatic
        # optimization): the noise goes on after the closure's backward, not on stale gradients.
        def noisy_closure() -> Any:
            loss = closure()
            noise(opt)
            return loss

        if "closure" in kwargs:
            return args, {**kwargs, "closure": noisy_closure}
        return (args[0], noisy_closure, *args[2:]), kwargs

    def tick(opt: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        if layer.clock is own and layer.active:
            own.tick()

    hooks = [optimizer.register_step_pre_hook(add_noise), optimizer.register_step_post_hook(tick)]
    registry.add_beside(root, layer)

    def undo() -> None:
        for hook in hooks:
            hook.remove()
        registry.remove_beside(root, layer)

    key: tuple[Any, ...] = ("gradients", optimizer)
    where = f"gradients of {len(chosen)} parameters at {type(optimizer).__name__}.step"
    return [Placement("gradients", where, key, layer, None, undo)]
