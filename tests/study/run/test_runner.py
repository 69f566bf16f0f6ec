"""Running studies through the engine: results, pairing, batching, resume, errors before storage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from noisereg.engine import train_group
from noisereg.study.bridge.prepare import prepare, thin_indices
from noisereg.study.config import StudyConfigError, parse_config
from noisereg.study.run.runner import run_study
from noisereg.study.store import Store, StoreError, default_url
from noisereg.study.store.base import fingerprint
from tests.study.fakes import assert_stored_close, tiny_config, tiny_raw


class Counting:
    """The engine, counting its calls and the replicas it was given."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, group, folds, **kwargs):
        self.calls.append(len(group.replicas))
        return train_group(group, folds, **kwargs)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, dict, Counting]:
    run_dir = tmp_path_factory.mktemp("run")
    engine = Counting()
    summary = run_study(tiny_config(curve_points=3), run_dir, train=engine)
    return run_dir, summary, engine


def test_results_have_the_stored_shapes(tiny_run) -> None:
    run_dir, summary, _ = tiny_run
    done = Store(default_url(run_dir), "tiny").completed()
    assert set(done) == {"none", "input", "before", "grid[std=0.0]", "grid[std=0.1]", "grid[std=1.0]"}
    pre = done["before"]
    assert pre["seeds"] == [0, 1, 2] and pre["epochs"] == [1, 3, 5] and pre["cv"] is None
    assert np.asarray(pre["curve:test_acc"]).shape == (3, 3)
    assert set(pre["final"]) >= {"test_acc", "test_loss", "train_acc", "train_loss", "stopped_epoch"}
    grid = done["grid[std=0.1]"]
    assert np.asarray(grid["cv"]["val_loss"]).shape == (3, 3) and grid["replicas"] == 3 * 4
    for key in ("val_acc", "val_brier", "val_loss_calibrated"):
        assert np.asarray(grid["cv"][key]).shape == (3, 3)
    assert np.asarray(grid["cv"]["val_loss_curve"]).shape == (3, 3, len(grid["cv"]["val_epochs"]))
    assert all(0.0 <= b <= 2.0 for row in grid["cv"]["val_brier"] for b in row)
    assert summary["selection"]["rule"] == "one_se" and "brier" in summary["selection"]["chosen_by"]
    assert summary["recommendation"]["status"] in ("use", "no_noise", "undecided", "unselected")
    assert summary["cells_complete"] == 6 and summary["selection"]["chosen"] in (0.0, 0.1, 1.0)


def test_zero_strength_reproduces_the_baseline(tiny_run) -> None:
    run_dir, _, _ = tiny_run
    done = Store(default_url(run_dir), "tiny").completed()
    # Trained in stacks of other sizes, so equal to rounding (see noisereg.engine), not bitwise.
    assert_stored_close(done["grid[std=0.0]"]["final"], done["none"]["final"])
    assert_stored_close(done["grid[std=0.0]"]["curve:test_acc"], done["none"]["curve:test_acc"])
    assert done["before"]["final"] == done["grid[std=0.1]"]["final"]  # same seeds, same noise streams


def test_cells_that_differ_in_strength_train_as_one_group(tiny_run) -> None:
    _, _, engine = tiny_run
    # none, input, then pre + 3 grid cells on the test fold (12 replicas) and the grid's CV folds (27)
    assert engine.calls == [3, 3, 39]


def test_rerun_resumes_without_training_again(tiny_run) -> None:
    run_dir, summary, _ = tiny_run
    engine = Counting()
    again = run_study(tiny_config(curve_points=3), run_dir, train=engine)
    assert engine.calls == [] and again == summary
    assert Store(default_url(run_dir), "tiny").counts() == {"COMPLETE": 6}


def test_a_failing_cell_is_stored_as_failed_and_retried_on_rerun(tmp_path) -> None:
    def broken(group, folds, **kwargs):
        if group.sites and group.sites[0].site == "input":
            raise RuntimeError("engine exploded")
        return train_group(group, folds, **kwargs)

    cfg = tiny_config(selection=None, arms=tiny_raw()["arms"][:3])
    with pytest.raises(RuntimeError, match="engine exploded"):
        run_study(cfg, tmp_path, train=broken)
    store = Store(default_url(tmp_path), "tiny")
    assert store.unfinished()["input"] == "FAIL"
    assert "engine exploded" in next(t for t in store.study.trials if t.state.name == "FAIL").user_attrs["error"]
    run_study(cfg, tmp_path)
    assert store.unfinished() == {} and store.counts() == {"COMPLETE": 3, "FAIL": 1}


