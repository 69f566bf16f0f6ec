"""A user's MLP on the stacked MLP kernels: the vectorized path at the built-in engine's speed.

A model whose forward is a chain of ``Linear`` layers (with biases) and one kind of activation, with
``nn.Dropout`` and ``nn.Identity`` modules between them, an optional flatten of each sample first and
an optional reshape of the output last — an ``nn.Sequential`` or a module of the user's own class, read
with ``torch.fx`` (:mod:`noisereg.engine.mlp_layout`) — is the network
:class:`~noisereg.engine.replicas.StackedMLP` trains with hand-written batched kernels: one batched
matmul per layer and direction, the activation's derivative kept from the forward, the
optimizer's fused update on one flat buffer. Through ``vmap`` over ``functional_call`` the same step
cost 5-7× more (``benchmarks/study_speed.py --generic``), most of it Python and autograd bookkeeping
for tensors this small.

:func:`lowered_group` gives such tasks a :class:`~noisereg.engine.lowered_mlp.LoweredMLP` in place of a
:class:`~noisereg.engine.vectorized.VectorizedGroup`, with the same interface, so the vectorized path's
loop (batch orders, evaluations, results) is unchanged. Each replica keeps what the per-replica path
gives it: its module built by the factory under its own seed (the stack starts from those weights), its
batch order, and its noise drawn from the very streams of the noise layers :func:`noisereg.attach`
put on its own (never run) module, each draw the shape of a lone replica's, in the order its hooks
would have run. So a replica's result does not depend on its group and equals the per-replica path's
up to rounding (``tests/engine/test_lowering.py`` checks it in float64).

The kernels apply every noise kind of :mod:`noisereg.noise` (additive or multiplicative Gaussian
noise and Gaussian dropout without clip in closed form, the others by their own functions on each
replica's slice, differentiated by autograd in a hidden layer), of a constant strength or a
schedule (read at the step the replica's own layer would count: its training forwards for the input
and activations, its draws for a weight, the optimizer's steps for the gradients, from where that
count stands when training starts), on the input, the hidden activations, the Linear layers'
parameters (weight noise drawn once a step, attach's default, or at every use, which in an MLP's
forward is once a step too: the forward and backward at W + δ, the gradient applied to the clean W;
or as increments on the stored weights before each step's forward, W + ξ_t or Anti-PGD's
W + ξ_t − ξ_{t−1}, which ``vmap`` cannot do, so that elsewhere such replicas train one by one) and
the gradients (each replica's draw over its chosen
gradients flattened in its optimizer's order, before the update, scaled by the learning rate where
asked, as attach's step pre-hook draws it); target noise is called on each replica's batch targets as
its loop calls it (not with bce, nor mixup or CutMix). The model's own dropout draws each replica's
masks from torch's generator in that replica's state, as it draws them trained alone
(:class:`~noisereg.engine.model_randomness.ReplicaDropout`).

Anything else goes to the ``vmap`` path: other layers or orderings, frozen parameters or hooks of the
model's own, other noise kinds or places, optimizers other than SGD (Nesterov or not, no dampening), Adam
and AdamW (no AMSGrad), losses other than the ``ce``/``bce``/``mse`` of
:func:`noisereg.study.run_model` or torch's ``CrossEntropyLoss``/``BCEWithLogitsLoss``/``MSELoss``
with default arguments, a device other than the CPU (weight noise drawn only when asked trains per
replica).
:func:`lowering_refusal` says which of these the settings show; the rest is found on the built model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from noisereg.engine.group import cache_sized_stack
from noisereg.engine.loop import LoopTask, attach_sites, seeded_model
from noisereg.engine.lowered_mlp import LoweredMLP, Slots
from noisereg.engine.lowering_rules import data_fits, loss_name, optim_spec, plain_noise
from noisereg.engine.mlp_layout import Layout, mlp_of
from noisereg.engine.specs import OptimSpec
from noisereg.engine.vectorizable import refusal, same_setting
from noisereg.layers import NoiseLayer
from noisereg.sites.gradients import gradient_parameters
from noisereg.sites.handles import TargetsHandle
from noisereg.sites.mixing import MixingLayer
from noisereg.sites.selectors import clean_name

__all__ = ["LOWERED", "lowered_group", "lowering_refusal", "on_kernels"]

LOWERED = (
    "the replicas of a fold stacked on the built-in engine's MLP kernels (the model is an MLP), "
    "each with its own noise streams"
)


def lowering_refusal(task: LoopTask) -> str | None:
    """Why ``task`` cannot train on the stacked MLP kernels (settings only), or None."""
    reason = refusal(task, kernels=True)
    if reason is not None:
        return reason
    if torch.device(task.device).type != "cpu" or task.dtype not in (torch.float32, torch.float64):
        return "the kernels' noise streams run on the CPU in float32/float64"
    if loss_name(task) is None:
        return "the loss is not ce, bce or mse (torch's with default arguments)"
    x = task.train[0]  # refusal() leaves tensors only
    if not isinstance(x, Tensor) or x.dim() < 2 or not x.is_floating_point():
        return "the inputs are not float samples [samples, features...]"
    for j, site in enumerate(task.sites):
        if site.at == "targets" and loss_name(task) == "bce":
            return f"site {j}: target noise on bce's probabilities is drawn by the vmap path"
        if site.at not in ("input", "activations", "weights", "targets", "gradients"):
            return f"site {j}: noise on {site.at} is drawn by the vmap path"
    return None


def _places(
    modules: list[nn.Module],
    handles: list[list[Any]],
    layout: Layout,
    parameters: list[dict[int, int]],
    settings: list[dict[int, tuple[Any, ...]]],
) -> Slots | str:
    """Each replica's noise layers by where the kernels apply them — ("input", 0), ("before", i) or
    ("after", i) for hidden layer i, ("weights", k) for the k-th parameter in state-dict order,
    ("independent", k) or ("anticorrelated", k) for its increments, ("gradients", 0) — one list per
    layer of a replica, in the order its hooks run: the hook on the earlier module first, then the
    order of the sites (hooks, or parametrizations of one weight, run in the order they were
    attached); with each list, what its layers share: their kind's name, the step their counts stand
    at, and for the gradients the parameters drawn over (k, in the optimizer's order) and whether the
    noise is scaled by the learning rate. The model's ``nn.Dropout`` is a list of no layers, with
    ("dropout", 0, p), at its place, between the noise before and after the module.
    ``parameters[r]``: id of replica r's parameter -> k; ``settings[r]``: id of replica r's handle ->
    (weight noise's increments,) or (gradient noise's k, scaled). A string says why a layer has no
    place in the kernels."""
    count = len(modules)
    slots: dict[tuple[Any, ...], list[NoiseLayer | None]] = {}
    # (position, module name) -> (place, rank along the forward): the forward's steps in order, the
    # place moving from the input to before activation i (after Linear i) to after it
    where: dict[tuple[str, str], tuple[tuple[str, int], int]] = {("before", ""): (("input", 0), 0)}
    place, rank, hidden = ("input", 0), 1, 0
    for step in layout.steps:  # the noise before a step at its rank, the step's own at +1, after at +2
        if step.name is not None:
            where[("before", step.name)] = (place, rank)
        if step.kind == "linear":  # the last one's output is the model's: no place for noise there
            place, rank = ("before", hidden) if hidden < len(layout.linears) - 1 else ("output", 0), 0
        elif step.kind == "activation":
            place, rank, hidden = ("after", hidden), 0, hidden + 1
        elif step.kind == "dropout":  # the model's own, between the noise before and after it
            slots[(place, rank + 1, -1, ("dropout", 0, float(step.value.p)))] = [None] * count
        if step.name is not None and place[0] != "output":
            where[("after", step.name)] = (place, rank + 2)
        rank += 3
    for r, (module, own) in enumerate(zip(modules, handles, strict=True)):
        names = {id(m): n for n, m in module.named_modules()}
        for j, handle in enumerate(own):
            setting = settings[r].get(id(handle), ())
            for placement in handle._placements:
                position, placed, *extra = placement.key
                if position == "targets":  # called on the batch's targets (LoweredMLP._targets)
                    continue
                found: tuple[tuple[str, int], int] | None
                detail: tuple[Any, ...] = ()
                if position == "gradients":  # one draw over the chosen gradients in the optimizer's order
                    found, detail = (("gradients", 0), 0), setting
                elif position == "weights":
                    mode = setting[0] if setting else "none"
                    place = ("weights" if mode == "none" else mode, parameters[r].get(id(placed), -1))
                    found = (place, 0) if id(placed) in parameters[r] else None
                else:
                    found = where.get((position, names.get(id(placed), "?")))
                if found is None or extra not in ([], [0]):
                    return f"noise {placement.where} is not on the input, a hidden layer, a Linear's parameter or the gradients"
                if not plain_noise(placement.layer):
                    return f"noise {placement.where} is not a plain noise layer of a number or schedule's strength"
                # one kind a stream (its closed form, if any); one step count (a weight's first of two
                # noises has counted one before training: torch evaluates it registering the next)
                detail = (type(placement.layer.kind).__name__, placement.layer.step, *detail)
                slot = slots.setdefault((found[0], found[1], j, detail), [None] * count)
                slot[r] = placement.layer
    out: Slots = {}
    for (place, _, _, detail), layers in sorted(slots.items(), key=lambda item: item[0][:3]):
        out.setdefault(place, []).append((layers, detail))
    return out


def lowered_group(tasks: Sequence[LoopTask]) -> LoweredMLP | None:
    """The tasks' replicas on the stacked MLP kernels, or None where they do not apply (see
    :func:`lowering_refusal`; the model and the placed noise are checked on the built modules).
    The tasks must differ in seed and sites only, as a vectorized group's."""
    first = tasks[0]
    if any(lowering_refusal(task) is not None for task in tasks):
        return None
    loss = loss_name(first)
    modules: list[nn.Module] = []
    handles: list[list[Any]] = []
    parameters: list[dict[int, int]] = []
    targets: list[list[TargetsHandle]] = []
    settings: list[dict[int, tuple[Any, ...]]] = []  # what _places reads of each replica's handles
    rng: list[Tensor] = []
    try:
        for task in tasks:
            with seeded_model(task) as module:
                if not modules:
                    found = mlp_of(module)
                    if isinstance(found, str):
                        return None
                    layout, linears = found, found.linears
                    names = [n for n, _ in module.named_parameters()]
                named = list(module.named_parameters())
                if [n for n, _ in named] != names:
                    return None
                modules.append(module)
                # the parameters in the kernels' order (weight, bias per Linear), before weight noise
                # moves them under a parametrization
                order = {name: k for k, name in enumerate(f"{lin}.{p}" for lin in linears for p in ("weight", "bias"))}
                parameters.append({id(p): order[n] for n, p in named if n in order})
                own, on_targets = attach_sites(module, task, None)
                handles.append(own)
                targets.append(on_targets)
                attached = [site for site in task.sites if site.at != "gradients"]  # one handle each, in order
                setting: dict[int, tuple[Any, ...]] = {
                    id(h): (dict(s.options).get("increments", "none"),) for h, s in zip(own, attached, strict=True)
                }
                settings.append(setting)
                if any(site.at == "gradients" for site in task.sites):
                    # the lone loop's optimizer, built after weight noise as its loop builds it: the order
                    # of its parameters is the order of the gradient noise's draw
                    optimizer = task.optimizer(module.parameters())
                    more, _ = attach_sites(module, task, optimizer)
                    own += more
                    named_now = {id(p): clean_name(n) for n, p in module.named_parameters()}
                    in_order = [p for g in optimizer.param_groups for p in g["params"]]
                    for handle, site in zip(more, [s for s in task.sites if s.at == "gradients"], strict=True):
                        options = dict(site.options)
                        chosen = gradient_parameters(module, optimizer, options.get("select"))
                        columns = tuple(order[named_now[id(p)]] for p in in_order if id(p) in chosen)
                        setting[id(handle)] = (columns, bool(options.get("scale_by_lr", False)))
                if any(isinstance(h.layers[0], MixingLayer) for h in on_targets):
                    return None  # mixup and CutMix change the inputs too
                rng.append(torch.get_rng_state())  # where the lone replica's dropout starts drawing
        optim = optim_spec(first.optimizer(list(modules[0].parameters())))
        if isinstance(optim, OptimSpec):  # clipped in its step, after the gradient noise, as the lone loop clips
            optim = dataclasses.replace(optim, clip_grad_norm=first.clip_grad_norm)
        places = _places(modules, handles, layout, parameters, settings)
        x, y = first.train  # type: ignore[misc]
        if isinstance(optim, str) or isinstance(places, str) or not data_fits(layout.spec, loss, x, y, layout.head):
            return None
        group = LoweredMLP(tasks, layout, optim, cast(str, loss), modules, handles, places, targets, rng)
        handles = []  # the group removes them
        return group
    finally:
        for own in handles:
            for handle in own:
                handle.remove()


