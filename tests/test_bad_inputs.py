"""Bad input to the Python API, as a new user would write it: each case a clear TypeError/ValueError
naming the argument (and the value received), raised before any work.

The rule (:mod:`noisereg._checks`): TypeError for a wrong type, ValueError for a wrong value, NaN and
infinity being values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import noisereg
from noisereg import noise, schedules
from noisereg._checks import check_int, check_real
from noisereg.layers import GaussianNoise, NoiseLayer
from noisereg.seeding import derive_seed, make_generator

NAN, INF = math.nan, math.inf


@dataclass(frozen=True)
class Bad:
    id: str
    call: Callable[[], object]
    error: type[Exception]
    names: tuple[str, ...]  # what the message must contain: the argument, the value received


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))


def _x() -> torch.Tensor:
    return torch.zeros(2, 3)


def _scheduled_call(step: int) -> object:
    kind = noise.Gaussian(std=lambda t: 0.1 - 0.05 * t)  # any callable: checked at the step
    return kind(_x(), step=step)


CASES = [
    # noise configs refuse a bad strength when made
    Bad("gaussian-negative-std", lambda: noise.Gaussian(std=-1.0), ValueError, ("Gaussian.std", "-1.0")),
    Bad("gaussian-nan-std", lambda: noise.Gaussian(std=NAN), ValueError, ("Gaussian.std", "nan")),
    Bad("gaussian-inf-std", lambda: noise.Gaussian(std=INF), ValueError, ("Gaussian.std", "inf")),
    Bad("gaussian-str-std", lambda: noise.Gaussian(std="0.1"), TypeError, ("Gaussian.std", "'0.1'")),
    Bad("gaussian-bool-std", lambda: noise.Gaussian(std=True), TypeError, ("Gaussian.std", "True")),
    Bad("gaussian-none-std", lambda: noise.Gaussian(std=None), TypeError, ("Gaussian.std", "None")),
    Bad("uniform-negative-std", lambda: noise.Uniform(std=-1.0), ValueError, ("Uniform.std", "-1.0")),
    Bad(
        "uniform-negative-half-width",
        lambda: noise.Uniform(half_width=-0.5),
        ValueError,
        ("Uniform.half_width", "-0.5"),
    ),
    Bad("uniform-both", lambda: noise.Uniform(half_width=0.5, std=0.1), ValueError, ("half_width=0.5", "std=0.1")),
    Bad(
        "multiplicative-negative",
        lambda: noise.MultiplicativeGaussian(std=-0.1),
        ValueError,
        ("MultiplicativeGaussian.std", "-0.1"),
    ),
    Bad(
        "dropout-rate-one",
        lambda: noise.GaussianDropoutNoise(rate=1.0),
        ValueError,
        ("GaussianDropoutNoise.rate", "1.0", "< 1"),
    ),
    Bad(
        "dropout-negative-rate",
        lambda: noise.GaussianDropoutNoise(rate=-0.1),
        ValueError,
        ("GaussianDropoutNoise.rate", "-0.1"),
    ),
    Bad("alpha-dropout-rate", lambda: noise.AlphaDropoutNoise(rate=1.5), ValueError, ("AlphaDropoutNoise.rate", "1.5")),
    Bad("impulse-amount", lambda: noise.Impulse(amount=1.5), ValueError, ("Impulse.amount", "1.5", "<= 1")),
    Bad("shot-zero-scale", lambda: noise.Shot(scale=0.0), ValueError, ("Shot.scale", "0.0", "> 0")),
    Bad("shot-negative-scale", lambda: noise.Shot(scale=-1), ValueError, ("Shot.scale", "-1")),
    Bad("snr-nan", lambda: noise.SNRGaussian(snr_db=NAN), ValueError, ("SNRGaussian.snr_db", "nan")),
    Bad("colored-negative", lambda: noise.Colored(std=-1.0), ValueError, ("Colored.std", "-1.0")),
    Bad("spatial-inf", lambda: noise.Spatial(std=INF), ValueError, ("Spatial.std", "inf")),
    Bad(
        "label-smoothing-above-one",
        lambda: noisereg.sites.LabelSmoothing(epsilon=1.5),
        ValueError,
        ("LabelSmoothing.epsilon", "1.5"),
    ),
    Bad("neftune-negative", lambda: noisereg.sites.NEFTune(alpha=-5.0), ValueError, ("NEFTune.alpha", "-5.0")),
    Bad("mixup-nan", lambda: noisereg.sites.Mixup(alpha=NAN), ValueError, ("Mixup.alpha", "nan")),
    # schedules: checked by their range when the config is made, or at the step
    Bad(
        "linear-goes-negative",
        lambda: noise.Gaussian(std=schedules.Linear(1.0, -1.0, 10)),
        ValueError,
        ("Gaussian.std", "Linear", "-1.0"),
    ),
    Bad(
        "constant-dropout-one",
        lambda: noise.GaussianDropoutNoise(rate=schedules.Constant(1.0)),
        ValueError,
        ("GaussianDropoutNoise.rate", "1.0"),
    ),
    Bad(
        "piecewise-negative",
        lambda: noise.Gaussian(std=schedules.Piecewise((5,), (0.1, -0.1))),
        ValueError,
        ("Gaussian.std", "-0.1"),
    ),
    Bad(
        "warmup-negative",
        lambda: noise.Gaussian(std=schedules.WarmUp(-0.5, delay=3)),
        ValueError,
        ("Gaussian.std", "-0.5"),
    ),
    Bad(
        "product-negative",
        lambda: noise.Gaussian(std=schedules.Product((schedules.Constant(-1.0), schedules.Annealed(0.3)))),
        ValueError,
        ("Gaussian.std", "-"),
    ),
    Bad("callable-negative-at-step", lambda: _scheduled_call(3), ValueError, ("Gaussian.std", "step 3", "-0.05")),
    Bad("linear-nan-start", lambda: schedules.Linear(NAN, 0.0, 10), ValueError, ("start", "nan")),
    Bad("linear-zero-steps", lambda: schedules.Linear(0.0, 1.0, 0), ValueError, ("steps", "0")),
    Bad("linear-float-steps", lambda: schedules.Linear(0.0, 1.0, 2.5), TypeError, ("steps", "2.5")),
    Bad("exponential-rate", lambda: schedules.ExponentialDecay(1.0, 2.0), ValueError, ("rate", "2.0")),
    Bad("annealed-negative-eta", lambda: schedules.Annealed(eta=-1.0), ValueError, ("eta", "-1.0")),
    Bad("clock-negative-step", lambda: schedules.Clock(-1), ValueError, ("step", "-1")),
    # layers
    Bad("layer-negative-std", lambda: NoiseLayer(noise.Gaussian(std=-1.0)), ValueError, ("Gaussian.std", "-1.0")),
    Bad("layer-kind-str", lambda: NoiseLayer("gaussian"), TypeError, ("kind", "str")),
    Bad("layer-negative-seed", lambda: NoiseLayer(noise.Gaussian(), seed=-1), ValueError, ("seed", "-1")),
    Bad("layer-seed-2-64", lambda: NoiseLayer(noise.Gaussian(), seed=2**64), ValueError, ("seed", str(2**64))),
    Bad("layer-float-seed", lambda: NoiseLayer(noise.Gaussian(), seed=1.5), TypeError, ("seed", "1.5")),
    Bad("keras-layer-negative", lambda: GaussianNoise(stddev=-1.0), ValueError, ("stddev", "-1.0")),
    # attach
    Bad(
        "attach-negative-std",
        lambda: noisereg.attach(_model(), noise.Gaussian(std=-1.0), at="input"),
        ValueError,
        ("Gaussian.std", "-1.0"),
    ),
    Bad(
        "attach-select-int",
        lambda: noisereg.attach(_model(), noise.Gaussian(std=0.1), at="activations", select=3),
        TypeError,
        ("select=3", "int"),
    ),
    Bad(
        "attach-seed-2-64",
        lambda: noisereg.attach(_model(), noise.Gaussian(std=0.1), at="input", seed=2**64),
        ValueError,
        ("seed", str(2**64)),
    ),
    Bad(
        "attach-negative-seed",
        lambda: noisereg.attach(_model(), noise.Gaussian(std=0.1), at="input", seed=-3),
        ValueError,
        ("seed", "-3"),
    ),
    Bad("attach-noise-str", lambda: noisereg.attach(_model(), "gaussian", at="input"), TypeError, ("noise", "str")),
    Bad(
        "attach-select-no-match",
        lambda: noisereg.attach(_model(), noise.Gaussian(std=0.1), at="activations", select="fc9"),
        ValueError,
        ("select", "fc9"),
    ),
    Bad(
        "attach-select-empty",
        lambda: noisereg.attach(_model(), noise.Gaussian(std=0.1), at="activations", select=[]),
        ValueError,
        ("select", "[]"),
    ),
    # the pure functions
    Bad("gaussian-fn-negative", lambda: noise.gaussian(_x(), -1.0), ValueError, ("std", "-1.0")),
    Bad(
        "gaussian-fn-int-input",
        lambda: noise.gaussian(torch.zeros(3, dtype=torch.long), 0.1),
        TypeError,
        ("x", "int64"),
    ),
    Bad(
        "gaussian-fn-tensor-negative",
        lambda: noise.gaussian(_x(), torch.tensor([0.1, -0.1])),
        ValueError,
        ("std", "-0.1"),
    ),
    Bad("gaussian-fn-tensor-shape", lambda: noise.gaussian(_x(), torch.ones(5)), ValueError, ("std", "[5]")),
    Bad(
        "gaussian-fn-clip-reversed",
        lambda: noise.gaussian(_x(), 0.1, clip=(1.0, 0.0)),
        ValueError,
        ("clip", "(1.0, 0.0)"),
    ),
    Bad(
        "gaussian-fn-mask-float", lambda: noise.gaussian(_x(), 0.1, mask=torch.ones(3)), TypeError, ("mask", "float32")
    ),
    Bad("impulse-fn-salt", lambda: noise.impulse(_x(), 0.1, salt_vs_pepper=2.0), ValueError, ("salt_vs_pepper", "2.0")),
    Bad("colored-fn-beta-nan", lambda: noise.colored(_x(), 0.1, beta=NAN), ValueError, ("beta", "nan")),
    Bad("gaussian-fn-generator", lambda: noise.gaussian(_x(), 0.1, generator=0), TypeError, ("generator", "int")),
    # seeds
    Bad("derive-seed-2-64", lambda: derive_seed(2**64), ValueError, ("seed", str(2**64))),
    Bad("derive-seed-negative", lambda: derive_seed(-1), ValueError, ("seed", "-1")),
    Bad("derive-seed-str", lambda: derive_seed("0"), TypeError, ("seed", "'0'")),
    Bad("make-generator-2-64", lambda: make_generator(2**64), ValueError, ("seed", str(2**64))),
    Bad("derive-seed-key-float", lambda: derive_seed(0, 1.5), TypeError, ("key", "1.5")),
    # checks routed through noisereg._checks: a wrong type is a TypeError, a wrong value a ValueError
    Bad("gaussian-dropout-rate-str", lambda: noisereg.GaussianDropout("0.1"), TypeError, ("rate", "'0.1'", "str")),
    Bad("gaussian-dropout-rate-one", lambda: noisereg.GaussianDropout(1.0), ValueError, ("rate", "1.0", "< 1")),
    Bad("noise-enabled-str", lambda: _enter(noisereg.noise_enabled(_noisy(), "yes")), TypeError, ("enabled", "'yes'")),
    Bad("reliability-bins-float", lambda: _reliability(n_bins=2.0), TypeError, ("n_bins", "2.0", "float")),
    Bad("reliability-bins-zero", lambda: _reliability(n_bins=0), ValueError, ("n_bins", "0", ">= 1")),
    Bad("reliability-logits-str", lambda: _reliability(from_logits="yes"), TypeError, ("from_logits", "'yes'")),
    Bad("corrupt-severity-float", lambda: _corrupt(2.0), TypeError, ("severity", "2.0", "float")),
    Bad("corrupt-severity-six", lambda: _corrupt(6), ValueError, ("severity", "6", "<= 5")),
    Bad(
        "denoising-item-str",
        lambda: noisereg.sites.DenoisingDataset([], noise.Gaussian(std=0.1), item="0"),
        TypeError,
        ("item", "'0'", "str"),
    ),
    Bad("noisy-linear-width-float", lambda: noisereg.sites.NoisyLinear(2.0, 3), TypeError, ("in_features", "2.0")),
    Bad("noisy-linear-sigma0-str", lambda: noisereg.sites.NoisyLinear(2, 3, sigma0="big"), TypeError, ("sigma0",)),
    Bad(
        "noisy-linear-sigma0-zero", lambda: noisereg.sites.NoisyLinear(2, 3, sigma0=0.0), ValueError, ("sigma0", "> 0")
    ),
    Bad("noisy-hard-alpha-str", lambda: noisereg.sites.NoisyHardTanh(alpha="1.2"), TypeError, ("alpha", "'1.2'")),
    Bad(
        "noisy-hard-features-float",
        lambda: noisereg.sites.NoisyHardTanh(num_features=3.0),
        TypeError,
        ("num_features",),
    ),
]


def _noisy() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 3), GaussianNoise(0.1, seed=0))


def _enter(context: object) -> None:
    with context:  # type: ignore[attr-defined]
        pass


def _reliability(**kwargs: object) -> object:
    from noisereg.metrics import reliability

    return reliability(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), **{"from_logits": True, **kwargs})


def _corrupt(severity: object) -> object:
    from noisereg.robustness import corrupt

    return corrupt(torch.zeros(2, 1, 4, 4), "gaussian", severity, constants="cifar10")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_raises_a_clear_error(case: Bad) -> None:
    with pytest.raises(case.error) as info:
        case.call()
    assert type(info.value) is case.error  # not a subclass such as pydantic's or numpy's
    for name in case.names:
        assert name in str(info.value), f"{name!r} not in {str(info.value)!r}"


def test_the_battery_is_large_enough() -> None:
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


def test_a_negative_std_never_reaches_a_model() -> None:
    model = _model()
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ValueError):
        noisereg.attach(model, noise.Gaussian(std=-1.0), at="input")
    assert noisereg.describe(model) == noisereg.describe(_model())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


KINDS = [
    (noise.Gaussian, noise.gaussian),
    (noise.MultiplicativeGaussian, noise.multiplicative_gaussian),
    (noise.GaussianDropoutNoise, noise.gaussian_dropout),
    (noise.AlphaDropoutNoise, noise.alpha_dropout),
    (noise.Impulse, noise.impulse),
    (noise.Shot, noise.shot),
    (noise.SNRGaussian, noise.snr_gaussian),
    (noise.Colored, noise.colored),
    (noise.Spatial, noise.spatial),
]


def _outcome(call: Callable[[], object]) -> type[Exception] | None:
    try:
        call()
    except (TypeError, ValueError) as exc:
        return type(exc)
    return None


STRENGTHS = [-INF, -1e300, -1.0, -0.0, 0.0, 1e-300, 0.5, 1.0, 2.0, 6166.0, 1e300, INF, NAN]


@pytest.mark.parametrize("config, function", KINDS, ids=[k.__name__ for k, _ in KINDS])
def test_a_config_refuses_exactly_the_strengths_its_function_refuses(config, function) -> None:
    x = torch.full((2, 4, 4), 0.5)
    for value in STRENGTHS:
        if config is noise.SNRGaussian and value == -1e300:
            continue  # a finite strength the function refuses only for its overflow (tested below)
        made = _outcome(lambda: config(**{config.strength_field: value}))
        called = _outcome(lambda: function(x, value))
        assert made == called, (value, made, called)


def test_an_snr_too_low_for_a_float_is_refused_not_overflowed() -> None:
    with pytest.raises(ValueError, match="snr_db=-1e\\+300 is so low"):
        noise.snr_gaussian(torch.ones(2, 3), -1e300)
    assert torch.isfinite(noise.snr_gaussian(torch.ones(2, 3), 6166.0)).all()


@given(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.booleans(), st.text(max_size=3), st.none()
    )
)
def test_check_real_follows_the_rule(value) -> None:
    try:
        out = check_real(value, "v", low=0.0)
    except TypeError:
        assert isinstance(value, (bool, str, type(None)))
    except ValueError as exc:
        assert "v=" in str(exc) and (math.isnan(value) or math.isinf(value) or value < 0)
    else:
        assert math.isfinite(out) and out >= 0 and out == value


@given(st.one_of(st.integers(), st.floats(allow_nan=True), st.booleans()))
def test_check_int_follows_the_rule(value) -> None:
    try:
        out = check_int(value, "n", low=0, high=2**64 - 1)
    except TypeError:
        assert isinstance(value, (bool, float))
    except ValueError:
        assert not 0 <= value <= 2**64 - 1
    else:
        assert out == value and type(out) is int
