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
- **Curves as artifacts.** On a SQLite storage a cell's learning curves are one Optuna artifact per
  trial in ``artifacts/`` beside the database file (:attr:`Store.artifacts`, :mod:`noisereg.study.store.artifacts`),
  written before the trial is COMPLETE, so a COMPLETE trial has it; on a server storage they stay user
  attributes, each bounded by the runner's thinning. :meth:`Store.completed` reads both alike; a run
  directory copied without its ``artifacts/`` folder raises :class:`StoreError` naming it.
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
  when a beat fails it logs it and tries again at the next interval. Once the beats have failed
  for ``grace_period`` seconds it stops beating for good (a late beat could make a trial that
  another process is already retrying look alive): the cell is lost however late the training
  thread looks, and the reaper retries it once. Then, as when the trial is no longer RUNNING
  (another process took the cell for dead and failed it), :meth:`Heartbeat.check` raises
  :class:`CellLost`; the runner calls it between epochs and once a batch has trained, stops that
  cell's work, says so and goes on with the next cell. :meth:`Store.complete` of
  a trial that is no longer RUNNING raises :class:`CellLost` too, and writes nothing that counts.
- **Dead claimants on this machine.** A claim records its owner (machine, process id and the
  process's start time) as the trial's ``noisereg:owner`` system attribute. :meth:`Store.reap`
  also fails (and retries) at once every RUNNING trial whose owner ran on this machine (same host
  name, boot and process namespace) and is gone: that process cannot beat any more, so waiting out
  its grace period would only delay a rerun. A claim made elsewhere, or by a process still alive,
  is only retried after its grace period; :meth:`Store.running` says who holds each one, so a
  waiting worker can say what it waits for.
- **An SQLite file that cannot be written.** Before a study is created or resumed,
  :func:`~noisereg.study.store.base.check_writable` creates and removes a file beside the database
  (SQLite writes its journal there) and opens an existing one for writing: a read-only file system,
  a folder or file without permission (or immutable), a full disk raise :class:`StoreError` naming
  the folder or file and the reason, before anything is stored. A write that fails later (the
  folder made read-only, the disk filled while the study runs) raises
  :class:`~noisereg.study.rundir.RunDirError` naming the file and the reason, in place of Optuna's
  ``StorageInternalError``. Opening a store only to read it checks nothing: the results of a
  read-only run can still be read (``noisereg export RUN --out ELSEWHERE``).
- **What raises.** :class:`StoreError` for a study created from a different configuration
  (with the keys that differ), for a storage URL that cannot be opened, and for a study that does
  not exist when reading; :class:`StoreUnreachable` for a server that stays unreachable.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from noisereg._compat.optuna_private import ENQUEUED, enqueued_cell
from noisereg.study.store.artifacts import (
    CURVES_ARTIFACT,
    CurvesMissing,
    merge_curves,
    read_curves,
    split_curves,
    upload_curves,
)
from noisereg.study.store.base import CELL_PARAM, DB_NAME, SCHEMA_VERSION, StoreBase, StoreError, default_url
from noisereg.study.store.claims import OWNER, CellLost, Claim, Heartbeat, claimant, gone, machine
from noisereg.study.store.connection import StoreUnreachable, masked_url

__all__ = [
    "Store",
    "StoreError",
    "StoreUnreachable",
    "CellLost",
    "Claim",
    "Heartbeat",
    "default_url",
    "masked_url",
    "DB_NAME",
    "SCHEMA_VERSION",
    "RESULT_KEYS",
    "PROPOSAL",
    "CURVES_ARTIFACT",
    "ROBUSTNESS_PREFIX",
    "ROBUSTNESS_VS_BASELINE",
    "OWNER",
]

_log = logging.getLogger("noisereg.study")

RESULT_KEYS = (
    "cell",
    "seeds",
    "final",
    "cv",
    "nested",
    "coef",
    "epochs",
    "curves",
    "intermediate",
    "elapsed_s",
    "replicas",
)
"""User attributes of a completed trial: ``cell`` (its key), ``seeds`` (seed indices), ``final``
({metric: [one value per seed]}, e.g. ``test_acc``, averaged over outer folds), ``cv``
(``{"val_loss" | "val_acc" | "val_r2": [[per CV fold] per seed]}``, the CV folds' held-out metrics,
or None), ``nested`` (a nested selection's results per outer fold, see
:func:`noisereg.study.run.results.cell_results`; absent otherwise), ``coef`` (a one-output linear
model's fitted weights per seed; absent otherwise), ``epochs`` (the
kept evaluation epochs), ``curve:<name>`` ([[per kept epoch] per seed]; in the trial's artifact
:data:`CURVES_ARTIFACT` on SQLite, else one attribute per curve so that each stays small),
``intermediate`` (the curve shown as the trial's intermediate values, see
:mod:`noisereg.study.run.dashboard`), ``elapsed_s`` and ``replicas``."""

PROPOSAL = "proposal"
"""User attribute of a search cell's trial: the value (and site) its sampler proposed,
``{"value": v, "site": s}`` (:mod:`noisereg.study.run.search`)."""


ROBUSTNESS_PREFIX = "robustness:"
"""Study attribute ``robustness:<cell key>``: that cell's measurements after training."""
ROBUSTNESS_VS_BASELINE = "robustness:vs-baseline"
"""Study attribute: every measured cell compared with the baseline cell (mCE)."""


class Store(StoreBase):
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
    (:func:`~noisereg.study.store.artifacts.artifact_dir`); both are None where the curves stay user attributes (module docstring).

    Raises:
        StoreError: the URL cannot be opened. StoreUnreachable: its server stayed unreachable.

    ``claimed`` lists every claim made through this object, for :meth:`give_back`.
    """

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
                _log.info(
                    "cell %s: its claimant (process %s on this machine) is gone; retrying it now",
                    enqueued_cell(t),
                    owner["pid"],
                )
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
                out[key] = (
                    f"process {owner.get('pid')} on this machine, {'which is gone' if gone(owner) else 'still running'}"
                )
            else:
                out[key] = f"process {owner.get('pid')} on {str(owner.get('machine')).split('/')[0]}"
        return out

    # ---- cells -------------------------------------------------------------------------------
    def claim(self, limit: int = 1, accept: Any = None) -> list[Claim]:
        """Claim up to ``limit`` WAITING cells (those for which ``accept(key)`` is true, if given), in
        the order of the study's cells, whatever order their trials were enqueued in (a retry is
        enqueued late), so that one worker trains the cells in the same order on every run."""
        claims: list[Claim] = []
        choices = tuple(self.study.user_attrs["cells"])
        dist, param = CategoricalDistribution(choices), self.study.user_attrs.get(CELL_PARAM, "cell")  # see replan
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
                self.storage.set_trial_param(self._id(t), param, dist.to_internal_repr(key), dist)
                self.storage.set_trial_system_attr(self._id(t), OWNER, claimant())
            except optuna.exceptions.UpdateFinishedTrialError:
                # claimed elsewhere first, or reaped before our owner was written: a retry shows its dead
                continue  # claimant till then, and a reaper fails it (and enqueues a retry of its own)
            claims.append(Claim(self._id(t), t.number, key))
        self.claimed += claims
        return claims

    @contextlib.contextmanager
    def heartbeat(self, claims: Sequence[Claim]) -> Iterator[Heartbeat]:
        """Record a heartbeat for ``claims`` every ``heartbeat_interval`` seconds while inside; yield
        the :class:`Heartbeat`, whose ``check()`` raises :class:`CellLost` once the claims are lost."""
        beat = Heartbeat(
            self.storage, self.retrying, claims, interval=self.heartbeat_interval, grace_period=self.grace_period
        )
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
            self.storage.set_trial_state_values(
                claim.trial_id, TrialState.COMPLETE, values=None if value is None else [float(value)]
            )
        except optuna.exceptions.UpdateFinishedTrialError:
            state = self.storage.get_trial(claim.trial_id).state
            if state != TrialState.COMPLETE:  # COMPLETE: our own commit went through before a reconnect
                raise CellLost(
                    f"cell {claim.cell!r} (trial {claim.number}) was marked {state.name} by another process"
                ) from None

    def _upload(self, trial: int, curves: Mapping[str, Any]) -> None:
        if self.artifact_folder is None or self.artifacts is None:
            raise StoreError(f"the storage {masked_url(self.url)} keeps no artifacts; curves stay user attributes")
        upload_curves(self.artifacts, self.artifact_folder, self.storage, trial, curves)

    def _curves(self, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
        """The curves a completed trial keeps as its artifact; {} where it keeps them as user attributes."""
        if self.artifacts is None or self.artifact_folder is None:
            return {}
        try:
            return read_curves(self.artifacts, self.artifact_folder, self.storage, trial)
        except CurvesMissing as exc:
            raise StoreError(str(exc)) from None

    def show(
        self, claim: Claim, params: Mapping[str, Any], distributions: Mapping[str, Any], curve: Mapping[int, float]
    ) -> None:
        """What optuna-dashboard shows of a running trial: parameters, and a curve as intermediate
        values (see :mod:`noisereg.study.run.dashboard`); call it before :meth:`complete`.

        Raises:
            CellLost: the trial is no longer RUNNING (another process failed it between the last
                heartbeat check and this call).
        """
        try:
            for name, value in params.items():
                dist = distributions[name]
                self.storage.set_trial_param(claim.trial_id, name, dist.to_internal_repr(value), dist)
            for step, value in curve.items():
                self.storage.set_trial_intermediate_value(claim.trial_id, int(step), float(value))
        except optuna.exceptions.UpdateFinishedTrialError:
            state = self.storage.get_trial(claim.trial_id).state
            raise CellLost(
                f"cell {claim.cell!r} (trial {claim.number}) was marked {state.name} by another process"
            ) from None

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
