"""Bad groups and data are refused before any work, with messages that name the argument."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from noisereg import noise
from noisereg.engine import FoldData, Group, MLPSpec, OptimSpec, Replica, SiteNoise, train_group


def _group(**changes) -> Group:
    base = dict(
        model=MLPSpec(2, (4,), 1),
        optimizer=OptimSpec(),
        loss="bce",
        epochs=2,
        batch_size=4,
        sites=(SiteNoise("before", noise.Gaussian(0.1)),),
        replicas=(Replica(0),),
    )
    base.update(changes)
    return Group(**base)


def _fold(**changes) -> FoldData:
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    base = dict(x_train=x, y_train=y, x_test=x, y_test=y)
    base.update(changes)
    return FoldData(**base)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: MLPSpec(0, (4,), 1), ValueError, "in_features=0"),
        (lambda: MLPSpec(2, [4], 1), TypeError, "widths"),
        (lambda: MLPSpec(2, (4,), 1, activation="swish"), ValueError, "activation='swish'"),
        (lambda: MLPSpec(2, (4,), 1, init="normal", init_std=0.0), ValueError, "init_std"),
        (lambda: OptimSpec("rmsprop"), ValueError, "name='rmsprop'"),
        (lambda: OptimSpec(lr=-1.0), ValueError, "lr=-1.0"),
        (lambda: OptimSpec(betas=(0.9, 1.0)), ValueError, r"betas\[1\]"),
        (lambda: OptimSpec(clip_grad_norm=0.0), ValueError, "clip_grad_norm"),
        (lambda: OptimSpec(nesterov=True), ValueError, "nesterov=True needs name='sgd'"),
        (lambda: OptimSpec("sgd", nesterov=True), ValueError, "a momentum > 0"),
        (lambda: OptimSpec("sgd", momentum=0.9, nesterov="yes"), TypeError, "nesterov='yes'"),
        (lambda: SiteNoise("activations", noise.Gaussian(0.1)), ValueError, "site='activations'"),
        (lambda: SiteNoise("before", 0.1), TypeError, "noise config"),
        (lambda: SiteNoise("input", noise.Gaussian(0.1), layers=(0,)), ValueError, "only for sites"),
        (lambda: SiteNoise("before", noise.Gaussian(0.1), layers=(0, 0)), ValueError, "repeats"),
        (lambda: Replica(-1), ValueError, "seed=-1"),
        (lambda: Replica(0, strengths=("a",)), TypeError, r"strengths\[0\]"),
        (lambda: _group(loss="hinge"), ValueError, "loss='hinge'"),
        (lambda: _group(model=MLPSpec(2, (4,), 3)), ValueError, "out_features == 1"),
        (lambda: _group(loss="ce"), ValueError, "out_features >= 2"),
        (lambda: _group(epochs=0), ValueError, "epochs=0"),
        (lambda: _group(replicas=()), ValueError, "replicas"),
        (lambda: _group(replicas=(Replica(0, strengths=(0.1, 0.2)),)), ValueError, "one per site"),
        (
            lambda: _group(sites=(SiteNoise("before", noise.Gaussian(0.1), layers=(1,)),)),
            ValueError,
            "hidden layers 0..0",
        ),
        (lambda: _group(model=MLPSpec(2, (), 1)), ValueError, "needs a hidden layer"),
        (lambda: _fold(y_train=torch.zeros(5)), ValueError, "y_train has 5 rows"),
        (lambda: _fold(x_val=torch.zeros(2, 2)), ValueError, "together"),
    ],
)
def test_bad_specs_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    ("group", "folds", "error", "match"),
    [
        (_group(), _fold(), TypeError, "sequence of FoldData"),
        (_group(), [_fold(x_train=torch.zeros(6, 3))], ValueError, r"x_train has shape \(6, 3\)"),
        (_group(), [_fold(x_test=torch.full((6, 2), float("nan")))], ValueError, "finite"),
        (_group(), [_fold(y_train=torch.full((6,), 0.5))], ValueError, "0/1 labels"),
        (_group(replicas=(Replica(0, fold=1),)), [_fold()], ValueError, "fold=1"),
        (_group(model=MLPSpec(2, (4,), 3), loss="ce"), [_fold()], TypeError, "integer class labels"),
        (_group(model=MLPSpec(2, (4,), 2), loss="mse"), [_fold()], ValueError, r"\[n, 2\]"),
    ],
)
def test_folds_that_do_not_fit_the_group_are_refused(group, folds, error, match):
    with pytest.raises(error, match=match):
        train_group(group, folds)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"dtype": torch.float16}, "dtype"),
        ({"workers": 0}, "workers=0"),
        ({"chunk_size": 0}, "chunk_size=0"),
        ({"memory_budget": -5}, "memory_budget"),
    ],
)
def test_bad_options_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        train_group(_group(), [_fold()], **options)


def test_group_is_frozen_and_stream_keys_count_equal_sites():
    sites = (
        SiteNoise("before", noise.Gaussian(0.1)),
        SiteNoise("before", noise.Uniform(half_width=0.1)),
        SiteNoise("before", noise.Gaussian(0.1), layers=(0,)),
    )
    group = _group(sites=sites)
    # the hidden sites keep the stream keys of their earlier names: the same draws as before the rename
    expected = [("pre", "layers=all", 0), ("pre", "layers=all", 1), ("pre", "layers=0", 0)]
    assert [group.stream_keys(i) for i in range(3)] == expected
    with pytest.raises(dataclasses.FrozenInstanceError):
        group.epochs = 3


@pytest.mark.parametrize(("old", "new"), [("pre", "before"), ("post", "after")])
def test_earlier_site_names_warn_and_train_bitwise_as_the_new_ones(old: str, new: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"SiteNoise.site = '{old}' is deprecated: write '{new}'"):
        renamed = SiteNoise(old, noise.Gaussian(0.3), layers=(0,))
    site = SiteNoise(new, noise.Gaussian(0.3), layers=(0,))
    assert renamed == site and renamed.site == new
    trained = [train_group(_group(sites=(s,), replicas=(Replica(0), Replica(1))), [_fold()]) for s in (renamed, site)]
    for name, values in trained[0].final.items():
        assert torch.equal(torch.as_tensor(values), torch.as_tensor(trained[1].final[name])), name
    for key, weights in trained[0].weights.items():
        assert torch.equal(weights, trained[1].weights[key]), key
