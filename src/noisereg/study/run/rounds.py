"""The runner's side of a sequential study: which rounds to enqueue now (:mod:`noisereg.study.rounds`).

:func:`enqueue_due` is called when a study is enqueued and whenever no cell is waiting or running:
it reads the completed rounds from the store, decides every comparison, and enqueues the next round
of the open ones. The rounds of a cell raced out of the selection train no CV folds: before they are
enqueued, their keys are added to the study attribute ``rounds:without_cv`` (:data:`WITHOUT_CV`),
which the plan reads when it claims a batch (:func:`without_cv`). :func:`extend_rounds` lets a
stored sequential study's ``max`` be raised: its stored rounds are rounds of the new plan, so it
continues from them. Enqueueing is idempotent (a round with a trial is not enqueued again), so a resumed
study continues with the rounds its stored results call for. Should two ``noisereg worker``
processes find the queue empty at once, both enqueue the same rounds; Optuna's check and insert are
two statements, so a round may then be trained twice, and its first COMPLETE trial counts
(:mod:`noisereg.study.store`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from noisereg.study.bridge.prepare import Prepared
from noisereg.study.cells import Cell
from noisereg.study.report.summary import metric_of
from noisereg.study.rounds import EARLIER_MAX, Rounds, due, merge_rounds
from noisereg.study.store import Store, StoreError

__all__ = ["enqueue_due", "extend_rounds", "without_cv", "WITHOUT_CV"]

WITHOUT_CV = "rounds:without_cv"
"""Study attribute: the round keys that train their test folds only (their cell was raced out)."""


def enqueue_due(prep: Prepared, store: Store, *, start: bool = False) -> int:
    """Enqueue the cells to train now and return how many were new: at the ``start``, every cell of a
    fixed study; in a sequential one, the rounds its completed results call for."""
    rounds = Rounds.of(prep.config.seeds)
    if rounds is None:
        return store.enqueue([c.key for c in prep.cells]) if start else 0
    attrs = store.attrs()
    rounds = Rounds.of(prep.config.seeds, attrs.get(EARLIER_MAX)) or rounds  # a raised max: its earlier ones
    round_keys: dict[str, list[str]] = {}
    for cell in prep.cells:
        round_keys.setdefault(cell.of or cell.key, []).append(cell.key)
    _, merged = merge_rounds({c.key: c.meta() for c in prep.cells}, store.completed())
    metric_key, higher = metric_of(prep.config.metric, prep.data.task)
    sel = prep.config.selection
    racing = None
    if sel is not None and sel.racing:
        grid = [c for c in round_keys if prep.by_key[round_keys[c][0]].arm == sel.arm]
        racing = (grid, sel.criterion, sel.rule, sel.screen)
    nxt = due(rounds, round_keys, merged, prep.config.baseline_arm, metric_key, higher, racing)
    marked = list(attrs.get(WITHOUT_CV) or [])
    if any(k not in marked for k in nxt.without_cv):  # written before the rounds can be claimed
        store.set_attr(WITHOUT_CV, [*marked, *(k for k in nxt.without_cv if k not in marked)])
    return store.enqueue(nxt.keys) if nxt.keys else 0


def without_cv(cell: Cell, marked: object) -> Cell:
    """``cell`` as it trains: a round listed in ``marked`` (the :data:`WITHOUT_CV` attribute) trains
    its test folds only, as a cell outside the selection does."""
    if isinstance(marked, list) and cell.key in marked:
        return dataclasses.replace(cell, selection=False)
    return cell


def extend_rounds(
    store: Store, config: Mapping[str, Any], cells: Mapping[str, Mapping[str, Any]], meta: Mapping[str, Any]
) -> bool:
    """Raise the ``max`` of the sequential study stored in ``store`` to ``config``'s, where that is the
    only change (True); anything else is left to :meth:`Store.create`, which refuses a changed
    configuration (False). The stored rounds are the first rounds of the new plan (same keys, seeds
    and settings), so none is trained again; the old maximum is added to :data:`EARLIER_MAX`, where
    the verdicts of its final t-test stand, and the comparisons open there continue.

    Raises StoreError for a lowered ``max``, or an old ``max`` that is not a multiple of ``step``
    (its last, shorter round is not a round of the new plan)."""
    if not store.exists():
        return False
    attrs = store.attrs()
    stored = attrs.get("config") or {}
    old, new = stored.get("seeds"), config.get("seeds")
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)) or old.get("max") == new.get("max"):
        return False
    if dict(stored) != {**config, "seeds": {**new, "max": old.get("max")}}:
        return False  # more than max changed: create() names what
    where = f"study {store.study_name!r} in {store.url}"
    if new["max"] < old["max"]:
        raise StoreError(
            f"{where} was made with seeds.max = {old['max']}; a stored sequential study can only be extended "
            f"(a larger max), not cut to {new['max']}: set max back to {old['max']}, or use another run directory (--out)"
        )
    if old["max"] % old["step"]:
        low = old["max"] - old["max"] % old["step"]
        raise StoreError(
            f"{where} was made with seeds.max = {old['max']}, which is not a multiple of step = {old['step']}: its "
            f"last round (seeds {low}-{old['max']}) is not a round of a plan with max = {new['max']}; use another "
            "run directory (--out)"
        )
    earlier = [int(m) for m in attrs.get(EARLIER_MAX) or []]
    if int(old["max"]) not in earlier:  # first: an interrupted extension is finished by the next run
        store.set_attr(EARLIER_MAX, [*earlier, int(old["max"])])
    store.replan(config, cells, meta)
    return True