def _lowers(task: LoopTask) -> bool:
    """Whether the replicas of ``task`` train on the stacked MLP kernels: one replica's module and
    noise built, checked and dropped."""
    group = lowered_group([task])
    if group is None:
        return False
    group.close()
    return True


def _layout(task: LoopTask) -> Layout | str:
    """The layout of the model ``task``'s factory builds (one module built and dropped, the caller's
    random state left alone), or why the kernels do not take it."""
    with seeded_model(task) as model:
        return mlp_of(model)


def _builds_mlp(task: LoopTask) -> bool:
    """Whether ``task``'s factory builds a model the kernels take: a study asks once, not once per arm."""
    return not isinstance(_layout(task), str)


def kernel_stacks(tasks: Sequence[LoopTask]) -> list[range]:
    """Indices into ``tasks`` (replicas the kernels train) in the stacks they train in, one after
    another: consecutive runs of at most :func:`~noisereg.engine.group.cache_sized_stack` replicas,
    as the built-in engine chunks a group (the case-study grid's 120 replicas as one stack spent 10%
    more time in training than in stacks of 17)."""
    x, _ = tasks[0].train  # type: ignore[misc]
    layout = _layout(tasks[0])
    size = len(tasks)  # where the kernels refuse the model, lowered_group says so for the one stack
    if not isinstance(layout, str):
        size = cache_sized_stack(layout.spec, min(tasks[0].batch_size, len(x)), tasks[0].dtype)
    return [range(k, min(k + size, len(tasks))) for k in range(0, len(tasks), size)]


def on_kernels(tasks: Sequence[LoopTask]) -> list[bool]:
    """For each of ``tasks``, whether its replicas train on the stacked MLP kernels. The model is
    built once to see whether it is an MLP the kernels take; then each arm (its sites) once."""
    if not any(lowering_refusal(task) is None for task in tasks) or not _builds_mlp(tasks[0]):
        return [False] * len(tasks)
    arms: list[tuple[Any, bool]] = []
    out = []
    for task in tasks:
        known = next((lowered for sites, lowered in arms if same_setting(sites, task.sites)), None)
        if known is None:
            known = _lowers(task)
            arms.append((task.sites, known))
        out.append(known)
    return out
