"""The epoch loop of one chunk of replicas: batches, noise, backward, updates, evaluation, early stopping.

A chunk is a set of replicas of one group whose folds have the same sizes, trained as one
:class:`~noisereg.engine.replicas.StackedMLP` (or :class:`~noisereg.engine.modules.StackedModule`). :func:`noisereg.engine.group.train_group` splits a group
into chunks (by fold sizes, memory budget and workers) and merges their results.

Per replica and per step, in this order: the batch (see below); input noise; target noise; the
forward pass with the noise before/after the hidden layers' activations; the mean-loss gradient; gradient noise
(g̃ = g + noise, on the replica's gradient in torch's state-dict order); gradient clipping; the
optimizer's update. Batches: each epoch, when the training set takes more than one batch, the
replica's ``"batches"`` stream draws ``torch.randperm(n)`` and the batches are consecutive slices of
it (the last one may be smaller); when one batch holds the whole training set it is used in its
stored order, since reordering a single full batch changes nothing but rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch import Tensor

from noisereg.engine.injection import SiteStream
from noisereg.engine.losses import Evaluator, batch_loss, training_targets
from noisereg.engine.modules import StackedModule
from noisereg.engine.noisy_eval import with_noisy_part
from noisereg.engine.optim import StackedOptimizer
from noisereg.engine.projection import ProjectedPostNoise
from noisereg.engine.replicas import StackedMLP, initial_state_dict
from noisereg.engine.specs import FoldData, Group, MLPSpec, is_constantly_off, site_kinds
from noisereg.engine.vocabulary import HIDDEN_SITES
from noisereg.noise.filterwise import FilterGaussian
from noisereg.seeding import derive_seed, make_generator, noise_generator

__all__ = ["ChunkResult", "train_chunk", "evaluated_epochs"]


def evaluated_epochs(group: Group) -> np.ndarray:
    """The epochs (1-based counts of epochs trained) after which replicas are evaluated."""
    epochs = list(range(group.eval_every, group.epochs + 1, group.eval_every))
    if not epochs or epochs[-1] != group.epochs:
        epochs.append(group.epochs)
    return np.asarray(epochs, dtype=np.int64)


@dataclass
class ChunkResult:
    """Results of one chunk: the group's replica indices it trained and their metrics and weights."""

    indices: list[int]
    curves: dict[str, np.ndarray]
    final: dict[str, np.ndarray]
    stopped_epoch: np.ndarray
    best_epoch: np.ndarray
    state: dict[str, Tensor]


def _stack(tensors: Mapping[int, Tensor], fold_ids: Sequence[int]) -> Tensor:
    """Stack per-fold tensors for the replicas' folds; a shared fold is expanded, not copied."""
    if len(set(fold_ids)) == 1:
        t = tensors[fold_ids[0]]
        return t.unsqueeze(0).expand((len(fold_ids),) + tuple(t.shape))
    return torch.stack([tensors[f] for f in fold_ids])


