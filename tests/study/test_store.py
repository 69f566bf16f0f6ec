"""The store's contract: idempotent enqueueing, exclusive claims, retries of dead cells, COMPLETE only."""

from __future__ import annotations

import time

import optuna
import pytest
import sqlalchemy

from noisereg.study.store import Store, StoreError, default_url

CELLS = {"a": {"arm": "a"}, "b": {"arm": "b"}, "c": {"arm": "c"}}


@pytest.fixture()
def store(tmp_path) -> Store:
    s = Store(default_url(tmp_path), "s", heartbeat_interval=1, grace_period=1)
    assert s.create({"x": 1}, CELLS, {"task": "classification"}) is True
    return s


def test_enqueue_is_idempotent_and_claims_are_exclusive(store: Store, tmp_path) -> None:
    assert store.enqueue(list(CELLS)) == 3
    assert store.enqueue(list(CELLS)) == 0
    other = Store(default_url(tmp_path), "s")  # a second process's view of the same storage
    first = store.claim(2)
    second = other.claim(5)
    assert [c.cell for c in first] == ["a", "b"] and [c.cell for c in second] == ["c"]
    assert store.claim(5) == [] and other.claim(5) == []
    assert store.counts() == {"RUNNING": 3}


def test_results_count_only_once_complete(store: Store) -> None:
    store.enqueue(list(CELLS))
    a, b, c = store.claim(3)
    store.complete(a, 0.5, {"final": {"test_acc": [1.0]}})
    store.fail(b, "boom")
    assert list(store.completed()) == ["a"] and store.completed()["a"]["final"] == {"test_acc": [1.0]}
    assert store.unfinished() == {"b": "FAIL", "c": "RUNNING"}
    assert store.requeue_failed() == ["b"]
    assert store.requeue_failed() == []  # b is waiting again now
    [again] = store.claim(1, accept=lambda k: k == "b")
    store.complete(again, 0.1, {"final": {"test_acc": [0.0]}})
    assert store.completed()["b"]["final"] == {"test_acc": [0.0]}
    trial_states = sorted(t.state.name for t in store.study.get_trials() if t.params.get("cell") == "b")
    assert trial_states == ["COMPLETE", "FAIL"]


def test_a_dead_cell_is_retried_after_its_grace_period(store: Store) -> None:
    store.enqueue(["a"])
    [claim] = store.claim(1)  # the claimant "dies": no more heartbeats
    store.reap()
    assert store.unfinished() == {"a": "RUNNING", "b": "MISSING", "c": "MISSING"}
    time.sleep(2.5)
    store.reap()
    assert store.unfinished()["a"] == "WAITING"
    assert store.enqueue(["a"]) == 0  # the retry counts as existing
    [retry] = store.claim(1)
    assert retry.cell == "a" and retry.trial_id != claim.trial_id


def test_heartbeat_keeps_a_long_cell_alive(store: Store) -> None:
    store.enqueue(["a"])
    claims = store.claim(1)
    with store.heartbeat(claims):
        time.sleep(2.5)
        store.reap()
    assert store.unfinished()["a"] == "RUNNING"


def test_another_configuration_is_refused_with_the_keys_that_differ(store: Store, tmp_path) -> None:
    again = Store(default_url(tmp_path), "s")
    assert again.create({"x": 1}, CELLS, {}) is False
    with pytest.raises(StoreError, match=r"different configuration \(differs at: x, y\)"):
        again.create({"x": 2, "y": 3}, CELLS, {})


def test_reading_a_missing_study_or_a_bad_url_raises(tmp_path) -> None:
    with pytest.raises(StoreError, match="no study 'other'"):
        Store(default_url(tmp_path), "other").attrs()
    with pytest.raises(StoreError, match="cannot open storage"):
        Store("nosuchdialect://x", "s")
    with pytest.raises(ValueError, match="heartbeat_interval"):
        Store(default_url(tmp_path), "s", heartbeat_interval=0)


def test_the_storage_is_plain_optuna(store: Store) -> None:
    store.enqueue(list(CELLS))
    for claim in store.claim(3):
        store.complete(claim, 1.0, {"cell": claim.cell})
    study = optuna.load_study(study_name="s", storage=store.url)
    assert sorted(t.params["cell"] for t in study.trials) == ["a", "b", "c"]
    assert study.user_attrs["config"] == {"x": 1}


RESULTS = {
    "final": {"test_acc": [1.0, 0.5]},
    "curve:test_acc": [[0.25, 1.0], [0.5, 0.5]],
    "cv": {"val_loss": [[0.5], [0.25]], "val_loss_curve": [[[1.0, 0.5]], [[0.75, 0.25]]], "val_epochs": [1, 2]},
}


