import doctest
import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss
from torchmetrics.functional.classification import (
    binary_calibration_error,
    multiclass_calibration_error,
)

import noisereg.metrics
from noisereg.metrics import (
    accuracy,
    adaptive_ece,
    brier_score,
    classification_metrics,
    ece,
    equal_width_edges,
    nll,
    reliability,
)


def _multiclass(n=500, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = 2.5 * torch.randn(n, c, generator=g, dtype=torch.float64)
    labels = torch.randint(0, c, (n,), generator=g)
    return logits, labels


def _binary(n=500, seed=1):
    g = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(n, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 2, (n,), generator=g)
    return logits, labels


# --- against references ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_bins", [1, 5, 15, 20])
def test_multiclass_ece_matches_torchmetrics(n_bins):
    logits, labels = _multiclass()
    probs = logits.softmax(dim=1)
    expected = multiclass_calibration_error(probs, labels, num_classes=4, n_bins=n_bins, norm="l1")
    # torchmetrics casts multi-class confidences to float32.
    expected = pytest.approx(expected.item(), abs=1e-6)
    assert ece(logits, labels, from_logits=True, n_bins=n_bins) == expected
    assert ece(probs, labels, from_logits=False, n_bins=n_bins) == expected


@pytest.mark.parametrize("n_bins", [3, 15])
def test_binary_top_label_ece_matches_torchmetrics_on_two_columns(n_bins):
    logits, labels = _binary()
    p = torch.sigmoid(logits)
    expected = multiclass_calibration_error(
        torch.stack([1 - p, p], dim=1), labels, num_classes=2, n_bins=n_bins, norm="l1"
    )
    got = ece(logits, labels, from_logits=True, n_bins=n_bins)
    assert got == pytest.approx(expected.item(), abs=1e-6)


@pytest.mark.parametrize("n_bins", [3, 15])
def test_positive_class_ece_matches_torchmetrics_binary(n_bins):
    logits, labels = _binary()
    p = torch.sigmoid(logits)
    expected = binary_calibration_error(p, labels, n_bins=n_bins, norm="l1")
    got = ece(p, labels, from_logits=False, n_bins=n_bins, mode="positive_class")
    assert got == pytest.approx(expected.item(), abs=1e-12)


def test_nll_brier_accuracy_match_sklearn_multiclass():
    logits, labels = _multiclass()
    probs = logits.softmax(dim=1).numpy()
    assert nll(logits, labels, from_logits=True) == pytest.approx(log_loss(labels, probs), rel=1e-12)
    assert brier_score(logits, labels, from_logits=True) == pytest.approx(
        brier_score_loss(labels, probs, scale_by_half=False), rel=1e-12
    )
    assert accuracy(logits, labels, from_logits=True) == accuracy_score(labels, probs.argmax(1))


def test_nll_brier_accuracy_match_sklearn_binary():
    logits, labels = _binary()
    p = torch.sigmoid(logits).numpy()
    assert nll(logits, labels, from_logits=True) == pytest.approx(log_loss(labels, p), rel=1e-12)
    # Brier 1950 sums over both classes: twice sklearn's customary binary score.
    assert brier_score(logits, labels, from_logits=True) == pytest.approx(2 * brier_score_loss(labels, p), rel=1e-12)
    assert accuracy(logits, labels, from_logits=True) == accuracy_score(labels, p > 0.5)


def test_adaptive_ece_matches_plain_numpy_loop():
    logits, labels = _multiclass(n=203)
    probs = logits.softmax(dim=1).numpy()
    conf, hit = probs.max(1), (probs.argmax(1) == labels.numpy())
    expected = 0.0
    for group in np.array_split(np.argsort(conf, kind="stable"), 15):
        expected += len(group) / len(conf) * abs(hit[group].mean() - conf[group].mean())
    assert adaptive_ece(logits, labels, from_logits=True) == pytest.approx(expected, abs=1e-12)
    counts = reliability(logits, labels, from_logits=True, binning="equal_mass").count
    assert set(counts) == {13, 14} and sum(counts) == 203


# --- hand-checked examples ------------------------------------------------------------------------


def test_confidence_one_lands_in_the_last_bin():
    # Top-label confidences 1.0 (wrong) and 0.92 (right), 10 bins: both in [0.9, 1.0].
    # Bin: accuracy 1/2, mean confidence 0.96 -> ECE = |0.5 - 0.96| = 0.46.
    # (Giving 1.0 a bin of its own, as torchmetrics does, would say 0.54.)
    probs = torch.tensor([[0.0, 1.0], [0.92, 0.08]], dtype=torch.float64)
    labels = torch.tensor([0, 0])
    bins = reliability(probs, labels, from_logits=False, n_bins=10)
    assert bins.count == (0,) * 9 + (2,)
    assert bins.confidence[-1] == pytest.approx(0.96)
    assert bins.accuracy[-1] == 0.5
    assert bins.ece == pytest.approx(0.46)


def test_bins_are_closed_on_the_left():
    # With 4 bins, confidence 0.75 opens the last bin and 0.5 the third; 0.25 is not reachable
    # top-label for two classes, so use the positive-class mode for it.
    p = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1])
    bins = reliability(p, labels, from_logits=False, n_bins=4, mode="positive_class")
    assert bins.count == (0, 1, 1, 1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_every_edge_m_over_M_opens_bin_m(dtype):
    """A confidence equal to m/M in its own precision lands in bin m, for every m < M <= 50 (linspace's
    edges sent 11/15 and 3/10 one bin low). m/M is made the way a user makes it: ``m / M`` in float64,
    then rounded to the tensor's type, and also the exactly nearest number of that type."""
    for n_bins in range(1, 51):
        for m in range(n_bins):
            values = {torch.tensor(m / n_bins, dtype=torch.float64).to(dtype).item()}
            values.add(float(equal_width_edges(n_bins, dtype)[m]))
            for v in values:
                if not (Fraction(m, n_bins) - Fraction(1, 2 * n_bins) < Fraction(v) < Fraction(m + 1, n_bins)):
                    continue  # rounded into the neighbouring bin's half: not "m/M" in this precision
                p = torch.tensor([v], dtype=dtype)
                bins = reliability(p, torch.tensor([1]), from_logits=False, n_bins=n_bins, mode="positive_class")
                assert bins.count[m] == 1, (n_bins, m, v, dtype)


@given(st.integers(1, 60), st.data())
def test_edges_are_the_nearest_numbers_to_m_over_M(n_bins, data):
    dtype = data.draw(st.sampled_from([torch.float64, torch.float32, torch.float16, torch.bfloat16]))
    edges = equal_width_edges(n_bins, dtype)
    assert edges[0].item() == 0.0 and edges[-1].item() == 1.0
    for m, e in enumerate(edges.tolist()):
        exact = Fraction(m, n_bins)
        for neighbour in (
            torch.nextafter(edges[m], torch.tensor(2.0, dtype=dtype)),
            torch.nextafter(edges[m], torch.tensor(-1.0, dtype=dtype)),
        ):
            assert abs(Fraction(e) - exact) <= abs(Fraction(neighbour.item()) - exact)


def test_ece_hand_example_two_bins():
    # Positive-class bins of width 1/2: {0.1, 0.3} with labels {0, 1} -> conf 0.2, freq 0.5;
    # {0.8} with label 1 -> conf 0.8, freq 1. ECE = 2/3 * 0.3 + 1/3 * 0.2 = 4/15.
    p = torch.tensor([0.1, 0.3, 0.8], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1])
    assert ece(p, labels, from_logits=False, n_bins=2, mode="positive_class") == pytest.approx(4 / 15)


