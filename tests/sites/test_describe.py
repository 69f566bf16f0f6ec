import pytest
import torch
from torch import nn

from noisereg.layers import GaussianNoise, bind_clock, noise_enabled
from noisereg.noise import Gaussian
from noisereg.schedules import Linear
from noisereg.sites import LabelFlip, LabelSmoothing, Mixup, attach, describe

from .models import mlp

X = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))


def test_describe_lists_places_strengths_counts_and_states():
    model = nn.Sequential(GaussianNoise(0.2), *mlp())
    assert [(e.site, e.where, e.applied) for e in describe(model)] == [("module", "'0'", 0)]
    attach(model, Gaussian(std=Linear(0.0, 1.0, steps=10)), at="activations", select="2", seed=0)
    attach(model, Gaussian(0.05), at="weights", select="1.weight")
    for _ in range(3):
        model(X)
    entries = describe(model)
    assert [(e.site, e.where) for e in entries] == [
        ("module", "'0'"),
        ("weights", "weight '1.weight'"),
        ("activations", "after '2'"),
    ]
    assert [e.applied for e in entries] == [3, 3, 2]  # the schedule is at 0 on the first step
    assert entries[2].strength == pytest.approx(0.3) and entries[2].step == 3
    assert {e.state for e in entries} == {"on (training)"}
    model.eval()
    assert {e.state for e in describe(model)} == {"off (eval)"}
    with noise_enabled(model, True):
        assert {e.state for e in describe(model)} == {"forced on (noise_enabled)"}
    table = str(describe(model))
    assert table.splitlines()[0].split() == ["site", "where", "noise", "strength", "step", "applied", "state"]
    assert "after '2'" in table and len(table.splitlines()) == 4
    assert str(describe(mlp())) == "no noise attached"


def test_bound_clock_drives_attached_schedules():
    model = mlp()
    attach(model, Gaussian(std=Linear(0.0, 1.0, steps=4)), at="activations", select="1")
    clock = bind_clock(model)
    model(X)
    model(X)
    assert clock.step == 2 and describe(model)[0].strength == pytest.approx(0.5)


def test_target_noise_through_attach_follows_the_models_mode():
    model = mlp()
    y = torch.tensor([0, 1, 1, 0])
    smooth = attach(model, LabelSmoothing(0.2, num_classes=2), at="targets")
    flip = attach(model, LabelFlip(1.0, num_classes=2), at="targets", seed=0)
    mix = attach(model, Mixup(0.4, num_classes=2), at="targets", seed=0)
    assert torch.allclose(smooth(y).sum(-1), torch.ones(4))
    assert torch.equal(flip(y), 1 - y)
    mixed_x, mixed_y = mix(X, y)
    assert mixed_y.shape == (4, 2) and not torch.equal(mixed_x, X)
    model.eval()
    assert smooth(y) is y and flip(y) is y and mix(X, y) == (X, y)
    assert [e.applied for e in describe(model)] == [1, 1, 1]
    with pytest.raises(TypeError, match=r"handle\(x, y\)"):
        mix(y)
    with pytest.raises(ValueError, match="already attached targets"):
        attach(model, LabelSmoothing(0.1, num_classes=2), at="targets")
    smooth.remove()
    with pytest.raises(ValueError, match="removed"):
        smooth(y)
