"""Noise on weights: W̃ = noise(W) in training, the gradient at W̃ applied to the clean W.

Each selected parameter gets a ``torch.nn.utils.parametrize`` parametrization whose forward returns
W + δ with δ = noise(W) − W drawn without gradient. So

- the forward and backward passes run at the noisy weights W̃, and ∂L/∂W = ∂L/∂W̃ exactly: the
  gradient taken at W̃ is the update applied to the clean W (for every noise kind, multiplicative ones
  included, since δ carries no gradient);
- the Parameter object is the one the model had: an optimizer built before attaching keeps working;
- ``state_dict()`` holds the clean weights under their usual names (``fc.weight``, not
  ``fc.parametrizations.weight.original``), so a checkpoint saved mid-training loads into the clean
  model, and a clean checkpoint loads into the noisy one;
- in eval mode the parametrization returns W itself.

When δ is drawn (``resample``): ``"step"`` (default) once per training forward of the model the noise
was attached to, so every use of a weight inside one forward (an unrolled LSTMCell, a weight shared by
two layers) sees the same noise — Graves 2013's one sample per training sequence when a forward is one
batch of sequences; ``"forward"`` on every use of the weight; ``"manual"`` held until
``handle.resample()``. The layer's ``applied`` counter and schedule step count draws (a weight may be
read several times per forward: nn.LSTM reads each weight more than once). Graves (2011) notes that
early stopping is usually needed with weight noise.

``torch.save(model)`` (pickling the whole model) is refused by torch for parametrized modules; save
``model.state_dict()``, which is clean.

``increments`` puts the noise into the weights instead (optimizer noise, as gradient noise is): before
each training forward of the model, ξ_t = noise(W) − W is drawn (no gradient) and added to the stored
weights, so the gradient is taken at the weights as they are and the optimizer's update applies to
them, ξ included:

- ``"independent"``: W ← W + ξ_t — perturbed gradient descent, w_{t+1} = w_t − η∇L(w_t) + ξ_{t+1}
  (the ξ add up to a random walk);
- ``"anticorrelated"``: W ← W + ξ_t − ξ_{t−1} (ξ_{−1} = 0) — Anti-PGD (Orvieto et al., ICML 2022),
  w_{t+1} = w_t − η∇L(w_t) + ξ_{t+1} − ξ_t. With z_t = w_t − ξ_t this is z_{t+1} = z_t − η∇L(z_t + ξ_t):
  the default ``increments="none"`` site, whose clean weights are z_t, with the same draws; the two
  differ in what evaluation sees (w_t = z_t + ξ_t here, z_t there).

No parametrization is registered: the weights are the iterates, in eval mode too, and ``remove()``
takes the hook off and leaves them as they are (set the strength to 0 for a last step, by a schedule,
to take ξ_t out: the anticorrelated formula then adds −ξ_t). Any noise kind gives ξ_t = noise(W) − W
(Gaussian: σ·ε; FilterGaussian: σ‖W_i‖·ε_i per filter).
"""

from __future__ import annotations

from typing import Any, Literal, cast

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from noisereg.layers import NoiseLayer, registry
from noisereg.noise.base import NoiseKind
from noisereg.sites.placement import Placement, run_beside, stream_seed
from noisereg.sites.selectors import Selector, parameter, select_parameters

__all__ = ["WeightNoise", "place_weights"]

Resample = Literal["step", "forward", "manual"]
_RESAMPLE = ("step", "forward", "manual")
Increments = Literal["none", "independent", "anticorrelated"]
_INCREMENTS = ("none", "independent", "anticorrelated")


class WeightNoise(nn.Module):
    """The parametrization: W ↦ W + δ in training, W in eval; δ = noise(W) − W, held per ``resample``."""

    def __init__(self, layer: NoiseLayer, resample: Resample) -> None:
        super().__init__()
        self.noise = layer
        self.resample = resample
        self.stale = True
        self.registered = False  # torch evaluates a parametrization while registering it: draw nothing then
        self._delta: Tensor | None = None

    def forward(self, weight: Tensor) -> Tensor:
        if not self.registered or not self.noise.active:
            return weight
        held = self._delta
        fits = held is not None and (held.shape, held.device, held.dtype) == (weight.shape, weight.device, weight.dtype)
        if self.stale or self.resample == "forward" or (held is not None and not fits):
            clean = weight.detach()
            noisy = self.noise(clean)
            self._delta = None if noisy is clean else (noisy - clean).to(weight.dtype)
            self.stale = False
        return weight if self._delta is None else weight + self._delta

    def noise_state(self) -> dict[str, object]:
        """The noise layer's state plus the held δ (what ``handle.state_dict()`` saves for this weight)."""
        held = None if self.stale or self._delta is None else self._delta.clone()
        return {**self.noise.get_extra_state(), "held": held}

    def load_noise_state(self, state: dict[str, object]) -> None:
        self.noise.set_extra_state(state)
        held = state.get("held")
        self._delta = held if isinstance(held, Tensor) else None
        self.stale = held is None

    def extra_repr(self) -> str:
        return f"resample={self.resample!r}"