def test_ctrl_c_keeps_finished_cells_and_the_rerun_finishes(tmp_path) -> None:
    def interrupted(group, folds, **kwargs):
        if group.sites:
            raise KeyboardInterrupt
        return train_group(group, folds, **kwargs)

    cfg = tiny_config(selection=None, arms=tiny_raw()["arms"][:3])
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, tmp_path, train=interrupted)
    store = Store(default_url(tmp_path), "tiny")
    assert list(store.completed()) == ["none"] and store.unfinished()["input"] == "FAIL"
    engine = Counting()
    run_study(cfg, tmp_path, train=engine)
    assert engine.calls == [3, 3] and store.unfinished() == {}


@pytest.mark.parametrize("window", ["after the claim", "while storing"])
def test_ctrl_c_outside_training_sends_the_claimed_cells_back_to_the_queue_at_once(
    tmp_path, monkeypatch: pytest.MonkeyPatch, window: str
) -> None:
    # not left RUNNING until their heartbeat is seen to stop (the grace period): FAIL, and waiting again
    from noisereg.study.run import lifecycle
    from noisereg.study.store import Store as StoreClass

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    if window == "after the claim":
        monkeypatch.setattr(lifecycle, "_claim_more", interrupted)
    else:
        monkeypatch.setattr(StoreClass, "complete", interrupted)
    cfg = tiny_config(selection=None, arms=tiny_raw()["arms"][:3])
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, tmp_path)
    store = Store(default_url(tmp_path), "tiny")
    assert "RUNNING" not in store.counts()
    assert "FAIL" in store.counts() and "WAITING" in set(store.unfinished().values())
    monkeypatch.undo()
    run_study(cfg, tmp_path)
    assert store.unfinished() == {} and store.counts()["COMPLETE"] == 3


