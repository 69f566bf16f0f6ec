"""The replicas of a user's MLP on the stacked MLP kernels: :class:`LoweredMLP`, the trainer that
:func:`noisereg.engine.lowering.lowered_group` builds where the kernels take the model and its noise
(the module docstring there says what they take and how each replica keeps its own draws).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from noisereg.engine.injection import HiddenStream, SiteStream
from noisereg.engine.loop import LoopTask
from noisereg.engine.lowering_rules import loss_smoothing, without_noise
from noisereg.engine.mlp_layout import Layout
from noisereg.engine.model_randomness import ReplicaDropout
from noisereg.engine.optim import StackedOptimizer
from noisereg.engine.replicas import StackedMLP
from noisereg.engine.specs import OptimSpec
from noisereg.layers import NoiseLayer
from noisereg.seeding import NoiseGenerator
from noisereg.sites.handles import TargetsHandle

__all__ = ["LoweredMLP", "Slots"]

# place -> the lists of noise layers the kernels apply there, in order, one layer (or None) per
# replica, each with what its layers share (see noisereg.engine.lowering._places)
Slots = dict[tuple[str, int], list[tuple[list[NoiseLayer | None], tuple[Any, ...]]]]


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
            # the noise goes on a dense copy (the kernels keep hidden weights transposed)
            work = views[k].clone(memory_format=torch.contiguous_format)
            noisy, _ = stream.apply(work, step=self._step, epoch=0, slot=("walk", j))
            xi = noisy - views[k]
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
            if noisy is not views[k]:
                views[k].copy_(noisy)

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
