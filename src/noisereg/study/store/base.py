"""The study level of :class:`~noisereg.study.store.Store`: opening the storage, the study, its
configuration and attributes; :class:`~noisereg.study.store.Store` adds the cells on top.

The contract (what survives, what is retried, what raises) is written once, in
:mod:`noisereg.study.store`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import optuna
import sqlalchemy

from noisereg._checks import check_int, check_real
from noisereg._compat.optuna_private import trial_id
from noisereg.study.rundir import explain, write_problem
from noisereg.study.store.artifacts import artifact_dir
from noisereg.study.store.claims import Claim
from noisereg.study.store.connection import (
    ReconnectingStorage,
    Retrying,
    engine_kwargs,
    first_line,
    masked_url,
    sqlite_file,
    watch,
)

_log = logging.getLogger("noisereg.study")

__all__ = [
    "StoreBase",
    "StoreError",
    "check_writable",
    "default_url",
    "fingerprint",
    "quiet_optuna",
    "SCHEMA_VERSION",
    "DB_NAME",
    "CELL_PARAM",
]

SCHEMA_VERSION = 1
DB_NAME = "study.db"
_OWN_ATTRS = ("config", "cells", "meta", "fingerprint", "schema_version", "cell_param")
CELL_PARAM = "cell_param"
"""Study attribute of a replanned study: the name of the trial parameter that names a claimed trial's
cell (Optuna fixes a categorical parameter's choices at its first trial; a new plan's cells need a
parameter of their own). Absent: ``cell``."""


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's INFO lines ("A new study created in RDB ...", "Trial ... already exists") silenced
    inside, its verbosity restored on leaving: the store is noisereg's business, and a study reports
    what it does through the ``noisereg`` logger and its result."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(verbosity, optuna.logging.WARNING))  # a user's ERROR stays ERROR
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


class StoreError(RuntimeError):
    """The store cannot be used as asked (another configuration, no such study, bad URL)."""


def default_url(run_dir: str | Path) -> str:
    """The SQLite file ``<run_dir>/study.db`` as an SQLAlchemy URL.

    >>> default_url("runs/moons").startswith("sqlite:///") and default_url("runs/moons").endswith("/runs/moons/study.db")
    True
    """
    return f"sqlite:///{(Path(run_dir) / DB_NAME).resolve()}"


def check_writable(url: str) -> None:
    """Refuse an SQLite store whose folder or file cannot be written, before anything is stored.

    Optuna would report it only at the first commit, in its own words ("StorageInternalError: An
    exception is raised during the commit ... exceeding max length"). Raises :class:`StoreError`
    naming the folder or file and why (read-only file system, permissions, full disk)."""
    database = sqlite_file(url)
    if database is None:
        return
    problem = write_problem(database.parent, [database])
    if problem is not None:
        path, error = problem
        what = f"run directory {path}" if path == database.parent else f"store {path}"
        raise StoreError(
            f"{what} cannot be written: {explain(error)}; nothing was stored: make it writable, or choose "
            "another run directory (--out, out=) or storage"
        )


def fingerprint(config: Mapping[str, Any]) -> str:
    """SHA-256 of the configuration as canonical JSON."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(data, list):
        out = {}
        for i, v in enumerate(data):
            out.update(_flat(v, f"{prefix}[{i}]"))
        return out
    return {prefix: data}


def _lost_the_race_to_create_tables(exc: Exception) -> bool:
    """Whether opening failed because another process created Optuna's tables at the same moment.

    Processes opening a fresh database at once each see no tables, then race to create them; the loser
    gets PostgreSQL's "duplicate key ... pg_type_typname_nsp_index" (an IntegrityError) or SQLite's
    "table ... already exists" (an OperationalError), and finds the tables made on its next try.
    """
    if isinstance(exc, sqlalchemy.exc.IntegrityError):
        return True
    return isinstance(exc, sqlalchemy.exc.OperationalError) and "already exists" in str(exc.orig)


class StoreBase:
    """One study in an Optuna storage, without its cells: the arguments, attributes and errors of
    :class:`~noisereg.study.store.Store`, which is what callers make."""

    def __init__(
        self,
        url: str,
        study_name: str,
        *,
        heartbeat_interval: int = 10,
        grace_period: int | None = None,
        max_retry: int = 3,
        retry_for: float = 60.0,
    ) -> None:
        check_int(heartbeat_interval, "heartbeat_interval", low=1)  # seconds
        check_real(retry_for, "retry_for", low=0.0)  # seconds
        self.url, self.study_name = url, study_name
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = 3 * heartbeat_interval if grace_period is None else grace_period
        self.retrying = Retrying(url, 0 if url.startswith("sqlite") else retry_for)

        def open_storage() -> ReconnectingStorage:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return ReconnectingStorage(
                    url,
                    self.retrying,
                    engine_kwargs=engine_kwargs(url),
                    heartbeat_interval=heartbeat_interval,
                    grace_period=self.grace_period,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                        max_retry=max_retry
                    ),
                )

        for attempt in range(3):
            try:
                # Opening is not retried: a server that does not answer at the start is a bad --storage
                # (exit 2), not an outage; reconnection covers a server lost after the store opened.
                with self.retrying.once():
                    self.storage = open_storage()
                break
            except Exception as exc:  # SQLAlchemy raises many kinds; name the URL
                if _lost_the_race_to_create_tables(exc) and attempt < 2:
                    continue
                raise StoreError(
                    f"cannot open storage {masked_url(url)!r}: {type(exc).__name__}: {first_line(exc)} "
                    "(check --storage, and that the database server is running)"
                ) from None
        watch(self.storage.engine, self.retrying)
        self._study: optuna.Study | None = None
        self.claimed: list[Claim] = []
        self.artifact_folder = artifact_dir(url)
        self.artifacts = (
            None if self.artifact_folder is None else optuna.artifacts.FileSystemArtifactStore(self.artifact_folder)
        )

    def close(self) -> None:
        """Close the store's database connections (its pool); idempotent.

        A server has a bounded number of connections (PostgreSQL: ``max_connections``, 100 by
        default), and a pool otherwise holds its connections until the garbage collector finds it:
        a process that opens many stores (a notebook, a test suite, a long-lived worker) would run
        the server out of them. A store used after ``close`` opens new connections as needed.
        """
        self.storage.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            try:
                self._study = optuna.load_study(study_name=self.study_name, storage=self.storage)
            except KeyError:
                names = optuna.get_all_study_names(self.storage)
                raise StoreError(f"no study {self.study_name!r} in {self.url}; studies there: {names}") from None
        return self._study

    def exists(self) -> bool:
        """Whether the study has been created in the storage (:meth:`create` ran to the end)."""
        if self.study_name not in optuna.get_all_study_names(self.storage):
            return False
        return self.study.user_attrs.get("fingerprint") is not None

    def create(
        self,
        config: Mapping[str, Any],
        cells: Mapping[str, Mapping[str, Any]],
        meta: Mapping[str, Any],
        *,
        upgrade: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    ) -> bool:
        """Create the study (True), or open it if it exists with the same configuration (False).

        ``cells`` maps each cell key to its metadata (arm, value, param); ``meta`` is stored beside
        (data sizes, task). ``upgrade``: reads a stored configuration as this version would write it
        (e.g. a new key at its default, a renamed value); a study whose stored configuration upgrades
        to ``config`` is the same study, and keeps the configuration it was made with. Raises
        :class:`StoreError` if the stored configuration differs.
        """
        study = optuna.create_study(
            study_name=self.study_name, storage=self.storage, load_if_exists=True, direction="minimize"
        )
        self._study = study
        stored = study.user_attrs.get("fingerprint")
        if stored is None:
            study.set_user_attr("schema_version", SCHEMA_VERSION)
            study.set_user_attr("config", dict(config))
            study.set_user_attr("cells", {k: dict(v) for k, v in cells.items()})
            study.set_user_attr("meta", dict(meta))
            study.set_user_attr("fingerprint", fingerprint(config))  # last: marks the study as set up
            return True
        version = study.user_attrs.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"study {self.study_name!r} in {self.url} was written by another version of noisereg "
                f"(store schema {version!r}, this version uses {SCHEMA_VERSION}); use another run directory (--out)"
            )
        if stored != fingerprint(config) and not self._upgrades_to(study.user_attrs.get("config", {}), config, upgrade):
            old, new = _flat(study.user_attrs.get("config", {})), _flat(dict(config))
            changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            raise StoreError(
                f"study {self.study_name!r} in {self.url} was made from a different configuration "
                f"(differs at: {', '.join(changed[:8])}{' ...' if len(changed) > 8 else ''}); "
                "use another run directory (--out) or delete that one"
            )
        return False

    def replan(
        self, config: Mapping[str, Any], cells: Mapping[str, Mapping[str, Any]], meta: Mapping[str, Any]
    ) -> None:
        """Replace the configuration, cells and meta of the stored study, whose trials stay: only for a
        new plan of which every stored cell is a cell with the same meaning (a sequential study whose
        ``max`` was raised: :func:`noisereg.study.run.rounds.extend_rounds` checks it). The cells are
        written first and the fingerprint last, so that an interrupted replan is finished by the next.
        Trials claimed from now on name their cell in a parameter of the new plan (:data:`CELL_PARAM`);
        every trial keeps its cell in the user attribute ``cell`` too, which is what results are read by."""
        study = self.study
        study.set_user_attr(CELL_PARAM, f"cell:{fingerprint(config)[:12]}")
        study.set_user_attr("cells", {k: dict(v) for k, v in cells.items()})
        study.set_user_attr("meta", dict(meta))
        study.set_user_attr("config", dict(config))
        study.set_user_attr("fingerprint", fingerprint(config))

    def _upgrades_to(
        self,
        stored: Mapping[str, Any],
        config: Mapping[str, Any],
        upgrade: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None,
    ) -> bool:
        if upgrade is None:
            return False
        try:
            upgraded = upgrade(stored)
        except (ValueError, TypeError):  # not readable as a configuration of this version: a different study
            return False
        same = fingerprint(upgraded) == fingerprint(config)
        if same:
            _log.info(
                "study %r in %s was made by an earlier version of noisereg from the same configuration",
                self.study_name,
                self.url,
            )
        return same

    def set_attr(self, key: str, value: Any) -> None:
        """Set a study attribute holding JSON ``value`` (one transaction; replaces an older value).
        The keys the store itself keeps (config, cells, meta, fingerprint, schema_version) are refused."""
        if key in _OWN_ATTRS:
            raise ValueError(f"{key=} is kept by the store itself; choose another name")
        self.study.set_user_attr(key, value)

    def attrs(self) -> dict[str, Any]:
        """The study's user attributes (config, cells, meta, fingerprint, schema_version)."""
        return dict(self.study.user_attrs)

    def _id(self, trial: optuna.trial.FrozenTrial) -> int:
        return trial_id(self.storage, self.study.study_name, trial)

    def integrity(self) -> str | None:
        """SQLite's ``PRAGMA integrity_check`` of the store ("ok" when intact); None on a server storage."""
        if not self.url.startswith("sqlite"):
            return None
        with self.storage.engine.connect() as connection:
            rows = connection.exec_driver_sql("PRAGMA integrity_check").fetchall()
        return "; ".join(str(r[0]) for r in rows)

    def counts(self) -> dict[str, int]:
        """Number of trials per state name."""
        out: dict[str, int] = {}
        for t in self.study.get_trials(deepcopy=False):
            out[t.state.name] = out.get(t.state.name, 0) + 1
        return out
