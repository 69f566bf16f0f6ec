"""Several workers on one study: speed-up over one worker, and the storage's coordination overhead.

The study is the built-in case study (630 replicas of MLP 2→500→1 × 4000 epochs in 11 cells: five
arms × 30 seeds and a six-value σ grid × (30 seeds + 10 seeds × 5 CV folds)). It is created in a
fresh storage (an SQLite file in a temporary folder unless ``--storage URL``) and trained by 1, then
by 2 worker processes started at once (``noisereg.study.run.workers.run_worker``, one engine process
each, the default batch bound of 128 replicas), as ``noisereg worker`` does on this machine's cores.
For context the same study also runs as one ``noisereg study`` process with two engine processes.
The training seconds per cell with 2 workers against 1 show what the machine allows at all: its two
vCPUs do not double the throughput of one busy process.

Measured in every worker: time inside the engine (the cells' training) and time inside the storage
(every call of Optuna's RDBStorage, the heartbeat thread's included, outermost calls only). Printed:
wall times (from starting the processes to the last exit, interpreter and torch start-up included),
the speed-up, the storage seconds per cell against the training seconds per cell, and as the last line
``ratio: <1-worker seconds / 2-worker seconds>``.

Run by hand: ``PYTHONPATH=src python benchmarks/workers.py`` (``--epochs N`` for a quick look,
``--skip-study`` to leave out the context run).

``--own-model``: instead, a study file of one's own model (``docs/examples/own_model_study.toml``,
``model.factory = "own_nets:make_net"``, with ``--epochs``, default 400) created with ``noisereg study
--no-train`` and trained by two ``noisereg worker`` commands (``--max-replicas 9``: one cell of 3 seeds
x 3 folds per batch, so that the two share the cells), on SQLite and on PostgreSQL (``--storage``
a PostgreSQL URL, else a throwaway server as the tests start one); one worker is killed with SIGKILL
once it holds a cell and a third worker is started in its place. Printed per storage: cells, cells
completed once, kills, restarts, FAIL trials (the killed cell), wall time, beside one ``noisereg study``
process of the same file (``--workers 1``), and the largest relative difference of a stored final.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from noisereg.engine import train_group
from noisereg.study.cells import plan_cells
from noisereg.study.config import resolve_study
from noisereg.study.run.runner import enqueue_study, run_study
from noisereg.study.run.workers import run_worker
from noisereg.study.store import OWNER, Store, default_url

HEARTBEAT = 10


class Clock:
    """Seconds spent in the outermost calls of wrapped functions, from any thread."""

    def __init__(self) -> None:
        self.seconds, self.calls = 0.0, 0
        self._lock, self._inside = threading.Lock(), threading.local()

    def wrap(self, fn: Any) -> Any:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if getattr(self._inside, "depth", 0):
                return fn(*args, **kwargs)
            self._inside.depth = 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._inside.depth = 0
                with self._lock:
                    self.seconds += time.perf_counter() - start
                    self.calls += 1

        return timed


def timed_store(url: str, name: str) -> tuple[Store, Clock]:
    """A Store whose every RDBStorage call is timed (instance attributes shadow the methods)."""
    store, clock = Store(url, name, heartbeat_interval=HEARTBEAT), Clock()
    for attr in dir(type(store.storage)):
        if not attr.startswith("_") and callable(getattr(store.storage, attr)):
            setattr(store.storage, attr, clock.wrap(getattr(store.storage, attr)))
    return store, clock


def worker_main(url: str, name: str, out: Any) -> None:
    store, clock = timed_store(url, name)
    engine = Clock()
    start = time.perf_counter()
    report = run_worker(store, train=engine.wrap(train_group))
    out.put(
        {
            "cells": len(report.trained),
            "wall": time.perf_counter() - start,
            "store": clock.seconds,
            "store_calls": clock.calls,
            "train": engine.seconds,
        }
    )


def run_workers(n: int, url: str, name: str) -> tuple[float, list[dict[str, Any]]]:
    context = multiprocessing.get_context("spawn")  # as separate commands would start
    out = context.Queue()
    start = time.perf_counter()
    procs = [context.Process(target=worker_main, args=(url, name, out)) for _ in range(n)]
    for p in procs:
        p.start()
    stats = [out.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a worker exited with {p.exitcode}")
    return time.perf_counter() - start, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4000)
    parser.add_argument("--storage", help="SQLAlchemy URL (default: an SQLite file in a temporary folder)")
    parser.add_argument("--skip-study", action="store_true", help="leave out the one-process 'noisereg study' run")
    parser.add_argument("--own-model", action="store_true", help="an own-model study file on 2 workers (docstring)")
    args = parser.parse_args()
    if args.own_model:
        own_model(400 if args.epochs == 4000 else args.epochs, args.storage)
        return
    base = resolve_study("case-study")
    config = base.model_copy(update={"training": base.training.model_copy(update={"epochs": args.epochs})})
    print(f"case study, {args.epochs} epochs, {len(plan_cells(config))} cells; storage: {args.storage or 'SQLite'}")
    with tempfile.TemporaryDirectory() as tmp:
        walls: dict[int, float] = {}
        per_cell: dict[int, float] = {}
        overhead = 0.0
        for n in (1, 2):
            run_dir = Path(tmp) / f"workers{n}"
            url = args.storage or default_url(run_dir)
            name = f"bench-{n}-{uuid.uuid4().hex[:8]}"
            enqueue_study(config.model_copy(update={"name": name}), run_dir, storage=url, heartbeat_interval=HEARTBEAT)
            walls[n], stats = run_workers(n, url, name)
            per_cell[n], ratio = show(n, walls[n], stats)
            overhead = max(overhead, ratio)
        if not args.skip_study:
            start = time.perf_counter()
            run_study(config, Path(tmp) / "study", workers=2, report=False)
            print(f"one 'noisereg study' process, 2 engine processes: {time.perf_counter() - start:.1f} s (context)")
    ceiling = 2 * per_cell[1] / per_cell[2]
    print(
        f"this machine: with 2 workers each trained at {ceiling / 2:.0%} of one worker's speed "
        f"(two busy processes on its cores), so 2 workers can gain at most {ceiling:.2f}x"
    )
    print(f"speed-up, 2 workers over 1: {walls[1] / walls[2]:.2f}x")
    print(f"overhead ratio (storage / training time, the larger of the two runs): {overhead:.4f}")
    print(f"ratio: {walls[1] / walls[2]:.3f}")


def show(n: int, wall: float, stats: list[dict[str, Any]]) -> tuple[float, float]:
    """Print one run's figures; return its training seconds per cell and storage over training time."""
    cells = sum(s["cells"] for s in stats)
    store, train = sum(s["store"] for s in stats), sum(s["train"] for s in stats)
    calls = sum(s["store_calls"] for s in stats)
    print(
        f"{n} worker(s): {wall:.1f} s wall; cells per worker {[s['cells'] for s in stats]}; "
        f"worker busy {[round(s['wall'], 1) for s in stats]} s"
    )
    print(
        f"  per cell: training {train / cells:.2f} s, storage {store / cells * 1000:.1f} ms ({calls / cells:.0f} calls); "
        f"coordination overhead {100 * store / train:.2f}% of cell time (target < 5%)"
    )
    return train / cells, store / train


ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(ROOT / "src"), str(EXAMPLES), str(ROOT)])
    return {**os.environ, "PYTHONPATH": path}


