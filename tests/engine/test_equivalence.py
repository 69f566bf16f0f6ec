"""The engine against a plain single-model loop, in float64: same initial weights, same batches,
same noise draws (each drawn by the core kind in the loop) -> the same final weights."""

from __future__ import annotations

import pytest
import torch

from noisereg import noise, schedules
from noisereg.engine import (
    FoldData,
    Group,
    MLPSpec,
    OptimSpec,
    Replica,
    SiteNoise,
    train_group,
)
from noisereg.sites import LabelFlip, LabelSmoothing
from tests.engine.reference import reference_training


def _data(loss: str, n_train: int = 20, features: int = 3, classes: int = 3, seed: int = 0) -> FoldData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + 10, features, generator=g)
    if loss == "bce":
        y = (x[:, 0] * x[:, 1] > 0).double()
    elif loss == "ce":
        y = torch.randint(0, classes, (n_train + 10,), generator=g)
    else:
        y = x[:, :2].sum(1, keepdim=True) + 0.1 * torch.randn(n_train + 10, 1, generator=g)
    return FoldData(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


HIDDEN_NOISE = (
    SiteNoise("input", noise.Gaussian(std=0.3)),
    SiteNoise("before", noise.Gaussian(std=0.2)),
    SiteNoise("after", noise.Gaussian(std=0.1), layers=(1,)),
    SiteNoise("gradients", noise.Gaussian(std=schedules.Annealed(eta=0.01))),
)

CASES = {
    "adam-relu": (OptimSpec("adam", lr=0.01), "relu", "bce", HIDDEN_NOISE),
    "adam-silu-ce": (OptimSpec("adam", lr=0.01), "silu", "ce", HIDDEN_NOISE),
    "sgd-leaky-relu": (OptimSpec("sgd", lr=0.05, momentum=0.9), "leaky_relu", "bce", HIDDEN_NOISE),
    "adamw-softplus-mse": (OptimSpec("adamw", lr=0.01, weight_decay=0.1), "softplus", "mse", HIDDEN_NOISE),
    "sgd-momentum-tanh": (OptimSpec("sgd", lr=0.05, momentum=0.9), "tanh", "bce", HIDDEN_NOISE),
    "sgd-nesterov-sigmoid": (OptimSpec("sgd", lr=0.05, momentum=0.9, nesterov=True), "sigmoid", "bce", HIDDEN_NOISE),
    "adamw-clip-gelu-ce": (
        OptimSpec("adamw", lr=0.01, weight_decay=0.1, clip_grad_norm=0.5),
        "gelu",
        "ce",
        (*HIDDEN_NOISE, SiteNoise("targets", LabelSmoothing(0.1)), SiteNoise("targets", LabelFlip(0.2))),
    ),
    "adam-l2-multiplicative-elu": (
        OptimSpec("adam", lr=0.01, weight_decay=0.01),
        "elu",
        "bce",
        (
            SiteNoise("before", noise.GaussianDropoutNoise(rate=0.2), layers=(0,)),
            SiteNoise("after", noise.MultiplicativeGaussian(std=0.3)),
            SiteNoise("targets", LabelSmoothing(0.2, spread="others")),
        ),
    ),
    "sgd-general-kinds-selu-mse": (
        OptimSpec("sgd", lr=0.02, momentum=0.5, clip_grad_norm=1.0),
        "selu",
        "mse",
        (
            SiteNoise("input", noise.Uniform(half_width=0.2)),
            SiteNoise("before", noise.Impulse(amount=0.1, low=-1.0, high=1.0), layers=(1,)),
            SiteNoise("after", noise.AlphaDropoutNoise(rate=0.1)),
            SiteNoise("targets", noise.Gaussian(std=0.1)),
            SiteNoise("gradients", noise.Uniform(half_width=0.01)),
        ),
    ),
    "sgd-weights-tanh-mse": (
        OptimSpec("sgd", lr=0.05, momentum=0.9, clip_grad_norm=1.0),
        "tanh",
        "mse",
        (
            SiteNoise("weights", noise.Gaussian(std=0.05)),
            SiteNoise("input", noise.Gaussian(std=0.1)),
            SiteNoise("gradients", noise.Gaussian(std=0.01)),
        ),
    ),
    "adam-weights-schedule-bce": (
        OptimSpec("adam", lr=0.01),
        "relu",
        "bce",
        (SiteNoise("weights", noise.Gaussian(std=schedules.Linear(0.1, 0.0, steps=10))),),
    ),
    "sigmoid-epoch-clock": (
        OptimSpec("adam", lr=0.02),
        "sigmoid",
        "bce",
        (SiteNoise("after", noise.Gaussian(std=schedules.Linear(0.0, 0.3, steps=4)), clock="epoch"),),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_replica_ends_with_the_weights_of_a_plain_loop(case):
    optimizer, activation, loss, sites = CASES[case]
    out = {"bce": 1, "ce": 3, "mse": 1}[loss]
    spec = MLPSpec(3, (16, 8), out, activation=activation)
    strengths = tuple(1.5 * s.kind.strength if isinstance(s.kind.strength, float) else s.kind.strength for s in sites)
    replicas = (Replica(seed=7), Replica(seed=8, strengths=strengths))
    group = Group(spec, optimizer, loss, epochs=6, batch_size=8, sites=sites, replicas=replicas)
    fold = _data(loss)
    result = train_group(group, [fold], dtype=torch.float64)
    for r, replica in enumerate(replicas):
        expected = reference_training(group, replica, fold)
        got = result.state_dict(r)
        for key, value in expected.items():
            torch.testing.assert_close(got[key], value, rtol=1e-11, atol=1e-12, msg=f"{case} {key}")


def test_the_noise_reaches_the_weights():
    """The equivalence above is not vacuous: another noise seed ends elsewhere."""
    optimizer, activation, loss, sites = CASES["adam-relu"]
    group = Group(MLPSpec(3, (16, 8), 1), optimizer, loss, 6, 8, sites, (Replica(seed=7),))
    fold = _data(loss)
    quiet = Group(MLPSpec(3, (16, 8), 1), optimizer, loss, 6, 8, (), (Replica(seed=7),))
    noisy = train_group(group, [fold], dtype=torch.float64).state_dict(0)["0.weight"]
    clean = train_group(quiet, [fold], dtype=torch.float64).state_dict(0)["0.weight"]
    assert (noisy - clean).abs().max() > 1e-3
