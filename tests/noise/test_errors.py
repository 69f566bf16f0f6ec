"""Bad input is refused at the public boundary with a message naming the argument."""

from __future__ import annotations

import math

import pytest
import torch

from noisereg import noise

X = torch.zeros(4, 8)


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    "fn,name",
    [
        (noise.gaussian, "std"),
        (noise.uniform, "half_width"),
        (noise.multiplicative_gaussian, "std"),
        (noise.colored, "std"),
        (noise.spatial, "std"),
    ],
)
def test_bad_std(fn, name, bad):
    with pytest.raises(ValueError, match=name):
        fn(X, bad)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, math.nan])
@pytest.mark.parametrize("fn", [noise.gaussian_dropout, noise.alpha_dropout])
def test_rate_outside_unit_interval(fn, bad):
    with pytest.raises(ValueError, match="rate"):
        fn(X, bad)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan])
def test_shot_scale_must_be_positive(bad):
    with pytest.raises(ValueError, match="scale"):
        noise.shot(X, bad)


def test_shot_refuses_negative_input():
    with pytest.raises(ValueError, match="x must be >= 0"):
        noise.shot(-torch.ones(3, 3), 10.0)


@pytest.mark.parametrize("bad", [math.nan, -math.inf])
def test_snr_refuses_nan_and_minus_inf(bad):
    with pytest.raises(ValueError, match="snr_db"):
        noise.snr_gaussian(X, bad)


def test_impulse_amount_and_ratio():
    with pytest.raises(ValueError, match="amount"):
        noise.impulse(X, 1.5)
    with pytest.raises(ValueError, match="salt_vs_pepper"):
        noise.impulse(X, 0.1, salt_vs_pepper=2.0)


def test_per_sample_strength_is_checked():
    with pytest.raises(ValueError, match="std"):
        noise.gaussian(X, torch.tensor([0.1, -0.2, 0.1, 0.1]))
    with pytest.raises(ValueError, match=r"shape \[batch\]"):
        noise.gaussian(X, torch.ones(3))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_integer_inputs_point_to_embedding_noise(dtype):
    with pytest.raises(TypeError, match="embedding"):
        noise.gaussian(torch.zeros(2, 3, dtype=dtype), 0.1)


def test_strength_type():
    with pytest.raises(TypeError, match="std"):
        noise.gaussian(X, "0.1")
    with pytest.raises(TypeError, match="std"):
        noise.gaussian(X, True)


def test_mask_checks():
    with pytest.raises(ValueError, match="does not broadcast"):
        noise.gaussian(X, 0.1, mask=torch.zeros(3, 8, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        noise.gaussian(X, 0.1, mask=torch.zeros(4, 8))
    with pytest.raises(ValueError, match="enlarge"):
        noise.gaussian(X, 0.1, mask=torch.zeros(2, 4, 8, dtype=torch.bool))


def test_clip_checks():
    with pytest.raises(ValueError, match="low <= high"):
        noise.gaussian(X, 0.1, clip=(1.0, 0.0))
    with pytest.raises(TypeError, match="clip"):
        noise.gaussian(X, 0.1, clip=1.0)


def test_generator_on_wrong_device_or_type():
    with pytest.raises(TypeError, match="generator"):
        noise.gaussian(X, 0.1, generator=0)


def test_batch_dimension_required():
    with pytest.raises(ValueError, match="unsqueeze"):
        noise.snr_gaussian(torch.zeros(16), 10.0)


def test_unknown_option_is_a_type_error():
    with pytest.raises(TypeError, match="sdt"):
        noise.Gaussian(sdt=0.1)
    with pytest.raises(TypeError, match="sigma"):
        noise.gaussian(X, 0.1, sigma=0.2)


def test_uniform_takes_one_parametrization():
    with pytest.raises(ValueError, match="exactly one"):
        noise.Uniform(half_width=0.1, std=0.1)
    with pytest.raises(ValueError, match="exactly one"):
        noise.Uniform()


def test_alpha_dropout_noise_shape_must_broadcast():
    with pytest.raises(ValueError, match="noise_shape"):
        noise.alpha_dropout(X, 0.1, noise_shape=(3, 8))
