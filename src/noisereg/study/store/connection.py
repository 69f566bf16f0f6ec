"""Reaching the study's database: engine options, and storage calls retried while a server is away.

See the contract in :mod:`noisereg.study.store` ("A database server that goes away"): on a server
storage every call of Optuna's storage interface is tried again while the server cannot be reached,
for up to ``retry_for`` seconds, and each outage is logged once; SQLite is never retried.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy

from noisereg._compat.optuna_private import CACHED_BACKEND_CALLS
from noisereg._optional import require
from noisereg.study.rundir import RunDirError, explain, write_problem

__all__ = [
    "StoreUnreachable",
    "Retrying",
    "ReconnectingStorage",
    "engine_kwargs",
    "watch",
    "masked_url",
    "first_line",
    "sqlite_file",
]

_log = logging.getLogger("noisereg.study")


class StoreUnreachable(RuntimeError):
    """The database server could not be reached for ``retry_for`` seconds (see :mod:`noisereg.study.store`)."""


def masked_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and a shared run directory).

    >>> masked_url("postgresql://ann:secret@db:5432/runs")
    'postgresql://ann:***@db:5432/runs'
    """
    head, sep, tail = url.partition("://")
    if "@" not in tail or ":" not in tail.split("@", 1)[0]:
        return url
    creds, rest = tail.split("@", 1)
    return f"{head}{sep}{creds.split(':', 1)[0]}:***@{rest}"


# pysqlite starts a transaction only at the first write, so Optuna's read-check-write claim
# (SELECT ... FOR UPDATE is a no-op on SQLite) let two processes both move one WAITING trial to
# RUNNING. Every SQLite transaction takes the write lock up front instead (SQLAlchemy's documented
# recipe): claims across processes on one file are then exclusive; waiting for the lock is bounded
# by ``timeout`` seconds.
_SQLITE_ENGINE = {"connect_args": {"isolation_level": None, "timeout": 60}}


def _begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


# A server storage: ping each pooled connection before use (a server restart breaks them all), and
# give up connecting after 10 s so that a call cannot hang past its retry budget.
_SERVER_ENGINE = {"pool_pre_ping": True}
_CONNECT_TIMEOUT = {"postgresql": {"connect_timeout": 10}, "mysql": {"connect_timeout": 10}}


def engine_kwargs(url: str) -> dict[str, Any]:
    """SQLAlchemy engine options for the storage at ``url`` (SQLite or a server, by its dialect).

    Raises ImportError naming the ``postgres`` extra for ``postgresql://`` without psycopg2 (the
    driver SQLAlchemy picks for it), before SQLAlchemy fails on it deep inside Optuna.
    """
    if url.startswith("sqlite"):
        return _SQLITE_ENGINE
    scheme = url.split(":", 1)[0]
    if scheme == "postgresql":
        require("psycopg2", "postgres")
    dialect = scheme.split("+", 1)[0]
    return {**_SERVER_ENGINE, "connect_args": _CONNECT_TIMEOUT.get(dialect, {})}


def watch(engine: sqlalchemy.engine.Engine, retrying: Retrying) -> None:
    """SQLite: every transaction takes the write lock at its start; a server: ``retrying`` hears of
    connections lost and made again."""
    if engine.dialect.name == "sqlite":
        sqlalchemy.event.listen(engine, "begin", _begin_immediate)
    else:
        sqlalchemy.event.listen(engine, "invalidate", retrying.invalidated)
        sqlalchemy.event.listen(engine, "connect", retrying.connected)


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or the SQLAlchemy error Optuna wrapped in it) says the server was not reached."""
    for err in (exc, exc.__cause__):
        if isinstance(
            err, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.DisconnectionError)
        ):
            return True
        if isinstance(err, sqlalchemy.exc.DBAPIError) and err.connection_invalidated:
            return True
    return False


def sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite URL; None for another database or an in-memory one."""
    if not url.startswith("sqlite"):
        return None
    database = sqlalchemy.engine.make_url(url).database
    return Path(database) if database and database != ":memory:" else None


# SQLite's words for a database it cannot write (the file or its folder), as opposed to a busy one
_UNWRITABLE = ("readonly", "read-only", "unable to open database file", "disk is full", "disk i/o error")


