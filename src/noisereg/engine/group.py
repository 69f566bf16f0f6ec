"""Train a group of replicas: split it into chunks and worker processes, merge the results.

How a group is split (none of it changes any replica's result beyond floating-point rounding, since
each replica's streams derive from its own seed; ``tests/engine/test_group.py`` checks this):

- replicas whose folds differ in size (train, test or validation) go to different chunks; replicas
  of equal-size folds are stacked together, whatever their fold;
- replicas on which different sites are switched off (a constant identity strength, such as the
  no-noise arm of a group that also holds noisy arms) go to different chunks, so that no chunk
  pays for noise that none of its replicas gets;
- ``workers`` processes each own every ``workers``-th replica (interleaved, so that cheap and
  expensive replicas spread evenly); torch's CPU generator is single-threaded and noise is most of
  the work, so processes, not threads, are what use several cores;
- inside a worker, chunks hold at most ``chunk_size`` replicas: by default as many as keep one
  hidden activation stack near 1 MiB (cache-sized, the fastest on CPU), and never more than
  ``memory_budget`` allows by :func:`estimate_replica_bytes`. Chunks run one after another.

Every worker, the calling process included, trains with one intra-op thread: the engine's tensors are
small, where torch's threading costs more than it gains, and one thread keeps each replica's
arithmetic the same whatever the number of workers.
"""

from __future__ import annotations

import math
import multiprocessing
import queue
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from noisereg._allocator import keep_freed_memory
from noisereg._checks import check_int
from noisereg.engine.modules import initial_module
from noisereg.engine.specs import FoldData, Group, MLPSpec, Replica, check_folds, is_constantly_off, site_kinds
from noisereg.engine.train import ChunkResult, evaluated_epochs, train_chunk
from noisereg.engine.vocabulary import HIDDEN_SITES

__all__ = ["GroupResult", "train_group", "estimate_replica_bytes", "plan_chunks", "cache_sized_stack"]

_PROGRESS_SECONDS = 0.2


@dataclass
class GroupResult:
    """Per-replica results of a group, in the order of ``group.replicas``.

    ``curves[name]`` is [R, E] at the evaluated ``epochs`` [E] (NaN after a replica stopped early):
    ``{train,test,val}_loss`` and, for classification, ``{train,test,val}_acc`` (``val_*`` only with
    validation data), for regression ``{train,test,val}_r2``; all on clean data with the replica's
    weights at that epoch. ``train_loss_noisy`` is the mean training loss over that epoch's noisy
    batches. With ``group.eval_noise``, ``noisy_test_loss`` and ``noisy_test_acc`` (or
    ``noisy_test_r2``) are the same metrics on the replica's noisy copy of its test inputs
    (:mod:`noisereg.engine.noisy_eval`). ``final[name]`` [R] is the value at the last epoch, or at the best validation epoch with
    early stopping. ``stopped_epoch`` [R] is the epoch a replica stopped at (``group.epochs`` if it
    did not); ``best_epoch`` [R] the epoch whose weights it ends with.
    """

    epochs: np.ndarray
    curves: dict[str, np.ndarray]
    final: dict[str, np.ndarray]
    stopped_epoch: np.ndarray
    best_epoch: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    weights: dict[str, Tensor] = field(default_factory=dict, repr=False)

    def state_dict(self, r: int) -> dict[str, Tensor]:
        """Replica ``r``'s final weights as a state dict of ``build_module(group.model)``."""
        count = len(self.stopped_epoch)
        check_int(r, "r", low=0, high=count - 1)
        return {k: v[r].clone() for k, v in self.weights.items()}


def _signature(fold: FoldData) -> tuple[int, ...]:
    return tuple(getattr(fold, f"x_{part}").shape[0] for part in fold.parts)


def _active_sites(group: Group, replica: Replica) -> tuple[bool, ...]:
    """Which sites can put noise on this replica (False: a constant identity strength)."""
    return tuple(not is_constantly_off(kind) for kind in site_kinds(group, replica))