def test_curves_are_an_artifact_beside_a_sqlite_file_and_read_back_whole(store: Store, tmp_path) -> None:
    store.enqueue(["a"])
    [claim] = store.claim(1)
    store.complete(claim, 0.5, RESULTS)
    [trial] = store.study.get_trials()
    assert "curve:test_acc" not in trial.user_attrs and "val_loss_curve" not in trial.user_attrs["cv"]
    assert [m.filename for m in optuna.artifacts.get_all_artifact_meta(trial, storage=store.storage)] == ["curves.json"]
    assert store.artifact_folder == tmp_path / "artifacts"
    assert store.completed()["a"] == {"cell": "a", **RESULTS}  # the cell key written at enqueueing
    for path in (tmp_path / "artifacts").iterdir():  # a run directory copied without its artifacts
        path.unlink()
    with pytest.raises(StoreError, match="curves of cell 'a' are missing.*artifacts/ folder"):
        store.completed()


def test_curves_stay_user_attributes_on_a_server_storage(postgres_url: str) -> None:
    s = Store(postgres_url, f"curves-{time.time_ns()}")
    try:
        s.create({"x": 1}, CELLS, {})
        s.enqueue(["a"])
        [claim] = s.claim(1)
        s.complete(claim, 0.5, RESULTS)
        assert s.artifacts is None and s.study.get_trials()[0].user_attrs["curve:test_acc"] == RESULTS["curve:test_acc"]
        assert s.completed()["a"] == {"cell": "a", **RESULTS}
    finally:
        s.close()


def test_a_configuration_stored_by_an_earlier_version_is_the_same_study_when_it_upgrades_to_this_one(
    store: Store, tmp_path
) -> None:
    again = Store(default_url(tmp_path), "s")
    assert again.create({"x": 2, "y": 3}, CELLS, {}, upgrade=lambda old: {**old, "x": 2, "y": 3}) is False
    assert again.attrs()["config"] == {"x": 1}  # the run keeps the configuration it was made with
    with pytest.raises(StoreError, match=r"differs at: x"):
        again.create({"x": 2}, CELLS, {}, upgrade=lambda old: {**old, "x": 3})

    def unreadable(old: dict) -> dict:
        raise ValueError("not a configuration")

    with pytest.raises(StoreError, match=r"differs at: x"):
        again.create({"x": 2}, CELLS, {}, upgrade=unreadable)


def test_a_claim_failed_by_another_process_before_its_owner_is_written_is_skipped(
    store: Store, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a retried cell keeps its dead claimant as owner until the new claimant writes its own: another
    # process's reaper can mark it FAIL in between (and enqueue its retry); the claim goes on to the next
    store.enqueue(["a", "b"])
    other = Store(default_url(tmp_path), "s")
    write = store.storage.set_trial_param
    raced: list[int] = []

    def reaped_first(trial_id, *args, **kwargs):
        if not raced:
            raced.append(trial_id)
            other.storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
        return write(trial_id, *args, **kwargs)

    monkeypatch.setattr(store.storage, "set_trial_param", reaped_first)
    claims = store.claim(1)
    assert [c.cell for c in claims] == ["b"] and claims[0].trial_id != raced[0]


@pytest.mark.parametrize(
    "lost",
    [
        sqlalchemy.exc.OperationalError(
            "CREATE TABLE trial_values", {}, Exception("table trial_values already exists")
        ),
        sqlalchemy.exc.IntegrityError(
            "CREATE TABLE studies", {}, Exception("duplicate key ... pg_type_typname_nsp_index")
        ),
    ],
    ids=["sqlite", "postgresql"],
)
def test_a_process_that_loses_the_race_to_create_the_tables_opens_the_store(tmp_path, monkeypatch, lost) -> None:
    # Processes opening a fresh database at once each see no tables and race to create them; the loser
    # gets the error its database raises for a table made meanwhile (seen in CI: a reader of the study
    # opened the file while the study created it) and must find the tables made on its next try.
    metadata = optuna.storages._rdb.models.BaseModel.metadata
    create_all = metadata.create_all
    tries = []

    def another_process_wins(engine, *args, **kwargs):
        tries.append(engine)
        create_all(engine, *args, **kwargs)
        if len(tries) == 1:
            raise lost

    monkeypatch.setattr(metadata, "create_all", another_process_wins)
    store = Store(default_url(tmp_path), "s")
    assert len(tries) == 2
    assert store.create({"x": 1}, CELLS, {"task": "classification"}) is True
    assert store.enqueue(list(CELLS)) == 3


def test_other_errors_while_opening_are_not_retried(tmp_path, monkeypatch) -> None:
    metadata = optuna.storages._rdb.models.BaseModel.metadata
    tries = []

    def locked(engine, *args, **kwargs):
        tries.append(engine)
        raise sqlalchemy.exc.OperationalError("CREATE TABLE studies", {}, Exception("database is locked"))

    monkeypatch.setattr(metadata, "create_all", locked)
    with pytest.raises(StoreError, match="cannot open storage .*database is locked"):
        Store(default_url(tmp_path), "s")
    assert len(tries) == 1
