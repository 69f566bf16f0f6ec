"""Noise state in checkpoints: a resumed run continues the noise, it does not replay it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from noisereg import attach
from noisereg.layers import GaussianNoise
from noisereg.noise import Gaussian
from noisereg.schedules import Clock
from tests.sites.models import mlp

ROOT = Path(__file__).resolve().parents[2]


def _run(start: int, stop: int, folder: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    subprocess.run(
        [sys.executable, "-m", "tests.sites.checkpoint_run", str(start), str(stop), str(folder)],
        check=True,
        cwd=ROOT,
        env=env,
    )
    return torch.load(folder / "final.pt", weights_only=True)


def test_resumed_in_a_fresh_process_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir()
    parts.mkdir()
    uninterrupted = _run(0, 12, whole)
    _run(0, 5, parts)
    resumed = _run(5, 12, parts)
    assert resumed["applied"] == uninterrupted["applied"]
    for a, b in zip(resumed["parameters"], uninterrupted["parameters"], strict=True):
        assert torch.equal(a, b)


def test_a_layer_resumes_its_step_count_and_stream() -> None:
    layer, copy = GaussianNoise(0.5, seed=3), GaussianNoise(0.5, seed=3)
    x = torch.zeros(4, 3)
    layer(x)
    copy.load_state_dict(layer.state_dict())
    assert (copy.step, copy.applied) == (layer.step, layer.applied) == (1, 1)
    assert torch.equal(copy(x), layer(x))


def test_a_bound_clock_takes_the_saved_step() -> None:
    model, fresh = nn.Sequential(GaussianNoise(0.1, seed=0)), nn.Sequential(GaussianNoise(0.1, seed=0))
    clock = Clock(7)
    model[0].clock = clock
    other = fresh[0].clock = Clock()
    fresh.load_state_dict(model.state_dict())
    assert other.step == 7
    assert Clock(3).state_dict() == {"step": 3}


def test_checkpoints_without_noise_state_fail_strictly_and_load_otherwise() -> None:
    clean = nn.Sequential(nn.Linear(2, 2))
    noisy = nn.Sequential(nn.Linear(2, 2), GaussianNoise(0.1, seed=0))
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*1\._extra_state"):
        noisy.load_state_dict(clean.state_dict())
    noisy.load_state_dict(clean.state_dict(), strict=False)
    with pytest.raises(RuntimeError, match=r"Unexpected key\(s\).*1\._extra_state"):
        clean.load_state_dict(noisy.state_dict())


def test_attached_noise_keeps_the_models_state_dict_clean_and_checks_the_handles_state() -> None:
    model = mlp()
    before = list(model.state_dict())
    handles = [
        attach(model, Gaussian(0.1), at="weights", seed=0),
        attach(model, Gaussian(0.1), at="activations", select=nn.ReLU, seed=1),
    ]
    model.train()(torch.zeros(2, 3))
    assert list(model.state_dict()) == before
    model.load_state_dict(mlp(1).state_dict())
    state = handles[0].state_dict()
    assert [p["where"] for p in state["places"]] == handles[0].places
    with pytest.raises(ValueError, match="activations noise at"):
        handles[0].load_state_dict(handles[1].state_dict())
    with pytest.raises(ValueError, match="'site' and 'places'"):
        handles[0].load_state_dict({})
    handles[0].load_state_dict(state)
    for handle in handles:
        handle.remove()
    assert list(model.state_dict()) == before


def test_bad_layer_state_is_refused() -> None:
    layer = GaussianNoise(0.1, seed=0)
    with pytest.raises(ValueError, match="keys"):
        layer.set_extra_state({"step": 1})
    with pytest.raises(ValueError, match="step=-1"):
        layer.set_extra_state({"step": -1, "applied": 0, "seed": 0, "streams": {}})
