"""The per-replica path: one replica of any ``nn.Module`` trained in a plain loop, its noise put on with
:func:`noisereg.attach`.

This is the path that works for every model (the vectorized paths are faster where they apply) and the
reference they are checked against. One replica, from its seed ``s`` alone:

- the model is built (or re-initialized) with torch's global generator seeded ``derive_seed(s, "init")``;
  training then runs with the global generator seeded ``derive_seed(s, "train")`` (the model's own
  dropout draws from it), all inside :func:`noisereg.seeding.seeded_global_rng` so the caller's state
  is untouched;
- batch order: ``torch.randperm`` from a generator seeded ``derive_seed(s, "batches")`` every epoch
  (a ``Dataset`` goes through a ``DataLoader`` with that generator and the user's ``collate``); when
  one batch holds the whole training set it keeps its stored order and nothing is drawn, as in the
  built-in engine (:mod:`noisereg.engine.train`): reordering a single full batch changes only which
  sample meets which noise draw, and those draws are independent;
- site j of the arm is attached with ``seed = derive_seed(s, "site", j, at)``; :func:`noisereg.attach`
  then gives each place its own stream. A replica's noise depends on its seed and its sites only.

Training mode for the steps (noise on, BatchNorm updates its running statistics, dropout on), eval mode
for every measurement (noise off, BatchNorm uses its running statistics): what a user of
``model.train()`` / ``model.eval()`` expects.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from noisereg.noise.base import NoiseKind
from noisereg.seeding import derive_seed, seeded_global_rng
from noisereg.sites import attach
from noisereg.sites.attach import At, TargetsHandle
from noisereg.sites.mixing import MixingLayer

__all__ = [
    "AttachSite",
    "LoopResult",
    "LoopTask",
    "Part",
    "attach_sites",
    "clip_before_step",
    "default_step",
    "evaluate",
    "score",
    "train_replica",
]

Part = tuple[Tensor, Tensor] | Dataset
"""One part of the data: ``(x, y)`` tensors, or a ``Dataset`` whose batches are ``(x, y)``."""

Step = Callable[[nn.Module, Any, torch.optim.Optimizer], Any]
Fit = Callable[[nn.Module, Mapping[str, Any], int], Mapping[str, Any]]
Metric = Callable[[Tensor, Tensor], float]


@dataclasses.dataclass(frozen=True)
class AttachSite:
    """One place of an arm's noise: the arguments of :func:`noisereg.attach` except the model and seed.

    ``options`` holds attach's keyword options (``select``, ``where``, ``arg``, ``mask``, ``biases``,
    ``resample``, ``scale_by_lr``); at ``"gradients"`` the replica's optimizer is passed for you.
    """

    noise: NoiseKind
    at: At
    options: tuple[tuple[str, Any], ...] = ()

    def with_strength(self, value: float) -> AttachSite:
        return dataclasses.replace(self, noise=self.noise.with_strength(value))

    def describe(self) -> dict[str, Any]:
        """Plain, JSON-safe data: the kind, its fields and the options (stored with the study)."""
        fields = {f.name: _plain(getattr(self.noise, f.name)) for f in dataclasses.fields(self.noise)}
        return {"at": self.at, "kind": type(self.noise).__name__, **fields, **{k: _plain(v) for k, v in self.options}}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)


@dataclasses.dataclass(frozen=True)
class LoopTask:
    """Everything one replica needs. ``model(seed)`` returns a fresh module (see :func:`train_replica`).

    ``step`` trains on one batch (default :func:`default_step`); ``fit`` replaces the whole loop and
    returns its final metrics. ``metrics``: extra ``name -> fn(outputs, targets)`` measured on every
    evaluation. ``threshold``: a single-output classifier predicts 1 above it (0 for logits).
    ``threads``: torch's intra-op threads while this replica trains (None: unchanged); small models
    train fastest on one (a thread pool's start-up per tiny operation costs more than it saves).
    ``clip_grad_norm``: rescale the gradient each optimizer step receives, gradient noise included, to
    at most this norm (``torch.nn.utils.clip_grad_norm_`` over every parameter the optimizer holds):
    the built-in engine's order (:class:`~noisereg.engine.specs.OptimSpec`).
    """

    model: Callable[[], nn.Module]
    sites: tuple[AttachSite, ...]
    train: Part
    test: Part
    loss: Callable[[Tensor, Tensor], Tensor]
    optimizer: Callable[[Any], torch.optim.Optimizer]
    epochs: int
    batch_size: int
    task: str
    seed: int
    eval_every: int = 1
    step: Step | None = None
    fit: Fit | None = None
    collate: Callable[[list[Any]], Any] | None = None
    metrics: tuple[tuple[str, Metric], ...] = ()
    threshold: float = 0.0
    dtype: torch.dtype = torch.float32
    device: str = "cpu"
    threads: int | None = None
    clip_grad_norm: float | None = None


@dataclasses.dataclass
class LoopResult:
    """``final``: metric -> value after training (``train_loss``, ``test_acc``, ...); ``curves``: metric
    -> values at ``epochs`` (1-based); ``state``: the final state dict on the CPU."""

    final: dict[str, float]
    curves: dict[str, np.ndarray]
    epochs: list[int]
    state: dict[str, Tensor]


def default_step(loss: Callable[[Tensor, Tensor], Tensor]) -> Step:
    """The usual step: zero the gradients, ``loss(model(x), y).backward()``, ``optimizer.step()``."""

    def step(model: nn.Module, batch: Any, optimizer: torch.optim.Optimizer) -> Tensor:
        x, y = batch
        optimizer.zero_grad(set_to_none=True)
        value = loss(model(x), y)
        value.backward()
        optimizer.step()
        return value.detach()

    return step


def _to(batch: Any, dtype: torch.dtype, device: str) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device=device, dtype=dtype) if batch.is_floating_point() else batch.to(device)
    if isinstance(batch, (list, tuple)):
        return tuple(_to(b, dtype, device) for b in batch)
    if isinstance(batch, Mapping):
        return {k: _to(v, dtype, device) for k, v in batch.items()}
    return batch


def _batches(part: Part, size: int, generator: torch.Generator | None, collate: Any) -> Any:
    """Batches of ``part``, shuffled by ``generator`` (None, or a part that fits one batch, keeps the order)."""
    if isinstance(part, tuple):
        x, y = part
        n = len(x)
        shuffle = generator is not None and n > size
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)  # batches are copies
        for start in range(0, n, size):
            index = order[start : start + size]
            yield x[index], y[index]
        return
    shuffle = generator is not None and not (hasattr(part, "__len__") and len(part) <= size)
    yield from DataLoader(part, batch_size=size, shuffle=shuffle, generator=generator, collate_fn=collate)


def evaluate(model: nn.Module, part: Part, task: LoopTask) -> dict[str, float]:
    """``loss`` (mean over samples of ``task.loss``), ``acc`` or ``r2``, and ``task.metrics`` of the
    model in eval mode on ``part`` (batches of at least 256)."""
    was_training = model.training
    model.eval()
    outs, ys, total, n = [], [], 0.0, 0
    with torch.no_grad():
        for batch in _batches(part, max(task.batch_size, 256), None, task.collate):
            x, y = _to(batch, task.dtype, task.device)
            out = model(x)
            count = len(y)
            total += float(task.loss(out, y)) * count
            n += count
            outs.append(out.detach().to("cpu", torch.float64))
            ys.append(y.detach().to("cpu"))
    model.train(was_training)
    return score(torch.cat(outs), torch.cat(ys), total / n, task)


def score(out: Tensor, y: Tensor, loss: float, task: LoopTask) -> dict[str, float]:
    """The metrics of outputs ``out`` (float64, CPU) against targets ``y``: ``loss`` as given, ``acc``
    (classification: argmax, or a single output above ``task.threshold``) or ``r2`` (regression: mean
    over outputs of 1 − SS_res/SS_tot), and ``task.metrics``."""
    return scores(out.unsqueeze(0), y, [loss], task)[0]


def scores(outs: Tensor, y: Tensor, losses: Sequence[float], task: LoopTask) -> list[dict[str, float]]:
    """:func:`score` of each replica's outputs ``outs[r]`` ([R, n, ...], float64, CPU), computed on the
    stack at once (the vectorized path evaluates many replicas every few epochs)."""
    results: list[dict[str, float]] = [{"loss": loss} for loss in losses]
    count = len(outs)
    if task.task == "classification":
        if outs.dim() >= 3 and outs.shape[-1] > 1:
            predicted = outs.argmax(-1)
        else:
            predicted = (outs.reshape(count, -1) > task.threshold).long()
        hits = predicted == y.reshape(predicted.shape[1:]).long()
        accuracy = hits.reshape(count, -1).double().mean(-1).tolist()
        for result, value in zip(results, accuracy, strict=True):
            result["acc"] = value
    else:
        target = y.to(torch.float64).reshape(outs.shape[1:])
        flat_out, flat_y = outs.reshape(count, outs.shape[1], -1), target.reshape(len(target), -1)
        ss_res = ((flat_y - flat_out) ** 2).sum(1)
        ss_tot = ((flat_y - flat_y.mean(0)) ** 2).sum(0)
        r2 = (1 - ss_res / ss_tot).mean(-1).tolist()
        for result, value in zip(results, r2, strict=True):
            result["r2"] = value
    for name, fn in task.metrics:
        for r, result in enumerate(results):
            result[name] = float(fn(outs[r], y))
    return results


def attach_sites(
    model: nn.Module, task: LoopTask, optimizer: torch.optim.Optimizer | None
) -> tuple[list[Any], list[TargetsHandle]]:
    """Attach the task's sites to ``model`` with their per-replica seeds: all but gradient noise when
    ``optimizer`` is None, only gradient noise (on ``optimizer``) otherwise. Returns (handles, target handles)."""
    handles, targets = [], []
    for j, site in enumerate(task.sites):
        if (site.at == "gradients") != (optimizer is not None):
            continue
        options = dict(site.options)
        if site.at == "gradients":
            options["optimizer"] = optimizer
        handle = attach(model, site.noise, site.at, seed=derive_seed(task.seed, "site", j, site.at), **options)
        handles.append(handle)
        if isinstance(handle, TargetsHandle):
            targets.append(handle)
    return handles, targets


def train_replica(task: LoopTask) -> LoopResult:
    """Train one replica of ``task`` (seeding in the module docstring); noise is removed at the end."""
    threads = torch.get_num_threads()
    if task.threads is not None:
        torch.set_num_threads(task.threads)
    try:
        return _seeded(task)
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def seeded_model(task: LoopTask) -> Iterator[nn.Module]:
    """The replica's model, ``task.model()`` built with torch's global generator seeded
    ``derive_seed(seed, "init")`` and moved to the task's device and dtype; inside, the generator is
    seeded ``derive_seed(seed, "train")``, where its training starts drawing; the caller's random
    state is restored on leaving (the seeding of the module docstring, for every path that builds one)."""
    with seeded_global_rng(derive_seed(task.seed, "init"), task.device) as reseed:
        model = task.model().to(device=task.device, dtype=task.dtype)
        reseed(derive_seed(task.seed, "train"))
        yield model


def _seeded(task: LoopTask) -> LoopResult:
    with seeded_model(task) as model:
        handles, targets = attach_sites(model, task, None)
        try:
            if task.fit is not None:
                return _fitted(model, task)
            optimizer = task.optimizer(model.parameters())
            more, _ = attach_sites(model, task, optimizer)
            handles += more
            if task.clip_grad_norm is not None:
                handles.append(clip_before_step(optimizer, task.clip_grad_norm))
            return _loop(model, task, optimizer, targets)
        finally:
            for handle in handles:
                handle.remove()


def clip_before_step(optimizer: torch.optim.Optimizer, max_norm: float) -> Any:
    """Clip the gradient of every parameter of ``optimizer`` to the norm ``max_norm`` in a step pre-hook:
    registered after attach's gradient noise (also step pre-hooks, run in the order registered), it
    clips the noisy gradient, whatever step function calls ``optimizer.step()``. Returns its handle."""
    params = [p for group in optimizer.param_groups for p in group["params"]]

    def clip(*_: Any) -> None:
        torch.nn.utils.clip_grad_norm_(params, max_norm)

    return optimizer.register_step_pre_hook(clip)


def _loop(
    model: nn.Module, task: LoopTask, optimizer: torch.optim.Optimizer, targets: Sequence[TargetsHandle]
) -> LoopResult:
    step = task.step or default_step(task.loss)
    order = torch.Generator().manual_seed(derive_seed(task.seed, "batches"))
    curves: dict[str, list[float]] = {}
    epochs: list[int] = []
    for epoch in range(1, task.epochs + 1):
        model.train()
        for batch in _batches(task.train, task.batch_size, order, task.collate):
            batch = _to(batch, task.dtype, task.device)
            for handle in targets:
                batch = _noisy_targets(handle, batch)
            step(model, batch, optimizer)
        if epoch % task.eval_every == 0 or epoch == task.epochs:
            epochs.append(epoch)
            for part_name, part in (("train", task.train), ("test", task.test)):
                for name, value in evaluate(model, part, task).items():
                    curves.setdefault(f"{part_name}_{name}", []).append(value)
    final = {name: values[-1] for name, values in curves.items()}
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    return LoopResult(final, {k: np.asarray(v, dtype=np.float64) for k, v in curves.items()}, epochs, state)


def _noisy_targets(handle: TargetsHandle, batch: Any) -> Any:
    if not (isinstance(batch, (list, tuple)) and len(batch) == 2):
        raise TypeError(
            f"target noise needs batches of (x, y), got a {type(batch).__name__} of {len(batch) if hasattr(batch, '__len__') else '?'} items"
        )
    x, y = batch
    if isinstance(handle.layers[0], MixingLayer):
        return tuple(handle(x, y))
    return x, handle(y)


def _fitted(model: nn.Module, task: LoopTask) -> LoopResult:
    metrics = task.fit(model, {"train": task.train, "test": task.test}, task.seed)  # type: ignore[misc]
    if not isinstance(metrics, Mapping):
        raise TypeError(f"fit must return a dict of metrics such as {{'test_acc': 0.9}}, got {type(metrics).__name__}")
    final: dict[str, float] = {}
    curves: dict[str, np.ndarray] = {}
    raw_curves = metrics.get("curves") or {}
    epochs = [int(e) for e in metrics.get("epochs", [])]
    for name, value in metrics.items():
        if name in ("curves", "epochs"):
            continue
        final[name] = float(value)
    for name, values in raw_curves.items():
        curves[name] = np.asarray(values, dtype=np.float64)
        if len(curves[name]) != len(epochs):
            raise ValueError(f"fit returned curve {name!r} of {len(curves[name])} values but {len(epochs)} epochs")
    if not epochs:
        epochs = [task.epochs]
        curves = {name: np.asarray([v]) for name, v in final.items()}
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    return LoopResult(final, curves, epochs, state)
