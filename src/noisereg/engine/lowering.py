"""A user's MLP on the stacked MLP kernels: the vectorized path at the built-in engine's speed.

A model that is an ``nn.Sequential`` of ``Linear`` layers (with biases) separated by one kind of
activation (ReLU, Tanh, Sigmoid, GELU, ELU, SELU), with at most a ``Flatten`` of each sample before
the first ``Linear`` (an image MLP) and a ``Flatten`` after the last,
is the network :class:`~noisereg.engine.replicas.StackedMLP` trains with hand-written batched kernels:
one batched matmul per layer and direction, the activation's derivative kept from the forward, the
optimizer's fused update on one flat buffer. Through ``vmap`` over ``functional_call`` the same step
cost 5-7× more (``benchmarks/study_speed.py --generic``), most of it Python and autograd bookkeeping
for tensors this small.

:func:`lowered_group` gives such tasks a :class:`LoweredMLP` in place of a
:class:`~noisereg.engine.vectorized.VectorizedGroup`, with the same interface, so the vectorized path's
loop (batch orders, evaluations, results) is unchanged. Each replica keeps what the per-replica path
gives it: its module built by the factory under its own seed (the stack starts from those weights), its
batch order, and its noise drawn from the very streams of the noise layers :func:`noisereg.attach`
put on its own (never run) module, each draw the shape of a lone replica's, in the order its hooks
would have run. So a replica's result does not depend on its group and equals the per-replica path's
up to rounding (``tests/engine/test_lowering.py`` checks it in float64).

Anything else goes to the ``vmap`` path: other layers or orderings, frozen parameters or hooks of the
model's own, noise other than additive or multiplicative Gaussian or Gaussian dropout of a constant
strength without clip on the input or hidden activations (weights, gradients, targets, schedules),
optimizers other than SGD (no dampening or Nesterov), Adam and AdamW (no AMSGrad), losses other than
the ``ce``/``bce``/``mse`` of :func:`noisereg.study.run_model` or torch's ``CrossEntropyLoss``/
``BCEWithLogitsLoss``/``MSELoss`` with default arguments, a device other than the CPU, extra metrics.
:func:`lowering_refusal` says which of these the settings show; the rest is found on the built model.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from noisereg.engine.injection import SiteStream
from noisereg.engine.loop import LoopTask, attach_sites
from noisereg.engine.optim import StackedOptimizer
from noisereg.engine.replicas import StackedMLP
from noisereg.engine.specs import MLPSpec, OptimSpec
from noisereg.engine.vectorizable import refusal
from noisereg.engine.vocabulary import Activation
from noisereg.layers import NoiseLayer
from noisereg.noise import Gaussian, GaussianDropoutNoise, MultiplicativeGaussian
from noisereg.noise.base import NoiseKind
from noisereg.seeding import NoiseGenerator, derive_seed
from noisereg.streams import Stream

__all__ = ["LOWERED", "LoweredMLP", "builds_mlp", "lowered_group", "lowering_refusal", "lowers"]

LOWERED = (
    "the replicas of a fold stacked on the built-in engine's MLP kernels (the model is an nn.Sequential MLP), "
    "each with its own noise streams"
)
_ACTIVATIONS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.SELU: "selu"}
_LOSSES = {nn.CrossEntropyLoss: "ce", nn.BCEWithLogitsLoss: "bce", nn.MSELoss: "mse"}


def _activation(module: nn.Module) -> str | None:
    if type(module) in _ACTIVATIONS:
        return _ACTIVATIONS[type(module)]
    if type(module) is nn.GELU and module.approximate == "none":
        return "gelu"
    if type(module) is nn.ELU and module.alpha == 1.0:
        return "elu"
    return None


def _spec(model: nn.Module) -> tuple[MLPSpec, list[str], nn.Module | None, bool] | str:
    """(the MLP, the names of its Linear layers in order, the module after the last Linear, whether a
    ``Flatten`` of each sample comes first) or why not."""
    if type(model) is not nn.Sequential:
        return f"the model is a {type(model).__name__}, not an nn.Sequential of Linear layers and activations"
    children = list(model.named_children())
    tail = None
    if children and type(children[-1][1]) is nn.Flatten:
        tail = children.pop()[1]
    first = children[0][1] if children else None
    head = isinstance(first, nn.Flatten) and (first.start_dim, first.end_dim) == (1, -1)
    if head:  # an image MLP's first layer: each sample's features in one row, as the kernels take them
        children.pop(0)
    linears = [(n, m) for i, (n, m) in enumerate(children) if i % 2 == 0]
    acts = [m for i, (_, m) in enumerate(children) if i % 2 == 1]
    if not linears or len(acts) != len(linears) - 1:
        return "the Sequential does not alternate Linear layers and activations, ending with a Linear"
    if any(type(m) is not nn.Linear or m.bias is None for _, m in linears):
        return "a layer in a Linear's position is not an nn.Linear with a bias"
    names = {_activation(m) for m in acts}
    if None in names or len(names) > 1:
        return "the activations are not one kind of ReLU, Tanh, Sigmoid, GELU, ELU (alpha 1) or SELU"
    hooks = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    if any(True for _ in model.buffers()) or any(m.__dict__.get(h) for m in model.modules() for h in hooks):
        return "the model has buffers or hooks of its own"
    if not all(p.requires_grad for p in model.parameters()):
        return "some parameters are frozen (requires_grad=False)"
    sizes = [cast(nn.Linear, m) for _, m in linears]
    activation = cast(Activation, names.pop() if names else "relu")
    spec = MLPSpec(sizes[0].in_features, tuple(m.out_features for m in sizes[:-1]), sizes[-1].out_features, activation)
    return spec, [n for n, _ in linears], tail, head


def _loss_name(task: LoopTask) -> str | None:
    loss: Any = task.loss
    named = getattr(loss, "noisereg_loss", None)  # run_model's ce/bce/mse (noisereg.study.bridge.user.make_loss)
    if named in ("ce", "bce", "mse"):
        return str(named)
    kind = _LOSSES.get(type(loss))
    if kind is None or loss.reduction != "mean":
        return None
    if kind == "ce" and (loss.weight is not None or loss.label_smoothing != 0.0 or loss.ignore_index != -100):
        return None
    if kind == "bce" and (loss.weight is not None or loss.pos_weight is not None):
        return None
    return kind


def _optim(optimizer: torch.optim.Optimizer) -> OptimSpec | str:
    """The optimizer as an :class:`OptimSpec` (torch's update rules exactly), or why it is not one."""
    if len(optimizer.param_groups) != 1:
        return "the optimizer has several parameter groups"
    g = optimizer.param_groups[0]
    if g.get("maximize") or g.get("differentiable") or not isinstance(g["lr"], float):
        return "the optimizer maximizes, is differentiable or has a tensor learning rate"
    if type(optimizer) is torch.optim.SGD:
        if g["dampening"] != 0 or g["nesterov"]:
            return "SGD with dampening or Nesterov momentum"
        return OptimSpec("sgd", lr=g["lr"], momentum=g["momentum"], weight_decay=g["weight_decay"])
    if type(optimizer) in (torch.optim.Adam, torch.optim.AdamW):
        if g["amsgrad"] or not isinstance(g["betas"][0], float):
            return "Adam with AMSGrad or tensor betas"
        # AdamW is Adam with decoupled weight decay (torch's AdamW sets the flag)
        decoupled = type(optimizer) is torch.optim.AdamW or bool(g.get("decoupled_weight_decay", False))
        return OptimSpec(
            "adamw" if decoupled else "adam",
            lr=g["lr"],
            betas=tuple(g["betas"]),
            eps=g["eps"],
            weight_decay=g["weight_decay"],
        )
    return f"the optimizer is {type(optimizer).__name__}, not SGD, Adam or AdamW"


_KINDS = (Gaussian, MultiplicativeGaussian, GaussianDropoutNoise)  # SiteStream's closed forms


def _constant_kind(layer: Any) -> bool:
    """Whether ``layer`` is a plain noise layer of a kind the kernels apply in closed form (additive
    or multiplicative Gaussian, Gaussian dropout) at a constant strength, without clip, drawing from a
    Stream."""
    kind = getattr(layer, "kind", None)
    return (
        type(layer) is NoiseLayer
        and type(kind) in _KINDS
        and getattr(kind, "clip", None) is None
        and isinstance(getattr(kind, "strength", None), numbers.Real)
        and isinstance(layer.generator(torch.device("cpu")), Stream)
    )


def _off(kind: NoiseKind) -> NoiseKind:
    """``kind`` at its no-noise strength (a replica without noise at a place: its row is never drawn)."""
    return dataclasses.replace(kind, **{kind.strength_field: kind.identity})


def lowering_refusal(task: LoopTask) -> str | None:
    """Why ``task`` cannot train on the stacked MLP kernels (settings only), or None."""
    reason = refusal(task)
    if reason is not None:
        return reason
    if torch.device(task.device).type != "cpu" or task.dtype not in (torch.float32, torch.float64):
        return "the kernels' noise streams run on the CPU in float32/float64"
    if task.metrics:
        return "extra metrics are computed by the vmap path"
    if _loss_name(task) is None:
        return "the loss is not ce, bce or mse (torch's with default arguments)"
    x = task.train[0]  # refusal() leaves tensors only
    if not isinstance(x, Tensor) or x.dim() < 2 or not x.is_floating_point():
        return "the inputs are not float samples [samples, features...]"
    for j, site in enumerate(task.sites):
        if site.at not in ("input", "activations"):
            return f"site {j}: noise on {site.at} is drawn by the vmap path"
    return None


class LoweredMLP:
    """The replicas of ``tasks`` (a user's MLP, see the module docstring) on :class:`StackedMLP`,
    with :class:`~noisereg.engine.vectorized.VectorizedGroup`'s interface: ``train_step``, ``outputs``,
    ``state``, ``close``. Build it with :func:`lowered_group`, which checks that it applies."""

    def __init__(
        self,
        tasks: Sequence[LoopTask],
        spec: MLPSpec,
        linears: list[str],
        tail: nn.Module | None,
        head: bool,
        optim: OptimSpec,
        loss: str,
        modules: list[nn.Module],
        handles: list[list[Any]],
        places: dict[tuple[str, int], list[list[NoiseLayer | None]]],
    ) -> None:
        self.tasks, self.task, self.spec, self.loss, self.tail = list(tasks), tasks[0], spec, loss, tail
        self.head = head
        self.replicas = modules
        self._handles = handles
        self.names = linears
        dtype, count = self.task.dtype, len(tasks)
        self.model = StackedMLP(spec, count, device="cpu", dtype=dtype)
        states = []
        for module in modules:
            own = dict(module.named_parameters())
            states.append(
                {
                    f"{2 * i}.{p}": own[f"{name}.{p}"].detach().to(dtype)
                    for i, name in enumerate(linears)
                    for p in ("weight", "bias")
                }
            )
        self.model.load_state(states)
        self.grads = torch.zeros_like(self.model.params)
        self.optimizer = StackedOptimizer(optim, self.model.params, self.model.blocks)
        self.input: list[SiteStream] = []
        self.hidden: list[tuple[list[SiteStream], list[SiteStream]]] = [([], []) for _ in spec.widths]
        cpu = torch.device("cpu")
        for place, slots in places.items():
            for layers in slots:
                template = next(layer for layer in layers if layer is not None).kind
                kinds = [layer.kind if layer is not None else _off(template) for layer in layers]
                # a replica without noise here never draws (its σ = 0 row is skipped): any stream will do
                spare = next(layer for layer in layers if layer is not None).generator(cpu)
                gens = [layer.generator(cpu) if layer is not None else spare for layer in layers]
                stream = SiteStream(kinds, cast(list[NoiseGenerator], gens), name=f"noise at {place}")
                if place[0] == "input":
                    self.input.append(stream)
                else:
                    self.hidden[place[1]][0 if place[0] == "before" else 1].append(stream)
        self._step = 0

    def train_step(self, x: Tensor, y: Tensor) -> None:
        """One step of every replica on its batch ``x[r]``, ``y[r]``."""
        self._step += 1
        with torch.no_grad():
            if self.input:  # noise goes on a copy of the batch, contiguous: the streams add it in one pass
                x = x.to(self.task.dtype, memory_format=torch.contiguous_format, copy=True)
            # a sample's values in the same order flattened or not: its input noise is drawn alike
            x = x.reshape(x.shape[0], x.shape[1], -1)
            for stream in self.input:
                noisy, _ = stream.apply(x, step=self._step, epoch=0, slot="input")
                if noisy is not x:
                    x.copy_(noisy)
            xb = self.model.augment(x.to(self.task.dtype))
            self.model.compute_grads(
                self.loss, xb, self._targets(y), self.hidden, step=self._step, epoch=0, grads=self.grads
            )
            self.optimizer.step(self.grads)

    def _targets(self, y: Tensor) -> Tensor:
        """The batches' targets [R, B] in the kernels' representation (engine.losses)."""
        out = self.spec.out_features
        if self.loss == "bce":
            return y.reshape(y.shape[0], -1).to(self.task.dtype)
        if self.loss == "ce":
            return nn.functional.one_hot(y.long(), out).to(self.task.dtype)
        return y.to(self.task.dtype).reshape(y.shape[0], -1, out)

    @torch.no_grad()
    def outputs(self, x: Tensor) -> Tensor:
        """Every replica's outputs ``[R, n, ...]`` on the same inputs ``x``, as its module returns them."""
        x = x.reshape(len(x), -1)
        stacked = self.model.augment(x.to(self.task.dtype)).expand(len(self.tasks), *x.shape[:-1], -1)
        out = self.model.forward_eval(stacked.contiguous()).transpose(1, 2)
        if self.tail is None:
            return out
        return torch.stack([self.tail(o) for o in out.unbind(0)])

    def state(self, r: int) -> dict[str, Tensor]:
        """Replica r's state dict, keyed as its module's, on the CPU."""
        stacked = self.model.export_state()
        return {
            f"{name}.{p}": stacked[f"{2 * i}.{p}"][r].detach().to("cpu").clone()
            for i, name in enumerate(self.names)
            for p in ("weight", "bias")
        }

    def close(self) -> None:
        """Take every replica's noise off."""
        for handles in self._handles:
            for handle in handles:
                handle.remove()


def _places(
    modules: list[nn.Module], handles: list[list[Any]], children: list[str], head: bool
) -> dict[tuple[str, int], list[list[NoiseLayer | None]]] | str:
    """Each replica's noise layers by where the kernels apply them — ("input", 0), ("before", i) or
    ("after", i) for hidden layer i — one list per layer of a replica, in the order its hooks run:
    the hook on the earlier module first, then the order of the sites (hooks on one module run in the
    order they were attached). A string says why a layer has no place in the kernels."""
    # (position, module name) -> (place, rank of the module): children alternate Linear and activation
    where: dict[tuple[str, str], tuple[tuple[str, int], int]] = {("before", ""): (("input", 0), 0)}
    if head:  # noise before or after the Flatten: the input's values, in the same order
        flatten, *children = children
        where |= {("before", flatten): (("input", 0), 1), ("after", flatten): (("input", 0), 2)}
    where[("before", children[0])] = (("input", 0), 3)
    for i in range((len(children) - 1) // 2):
        linear, act, following = children[2 * i], children[2 * i + 1], children[2 * i + 2]
        where |= {("after", linear): (("before", i), 0), ("before", act): (("before", i), 1)}
        where |= {("after", act): (("after", i), 0), ("before", following): (("after", i), 1)}
    count = len(modules)
    slots: dict[tuple[tuple[str, int], int, int, str], list[NoiseLayer | None]] = {}
    for r, (module, own) in enumerate(zip(modules, handles, strict=True)):
        names = {id(m): n for n, m in module.named_modules()}
        for j, handle in enumerate(own):
            for placement in handle._placements:
                position, placed, *extra = placement.key
                found = where.get((position, names.get(id(placed), "?")))
                if found is None or extra not in ([], [0]):
                    return f"noise {placement.where} is not on the input or a hidden layer"
                if not _constant_kind(placement.layer):
                    return f"noise {placement.where} is not Gaussian (additive, multiplicative, dropout) of a constant strength"
                kind = type(placement.layer.kind).__name__  # one kind a stream: its closed form
                slot = slots.setdefault((found[0], found[1], j, kind), [None] * count)
                slot[r] = placement.layer
    out: dict[tuple[str, int], list[list[NoiseLayer | None]]] = {}
    for (place, *_), layers in sorted(slots.items()):
        out.setdefault(place, []).append(layers)
    return out


def lowered_group(tasks: Sequence[LoopTask]) -> LoweredMLP | None:
    """The tasks' replicas on the stacked MLP kernels, or None where they do not apply (see
    :func:`lowering_refusal`; the model and the placed noise are checked on the built modules).
    The tasks must differ in seed and sites only, as a vectorized group's."""
    first = tasks[0]
    if any(lowering_refusal(task) is not None for task in tasks):
        return None
    loss = _loss_name(first)
    modules: list[nn.Module] = []
    handles: list[list[Any]] = []
    try:
        for task in tasks:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(derive_seed(task.seed, "init"))
                module = task.model().to(device=task.device, dtype=task.dtype)
                if not modules:
                    found = _spec(module)
                    if isinstance(found, str):
                        return None
                    spec, linears, tail, head = found
                    names = [n for n, _ in module.named_parameters()]
                torch.manual_seed(derive_seed(task.seed, "train"))
                if [n for n, _ in module.named_parameters()] != names:
                    return None
                modules.append(module)
                handles.append(attach_sites(module, task, None)[0])
        optim = _optim(first.optimizer(list(modules[0].parameters())))
        places = _places(modules, handles, [n for n, _ in modules[0].named_children()], head)
        x, y = first.train  # type: ignore[misc]
        if isinstance(optim, str) or isinstance(places, str) or not _fits(spec, loss, x, y, head):
            return None
        group = LoweredMLP(tasks, spec, linears, tail, head, optim, cast(str, loss), modules, handles, places)
        handles = []  # the group removes them
        return group
    finally:
        for own in handles:
            for handle in own:
                handle.remove()


def _fits(spec: MLPSpec, loss: str | None, x: Tensor, y: Tensor, head: bool) -> bool:
    """Whether the data has the model's inputs and the loss's targets (else the vmap path raises the
    error the user's loop would): a sample of several dimensions only behind a leading ``Flatten``."""
    if (x.dim() > 2 and not head) or math.prod(x.shape[1:]) != spec.in_features:
        return False
    if loss == "ce":
        return y.dim() == 1 and not y.is_floating_point() and spec.out_features > 1
    if loss == "bce":
        return spec.out_features == 1 and y.numel() == len(x)
    return y.numel() == len(x) * spec.out_features


def lowers(task: LoopTask) -> bool:
    """Whether the replicas of ``task`` train on the stacked MLP kernels: one replica's module and
    noise built, checked and dropped."""
    group = lowered_group([task])
    if group is None:
        return False
    group.close()
    return True


def builds_mlp(task: LoopTask) -> bool:
    """Whether ``task``'s factory builds a model the kernels take (one module built and dropped, the
    caller's random state left alone): a study asks once, not once per arm."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(task.seed, "init"))
        return not isinstance(_spec(task.model()), str)
