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

:func:`lowered_group` gives such tasks a :class:`LoweredMLP` in place of a
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
model's own, other noise kinds or places, optimizers other than SGD (no dampening or Nesterov), Adam
and AdamW (no AMSGrad), losses other than the ``ce``/``bce``/``mse`` of
:func:`noisereg.study.run_model` or torch's ``CrossEntropyLoss``/``BCEWithLogitsLoss``/``MSELoss``
with default arguments, a device other than the CPU (weight noise drawn only when asked trains per
replica).
:func:`lowering_refusal` says which of these the settings show; the rest is found on the built model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from noisereg.engine.injection import HiddenStream, SiteStream
from noisereg.engine.loop import LoopTask, attach_sites, seeded_model
from noisereg.engine.lowering_rules import data_fits, loss_name, loss_smoothing, optim_spec, plain_noise, without_noise
from noisereg.engine.mlp_layout import Layout, mlp_of
from noisereg.engine.model_randomness import ReplicaDropout
from noisereg.engine.optim import StackedOptimizer
from noisereg.engine.replicas import StackedMLP
from noisereg.engine.specs import OptimSpec
from noisereg.engine.vectorizable import refusal, same_setting
from noisereg.layers import NoiseLayer
from noisereg.seeding import NoiseGenerator
from noisereg.sites.gradients import gradient_parameters
from noisereg.sites.handles import TargetsHandle
from noisereg.sites.mixing import MixingLayer
from noisereg.sites.selectors import clean_name

__all__ = ["LOWERED", "LoweredMLP", "lowered_group", "lowering_refusal", "on_kernels"]

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


