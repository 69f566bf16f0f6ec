"""Several worker processes on one study, for real: SQLite and PostgreSQL, kill -9, Ctrl-C."""

from __future__ import annotations

import multiprocessing

from noisereg.study.store import Store, default_url

RACE_CELLS = 150


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