def estimate_replica_bytes(group: Group, folds: Sequence[FoldData], dtype: torch.dtype = torch.float32) -> int:
    """Bytes one replica of ``group`` needs while training (an estimate, without torch's own).

    Counts the parameters with their gradient, optimizer state, best copy and gradient-noise buffers;
    the batch's activations with the buffers of each noise site; the largest evaluation pass; and a
    private copy of the replica's data. For a ModuleSpec the module's own activations are not known
    and are counted as the batch's inputs and outputs only.
    """
    spec, itemsize = group.model, torch.empty(0, dtype=dtype).element_size()
    state = {"sgd": 1 if group.optimizer.momentum else 0}.get(group.optimizer.name, 2)
    per_param = 2 + state + (group.patience is not None)
    per_param += 2 * sum(s.site == "gradients" for s in group.sites)
    n_rows = max(max(_signature(f)) for f in folds)
    n_train = max(f.x_train.shape[0] for f in folds)
    batch = min(group.batch_size, n_train)
    sample = math.prod(folds[0].x_train.shape[1:]) + (1 if isinstance(spec, MLPSpec) else 0)
    inputs = batch * sample * (1 + sum(s.site == "input" for s in group.sites))
    data = n_rows * len(folds[0].parts) * (sample + spec.out_features)
    outputs = batch * spec.out_features * 4 + n_rows * spec.out_features
    if isinstance(spec, MLPSpec):
        sizes = spec.layer_sizes
        n_params = sum((sizes[i] + 1) * sizes[i + 1] for i in range(len(sizes) - 1))
        activations = 0
        for layer, width in enumerate(spec.widths):
            streams = sum(s.site in HIDDEN_SITES and (s.layers is None or layer in s.layers) for s in group.sites)
            activations += batch * width * (3 + streams)
        activations += n_rows * len(folds[0].parts) * sum(spec.widths)
    else:
        n_params = sum(p.numel() for p in initial_module(spec, 0).parameters())
        activations = 0
    return itemsize * (n_params * per_param + activations + inputs + outputs + data)


# Replicas a stack holds by default: its widest activation stack near 1 MiB, which stays in cache.
_CACHE_BYTES = 1 << 20