class _Chunk:
    def __init__(
        self, group: Group, folds: Sequence[FoldData], indices: Sequence[int], device: torch.device, dtype: torch.dtype
    ) -> None:
        self.group, self.indices = group, list(indices)
        replicas = [group.replicas[i] for i in self.indices]
        self.R = len(replicas)
        spec = group.model
        self.model: StackedMLP | StackedModule
        if isinstance(spec, MLPSpec):
            self.model = StackedMLP(spec, self.R, device=device, dtype=dtype)
            self.model.load_state([initial_state_dict(spec, r.seed) for r in replicas])
        else:
            self.model = StackedModule(spec, [r.seed for r in replicas], device=device, dtype=dtype)
        used = sorted({r.fold for r in replicas})
        fold_ids = [r.fold for r in replicas]
        self.parts = folds[fold_ids[0]].parts
        self.x: dict[str, Tensor] = {}
        self.y: dict[str, Tensor] = {}
        for part in self.parts:
            xs = {f: self.model.augment(getattr(folds[f], f"x_{part}").to(device, dtype)) for f in used}
            ys = {f: getattr(folds[f], f"y_{part}").to(device) for f in used}
            # Inputs materialized per replica: a batched matmul over an expanded (stride-0) stack is
            # several times slower than over a contiguous one.
            self.x[part], self.y[part] = _stack(xs, fold_ids).contiguous(), _stack(ys, fold_ids)
        eval_x, eval_y = with_noisy_part(
            group.eval_noise, self.x, self.y, self.model.input_view, [r.seed for r in replicas]
        )
        self.x_eval = torch.cat(list(eval_x.values()), dim=1)
        self.evaluator = Evaluator(group.loss, eval_y)
        self.q_train = _stack(
            {f: training_targets(group.loss, folds[f].y_train.to(device), spec.out_features, dtype) for f in used},
            fold_ids,
        )
        self.batch_generators = [make_generator(derive_seed(r.seed, "batches"), device) for r in replicas]
        self.streams: dict[str, list[SiteStream]] = {s: [] for s in ("input", "targets", "weights", "gradients")}
        # weight sites whose noise goes into the weights (increments), each with its previous ξ
        self.walks: list[tuple[SiteStream, str]] = []
        self.previous: dict[int, Tensor] = {}
        hidden_layers = len(spec.widths) if isinstance(spec, MLPSpec) else len(spec.hidden)
        self.hidden: list[tuple[list[SiteStream], list[SiteStream]]] = [([], []) for _ in range(hidden_layers)]
        per_replica = [site_kinds(group, r) for r in replicas]
        for i, site in enumerate(group.sites):
            kinds = [k[i] for k in per_replica]
            if all(is_constantly_off(k) for k in kinds):
                continue
            keys = group.stream_keys(i)
            gens = [noise_generator(derive_seed(r.seed, "noise", *keys), device) for r in replicas]
            stream = SiteStream(kinds, gens, name=f"sites[{i}]", clock=site.clock)
            if site.sampling == "projected":
                # Group admits projected sampling on an MLP only (specs._check_projected)
                cast(StackedMLP, self.model).projected.append(ProjectedPostNoise(stream))
            elif site.increments != "none":
                self.walks.append((stream, site.increments))
            elif site.site in HIDDEN_SITES:
                for layer in site.layers if site.layers is not None else range(hidden_layers):
                    self.hidden[layer][HIDDEN_SITES.index(site.site)].append(stream)
            else:
                self.streams[site.site].append(stream)
        self.grads = torch.zeros_like(self.model.params)
        self.optimizer = StackedOptimizer(group.optimizer, self.model.params, self.model.blocks)
        noisy_params = self.streams["gradients"] or self.streams["weights"] or self.walks
        self.torch_index = self.model.torch_index() if noisy_params else None
        # the clean parameters during a noisy forward, and where the weight* parameters lie in them
        self.clean: Tensor | None = None
        self.weight_index: Tensor | None = None
        self.weight_shapes: list[tuple[int, ...]] = []
        if self.torch_index is not None and (self.streams["weights"] or self.walks):
            self.weight_index = self._weight_columns(self.torch_index)
        if self.streams["weights"]:
            self.clean = torch.empty_like(self.model.params)
        self.sam_clean = torch.empty_like(self.model.params) if group.optimizer.sam_rho > 0 else None

    def _weight_columns(self, torch_index: Tensor) -> Tensor:
        """[R, W]: the columns of ``torch_index`` of the parameters named ``weight*`` (biases left out,
        as :func:`noisereg.sites.attach`'s weight site does by default), in state-dict order; their
        shapes (torch's layout) go to ``weight_shapes``."""
        state = self.model.export_state()
        sizes = {name: v[0].numel() for name, v in state.items()}
        chosen = {name: name.rsplit(".", 1)[-1].startswith("weight") for name in state}
        self.weight_shapes = [tuple(v.shape[1:]) for name, v in state.items() if chosen[name]]
        mask = torch.cat([torch.full((n,), chosen[name]) for name, n in sizes.items()])
        return torch_index[:, mask.to(torch_index.device)].contiguous()

    def _weight_noise(self, stream: SiteStream, wvec: Tensor, step: int, epoch: int) -> Tensor:
        """``stream``'s noise on the weights [R, W]: on the flat vector, or per weight tensor in its own
        shape for a kind whose dim 0 means something (filter-wise noise)."""
        if not type(stream.kinds[0]).per_tensor:
            noisy, _ = stream.apply(wvec, step=step, epoch=epoch, slot="weights")
            return noisy
        parts = []
        chunks = wvec.split([math.prod(shape) for shape in self.weight_shapes], dim=1)
        fast = all(type(k) is FilterGaussian and k.clip is None for k in stream.kinds)
        for j, (chunk, shape) in enumerate(zip(chunks, self.weight_shapes, strict=True)):
            x = chunk.reshape((self.R, *shape))
            if fast:
                noisy = stream.apply_filterwise(x, step=step, epoch=epoch, slot=("weights", j))
            else:
                noisy, _ = stream.apply(x, step=step, epoch=epoch, slot=("weights", j))
            parts.append(noisy.reshape(self.R, -1))
        return torch.cat(parts, dim=1)

    def blocks(self, flat: Tensor) -> list[Tensor]:
        return self.model.blocks(flat)

    def _batch(self, perm: Tensor | None, start: int) -> tuple[Tensor, Tensor]:
        x, q = self.x["train"], self.q_train
        if perm is None:
            return x.clone() if self.streams["input"] else x, q.clone() if self.streams["targets"] else q
        idx = perm[:, start : start + self.group.batch_size]
        rows = torch.arange(self.R, device=idx.device).unsqueeze(1)
        return x[rows, idx], q[rows, idx]

    def _noisy_inputs(self, xb: Tensor, step: int, epoch: int) -> Tensor:
        xin = self.model.input_view(xb)
        for stream in self.streams["input"]:
            noisy, _ = stream.apply(xin, step=step, epoch=epoch, slot="input")
            if noisy is not xin:
                xin.copy_(noisy)
        return xb

    def _noisy_targets(self, qb: Tensor, step: int, epoch: int) -> Tensor:
        for stream in self.streams["targets"]:
            if self.group.loss == "bce":
                noisy, _ = stream.apply(torch.stack([1.0 - qb, qb], dim=-1), step=step, epoch=epoch)
                qb = noisy[..., 1]
            else:
                qb, _ = stream.apply(qb, step=step, epoch=epoch, slot="targets")
        return qb

    def _noisy_gradients(self, step: int, epoch: int) -> None:
        # called only with gradient streams, for which __init__ sets torch_index
        torch_index = cast(Tensor, self.torch_index)
        flat_index = torch_index.reshape(-1)
        gvec = self.grads[flat_index].view(torch_index.shape)
        for stream in self.streams["gradients"]:
            gvec, _ = stream.apply(gvec, step=step, epoch=epoch, slot="gradients")
        self.grads[flat_index] = gvec.reshape(-1)

    def _noisy_weights(self, clean: Tensor, index: Tensor, step: int, epoch: int) -> None:
        """W ← W + noise on each replica's ``weight*`` parameters (``index``, state-dict order), after
        keeping the clean parameters in ``clean``."""
        params = self.model.params
        clean.copy_(params)
        flat_index = index.reshape(-1)
        wvec = params[flat_index].view(index.shape)
        for stream in self.streams["weights"]:
            wvec = self._weight_noise(stream, wvec, step, epoch)
        params[flat_index] = wvec.reshape(-1)

    def _walk_weights(self, index: Tensor, step: int, epoch: int) -> None:
        """W ← W + ξ_t (independent increments) or W + ξ_t − ξ_{t−1} (anticorrelated), ξ_t = noise(W) − W,
        kept in the weights (see :class:`~noisereg.engine.SiteNoise`'s ``increments``)."""
        params = self.model.params
        flat_index = index.reshape(-1)
        for k, (stream, increments) in enumerate(self.walks):
            wvec = params[flat_index].view(index.shape)
            xi = self._weight_noise(stream, wvec.clone(), step, epoch) - wvec
            if increments == "anticorrelated":
                previous = self.previous.get(k)
                self.previous[k] = xi.clone()
                if previous is not None:
                    xi = xi - previous
            params[flat_index] = (wvec + xi).reshape(-1)

    def _sam_gradients(self, xb: Tensor, qb: Tensor, step: int, epoch: int) -> Tensor:
        """SAM's step (Foret et al. 2021): g at w, then the gradient at w + ρ·g/‖g‖₂ (per replica, over all
        its parameters) into ``self.grads``; the parameters are w again on return. Returns zᵀ at w."""
        params, grads, rho = self.model.params, self.grads, self.group.optimizer.sam_rho
        clean = cast(Tensor, self.sam_clean)
        zT = self.model.compute_grads(self.group.loss, xb, qb, self.hidden, step=step, epoch=epoch, grads=grads)
        clean.copy_(params)
        g_blocks = self.model.blocks(grads)
        norm = torch.stack([(b * b).sum(dim=1) for b in g_blocks]).sum(0).sqrt().clamp_min(1e-12)
        scale = (rho / norm).unsqueeze(1)
        for p_block, g_block in zip(self.model.blocks(params), g_blocks, strict=True):
            p_block.add_(g_block * scale)
        self.model.compute_grads(self.group.loss, xb, qb, self.hidden, step=step, epoch=epoch, grads=grads)
        params.copy_(clean)
        return zT

    def train_step(self, perm: Tensor | None, start: int, step: int, epoch: int) -> tuple[Tensor, Tensor]:
        """One update of every replica; returns the batch's outputs zᵀ and its (noisy) targets."""
        xb, qb = self._batch(perm, start)
        xb = self._noisy_inputs(xb, step, epoch)
        qb = self._noisy_targets(qb, step, epoch)
        clean, index = self.clean, self.weight_index
        if self.walks and index is not None:
            self._walk_weights(index, step, epoch)
        if clean is not None and index is not None:
            self._noisy_weights(clean, index, step, epoch)
        if self.sam_clean is not None:
            zT = self._sam_gradients(xb, qb, step, epoch)
        else:
            zT = self.model.compute_grads(
                self.group.loss, xb, qb, self.hidden, step=step, epoch=epoch, grads=self.grads
            )
        if clean is not None:  # the gradient at the noisy weights updates the clean ones
            self.model.params.copy_(clean)
        if self.streams["gradients"]:
            self._noisy_gradients(step, epoch)
        self.optimizer.step(self.grads)
        return zT, qb

    def evaluate(self) -> dict[str, np.ndarray]:
        """Clean metrics on every data part, from one forward pass over all of them."""
        return self.evaluator(self.model.forward_eval(self.x_eval, rows=self.group.batch_size))


