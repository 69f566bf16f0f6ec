"""Training tasks on the vectorized path: which path each arm takes (:func:`probe`, :func:`probe_arms`),
and the loop of one group — batch orders, steps and evaluations, every replica's result.

A group is a :class:`~noisereg.engine.vectorized.VectorizedGroup` (``vmap`` over the user's model) or,
for an MLP the built-in engine's kernels train, a :class:`~noisereg.engine.lowered_mlp.LoweredMLP`; both
take the same batches (replica r's in its own order) and give the same results up to rounding.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor
from torch.func import vmap

from noisereg.engine.loop import LoopResult, LoopTask, scores
from noisereg.engine.lowered_mlp import LoweredMLP
from noisereg.engine.lowering import kernel_stacks, lowered_group, on_kernels
from noisereg.engine.model_randomness import user_reason
from noisereg.engine.vectorizable import group_key, refusal
from noisereg.engine.vectorized import VectorizedGroup
from noisereg.seeding import derive_seed

__all__ = ["probe", "probe_arms", "train_vectorized"]


def _part(part: Any, task: LoopTask) -> tuple[Tensor, Tensor]:
    x, y = part
    x = x.to(device=task.device, dtype=task.dtype) if x.is_floating_point() else x.to(task.device)
    y = y.to(device=task.device, dtype=task.dtype) if y.is_floating_point() else y.to(task.device)
    return x, y


def _evaluate(group: VectorizedGroup | LoweredMLP, x: Tensor, y: Tensor, batched: list[bool]) -> list[dict[str, float]]:
    """Every replica's metrics on the part ``x``, ``y`` (on the task's device and dtype), in blocks of
    at least 256 samples. ``batched[0]``: whether ``task.loss`` runs under ``vmap`` (set False the first
    time it does not, for the rest of the training)."""
    task = group.task
    size = max(task.batch_size, 256)
    count = len(group.replicas)
    outs: list[Tensor] = []
    totals = torch.zeros(count, dtype=torch.float64)
    with torch.no_grad():
        for start in range(0, len(x), size):
            xb, yb = x[start : start + size], y[start : start + size]
            out = group.outputs(xb)
            values = group.losses(out, yb) if isinstance(group, LoweredMLP) else _losses(task, out, yb, batched)
            totals += values.to("cpu", torch.float64) * len(yb)
            outs.append(out.to("cpu", torch.float64))
    return scores(torch.cat(outs, dim=1), y.detach().to("cpu"), (totals / len(x)).tolist(), task)


def _losses(task: LoopTask, out: Tensor, y: Tensor, batched: list[bool]) -> Tensor:
    """``task.loss`` of each replica's outputs ``out[r]`` against ``y``, float64 [R]: under ``vmap``
    where the loss allows it (one call, not one per replica), else replica by replica."""
    values = None
    if batched[0]:
        try:
            values = vmap(task.loss, in_dims=(0, None))(out, y)
        except Exception:  # the user's loss may not batch (a data-dependent branch, .item()): per replica
            batched[0] = False
    if values is None:
        values = torch.stack([task.loss(o, y) for o in out.unbind(0)])
    return values.detach().to("cpu", torch.float64)


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """torch's thread count set to ``count`` (None: unchanged) inside, restored afterwards."""
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_vectorized(tasks: Sequence[LoopTask]) -> list[LoopResult]:
    """Train the replicas of ``tasks`` as one :class:`VectorizedGroup`; results in the order of ``tasks``.
    Each result is what :func:`noisereg.engine.loop.train_replica` gives for that task, up to rounding.
    Tasks whose model is an MLP the built-in engine's kernels train (:mod:`noisereg.engine.lowering`)
    train there, in cache-sized stacks one after another (:func:`~noisereg.engine.lowering.kernel_stacks`),
    the others under ``vmap``, as one group.
    Raises ValueError (see :class:`VectorizedGroup`), or torch's error when the model cannot be batched.
    """
    with _threads(tasks[0].threads):
        split = on_kernels(tasks)
        results: list[LoopResult | None] = [None] * len(tasks)
        for kernels in (True, False):
            members = [i for i, lowered in enumerate(split) if lowered == kernels]
            if not members:
                continue
            chosen = [tasks[i] for i in members]
            for stack in kernel_stacks(chosen) if kernels else [range(len(chosen))]:
                part = [chosen[k] for k in stack]
                group = (lowered_group(part) if kernels else None) or VectorizedGroup(part)
                try:
                    for k, result in zip(stack, _train(group), strict=True):
                        results[members[k]] = result
                finally:
                    group.close()
        return cast(list[LoopResult], results)


