"""The store's life cycle for every study, whatever makes its models: open the run directory and the
storage, create the study and enqueue its cells, then claim, train, heartbeat, fail and complete them.

A study is a plan of cells (:class:`Plan`): a built-in model family (:mod:`noisereg.study.run.runner`)
and the user's own model (:mod:`noisereg.study.run.own_model`) differ only in how a batch of cells
trains. Everything about the store is here, once: ``run.json`` is written atomically, with the
default SQLite store as the relative ``study.db`` (the run directory can be moved or copied); cells
of dead processes are reaped (:meth:`~noisereg.study.store.Store.reap`); a lost claim drops its work;
a failed batch is marked FAIL with its traceback. Any number of processes may :func:`run_cells` on one
storage; only one (the creating one) enqueues.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
import traceback
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from noisereg.seeding import Family, use_noise_generator
from noisereg.study.cells import TrainingError
from noisereg.study.rundir import RunDirError, explain, write_file
from noisereg.study.store import DB_NAME, CellLost, Claim, Store, StoreError, default_url, masked_url
from noisereg.study.store.base import check_writable

__all__ = ["Plan", "Trained", "enqueue", "open_store", "run_cells"]

_log = logging.getLogger("noisereg.study")

Advance = Callable[[int], None]
"""Called with the replica-epochs just trained; between epochs it also raises :class:`CellLost`
once this process no longer holds the cells (the heartbeat's check)."""


@dataclasses.dataclass
class Trained:
    """A batch of cells trained: each cell's ``results`` for the store, and ``save()``, which writes
    their weights (called once the claims are known to be still held)."""

    results: dict[str, dict[str, Any]]
    save: Callable[[], None]


class Plan(Protocol):
    """What the life cycle needs of a study: its cells, their sizes, and how a batch of them trains."""

    keys: list[str]
    """The study's cells, in order."""
    noise_generator: Family
    """What draws the noise (:func:`noisereg.seeding.use_noise_generator`): the stored study's."""

    def units(self, key: str) -> int:
        """Replica-epochs of cell ``key`` (progress)."""
        ...

    def replicas(self, key: str) -> int:
        """Replicas of cell ``key`` (the batch bound)."""
        ...

    def signature(self, key: str) -> Hashable:
        """Cells of equal signatures may be claimed and trained as one batch."""
        ...

    def claimed(self, store: Store, claim: Claim) -> None:
        """Called for the first cell of a batch when it is claimed (a search proposes its value)."""
        ...

    def training(
        self, keys: Sequence[str], advance: Advance
    ) -> contextlib.AbstractContextManager[Callable[[], Trained]]:
        """Start training the cells ``keys`` on entering (or on the call of what it yields, which
        returns them trained); leaving stops what was started."""
        ...

    def show(self, store: Store, claim: Claim, result: dict[str, Any]) -> float | None:
        """Whatever the dashboard shows of ``result`` (written to ``claim``'s trial); the objective."""
        ...

    def due(self, store: Store) -> int:
        """Enqueue the cells that the completed ones call for (a sequential study's next round);
        how many. Called when no cell is waiting or running."""
        ...


def open_store(
    run_dir: str | Path,
    storage: str | None,
    name: str,
    *,
    heartbeat_interval: int = 10,
    grace_period: int | None = None,
    retry_for: float = 60.0,
    option: str = "--out",
) -> Store:
    """Make ``run_dir`` and open study ``name`` in ``storage`` (default: SQLite in ``run_dir``).

    Raises StoreError naming the folder or file that cannot be written, and why (``option``: the
    argument that chose the folder, named in the advice)."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, no permission: nothing has been written yet
        raise StoreError(f"run directory {run_dir} cannot be made: {explain(exc)}; choose another {option}") from None
    url = storage or default_url(run_dir)
    check_writable(url)
    return Store(url, name, heartbeat_interval=heartbeat_interval, grace_period=grace_period, retry_for=retry_for)


def enqueue(
    store: Store,
    run_dir: str | Path,
    *,
    default_storage: bool,
    config: Mapping[str, Any],
    cells: Mapping[str, Mapping[str, Any]],
    meta: Mapping[str, Any],
    upgrade: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    objective: str | None = None,
    due: Callable[[Store], object] | None = None,
) -> None:
    """Create (or reopen) the study in ``store``, write ``run_dir/run.json``, enqueue again the cells
    that failed for good and enqueue every cell that has no trial yet. Run it from one process at a
    time (Optuna's duplicate check and insert are two statements).

    ``default_storage``: the store is the default SQLite file in ``run_dir``, written to run.json as
    the relative ``study.db`` so that the folder can move. ``due(store)``: enqueues the cells to
    train now instead of every cell (a sequential study's first round). Raises StoreError for a stored study with
    other settings (see :meth:`Store.create`)."""
    store.create(dict(config), {k: dict(v) for k, v in cells.items()}, dict(meta), upgrade=upgrade)
    if objective is not None:
        store.name_objective(objective)
    written = DB_NAME if default_storage else masked_url(store.url)
    info = json.dumps({"study": store.study_name, "storage": written}, indent=2) + "\n"
    run_json = Path(run_dir) / "run.json"
    if not run_json.is_file() or run_json.read_text() != info:  # a resumed run writes nothing it need not
        write_file(run_json, info)
    store.requeue_failed()
    if due is None:
        store.enqueue(list(cells))
    else:
        due(store)


def run_cells(
    plan: Plan,
    store: Store,
    *,
    progress: Callable[[int, int], None] | None = None,
    max_replicas: int = 4096,
    ahead: tuple[Sequence[str], contextlib.ExitStack, Callable[[], Trained]] | None = None,
) -> None:
    """Claim and train waiting cells of ``store``'s study until none is waiting or running.

    Any number of processes may call this on one storage (each claim is exclusive); it returns once
    every cell is COMPLETE or has failed for good. Cells of dead processes are retried after their
    grace period (:meth:`Store.reap`), at once where their claimant ran on this machine.

    ``ahead``: (keys, the stack that holds it, wait) of a training started before the store was set
    up; used for a batch of exactly those cells, else stopped. Raises TrainingError (the batch's cells
    are stored FAIL) or RunDirError (a file of the run directory could not be written).
    """
    total = sum(plan.units(k) for k in plan.keys)
    done = sum(plan.units(k) for k in store.completed() if k in plan.keys)

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(min(done, total), total)

    advance(0)
    sigs = {k: plan.signature(k) for k in plan.keys}  # before a search proposes values: stable batches
    told: set[str] = set()
    while True:
        store.reap()
        first = store.claim(1)
        if not first:
            if ahead is not None:
                ahead[1].close()
                ahead = None
            if not _waiting(store, told) and not plan.due(store):
                return
            time.sleep(min(store.heartbeat_interval, 2))  # other workers, or a dead one's heartbeat to expire
            continue
        claims, started = list(first), None
        try:
            plan.claimed(store, first[0])
            budget = max_replicas - plan.replicas(first[0].cell)
            claims += _claim_more(store, plan, sigs[first[0].cell], sigs, budget)
            if ahead is not None:
                if sorted(c.cell for c in claims) == sorted(ahead[0]):
                    started = ahead[1], ahead[2]
                else:  # another process claimed some of those cells: train only this one's
                    ahead[1].close()
                ahead = None
        except BaseException as exc:
            # Ctrl-C (or a failure) between the claims and their training: the cells go back to the
            # queue now, not once their heartbeat is seen to stop (the grace period)
            _mark_failed(store, claims, exc)
            raise
        _run_claims(store, plan, claims, advance, started)


def _waiting(store: Store, told: set[str]) -> bool:
    """Whether a cell is still waiting or running elsewhere; say once what this process waits for."""
    pending = [k for k, s in store.unfinished().items() if s in ("WAITING", "RUNNING")]
    for key, holder in store.running().items():
        if key not in told:  # and for how long at most
            told.add(key)
            _log.info(
                "waiting for cell %s, held by %s; should its heartbeat stop, it is retried "
                "%d s after its last one (grace period)",
                key,
                holder,
                store.grace_period,
            )
    return bool(pending)


def _claim_more(store: Store, plan: Plan, sig: Hashable, sigs: dict[str, Hashable], budget: int) -> list[Claim]:
    claims: list[Claim] = []
    while budget > 0:
        more = store.claim(1, accept=lambda k: sigs.get(k) == sig)
        if not more:
            break
        claims += more
        budget -= plan.replicas(more[0].cell)
    return claims


@contextlib.contextmanager
def _started(stack: contextlib.ExitStack, wait: Callable[[], Trained]) -> Iterator[Callable[[], Trained]]:
    try:
        yield wait
    finally:
        stack.close()


def _run_claims(
    store: Store,
    plan: Plan,
    claims: list[Claim],
    advance: Advance,
    started: tuple[contextlib.ExitStack, Callable[[], Trained]] | None,
) -> None:
    """Train ``claims`` as one batch and complete them. A lost claim (:class:`CellLost`) is logged and
    dropped; any other error marks the batch's cells FAIL and is raised."""
    keys = [c.cell for c in claims]
    start = time.perf_counter()
    with store.heartbeat(claims) as beat:

        def step(n: int) -> None:  # between epochs: stop the work of cells this process no longer holds
            beat.check()
            advance(n)

        try:
            with use_noise_generator(plan.noise_generator):
                with _started(*started) if started is not None else plan.training(keys, step) as wait:
                    trained = wait()
            beat.check()
            trained.save()
        except CellLost as lost:
            _log.warning("%s; dropped its work (another process trains it again); going on with the next cell", lost)
            return
        except RunDirError as exc:
            marked = _mark_failed(store, claims, exc)
            try:
                complete = f"{len(store.completed())} of {len(plan.keys)} cells are complete in the store"
            except Exception:  # noqa: BLE001 - a store in that directory may not answer either
                complete = "the cells finished before are complete in the store"
            raise RunDirError(
                exc.path,
                exc.error,
                f"{complete}; {marked}; once the directory can be written, run the same command again to train the rest",
            ) from None
        except BaseException as exc:  # Ctrl-C included: leave the cells to be retried, then re-raise
            _mark_failed(store, claims, exc)
            if not isinstance(exc, Exception):
                raise
            first = (str(exc).strip().splitlines() or [""])[0]
            raise TrainingError(
                f"training cell(s) {', '.join(keys)} failed: {type(exc).__name__}: {first}", keys
            ) from exc
    elapsed = time.perf_counter() - start
    units = sum(plan.units(k) for k in keys)
    for i, claim in enumerate(claims):
        res = trained.results[claim.cell]
        res["elapsed_s"] = round(elapsed * plan.units(claim.cell) / units, 3)
        try:
            value = plan.show(store, claim, res)
            store.complete(claim, value, res)
        except CellLost as lost:
            _log.warning(
                "lost %s; its results are dropped (another process trains it again); going on with the next cell", lost
            )
        except BaseException as exc:  # Ctrl-C while storing: the cells not stored go back to the queue now
            _mark_failed(store, claims[i:], exc)
            raise


def _mark_failed(store: Store, claims: Sequence[Claim], exc: BaseException) -> str:
    """Mark ``claims`` FAIL with ``exc``'s traceback; say what was done, also when the store refuses."""
    error = "".join(traceback.format_exception(exc))
    try:
        for claim in claims:
            store.fail(claim, error)
    except Exception as failure:  # noqa: BLE001 - the first error is the one to raise; say what this means
        _log.warning(
            "could not mark cell(s) %s FAIL in the storage (%s: %s); they are retried once their "
            "claimant is seen to be gone",
            ", ".join(c.cell for c in claims),
            type(failure).__name__,
            str(failure).splitlines()[0] if str(failure) else "",
        )
        return f"the cell(s) in training ({', '.join(c.cell for c in claims)}) could not be marked FAIL either"
    return f"the cell(s) in training ({', '.join(c.cell for c in claims)}) are marked FAIL"
