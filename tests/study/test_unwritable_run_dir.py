"""A run directory whose default SQLite store cannot be written is named, with the reason (read-only,
permissions, a full disk), by the built-in and the own-model paths: before anything is stored when it
is so from the start, and in place of Optuna's "An exception is raised during the commit" later."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import torch
from torch import nn

from noisereg import study
from noisereg.cli import main
from noisereg.study import rundir
from noisereg.study.store.connection import Retrying
from noisereg.study.rundir import RunDirError
from noisereg.study.store import Store, StoreError, default_url
from tests.environment import lock, unlock
from tests.study.fakes import tiny_raw
from tests.test_cli import write_study

X = torch.linspace(-2, 2, 48).reshape(24, 2)
Y = (X.sum(1) > 0).long()

OWN = """
name = "own"
seeds = 1
folds = 2
[model]
factory = "lockednets:make_net"
[data]
loader = "lockednets:load"
[training]
epochs = 1
batch_size = 6
[[arms]]
name = "none"
"""

MODULE = """
import torch
from torch import nn

def make_net():
    return nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))

def load():
    x = torch.linspace(-2, 2, 48).reshape(24, 2)
    return x, (x.sum(1) > 0).long()
"""


def _run_model(out: Path) -> None:
    study.run_model(
        model=lambda: nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2)),
        data=(X, Y),
        folds=2,
        arms={"none": []},
        out=out,
        epochs=1,
        batch_size=6,
        seeds=1,
        threads=1,
    )


@pytest.fixture
def locked() -> Iterator[list[Path]]:
    """Paths appended here are made unwritable for real by :func:`_lock` and unlocked afterwards."""
    paths: list[Path] = []
    yield paths
    for path in paths:
        unlock(path)


def _lock(path: Path, locked: list[Path]) -> None:
    lock(path)
    locked.append(path)


REASONS = ("operation not permitted", "permission denied")  # root: immutable; a user: the mode


def _command(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    if kind == "built-in":
        raw = tiny_raw(selection=None, arms=tiny_raw()["arms"][:1], robustness={"enabled": False}, seeds=1)
        return ["study", str(write_study(tmp_path / "tiny.toml", raw)), "--quiet", "--workers", "1"]
    (tmp_path / "lockednets.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "own.toml").write_text(OWN)
    return ["study", str(tmp_path / "own.toml"), "--quiet", "--workers", "1"]


@pytest.mark.parametrize("kind", ["built-in", "own model"])
def test_a_locked_run_directory_is_named_before_anything_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], locked: list[Path], kind: str
) -> None:
    command = _command(kind, tmp_path, monkeypatch)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _lock(run_dir, locked)
    assert main([*command, "--out", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: run directory {run_dir} cannot be written: ") and len(err.splitlines()) == 1, err
    assert any(reason in err for reason in REASONS) and "nothing was stored" in err
    assert "StorageInternalError" not in err and "Traceback" not in err
    assert list(run_dir.iterdir()) == []


def test_a_locked_store_file_is_named_by_run_model(tmp_path: Path, locked: list[Path]) -> None:
    out = tmp_path / "run"
    _run_model(out)
    _lock(out / "study.db", locked)
    with pytest.raises(StoreError, match=rf"store {out / 'study.db'} cannot be written: ") as info:
        _run_model(out)
    assert any(reason in str(info.value) for reason in REASONS)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.EROFS, "the file system is read-only"),
        (errno.ENOSPC, "no space left on the device"),
        (errno.EACCES, "permission denied"),
    ],
)
def test_the_reason_is_the_file_systems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, reason: str
) -> None:
    def refuse(*args: object, **kwargs: object) -> object:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(rundir.tempfile, "mkstemp", refuse)
    out = tmp_path / "run"
    with pytest.raises(StoreError, match=rf"run directory {out} cannot be written: {reason}"):
        _run_model(out)
    assert list(out.iterdir()) == []


def test_a_run_directory_locked_while_the_store_is_open_is_named(tmp_path: Path, locked: list[Path]) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    store = Store(default_url(run_dir), "s")
    _lock(run_dir, locked)  # SQLite cannot create its journal beside the database any more
    with pytest.raises(RunDirError, match=rf"cannot write {run_dir}: ") as info:
        store.storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "x")
    assert any(reason in str(info.value) for reason in REASONS)


def test_sqlites_words_for_an_unwritable_file_become_the_file_systems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "study.db"
    database.touch()

    def commit() -> None:
        raise sqlalchemy.exc.OperationalError("COMMIT", {}, Exception("attempt to write a readonly database"))

    def read_only(folder: object, files: object = ()) -> tuple[Path, OSError]:
        return database, OSError(errno.EROFS, "Read-only file system")

    retrying = Retrying(f"sqlite:///{database}", 0)
    monkeypatch.setattr("noisereg.study.store.connection.write_problem", read_only)
    with pytest.raises(RunDirError, match=rf"cannot write {database}: the file system is read-only"):
        retrying(commit)

    def busy() -> None:  # a busy database is not an unwritable one
        raise sqlalchemy.exc.OperationalError("COMMIT", {}, Exception("database is locked"))

    with pytest.raises(sqlalchemy.exc.OperationalError, match="database is locked"):
        retrying(busy)


def test_a_file_of_the_run_directory_that_cannot_be_written_is_named_by_run_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    _run_model(out)

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    (out / "run.json").unlink()  # a resumed run writes run.json only where it is missing or differs
    monkeypatch.setattr(rundir.os, "replace", full)  # the disk fills after the store was checked
    with pytest.raises(RunDirError, match=rf"cannot write {out / 'run.json'}: No space left on device"):
        _run_model(out)
