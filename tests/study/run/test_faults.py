"""Faults end cleanly, each made for real: a PostgreSQL server restarted or down under running worker
processes, a database that stays unreachable, a run directory that cannot be written any more, a full
disk while the report is written, a claimant that is gone or still alive."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from optuna.trial import TrialState

from noisereg.cli import main
from noisereg.study.config import parse_config
from noisereg.study.run.runner import enqueue_study
from noisereg.study.run.workers import run_worker
from noisereg.study.store import OWNER, Store, StoreError, StoreUnreachable, default_url
from tests.environment import lock, required_in_ci, unlock
from tests.study.fakes import assert_stored_close, tiny_raw
from tests.study.run.processes import ARMS, SRC, finals, long_cells, start_worker, trials, wait_for
from tests.test_cli import write_study


def create(tmp_path: Path, url: str, raw: dict, heartbeat: int = 1) -> Path:
    """Create ``raw``'s study in ``url`` with ``noisereg study --no-train``; return its run directory."""
    run_dir = tmp_path / "run"
    study = write_study(tmp_path / "study.toml", raw)
    assert (
        main(
            [
                "study",
                str(study),
                *("--storage", url, "--out", str(run_dir), "--no-train", "--quiet", "--heartbeat", str(heartbeat)),
            ]
        )
        == 0
    )
    return run_dir


def claimants(url: str, name: str) -> set[int]:
    return {t.system_attrs[OWNER]["pid"] for t in trials(url, name) if OWNER in t.system_attrs}


def running(url: str, name: str) -> set[int]:
    return {
        t.system_attrs[OWNER]["pid"]
        for t in trials(url, name)
        if t.state == TrialState.RUNNING and OWNER in t.system_attrs
    }


def finish(workers: list[subprocess.Popen]) -> list[str]:
    """Wait for the workers; assert each exited 0 without a traceback; return their standard error."""
    errs = [w.communicate(timeout=600)[1] for w in workers]
    for w, err in zip(workers, errs):
        assert w.returncode == 0 and "Traceback" not in err, err
    return errs


def complete_once(url: str, name: str, cells: list[str]) -> list:
    after = trials(url, name)
    assert Counter(t.params["cell"] for t in after if t.state == TrialState.COMPLETE) == {c: 1 for c in cells}
    return after


def test_workers_reconnect_after_the_database_server_restarts(tmp_path, postgres_server, reference) -> None:
    url, name = postgres_server.url, "restart"
    run_dir = create(tmp_path, url, long_cells(name))
    workers = [start_worker(url, name, capture=True) for _ in range(2)]
    pids = {w.pid for w in workers}
    wait_for(lambda: running(url, name) == pids, "both workers to train a cell")
    postgres_server.stop("fast")  # every pooled connection of every worker breaks
    postgres_server.start()
    for err in finish(workers):
        assert "lost the connection to the storage" in err and "reconnected to the storage" in err, err
    complete_once(url, name, [arm["name"] for arm in ARMS])
    assert main(["report", str(run_dir), "--quiet"]) == 0
    assert_stored_close(finals(Store(url, name)), reference)


def test_a_heartbeat_that_cannot_beat_stops_its_cells_work_and_the_worker_goes_on(tmp_path, postgres_server) -> None:
    # cells of about 15 s: the server is down for 9 s from early in each, longer than the 6 s grace
    # period of a 2 s heartbeat (a 1 s heartbeat, late on a loaded machine, lost every retry of a cell)
    url, name = postgres_server.url, "outage"
    create(tmp_path, url, long_cells(name, epochs=225000, arms=2), heartbeat=2)
    workers = [start_worker(url, name, "--heartbeat", "2", capture=True) for _ in range(2)]
    pids = {w.pid for w in workers}
    wait_for(lambda: running(url, name) == pids, "both workers to train a cell")
    postgres_server.stop("immediate")
    threading.Event().wait(9)
    postgres_server.start()
    # Each worker's cell is lost, whenever its training thread looks: its heartbeat thread stops
    # beating once the grace period has passed without a beat (a beat after the restart could
    # otherwise keep a trial alive that the other worker is already retrying).
    for err in finish(workers):
        assert "lost cell(s)" in err and "no heartbeat could be recorded for" in err, err
        assert "going on with the next cell" in err, err
    after = complete_once(url, name, ["none", "input"])
    # Both cells were lost in the outage and trained again (each completed once, above). A retry may be
    # lost once more: a 1 s heartbeat that comes late on a busy machine is reaped like a dead one
    # (as in test_workers), so the number of losses is not asserted, only that both cells had one.
    lost = [t for t in after if t.state == TrialState.FAIL]
    assert {t.params["cell"] for t in lost} == {"input", "none"}


