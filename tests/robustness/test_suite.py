import doctest
import json
import math

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

import noisereg.robustness.suite
from noisereg import metrics
from noisereg.robustness import CorruptionResult, corrupt, evaluate_corruptions, mce, relative_mce
from noisereg.seeding import derive_seed, make_generator


@pytest.fixture(scope="module")
def digits():
    """Digits scaled to [0, 1] and a small MLP fitted to them in a few hundred full-batch steps."""
    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, x[:400], y[:400]


def test_table_matches_a_direct_evaluation(digits):
    model, x, y = digits
    result = evaluate_corruptions(
        model, x, y, constants="imagenet", corruptions=["gaussian", "impulse"], severities=(2, 5), seed=3
    )
    model.eval()
    with torch.no_grad():
        clean = model(x)
        assert result.clean_accuracy == metrics.accuracy(clean, y, from_logits=True)
        assert result.clean_loss == metrics.nll(clean, y, from_logits=True)
        # The whole set is one chunk, drawn from derive_seed(seed, corruption, severity, 0).
        generator = make_generator(derive_seed(3, "impulse", 5, 0))
        noisy = model(corrupt(x, "impulse", 5, constants="imagenet", generator=generator))
    assert result.accuracy["impulse"][1] == metrics.accuracy(noisy, y, from_logits=True)
    assert result.loss["impulse"][1] == metrics.nll(noisy, y, from_logits=True)
    assert result.strengths == {"gaussian": (0.12, 0.38), "impulse": (0.06, 0.27)}
    # Strong noise hurts this model: severity 5 is well below clean accuracy.
    assert result.accuracy["gaussian"][1] < result.clean_accuracy - 0.1


def test_summaries_and_rows(digits):
    model, x, y = digits
    result = evaluate_corruptions(model, x, y, constants="cifar10", severities=(1, 3), seed=0)
    assert list(result.accuracy) == ["gaussian", "shot", "impulse", "speckle", "uniform", "snr_gaussian"]
    cells = [a for accs in result.accuracy.values() for a in accs]
    assert result.mean_corruption_accuracy == pytest.approx(sum(cells) / 12)
    assert result.gap == pytest.approx(result.clean_accuracy - result.mean_corruption_accuracy)
    rows = result.rows()
    assert len(rows) == 12
    assert rows[2] == {
        "corruption": "shot",
        "severity": 1,
        "parameter": "scale",
        "strength": 500.0,
        "accuracy": result.accuracy["shot"][0],
        "error": 1 - result.accuracy["shot"][0],
        "loss": result.loss["shot"][0],
        "gap": result.clean_accuracy - result.accuracy["shot"][0],
    }
    assert CorruptionResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_same_seed_same_table(digits):
    model, x, y = digits
    kwargs = {"constants": "imagenet", "corruptions": ["gaussian", "shot"], "severities": (4, 5)}
    first = evaluate_corruptions(model, x, y, seed=1, **kwargs)
    assert evaluate_corruptions(model, x, y, seed=1, **kwargs) == first
    # A corruption's numbers do not depend on which others are evaluated beside it.
    alone = evaluate_corruptions(model, x, y, seed=1, **{**kwargs, "corruptions": ["shot"]})
    assert alone.accuracy["shot"] == first.accuracy["shot"]
    assert evaluate_corruptions(model, x, y, seed=2, **kwargs).loss != first.loss
    # Another batch size gives the same noise; only the model's float rounding may move.
    other = evaluate_corruptions(model, x, y, seed=1, batch_size=7, **kwargs)
    assert other.accuracy == first.accuracy
    assert other.loss["gaussian"] == pytest.approx(first.loss["gaussian"], rel=1e-5)


class _Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x)
        return x[:, :2]


