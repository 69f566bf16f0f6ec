"""The training jobs of a study of the user's own model (:func:`noisereg.study.api.run_model`): its
replicas grouped into jobs, and the jobs run here or in a pool of forked worker processes (which
may train while the parent sets up the store: :func:`training`).

A job is one replica on the per-replica path, or the replicas of one fold (and target noise kind)
trained together on the vectorized path; with ``workers`` processes each vectorized group is split
into ``workers`` jobs of nearly equal size, so that every process trains a share.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from noisereg._allocator import keep_freed_memory
from noisereg.engine.loop import LoopResult, LoopTask, train_replica
from noisereg.engine.vectorized import group_key
from noisereg.engine.vectorized_training import train_vectorized

__all__ = ["Job", "make_jobs", "train_all", "training"]

Job = LoopTask | list[LoopTask]
"""One replica on the per-replica path, or a group of replicas trained together on the vectorized path."""

_JOBS: list[Job] = []  # the jobs a forked pool's workers read (fork copies them; nothing is pickled)


def _train_job(job: Job) -> list[LoopResult]:
    return train_vectorized(job) if isinstance(job, list) else [train_replica(job)]


def _run_job(i: int) -> tuple[int, bytes | str]:
    try:
        results = _train_job(_JOBS[i])
    except Exception:  # a worker's failure comes back as text and is raised by the parent
        return i, traceback.format_exc()
    # pickled here, not by the pool: its pickler sends each tensor through a shared-memory file of its
    # own, which cost more than the training of a short run (0.2 s for 240 tensors of a 60-replica job)
    return i, pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)


@contextlib.contextmanager
def training(jobs: list[Job], workers: int) -> Iterator[Callable[[], list[list[LoopResult]]]]:
    """Start training ``jobs`` on entering: in a pool of ``min(workers, len(jobs))`` forked processes
    (``workers > 1`` and several jobs), which train while the caller goes on; yield ``wait()``, which
    returns each job's results in the order of ``jobs`` (trained here, on the call, with one worker or
    one job). Leaving stops the pool's processes, finished or not.

    ``wait()`` raises RuntimeError naming the job that failed (with the worker's traceback)."""
    global _JOBS
    if workers == 1 or len(jobs) == 1:

        def here() -> list[list[LoopResult]]:
            out = []
            for i, job in enumerate(jobs):
                try:
                    out.append(_train_job(job))
                except Exception as exc:  # the user's model, step or data failed: not an argument error
                    raise RuntimeError(f"job {i} failed: {type(exc).__name__}: {exc}") from exc
            return out

        yield here
        return
    _JOBS = jobs
    try:
        with multiprocessing.get_context("fork").Pool(min(workers, len(jobs)), initializer=keep_freed_memory) as pool:
            running = pool.imap_unordered(_run_job, range(len(jobs)))  # dispatched now, not when read

            def wait() -> list[list[LoopResult]]:
                results: list[Any] = [None] * len(jobs)
                for i, result in running:
                    if isinstance(result, str):
                        raise RuntimeError(f"job {i} failed in a worker process:\n{result}")
                    results[i] = pickle.loads(result)
                return results

            yield wait
    finally:
        _JOBS = []


def train_all(jobs: list[Job], workers: int) -> list[list[LoopResult]]:
    """Each job's results, in the order of ``jobs``: :func:`training` waited for at once."""
    with training(jobs, workers) as wait:
        return wait()


def make_jobs(
    tasks: Sequence[LoopTask], vectorized: Sequence[bool], folds: Sequence[int], workers: int
) -> list[tuple[list[int], Job]]:
    """The jobs that train ``tasks``, each with the indices of the tasks it trains: one per task on the
    per-replica path; the vectorized tasks of one fold (and target noise kind) as one group, split into
    ``workers`` groups of nearly equal size so that every process trains a share."""
    jobs: list[tuple[list[int], Job]] = []
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, task in enumerate(tasks):
        if vectorized[i]:
            groups.setdefault((folds[i], group_key(task)), []).append(i)
        else:
            jobs.append(([i], task))
    for members in groups.values():
        parts = min(workers, len(members))
        for k in range(parts):
            chunk = members[k::parts]
            jobs.append((chunk, [tasks[i] for i in chunk]))
    return jobs