def test_a_server_lost_after_opening_is_retried_for_retry_for_seconds_then_named(postgres_server, caplog) -> None:
    url = postgres_server.url
    with Store(url, "give-up", retry_for=2) as store:
        store.create({"x": 1}, {"a": {"arm": "a"}}, {"task": "classification"})
        postgres_server.stop("fast")
        try:
            start = time.monotonic()
            with caplog.at_level(logging.WARNING, logger="noisereg.study"), pytest.raises(StoreUnreachable) as raised:
                store.counts()
            waited = time.monotonic() - start
        finally:
            postgres_server.start()
        # the bound: retry_for, plus the last try's refused connection and the 2 s cap of one back-off
        assert 2 <= waited < 2 + 2 + 10, waited
        assert f"could not reach the storage at {url}" in str(raised.value) and "rerun once the database is up" in str(
            raised.value
        )
        assert "lost the connection to the storage" in caplog.text
        assert store.counts() == {}  # the server is back: the same store reconnects


def test_a_database_that_does_not_answer_when_opened_is_named_with_its_password_hidden(capsys) -> None:
    # Opening is not retried (a wrong --storage is bad input, exit 2); a server lost after the store
    # opened is retried for retry_for seconds (the restart and heartbeat tests).
    with socket.socket() as s:  # a port where nothing listens: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+psycopg2://ann:secret@127.0.0.1:{port}/runs"
    masked = rf"postgresql\+psycopg2://ann:\*\*\*@127.0.0.1:{port}/runs"
    with pytest.raises(StoreError, match=rf"cannot open storage '{masked}'.*check --storage"):
        Store(url, "s", retry_for=0.5)
    assert main(["worker", "--storage", url, "--study", "s", "--retry", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "cannot open storage 'postgresql+psycopg2://ann:***@" in err and "secret" not in err
    assert "Traceback" not in err
    with pytest.raises(ValueError, match="retry_for=-1 must be finite and >= 0"):
        Store(url, "s", retry_for=-1)


def test_an_unwritable_run_directory_is_named_and_the_rerun_trains_the_rest(tmp_path, postgres_url, capsys) -> None:
    name = "unwritable"
    study = write_study(tmp_path / "study.toml", {**long_cells(name), "robustness": {"enabled": False}})
    run_dir = tmp_path / "run"
    # a 15 s grace period: on a loaded machine the heartbeat thread may starve for seconds
    command = [
        "study",
        str(study),
        "--storage",
        postgres_url,
        "--out",
        str(run_dir),
        "--quiet",
        "--heartbeat",
        "5",
        "--workers",
        "1",
    ]
    locked: list[Path] = []

    def lock_after_the_first_cell() -> None:
        wait_for(lambda: any(t.state == TrialState.COMPLETE for t in trials(postgres_url, name)), "a finished cell")
        for folder in (run_dir, run_dir / "models"):
            lock(folder)
            locked.append(folder)

    assert main([*command, "--no-train"]) == 0  # the study exists before the watcher looks at it
    watcher = threading.Thread(target=lock_after_the_first_cell)
    watcher.start()
    try:
        assert main(command) == 1
        watcher.join()
        err = capsys.readouterr().err
        [line] = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert line.startswith(f"error: cannot write {run_dir / 'models'}/") and ".pt: " in line, err
        assert ("Operation not permitted" in line or "Permission denied" in line) and "Traceback" not in err
        assert "cells are complete in the store" in line and "are marked FAIL" in line
        cell = line.split("the cell(s) in training (", 1)[1].split(")", 1)[0]
        failed = [t.params["cell"] for t in trials(postgres_url, name) if t.state == TrialState.FAIL]
        assert failed == [cell] and f"models/{cell}-" in line
    finally:
        watcher.join()
        for folder in locked:
            unlock(folder)
    assert main(command) == 0
    complete_once(postgres_url, name, [arm["name"] for arm in ARMS])
    assert len(list((run_dir / "models").glob("*.pt"))) == len(ARMS)


def _tmpfs(path: Path, size: str) -> None:
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:  # needs root (or CAP_SYS_ADMIN)
        required_in_ci(f"cannot mount a small tmpfs here for a real full disk: {done.stderr.strip()}")


def test_a_full_disk_while_the_report_is_written_leaves_the_store_intact(tmp_path, capsys) -> None:
    disk = tmp_path / "disk"
    _tmpfs(disk, "4m")
    try:
        run_dir = disk / "run"
        raw = tiny_raw(selection=None, arms=tiny_raw()["arms"][:3], robustness={"enabled": False})
        command = ["study", str(write_study(tmp_path / "tiny.toml", raw)), "--out", str(run_dir), "--quiet"]
        assert main(command) == 0
        first = json.loads((run_dir / "summary.json").read_text())
        results = Store(default_url(run_dir), "tiny").completed()
        for report in ("summary.json", "summary.md", "report.html"):
            (run_dir / report).unlink()
        shutil.rmtree(run_dir / "plots")
        free = shutil.disk_usage(disk).free
        with open(disk / "ballast", "wb") as f:  # leave 32 KB: room for SQLite's journal, not for the plots
            f.write(b"\0" * (free - 32 * 1024))
        capsys.readouterr()
        assert main(command) == 1  # nothing to train; the report fills the disk
        err = capsys.readouterr().err
        [line] = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert line.startswith(f"error: cannot write {run_dir}/") and "No space left on device" in line, err
        assert "the report could not be written; the results of 3 cell(s) are safe in the store" in line
        assert "passed SQLite's integrity check" in line and "Traceback" not in err
        with sqlite3.connect(run_dir / "study.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert Store(default_url(run_dir), "tiny").completed() == results
        assert not list(run_dir.glob(".*.tmp")) and not list(run_dir.glob("plots/*.tmp"))  # no partial files left
        (disk / "ballast").unlink()
        assert main(["report", str(run_dir), "--quiet"]) == 0
        assert json.loads((run_dir / "summary.json").read_text()) == first
    finally:
        subprocess.run(
            ["umount", "--lazy", str(disk)], check=True
        )  # the store's pooled connections still hold study.db open


def _owner_of(argv: list[str]) -> dict:
    """The owner record that a finished process on this machine wrote for its claims."""
    code = "import json; from noisereg.study.store.claims import claimant; print(json.dumps(claimant()))"
    out = subprocess.run(
        [*argv, "-c", code], capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(SRC)}
    )
    return json.loads(out.stdout)


def test_a_claim_of_a_gone_process_here_is_retried_at_once_and_a_live_one_is_waited_for(tmp_path, caplog) -> None:
    url = default_url(tmp_path / "run")
    cfg = parse_config(tiny_raw(selection=None, arms=tiny_raw()["arms"][:3]))
    enqueue_study(cfg, tmp_path / "run", heartbeat_interval=600)  # a grace period of 30 minutes
    holder = Store(url, "tiny", heartbeat_interval=600)
    dead, alive, elsewhere = holder.claim(3)
    gone = _owner_of([sys.executable])  # that process has ended: its pid is gone (or reused, with another start time)
    holder.storage.set_trial_system_attr(dead.trial_id, OWNER, gone)
    holder.storage.set_trial_system_attr(elsewhere.trial_id, OWNER, {**gone, "machine": "another-host/x/1"})
    other = Store(url, "tiny", heartbeat_interval=600)
    assert other.running() == {
        "none": f"process {gone['pid']} on this machine, which is gone",
        "input": f"process {os.getpid()} on this machine, still running",
        "before": f"process {gone['pid']} on another-host",
    }
    other.reap()  # no wait for the grace period: the claimant of "none" is gone
    assert other.unfinished() == {"none": "WAITING", "input": "RUNNING", "before": "RUNNING"}
    holder.fail(elsewhere, "given up by hand")  # so that only the live claim is left to wait for
    holder.give_back([elsewhere])
    short = Store(url, "tiny", heartbeat_interval=2)  # a grace period of 6 s
    beating = threading.Event()

    def hold_until_waited_for() -> None:  # the live claimant beats until the worker says it waits for it, then stops
        holder.storage.record_heartbeat(alive.trial_id)
        beating.set()
        with Store(url, "tiny", heartbeat_interval=1).heartbeat([alive]):
            wait_for(
                lambda: any(r.getMessage().startswith("waiting for cell") for r in caplog.records), "the message", 120
            )

    holding = threading.Thread(target=hold_until_waited_for)
    with caplog.at_level(logging.INFO, logger="noisereg.study"):
        holding.start()
        beating.wait()
        report = run_worker(short)
    holding.join()
    assert sorted(report.trained) == ["before", "input", "none"] and report.unfinished == {}
    waited = [r.getMessage() for r in caplog.records if r.getMessage().startswith("waiting for cell")]
    assert waited == [
        f"waiting for cell input, held by process {os.getpid()} on this machine, still running; should its heartbeat "
        "stop, it is retried 6 s after its last one (grace period)"
    ]
