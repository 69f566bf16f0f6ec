"""noisereg export: the tidy table and TensorBoard scalars, from the store alone."""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import pytest

from noisereg.cli import main
from noisereg.study.export import _cell_params, export_run, tidy_rows
from noisereg.study.store import PROPOSAL, ROBUSTNESS_PREFIX, ROBUSTNESS_VS_BASELINE, Store, default_url
from tests.study.fakes import fake_results, fake_robustness, populate, tiny_config


def test_one_row_per_cell_seed_stage_fold_epoch(tmp_path: Path) -> None:
    config = tiny_config()
    store = populate(tmp_path, config, {"before": 0.05})
    rows = tidy_rows(store)
    done = store.completed()
    expected = 0
    for res in done.values():
        folds = 3 if res["cv"] else 0
        cv_points = len(res["cv"]["val_epochs"]) if res["cv"] else 0
        expected += config.seeds * (len(res["epochs"]) + 1 + folds * (1 + cv_points))
    assert len(rows) == expected
    pre = {(r["seed"], r["epoch"]): r for r in rows if r["cell"] == "before" and r["stage"] == "curve"}
    res = fake_results("before", config.seeds, 0.05, cv=False)
    assert pre[(2, 3)]["test_acc"] == res["curve:test_acc"][2][2]
    finals = [r for r in rows if r["cell"] == "before" and r["stage"] == "final"]
    assert [r["test_acc"] for r in finals] == res["final"]["test_acc"]
    cv = [r for r in rows if r["stage"] == "cv"]
    assert cv and {r["fold"] for r in cv} == {0, 1, 2} and all(r["arm"] == "grid" for r in cv)
    assert {r["value"] for r in cv} == {0.0, 0.1, 1.0}
    grid = next(k for k, r in done.items() if r["cv"])
    curve = {
        (r["seed"], r["fold"], r["epoch"]): r["val_loss"]
        for r in rows
        if r["cell"] == grid and r["stage"] == "cv_curve"
    }
    stored = done[grid]["cv"]
    assert len(curve) == config.seeds * 3 * len(stored["val_epochs"])
    assert curve[(1, 2, stored["val_epochs"][-1])] == stored["val_loss_curve"][1][2][-1]


def test_cli_writes_csv_and_parquet(tmp_path: Path) -> None:
    populate(tmp_path, tiny_config(), {})
    assert main(["export", str(tmp_path), "--to", "csv"]) == 0
    with (tmp_path / "results.csv").open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(tidy_rows(Store(default_url(tmp_path), "tiny")))
    assert {"cell", "arm", "value", "seed", "stage", "fold", "epoch", "test_acc"} <= set(table[0])
    pq = pytest.importorskip("pyarrow.parquet")
    assert main(["export", str(tmp_path), "--to", "parquet"]) == 0
    assert pq.read_table(tmp_path / "results.parquet").num_rows == len(table)


def test_tensorboard_scalars_read_back(tmp_path: Path) -> None:
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    store = populate(tmp_path, tiny_config(), {})
    out = export_run(store, "tensorboard", tmp_path / "tb")
    events = accumulator.EventAccumulator(str(out / "before" / "seed_1"))
    events.Reload()
    curve = [(e.step, e.value) for e in events.Scalars("curve/test_acc")]
    res = fake_results("before", 3, 0.0, cv=False)
    assert [s for s, _ in curve] == res["epochs"]
    assert [v for _, v in curve] == pytest.approx(res["curve:test_acc"][1], rel=1e-6)


def test_bad_format_and_empty_store(tmp_path: Path) -> None:
    store = populate(tmp_path, tiny_config(), {})
    with pytest.raises(ValueError, match="must be one of"):
        export_run(store, "xlsx", tmp_path / "x")
    assert main(["export", str(tmp_path / "nowhere"), "--to", "csv"]) == 2


