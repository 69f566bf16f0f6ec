"""noisereg export: every stage of the tidy table reaches every target exactly, read back with each
target's own reader; an export is all or nothing; exit 2 for the user's mistakes, 1 for a failure."""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from noisereg.cli import main
from noisereg.study.export import MARK, ExportError, export_run, tidy_rows
from noisereg.study.export.to_mlflow import cell_params
from noisereg.study.export.to_tensorboard import run_folder
from noisereg.study.report.summary import summarize
from noisereg.study.run.runner import run_study
from noisereg.study.store import PROPOSAL, ROBUSTNESS_PREFIX, ROBUSTNESS_VS_BASELINE, Store, default_url
from tests.study.fakes import fake_results, fake_robustness, populate, tiny_config

TARGETS = ["csv", "parquet", "tensorboard", "mlflow"]
OUT = {"csv": "results.csv", "parquet": "results.parquet", "tensorboard": "tensorboard", "mlflow": "mlruns"}
Fact = tuple[str, int, str, Any, Any, Any, str, float]
"""(cell, seed, stage, fold, epoch, radius, metric, value): one value of the tidy table."""


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained study with every stage: curves, finals, CV on fewer seeds than the test stage
    (selection.seeds = 1 of 3, as the default case study's 10 of 30) and certified accuracy."""
    run_dir = tmp_path_factory.mktemp("real")
    config = tiny_config(
        selection={"arm": "grid", "folds": 2, "seeds": 1},
        robustness={"smoothing": {"n0": 10, "n": 50, "inputs": 4}},
    )
    run_study(config, run_dir)
    return run_dir


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    """A test's own copy of a run directory, to export into."""
    import shutil

    return Path(shutil.copytree(run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("models")))


def _csv_facts(path: Path) -> set[Fact]:
    facts: set[Fact] = set()
    with path.open() as f:
        for row in csv.DictReader(f):
            keys = (row["cell"], None if row["seed"] == "" else int(row["seed"]), row["stage"])
            where = tuple(None if row[k] == "" else float(row[k]) for k in ("fold", "epoch", "radius"))
            for metric, text in row.items():
                if metric in ("cell", "arm", "value", "param", "seed", "stage", "fold", "epoch", "radius"):
                    continue
                if text != "" and math.isfinite(float(text)):
                    facts.add((*keys, *where, metric, float(text)))  # type: ignore[arg-type]
    return facts


def _parquet_facts(path: Path) -> set[Fact]:
    pq = pytest.importorskip("pyarrow.parquet")
    facts: set[Fact] = set()
    for row in pq.read_table(path).to_pylist():
        where = tuple(None if row.get(k) is None else float(row[k]) for k in ("fold", "epoch", "radius"))
        for metric, value in row.items():
            if metric in ("cell", "arm", "value", "param", "seed", "stage", "fold", "epoch", "radius"):
                continue
            if value is not None and math.isfinite(value):
                facts.add((row["cell"], row["seed"], row["stage"], *where, metric, value))  # type: ignore[arg-type]
    return facts


def _where(stage: str, qualifiers: list[str], step: int, seed: int | None) -> tuple[int, Any, Any, Any]:
    """(seed, fold, epoch, radius) of a scalar from its name's qualifiers and its step."""
    named = dict(q.split("_", 1) for q in qualifiers)
    stages = {"curve": "epoch", "cv_curve": "epoch", "cv": "fold", "final": "seed", "certified": "seed"}
    over = stages.get(stage)  # a comparison has one value per cell, at step 0
    if over is not None and (seed is None or over != "seed"):  # a TensorBoard run holds the seed
        named.setdefault(over, str(step))
    if seed is not None:
        named["seed"] = str(seed)
    found = [None if named.get(k) is None else float(named[k]) for k in ("fold", "epoch", "radius")]
    return (None if named.get("seed") is None else int(named["seed"]), *found)  # type: ignore[return-value]


def _tensorboard_facts(folder: Path, cells: set[str], seeds: set[int]) -> set[Fact]:
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    tensor_util = pytest.importorskip("tensorboard.util.tensor_util")
    facts: set[Fact] = set()
    for cell in cells:
        for seed in seeds | {None}:  # None: the cell's comparison, in its all_seeds run
            events = accumulator.EventAccumulator(str(folder / run_folder(cell, seed)), size_guidance={"tensors": 0})
            events.Reload()
            assert events.Tags()["scalars"] == []  # every value at double precision
            for tag in events.Tags()["tensors"]:
                stage, metric, *qualifiers = tag.split("/")
                for event in events.Tensors(tag):
                    value = tensor_util.make_ndarray(event.tensor_proto)
                    assert value.dtype.name == "float64"
                    _, fold, epoch, radius = _where(stage, qualifiers, event.step, seed)
                    facts.add((cell, seed, stage, fold, epoch, radius, metric, value.item()))
    return facts


def _mlflow_runs(folder: Path) -> tuple[Any, dict[str, Any]]:
    tracking = pytest.importorskip("mlflow.tracking")
    client = tracking.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments])
    return client, {r.data.params["cell"]: r for r in runs}