def _unwritable(exc: BaseException, database: Path) -> RunDirError | None:
    """``exc`` as a :class:`RunDirError` naming ``database`` and why, if SQLite could not write it."""
    text = " ".join(str(getattr(e, "orig", None) or e) for e in (exc, exc.__cause__) if e is not None).lower()
    if not any(words in text for words in _UNWRITABLE):
        return None
    problem = write_problem(database.parent, [database])
    if problem is not None:  # the file system says why: read-only, permissions, full disk
        path, error = problem
        return RunDirError(path, OSError(error.errno, explain(error)))
    return RunDirError(database, OSError(errno.EIO, first_line(exc)))


def first_line(exc: BaseException) -> str:
    """The error's type and the first line of its message (the driver's, where SQLAlchemy wrapped it)."""
    err = exc.__cause__ if exc.__cause__ is not None else exc
    text = str(getattr(err, "orig", None) or err).strip().splitlines()
    name = type(getattr(err, "orig", None) or err).__name__
    return f"{name}: {text[0]}" if text else name


class Retrying:
    """Runs storage calls again while the server cannot be reached, for up to ``retry_for`` seconds,
    and logs each outage once: when it is first seen, and when a connection is made again.

    Only the outermost call in a thread retries (a call made inside a retried call fails through to
    it), so the time bound holds; a thread that must not wait (the heartbeat) runs in :meth:`once`.
    """

    def __init__(self, url: str, retry_for: float) -> None:
        self.url, self.retry_for = masked_url(url), retry_for
        self.database = sqlite_file(url)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._down = False

    def down(self, reason: str) -> None:
        """The server was found unreachable (a failed call, or a pooled connection found broken)."""
        with self._lock:
            if self._down:
                return
            self._down = True
        _log.warning(
            "lost the connection to the storage at %s (%s); reconnecting for up to %g s",
            self.url,
            reason,
            self.retry_for,
        )

    def connected(self, *_: Any) -> None:
        """SQLAlchemy's pool made a new connection (its ``connect`` event)."""
        with self._lock:
            if not self._down:
                return
            self._down = False
        _log.warning("reconnected to the storage at %s", self.url)

    def invalidated(self, _connection: Any, _record: Any, exception: BaseException | None) -> None:
        """SQLAlchemy's pool dropped a connection (its ``invalidate`` event: pre-ping or a failed call)."""
        if exception is not None:
            self.down(first_line(exception))

    @contextlib.contextmanager
    def once(self) -> Iterator[None]:
        """Calls inside are tried once, in this thread."""
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth

    def __call__(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.database is not None:  # SQLite: a file, never retried; one it cannot write is named
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                unwritable = _unwritable(exc, self.database)
                if unwritable is None:
                    raise
                raise unwritable from exc
        if getattr(self._local, "depth", 0) or self.retry_for <= 0:
            return fn(*args, **kwargs)
        start, tries, wait = time.monotonic(), 0, 0.1
        with self.once():
            while True:
                tries += 1
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:
                    if not _unreachable(exc):
                        raise
                    waited = time.monotonic() - start
                    if waited >= self.retry_for:
                        raise StoreUnreachable(
                            f"could not reach the storage at {self.url} after {tries} tries over {waited:.0f} s "
                            f"({first_line(exc)}); finished cells are stored; rerun once the database is up"
                        ) from None
                    self.down(first_line(exc))
                    time.sleep(min(wait, self.retry_for - waited))
                    wait = min(2 * wait, 2.0)


class ReconnectingStorage(optuna.storages.RDBStorage):
    """Optuna's RDBStorage whose every call of the storage interface goes through ``retrying``."""

    def __init__(self, url: str, retrying: Retrying, **kwargs: Any) -> None:
        self.retrying = retrying
        with retrying.once():  # the caller retries the whole opening, not each call inside it
            super().__init__(url, **kwargs)


def _retried(name: str) -> Any:
    method = getattr(optuna.storages.RDBStorage, name)

    @functools.wraps(method)
    def call(self: ReconnectingStorage, *args: Any, **kwargs: Any) -> Any:
        return self.retrying(method, self, *args, **kwargs)

    return call


# Optuna's cache in front of the storage reads trials through private methods: a read not retried
# would fail at the first broken connection, however long retry_for is.
_CACHED = {name for name in CACHED_BACKEND_CALLS if hasattr(optuna.storages.RDBStorage, name)}
for _name in sorted(optuna.storages.BaseStorage.__abstractmethods__ | {"record_heartbeat"} | _CACHED):
    setattr(ReconnectingStorage, _name, _retried(_name))
