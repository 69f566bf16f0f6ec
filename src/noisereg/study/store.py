"""The study store: Optuna's storage, with one trial per cell and results as trial attributes.

A *cell* is one arm × one grid value with all its seeds and folds. Each cell is one Optuna trial whose
only parameter ``cell`` (categorical over the study's cell keys) names it. The study holds the
validated configuration (``config``), its fingerprint, and the cells' metadata as study user
attributes; a trial holds its cell's results as user attributes (see :data:`RESULT_KEYS`).

The contract (the tests in ``tests/study/test_store.py`` check each point, kill -9 included):

- **Enqueueing is idempotent.** :meth:`Store.enqueue` calls ``study.enqueue_trial({"cell": key},
  user_attrs={"cell": key}, skip_if_exists=True)`` for every cell (the user attribute names a waiting
  trial's cell through public API; stores made before it are read through :mod:`noisereg._compat`): a cell that already has a trial in any state is not
  enqueued again, so rerunning a study never duplicates work. Run it from one process at a time
  (Optuna's check and insert are two statements); workers only claim.
- **Claiming is exclusive.** :meth:`Store.claim` moves a WAITING trial to RUNNING with Optuna's
  row-locked state update (on SQLite, inside a transaction that holds the write lock from its
  start); two claimants, in any processes, never get the same trial. A heartbeat is recorded *before*
  the claim, so a RUNNING trial always has one.
- **What survives a crash.** A cell's results are written, then its trial is marked COMPLETE in a
  last transaction: a COMPLETE trial always has all its results. Killing the process at any moment
  loses at most the cells it was training. Their trials stay RUNNING until their heartbeat is older
  than ``grace_period``; then :meth:`Store.reap` marks them FAIL and Optuna's
  ``RetryHeartbeatStaleTrialCallback`` enqueues a WAITING copy (up to ``max_retry`` times).
  A cell that failed by an exception (or ran out of retries) is enqueued again by
  :meth:`Store.requeue_failed`, which a rerun of the study calls once.
- **Curves as artifacts.** A cell's learning curves (``curve:<name>``, and the CV folds' held-out
  curves ``cv.*_curve``) are large, and optuna-dashboard slows down on large attributes: on a SQLite
  storage they are one Optuna artifact per trial, ``curves.json``, in the
  :class:`~optuna.artifacts.FileSystemArtifactStore` ``artifacts/`` beside the database file
  (:attr:`Store.artifacts`; ``optuna-dashboard sqlite:///<run dir>/study.db --artifact-dir <run dir>/artifacts``
  shows them). The artifact is written before the trial is COMPLETE, so a COMPLETE trial has it.
  On a server storage (PostgreSQL, MySQL) workers on other machines share no folder: the curves stay
  user attributes there, each bounded by the runner's thinning. :meth:`Store.completed` reads both
  alike, so every reader sees the same results; a run directory copied without its ``artifacts/``
  folder raises :class:`StoreError` naming it.
- **Measurements after training.** Robustness and calibration of a completed cell's models are
  written later, by another pass, as study attributes (:meth:`Store.set_attr`; a finished trial
  cannot be changed): ``robustness:<cell key>`` and ``robustness:vs-baseline`` (see
  :mod:`noisereg.study.measure.robustness`). Each is one JSON value written in one transaction, whole or
  absent; writing it again replaces it.
- **What counts.** Results and reports read COMPLETE trials only; a FAIL trial beside its COMPLETE
  retry is ignored. Should a cell ever have two COMPLETE trials, the first finished one counts.
- **A database server that goes away.** On a server storage (PostgreSQL, MySQL) the pool pings a
  connection before it hands it out, and every storage call that fails because the server cannot be
  reached (a restart, a dropped connection) is tried again, with waits growing from 0.1 s to 2 s, for
  up to ``retry_for`` seconds; the lost connection (a failed call, or a pooled connection found
  broken) and the reconnection are logged once per outage (logger ``noisereg.study``, WARNING). Then :class:`StoreUnreachable` is raised. A call whose commit
  reached the server before the connection broke may run twice: the calls the workers make are safe
  to repeat (a claim that finds its trial RUNNING skips it, and that trial is retried after its grace
  period; a COMPLETE that finds its trial COMPLETE is done), except an enqueue, which may then add a
  second WAITING trial for one cell: that cell is trained twice and its first COMPLETE trial counts.
  SQLite calls are not retried: a local file has no server to come back, and waiting for its write
  lock is bounded by the driver's 60 s timeout. Opening the store is not retried either: a server
  that does not answer when the store is opened is a wrong ``--storage`` (:class:`StoreError`).
- **A heartbeat that cannot beat.** The heartbeat thread of :meth:`Store.heartbeat` never raises:
  when a beat fails it logs it and tries again at the next interval. If no beat has been recorded
  for ``grace_period`` seconds, or the trial is no longer RUNNING (another process took the cell for
  dead and failed it), :meth:`Heartbeat.check` raises :class:`CellLost`; the runner calls it between
  epochs, stops that cell's work, says so and goes on with the next cell. :meth:`Store.complete` of
  a trial that is no longer RUNNING raises :class:`CellLost` too, and writes nothing that counts.
- **Dead claimants on this machine.** A claim records its owner (machine, process id and the
  process's start time) as the trial's ``noisereg:owner`` system attribute. :meth:`Store.reap`
  also fails (and retries) at once every RUNNING trial whose owner ran on this machine (same host
  name, boot and process namespace) and is gone: that process cannot beat any more, so waiting out
  its grace period would only delay a rerun. A claim made elsewhere, or by a process still alive,
  is only retried after its grace period; :meth:`Store.running` says who holds each one, so a
  waiting worker can say what it waits for.
- **What raises.** :class:`StoreError` for a study created from a different configuration
  (with the keys that differ), for a storage URL that cannot be opened, and for a study that does
  not exist when reading; :class:`StoreUnreachable` for a server that stays unreachable.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tempfile
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from noisereg._compat.optuna_private import ENQUEUED, enqueued_cell, trial_id
from noisereg.study.claims import OWNER, CellLost, Claim, Heartbeat, claimant, gone, machine
from noisereg.study.connection import (
    ReconnectingStorage,
    Retrying,
    StoreUnreachable,
    engine_kwargs,
    first_line,
    masked_url,
    watch,
)

__all__ = [
    "Store", "StoreError", "StoreUnreachable", "CellLost", "Claim", "Heartbeat", "default_url", "masked_url",
    "SCHEMA_VERSION", "RESULT_KEYS", "PROPOSAL", "CURVES_ARTIFACT", "ROBUSTNESS_PREFIX", "ROBUSTNESS_VS_BASELINE", "OWNER",
]

_log = logging.getLogger("noisereg.study")

SCHEMA_VERSION = 1
DB_NAME = "study.db"
RESULT_KEYS = ("cell", "seeds", "final", "cv", "nested", "coef", "epochs", "curves", "intermediate", "elapsed_s", "replicas")
"""User attributes of a completed trial: ``cell`` (its key), ``seeds`` (seed indices), ``final``
({metric: [one value per seed]}, e.g. ``test_acc``, averaged over outer folds), ``cv``
(``{"val_loss" | "val_acc" | "val_r2": [[per CV fold] per seed]}``, the CV folds' held-out metrics,
or None), ``nested`` (a nested selection's results per outer fold, see
:func:`noisereg.study.run.runner.cell_results`; absent otherwise), ``coef`` (a one-output linear
model's fitted weights per seed; absent otherwise), ``epochs`` (the
kept evaluation epochs), ``curve:<name>`` ([[per kept epoch] per seed]; in the trial's artifact
:data:`CURVES_ARTIFACT` on SQLite, else one attribute per curve so that each stays small),
``intermediate`` (the curve shown as the trial's intermediate values, see
:mod:`noisereg.study.run.dashboard`), ``elapsed_s`` and ``replicas``."""

PROPOSAL = "proposal"
"""User attribute of a search cell's trial: the value (and site) its sampler proposed,
``{"value": v, "site": s}`` (:mod:`noisereg.study.run.search`)."""


CURVES_ARTIFACT = "curves.json"
"""The artifact of a completed trial on a SQLite storage that holds its curves (module docstring)."""
ARTIFACTS_DIR = "artifacts"


def artifact_dir(url: str) -> Path | None:
    """The artifact folder of the storage ``url``: ``artifacts/`` beside a SQLite file; None for a
    server or in-memory storage, whose curves stay user attributes.

    >>> artifact_dir("sqlite:////runs/x/study.db").as_posix()
    '/runs/x/artifacts'
    >>> artifact_dir("postgresql://ann@db/runs") is None
    True
    """
    if not url.startswith("sqlite") or ":///" not in url:
        return None
    path = url.split(":///", 1)[1].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path).parent / ARTIFACTS_DIR


def split_curves(results: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``results`` as (small attributes, curves): ``curve:<name>`` and the ``*_curve`` entries of
    ``cv`` go to the curves (under ``cv``); :func:`merge_curves` puts them back.

    >>> split_curves({"seeds": [0], "curve:a": [[1.0]], "cv": {"val_loss": [[2.0]], "val_loss_curve": [[[3.0]]]}})
    ({'seeds': [0], 'cv': {'val_loss': [[2.0]]}}, {'curve:a': [[1.0]], 'cv': {'val_loss_curve': [[[3.0]]]}})
    """
    small = {k: v for k, v in results.items() if not k.startswith("curve:")}
    curves: dict[str, Any] = {k: v for k, v in results.items() if k.startswith("curve:")}
    cv = small.get("cv")
    if isinstance(cv, Mapping) and any(k.endswith("_curve") for k in cv):
        small["cv"] = {k: v for k, v in cv.items() if not k.endswith("_curve")}
        curves["cv"] = {k: v for k, v in cv.items() if k.endswith("_curve")}
    return small, curves


