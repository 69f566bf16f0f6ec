"""Bad input to a study of the user's own model, as a new user would write it: run_model's arguments
and study files with ``model.factory``. Each is refused at the public boundary with a TypeError or
ValueError (a study file: a StudyConfigError and exit code 2) that names the argument or the key path
and the value, before anything is trained or stored."""

from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import TensorDataset

from noisereg import noise, study
from noisereg.cli import main
from noisereg.study import model_file
from noisereg.study.config import StudyConfigError, load_config
from noisereg.study.config.user import parse_user_config
from noisereg.study.run import lifecycle

X = torch.linspace(-2, 2, 48).reshape(24, 2)
Y = (X.sum(1) > 0).long()


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))


def _with(values: torch.Tensor, index: tuple[int, ...], value: float) -> torch.Tensor:
    out = values.clone().float()
    out[index] = value
    return out


ARMS = {"none": [], "input": [study.site(noise.Gaussian(std=0.1), at="input")]}
THREE = torch.arange(24) % 3
UNEVEN = torch.tensor([0] * 22 + [1] * 2)


def _step(model: nn.Module, batch: Any, optimizer: Any) -> None: ...


def _fit(model: nn.Module, data: Any, seed: int) -> dict[str, float]:
    return {}


@dataclass(frozen=True)
class Bad:
    id: str
    kwargs: dict[str, Any]
    error: type[Exception]
    names: tuple[str, ...]  # what the message must contain: the argument and the value received
    base: dict[str, Any] = field(default_factory=dict)


