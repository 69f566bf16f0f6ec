"""A study file of one's own model (``model.factory`` / ``data.loader``) through ``noisereg study
--no-train`` and ``noisereg worker``s, on SQLite and PostgreSQL: the built-in workers' guarantees hold."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from optuna.trial import TrialState

from noisereg.cli import main
from noisereg.study.store import OWNER, Store, default_url
from tests.study.fakes import assert_stored_close
from tests.study.run.processes import SRC, finals, trials, wait_for

ROOT = SRC.parent  # the factory module is imported by path, from the repository's tests package
CELLS = ["none", "input", "hidden[std=0.1]", "hidden[std=0.3]"]


def study_file(path: Path, name: str, epochs: int) -> Path:
    path.write_text(
        textwrap.dedent(
            f"""
            name = "{name}"
            seeds = 2
            [model]
            factory = "tests.study.own_model_factories:make_net"
            kwargs = {{ width = 16 }}
            [data]
            loader = "tests.study.own_model_factories:load"
            [training]
            epochs = {epochs}
            batch_size = 16
            eval_every = {max(1, epochs // 10)}
            [[arms]]
            name = "none"
            [[arms]]
            name = "input"
            noise = [{{ kind = "gaussian", std = 0.1, at = "input" }}]
            [[arms]]
            name = "hidden"
            noise = [{{ kind = "gaussian", std = 0.1, at = "activations", select = "1" }}]
            grid = [0.1, 0.3]
            """
        )
    )
    return path


def start_worker(url: str, name: str, *extra: str) -> subprocess.Popen:
    """``noisereg worker`` (heartbeat 1 s, one cell per batch) with the tests package importable."""
    args = ["worker", "--storage", url, "--study", name, "--heartbeat", "1", "--max-replicas", "2", "--quiet", *extra]
    path = os.pathsep.join([str(SRC), str(ROOT)])
    return subprocess.Popen(
        [sys.executable, "-m", "noisereg", *args],
        env={**os.environ, "PYTHONPATH": path},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def enqueue(tmp_path: Path, url: str, name: str, epochs: int) -> Path:
    run_dir = tmp_path / "run"
    path = study_file(tmp_path / f"{name}.toml", name, epochs)
    args = ["study", str(path), "--storage", url, "--out", str(run_dir), "--no-train", "--quiet", "--heartbeat", "1"]
    assert main(args) == 0
    return run_dir


def single_process(tmp_path: Path, name: str, epochs: int) -> dict:
    """Every cell's stored finals of the same file trained by ``noisereg study`` in one process."""
    run_dir = tmp_path / "single"
    path = study_file(tmp_path / f"{name}-single.toml", name, epochs)
    assert main(["study", str(path), "--out", str(run_dir), "--workers", "1", "--quiet"]) == 0
    return finals(Store(default_url(run_dir), name))


def completed_once(url: str, name: str) -> list:
    after = trials(url, name)
    assert Counter(t.params["cell"] for t in after if t.state == TrialState.COMPLETE) == {c: 1 for c in CELLS}
    return after


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return default_url(tmp_path / "run")
    return request.getfixturevalue("postgres_url")


def test_two_workers_train_each_cell_of_an_own_model_file_once_as_one_process_does(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    name = "own-two"
    run_dir = enqueue(tmp_path, url, name, epochs=40)
    workers = [start_worker(url, name), start_worker(url, name)]
    outputs = [w.communicate(timeout=300) for w in workers]
    for w, (_, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0 and "Traceback" not in err, err
    after = completed_once(url, name)
    assert not [t for t in after if t.state == TrialState.FAIL]
    assert {t.system_attrs[OWNER]["pid"] for t in after} <= {w.pid for w in workers}  # trained by the workers
    # The same seeds on the same machine: equal to the stored precision. A worker stacks a cell's
    # replicas alone (--max-replicas 2), one process stacks every cell's replicas of a fold together:
    # vmap over stacks of other sizes may round differently (see noisereg.engine), a difference of
    # float32 rounding, far below what another seed or noise draw moves (assert_stored_close).
    assert_stored_close(finals(Store(url, name)), single_process(tmp_path, name, epochs=40))
    assert main(["report", str(run_dir), "--quiet"]) == 0
    assert (run_dir / "summary.json").is_file()


def test_a_killed_workers_own_model_cell_is_retried_by_another_worker(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    name = "own-kill"
    enqueue(tmp_path, url, name, epochs=3000)
    first = start_worker(url, name)

    def holds_a_cell() -> bool:
        assert first.poll() is None, "the worker finished before it could be killed: make the cells longer"
        return any(
            t.state == TrialState.RUNNING and t.system_attrs.get(OWNER, {}).get("pid") == first.pid
            for t in trials(url, name)
        )

    wait_for(holds_a_cell, "the first worker to claim a cell")
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL
    [killed] = [t.params["cell"] for t in trials(url, name) if t.state == TrialState.RUNNING]
    started = time.monotonic()
    workers = [start_worker(url, name), start_worker(url, name)]
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0 and "Traceback" not in err, err
    after = completed_once(url, name)  # the killed cell too, once, by another worker
    assert killed in [t.params["cell"] for t in after if t.state == TrialState.FAIL]
    assert time.monotonic() - started < 600


def test_a_worker_that_cannot_import_the_factory_names_the_key_and_exits_2(tmp_path: Path) -> None:
    url = default_url(tmp_path / "run")
    name = "own-missing"
    enqueue(tmp_path, url, name, epochs=2)
    worker_dir = tmp_path / "elsewhere"  # a folder where the tests package is not importable
    worker_dir.mkdir()
    lonely = subprocess.run(
        [sys.executable, "-m", "noisereg", "worker", "--storage", url, "--study", name, "--quiet"],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        cwd=worker_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert lonely.returncode == 2, lonely.stderr
    err = lonely.stderr.strip()
    assert err.startswith(f"error: study '{name}' in the storage"), err
    assert "model.factory" in err and "cannot import module 'tests.study.own_model_factories'" in err, err
    assert "Traceback" not in err
    with Store(url, name) as store:  # nothing was claimed
        assert set(store.unfinished().values()) == {"WAITING"}


def test_a_worker_asked_to_train_a_study_defined_in_python_says_it_needs_an_import_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from noisereg import noise, study
    from tests.study.own_model_factories import load

    data = load()
    study.run_model(
        model=lambda: torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)),
        data=data,
        arms={"none": [], "input": [study.site(noise.Gaussian(std=0.1), at="input")]},
        out=tmp_path / "py",
        epochs=1,
        seeds=1,
    )
    assert main(["worker", "--storage", default_url(tmp_path / "py"), "--study", "py", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "model.factory" in err and "defined in Python" in err and "'package.module:function'" in err, err