def test_another_storage_url_is_recorded_for_the_report(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    cfg = tiny_config(selection=None, arms=tiny_raw()["arms"][:2])
    run_study(cfg, tmp_path / "run", storage=url)
    assert not (tmp_path / "run" / "study.db").exists()
    from noisereg.study.report import build_report

    assert build_report(tmp_path / "run")["cells_complete"] == 2


def test_two_workers_share_one_study_and_finish_every_cell_once(tmp_path) -> None:
    from noisereg.study.run.runner import work

    cfg = tiny_config(selection=None)
    prep = prepare(cfg)
    store = Store(default_url(tmp_path), cfg.name)
    store.create(cfg.model_dump(mode="json"), {c.key: c.meta() for c in prep.cells}, prep.meta())
    store.enqueue([c.key for c in prep.cells])
    other = Store(default_url(tmp_path), cfg.name)
    first, second = Counting(), Counting()
    [claim] = other.claim(1)  # the second worker finishes one cell before the first one starts
    other.complete(claim, 0.0, {"cell": claim.cell, "seeds": [], "final": {}})
    work(prep, store, train=first, max_replicas=3)  # one 3-replica cell per claim
    work(prep, other, train=second)
    assert store.counts() == {"COMPLETE": 6} and second.calls == [] and len(first.calls) == 5


def test_problems_are_raised_before_anything_is_stored(tmp_path) -> None:
    cnn = tiny_config(model={"family": "cnn", "input_shape": [1, 1, 3]})
    with pytest.raises(
        StudyConfigError, match=r"model.input_shape: \[1, 1, 3\] holds 3 values, the data has 2 features"
    ):
        run_study(cnn, tmp_path / "a")
    deep = [
        {"name": "none"},
        {"name": "x", "noise": {"at": "activations", "where": "before", "kind": "gaussian", "std": 0.1, "select": [2]}},
    ]
    cnn = tiny_config(model={"family": "cnn", "input_shape": [1, 1, 2], "channels": [2]}, arms=deep, selection=None)
    with pytest.raises(
        StudyConfigError, match=r"arms\[1\].noise\[0\].select: hidden layer 2 does not exist; the model has 0..1"
    ):
        run_study(cnn, tmp_path / "a")
    wide = tiny_config(
        arms=[
            {"name": "none"},
            {
                "name": "x",
                "noise": {"at": "activations", "where": "before", "kind": "gaussian", "std": 0.1, "select": [3]},
            },
        ],
        selection=None,
    )
    with pytest.raises(StudyConfigError, match=r"arms\[1\].noise\[0\].select: hidden layer 3 does not exist"):
        run_study(wide, tmp_path / "b")
    label = tiny_config(
        arms=[{"name": "none"}, {"name": "x", "noise": {"at": "targets", "kind": "gaussian", "std": 0.1}}],
        selection=None,
    )
    with pytest.raises(StudyConfigError, match="label_smoothing"):
        run_study(label, tmp_path / "c")
    assert not any(tmp_path.iterdir())


def test_a_changed_study_is_not_mixed_into_an_old_run(tiny_run) -> None:
    run_dir, _, _ = tiny_run
    with pytest.raises(StoreError, match="differs at: training.epochs"):
        run_study(tiny_config(curve_points=3, training={"epochs": 6, "eval_every": 1}), run_dir)


@pytest.mark.parametrize(
    "model",
    [
        {"family": "cnn", "input_shape": [1, 1, 2], "channels": [2], "hidden": 4},
        {"family": "gru", "input_shape": [2, 1], "hidden": 4},
    ],
)
def test_the_builtin_cnn_and_gru_take_hidden_layer_noise(tmp_path, model) -> None:
    arms = [
        {"name": "none"},
        {"name": "before", "noise": {"at": "activations", "where": "before", "kind": "gaussian", "std": 0.5}},
        {
            "name": "after",
            "noise": {"at": "activations", "where": "after", "kind": "gaussian", "std": 0.5, "select": [0]},
        },
    ]
    run_study(tiny_config(model=model, arms=arms, selection=None, seeds=2), tmp_path)
    done = Store(default_url(tmp_path), "tiny").completed()
    none, pre, post = (done[arm]["final"]["test_loss"] for arm in ("none", "before", "after"))
    assert none != pre and none != post and pre != post  # the noise reached the model (same seeds, paired)


def test_regression_and_kfold_through_the_engine(tmp_path) -> None:
    cfg = tiny_config(
        data={"source": "diabetes"},
        split={"kind": "kfold", "folds": 2},
        selection=None,
        seeds=2,
        arms=[{"name": "none"}, {"name": "targets", "noise": {"at": "targets", "kind": "gaussian", "std": 0.3}}],
    )
    summary = run_study(cfg, tmp_path)
    assert summary["metric"] == "r2" and [a["n"] for a in summary["arms"]] == [2, 2]
    assert prepare(cfg).loss == "mse"


def test_selection_seeds_limit_the_cv_trainings(tmp_path) -> None:
    engine = Counting()
    run_study(tiny_config(selection={"arm": "grid", "folds": 3, "seeds": 2}), tmp_path, train=engine)
    assert engine.calls == [3, 3, 12 + 18]
    cv = Store(default_url(tmp_path), "tiny").completed()["grid[std=1.0]"]["cv"]
    assert np.asarray(cv["val_loss"]).shape == (2, 3)


def test_early_stopping_on_validation_rows(tmp_path) -> None:
    cfg = tiny_config(training={"epochs": 40, "eval_every": 1, "patience": 3, "validation": 0.2}, seeds=2)
    run_study(cfg, tmp_path)
    done = Store(default_url(tmp_path), "tiny").completed()
    stopped = [e for cell in done.values() for e in cell["final"]["stopped_epoch"]]
    assert all(1 <= e <= 40 for e in stopped) and min(stopped) < 40
    assert np.asarray(done["grid[std=0.1]"]["cv"]["val_loss"]).shape == (2, 3)


@pytest.mark.parametrize(
    "model",
    [
        {"family": "cnn", "input_shape": [1, 1, 2], "channels": [2], "hidden": 4, "init": "he"},
        {"family": "gru", "input_shape": [2, 1], "hidden": 3},
        {"family": "lstm", "input_shape": [1, 2], "hidden": 3},
    ],
)
def test_cnn_and_recurrent_models_train_through_the_engine(tmp_path, model: dict) -> None:
    arms = [
        {"name": "none"},
        {"name": "input", "noise": {"at": "input", "kind": "gaussian", "std": 0.1}},
        {"name": "smooth", "noise": {"at": "targets", "kind": "label_smoothing", "epsilon": 0.1}},
    ]
    summary = run_study(tiny_config(model=model, arms=arms, selection=None, seeds=2), tmp_path)
    assert [a["n"] for a in summary["arms"]] == [2, 2, 2]
    assert all(0.0 <= a["mean"] <= 1.0 for a in summary["arms"])


def test_thin_indices_keep_first_and_last() -> None:
    assert thin_indices(5, 10).tolist() == [0, 1, 2, 3, 4]
    kept = thin_indices(400, 100)
    assert kept[0] == 0 and kept[-1] == 399 and len(kept) == 100 and np.all(np.diff(kept) > 0)


def test_a_run_stored_by_the_version_before_the_renames_resumes(tmp_path) -> None:
    from noisereg.study.run.runner import enqueue_study

    cfg = tiny_config()
    old = cfg.model_dump(mode="json")
    del old["selection"]["screen"]  # a key added since
    old["model"]["kind"] = old["model"].pop("family")  # as it was written before
    for arm in old["arms"]:
        for site in arm.get("noise") or []:
            at, where = site.pop("at"), site.pop("where")
            site["site"] = {"before": "pre", "after": "post"}[where] if at == "activations" else at
            site["layers"] = site.pop("select")
    assert "pre" in str(old["arms"])
    prep = prepare(cfg)
    with Store(default_url(tmp_path), cfg.name) as store:
        store.create(old, {c.key: c.meta() for c in prep.cells}, prep.meta())
    _, store = enqueue_study(cfg, tmp_path)
    with store:
        assert store.attrs()["config"] == old  # the run keeps what it was made with
        assert sorted(store.unfinished()) == sorted(c.key for c in prep.cells)
    changed = cfg.model_copy(update={"seeds": cfg.seeds + 1})
    with pytest.raises(StoreError, match="different configuration"):
        enqueue_study(changed, tmp_path)[1].close()


def _noisy_arms() -> list[dict]:
    return tiny_raw()["arms"][:2]


def test_the_noise_generator_is_part_of_the_study(tmp_path) -> None:
    finals = {}
    for family in ("philox", "torch"):
        run_study(tiny_config(selection=None, arms=_noisy_arms(), noise_generator=family), tmp_path / family)
        store = Store(default_url(tmp_path / family), "tiny")
        assert store.attrs()["config"]["noise_generator"] == family
        finals[family] = store.completed()
    # batch order and initialization come from torch's generators either way; only the noise differs
    # (the noisy evaluation's too)
    assert finals["philox"]["none"]["final"]["test_loss"] == finals["torch"]["none"]["final"]["test_loss"]
    assert finals["philox"]["none"]["final"]["noisy_test_loss"] != finals["torch"]["none"]["final"]["noisy_test_loss"]
    assert finals["philox"]["input"]["final"]["test_loss"] != finals["torch"]["input"]["final"]["test_loss"]
    with pytest.raises(StoreError, match="differs at: noise_generator"):
        run_study(tiny_config(selection=None, arms=_noisy_arms(), noise_generator="philox"), tmp_path / "torch")


def test_a_run_stored_before_the_generator_could_be_chosen_resumes_with_torchs(tmp_path) -> None:
    """An earlier version stored no ``noise_generator``: its noise was torch's, and a file that does not
    name one goes on with torch's, so a resumed run never mixes two generators."""

    def broken(group, folds, **kwargs):
        if group.sites:
            raise RuntimeError("engine exploded")
        return train_group(group, folds, **kwargs)

    old = tiny_raw(selection=None, arms=_noisy_arms(), noise_generator="torch")
    with pytest.raises(RuntimeError, match="engine exploded"):
        run_study(parse_config(old), tmp_path / "old", train=broken)
    store = Store(default_url(tmp_path / "old"), "tiny")
    stored = {k: v for k, v in store.attrs()["config"].items() if k != "noise_generator"}
    store.study.set_user_attr("config", stored)  # as the earlier version wrote it
    store.study.set_user_attr("fingerprint", fingerprint(stored))
    run_study(tiny_config(selection=None, arms=_noisy_arms()), tmp_path / "old")
    run_study(parse_config(old), tmp_path / "torch")
    resumed, fresh = store.completed(), Store(default_url(tmp_path / "torch"), "tiny").completed()
    assert resumed["input"]["final"] == fresh["input"]["final"]
    assert store.attrs()["config"] == stored  # the run keeps the configuration it was made with