CASES = [
    Bad("epochs-zero", {"epochs": 0}, ValueError, ("epochs=0",)),
    Bad("epochs-float", {"epochs": 2.5}, TypeError, ("epochs=2.5",)),
    Bad("epochs-bool", {"epochs": True}, TypeError, ("epochs=True",)),
    Bad("batch-size-negative", {"batch_size": -1}, ValueError, ("batch_size=-1",)),
    Bad("seeds-zero", {"seeds": 0}, ValueError, ("seeds=0",)),
    Bad("seeds-str", {"seeds": "3"}, TypeError, ("seeds='3'",)),
    # a study file's bound: the plan lists every seed before anything is stored (2**40 used to exhaust memory)
    Bad("seeds-huge", {"seeds": 2**40}, ValueError, ("seeds=1099511627776", "<= 10000")),
    Bad("threads-huge", {"threads": 10**5}, ValueError, ("threads=100000", "<=")),
    Bad("workers-huge", {"workers": 10**5}, ValueError, ("workers=100000", "<= 1024")),
    Bad("seed-negative", {"seed": -1}, ValueError, ("seed=-1",)),
    Bad("workers-zero", {"workers": 0}, ValueError, ("workers=0",)),
    Bad("threads-float", {"threads": 1.0}, TypeError, ("threads=1.0",)),
    Bad("eval-every-zero", {"eval_every": 0}, ValueError, ("eval_every=0",)),
    Bad("folds-one", {"folds": 1}, ValueError, ("folds=1",)),
    Bad("folds-float", {"folds": 2.0}, TypeError, ("folds=2.0",)),
    Bad("folds-more-than-samples", {"folds": 30}, ValueError, ("folds=30", "24 samples")),
    Bad(
        "folds-more-than-a-class", {"data": (X, UNEVEN), "folds": 3}, ValueError, ("folds=3", "2 sample(s) of class 1")
    ),
    Bad("folds-none-one-set", {"folds": None}, ValueError, ("folds=None",)),
    Bad("folds-with-train-test", {"data": {"train": (X, Y), "test": (X, Y)}}, ValueError, ("folds=2", "'train'")),
    Bad("x-nan", {"data": (_with(X, (3, 0), math.nan), Y)}, ValueError, ("data", "x has NaN", "sample 3")),
    Bad("x-inf", {"data": (_with(X, (5, 1), math.inf), Y)}, ValueError, ("data", "infinite", "sample 5")),
    Bad(
        "y-nan-regression",
        {"data": (X, _with(X[:, 0], (7,), math.nan)), "loss": "mse", "model": lambda: nn.Linear(2, 1)},
        ValueError,
        ("data", "y has NaN", "sample 7"),
    ),
    Bad(
        "test-part-nan",
        {"data": {"train": (X, Y), "test": (_with(X, (0, 0), math.nan), Y)}, "folds": None},
        ValueError,
        ("data['test']", "NaN"),
    ),
    Bad(
        "tensor-dataset-nan",
        {"data": TensorDataset(_with(X, (2, 1), math.nan), Y)},
        ValueError,
        ("data", "tensors[0] has NaN", "sample 2"),
    ),
    Bad("single-class", {"data": (X, torch.zeros(24, dtype=torch.long))}, ValueError, ("data", "single class", "[0]")),
    Bad("data-str", {"data": "train.csv"}, TypeError, ("data", "str")),
    Bad("data-lengths", {"data": (X, Y[:5])}, ValueError, ("data", "24", "5")),
    Bad("data-dict-keys", {"data": {"train": (X, Y), "val": (X, Y)}, "folds": None}, ValueError, ("'val'",)),
    Bad("loss-unknown", {"loss": "hinge"}, ValueError, ("loss='hinge'",)),
    Bad("loss-int", {"loss": 3}, TypeError, ("loss=3",)),
    Bad("loss-bce-three-classes", {"data": (X, THREE)}, ValueError, ("loss='bce'", "[0, 1, 2]"), {"loss": "bce"}),
    Bad(
        "loss-ce-float-labels",
        {"data": (X, Y.float()), "task": "classification"},
        ValueError,
        ("loss='ce'", "float32"),
        {"loss": "ce"},
    ),
    Bad("optimizer-str", {"optimizer": "adam"}, TypeError, ("optimizer='adam'", "torch.optim.Optimizer")),
    Bad("step-str", {"step": "sgd"}, TypeError, ("step='sgd'",)),
    Bad("fit-int", {"fit": 3}, TypeError, ("fit=3",)),
    Bad("collate-str", {"collate": "stack"}, TypeError, ("collate='stack'",)),
    Bad("step-and-fit", {"step": _step, "fit": _fit}, ValueError, ("step=", "fit=")),
    Bad("clip-zero", {"clip_grad_norm": 0.0}, ValueError, ("clip_grad_norm=0.0",)),
    Bad("clip-str", {"clip_grad_norm": "1"}, TypeError, ("clip_grad_norm='1'",)),
    Bad("clip-nan", {"clip_grad_norm": math.nan}, ValueError, ("clip_grad_norm=nan",)),
    Bad("clip-with-fit", {"clip_grad_norm": 1.0, "fit": _fit}, ValueError, ("clip_grad_norm=1.0", "fit=")),
    Bad("dtype-str", {"dtype": "float32"}, TypeError, ("dtype='float32'", "torch.dtype")),
    Bad("dtype-int", {"dtype": torch.int64}, ValueError, ("dtype=torch.int64", "floating")),
    Bad("device-missing-cuda", {"device": "cuda:7"}, ValueError, ("device='cuda:7'",)),
    Bad("device-unknown", {"device": "tpu"}, ValueError, ("device='tpu'",)),
    Bad("device-int", {"device": 0}, TypeError, ("device=0",)),
    Bad("task-unknown", {"task": "classify"}, ValueError, ("task='classify'", "'regression'")),
    Bad("metric-unknown", {"metric": "f1"}, ValueError, ("metric='f1'",)),
    Bad("metric-misfit", {"metric": "r2"}, ValueError, ("metric='r2'", "classification")),
    Bad("metrics-shadow", {"metrics": {"acc": lambda o, y: 0.0}}, ValueError, ("metrics['acc']",)),
    Bad("metrics-list", {"metrics": ["f1"]}, TypeError, ("metrics=['f1']",)),
    Bad("model-int", {"model": 3}, TypeError, ("model", "int")),
    Bad("model-returns-int", {"model": lambda: 3}, TypeError, ("model()", "int")),
    Bad("arms-empty", {"arms": {}}, ValueError, ("arms={}",)),
    Bad("arms-none", {"arms": None}, TypeError, ("arms=None",)),
    Bad("arms-not-sites", {"arms": {"none": [], "x": [noise.Gaussian(std=0.1)]}}, TypeError, ("arms['x']", "Gaussian")),
    Bad("arms-no-baseline", {"arms": {"x": ARMS["input"]}}, ValueError, ("without noise", "['x']")),
    Bad("grid-unknown-arm", {"grid": {"nope": [0.1]}}, ValueError, ("grid", "'nope'")),
    Bad("grid-empty", {"grid": {"input": []}}, ValueError, ("grid['input']", "[]")),
    Bad("grid-negative", {"grid": {"input": [-0.1]}}, ValueError, ("Gaussian.std", "-0.1")),
    Bad(
        "site-selects-nothing",
        {"arms": {"none": [], "w": [study.site(noise.Gaussian(std=0.1), at="activations", select="fc9")]}},
        ValueError,
        ("arms['w'] site 0", "fc9"),
    ),
    Bad("model-too-few-outputs", {"data": (X, THREE)}, ValueError, ("loss='ce'", "[2, 2]", "3 outputs per sample")),
    Bad("model-wrong-features", {"model": lambda: nn.Linear(5, 2)}, ValueError, ("model", "[2, 2]", "RuntimeError")),
    Bad("loss-bce-two-outputs", {"data": (X, Y)}, ValueError, ("loss='bce'", "[2, 2]", "[2]"), {"loss": "bce"}),
    Bad("out-int", {"out": 3}, TypeError, ("out=3",)),
    Bad("name-int", {"name": 3}, TypeError, ("name=3",)),
    Bad("vectorize-str", {"vectorize": "yes"}, TypeError, ("vectorize='yes'",)),
    Bad("save-models-int", {"save_models": 1}, TypeError, ("save_models=1",)),
    Bad("storage-int", {"storage": 3}, TypeError, ("storage=3",)),
]