def test_adaptive_ece_hand_example():
    # Sorted top-label confidences 0.6 0.7 | 0.8 0.9 with hits 1 0 | 1 1:
    # |0.5 - 0.65| / 2 + |1 - 0.85| / 2 = 0.15.
    p = torch.tensor([0.9, 0.4, 0.7, 0.8], dtype=torch.float64)
    labels = torch.tensor([1, 0, 0, 1])
    bins = reliability(p, labels, from_logits=False, n_bins=2, binning="equal_mass")
    assert bins.count == (2, 2)
    assert bins.lower == pytest.approx((0.6, 0.8)) and bins.upper == pytest.approx((0.7, 0.9))
    assert bins.ece == pytest.approx(0.15)


def test_perfectly_calibrated_bins_have_zero_ece():
    # Two samples at 0.5 confidence, one right: each bin's accuracy equals its confidence.
    logits = torch.zeros(2, 2)
    assert ece(logits, torch.tensor([0, 1]), from_logits=True) == 0.0


# --- conventions ----------------------------------------------------------------------------------


def test_single_logit_equals_two_logit_model():
    logits, labels = _binary()
    two = torch.stack([torch.zeros_like(logits), logits], dim=1)
    one = classification_metrics(logits, labels, from_logits=True)
    assert one == pytest.approx(classification_metrics(two, labels, from_logits=True), abs=1e-12)
    column = classification_metrics(logits[:, None], labels, from_logits=True)
    assert one == pytest.approx(column)


