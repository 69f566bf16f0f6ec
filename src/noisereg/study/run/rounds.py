"""The runner's side of a sequential study: which rounds to enqueue now (:mod:`noisereg.study.rounds`).

:func:`enqueue_due` is called when a study is enqueued and whenever no cell is waiting or running:
it reads the completed rounds from the store, decides every comparison, and enqueues the next round
of the open ones. Enqueueing is idempotent (a round with a trial is not enqueued again), so a resumed
study continues with the rounds its stored results call for. Should two ``noisereg worker``
processes find the queue empty at once, both enqueue the same rounds; Optuna's check and insert are
two statements, so a round may then be trained twice, and its first COMPLETE trial counts
(:mod:`noisereg.study.store`).
"""

from __future__ import annotations

from noisereg.study.bridge.prepare import Prepared
from noisereg.study.report.summary import metric_of
from noisereg.study.rounds import Rounds, due, merge_rounds
from noisereg.study.store import Store

__all__ = ["enqueue_due"]


def enqueue_due(prep: Prepared, store: Store, *, start: bool = False) -> int:
    """Enqueue the cells to train now and return how many were new: at the ``start``, every cell of a
    fixed study; in a sequential one, the rounds its completed results call for."""
    rounds = Rounds.of(prep.config.seeds)
    if rounds is None:
        return store.enqueue([c.key for c in prep.cells]) if start else 0
    round_keys: dict[str, list[str]] = {}
    for cell in prep.cells:
        round_keys.setdefault(cell.of or cell.key, []).append(cell.key)
    _, merged = merge_rounds({c.key: c.meta() for c in prep.cells}, store.completed())
    metric_key, higher = metric_of(prep.config.metric, prep.data.task)
    sel = prep.config.selection
    racing = None
    if sel is not None and sel.racing:
        racing = ([c for c in round_keys if prep.by_key[round_keys[c][0]].arm == sel.arm], sel.criterion, sel.rule)
    keys = due(rounds, round_keys, merged, prep.config.baseline_arm, metric_key, higher, racing)
    return store.enqueue(keys) if keys else 0
