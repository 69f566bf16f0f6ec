from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import noisereg
from noisereg import noise, schedules
from noisereg.layers import AlphaDropout, GaussianDropout, GaussianNoise, NoiseLayer, bind_clock, noise_enabled
from noisereg.seeding import noise_generator


def test_keras_gaussian_noise_train_only():
    layer = GaussianNoise(0.5, seed=0)
    x = torch.zeros(1000, 4)
    y = layer(x)
    assert y.std().item() == pytest.approx(0.5, rel=6 / math.sqrt(2 * 4000))
    layer.eval()
    assert layer(x) is x


def test_stddev_above_one_is_accepted():
    assert GaussianNoise(5.0)(torch.zeros(3)).abs().max() > 0


def test_keras_gaussian_dropout_equals_functional():
    x = torch.randn(5, 6)
    y = GaussianDropout(0.2, seed=3)(x)
    expected = noise.gaussian_dropout(x, 0.2, generator=noise_generator(3))
    assert torch.equal(y, expected)


def test_keras_alpha_dropout_noise_shape():
    rate = 0.5
    x = torch.randn(4, 3, 10, dtype=torch.float64)
    y = AlphaDropout(rate, noise_shape=(4, 3, 1), seed=0)(x)
    alpha_p = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946
    a = ((1 - rate) * (1 + rate * alpha_p**2)) ** -0.5
    b = -a * alpha_p * rate
    kept = torch.isclose(y, a * x + b).all(-1)
    dropped = torch.isclose(y, torch.full_like(y, a * alpha_p + b)).all(-1)
    assert bool((kept ^ dropped).all()) and bool(kept.any()) and bool(dropped.any())


@pytest.mark.parametrize("bad", [-0.1, 1.0, math.nan])
def test_keras_rate_validation(bad):
    with pytest.raises(ValueError, match="rate"):
        GaussianDropout(bad)
    with pytest.raises(ValueError, match="rate"):
        AlphaDropout(bad)


def test_stddev_validation():
    with pytest.raises(ValueError, match="stddev"):
        GaussianNoise(-1.0)


def test_generic_layer_needs_a_kind():
    with pytest.raises(TypeError, match="noise config"):
        NoiseLayer(0.1)


def test_extra_repr_shows_settings():
    text = repr(nn.Sequential(GaussianNoise(0.1, seed=4)))
    assert "Gaussian(std=0.1" in text and "seed=4" in text


def test_noise_enabled_forces_and_restores():
    model = nn.Sequential(GaussianNoise(0.3, seed=0), nn.Linear(3, 3)).eval()
    x = torch.randn(2, 3)
    clean = model(x)
    with noise_enabled(model, True) as layers:
        assert len(layers) == 1
        assert not torch.equal(model(x), clean)
    assert torch.equal(model(x), clean)
    model.train()
    with noise_enabled(model, False):
        assert torch.equal(model(x), clean)
    assert model[0].forced is None


def test_noise_enabled_restores_after_error():
    model = nn.Sequential(GaussianNoise(0.3)).eval()
    with pytest.raises(RuntimeError), noise_enabled(model, True):
        raise RuntimeError("boom")
    assert model[0].forced is None


def test_noise_enabled_without_noise_is_an_error():
    with pytest.raises(ValueError, match="no noise"):
        with noise_enabled(nn.Linear(2, 2), True):
            pass


def test_schedule_follows_own_steps_then_model_clock():
    layer = NoiseLayer(noise.Gaussian(std=schedules.Piecewise((2,), (0.0, 1.0))), seed=0)
    x = torch.zeros(4)
    assert layer(x) is x and layer(x) is x  # steps 0 and 1: zero strength
    assert not torch.equal(layer(x), x)  # step 2
    assert layer.applied == 1

    model = nn.Sequential(
        NoiseLayer(noise.Gaussian(std=schedules.Piecewise((1,), (0.0, 1.0)))),
        NoiseLayer(noise.Gaussian(std=schedules.Piecewise((1,), (0.0, 1.0)))),
    )
    clock = bind_clock(model)
    assert model(x) is x  # both layers see step 0 in the same forward
    assert clock.step == 1
    model.eval()
    model(x)
    assert clock.step == 1  # eval forwards do not advance the clock
    model.train()
    assert not torch.equal(model(x), x)


def test_manual_clock():
    model = nn.Sequential(NoiseLayer(noise.Gaussian(std=schedules.Piecewise((5,), (0.0, 1.0)))))
    clock = bind_clock(model, noisereg.Clock(auto=False))
    x = torch.zeros(3)
    for _ in range(10):
        assert model(x) is x
    clock.step = 5
    assert not torch.equal(model(x), x)
    noisereg.unbind_clock(model)
    assert model[0].clock is None


def test_layer_seed_stream_and_reseed():
    a, b = GaussianNoise(1.0, seed=11), GaussianNoise(1.0, seed=11)
    x = torch.zeros(5)
    assert torch.equal(a(x), b(x)) and torch.equal(a(x), b(x))
    first = GaussianNoise(1.0, seed=11)(x)
    a.reseed(11)
    assert torch.equal(a(x), first)
