"""Several worker processes on one study, for real: SQLite and PostgreSQL, kill -9, Ctrl-C."""

from __future__ import annotations

import json
import multiprocessing
import signal
import subprocess
import time
from collections import Counter

import pytest
from optuna.trial import TrialState

from noisereg._compat.optuna_private import enqueued_cell
from noisereg.cli import main
from noisereg.engine import train_group
from noisereg.study.config import parse_config
from noisereg.study.run.runner import enqueue_study
from noisereg.study.run.workers import WorkerReport, run_worker
from noisereg.study.store import Store, default_url
from tests.study.fakes import assert_stored_close, tiny_raw
from tests.study.run.processes import ARMS, finals, long_cells, start_worker, trials
from tests.test_cli import write_study

RACE_CELLS = 120


def _claim_all(url: str, start, out) -> None:
    store = Store(url, "race")
    store.attrs()  # connect before the start signal, so that both claim at once
    start.wait()
    keys = []
    while claims := store.claim(1):
        keys += [c.cell for c in claims]
    out.put(keys)


def test_claims_are_exclusive_across_processes_on_sqlite(tmp_path) -> None:
    # pysqlite's deferred transactions let two processes claim one trial (3 of 300 here before the fix)
    url = default_url(tmp_path)
    store = Store(url, "race")
    cells = {f"c{i}": {"arm": f"c{i}"} for i in range(RACE_CELLS)}
    store.create({"x": 1}, cells, {})
    store.enqueue(list(cells))
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(url, start, out)) for _ in range(2)]
    for p in procs:
        p.start()
    start.set()
    first, second = out.get(timeout=120), out.get(timeout=120)
    for p in procs:
        p.join()
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(cells)


def test_an_interrupted_claimant_gives_back_only_its_own_failed_cells(tmp_path) -> None:
    cells = {k: {"arm": k} for k in "abc"}
    store, other = Store(default_url(tmp_path), "s"), Store(default_url(tmp_path), "s")
    store.create({"x": 1}, cells, {})
    store.enqueue(list(cells))
    a, b = store.claim(2)
    [c] = other.claim(1)
    assert store.claimed == [a, b] and other.claimed == [c]
    for s, claim in ((store, a), (store, b), (other, c)):
        s.fail(claim, "KeyboardInterrupt")
    other.study.enqueue_trial({"cell": "b"})  # b was already retried elsewhere
    other.claim(1)
    assert store.give_back(store.claimed) == ["a"]
    assert store.give_back(store.claimed) == []
    assert store.unfinished() == {"a": "WAITING", "b": "RUNNING", "c": "FAIL"}


# ---- workers as processes ------------------------------------------------------------------------


def stop_in_second_cell(proc: subprocess.Popen, url: str, name: str, sig: int) -> None:
    """Send ``sig`` to the worker as soon as it has started a cell after finishing one."""
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        now = trials(url, name)
        running = {t.number for t in now if t.state == TrialState.RUNNING}
        if any(t.state == TrialState.COMPLETE for t in now) and running - seen:
            proc.send_signal(sig)
            proc.wait(timeout=60)
            return
        seen |= running
        assert proc.poll() is None, "the worker finished before it could be stopped: make the cells longer"
        time.sleep(0.02)
    raise AssertionError("the worker did not start a second cell in time")