def _noisereg(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "noisereg", *args], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@contextlib.contextmanager
def _postgres(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    sys.path.insert(0, str(ROOT))
    from tests.conftest import postgres_server  # a throwaway server, as the tests start one

    with contextlib.contextmanager(postgres_server.__wrapped__)() as server:
        yield server.url


def _own_model_file(folder: Path, name: str, epochs: int) -> Path:
    text = (EXAMPLES / "own_model_study.toml").read_text()
    text = text.replace('name = "own-net"', f'name = "{name}"').replace("epochs = 5", f"epochs = {epochs}")
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def _finals(url: str, name: str) -> dict[str, dict[str, float]]:
    with Store(url, name) as store:
        return {cell: res["final"] for cell, res in store.completed().items()}


def _own_model_workers(folder: Path, url: str, name: str, epochs: int) -> dict[str, Any]:
    study = _own_model_file(folder, name, epochs)
    created = _noisereg("study", str(study), "--storage", url, "--out", str(folder / name), "--no-train", "--quiet")
    if created.wait() != 0:
        raise RuntimeError(created.communicate()[1])
    start = time.perf_counter()
    workers = [
        _noisereg("worker", "--storage", url, "--study", name, "--heartbeat", "2", "--max-replicas", "9", "--quiet")
        for _ in range(2)
    ]
    kills = restarts = 0
    with Store(url, name) as store:
        deadline = time.monotonic() + 600
        while kills == 0 and time.monotonic() < deadline and workers[0].poll() is None:
            held = {
                t.system_attrs.get(OWNER, {}).get("pid") for t in store.study.get_trials(states=(TrialState.RUNNING,))
            }
            if workers[0].pid in held:
                workers[0].send_signal(signal.SIGKILL)
                kills += 1
                workers.append(
                    _noisereg(
                        "worker",
                        "--storage",
                        url,
                        "--study",
                        name,
                        "--heartbeat",
                        "2",
                        "--max-replicas",
                        "9",
                        "--quiet",
                    )
                )
                restarts += 1
            time.sleep(0.05)
        codes = [w.wait() for w in workers]
        wall = time.perf_counter() - start
        trials = store.study.get_trials()
        complete = [t.params["cell"] for t in trials if t.state == TrialState.COMPLETE]
        cells = list(store.attrs()["cells"])
    return {
        "cells": len(cells),
        "completed once": sorted(complete) == sorted(cells),
        "kills": kills,
        "restarts": restarts,
        "failed trials": sum(t.state == TrialState.FAIL for t in trials),
        "exit codes": codes,
        "wall": wall,
    }


def _largest_difference(a: Any, b: Any) -> float:
    """The largest relative difference between the numbers of two nested stored results."""
    if isinstance(a, dict):
        return max((_largest_difference(a[k], b[k]) for k in b), default=0.0)
    if isinstance(a, list):
        return max((_largest_difference(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def own_model(epochs: int, storage: str | None) -> None:
    """The ``--own-model`` run (module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        name = f"own-{uuid.uuid4().hex[:6]}"
        study = _own_model_file(folder, name, epochs)
        start = time.perf_counter()
        single = _noisereg("study", str(study), "--out", str(folder / "single"), "--workers", "1", "--quiet")
        if single.wait() != 0:
            raise RuntimeError(single.communicate()[1])
        one = time.perf_counter() - start
        reference = _finals(default_url(folder / "single"), name)
        print(f"own-model study file ({EXAMPLES / 'own_model_study.toml'}), {epochs} epochs")
        print(f"one 'noisereg study' process (--workers 1): {len(reference)} cells, {one:.1f} s wall")
        with _postgres(storage) as postgres:
            for label, backend in (("SQLite", None), ("PostgreSQL", postgres)):
                run = f"{name}-{label.lower()}"
                url = backend or default_url(folder / run)  # SQLite: the default file in the run directory
                stats = _own_model_workers(folder, url, run, epochs)
                finals = _finals(url, run)
                worst = _largest_difference(finals, reference)
                print(
                    f"{label}: --no-train + 2 workers: {stats['cells']} cells, completed once: {stats['completed once']}, "
                    f"kills {stats['kills']}, restarts {stats['restarts']}, FAIL trials {stats['failed trials']}, "
                    f"exit codes {stats['exit codes']}, {stats['wall']:.1f} s wall "
                    f"(ratio to one process {one / stats['wall']:.2f}); largest relative difference of a final "
                    f"to one process: {worst:.2e}"
                )


if __name__ == "__main__":
    main()