def cache_sized_stack(spec: MLPSpec, batch_rows: int, dtype: torch.dtype) -> int:
    """How many replicas of ``spec`` one stack holds when each takes ``batch_rows`` samples a step:
    as many as keep the widest activation stack near 1 MiB, at least one."""
    widest = max(spec.widths, default=spec.out_features)
    itemsize = torch.empty(0, dtype=dtype).element_size()
    return max(1, _CACHE_BYTES // (batch_rows * widest * itemsize))


def plan_chunks(
    group: Group,
    folds: Sequence[FoldData],
    *,
    workers: int = 1,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> list[list[list[int]]]:
    """For each worker, its chunks, each a list of replica indices into ``group.replicas``."""
    if chunk_size is None and not isinstance(group.model, MLPSpec):
        chunk_size = len(group.replicas)
    if chunk_size is None:
        n_train = max(f.x_train.shape[0] for f in folds)
        # a ModuleSpec got its chunk_size above: only an MLP is left here
        chunk_size = cache_sized_stack(cast(MLPSpec, group.model), min(group.batch_size, n_train), dtype)
    if memory_budget is not None:
        chunk_size = min(chunk_size, max(1, memory_budget // estimate_replica_bytes(group, folds, dtype)))
    plan = []
    for w in range(workers):
        by_signature: dict[tuple[object, ...], list[int]] = {}
        for i in range(w, len(group.replicas), workers):
            replica = group.replicas[i]
            key = (_signature(folds[replica.fold]), _active_sites(group, replica))
            by_signature.setdefault(key, []).append(i)
        plan.append([idx[k : k + chunk_size] for idx in by_signature.values() for k in range(0, len(idx), chunk_size)])
    return [chunks for chunks in plan if chunks]


def train_group(
    group: Group,
    folds: Sequence[FoldData],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
) -> GroupResult:
    """Train every replica of ``group`` and return their curves, final metrics and weights.

    Args:
        group: what to train (see :class:`~noisereg.engine.specs.Group`).
        folds: the data; ``group.replicas[i].fold`` indexes it.
        device: where to train. dtype: ``torch.float32`` or ``torch.float64``.
        workers: processes to train in (>= 1); 1 trains in this process.
        progress: called with numbers of replica-epochs done; the calls add up to
            ``len(group.replicas) * group.epochs``.
        chunk_size: most replicas trained as one stack (default: cache-sized, see the module doc).
        memory_budget: bytes one stack may use, by :func:`estimate_replica_bytes` (default: no limit).

    Results do not depend on ``workers``, ``chunk_size`` or ``memory_budget`` beyond floating-point
    rounding (another stack size may round differently, see :mod:`noisereg.engine`); the same group
    and options give bitwise the same results on the same machine, on CPU.

    Raises:
        TypeError/ValueError: a bad group, folds that do not fit it, bad options.
    """
    if not isinstance(group, Group):
        raise TypeError(f"group must be a Group, got {type(group).__name__}")
    check_folds(group, folds)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype={dtype!r} must be torch.float32 or torch.float64")
    check_int(workers, "workers", low=1)
    if chunk_size is not None:
        check_int(chunk_size, "chunk_size", low=1)
    if memory_budget is not None:
        check_int(memory_budget, "memory_budget", low=1)
    device = torch.device(device)
    plan = plan_chunks(group, folds, workers=workers, chunk_size=chunk_size, memory_budget=memory_budget, dtype=dtype)
    if len(plan) == 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            results = [train_chunk(group, folds, c, device=device, dtype=dtype, progress=progress) for c in plan[0]]
        finally:
            torch.set_num_threads(threads)
    else:
        results = _train_in_processes(group, folds, plan, device, dtype, progress)
    return _merge(group, results)


def _merge(group: Group, results: Sequence[ChunkResult]) -> GroupResult:
    count = len(group.replicas)
    epochs = evaluated_epochs(group)
    curves = {k: np.full((count, len(epochs)), np.nan) for k in results[0].curves}
    final = {k: np.full(count, np.nan) for k in results[0].final}
    stopped, best = np.zeros(count, dtype=np.int64), np.zeros(count, dtype=np.int64)
    weights = {k: torch.empty((count,) + tuple(v.shape[1:]), dtype=v.dtype) for k, v in results[0].state.items()}
    for res in results:
        rows = np.asarray(res.indices)
        for k in curves:
            curves[k][rows] = res.curves[k]
            final[k][rows] = res.final[k]
        stopped[rows], best[rows] = res.stopped_epoch, res.best_epoch
        for k, v in res.state.items():
            weights[k][torch.as_tensor(rows)] = v
    return GroupResult(epochs, curves, final, stopped, best, weights)


# what a worker tells the parent: (kind, worker, payload)
Message = tuple[str, int, Any]


def _worker_main(
    group: Group,
    folds: Sequence[FoldData],
    chunks: Sequence[Sequence[int]],
    device: torch.device,
    dtype: torch.dtype,
    messages: Queue[Message],
    worker: int,
) -> None:
    try:
        torch.set_num_threads(1)
        keep_freed_memory()
        pending, last = 0, time.monotonic()

        def report(n: int) -> None:
            nonlocal pending, last
            pending += n
            if time.monotonic() - last >= _PROGRESS_SECONDS:
                messages.put(("progress", worker, pending))
                pending, last = 0, time.monotonic()

        results = [train_chunk(group, folds, c, device=device, dtype=dtype, progress=report) for c in chunks]
        for res in results:
            # numpy, not tensors: torch would pass tensors as file descriptors that vanish with us (the
            # parent turns them back into tensors, so the field's type holds outside this transit)
            res.state = {k: v.numpy() for k, v in res.state.items()}  # type: ignore[misc]
        messages.put(("progress", worker, pending))
        messages.put(("done", worker, results))
    except BaseException as exc:  # noqa: BLE001 - any failure must reach the parent, not hang it
        messages.put(("error", worker, (exc, traceback.format_exc())))


def _train_in_processes(
    group: Group,
    folds: Sequence[FoldData],
    plan: Sequence[Sequence[Sequence[int]]],
    device: torch.device,
    dtype: torch.dtype,
    progress: Callable[[int], None] | None,
) -> list[ChunkResult]:
    method = "fork" if device.type == "cpu" and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    messages: Queue[Message] = context.Queue()
    processes = [
        # typeshed types get_context(str) as BaseContext, which lacks Process; fork and spawn contexts have it
        context.Process(  # type: ignore[attr-defined]
            target=_worker_main, args=(group, folds, chunks, device, dtype, messages, w), daemon=True
        )
        for w, chunks in enumerate(plan)
    ]
    for p in processes:
        p.start()
    results: list[ChunkResult] = []
    done: set[int] = set()
    try:
        while len(done) < len(processes):
            try:
                kind, worker, payload = messages.get(timeout=1.0)
            except queue.Empty:
                dead = [w for w, p in enumerate(processes) if w not in done and not p.is_alive()]
                if dead:
                    code = processes[dead[0]].exitcode
                    raise RuntimeError(f"engine worker {dead[0]} died (exit code {code})") from None
                continue
            if kind == "progress":
                if progress is not None and payload:
                    progress(payload)
            elif kind == "error":
                exc, trace = payload
                exc.add_note(f"raised in engine worker {worker}:\n{trace}")
                raise exc
            else:
                for res in payload:
                    res.state = {k: torch.from_numpy(v) for k, v in res.state.items()}
                results.extend(payload)
                done.add(worker)
    finally:
        for p in processes:
            if p.is_alive() and len(done) < len(processes):
                p.terminate()
            p.join()
    return results
