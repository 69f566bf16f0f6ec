"""Study files of the user's own model: factory and loader by import path, arms in attach's vocabulary."""

from __future__ import annotations

import json
import re
import sqlite3
import textwrap
from pathlib import Path

import pytest

from noisereg.cli import main
from noisereg.study.config import StudyConfigError, UserStudyConfig, load_config

MODULE = """
import torch
from torch import nn

def make_net(width=4):
    return nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, 2))

def load(n=24):
    x = torch.linspace(-2, 2, 2 * n).reshape(n, 2)
    return x, (x.sum(1) > 0).long()

def broken():
    raise OSError("the data disk is gone")
"""

FILE = """
name = "own"
seeds = 2
folds = 2
[model]
factory = "ownnets:make_net"
kwargs = { width = 5 }
[data]
loader = "ownnets:load"
[training]
epochs = 1
batch_size = 6
[[arms]]
name = "none"
[[arms]]
name = "hidden"
noise = { kind = "gaussian", std = 0.1, at = "activations", select = "1", where = "before" }
grid = [0.1, 0.2]
"""


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "ownnets.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _write(folder: Path, text: str) -> Path:
    path = folder / "own.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_file_naming_a_factory_runs_to_a_report(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(files, FILE)
    assert isinstance(load_config(path), UserStudyConfig)
    assert main(["study", str(path), "--out", str(files / "run"), "--workers", "1"]) == 0
    summary = json.loads((files / "run" / "summary.json").read_text())
    assert [a["name"] for a in summary["arms"]] == ["none", "hidden[std=0.1]", "hidden[std=0.2]"]
    assert (files / "run" / "report.html").is_file()
    assert "hidden[std=0.2]" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (
            'factory = "ownnets:make_net"',
            'factory = "ownnets:make_nett"',
            r"model.factory: .*has no attribute 'make_nett'",
        ),
        (
            'factory = "ownnets:make_net"',
            'factory = "nosuchpkg:make_net"',
            r"model.factory: .*cannot import module 'nosuchpkg'",
        ),
        (
            'loader = "ownnets:load"',
            'loader = "ownnets:broken"',
            r"data.loader: calling it .*OSError: the data disk is gone",
        ),
        ("std = 0.1,", "sdt = 0.1,", r"arms\[1\].noise\[0\]: gaussian: .*sdt"),
        ('at = "activations"', 'at = "hidden"', r"arms\[1\].noise.at: must be one of"),
        ('select = "1"', 'select = "relu"', r"select='relu' matches no"),
    ],
)
def test_a_failing_import_call_or_site_names_its_key(
    files: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, match: str
) -> None:
    assert old in FILE
    path = _write(files, FILE.replace(old, new))
    assert main(["study", str(path), "--out", str(files / "run"), "--workers", "1"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert re.search(match, err), err


def test_the_file_is_checked_without_torch_objects() -> None:
    raw = {
        "name": "x",
        "model": {"factory": "a.b:c"},
        "data": {"loader": "a:b"},
        "training": {"epochs": 1},
        "arms": [{"name": "a", "noise": {"kind": "gaussian", "std": 0.1}}],
    }
    with pytest.raises(StudyConfigError, match="no arm without noise"):
        from noisereg.study.config.user import parse_user_config

        parse_user_config(raw)


def test_heartbeat_and_retry_reach_the_own_model_study_as_they_reach_a_built_in_one(
    files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from noisereg.study.store import Store

    opened: list[tuple[int, float]] = []
    real = Store.__init__

    def spied(self: Store, url: str, name: str, **options: object) -> None:
        if "heartbeat_interval" in options:  # the store that trains (the report's only reads)
            opened.append((options["heartbeat_interval"], options["retry_for"]))  # type: ignore[arg-type]
        real(self, url, name, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "__init__", spied)
    path = _write(files, FILE)
    args = ["study", str(path), "--out", str(files / "run"), "--workers", "1", "--heartbeat", "5", "--retry", "0"]
    assert main(args) == 0
    assert opened == [(5, 0.0)]


def test_no_train_enqueues_the_own_model_study_for_workers_and_trains_nothing(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from noisereg.study.store import Store, default_url

    path = _write(files, FILE)
    assert main(["study", str(path), "--out", str(files / "run"), "--no-train"]) == 0
    assert "own: 3 cells, 0 complete, 3 waiting." in capsys.readouterr().out
    with Store(default_url(files / "run"), "own") as store:
        assert store.unfinished() == {"none": "WAITING", "hidden[std=0.1]": "WAITING", "hidden[std=0.2]": "WAITING"}
        assert store.attrs()["config"]["study_file"]["model"]["factory"] == "ownnets:make_net"
    assert json.loads((files / "run" / "run.json").read_text()) == {"study": "own", "storage": "study.db"}
    assert not (files / "run" / "models").exists()


def test_the_device_option_reaches_the_own_model_study(
    files: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same refusal on any machine
    path = _write(files, FILE)
    assert main(["study", str(path), "--out", str(files / "run"), "--workers", "1", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: device='cuda':") and len(err.splitlines()) == 1, err
    assert not (files / "run").exists()


def test_optimizer_clip_grad_norm_clips_an_own_model_study_as_a_built_in_one(files: Path) -> None:
    # one key, one definition: [optimizer] clip_grad_norm reaches run_model and is stored with the study
    def trained(text: str, out: str) -> dict:
        assert main(["study", str(_write(files, text)), "--out", str(files / out), "--workers", "1", "-q"]) == 0
        return json.loads((files / out / "summary.json").read_text())

    clipped_file = FILE + "[optimizer]\nname = 'sgd'\nlr = 0.5\nclip_grad_norm = 0.01\n"
    clipped = trained(clipped_file, "clipped")
    free = trained(FILE + "[optimizer]\nname = 'sgd'\nlr = 0.5\n", "free")
    with sqlite3.connect(files / "clipped" / "study.db") as db:
        stored = [json.loads(v) for (v,) in db.execute("SELECT value_json FROM study_user_attributes")]
    assert any(isinstance(v, dict) and v.get("training", {}).get("clip_grad_norm") == 0.01 for v in stored)
    losses = [[a["loss"]["mean"] for a in s["arms"]] for s in (clipped, free)]
    assert losses[0] != losses[1]  # the clip acted (a step of lr 0.5 moves the weights by 0.005 at most)


def test_the_optimizer_table_builds_the_torch_optimizer_it_names(files: Path) -> None:
    import torch

    from noisereg.study.bridge.user_file import file_arguments

    text = FILE + "[optimizer]\nname = 'sgd'\nlr = 0.2\nmomentum = 0.9\nnesterov = true\nweight_decay = 0.01\n"
    optimizer = file_arguments(load_config(_write(files, text)))["optimizer"]([torch.zeros(2, requires_grad=True)])
    group = optimizer.param_groups[0]
    assert type(optimizer) is torch.optim.SGD
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (0.2, 0.9, True, 0.01)