def _mlflow_facts(folder: Path) -> set[Fact]:
    client, runs = _mlflow_runs(folder)
    facts: set[Fact] = set()
    for cell, run in runs.items():
        for name in run.data.metrics:
            stage, *rest = name.split("/")
            if stage in ("mean", "cv_val_loss") or (stage in ("curve", "cv") and len(rest) == 1):
                continue  # summaries: checked against the values in the MLflow test
            metric, *qualifiers = rest
            for m in client.get_metric_history(run.info.run_id, name):
                seed, *where = _where(stage, qualifiers, m.step, None)
                facts.add((cell, seed, stage, *where, metric, m.value))  # type: ignore[arg-type]
    return facts


def test_one_row_per_cell_seed_stage_fold_epoch(tmp_path: Path) -> None:
    config = tiny_config()
    store = populate(tmp_path, config, {"before": 0.05})
    rows = tidy_rows(store)
    done = store.completed()
    expected = 0
    for res in done.values():
        folds = 3 if res["cv"] else 0
        cv_points = len(res["cv"]["val_epochs"]) if res["cv"] else 0
        expected += config.seeds * (len(res["epochs"]) + 1 + folds * (1 + cv_points)) + 1  # + its comparison
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


def test_the_comparison_rows_carry_the_summarys_intervals_improvement_and_power(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.study import fakes

    def wobbly(key: str, seeds: int, shift: float, **kw: Any) -> dict[str, Any]:
        res = fake_results(key, seeds, shift, **kw)  # differences that vary by seed: tests are defined
        res["final"]["test_acc"] = [
            a + 0.01 * ((i * 7 + len(key)) % 3 - 1) for i, a in enumerate(res["final"]["test_acc"])
        ]
        return res

    monkeypatch.setattr(fakes, "fake_results", wobbly)
    config = tiny_config(seeds=8)
    store = populate(tmp_path, config, {"before": 0.05, "input": 0.001})
    rows = {r["cell"]: r for r in tidy_rows(store) if r["stage"] == "comparison"}
    summary = summarize(store.attrs(), store.completed())
    assert set(rows) == {a["name"] for a in summary["arms"]}
    for arm in summary["arms"]:
        row = rows[arm["name"]]
        assert (row["seed"], row["fold"], row["epoch"]) == (None, None, None)
        assert (row["n"], row["mean"], [row["ci95_low"], row["ci95_high"]]) == (arm["n"], arm["mean"], arm["ci95"])
        assert [row["iqm"], [row["iqm_ci95_low"], row["iqm_ci95_high"]]] == [arm["iqm"]["iqm"], arm["iqm"]["ci95"]]
        p = arm.get("paired")
        if not p:  # the baseline: no comparison with itself
            assert arm["name"] == summary["baseline"] and "mean_diff" not in row
            continue
        boot, power = p["bootstrap"], p["power"] or {}
        assert (row["mean_diff"], row["p_ttest"], row["p_holm"]) == (p["mean_diff"], p["p_ttest"], p["p_holm"])
        assert [row["diff_ci95_low"], row["diff_ci95_high"]] == p["ci95_diff"]
        assert [row["boot_diff_ci95_low"], row["boot_diff_ci95_high"]] == boot["ci95_diff"]
        assert row["p_improvement"] == boot["p_improvement"]
        assert [row["p_improvement_ci95_low"], row["p_improvement_ci95_high"]] == boot["ci95_improvement"]
        assert (row["mde"], row["mde_alpha"], row["seeds_needed"]) == (
            power.get("mde"),
            power.get("alpha"),
            power.get("seeds_needed"),
        )
    # a significant comparison has no power figures; a non-significant one has them
    assert rows["before"]["p_holm"] < 0.05 and rows["before"]["mde"] is None
    assert rows["input"]["mde"] is not None and rows["input"]["mde_alpha"] == 0.05
    m = sum(1 for a in summary["arms"] if (a.get("paired") or {}).get("p_ttest") is not None)
    assert m > 1 and rows["input"]["mde_holm_alpha"] == pytest.approx(0.05 / m)
    assert rows["input"]["mde_holm"] > rows["input"]["mde"]  # a stricter level needs a larger effect
    lo, hi = rows["input"]["p_improvement_ci95_low"], rows["input"]["p_improvement_ci95_high"]
    assert 0.0 <= lo <= rows["input"]["p_improvement"] <= hi <= 1.0


def test_the_real_run_has_every_stage_and_cv_on_fewer_seeds(real_run: Path) -> None:
    rows = tidy_rows(Store(default_url(real_run), "tiny"))
    assert {r["stage"] for r in rows} == {"curve", "final", "cv", "cv_curve", "certified", "comparison"}
    cv_seeds = {r["seed"] for r in rows if r["stage"] == "cv"}
    assert cv_seeds == {0} and {r["seed"] for r in rows if r["stage"] == "final"} == {0, 1, 2}


@pytest.mark.parametrize("to", ["parquet", "tensorboard", "mlflow"])
def test_every_target_holds_every_value_of_the_csv_exactly(real_run: Path, tmp_path: Path, to: str) -> None:
    run_dir = _copy(real_run, tmp_path)
    assert main(["export", str(run_dir), "--to", "csv"]) == 0
    assert main(["export", str(run_dir), "--to", to]) == 0
    expected = _csv_facts(run_dir / "results.csv")
    assert {f[2] for f in expected} == {"curve", "final", "cv", "cv_curve", "certified", "comparison"}
    cells, seeds = {f[0] for f in expected}, {f[1] for f in expected}
    got = {
        "parquet": lambda: _parquet_facts(run_dir / "results.parquet"),
        "tensorboard": lambda: _tensorboard_facts(run_dir / "tensorboard", cells, seeds),
        "mlflow": lambda: _mlflow_facts(run_dir / "mlruns"),
    }[to]()
    assert got - expected == set() and expected - got == set()


def test_csv_and_parquet_rows_agree_row_for_row(real_run: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    store = Store(default_url(real_run), "tiny")
    export_run(store, "csv", tmp_path / "t.csv")
    export_run(store, "parquet", tmp_path / "t.parquet")
    with (tmp_path / "t.csv").open() as f:
        table = list(csv.DictReader(f))
    back = pq.read_table(tmp_path / "t.parquet").to_pylist()
    assert [list(r) for r in back] == [list(r) for r in table]
    assert [{k: "" if v is None else str(v) for k, v in r.items()} for r in back] == table


def test_mlflow_runs_read_back_with_the_mlflow_client(tmp_path: Path) -> None:
    config = tiny_config()
    store = populate(tmp_path, config, {"before": 0.05})
    assert main(["export", str(tmp_path), "--to", "mlflow"]) == 0
    client, runs = _mlflow_runs(tmp_path / "mlruns")
    done = store.completed()
    assert set(runs) == set(done)
    assert {e.name for e in client.search_experiments()} == {"tiny", "Default"}  # MLflow makes Default itself
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
    assert pre.data.metrics["mean/test_acc"] == pytest.approx(sum(res["final"]["test_acc"]) / 3, rel=1e-12)
    grid = next(k for k, r in done.items() if r["cv"])
    assert runs[grid].data.params["value"] in ("0.0", "0.1", "1.0")
    assert runs[grid].data.params["strength"] == runs[grid].data.params["value"]
    assert runs[grid].data.metrics["cv_val_loss"] == pytest.approx(
        sum(map(sum, done[grid]["cv"]["val_loss"])) / (3 * config.seeds), rel=1e-12
    )
    per_seed = client.get_metric_history(runs[grid].info.run_id, "cv/val_loss")
    assert sorted((m.step, m.value) for m in per_seed) == [
        (s, pytest.approx(sum(folds) / 3, rel=1e-12)) for s, folds in enumerate(done[grid]["cv"]["val_loss"])
    ]
    assert "cv_val_loss" not in pre.data.metrics  # no cross-validation, no objective
    folder = client.download_artifacts(pre.info.run_id, "study.json", str(tmp_path / "down"))
    assert json.loads(Path(folder).read_text()) == store.attrs()["config"]


@pytest.mark.parametrize("to", TARGETS)
def test_an_existing_target_is_refused_unless_forced_and_then_replaced(
    tmp_path: Path, to: str, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(tmp_path, tiny_config(), {})
    assert main(["export", str(tmp_path), "--to", to]) == 0
    target = tmp_path / OUT[to]
    stale = (target / "stale") if target.is_dir() else None
    if stale is not None:
        stale.write_text("from before")
    capsys.readouterr()
    assert main(["export", str(tmp_path), "--to", to]) == 2
    assert "exists: pass --force to replace it" in capsys.readouterr().err
    assert stale is None or stale.exists()
    assert main(["export", str(tmp_path), "--to", to, "--force"]) == 0
    assert stale is None or not stale.exists()  # a fresh export, not one written over the old
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    if to == "mlflow":
        assert len(_mlflow_runs(target)[1]) == len(tiny_config().arms) + 2  # one run per cell, not two


@pytest.mark.parametrize("to", ["tensorboard", "mlflow"])
def test_force_replaces_no_folder_that_an_export_did_not_write(
    tmp_path: Path, to: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A shared TensorBoard log folder or MLflow tracking folder holds other runs: --force leaves it."""
    populate(tmp_path, tiny_config(), {})
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "someone else's run").write_text("keep me")
    assert main(["export", str(tmp_path), "--to", to, "--out", str(shared), "--force"]) == 2
    assert f"is not a folder that noisereg export wrote (it has no {MARK})" in capsys.readouterr().err
    assert sorted(p.name for p in shared.iterdir()) == ["someone else's run"]
    fresh = tmp_path / "fresh"
    assert main(["export", str(tmp_path), "--to", to, "--out", str(fresh)]) == 0
    assert (fresh / MARK).read_text() == f"noisereg export --to {to}\n"
    assert main(["export", str(tmp_path), "--to", to, "--out", str(fresh), "--force"]) == 0


def _inject(monkeypatch: pytest.MonkeyPatch, to: str) -> None:
    """Make ``to``'s writer raise a ValueError (the kind of the zip bug) after writing part of it."""
    calls = {"n": 0}

    def after_some(original: Any, n: int) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] > n:
                raise ValueError("injected failure")
            return original(*args, **kwargs)

        return wrapped

    if to == "csv":
        monkeypatch.setattr(csv.DictWriter, "writerow", after_some(csv.DictWriter.writerow, 5))
    elif to == "parquet":
        pq = pytest.importorskip("pyarrow.parquet")

        def partial(table: Any, where: Any) -> None:
            Path(where).write_bytes(b"PAR1 half")
            raise ValueError("injected failure")

        monkeypatch.setattr(pq, "write_table", partial)
    elif to == "tensorboard":
        writer = pytest.importorskip("torch.utils.tensorboard.writer")
        monkeypatch.setattr(writer.SummaryWriter, "add_scalar", after_some(writer.SummaryWriter.add_scalar, 20))
    else:
        tracking = pytest.importorskip("mlflow.tracking")
        monkeypatch.setattr(tracking.MlflowClient, "log_batch", after_some(tracking.MlflowClient.log_batch, 2))


@pytest.mark.parametrize("to", TARGETS)
def test_a_failure_mid_export_leaves_nothing_and_exits_1_naming_it(
    tmp_path: Path, to: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(tmp_path, tiny_config(), {})
    before = sorted(p.name for p in tmp_path.iterdir())
    _inject(monkeypatch, to)
    assert main(["export", str(tmp_path), "--to", to]) == 1
    err = capsys.readouterr().err
    assert f"export --to {to} failed while writing {tmp_path / OUT[to]}" in err
    assert "ValueError: injected failure" in err and "nothing was written" in err and "--debug" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no target, no partial sibling
    assert main(["--debug", "export", str(tmp_path), "--to", to]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and 'raise ValueError("injected failure")' in err


def test_an_interrupted_export_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(tmp_path, tiny_config(), {})
    before = sorted(p.name for p in tmp_path.iterdir())

    def interrupt(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(csv.DictWriter, "writerow", interrupt)
    assert main(["export", str(tmp_path), "--to", "csv"]) == 130
    assert f"{tmp_path / 'results.csv'} was left as it was" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_failure_reading_the_results_is_exit_1_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(tmp_path, tiny_config(), {})
    monkeypatch.setattr(Store, "completed", lambda self: {"cell": {"seeds": [0], "final": {"a": []}, "cv": 1}})
    assert main(["export", str(tmp_path), "--to", "csv"]) == 1
    err = capsys.readouterr().err
    assert "export --to csv failed while reading the stored results (TypeError" in err
    assert not (tmp_path / "results.csv").exists()


def test_a_failure_while_forcing_keeps_the_existing_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(tmp_path, tiny_config(), {})
    assert main(["export", str(tmp_path), "--to", "mlflow"]) == 0
    kept = sorted(p.relative_to(tmp_path) for p in (tmp_path / "mlruns").rglob("*"))
    _inject(monkeypatch, "mlflow")
    assert main(["export", str(tmp_path), "--to", "mlflow", "--force"]) == 1
    assert "the existing one is unchanged" in capsys.readouterr().err
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "mlruns").rglob("*")) == kept
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_bad_format_empty_store_and_missing_run_are_the_users_mistakes(tmp_path: Path) -> None:
    store = populate(tmp_path, tiny_config(), {})
    with pytest.raises(ExportError, match="must be one of"):
        export_run(store, "xlsx", tmp_path / "x")  # type: ignore[arg-type]
    assert main(["export", str(tmp_path / "nowhere"), "--to", "csv"]) == 2
    assert main(["export", str(tmp_path), "--to", "xlsx"]) == 2
    (tmp_path / "empty").mkdir()
    empty = populate(tmp_path / "empty", tiny_config(), {}, skip=tuple(c for c in store.completed()))
    with pytest.raises(ExportError, match="no completed cell"):
        export_run(empty, "csv", tmp_path / "empty.csv")
    assert not (tmp_path / "empty.csv").exists()


@pytest.mark.parametrize("to", TARGETS)
def test_a_target_of_the_other_kind_is_refused(tmp_path: Path, to: str) -> None:
    store = populate(tmp_path, tiny_config(), {})
    taken = tmp_path / "taken"
    if to in ("tensorboard", "mlflow"):
        taken.write_text("")
        message = f"out='{taken}' (--out) is a file: --to {to} writes a folder"
    else:
        taken.mkdir()
        message = f"out='{taken}' (--out) is a folder: --to {to} writes a file"
    with pytest.raises(ExportError, match=re.escape(message)):
        export_run(store, to, taken, force=True)  # type: ignore[arg-type]
    assert main(["export", str(tmp_path), "--to", to, "--out", str(taken), "--force"]) == 2


@pytest.mark.parametrize(
    ("to", "hidden", "said"),
    [
        ("mlflow", ("mlflow", "mlflow.entities"), "needs 'mlflow', which is not installed"),
        ("mlflow", ("mlflow.entities",), "needs 'mlflow', which is installed but fails to import"),
        ("tensorboard", ("tensorboard", "torch.utils.tensorboard"), "needs 'tensorboard', which is not installed"),
        ("tensorboard", ("torch.utils.tensorboard",), "needs 'tensorboard', which is installed but fails to import"),
        ("parquet", ("pyarrow", "pyarrow.parquet"), "needs 'pyarrow', which is not installed"),
    ],
)
def test_a_missing_or_broken_package_names_it_and_the_extra(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    to: str,
    hidden: tuple[str, ...],
    said: str,
) -> None:
    populate(tmp_path, tiny_config(), {})
    extra = {"mlflow": "mlflow", "tensorboard": "export", "parquet": "parquet"}[to]
    for name in hidden:
        monkeypatch.setitem(sys.modules, name, None)  # what an environment without it imports
    assert main(["export", str(tmp_path), "--to", to]) == 2
    err = capsys.readouterr().err
    assert f"--to {to}: this part of noisereg {said}" in err
    # missing: the extra that installs it; broken: reinstall or uninstall what fails
    assert f'pip install "noisereg[{extra}]"' in err if "not installed" in said else "pip uninstall" in err
    assert not (tmp_path / OUT[to]).exists()


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


def _earlier(table: dict) -> dict:
    """A noise table as a run stored before the renames holds it: ``site`` (``pre`` for before), ``layers``."""
    site = table["where"] if table["at"] == "activations" else table["at"]
    out = {k: v for k, v in table.items() if k not in ("at", "where", "select")}
    return {**out, "site": {"before": "pre"}.get(site, site), "layers": table["select"]}


def test_cells_stored_before_the_rename_export_their_sites_by_the_new_names(tmp_path: Path) -> None:
    store = populate(tmp_path, tiny_config(), {"before": 0.05})
    cells, done = store.attrs()["cells"], store.completed()
    for key, meta in cells.items():
        stored = {**meta, "noise": [_earlier(t) for t in meta["noise"]]}
        assert cell_params(key, stored, done[key]) == cell_params(key, meta, done[key])
    assert cell_params("before", cells["before"], done["before"])["site"] == "before"
    proposal = {**done["grid[std=0.1]"], PROPOSAL: {"value": 0.3, "site": "pre"}}
    searched = cell_params("grid[std=0.1]", {**cells["grid[std=0.1]"], "value": None}, proposal)
    assert searched["site"] == "before" and searched["value"] == "0.3"