def _clean_order(owner: nn.Module) -> tuple[list[str], list[str]]:
    """The order of ``owner``'s parameters and state-dict keys recorded before its first weight noise,
    so that any sequence of attaching and removing restores them exactly."""
    return registry.clean_order(owner, lambda m: (list(m._parameters), list(m.state_dict(keep_vars=True))))


def _state_hooks(owner: nn.Module, local: str) -> tuple[Any, Any]:
    """State-dict hooks that show ``local`` under its clean name and place, and accept clean checkpoints."""
    stored, order = f"parametrizations.{local}.original", _clean_order(owner)[1]
    rank = {name: i for i, name in enumerate(order)}

    def save(mod: nn.Module, state: dict, prefix: str, local_metadata: Any) -> None:
        # The module's own keys are the tail of the dict when its post-hook runs.
        tail = []
        for key in reversed(list(state)):
            if not key.startswith(prefix):
                break
            tail.append(key)
        items = [(k[len(prefix) :], state.pop(k)) for k in reversed(tail)]
        items = [(local if k == stored else k, v) for k, v in items]
        items.sort(key=lambda kv: rank.get(kv[0], len(rank)))
        state.update((prefix + k, v) for k, v in items)

    def load(mod: nn.Module, state: dict, prefix: str, *args: Any) -> None:
        if prefix + local in state and prefix + stored not in state:
            state[prefix + stored] = state.pop(prefix + local)

    return owner.register_state_dict_post_hook(save), owner.register_load_state_dict_pre_hook(load)


def _noise_state_hooks(owner: nn.Module, local: str, param: WeightNoise) -> tuple[Any, Any]:
    """State-dict hooks that keep the noise layer's own state (``..._extra_state``) out of the model's
    checkpoint: it travels with the handle's ``state_dict()``, so the model's stays clean."""

    def key(mod: nn.Module, prefix: str) -> str:
        index = next(i for i, p in enumerate(_entries(mod, local)) if p is param)
        return f"{prefix}parametrizations.{local}.{index}.noise._extra_state"

    def save(mod: nn.Module, state: dict, prefix: str, local_metadata: Any) -> None:
        state.pop(key(mod, prefix), None)

    def load(mod: nn.Module, state: dict, prefix: str, *args: Any) -> None:
        state.setdefault(key(mod, prefix), param.noise.get_extra_state())

    # Registered before _state_hooks, so the key is gone before its reordering sees the tail.
    return (owner.register_state_dict_post_hook(save), owner.register_load_state_dict_pre_hook(load))


def _entries(owner: nn.Module, local: str) -> nn.ModuleList:
    """The parametrizations registered on ``owner``'s tensor ``local``, in the order they apply."""
    # torch types module attributes as Tensor | Module; parametrize keeps a ModuleDict of lists here.
    return cast(nn.ModuleList, cast(nn.ModuleDict, owner.parametrizations)[local])


def _restore_parameter_order(owner: nn.Module) -> None:
    order = _clean_order(owner)[0]
    current = dict(owner._parameters)
    owner._parameters.clear()
    for key in [k for k in order if k in current] + [k for k in current if k not in order]:
        owner._parameters[key] = current[key]
    plist = getattr(owner, "parametrizations", {})
    if not any(isinstance(p, WeightNoise) for entries in plist.values() for p in entries):
        registry.forget_clean_order(owner)