def _stored(out: Path) -> list[Path]:
    return sorted(out.rglob("*")) if out.exists() else []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_run_model_refuses_bad_input_before_anything_is_stored(tmp_path: Path, case: Bad) -> None:
    out = tmp_path / "run"
    settings: dict[str, Any] = dict(
        model=_net, data=(X, Y), folds=2, arms=ARMS, out=out, epochs=1, batch_size=6, seeds=1, threads=1
    )
    settings.update(case.base)
    settings.update(case.kwargs)
    with pytest.raises(case.error) as info:
        study.run_model(**settings)
    assert isinstance(info.value, case.error) and not isinstance(info.value, StudyConfigError)
    for name in case.names:
        assert name in str(info.value), f"{name!r} not in {str(info.value)!r}"
    assert _stored(out) == []


def test_the_battery_is_large_enough() -> None:
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


def test_a_cuda_index_this_machine_lacks_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"device='cuda:7': this machine has 2 CUDA device\(s\), 'cuda:0' to 'cuda:1'"):
        study.run_model(model=_net, data=(X, Y), folds=2, arms=ARMS, out=out, epochs=1, device="cuda:7")
    assert _stored(out) == []


MODULE = """
import torch
from torch import nn

def make_net(width=4, classes=2):
    return nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, classes))

def make_nothing():
    return "a model"

def load(n=24, classes=2, nan=False, one=False):
    x = torch.linspace(-2, 2, 2 * n).reshape(n, 2)
    if nan:
        x[4, 1] = float("nan")
    y = torch.zeros(n, dtype=torch.long) if one else torch.arange(n) % classes
    return x, y

def load_path():
    return "data/train.csv"
"""

FILE = """
name = "own"
seeds = 2
folds = 2
[model]
factory = "badnets:make_net"
[data]
loader = "badnets:load"
[training]
epochs = 1
batch_size = 6
[[arms]]
name = "none"
[[arms]]
name = "hidden"
noise = { kind = "gaussian", std = 0.1, at = "activations", select = "1", where = "before" }
"""


@dataclass(frozen=True)
class BadFile:
    id: str
    old: str
    new: str
    key: str  # the key path the error must name
    names: tuple[str, ...] = ()  # and what else the message must contain (the value)


