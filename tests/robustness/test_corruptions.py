import math

import pytest
import torch

import noisereg.robustness as robustness
from noisereg.robustness import (
    CORRUPTIONS,
    SEVERITY_CONSTANTS,
    corrupt,
    corruption_strength,
)

# Hendrycks & Dietterich 2019, as MISSION.md gives them; written out again here on purpose.
PAPER = {
    "imagenet": {
        "gaussian": (0.08, 0.12, 0.18, 0.26, 0.38),
        "shot": (60, 25, 12, 5, 3),
        "impulse": (0.03, 0.06, 0.09, 0.17, 0.27),
        "speckle": (0.15, 0.2, 0.35, 0.45, 0.6),
    },
    "cifar10": {
        "gaussian": (0.04, 0.06, 0.08, 0.09, 0.10),
        "shot": (500, 250, 100, 75, 50),
        "impulse": (0.01, 0.02, 0.03, 0.05, 0.07),
        "speckle": (0.06, 0.1, 0.12, 0.16, 0.2),
    },
}


def _images(n=64, seed=0):
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_public_surface_imports():
    for name in robustness.__all__:
        assert getattr(robustness, name) is not None


@pytest.mark.parametrize("constants", ["imagenet", "cifar10"])
def test_image_constants_are_the_papers(constants):
    for corruption, levels in PAPER[constants].items():
        assert SEVERITY_CONSTANTS[constants][corruption] == levels
        for severity, c in enumerate(levels, start=1):
            assert corruption_strength(corruption, severity, constants=constants) == c


@pytest.mark.parametrize("constants", ["imagenet", "cifar10"])
@pytest.mark.parametrize("severity", [1, 5])
def test_image_formulas_with_the_same_generator(constants, severity):
    x = _images()
    table = PAPER[constants]

    def check(corruption, expected):
        got = corrupt(x, corruption, severity, constants=constants, generator=_g())
        torch.testing.assert_close(got, expected.clamp(0, 1))

    c = table["gaussian"][severity - 1]
    check("gaussian", x + c * torch.randn(x.shape, generator=_g()))
    # Uniform noise has the Gaussian's standard deviation: half-width c·√3.
    check("uniform", x + (2 * torch.rand(x.shape, generator=_g()) - 1) * c * math.sqrt(3))
    c = table["speckle"][severity - 1]
    check("speckle", x + x * c * torch.randn(x.shape, generator=_g()))
    c = table["shot"][severity - 1]
    check("shot", torch.poisson(x * c, generator=_g()) / c)


def test_impulse_replaces_the_stated_share_with_zeros_and_ones():
    x = _images(n=200) * 0.5 + 0.25  # never exactly 0 or 1 before the noise
    amount = PAPER["imagenet"]["impulse"][4]
    y = corrupt(x, "impulse", 5, constants="imagenet", generator=_g())
    replaced = y != x
    assert bool(((y[replaced] == 0) | (y[replaced] == 1)).all())
    n = x.numel()
    share = replaced.double().mean().item()
    assert abs(share - amount) < 6 * math.sqrt(amount * (1 - amount) / n)
    salt = (y[replaced] == 1).double().mean().item()
    assert abs(salt - 0.5) < 6 * math.sqrt(0.25 / int(replaced.sum()))


def test_snr_levels_set_the_noise_power_per_sample():
    # Tabular data, no clipping: the noise rms of each sample is its signal rms / 10^(dB/20).
    x = torch.randn(4, 20_000, generator=_g(1)) * torch.tensor([[0.5], [1.0], [2.0], [4.0]])
    for severity, db in enumerate((20.0, 15.0, 10.0, 5.0, 0.0), start=1):
        noise = corrupt(x, "snr_gaussian", severity, constants="tabular", generator=_g(severity)) - x
        want = x.square().mean(dim=1).sqrt() / 10 ** (db / 20)
        got = noise.square().mean(dim=1).sqrt()
        # rms of 20,000 normal draws: relative standard error 1/sqrt(2·20,000).
        assert torch.all((got / want - 1).abs() < 6 / math.sqrt(2 * 20_000))


def test_tabular_levels_are_multiples_of_the_feature_scale():
    x = torch.randn(50, 6, generator=_g(2)) * 2.0
    for severity, k in enumerate((0.1, 0.25, 0.5, 0.75, 1.0), start=1):
        y = corrupt(x, "gaussian", severity, constants="tabular", scale=2.0, generator=_g())
        torch.testing.assert_close(y, x + 2.0 * k * torch.randn(x.shape, generator=_g()))
        y = corrupt(x, "speckle", severity, constants="tabular", scale=2.0, generator=_g())
        torch.testing.assert_close(y, x + x * k * torch.randn(x.shape, generator=_g()))
    assert corruption_strength("uniform", 3, constants="tabular") == 0.5
    y = corrupt(x, "impulse", 5, constants="tabular", scale=2.0, generator=_g())
    changed = y[y != x]
    assert changed.numel() > 0 and bool((changed.abs() == 6.0).all())  # ±3 scales


def test_image_constants_refuse_data_outside_unit_range():
    x = _images()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        corrupt(x * 255, "gaussian", 1, constants="cifar10")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        corrupt(x - 0.5, "impulse", 1, constants="imagenet")
    corrupt(x - 0.5, "gaussian", 1, constants="tabular", generator=_g())  # standardized data are fine


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("blur", 1), {"constants": "cifar10"}, "known: .*'gaussian'.*'snr_gaussian'"),
        (("shot", 1), {"constants": "tabular"}, "non-negative"),
        (("gaussian", 0), {"constants": "cifar10"}, "severity"),
        (("gaussian", 6), {"constants": "cifar10"}, "severity"),
        (("gaussian", 1), {"constants": "cifar100"}, "constants"),
        (("gaussian", 1), {"constants": "cifar10", "scale": 2.0}, "scale"),
        (("gaussian", 1), {"constants": "tabular", "scale": 0.0}, "scale"),
        (("speckle", 1), {"constants": "tabular", "scale": -1.0}, "scale"),
    ],
)
def test_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        corrupt(_images(n=2), *args, **kwargs)


@pytest.mark.parametrize("severity", [2.0, True, "3"])
def test_a_severity_of_another_type_is_a_type_error(severity):
    with pytest.raises(TypeError, match=f"severity={severity!r} must be an int, got {type(severity).__name__}"):
        corrupt(_images(n=2), "gaussian", severity, constants="cifar10")


def test_every_corruption_keeps_shape_and_dtype():
    x = _images(n=4).double()
    for constants, table in SEVERITY_CONSTANTS.items():
        assert set(table) <= set(CORRUPTIONS)
        for corruption in table:
            y = corrupt(x, corruption, 3, constants=constants, generator=_g())
            assert y.shape == x.shape and y.dtype == x.dtype and not torch.equal(y, x)