def _place_one(
    root: nn.Module, kind: NoiseKind, name: str, owner: nn.Module, local: str, resample: Resample, seed: int | None
) -> Placement:
    layer = NoiseLayer(kind, seed=stream_seed(seed, "weights", name))
    param = WeightNoise(layer, resample)
    plist = getattr(owner, "parametrizations", None)
    ours_only = not (isinstance(plist, nn.ModuleDict) and local in plist)
    _clean_order(owner)
    parametrize.register_parametrization(owner, local, param)
    param.registered = True
    hooks = [*_noise_state_hooks(owner, local, param), *(_state_hooks(owner, local) if ours_only else ())]
    if resample == "step":

        def mark(module: nn.Module, args: tuple) -> None:
            if module.training:
                param.stale = True

        hooks.append(root.register_forward_pre_hook(torch.compiler.disable(mark)))

    def undo() -> None:
        for hook in hooks:
            hook.remove()
        entries = _entries(owner, local)
        if len(entries) == 1:
            parametrize.remove_parametrizations(owner, local, leave_parametrized=False)
        else:
            del entries[next(i for i, p in enumerate(entries) if p is param)]
        _restore_parameter_order(owner)

    def refresh() -> None:
        param.stale = True

    key = ("weights", parameter(owner, local))
    return Placement(
        "weights",
        f"weight {name!r}",
        key,
        layer,
        owner,
        undo,
        refresh,
        save=param.noise_state,
        load=param.load_noise_state,
    )


def _check_untied(root: nn.Module, chosen: list[tuple[str, nn.Module, str]]) -> None:
    names: dict[int, list[str]] = {}
    for name, p in root.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    for name, owner, local in chosen:
        p = parameter(owner, local)
        if not p.is_floating_point():
            raise ValueError(f"weight noise on {name!r}: the parameter has dtype={p.dtype}, not floating point")
        if len(names.get(id(p), ())) > 1:
            raise ValueError(
                f"weight noise on {name!r}: the parameter is shared with {names[id(p)]}; noise on tied "
                "weights is not supported (select one name and untie the weights, or use another site)"
            )


def _place_walk(
    root: nn.Module, kind: NoiseKind, name: str, owner: nn.Module, local: str, increments: Increments, seed: int | None
) -> Placement:
    """Noise added to the stored weight before each training forward of ``root`` (module docstring)."""
    # the same stream as the increments="none" site: the Anti-PGD identity holds draw for draw
    layer = NoiseLayer(kind, seed=stream_seed(seed, "weights", name))
    weight = parameter(owner, local)
    state: dict[str, Tensor | None] = {"previous": None}

    @torch.no_grad()
    def walk(module: nn.Module, args: tuple) -> None:
        if not module.training:  # a step of the optimizer's walk happens in training forwards only
            return
        noisy = run_beside(layer, module, weight.detach())
        xi = None if noisy is weight else (noisy - weight).to(weight.dtype)
        step = xi
        if increments == "anticorrelated":
            previous, state["previous"] = state["previous"], xi
            if previous is not None:
                step = -previous if xi is None else xi - previous
        if step is not None:
            weight.add_(step)

    hooks = [root.register_forward_pre_hook(torch.compiler.disable(walk))]
    registry.add_beside(root, layer)

    def undo() -> None:
        for hook in hooks:
            hook.remove()
        registry.remove_beside(root, layer)

    def save() -> dict[str, object]:
        return {**layer.get_extra_state(), "previous": state["previous"]}

    def load(saved: dict[str, object]) -> None:
        layer.set_extra_state(saved)
        previous = saved.get("previous")
        state["previous"] = previous if isinstance(previous, Tensor) else None

    key = ("weights", weight)
    return Placement("weights", f"weight {name!r} ({increments})", key, layer, root, undo, save=save, load=load)


def place_weights(
    root: nn.Module,
    kind: NoiseKind,
    *,
    select: Selector | None,
    biases: bool,
    resample: Resample,
    seed: int | None,
    increments: Increments = "none",
) -> list[Placement]:
    """A :class:`WeightNoise` parametrization on each selected parameter, or with ``increments`` a hook
    that adds the noise to the stored weights before each training forward (see the module docstring)."""
    if resample not in _RESAMPLE:
        raise ValueError(f"{resample=} must be one of {_RESAMPLE}")
    if increments not in _INCREMENTS:
        raise ValueError(f"{increments=} must be one of {_INCREMENTS}")
    if increments != "none" and resample != "step":
        raise ValueError(f"{increments=} draws ξ once per training forward: it takes resample='step', not {resample!r}")
    chosen = select_parameters(root, select, biases=biases)
    _check_untied(root, chosen)
    if increments != "none":
        return [_place_walk(root, kind, name, owner, local, increments, seed) for name, owner, local in chosen]
    return [_place_one(root, kind, name, owner, local, resample, seed) for name, owner, local in chosen]