def test_mlflow_runs_read_back_with_the_mlflow_client(tmp_path: Path) -> None:
    tracking = pytest.importorskip("mlflow.tracking")
    config = tiny_config()
    store = populate(tmp_path, config, {"before": 0.05})
    assert main(["export", str(tmp_path), "--to", "mlflow"]) == 0
    client = tracking.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny").experiment_id
    runs = {r.data.params["cell"]: r for r in client.search_runs([experiment])}
    done = store.completed()
    assert set(runs) == set(done)
    pre = runs["before"]
    assert pre.info.run_name == "before" and pre.data.tags["noisereg.cell"] == "before"
    assert {k: pre.data.params[k] for k in ("arm", "site", "kind", "strength", "value", "seeds")} == {
        "arm": "before",
        "site": "before",
        "kind": "gaussian",
        "strength": "0.1",
        "value": "none",
        "seeds": "0,1,2",
    }
    assert runs["none"].data.params["site"] == "none" and runs["none"].data.params["strength"] == "none"
    res = fake_results("before", config.seeds, 0.05, cv=False)
    history = client.get_metric_history(pre.info.run_id, "final/test_acc")
    assert sorted((m.step, m.value) for m in history) == list(enumerate(res["final"]["test_acc"]))
    curve = client.get_metric_history(pre.info.run_id, "curve/test_acc/seed_2")
    assert sorted((m.step, m.value) for m in curve) == list(zip(res["epochs"], res["curve:test_acc"][2], strict=True))
    mean = sorted((m.step, m.value) for m in client.get_metric_history(pre.info.run_id, "curve/test_acc"))
    assert [s for s, _ in mean] == res["epochs"]
    assert [v for _, v in mean] == pytest.approx(
        [sum(c) / 3 for c in zip(*res["curve:test_acc"], strict=True)], rel=1e-12
    )
    grid = next(k for k, r in done.items() if r["cv"])
    assert runs[grid].data.params["value"] in ("0.0", "0.1", "1.0")
    assert runs[grid].data.params["strength"] == runs[grid].data.params["value"]
    assert runs[grid].data.metrics["cv_val_loss"] == pytest.approx(
        sum(map(sum, done[grid]["cv"]["val_loss"])) / (3 * config.seeds), rel=1e-12
    )
    assert "cv_val_loss" not in pre.data.metrics  # no cross-validation, no objective
    folder = client.download_artifacts(pre.info.run_id, "study.json", str(tmp_path / "down"))
    assert json.loads(Path(folder).read_text()) == store.attrs()["config"]
    # exporting again replaces the runs rather than adding to them
    assert main(["export", str(tmp_path), "--to", "mlflow"]) == 0
    assert len(client.search_runs([experiment])) == len(done)


@pytest.mark.parametrize("to", ["tensorboard", "mlflow"])
def test_a_folder_format_refuses_a_file_as_out(tmp_path: Path, to: str) -> None:
    store = populate(tmp_path, tiny_config(), {})
    (tmp_path / "taken").write_text("")
    message = f"out='{tmp_path / 'taken'}' (--out) is a file: --to {to} writes a folder"
    with pytest.raises(ValueError, match=re.escape(message)):
        export_run(store, to, tmp_path / "taken")
    assert main(["export", str(tmp_path), "--to", to, "--out", str(tmp_path / "taken")]) == 2


def test_mlflow_missing_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = populate(tmp_path, tiny_config(), {})
    monkeypatch.setitem(sys.modules, "mlflow.entities", None)  # what an environment without mlflow imports
    with pytest.raises(ImportError, match=r"noisereg\[mlflow\]"):
        export_run(store, "mlflow", tmp_path / "mlruns")


def test_certified_accuracy_is_one_row_per_seed_and_radius_with_current_settings_only(tmp_path: Path) -> None:
    store = populate(tmp_path, tiny_config(), {})
    radii, settings = [0.0, 0.5], {"smoothing": {"sigma": 0.5}}
    store.set_attr(ROBUSTNESS_VS_BASELINE, {"settings": settings, "cells": {}})
    store.set_attr(ROBUSTNESS_PREFIX + "none", fake_robustness([0, 2], [[0.9, 0.3], [0.8, 0.2]], radii, settings))
    store.set_attr(
        ROBUSTNESS_PREFIX + "before", fake_robustness([0], [[0.7, 0.1]], radii, {"smoothing": {"sigma": 0.25}})
    )  # stale
    rows = [r for r in tidy_rows(store) if r["stage"] == "certified"]
    assert [(r["cell"], r["seed"], r["radius"], r["certified_acc"]) for r in rows] == [
        ("none", 0, 0.0, 0.9),
        ("none", 0, 0.5, 0.3),
        ("none", 2, 0.0, 0.8),
        ("none", 2, 0.5, 0.2),
    ]
    assert all(r["fold"] is None and r["epoch"] is None and r["arm"] == "none" for r in rows)
    export_run(store, "csv", tmp_path / "tidy.csv")
    with (tmp_path / "tidy.csv").open() as f:
        table = [r for r in csv.DictReader(f) if r["stage"] == "certified"]
    assert [(r["seed"], r["radius"], r["certified_acc"]) for r in table] == [
        ("0", "0.0", "0.9"),
        ("0", "0.5", "0.3"),
        ("2", "0.0", "0.8"),
        ("2", "0.5", "0.2"),
    ]


def test_cells_stored_before_the_rename_export_their_sites_by_the_new_names(tmp_path: Path) -> None:
    store = populate(tmp_path, tiny_config(), {"before": 0.05})
    cells, done = store.attrs()["cells"], store.completed()
    for key, meta in cells.items():
        stored = {**meta, "noise": [{**t, "site": {"before": "pre"}.get(t["site"], t["site"])} for t in meta["noise"]]}
        assert _cell_params(key, stored, done[key]) == _cell_params(key, meta, done[key])
    assert _cell_params("before", cells["before"], done["before"])["site"] == "before"
    proposal = {**done["grid[std=0.1]"], PROPOSAL: {"value": 0.3, "site": "pre"}}
    searched = _cell_params("grid[std=0.1]", {**cells["grid[std=0.1]"], "value": None}, proposal)
    assert searched["site"] == "before" and searched["value"] == "0.3"