def train_chunk(
    group: Group,
    folds: Sequence[FoldData],
    indices: Sequence[int],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: Callable[[int], None] | None = None,
) -> ChunkResult:
    """Train the replicas ``group.replicas[i]`` for i in ``indices`` (their folds of equal sizes)."""
    with torch.no_grad():
        chunk = _Chunk(group, folds, indices, torch.device(device), dtype)
        return _run(chunk, progress)


def _run(chunk: _Chunk, progress: Callable[[int], None] | None) -> ChunkResult:
    group, R = chunk.group, chunk.R
    eval_epochs = evaluated_epochs(group)
    curves: dict[str, np.ndarray] = {}
    n_train = chunk.x["train"].shape[1]
    n_batches = math.ceil(n_train / group.batch_size)
    stopped = np.zeros(R, dtype=bool)
    stopped_epoch = np.full(R, group.epochs, dtype=np.int64)
    best_epoch = np.full(R, group.epochs, dtype=np.int64)
    best_loss = np.full(R, np.inf)
    best_column = np.full(R, len(eval_epochs) - 1, dtype=np.int64)
    best_params = chunk.model.params.clone() if group.patience is not None else None
    step, column, reported = 0, 0, 0
    for epoch in range(group.epochs):
        perm = None
        if n_batches > 1:
            device = chunk.x["train"].device
            perm = torch.stack([torch.randperm(n_train, generator=g, device=device) for g in chunk.batch_generators])
        record = epoch + 1 == eval_epochs[column]
        noisy_loss: float | np.ndarray = 0.0
        for k in range(n_batches):
            zT, qb = chunk.train_step(perm, k * group.batch_size, step, epoch)
            if record:
                noisy_loss = noisy_loss + batch_loss(group.loss, zT, qb)
            step += 1
        if progress is not None:
            progress(R)
            reported += R
        if not record:
            continue
        metrics = chunk.evaluate()
        # an epoch has at least one batch, so a recorded epoch's sum is an array of batch losses
        metrics["train_loss_noisy"] = cast(np.ndarray, noisy_loss) / n_train
        for name, value in metrics.items():
            if name not in curves:
                curves[name] = np.full((R, len(eval_epochs)), np.nan)
            curves[name][:, column] = np.where(stopped, np.nan, value)
        if best_params is not None:
            val = metrics["val_loss"]
            improved = (val < best_loss) & ~stopped
            if improved.any():
                rows = torch.as_tensor(np.flatnonzero(improved), device=best_params.device)
                for best_block, block in zip(chunk.blocks(best_params), chunk.blocks(chunk.model.params), strict=True):
                    best_block[rows] = block[rows]
                best_loss[improved], best_epoch[improved], best_column[improved] = val[improved], epoch + 1, column
            # best_params is kept only when the group has a patience
            newly = ~stopped & (epoch + 1 - best_epoch >= cast(int, group.patience))
            stopped_epoch[newly] = epoch + 1
            stopped |= newly
        column += 1
        if stopped.all():
            break
    if progress is not None and reported < R * group.epochs:
        progress(R * group.epochs - reported)
    if best_params is None:
        best_epoch[:] = group.epochs
        best_column[:] = len(eval_epochs) - 1
    else:
        chunk.model.params.copy_(best_params)
    final = {name: values[np.arange(R), best_column] for name, values in curves.items()}
    state = {k: v.cpu() for k, v in chunk.model.export_state().items()}
    return ChunkResult(chunk.indices, curves, final, stopped_epoch, best_epoch, state)