FILE_CASES = [
    BadFile("epochs-zero", "epochs = 1", "epochs = 0", "training.epochs", ("0",)),
    BadFile("epochs-str", "epochs = 1", 'epochs = "ten"', "training.epochs", ("'ten'",)),
    BadFile("folds-one", "folds = 2", "folds = 1", "folds", ("1",)),
    BadFile("folds-more-than-samples", "folds = 2", "folds = 30", "folds", ("folds=30", "24 samples")),
    BadFile("seeds-zero", "seeds = 2", "seeds = 0", "seeds", ("0",)),
    BadFile("loader-returns-a-path", '"badnets:load"', '"badnets:load_path"', "data.loader", ("str",)),
    BadFile("loader-nan", '"badnets:load"', '"badnets:load"\nkwargs = { nan = true }', "data.loader", ("NaN",)),
    BadFile("loader-one-class", '"badnets:load"', '"badnets:load"\nkwargs = { one = true }', "data.loader", ("[0]",)),
    BadFile("factory-returns-a-str", '"badnets:make_net"', '"badnets:make_nothing"', "model.factory", ("str",)),
    BadFile("factory-no-colon", '"badnets:make_net"', '"badnets.make_net"', "model.factory", ("badnets.make_net",)),
    BadFile(
        "loss-bce-three-classes",
        'loader = "badnets:load"\n[training]\nepochs = 1\nbatch_size = 6',
        'loader = "badnets:load"\nkwargs = { classes = 3 }\n[training]\nepochs = 1\nbatch_size = 6\nloss = "bce"',
        "training.loss",
        ("loss='bce'", "[0, 1, 2]"),
    ),
    BadFile(
        "loss-bce-two-outputs",
        "batch_size = 6",
        'batch_size = 6\nloss = "bce"',
        "training.loss",
        ("loss='bce'", "[2, 2]"),
    ),
    BadFile(
        "last-layer-too-narrow",
        '"badnets:load"',
        '"badnets:load"\nkwargs = { classes = 3 }',
        "training.loss",
        ("3 outputs",),
    ),
    BadFile("loss-unknown", "batch_size = 6", 'batch_size = 6\nloss = "hinge"', "training.loss", ("hinge",)),
    BadFile("task-unknown", "batch_size = 6", 'batch_size = 6\ntask = "classify"', "training.task", ("classify",)),
    BadFile("metric-misfit", "seeds = 2", 'seeds = 2\nmetric = "r2"', "metric", ("r2",)),
    BadFile("site-selects-nothing", 'select = "1"', 'select = "relu"', "arms[1].noise[0]", ("relu",)),
    BadFile("site-negative-std", "std = 0.1", "std = -0.1", "arms[1].noise[0]", ("-0.1",)),
    BadFile("site-unknown-at", 'at = "activations"', 'at = "hidden"', "arms[1].noise.at", ("hidden",)),
    BadFile("optimizer-unknown", "[[arms]]", '[optimizer]\nname = "bfgs"\n[[arms]]', "optimizer.name", ("bfgs",)),
]


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "badnets.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("case", FILE_CASES, ids=[c.id for c in FILE_CASES])
def test_a_bad_study_file_names_its_key_and_stores_nothing(
    modules: Path, capsys: pytest.CaptureFixture[str], case: BadFile
) -> None:
    assert FILE.count(case.old) >= 1
    path = modules / "own.toml"
    path.write_text(textwrap.dedent(FILE.replace(case.old, case.new, 1)))
    out = modules / "run"
    with pytest.raises(StudyConfigError) as info:
        model_file.run_config(load_config(path), out, source=str(path))
    assert [key for key, _ in info.value.problems] == [case.key]
    for name in case.names:
        assert name in info.value.problems[0][1], f"{name!r} not in {info.value.problems[0][1]!r}"
    assert _stored(out) == []
    capsys.readouterr()
    assert main(["study", str(path), "--out", str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{case.key}:" in err and "Traceback" not in err
    assert _stored(out) == []


def test_the_file_battery_is_large_enough() -> None:
    assert len(FILE_CASES) >= 12 and len(CASES) + len(FILE_CASES) >= 60


# Hypothesis: a wrong type or value in any known key of a study file is always a StudyConfigError
# whose every problem names a key path of the file; never another exception, never a run.

RAW: dict[str, Any] = {
    "name": "own",
    "seeds": 2,
    "folds": 2,
    "model": {"factory": "badnets:make_net", "kwargs": {"width": 4}},
    "data": {"loader": "badnets:load", "kwargs": {"n": 24}},
    "training": {"epochs": 1, "batch_size": 6, "eval_every": 1, "loss": "auto", "task": "auto"},
    "optimizer": {"name": "adam", "lr": 0.001},
    "arms": [
        {"name": "none"},
        {"name": "hidden", "noise": {"kind": "gaussian", "std": 0.1, "at": "activations", "select": "1"}},
    ],
}
KEYS = [
    ("name",),
    ("seed",),
    ("seeds",),
    ("folds",),
    ("metric",),
    ("description",),
    ("model", "factory"),
    ("model", "kwargs", "width"),
    ("model", "kwargs", "classes"),
    ("data", "loader"),
    ("data", "kwargs", "n"),
    ("data", "kwargs", "classes"),
    ("training", "epochs"),
    ("training", "batch_size"),
    ("training", "eval_every"),
    ("training", "loss"),
    ("training", "task"),
    ("optimizer", "name"),
    ("optimizer", "lr"),
    ("arms", 1, "noise", "std"),
    ("arms", 1, "noise", "at"),
    ("arms", 1, "noise", "select"),
    ("arms", 1, "noise", "kind"),
    ("arms", 1, "grid"),
    ("arms", 0, "name"),
]
TOP = {"name", "seed", "seeds", "folds", "metric", "description", "model", "data", "training", "optimizer", "arms"}
VALUES = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.one_of(st.integers(-3, 3), st.floats(-1, 1), st.text(max_size=2)), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(-2, 2), max_size=2),
)