def test_float_zero_one_labels_are_accepted():
    logits, labels = _binary(n=50)
    assert nll(logits, labels.double(), from_logits=True) == nll(logits, labels, from_logits=True)


def test_nll_from_extreme_logits_does_not_overflow():
    assert nll(torch.tensor([1000.0]), torch.tensor([0]), from_logits=True) == pytest.approx(1000.0)
    assert nll(torch.tensor([[0.0, 1.0]]), torch.tensor([0]), from_logits=False) == math.inf


def test_to_dict_is_json_ready_with_none_for_empty_bins():
    logits, labels = _binary(n=40)
    data = reliability(logits, labels, from_logits=True).to_dict()
    assert json.loads(json.dumps(data)) == data
    empty = [i for i, n in enumerate(data["count"]) if n == 0]
    assert empty and all(data["accuracy"][i] is None for i in empty)
    assert data["binning"] == "equal_width" and len(data["lower"]) == 15


def test_classification_metrics_keys():
    logits, labels = _multiclass(n=30)
    assert set(classification_metrics(logits, labels, from_logits=True)) == {
        "accuracy",
        "nll",
        "brier",
        "ece",
        "adaptive_ece",
    }


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outputs", "labels", "kwargs", "match"),
    [
        (torch.tensor([0.2, 1.5]), [0, 1], {"from_logits": False}, "from_logits=True"),
        (torch.tensor([[0.2, 0.7]]), [0], {"from_logits": False}, "sum to 1"),
        (torch.zeros(3, 2), [0, 1], {"from_logits": True}, "shape"),
        (torch.zeros(2, 3), [0, 3], {"from_logits": True}, r"\[0, 2\]"),
        (torch.zeros(2), [0.5, 1.0], {"from_logits": True}, "non-integer"),
        (torch.zeros(2, 2, 2), [0, 1], {"from_logits": True}, "shape"),
        (torch.tensor([math.nan, 0.0]), [0, 1], {"from_logits": True}, "NaN"),
    ],
)
def test_bad_inputs_raise_value_error(outputs, labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        accuracy(outputs, torch.tensor(labels), **kwargs)


def test_from_logits_must_be_said():
    with pytest.raises(TypeError, match="from_logits"):
        accuracy(torch.zeros(2), torch.tensor([0, 1]), from_logits="yes")
    with pytest.raises(TypeError):
        accuracy(torch.zeros(2), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="floating"):
        accuracy(torch.zeros(2, dtype=torch.long), torch.tensor([0, 1]), from_logits=True)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_bins": 0}, ValueError, "n_bins"),
        ({"n_bins": 2.0}, TypeError, "n_bins=2.0 must be an int, got float"),  # a wrong type is a TypeError
        ({"binning": "quantile"}, ValueError, "binning"),
        ({"mode": "classwise"}, ValueError, "mode"),
        ({"mode": "positive_class"}, ValueError, "binary"),
    ],
)
def test_bad_binning_options(kwargs, error, match):
    logits, labels = _multiclass(n=10, c=3)
    with pytest.raises(error, match=match):
        reliability(logits, labels, from_logits=True, **kwargs)


def test_docstring_examples():
    result = doctest.testmod(noisereg.metrics)
    assert result.attempted > 0 and result.failed == 0