class LoweredMLP:
    """The replicas of ``tasks`` (a user's MLP, see the module docstring) on :class:`StackedMLP`,
    with :class:`~noisereg.engine.vectorized.VectorizedGroup`'s interface: ``train_step``, ``outputs``,
    ``state``, ``close``. Build it with :func:`lowered_group`, which checks that it applies."""

    def __init__(
        self,
        tasks: Sequence[LoopTask],
        layout: Layout,
        optim: OptimSpec,
        loss: str,
        modules: list[nn.Module],
        handles: list[list[Any]],
        places: Slots,
        targets: list[list[TargetsHandle]],
        rng: list[Tensor],
    ) -> None:
        spec = layout.spec
        self.tasks, self.task, self.spec, self.loss, self.tail = list(tasks), tasks[0], spec, loss, layout.tail
        self.smoothing = loss_smoothing(self.task)
        self.replicas = modules
        self._handles = handles
        self.targets = targets if any(targets) else []  # each replica's target noise, in the order attached
        self.names = linears = layout.linears
        self.rng = rng  # each replica's torch generator state: its dropout modules draw from it
        dtype, count = self.task.dtype, len(tasks)
        self.model = StackedMLP(spec, count, device="cpu", dtype=dtype)
        states = []
        for module in modules:
            own = module.state_dict()  # the clean names, also under weight noise's parametrization
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
        self.input: list[HiddenStream] = []
        self.hidden: list[tuple[list[HiddenStream], list[HiddenStream]]] = [([], []) for _ in spec.widths]
        self.weights: list[tuple[int, SiteStream]] = []  # (parameter in torch_views' order, its noise)
        self.gradients: list[tuple[Tensor, float | None, SiteStream]] = []  # (where in grads, lr to scale by)
        self.walks: list[tuple[int, bool, SiteStream]] = []  # (parameter, anticorrelated, its increments)
        cpu = torch.device("cpu")
        for place, slots in places.items():
            for layers, (kind, offset, *setting) in slots:
                if kind == "dropout":  # the model's own nn.Dropout
                    dropout = ReplicaDropout(setting[0], self.rng)
                    if place[0] == "input":
                        self.input.append(dropout)
                    else:
                        self.hidden[place[1]][0 if place[0] == "before" else 1].append(dropout)
                    continue
                # a replica without noise here gets the kind at no noise and another's stream: its σ = 0
                # row is never drawn
                some = next(layer for layer in layers if layer is not None)
                kinds = [layer.kind if layer is not None else without_noise(some.kind) for layer in layers]
                gens = [(layer if layer is not None else some).generator(cpu) for layer in layers]
                # the schedules read the step where the layers' counts stand (see _places)
                stream = SiteStream(kinds, cast(list[NoiseGenerator], gens), name=f"noise at {place}", offset=offset)
                if place[0] == "input":
                    self.input.append(stream)
                elif place[0] == "weights":
                    self.weights.append((place[1], stream))
                elif place[0] == "gradients":
                    columns, scaled = setting
                    self.gradients.append((self._gradient_index(columns), optim.lr if scaled else None, stream))
                elif place[0] in ("independent", "anticorrelated"):
                    self.walks.append((place[1], place[0] == "anticorrelated", stream))
                else:
                    self.hidden[place[1]][0 if place[0] == "before" else 1].append(stream)
        self._clean = torch.empty_like(self.model.params) if self.weights else None
        self._previous: list[Tensor | None] = [None] * len(self.walks)  # each walk's last ξ [R, ...]
        self._step = 0  # steps done: the step a schedule reads, as each replica's layers count it

    def _gradient_index(self, parameters: Sequence[int]) -> Tensor:
        """The positions in the flat buffer of every replica's ``parameters`` (k, in its optimizer's
        order), each flattened, concatenated ([R·P]: the order of attach's gradient noise draw)."""
        sizes = [v[0].numel() for v in self.model.torch_views(self.model.params)]
        starts = [sum(sizes[:k]) for k in range(len(sizes))]
        picks = torch.cat([torch.arange(starts[k], starts[k] + sizes[k]) for k in parameters])
        return self.model.torch_index()[:, picks].reshape(-1)  # torch_index: state-dict order

    def train_step(self, x: Tensor, y: Tensor) -> None:
        """One step of every replica on its batch ``x[r]``, ``y[r]``."""
        with torch.no_grad():
            # noise goes on a copy of the batch, contiguous: the streams add it in one pass
            x = x.to(self.task.dtype, memory_format=torch.contiguous_format, copy=bool(self.input))
            # a sample's values in the same order flattened or not: its input noise is drawn alike
            x = x.reshape(x.shape[0], x.shape[1], -1)
            for stream in self.input:
                noisy, _ = stream.apply(x, step=self._step, epoch=0, slot="input")
                if noisy is not x:
                    x.copy_(noisy)
            xb = self.model.augment(x)
            if self.walks:
                self._walk_weights()
            if self._clean is not None:
                self._noisy_weights(self._clean)
            self.model.compute_grads(
                self.loss, xb, self._targets(y), self.hidden, step=self._step, epoch=0, grads=self.grads
            )
            if self.gradients:
                self._noisy_gradients()
            if self._clean is not None:  # the gradient at the noisy weights updates the clean ones
                self.model.params.copy_(self._clean)
            self.optimizer.step(self.grads)
        self._step += 1

    def _noisy_gradients(self) -> None:
        """g ← noise(g), or g + lr·(noise(g) − g), before the update: each replica's draw over its chosen
        gradients flattened in its optimizer's order, as attach's step pre-hook draws it."""
        for j, (index, lr, stream) in enumerate(self.gradients):
            grads = self.grads[index].view(len(self.tasks), -1)
            noisy, _ = stream.apply(grads if lr is None else grads.clone(), step=self._step, epoch=0, slot=j)
            self.grads[index] = (noisy if lr is None else grads + lr * (noisy - grads)).reshape(-1)

    def _walk_weights(self) -> None:
        """W ← W + ξ_t (or ξ_t − ξ_{t−1}, anticorrelated) on the stored weights before the forward, with
        ξ = noise(W) − W drawn from each replica's stream in its parameter's shape, as attach's walk does."""
        views = self.model.torch_views(self.model.params)
        for j, (k, anticorrelated, stream) in enumerate(self.walks):
            weight = views[k].contiguous()  # a copy where the kernels keep the weight transposed
            noisy, _ = stream.apply(weight.clone(), step=self._step, epoch=0, slot=("walk", j))
            xi = noisy - weight
            move = xi
            if anticorrelated:
                previous = self._previous[j]
                move = xi if previous is None else xi - previous
                self._previous[j] = xi
            views[k].add_(move)

    def _noisy_weights(self, clean: Tensor) -> None:
        """W ← noise(W) on the chosen parameters, after keeping the clean ones in ``clean``: each
        replica's draw in its parameter's own shape and order, as attach's parametrization draws it."""
        clean.copy_(self.model.params)
        views = self.model.torch_views(self.model.params)  # weight, bias per layer, torch's layout
        for k, stream in self.weights:
            work = views[k].contiguous()  # the kernels keep hidden weights transposed: a copy there
            noisy, _ = stream.apply(work, step=self._step, epoch=0, slot=("weights", k))  # closed forms: in place
            if noisy is not work:
                work.copy_(noisy)
            if work is not views[k]:
                views[k].copy_(work)

    def _targets(self, y: Tensor) -> Tensor:
        """The batches' targets [R, B] in the kernels' representation (engine.losses), after each
        replica's target noise (its handles called on its batch's targets, as its lone loop calls them)."""
        out = self.spec.out_features
        if self.targets:
            rows = []
            for r, handles in enumerate(self.targets):
                row = y[r]
                for handle in handles:
                    row = handle(row)
                rows.append(row)
            if self.loss == "ce":  # soft targets (label smoothing) or labels (flips)
                rows = [row if row.is_floating_point() else nn.functional.one_hot(row.long(), out) for row in rows]
                return self._smoothed(torch.stack([row.to(self.task.dtype) for row in rows]))
            y = torch.stack(rows)
        if self.loss == "bce":
            return y.reshape(y.shape[0], -1).to(self.task.dtype)
        if self.loss == "ce":
            return self._smoothed(nn.functional.one_hot(y.long(), out).to(self.task.dtype))
        return y.to(self.task.dtype).reshape(y.shape[0], -1, out)

    def _smoothed(self, q: Tensor) -> Tensor:
        """The loss's own label smoothing on class probabilities ``q``, as torch applies it."""
        if not self.smoothing:
            return q
        return q.mul_(1.0 - self.smoothing).add_(self.smoothing / self.spec.out_features)

    @torch.no_grad()
    def outputs(self, x: Tensor) -> Tensor:
        """Every replica's outputs ``[R, n, ...]`` on the same inputs ``x``, as its module returns them."""
        x = x.reshape(len(x), -1)
        stacked = self.model.augment(x.to(self.task.dtype)).expand(len(self.tasks), *x.shape[:-1], -1)
        out = self.model.forward_eval(stacked.contiguous()).transpose(1, 2)
        if self.tail is None:
            return out
        return out.reshape(len(out), *self.tail(out[0]).shape)  # the tail is a Flatten: a reshape

    @torch.no_grad()
    def losses(self, out: Tensor, y: Tensor) -> Tensor:
        """Each replica's loss (``task.loss``: the mean over the batch) of its outputs ``out[r]`` (from
        :meth:`outputs`) against ``y``, [R], on the stack at once."""
        count = len(out)
        if self.loss == "ce":
            flat = out.reshape(count * out.shape[1], -1)
            target = y.long().repeat(count)
            each = nn.functional.cross_entropy(flat, target, reduction="none", label_smoothing=self.smoothing)
        elif self.loss == "bce":
            target = y.to(out.dtype).reshape(out.shape[1:]).expand_as(out)
            each = nn.functional.binary_cross_entropy_with_logits(out, target, reduction="none")
        else:
            each = (out - y.to(out.dtype).reshape(out.shape[1:])) ** 2
        return each.reshape(count, -1).mean(1)

    def state(self, r: int) -> dict[str, Tensor]:
        """Replica r's state dict, keyed as its module's, on the CPU (its slice only: the loop asks
        for every replica's)."""
        views = self.model.torch_views(self.model.params)  # weight, bias per layer
        keys = [f"{name}.{p}" for name in self.names for p in ("weight", "bias")]
        return {key: view[r].detach().to("cpu").clone() for key, view in zip(keys, views, strict=True)}

    def close(self) -> None:
        """Take every replica's noise off."""
        for handles in self._handles:
            for handle in handles:
                handle.remove()


Slots = dict[tuple[str, int], list[tuple[list[NoiseLayer | None], tuple[Any, ...]]]]


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
        if step.name is not None:
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
                    found = None if found is None or found[0][0] == "output" else found
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


def _builds_mlp(task: LoopTask) -> bool:
    """Whether ``task``'s factory builds a model the kernels take (one module built and dropped, the
    caller's random state left alone): a study asks once, not once per arm."""
    with seeded_model(task) as model:
        return not isinstance(mlp_of(model), str)


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
