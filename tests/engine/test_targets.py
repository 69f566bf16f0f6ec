"""Label smoothing and label flipping on class-probability rows."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from noisereg.engine import LabelFlip, LabelSmoothing, label_flip, label_smoothing


def _one_hot(n=2000, classes=5, seed=0):
    labels = torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed))
    return labels, F.one_hot(labels, classes).float()


def test_smoothing_over_all_classes_matches_torch_cross_entropy():
    labels, q = _one_hot(50)
    logits = torch.randn(50, 5, generator=torch.Generator().manual_seed(1))
    ours = -(torch.log_softmax(logits, 1) * label_smoothing(q, 0.2)).sum(1).mean()
    theirs = F.cross_entropy(logits, labels, label_smoothing=0.2)
    torch.testing.assert_close(ours, theirs)


def test_smoothing_over_the_other_classes_only():
    _, q = _one_hot(10)
    smoothed = label_smoothing(q, 0.2, spread="others")
    torch.testing.assert_close(smoothed.sum(1), torch.ones(10))
    assert torch.equal(smoothed[q == 1], torch.full((10,), 0.8))
    torch.testing.assert_close(smoothed[q == 0], torch.full((40,), 0.05))


def test_zero_strength_returns_the_input_itself():
    _, q = _one_hot(10)
    assert label_smoothing(q, 0.0) is q and label_flip(q, 0.0) is q
    assert LabelSmoothing(0.0).is_off() and LabelFlip(rate=0.0).is_off()


@pytest.mark.parametrize("mode", ["symmetric", "disturb"])
def test_flip_rate_is_realized(mode):
    labels, q = _one_hot(20000, classes=4)
    flipped = label_flip(q, 0.3, mode=mode, generator=torch.Generator().manual_seed(2))
    assert set(flipped.unique().tolist()) == {0.0, 1.0}
    changed = (flipped.argmax(1) != labels).double()
    expected = 0.3 if mode == "symmetric" else 0.3 * 3 / 4
    assert abs(changed.mean().item() - expected) < 6 * math.sqrt(expected * (1 - expected) / changed.numel())
    if mode == "symmetric":
        new = flipped.argmax(1)[changed.bool()]
        counts = torch.bincount(new, minlength=4).double()
        share = counts / counts.sum()
        assert (share - 0.25).abs().max() < 6 * math.sqrt(0.25 * 0.75 / counts.sum())


def test_per_row_rates_broadcast_along_dim_0():
    _, q = _one_hot(3000, classes=3)
    stack = q.view(2, 1500, 3)
    flipped = label_flip(stack, torch.tensor([0.0, 1.0]), generator=torch.Generator().manual_seed(0))
    assert torch.equal(flipped[0], stack[0])
    assert (flipped[1].argmax(1) != stack[1].argmax(1)).all()


def test_configs_call_their_function_with_schedules_resolved():
    _, q = _one_hot(10)
    kind = LabelSmoothing(lambda step: 0.1 * step)
    assert kind(q, step=0) is q
    torch.testing.assert_close(kind(q, step=2), label_smoothing(q, 0.2))
    assert kind.with_strength(0.3).epsilon == 0.3


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda q: label_smoothing(q, 1.5), ValueError, "epsilon"),
        (lambda q: label_smoothing(q, 0.1, spread="wrong"), ValueError, "spread"),
        (lambda q: label_flip(q, 0.1, mode="pairs"), ValueError, "mode"),
        (lambda q: label_flip(q[:, :1], 0.1), ValueError, "classes >= 2"),
        (lambda q: label_flip(q.long(), 0.1), TypeError, "floating-point"),
    ],
)
def test_bad_arguments_are_refused(call, error, match):
    _, q = _one_hot(4)
    with pytest.raises(error, match=match):
        call(q)