@pytest.mark.parametrize(("backend", "sig"), [("sqlite", signal.SIGINT), ("postgresql", signal.SIGKILL)])
def test_workers_finish_every_cell_once_after_one_is_stopped(tmp_path, request, reference, backend, sig) -> None:
    name = f"workers-{backend}"
    url = default_url(tmp_path) if backend == "sqlite" else request.getfixturevalue("postgres_url")
    run_dir = tmp_path / "run"
    study = write_study(tmp_path / "study.toml", long_cells(name))
    assert (
        main(
            ["study", str(study), "--storage", url, "--out", str(run_dir), "--no-train", "--quiet", "--heartbeat", "1"]
        )
        == 0
    )

    first = start_worker(url, name)
    stop_in_second_cell(first, url, name, sig)
    before = trials(url, name)
    finished = {t.params["cell"]: t.number for t in before if t.state == TrialState.COMPLETE}
    if sig == signal.SIGINT:  # Ctrl-C: the cell in training went back to the queue at once
        assert first.returncode == 130
        [stopped] = [t.params["cell"] for t in before if t.state == TrialState.FAIL]
        assert any(t.state == TrialState.WAITING and enqueued_cell(t) == stopped for t in before)
    else:  # kill -9: the cell stays RUNNING until its heartbeat is stale, then it is retried
        assert first.returncode == -signal.SIGKILL
        [stopped] = [t.params["cell"] for t in before if t.state == TrialState.RUNNING]

    workers = [start_worker(url, name), start_worker(url, name)]
    assert [w.wait(timeout=120) for w in workers] == [0, 0]
    after = trials(url, name)
    complete = Counter(t.params["cell"] for t in after if t.state == TrialState.COMPLETE)
    assert complete == {arm["name"]: 1 for arm in ARMS}  # every cell exactly once
    # The stopped cell failed. Another cell may have failed too: a worker whose 1 s heartbeat came late
    # on a busy machine is reaped like a dead one, and its cell retried (still completed once, above).
    failed = [t.params["cell"] for t in after if t.state == TrialState.FAIL]
    assert stopped in failed
    assert {
        t.params["cell"]: t.number for t in after if t.state == TrialState.COMPLETE and t.params["cell"] in finished
    } == finished
    assert main(["report", str(run_dir), "--quiet"]) == 0
    # Cells trained by other workers stack with other cells than in one process: equal to rounding
    # (see noisereg.engine), compared at the stored precision.
    assert_stored_close(finals(Store(url, name)), reference)


# ---- the commands, in-process --------------------------------------------------------------------


def test_no_train_enqueues_once_then_a_worker_trains_and_study_resumes(tmp_path, capsys) -> None:
    study = write_study(tmp_path / "tiny.toml", tiny_raw(selection=None, arms=tiny_raw()["arms"][:3]))
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    create = ["study", str(study), "--storage", url, "--out", str(tmp_path / "run"), "--no-train"]
    assert main(create) == 0 and main(create) == 0
    out = capsys.readouterr().out
    assert "3 cells, 0 complete, 3 waiting" in out and "noisereg worker --storage URL --study tiny" in out
    assert Store(url, "tiny").counts() == {"WAITING": 3} and not (tmp_path / "run" / "summary.json").exists()
    assert main(["worker", "--storage", url, "--study", "tiny", "--max-replicas", "3"]) == 0
    assert "trained 3 cell(s); 0 of the study's cells without a result" in capsys.readouterr().out
    assert main([*create[:-1], "--quiet"]) == 0  # the study command on the finished storage trains nothing
    assert Store(url, "tiny").counts() == {"COMPLETE": 3}
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["cells_complete"] == 3


def test_worker_exit_codes_name_the_problem(tmp_path, capsys) -> None:
    url = default_url(tmp_path)
    assert main(["worker", "--storage", url, "--study", "nosuch"]) == 2
    assert "no study 'nosuch'" in capsys.readouterr().err
    assert main(["worker", "--storage", "nosuchdialect://x", "--study", "tiny"]) == 2
    assert "cannot open storage" in capsys.readouterr().err
    assert main(["worker", "--study", "tiny"]) == 2  # --storage is required

    def broken(group, folds, **kwargs):
        if group.sites and group.sites[0].site == "input":
            raise RuntimeError("engine exploded")
        return train_group(group, folds, **kwargs)

    cfg = parse_config(tiny_raw(selection=None, arms=tiny_raw()["arms"][:3]))
    _, store = enqueue_study(cfg, tmp_path / "run", storage=url)
    with pytest.raises(RuntimeError, match="engine exploded"):
        run_worker(store, train=broken)
    assert main(["worker", "--storage", url, "--study", "tiny"]) == 1  # trains the rest, reports the failed cell
    captured = capsys.readouterr()
    assert "trained 1 cell(s)" in captured.out and "cells without a result: input" in captured.err
    assert run_worker(Store(url, "tiny")) == WorkerReport(trained=(), unfinished={"input": "FAIL"})
    with pytest.raises(ValueError, match="max_replicas=0 must be an int >= 1"):
        run_worker(store, max_replicas=0)