def test_batch_size_does_not_change_the_noise_across_chunks():
    # 2^20 values per chunk: 40,000 samples of 64 features make three chunks.
    x = torch.rand(40_000, 64, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(40_000, dtype=torch.long)
    kwargs = {"constants": "cifar10", "corruptions": ["gaussian"], "severities": (5,), "seed": 0}
    seen = []
    for batch_size in (999, 40_000):
        model = _Recorder()
        evaluate_corruptions(model, x, y, batch_size=batch_size, **kwargs)
        assert max(len(b) for b in model.seen) == batch_size
        clean_batches = math.ceil(len(x) / batch_size)  # the clean pass comes first
        seen.append(torch.cat(model.seen[clean_batches:]))
    assert torch.equal(seen[0], seen[1]) and not torch.equal(seen[0], x)


def test_model_mode_is_restored(digits):
    model, x, y = digits
    model.train()
    model[2].eval()
    result = evaluate_corruptions(model, x, y, constants="cifar10", corruptions=["speckle"], seed=0)
    assert model.training and model[0].training and not model[2].training
    model.eval()
    again = evaluate_corruptions(model, x, y, constants="cifar10", corruptions=["speckle"], seed=0)
    assert again == result  # dropout was off in the first call too
    assert not model.training


def test_errors(digits):
    model, x, y = digits
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluate_corruptions(model, x * 16, y, constants="cifar10")
    with pytest.raises(ValueError, match="known"):
        evaluate_corruptions(model, x, y, constants="cifar10", corruptions=["fog"])
    with pytest.raises(ValueError, match="severity"):
        evaluate_corruptions(model, x, y, constants="cifar10", severities=(0, 1))
    with pytest.raises(ValueError, match="distinct"):
        evaluate_corruptions(model, x, y, constants="cifar10", severities=(1, 1))
    with pytest.raises(ValueError, match="constants"):
        evaluate_corruptions(model, x, y, constants="mnist")
    with pytest.raises(ValueError, match="labels"):
        evaluate_corruptions(model, x, y[:10], constants="cifar10")
    with pytest.raises(TypeError, match="sequences"):
        evaluate_corruptions(model, x, y, constants="cifar10", corruptions="gaussian")
    with pytest.raises(TypeError, match="sequences"):
        evaluate_corruptions(model, x, y, constants="cifar10", severities=3)


def test_mce_hand_example():
    errors = {"gaussian": [0.2, 0.4], "shot": [0.1, 0.1]}
    baseline = {"gaussian": [0.4, 0.4], "shot": [0.1, 0.3]}
    # CE: 0.6 / 0.8 = 0.75 and 0.2 / 0.4 = 0.5.
    assert mce(errors, baseline) == pytest.approx(0.625)
    # rCE with clean errors 0.05 and 0.1: (0.15 + 0.35) / (0.3 + 0.3) and (0.05 + 0.05) / (0 + 0.2).
    assert relative_mce(errors, 0.05, baseline, 0.1) == pytest.approx((0.5 / 0.6 + 0.5) / 2)
    assert mce(baseline, baseline) == 1.0


def test_result_mce_against_a_baseline(digits):
    model, x, y = digits
    kwargs = {"constants": "imagenet", "severities": (3, 4, 5), "seed": 0}
    result = evaluate_corruptions(model, x, y, **kwargs)
    assert result.mce(result) == pytest.approx(1.0)
    assert result.relative_mce(result) == pytest.approx(1.0)
    other = evaluate_corruptions(model, x, y, **{**kwargs, "severities": (5,)})
    with pytest.raises(ValueError, match="another suite"):
        result.mce(other)


@pytest.mark.parametrize(
    ("errors", "baseline", "match"),
    [
        ({"gaussian": [0.1]}, {"shot": [0.1]}, "same corruptions"),
        ({"gaussian": [0.1]}, {"gaussian": [0.1, 0.2]}, "one value per severity"),
        ({"gaussian": [1.5]}, {"gaussian": [0.1]}, r"\[0, 1\]"),
        ({"gaussian": [0.1]}, {"gaussian": [0.0]}, "undefined"),
        ({}, {}, "non-empty"),
    ],
)
def test_mce_errors(errors, baseline, match):
    with pytest.raises(ValueError, match=match):
        mce(errors, baseline)


def test_relative_mce_zero_denominator():
    with pytest.raises(ValueError, match="undefined"):
        relative_mce({"shot": [0.3]}, 0.1, {"shot": [0.2]}, 0.2)


def test_docstring_examples():
    result = doctest.testmod(noisereg.robustness.suite)
    assert result.attempted > 0 and result.failed == 0