def _train(group: VectorizedGroup | LoweredMLP) -> list[LoopResult]:
    task, count = group.task, len(group.replicas)
    parts = {"train": _part(task.train, task), "test": _part(task.test, task)}  # converted once
    x, y = parts["train"]
    batched = [True]
    orders = [torch.Generator().manual_seed(derive_seed(t.seed, "batches")) for t in group.tasks]
    curves: list[dict[str, list[float]]] = [{} for _ in range(count)]
    epochs: list[int] = []
    whole = len(x) <= task.batch_size
    for epoch in range(1, task.epochs + 1):
        if whole:  # one batch, in its stored order, as the per-replica path takes it (copies, as there)
            group.train_step(x.expand(count, *x.shape).contiguous(), y.expand(count, *y.shape).contiguous())
        else:
            perm = torch.stack([torch.randperm(len(x), generator=g) for g in orders]).to(x.device)
            for start in range(0, len(x), task.batch_size):
                index = perm[:, start : start + task.batch_size]
                group.train_step(x[index], y[index])
        if epoch % task.eval_every == 0 or epoch == task.epochs:
            epochs.append(epoch)
            for part_name, (part_x, part_y) in parts.items():
                for r, values in enumerate(_evaluate(group, part_x, part_y, batched)):
                    for name, value in values.items():
                        curves[r].setdefault(f"{part_name}_{name}", []).append(value)
    results = []
    for r in range(count):
        final = {name: values[-1] for name, values in curves[r].items()}
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in curves[r].items()}
        results.append(LoopResult(final, arrays, list(epochs), group.state(r)))
    return results


def probe(tasks: LoopTask | Sequence[LoopTask]) -> str | None:
    """Why the replicas of ``tasks`` (one task, or several that differ in seed and sites only) cannot
    train vectorized together, or None: :func:`refusal` of each, then one trial step of one replica per
    task stacked as one group, on a batch of at most two samples (a vmap trial forward, loss and
    backward, and an evaluation), thrown away. Runs on the first task's ``threads``."""
    tasks = [tasks] if isinstance(tasks, LoopTask) else list(tasks)
    reason = next((r for r in map(refusal, tasks) if r is not None), None)
    if reason is not None:
        return reason
    x, y = tasks[0].train  # type: ignore[misc]
    n = min(2, len(x))
    part = (x[:n], y[:n])  # one object for all: a group's tasks share their data
    trials = [dataclasses.replace(t, train=part, test=part, epochs=1, batch_size=n) for t in tasks]
    try:
        with _threads(tasks[0].threads):
            group = VectorizedGroup(trials)
            try:
                xs, ys = _part(part, trials[0])
                group.train_step(torch.stack([xs] * len(trials)), torch.stack([ys] * len(trials)))
                group.outputs(xs)
            finally:
                group.close()
    except Exception as exc:  # the user's model under vmap: any failure sends it to the per-replica path
        worded = user_reason(exc)
        if worded is not None:
            return worded
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"vmap trial failed: {type(exc).__name__}: {first[:300]}"
    return None


def probe_arms(tasks: Sequence[LoopTask]) -> list[str | None]:
    """:func:`probe`'s answer for each of ``tasks`` (one replica of each arm; they differ in seed and
    sites only), probing those of one :func:`group_key` together, as they will train: one trial step
    serves them all. Where that trial fails, each task is probed alone to name its own reason; tasks
    that pass alone but fail together are probed together again without the others, and where they
    still fail they are told so with the group's reason."""
    reasons: list[str | None] = [refusal(t) for t in tasks]
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, task in enumerate(tasks):
        if reasons[i] is None:
            groups.setdefault(group_key(task), []).append(i)
    for members in groups.values():
        failure = probe([tasks[i] for i in members])
        if failure is None:
            continue
        if len(members) > 1:
            for i in members:
                reasons[i] = probe(tasks[i])
            rest = [i for i in members if reasons[i] is None]
            if len(rest) < len(members):  # some failed alone: do the others pass together?
                failure = probe([tasks[i] for i in rest]) if len(rest) > 1 else None
            members = rest if failure is not None else []
        for i in members:
            reasons[i] = failure if len(members) == 1 else f"with the other arms of its group: {failure}"
    return reasons
