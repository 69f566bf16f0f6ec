"""Studies and worker processes shared by the multi-worker and fault tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy

from tests.study.fakes import tiny_raw

SRC = Path(__file__).resolve().parents[3] / "src"
ARMS = [
    {"name": "none"},
    {"name": "input", "noise": {"at": "input", "kind": "gaussian", "std": 0.1}},
    {"name": "before", "noise": {"at": "activations", "where": "before", "kind": "gaussian", "std": 0.1}},
    {"name": "after", "noise": {"at": "activations", "where": "after", "kind": "gaussian", "std": 0.1}},
]


def long_cells(name: str, epochs: int = 15000, arms: int = 4) -> dict:
    """``arms`` cells of about ``epochs`` / 15000 seconds each, so that a worker can be stopped in the middle of one."""
    training = {"epochs": epochs, "batch_size": 32, "eval_every": 500}
    return tiny_raw(
        name=name, seeds=2, selection=None, arms=ARMS[:arms], training=training, model={"family": "mlp", "widths": [64]}
    )


def finals(store: Any) -> dict:
    """Every complete cell's stored final results. Cells trained by other workers stack with other
    cells than in one process, so compare them with ``assert_stored_close`` (equal to rounding, see
    noisereg.engine), not bitwise."""
    return {cell: results["final"] for cell, results in store.completed().items()}


def start_worker(url: str, name: str, *extra: str, capture: bool = False) -> subprocess.Popen:
    """``noisereg worker`` as a process (heartbeat 1 s, one cell per batch); ``capture`` its output as text."""
    args = ["worker", "--storage", url, "--study", name, "--heartbeat", "1", "--max-replicas", "2", "--quiet", *extra]
    pipes: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True} if capture else {}
    return subprocess.Popen(
        [sys.executable, "-m", "noisereg", *args], env={**os.environ, "PYTHONPATH": str(SRC)}, **pipes
    )


def trials(url: str, name: str) -> list:
    """The study's trials, read over one connection that is closed on return: a test polls this every
    20 ms, and a pooled connection per call would exhaust PostgreSQL's ``max_connections``."""
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"poolclass": sqlalchemy.pool.NullPool})
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    finally:
        storage.engine.dispose()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 300) -> None:
    """Poll ``condition`` every 20 ms until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
