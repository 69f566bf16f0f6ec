"""Curves and final metrics against scikit-learn and torch, computed from the returned weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, log_loss, r2_score

from noisereg.engine import FoldData, Group, MLPSpec, OptimSpec, Replica, build_module, train_group

CASES = {"bce": 1, "ce": 4, "mse": 2}


def _fold(loss: str) -> FoldData:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(60, 5, generator=g)
    if loss == "bce":
        y = (x[:, 0] > x[:, 1]).float()
    elif loss == "ce":
        y = (x[:, :4].argmax(1) + (x[:, 4] > 1).long()) % 4
    else:
        y = torch.stack([x[:, 0] - x[:, 2], x[:, 1] * x[:, 3]], dim=1)
    return FoldData(x[:30], y[:30], x[30:50], y[30:50], x[50:], y[50:])


@pytest.mark.parametrize("loss", list(CASES))
def test_final_metrics_match_sklearn_on_the_returned_weights(loss):
    spec = MLPSpec(5, (16,), CASES[loss], activation="gelu", init="he")
    replicas = (Replica(0), Replica(1))
    group = Group(spec, OptimSpec("adam", lr=0.01), loss, 7, 10, sites=(), replicas=replicas, eval_every=3)
    fold = _fold(loss)
    result = train_group(group, [fold], dtype=torch.float64)
    assert list(result.epochs) == [3, 6, 7]
    for r in range(2):
        model = build_module(spec).double()
        model.load_state_dict(result.state_dict(r))
        for part in ("train", "test", "val"):
            x, y = getattr(fold, f"x_{part}").double(), getattr(fold, f"y_{part}")
            with torch.no_grad():
                out = model(x)
            final = {k[len(part) + 1 :]: v[r] for k, v in result.final.items() if k.startswith(part + "_")}
            curve_end = {k[len(part) + 1 :]: v[r, -1] for k, v in result.curves.items() if k.startswith(part + "_")}
            assert final == curve_end
            if loss == "bce":
                p = torch.sigmoid(out[:, 0]).numpy()
                assert final["acc"] == accuracy_score(y.numpy(), p > 0.5)
                assert math.isclose(final["loss"], log_loss(y.numpy(), p, labels=[0, 1]), rel_tol=1e-9)
            elif loss == "ce":
                p = torch.softmax(out, 1).numpy()
                assert final["acc"] == accuracy_score(y.numpy(), p.argmax(1))
                assert math.isclose(final["loss"], log_loss(y.numpy(), p, labels=range(4)), rel_tol=1e-9)
            else:
                assert "acc" not in final
                assert math.isclose(final["r2"], r2_score(y.numpy(), out.numpy()), rel_tol=1e-9)
                assert math.isclose(final["loss"], F.mse_loss(out, y.double()).item(), rel_tol=1e-9)


def test_noisy_training_loss_is_the_mean_over_the_epochs_batches():
    """Without noise, the last epoch's batch losses average to the loss of the weights before it."""
    fold = _fold("bce")
    spec = MLPSpec(5, (8,), 1)
    group = Group(spec, OptimSpec("sgd", lr=1e-9), "bce", 2, 7, sites=(), replicas=(Replica(0),), eval_every=1)
    result = train_group(group, [fold], dtype=torch.float64)
    np.testing.assert_allclose(result.curves["train_loss_noisy"][0, 1], result.curves["train_loss"][0, 0], rtol=1e-6)


def test_state_dict_rejects_a_bad_index():
    group = Group(MLPSpec(5, (4,), 1), OptimSpec(), "bce", 1, 8, (), (Replica(0),))
    result = train_group(group, [_fold("bce")])
    with pytest.raises(ValueError, match="r=1"):
        result.state_dict(1)