def merge_curves(small: Mapping[str, Any], curves: Mapping[str, Any]) -> dict[str, Any]:
    """The results that :func:`split_curves` split into ``small`` and ``curves``."""
    out = dict(small)
    for key, value in curves.items():
        out[key] = {**out[key], **value} if key == "cv" and isinstance(out.get(key), Mapping) else value
    return out


_OWN_ATTRS = ("config", "cells", "meta", "fingerprint", "schema_version")
ROBUSTNESS_PREFIX = "robustness:"
"""Study attribute ``robustness:<cell key>``: that cell's measurements after training."""
ROBUSTNESS_VS_BASELINE = "robustness:vs-baseline"
"""Study attribute: every measured cell compared with the baseline cell (mCE)."""


class StoreError(RuntimeError):
    """The store cannot be used as asked (another configuration, no such study, bad URL)."""


def default_url(run_dir: str | Path) -> str:
    """The SQLite file ``<run_dir>/study.db`` as an SQLAlchemy URL.

    >>> default_url("runs/moons").startswith("sqlite:///") and default_url("runs/moons").endswith("/runs/moons/study.db")
    True
    """
    return f"sqlite:///{(Path(run_dir) / DB_NAME).resolve()}"


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


class Store:
    """One study in an Optuna storage (see the module docstring for the contract).

    Args:
        url: SQLAlchemy URL (``sqlite:///path``, ``postgresql://...``).
        study_name: the study's name in the storage.
        heartbeat_interval: seconds between heartbeats of running cells (int >= 1).
        grace_period: seconds without heartbeat after which a RUNNING cell counts as dead
            (default 3 × heartbeat_interval).
        max_retry: how often a dead cell is retried by the heartbeat callback.
        retry_for: seconds (>= 0) to keep trying a storage call while a database server cannot be
            reached (default 60; 0 tries once; SQLite is never retried).

    ``artifacts`` is the artifact store holding the cells' curves, in ``artifact_folder``
    (:func:`artifact_dir`); both are None where the curves stay user attributes (module docstring).

    Raises:
        StoreError: the URL cannot be opened. StoreUnreachable: its server stayed unreachable.

    ``claimed`` lists every claim made through this object, for :meth:`give_back`.
    """

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
        if isinstance(heartbeat_interval, bool) or not isinstance(heartbeat_interval, int) or heartbeat_interval < 1:
            raise ValueError(f"{heartbeat_interval=} must be an int >= 1 (seconds)")
        if isinstance(retry_for, bool) or not isinstance(retry_for, (int, float)) or not 0 <= retry_for < float("inf"):
            raise ValueError(f"{retry_for=} must be a finite number >= 0 (seconds)")
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
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
                )

        for attempt in range(3):
            try:
                # Opening is not retried: a server that does not answer at the start is a bad --storage
                # (exit 2), not an outage; reconnection covers a server lost after the store opened.
                with self.retrying.once():
                    self.storage = open_storage()
                break
            except Exception as exc:  # SQLAlchemy raises many kinds; name the URL
                if isinstance(exc, sqlalchemy.exc.IntegrityError) and attempt < 2:
                    # processes opening a fresh database at once race to create Optuna's tables (PostgreSQL:
                    # "duplicate key ... pg_type_typname_nsp_index"); the loser finds them made on its next try
                    continue
                raise StoreError(
                    f"cannot open storage {masked_url(url)!r}: {type(exc).__name__}: {first_line(exc)} "
                    "(check --storage, and that the database server is running)"
                ) from None
        watch(self.storage.engine, self.retrying)
        self._study: optuna.Study | None = None
        self.claimed: list[Claim] = []
        self.artifact_folder = artifact_dir(url)
        self.artifacts = None if self.artifact_folder is None else optuna.artifacts.FileSystemArtifactStore(self.artifact_folder)

    def close(self) -> None:
        """Close the store's database connections (its pool); idempotent.

        A server has a bounded number of connections (PostgreSQL: ``max_connections``, 100 by
        default), and a pool otherwise holds its connections until the garbage collector finds it:
        a process that opens many stores (a notebook, a test suite, a long-lived worker) would run
        the server out of them. A store used after ``close`` opens new connections as needed.
        """
        self.storage.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- study level -------------------------------------------------------------------------
    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            try:
                self._study = optuna.load_study(study_name=self.study_name, storage=self.storage)
            except KeyError:
                names = optuna.get_all_study_names(self.storage)
                raise StoreError(f"no study {self.study_name!r} in {self.url}; studies there: {names}") from None
        return self._study

    def create(self, config: Mapping[str, Any], cells: Mapping[str, Mapping[str, Any]], meta: Mapping[str, Any]) -> bool:
        """Create the study (True), or open it if it exists with the same configuration (False).

        ``cells`` maps each cell key to its metadata (arm, value, param); ``meta`` is stored beside
        (data sizes, task). Raises :class:`StoreError` if the stored configuration differs.
        """
        study = optuna.create_study(study_name=self.study_name, storage=self.storage, load_if_exists=True, direction="minimize")
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
        if stored != fingerprint(config):
            old, new = _flat(study.user_attrs.get("config", {})), _flat(dict(config))
            changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            raise StoreError(
                f"study {self.study_name!r} in {self.url} was made from a different configuration "
                f"(differs at: {', '.join(changed[:8])}{' ...' if len(changed) > 8 else ''}); "
                "use another run directory (--out) or delete that one"
            )
        return False

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

    def enqueue(self, keys: Sequence[str]) -> int:
        """Enqueue each cell key unless it already has a trial; return how many were new."""
        before = len(self.study.get_trials(deepcopy=False))
        for key in keys:
            self.study.enqueue_trial({"cell": key}, user_attrs={ENQUEUED: key}, skip_if_exists=True)
        return len(self.study.get_trials(deepcopy=False)) - before

    def requeue_failed(self) -> list[str]:
        """Enqueue again every cell whose trials all ended FAIL (no COMPLETE, none waiting/running)."""
        by_cell: dict[str, set[TrialState]] = {}
        for t in self.study.get_trials(deepcopy=False):
            key = enqueued_cell(t, t.params.get("cell"))
            if key is not None:
                by_cell.setdefault(key, set()).add(t.state)
        again = sorted(k for k, states in by_cell.items() if states == {TrialState.FAIL})
        for key in again:
            self.study.enqueue_trial({"cell": key}, user_attrs={ENQUEUED: key})
        return again

    def give_back(self, claims: Sequence[Claim]) -> list[str]:
        """Enqueue again the cells of ``claims`` whose trial ended FAIL, unless the cell already has
        another trial waiting, running or complete; return their keys.

        For a worker that was interrupted (its cells are marked FAIL on the way out): the other
        workers take them at once instead of after a rerun. Only the process that made ``claims``
        may give them back, so that no cell is enqueued twice.
        """
        failed = {c.cell for c in claims if self.storage.get_trial(c.trial_id).state == TrialState.FAIL}
        live = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
        taken = {enqueued_cell(t, t.params.get("cell")) for t in self.study.get_trials(deepcopy=False, states=live)}
        again = sorted(failed - taken)
        for key in again:
            self.study.enqueue_trial({"cell": key}, user_attrs={ENQUEUED: key})
        return again

    def reap(self) -> None:
        """Mark RUNNING trials without a recent heartbeat FAIL and enqueue their retries; do the same at
        once for trials whose claimant ran on this machine and is gone (module docstring)."""

        def run() -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)
            retry = self.storage.get_heartbeat_stale_trial_callback()
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                owner: Any = t.system_attrs.get(OWNER)
                if not gone(owner):
                    continue
                try:
                    if not self.storage.set_trial_state_values(self._id(t), TrialState.FAIL):
                        continue
                except optuna.exceptions.UpdateFinishedTrialError:
                    continue  # another process failed it first, and enqueued its retry
                _log.info("cell %s: its claimant (process %s on this machine) is gone; retrying it now",
                         enqueued_cell(t), owner["pid"])
                if retry is not None:
                    retry(self.study, self.storage.get_trial(self._id(t)))

        self.retrying(run)

    def running(self) -> dict[str, str]:
        """RUNNING cells not claimed through this object: {key: who holds it, in words}."""
        mine = {c.trial_id for c in self.claimed}
        out: dict[str, str] = {}
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            key = enqueued_cell(t)
            if key is None or self._id(t) in mine:
                continue
            owner = t.system_attrs.get(OWNER)
            if not isinstance(owner, dict):
                out[key] = "an unknown process"
            elif owner.get("machine") == machine():
                out[key] = f"process {owner.get('pid')} on this machine, {'which is gone' if gone(owner) else 'still running'}"
            else:
                out[key] = f"process {owner.get('pid')} on {str(owner.get('machine')).split('/')[0]}"
        return out

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

    # ---- cells -------------------------------------------------------------------------------
    def claim(self, limit: int = 1, accept: Any = None) -> list[Claim]:
        """Claim up to ``limit`` WAITING cells (those for which ``accept(key)`` is true, if given), in
        the order of the study's cells, whatever order their trials were enqueued in (a retry is
        enqueued late), so that one worker trains the cells in the same order on every run."""
        claims: list[Claim] = []
        choices = tuple(self.study.user_attrs["cells"])
        dist = CategoricalDistribution(choices)
        order = {key: i for i, key in enumerate(choices)}
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        for t in sorted(waiting, key=lambda t: (order.get(enqueued_cell(t), len(order)), t.number)):
            if len(claims) >= limit:
                break
            key = enqueued_cell(t)
            if key not in choices or (accept is not None and not accept(key)):
                continue
            self.storage.record_heartbeat(self._id(t))
            try:
                if not self.storage.set_trial_state_values(self._id(t), TrialState.RUNNING):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            self.storage.set_trial_param(self._id(t), "cell", dist.to_internal_repr(key), dist)
            self.storage.set_trial_system_attr(self._id(t), OWNER, claimant())
            claims.append(Claim(self._id(t), t.number, key))
        self.claimed += claims
        return claims

    @contextlib.contextmanager
    def heartbeat(self, claims: Sequence[Claim]) -> Iterator[Heartbeat]:
        """Record a heartbeat for ``claims`` every ``heartbeat_interval`` seconds while inside; yield
        the :class:`Heartbeat`, whose ``check()`` raises :class:`CellLost` once the claims are lost."""
        beat = Heartbeat(self.storage, self.retrying, claims, interval=self.heartbeat_interval,
                         grace_period=self.grace_period)
        thread = threading.Thread(target=beat.run, name="noisereg-heartbeat", daemon=True)
        thread.start()
        try:
            yield beat
        finally:
            beat.stop.set()
            thread.join(timeout=self.grace_period + 15)  # a beat cannot hang longer (connect timeout 10 s)

    def complete(self, claim: Claim, value: float | None, results: Mapping[str, Any]) -> None:
        """Write ``results`` as user attributes, then mark the trial COMPLETE with ``value`` (None:
        complete without a value, as a cell without cross-validation has no objective).

        Raises:
            CellLost: the trial is no longer RUNNING (another process failed it); nothing counts.
        """
        small, curves = split_curves(results) if self.artifacts is not None else (dict(results), {})
        try:
            if curves:
                self._upload(claim.trial_id, curves)
            for key, val in small.items():
                self.storage.set_trial_user_attr(claim.trial_id, key, val)
            self.storage.set_trial_state_values(claim.trial_id, TrialState.COMPLETE, values=None if value is None else [float(value)])
        except optuna.exceptions.UpdateFinishedTrialError:
            state = self.storage.get_trial(claim.trial_id).state
            if state != TrialState.COMPLETE:  # COMPLETE: our own commit went through before a reconnect
                raise CellLost(f"cell {claim.cell!r} (trial {claim.number}) was marked {state.name} by another process") from None

    def _upload(self, trial: int, curves: Mapping[str, Any]) -> None:
        """Write ``curves`` as the artifact :data:`CURVES_ARTIFACT` of the trial with id ``trial``."""
        folder = self.artifact_folder
        if folder is None or self.artifacts is None:
            raise StoreError(f"the storage {masked_url(self.url)} keeps no artifacts; curves stay user attributes")
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / CURVES_ARTIFACT
            path.write_text(json.dumps(curves, separators=(",", ":")))
            optuna.artifacts.upload_artifact(
                artifact_store=self.artifacts, file_path=str(path), study_or_trial=self.storage.get_trial(trial), storage=self.storage
            )

    def _curves(self, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
        """The curves a completed trial keeps as its artifact; {} where it keeps them as user attributes."""
        if self.artifacts is None:
            return {}
        metas = [m for m in optuna.artifacts.get_all_artifact_meta(trial, storage=self.storage) if m.filename == CURVES_ARTIFACT]
        if not metas:
            return {}
        try:
            with self.artifacts.open_reader(metas[-1].artifact_id) as reader:
                return dict(json.load(reader))
        except optuna.artifacts.exceptions.ArtifactNotFound:
            raise StoreError(
                f"the curves of cell {enqueued_cell(trial, trial.params.get('cell'))!r} are missing: no file "
                f"{metas[-1].artifact_id} in {self.artifact_folder} (copy a run directory with its {ARTIFACTS_DIR}/ folder)"
            ) from None

    def show(self, claim: Claim, params: Mapping[str, Any], distributions: Mapping[str, Any],
             curve: Mapping[int, float]) -> None:
        """What optuna-dashboard shows of a running trial: parameters, and a curve as intermediate
        values (see :mod:`noisereg.study.run.dashboard`); call it before :meth:`complete`."""
        for name, value in params.items():
            dist = distributions[name]
            self.storage.set_trial_param(claim.trial_id, name, dist.to_internal_repr(value), dist)
        for step, value in curve.items():
            self.storage.set_trial_intermediate_value(claim.trial_id, int(step), float(value))

    def name_objective(self, name: str) -> None:
        """Name the trial value in the storage (``Study.set_metric_names``), as dashboards show it."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study.set_metric_names([name])

    def fail(self, claim: Claim, error: str) -> None:
        """Mark the trial FAIL, keeping ``error`` as its ``error`` attribute."""
        self.storage.set_trial_user_attr(claim.trial_id, "error", error[-2000:])
        self.storage.set_trial_state_values(claim.trial_id, TrialState.FAIL)

    def completed(self) -> dict[str, dict[str, Any]]:
        """Results of every completed cell: {cell key: user attributes with its curves}, first COMPLETE
        trial wins."""
        done = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        out: dict[str, dict[str, Any]] = {}
        for t in sorted(done, key=lambda t: (t.datetime_complete is None, t.datetime_complete, t.number)):
            key = t.params.get("cell", t.user_attrs.get("cell"))
            if key is not None and key not in out:
                out[key] = merge_curves(t.user_attrs, self._curves(t))
        return out

    def unfinished(self) -> dict[str, str]:
        """Cells without a COMPLETE trial: {key: 'WAITING' | 'RUNNING' | 'FAIL' | 'MISSING'}."""
        complete = set(self.completed())
        status: dict[str, str] = {k: "MISSING" for k in self.study.user_attrs.get("cells", {}) if k not in complete}
        rank = {"FAIL": 0, "WAITING": 1, "RUNNING": 2}
        for t in self.study.get_trials(deepcopy=False):
            key = enqueued_cell(t, t.params.get("cell"))
            if key in status and t.state.name in rank and rank[t.state.name] >= rank.get(status[key], -1):
                status[key] = t.state.name
        return status
