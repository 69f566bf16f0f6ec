"""How a group is trained does not change any replica's result: grouping, chunks, workers, folds."""

from __future__ import annotations

import dataclasses

import numpy as np
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
    estimate_replica_bytes,
    plan_chunks,
    train_group,
)
from noisereg.sites import LabelSmoothing

SITES = (
    SiteNoise("input", noise.Gaussian(std=0.2)),
    SiteNoise("before", noise.Gaussian(std=0.1), layers=(0,)),
    SiteNoise("after", noise.GaussianDropoutNoise(rate=0.1)),
    SiteNoise("targets", LabelSmoothing(0.1)),
    SiteNoise("gradients", noise.Gaussian(std=schedules.Annealed(eta=0.01))),
)


def _fold(n_train: int, seed: int = 0, n_test: int = 13) -> FoldData:
    """Validation labels are coin flips, so the validation loss turns up once the model fits."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_test + 6, 3, generator=g)
    y = (x[:, 0] + x[:, 1] ** 2 > 0.5).float()
    y_val = torch.randint(0, 2, (6,), generator=g).float()
    n = n_train + n_test
    return FoldData(x[:n_train], y[:n_train], x[n_train:n], y[n_train:n], x[n:], y_val)


def _group(replicas, *, activation="tanh", epochs=8, **kw) -> Group:
    return Group(
        MLPSpec(3, (12, 7), 1, activation=activation),
        OptimSpec("adam", lr=0.02, clip_grad_norm=1.0),
        "bce",
        epochs=epochs,
        batch_size=8,
        sites=SITES,
        replicas=tuple(replicas),
        eval_every=3,
        **kw,
    )


REPLICAS = [
    Replica(seed=1),
    Replica(seed=2, strengths=(0.0, 0.3, 0.2, 0.0, 0.0)),
    Replica(seed=3, fold=1, strengths=(0.1, 0.0, 0.0, 0.2, 0.05)),
    Replica(seed=4, fold=1),
    Replica(seed=5, strengths=(0.0, 0.0, 0.0, 0.0, 0.0)),
]
FOLDS = [_fold(21), _fold(21, seed=1)]


def _assert_same(a, i, b, j):
    """Replica i of result a and replica j of result b are bitwise equal (same machine, same
    configuration)."""
    for key in a.weights:
        assert torch.equal(a.weights[key][i], b.weights[key][j]), key
    for key in a.curves:
        np.testing.assert_array_equal(a.curves[key][i], b.curves[key][j], err_msg=key)
    assert a.stopped_epoch[i] == b.stopped_epoch[j]


@pytest.fixture(scope="module")
def together():
    return train_group(_group(REPLICAS), FOLDS)


@pytest.mark.parametrize("k", [0, 2, 4])
def test_a_replica_alone_equals_the_same_replica_in_a_group_of_five(k):
    together = train_group(_group(REPLICAS), FOLDS, dtype=torch.float64)
    alone = train_group(_group([REPLICAS[k]]), FOLDS, dtype=torch.float64)
    _assert_close(alone, 0, together, k, torch.float64)


def test_same_seed_gives_bitwise_the_same_results(together):
    """Same machine, same configuration: bitwise, the determinism torch supports on CPU."""
    again = train_group(_group(REPLICAS), FOLDS)
    for k in range(len(REPLICAS)):
        _assert_same(again, k, together, k)


def _assert_close(a, i, b, j, dtype, *, curves=True):
    """Replica i of a and replica j of b agree to rounding: another stack size may take another kernel
    (vector width, blocking), which torch does not promise to round alike. The bound is 2**10 units
    of roundoff at each tensor's scale: this short training amplified one-ulp differences to at most
    one ulp here, and another noise stream moves the weights by more than 1e-3 of their scale
    (``test_other_streams_change_results``), so the bound separates the two by ten orders of magnitude
    in float64."""
    eps = torch.finfo(dtype).eps
    for key in a.weights:
        x, y = a.weights[key][i], b.weights[key][j]
        torch.testing.assert_close(x, y, rtol=0, atol=2**10 * eps * float(y.abs().max()), msg=key)
    if not curves:
        return
    for key in a.curves:
        x, y = np.asarray(a.curves[key][i]), np.asarray(b.curves[key][j])
        np.testing.assert_allclose(x, y, rtol=2**10 * eps, atol=2**10 * eps, err_msg=key)
    assert a.stopped_epoch[i] == b.stopped_epoch[j]


def test_workers_chunks_and_memory_budget_do_not_change_results():
    group = _group(REPLICAS)
    together = train_group(group, FOLDS, dtype=torch.float64)
    budget = 2 * estimate_replica_bytes(group, FOLDS, torch.float64)
    for options in ({"workers": 2}, {"chunk_size": 1}, {"memory_budget": budget}):
        other = train_group(group, FOLDS, dtype=torch.float64, **options)
        for k in range(len(REPLICAS)):
            _assert_close(other, k, together, k, torch.float64)


def test_other_streams_change_results(together):
    """The comparisons above are not vacuous: replicas with other seeds end elsewhere."""
    assert not torch.equal(together.weights["0.weight"][0], together.weights["0.weight"][3])


def test_folds_of_unequal_sizes_train_in_separate_chunks():
    folds = [_fold(21), _fold(16, seed=1, n_test=9)]
    group = _group(REPLICAS)
    plan = plan_chunks(group, folds)
    sizes = {tuple(folds[group.replicas[i].fold].x_train.shape[0] for i in chunk) for w in plan for chunk in w}
    assert all(len(set(s)) == 1 for s in sizes)
    mixed = train_group(group, folds, dtype=torch.float64)
    alone = train_group(_group([REPLICAS[3]]), folds, dtype=torch.float64)
    _assert_close(alone, 0, mixed, 3, torch.float64)


def test_memory_budget_bounds_the_chunk_size():
    group = _group(REPLICAS[:2] * 1 + [Replica(seed=s) for s in range(10, 20)])
    per_replica = estimate_replica_bytes(group, FOLDS)
    plan = plan_chunks(group, FOLDS, memory_budget=3 * per_replica + 1)
    assert max(len(c) for w in plan for c in w) == 3
    assert sorted(i for w in plan for c in w for i in c) == list(range(len(group.replicas)))
    plan2 = plan_chunks(group, FOLDS, workers=2, chunk_size=4)
    assert len(plan2) == 2 and max(len(c) for w in plan2 for c in w) <= 4


def test_estimated_memory_grows_with_the_model_and_the_batch():
    small = _group(REPLICAS)
    wide = dataclasses.replace(small, model=MLPSpec(3, (120, 70), 1, activation="tanh"))
    assert estimate_replica_bytes(wide, FOLDS) > 5 * estimate_replica_bytes(small, FOLDS)
    assert estimate_replica_bytes(small, FOLDS, torch.float64) == 2 * estimate_replica_bytes(small, FOLDS)


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_adds_up_to_replicas_times_epochs(workers):
    group = _group(REPLICAS, patience=3, epochs=12)
    calls = []
    train_group(group, FOLDS, workers=workers, progress=calls.append)
    assert sum(calls) == len(REPLICAS) * 12 and all(c > 0 for c in calls)


def test_early_stopping_keeps_the_best_weights_and_stops_recording():
    group = _group(REPLICAS, patience=3, epochs=30, activation="relu")
    result = train_group(group, FOLDS, dtype=torch.float64)
    epochs = list(result.epochs)
    assert (result.stopped_epoch < 30).any(), "the test needs a replica that stops early"
    for k, replica in enumerate(REPLICAS):
        best, stopped = int(result.best_epoch[k]), int(result.stopped_epoch[k])
        val = result.curves["val_loss"][k]
        column = epochs.index(best)
        assert val[column] == np.nanmin(val)
        assert result.final["test_acc"][k] == result.curves["test_acc"][k, column]
        if stopped < 30:
            assert stopped - best >= 3
            assert np.isnan(result.curves["test_loss"][k, epochs.index(stopped) + 1 :]).all()
        # training alone without early stopping for exactly `best` epochs ends with the same weights, to
        # rounding: a group of one may take other kernels than the group of five
        alone = dataclasses.replace(group, replicas=(replica,), patience=None, epochs=best)
        short = train_group(alone, FOLDS, dtype=torch.float64)
        _assert_close(short, 0, result, k, torch.float64, curves=False)


def test_patience_without_validation_data_is_refused():
    fold = dataclasses.replace(FOLDS[0], x_val=None, y_val=None)
    with pytest.raises(ValueError, match="patience"):
        train_group(_group(REPLICAS[:1], patience=2), [fold])


def test_a_failing_worker_raises_its_own_error():
    group = _group([Replica(seed=1, strengths=(-1.0, 0.0, 0.0, 0.0, 0.0)), Replica(seed=2)])
    with pytest.raises(ValueError, match="must be finite and >= 0"):
        train_group(group, FOLDS, workers=2)
