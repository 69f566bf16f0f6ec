"""Bad study files, data files, options and run directories at the CLI: each one line naming the key
(and the value received), exit code 2, and the store untouched (no study.db, or its trials unchanged).

Nothing here trains: every case is refused before any work. The hypothesis tests generate study
files (valid and mutated) and check that parsing either accepts them or raises StudyConfigError.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noisereg.cli import main
from noisereg.study.config import StudyConfigError, parse_config
from noisereg.study.store import SCHEMA_VERSION, Store, default_url
from tests.study.fakes import tiny_raw
from tests.test_cli import toml_value


def write_study(path: Path, raw: dict[str, Any]) -> Path:
    """``raw`` as a TOML file (tables inline; NaN and inf as TOML writes them)."""
    lines = [f"{k} = {_toml(v)}" for k, v in raw.items() if k != "arms" and v is not None]
    path.write_text("\n".join(lines + ["arms = " + _toml(raw.get("arms", []))]) + "\n")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return toml_value(value)


HUGE = 10**13


def small(**overrides: Any) -> dict[str, Any]:
    """The tiny study with two arms and no selection (the cheapest to prepare)."""
    raw = tiny_raw(arms=tiny_raw()["arms"][:2], selection=None)
    raw.update(overrides)
    return raw


def at(path: str, value: Any, raw: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of ``raw`` (default :func:`small`) with the dotted ``path`` set to ``value``."""
    raw = copy.deepcopy(raw if raw is not None else small())
    node: Any = raw
    # ASCII digits only: str.isdigit() is also true for "²", which int() refuses (a drawn unknown key)
    keys = [int(k) if k.isascii() and k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return raw


def file_study(path: str, task: str = "classification", **overrides: Any) -> Callable[[Path], dict[str, Any]]:
    def build(tmp: Path) -> dict[str, Any]:
        return small(data={"source": "file", "path": str(tmp / path), "target": "y", "task": task}, **overrides)

    return build


def csv(name: str, text: str) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        (tmp / name).write_text(text)

    return write


def rows(n: int, label: Callable[[int], Any] = lambda i: i % 2, b: Callable[[int], Any] = lambda i: i * 0.5) -> str:
    return "a,b,y\n" + "".join(f"{i},{b(i)},{label(i)}\n" for i in range(n))


@dataclass(frozen=True)
class BadFile:
    id: str
    raw: dict[str, Any] | Callable[[Path], dict[str, Any]]
    names: tuple[str, ...]
    setup: Callable[[Path], None] | None = None
    args: tuple[str, ...] = ()


STUDY_CASES = [
    BadFile("seed-negative", small(seed=-1), ("seed", "-1")),
    BadFile("seed-2-64", small(seed=2**64), ("seed", str(2**64))),
    BadFile("seeds-zero", small(seeds=0), ("seeds", "0")),
    BadFile("seeds-huge", small(seeds=10**6), ("seeds", str(10**6))),
    BadFile("n-samples-huge", at("data.n_samples", HUGE), ("data.n_samples", str(HUGE), "GiB")),
    BadFile("n-samples-one", at("data.n_samples", 1), ("data.n_samples", "1")),
    BadFile("data-noise-negative", at("data.noise", -0.1), ("data.noise", "-0.1")),
    BadFile("data-noise-nan", at("data.noise", math.nan), ("data.noise", "nan")),
    BadFile("data-noise-inf", at("data.noise", math.inf), ("data.noise", "inf")),
    BadFile("random-state-2-40", at("data.random_state", 2**40), ("data.random_state", str(2**40))),
    BadFile("data-source-unknown", at("data.source", "mnist"), ("data.source", "mnist")),
    BadFile("data-unknown-key", at("data.samples", 10), ("data", "samples")),
    BadFile("widths-huge", at("model.widths", [HUGE]), ("model.widths", str(HUGE), "GiB")),
    BadFile("widths-zero", at("model.widths", [0]), ("model.widths", "0")),
    BadFile("widths-negative", at("model.widths", [-3]), ("model.widths", "-3")),
    BadFile("model-family-unknown", at("model.family", "transformer"), ("model.family", "transformer")),
    BadFile("earlier-model-kind-unknown", at("model", {"kind": "transformer"}), ("model.kind", "transformer")),
    BadFile("epochs-zero", at("training.epochs", 0), ("training.epochs", "0")),
    BadFile("epochs-float", at("training.epochs", 1.5), ("training.epochs", "1.5")),
    BadFile("batch-size-zero", at("training.batch_size", 0), ("training.batch_size", "0")),
    BadFile("lr-negative", small(optimizer={"lr": -1.0}), ("optimizer.lr", "-1.0")),
    BadFile("sam-rho-negative", small(optimizer={"sam_rho": -0.05}), ("optimizer.sam_rho", "-0.05")),
    BadFile("nesterov-without-momentum", small(optimizer={"name": "sgd", "nesterov": True}), ("optimizer", "nesterov")),
    BadFile("arm-sam-rho-zero", at("arms.1.sam_rho", 0.0), ("arms[1].sam_rho", "0")),
    BadFile("increments-off-weights", at("arms.1.noise.increments", "anticorrelated"), ("arms[1].noise", "weights")),
    BadFile(
        "increments-unknown", at("arms.1.noise.increments", "sometimes"), ("arms[1].noise.increments", "sometimes")
    ),
    BadFile("lr-inf", small(optimizer={"lr": math.inf}), ("optimizer.lr", "inf")),
    BadFile("optimizer-unknown-key", small(optimizer={"lrate": 0.1}), ("optimizer", "lrate", "lr")),
    BadFile("arms-empty", small(arms=[]), ("arms",)),
    BadFile("std-negative", at("arms.1.noise.std", -1.0), ("arms[1].noise.std", "-1")),
    BadFile("std-nan", at("arms.1.noise.std", math.nan), ("arms[1].noise.std", "nan")),
    BadFile("std-inf", at("arms.1.noise.std", math.inf), ("arms[1].noise.std", "inf")),
    BadFile("noise-kind-unknown", at("arms.1.noise.kind", "pink"), ("arms[1].noise", "pink")),
    BadFile("noise-at-unknown", at("arms.1.noise.at", "everywhere"), ("arms[1].noise.at", "everywhere")),
    BadFile(
        "noise-where-on-input",
        at("arms.1.noise", {"at": "input", "where": "before", "kind": "gaussian", "std": 0.1}),
        ("arms[1].noise.where", "at = 'input'"),
    ),
    BadFile(
        "noise-select-on-weights",
        at("arms.1.noise", {"at": "weights", "select": [0], "kind": "gaussian", "std": 0.1}),
        ("arms[1].noise.select", "at = 'weights'"),
    ),
    BadFile(
        "noise-select-missing-layer",
        at("arms.1.noise", {"at": "activations", "select": [5], "kind": "gaussian", "std": 0.1}),
        ("arms[1].noise[0].select", "hidden layer 5"),
    ),
    BadFile(
        "earlier-site-unknown",
        at("arms.1.noise", {"site": "everywhere", "kind": "gaussian", "std": 0.1}),
        ("arms[1].noise.site", "everywhere"),
    ),
    BadFile(
        "earlier-site-and-at",
        at("arms.1.noise", {"site": "input", "at": "input", "kind": "gaussian", "std": 0.1}),
        ("arms[1].noise.site", "earlier spelling"),
    ),
    BadFile(
        "earlier-layers-on-input",
        at("arms.1.noise", {"site": "input", "layers": [0], "kind": "gaussian", "std": 0.1}),
        ("arms[1].noise.layers", "at = 'input'"),
    ),
    BadFile(
        "schedule-goes-negative",
        at("arms.1.noise.std", {"schedule": "linear", "start": 1.0, "end": -1.0, "steps": 10}),
        ("arms[1].noise.std.end", "-1"),
    ),
    BadFile(
        "dropout-rate-one",
        at("arms.1.noise", {"at": "input", "kind": "gaussian_dropout", "rate": 1.0}),
        ("arms[1].noise.rate", "1"),
    ),
    BadFile(
        "impulse-amount-two",
        at("arms.1.noise", {"at": "input", "kind": "impulse", "amount": 2.0}),
        ("arms[1].noise.amount", "2"),
    ),
    BadFile("noise-unknown-key", at("arms.1.noise.sigma", 0.1), ("arms[1].noise", "sigma")),
    BadFile("arm-names-repeated", small(arms=[{"name": "none"}, {"name": "none"}]), ("arm names", "none")),
    BadFile("grid-repeated", at("arms.1.grid", [0.1, 0.1]), ("grid", "0.1")),
    BadFile("grid-negative", at("arms.1.grid", [0.1, -0.2]), ("grid.values[1]", "-0.2")),
    BadFile("selection-arm-unknown", small(selection={"arm": "ghost"}), ("selection.arm", "ghost")),
    BadFile("selection-folds-one", tiny_raw(selection={"arm": "grid", "folds": 1}), ("selection.folds", "1")),
    BadFile("n-train-too-large", at("split.n_train", 1000), ("split.n_train", "1000")),
    BadFile("kfold-too-many-folds", small(split={"kind": "kfold", "folds": 1000}), ("split.folds", "1000")),
    BadFile("top-level-unknown-key", small(epochs=5), ("epochs", "training")),
    BadFile("name-with-spaces", small(name="my study!"), ("name", "my study!")),
    BadFile("baseline-unknown", small(baseline="ghost"), ("baseline", "ghost")),
    BadFile("value-range-with-standardize", at("data.value_range", [0.0, 1.0]), ("value_range", "standardize")),
    # data files
    BadFile(
        "csv-nan-feature",
        file_study("d.csv"),
        ("'b'", "NaN", "rows [4]"),
        csv("d.csv", rows(20, b=lambda i: "nan" if i == 3 else i)),
    ),
    BadFile(
        "csv-inf-target",
        file_study("d.csv", task="regression"),
        ("'y'", "inf", "rows [2]"),
        csv("d.csv", rows(20, label=lambda i: "inf" if i == 1 else i * 0.1)),
    ),
    BadFile("csv-empty-file", file_study("d.csv"), ("d.csv", "empty file"), csv("d.csv", "")),
    BadFile("csv-header-only", file_study("d.csv"), ("d.csv", "no data rows"), csv("d.csv", "a,b,y\n")),
    BadFile(
        "csv-one-class-holdout",
        file_study("d.csv"),
        ("data.target='y'", "one class only"),
        csv("d.csv", rows(40, label=lambda i: 1)),
    ),
    BadFile(
        "csv-one-class-kfold",
        file_study("d.csv", split={"kind": "kfold", "folds": 3}),
        ("data.target='y'", "one class only"),
        csv("d.csv", rows(40, label=lambda i: 1)),
    ),
    BadFile(
        "csv-target-missing",
        lambda tmp: at("data.target", "label", file_study("d.csv")(tmp)),
        ("data.target='label'", "columns"),
        csv("d.csv", rows(40)),
    ),
    BadFile(
        "csv-feature-not-numeric",
        file_study("d.csv"),
        ("'b'", "not numeric", "'x3' in data row 4"),
        csv("d.csv", rows(40, b=lambda i: f"x{i}" if i == 3 else i)),
    ),
    BadFile(
        "csv-ragged-rows",
        file_study("d.csv"),
        ("lines [5]", "number of fields"),
        csv("d.csv", rows(40).replace("3,1.5,1\n", "3,1.5\n")),
    ),
    BadFile(
        "csv-empty-cell",
        file_study("d.csv"),
        ("'b'", "empty", "lines [5]"),
        csv("d.csv", rows(40, b=lambda i: "" if i == 3 else i)),
    ),
    BadFile(
        "csv-duplicate-columns",
        file_study("d.csv"),
        ("['a']", "more than once"),
        csv("d.csv", rows(40).replace("a,b,y", "a,a,y")),
    ),
    BadFile(
        "csv-regression-text-target",
        file_study("d.csv", task="regression"),
        ("'y'", "numeric target"),
        csv("d.csv", rows(40, label=lambda i: f"c{i}")),
    ),
    BadFile("npz-not-an-archive", file_study("d.npz"), ("d.npz", "not an .npz archive"), csv("d.npz", "hello")),
    BadFile(
        "npz-3d-array",
        file_study("d.npz"),
        ("'x'", "3 dims"),
        lambda tmp: np.savez(tmp / "d.npz", x=np.zeros((4, 2, 2)), y=np.zeros(4)),
    ),
    BadFile("data-file-missing", file_study("absent.csv"), ("data.path", "absent.csv")),
    BadFile("data-file-suffix", file_study("d.txt"), ("data.path", "'.txt'"), csv("d.txt", rows(10))),
    BadFile(
        "file-source-without-task",
        lambda tmp: at("data.task", "auto", file_study("d.csv")(tmp)),
        ("data", "task"),
        csv("d.csv", rows(40)),
    ),
]


def _run(tmp_path: Path, case: BadFile, capsys) -> tuple[int, str, Path]:
    if case.setup is not None:
        case.setup(tmp_path)
    raw = case.raw(tmp_path) if callable(case.raw) else case.raw
    study = write_study(tmp_path / "study.toml", raw)
    out = tmp_path / "run"
    code = main(["study", str(study), "--out", str(out), "--quiet", "--workers", "1", *case.args])
    return code, capsys.readouterr().err, out


@pytest.mark.parametrize("case", STUDY_CASES, ids=[c.id for c in STUDY_CASES])
def test_a_bad_study_or_data_file_exits_2_naming_the_key(tmp_path, capsys, case: BadFile) -> None:
    code, err, out = _run(tmp_path, case, capsys)
    assert code == 2, err
    flat = " ".join(err.split())  # the console wraps long lines
    for name in case.names:
        assert name in flat, f"{name!r} not in {flat!r}"
    assert "Traceback" not in err
    assert not (out / "study.db").exists() and not (out / "run.json").exists()


def _store_state(run_dir: Path, name: str) -> list[tuple[int, str]]:
    storage = optuna.storages.RDBStorage(default_url(run_dir))
    study = optuna.load_study(study_name=name, storage=storage)
    return [(t.number, t.state.name) for t in study.get_trials(deepcopy=False)]


@pytest.fixture
def enqueued(tmp_path) -> tuple[Path, Path]:
    """A run directory with the small study created and its cells waiting (nothing trained)."""
    study = write_study(tmp_path / "small.toml", small())
    run_dir = tmp_path / "run"
    assert main(["study", str(study), "--out", str(run_dir), "--no-train", "--quiet"]) == 0
    return study, run_dir


def _other_study(tmp_path: Path) -> Path:
    return write_study(tmp_path / "other.toml", at("training.epochs", 7))


RUN_CASES: list[tuple[str, Callable[[Path, Path, Path], list[str]], tuple[str, ...]]] = [
    (
        "out-is-a-file",
        lambda tmp, study, run: (tmp / "f").write_text("x") and ["study", str(study), "--out", str(tmp / "f")],
        ("f", "cannot be made"),
    ),
    (
        "out-under-a-file",
        lambda tmp, study, run: (tmp / "f").write_text("x") and ["study", str(study), "--out", str(tmp / "f" / "sub")],
        ("sub", "cannot be made"),
    ),
    (
        "run-dir-of-another-study",
        lambda tmp, study, run: ["study", str(_other_study(tmp)), "--out", str(run)],
        ("different configuration", "training.epochs"),
    ),
    (
        "storage-does-not-answer",
        lambda tmp, study, run: [
            "study",
            str(study),
            "--out",
            str(tmp / "r2"),
            "--storage",
            "postgresql+psycopg2://nobody@127.0.0.1:9/none",
        ],
        ("cannot open storage", "127.0.0.1:9"),
    ),
    (
        "storage-url-nonsense",
        lambda tmp, study, run: ["study", str(study), "--out", str(tmp / "r2"), "--storage", "nonsense://x"],
        ("cannot open storage", "nonsense://x"),
    ),
    (
        "report-run-json-not-json",
        lambda tmp, study, run: (run / "run.json").write_text("{not json") and ["report", str(run)],
        ("run.json", "cannot be read"),
    ),
    (
        "report-run-json-a-list",
        lambda tmp, study, run: (run / "run.json").write_text("[1, 2]") and ["report", str(run)],
        ("run.json", "not a run.json"),
    ),
    ("report-without-run-json", lambda tmp, study, run: ["report", str(tmp / "nowhere")], ("no run.json",)),
    (
        "report-wrong-study-name",
        lambda tmp, study, run: ["report", str(run), "--study", "ghost"],
        ("ghost", "no study"),
    ),
    (
        "worker-wrong-study-name",
        lambda tmp, study, run: ["worker", "--storage", default_url(run), "--study", "ghost"],
        ("ghost", "no study"),
    ),
    (
        "study-file-missing",
        lambda tmp, study, run: ["study", str(tmp / "absent.toml")],
        ("absent.toml", "no such study file"),
    ),
    (
        "study-file-not-toml",
        lambda tmp, study, run: (tmp / "x.toml").write_text("name = [") and ["study", str(tmp / "x.toml")],
        ("x.toml", "not valid TOML"),
    ),
    ("builtin-name-typo", lambda tmp, study, run: ["study", "mons"], ("mons", "moons")),
    (
        "workers-zero",
        lambda tmp, study, run: ["study", str(study), "--workers", "0"],
        ("--workers", "greater than or equal to 1"),
    ),
    ("device-unknown", lambda tmp, study, run: ["study", str(study), "--device", "tpu"], ("--device", "tpu")),
]


@pytest.mark.parametrize("case", RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_a_bad_option_or_run_directory_exits_2_and_leaves_the_store_alone(tmp_path, capsys, enqueued, case) -> None:
    _, make_args, names = case
    study, run_dir = enqueued
    before = _store_state(run_dir, "tiny")
    run_json = (run_dir / "run.json").read_text()
    args = make_args(tmp_path, study, run_dir)
    capsys.readouterr()
    code = main(args)
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2, err
    for name in names:
        assert name in err, f"{name!r} not in {err!r}"
    assert "Traceback" not in err
    assert _store_state(run_dir, "tiny") == before
    if "run-json" not in case[0]:
        assert (run_dir / "run.json").read_text() == run_json


def test_a_run_directory_of_another_version_is_refused(tmp_path, capsys, enqueued) -> None:
    study, run_dir = enqueued
    Store(default_url(run_dir), "tiny").study.set_user_attr("schema_version", SCHEMA_VERSION + 1)
    before = _store_state(run_dir, "tiny")
    capsys.readouterr()
    assert main(["study", str(study), "--out", str(run_dir), "--quiet"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "another version of noisereg" in err and f"store schema {SCHEMA_VERSION + 1}" in err
    assert _store_state(run_dir, "tiny") == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_exits_2_before_any_store(tmp_path, capsys) -> None:
    study = write_study(tmp_path / "s.toml", small())
    assert main(["study", str(study), "--out", str(tmp_path / "run"), "--device", "cuda", "--quiet"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "device='cuda'" in err and "--device cpu" in err
    assert not (tmp_path / "run").exists()


def test_a_moved_run_directory_reads_its_own_store(tmp_path, enqueued, capsys) -> None:
    _, run_dir = enqueued
    assert json.loads((run_dir / "run.json").read_text()) == {"study": "tiny", "storage": "study.db"}
    moved = tmp_path / "moved"
    run_dir.rename(moved)
    capsys.readouterr()
    assert main(["report", str(moved), "--quiet"]) == 0  # no cell finished: an empty report, from moved/study.db
    assert (moved / "summary.json").is_file()


def test_the_battery_is_large_enough() -> None:
    ids = [c.id for c in STUDY_CASES] + [c[0] for c in RUN_CASES]
    assert len(ids) + 2 >= 60 and len(set(ids)) == len(ids)


# ---- generated study files ----------------------------------------------------------------------

_PATHS = [
    "seed",
    "seeds",
    "curve_points",
    "data.n_samples",
    "data.noise",
    "data.random_state",
    "data.source",
    "split.n_train",
    "split.kind",
    "model.widths",
    "model.family",
    "model.kind",
    "training.epochs",
    "training.batch_size",
    "training.eval_every",
    "arms.1.noise.std",
    "arms.1.noise.kind",
    "arms.1.noise.at",
    "arms.1.noise.where",
    "arms.1.noise.select",
    "arms.1.noise.site",
    "arms.1.noise.layers",
    "arms.1.name",
    "optimizer",
    "optimizer.lr",
    "data",
    "arms",
    "name",
    "metric",
]
_VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.booleans(),
    st.lists(st.one_of(st.integers(-5, 10**12), st.floats(allow_nan=True)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@st.composite
def study_dicts(draw: st.DrawFn) -> dict[str, Any]:
    raw = small()
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["set", "unknown-key", "drop"]))
        path = draw(st.sampled_from(_PATHS))
        try:
            if action == "set":
                raw = at(path, draw(_VALUES), raw)
            elif action == "unknown-key":
                parent = path.rsplit(".", 1)[0] if "." in path else ""
                raw = at(
                    f"{parent}.{draw(st.text(min_size=1, max_size=6))}"
                    if parent
                    else draw(st.text(min_size=1, max_size=6)),
                    1,
                    raw,
                )
            else:
                node: Any = raw
                keys = [int(k) if k.isdigit() else k for k in path.split(".")]
                for key in keys[:-1]:
                    node = node[key]
                del node[keys[-1]]
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation replaced the parent: this one does not apply
    return raw


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(study_dicts())
def test_parse_config_accepts_or_raises_study_config_error(raw) -> None:
    try:
        parse_config(raw)
    except StudyConfigError as exc:
        assert str(exc).strip()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(study_dicts())
def test_the_cli_never_shows_a_traceback(tmp_path_factory, raw) -> None:
    tmp = tmp_path_factory.mktemp("gen")
    study = write_study(tmp / "s.toml", raw)
    code = main(["study", str(study), "--out", str(tmp / "run"), "--no-train", "--quiet"])
    assert code in (0, 2)
    if code == 2:
        assert not (tmp / "run" / "study.db").exists()