class _Accepted(Exception):
    """Raised where run_model would open the store: the file passed every check."""


def _set(raw: dict[str, Any], key: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    import copy

    out = copy.deepcopy(raw)
    node: Any = out
    for part in key[:-1]:
        node = node[part]
    node[key[-1]] = value
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(KEYS), value=VALUES)
def test_wrong_values_in_known_keys_are_named_by_key_path(
    modules: Path, monkeypatch: pytest.MonkeyPatch, key: tuple[str | int, ...], value: Any
) -> None:
    # a kwargs value goes to the user's own factory or loader, which builds what it is asked for: a
    # width of 2**27 allocates gigabytes there (the CI profile's derandomized examples drew one)
    assume(not ("kwargs" in key and isinstance(value, int) and abs(value) > 4096))

    def accepted(*args: object, **kwargs: object) -> None:
        raise _Accepted

    monkeypatch.setattr(lifecycle, "Store", accepted)  # the one place a study opens its store
    raw = _set(RAW, key, value)
    try:
        model_file.run_config(parse_user_config(raw), modules / "run")
    except _Accepted:
        return
    except StudyConfigError as exc:
        for path, message in exc.problems:
            head = re.split(r"[.\[]", path)[0]
            assert head in TOP, (key, value, exc.problems)
            assert message
    assert _stored(modules / "run") == []


# Hypothesis over run_model's own arguments: one argument of a good call replaced by an arbitrary
# value is accepted or refused with a TypeError/ValueError marked with an argument (what a study
# file's reader maps to its key), before anything is stored; never another exception.

ARGUMENTS = [
    "model",
    "data",
    "arms",
    "epochs",
    "loss",
    "optimizer",
    "batch_size",
    "seeds",
    "folds",
    "grid",
    "seed",
    "task",
    "metric",
    "metrics",
    "step",
    "fit",
    "collate",
    "clip_grad_norm",
    "eval_every",
    "workers",
    "threads",
    "name",
    "description",
    "dtype",
    "device",
    "save_models",
    "vectorize",
]
ANY_VALUE = st.one_of(
    st.none(),
    VALUES,
    st.sampled_from(
        [torch.int64, torch.float16, "cuda", "cuda:9", "cpu", "ce", "bce", "mse", (X, Y), (X, THREE), {}, []]
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argument=st.sampled_from(ARGUMENTS), value=ANY_VALUE)
def test_any_value_of_one_argument_is_accepted_or_refused_as_that_rule_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argument: str, value: Any
) -> None:
    def accepted(*args: object, **kwargs: object) -> None:
        raise _Accepted

    monkeypatch.setattr(lifecycle, "Store", accepted)  # the one place a study opens its store
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on any machine
    out = tmp_path / "run"
    settings: dict[str, Any] = dict(
        model=_net, data=(X, Y), folds=2, arms=ARMS, out=out, epochs=1, batch_size=6, seeds=1, threads=1
    )
    settings[argument] = value
    try:
        study.run_model(**settings)
    except _Accepted:
        return
    except (TypeError, ValueError) as exc:
        assert getattr(exc, "argument", None), (argument, value, exc)
        assert not isinstance(exc, StudyConfigError)
    assert _stored(out) == []
