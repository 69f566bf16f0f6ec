import pytest
import torch
import torch.nn.functional as F

from noisereg.layers import NoiseLayer
from noisereg.noise import gaussian
from noisereg.schedules import Linear
from noisereg.seeding import noise_generator
from noisereg.sites.targets import (
    PATRINI_MNIST,
    DisturbLabel,
    LabelFlip,
    LabelSmoothing,
    disturb_labels,
    flip_labels,
    label_smoothing,
    regression_noise,
    transition_matrix,
)

from .helpers import binomial_ok, gen

C = 10
N = 100_000


@pytest.fixture(scope="module")
def labels():
    return torch.randint(0, C, (N,), generator=gen(1))


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.45])
def test_smoothing_all_matches_torch_cross_entropy(eps):
    logits = torch.randn(7, 4, generator=gen(), dtype=torch.float64)
    y = torch.tensor([0, 3, 1, 2, 2, 0, 3])
    soft = label_smoothing(y, eps, num_classes=4).double()
    ours = -(soft * logits.log_softmax(-1)).sum(-1).mean()
    assert torch.allclose(ours, F.cross_entropy(logits, y, label_smoothing=eps), rtol=0, atol=1e-6)


def test_smoothing_others_keeps_one_minus_eps_on_true_class():
    y = torch.tensor([0, 2, 1])
    soft = label_smoothing(y, 0.3, num_classes=4, spread="others")
    assert torch.allclose(soft[torch.arange(3), y], torch.full((3,), 0.7))
    off = soft.masked_select(~F.one_hot(y, 4).bool())
    assert torch.allclose(off, torch.full_like(off, 0.1))
    assert torch.allclose(soft.sum(-1), torch.ones(3))


def test_smoothing_soft_targets_and_per_sample_strength():
    soft_in = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    assert label_smoothing(soft_in, 0.0) is soft_in
    out = label_smoothing(soft_in, torch.tensor([0.0, 0.3]))
    assert torch.equal(out[0], soft_in[0])
    assert torch.allclose(out[1], torch.tensor([0.1, 0.1, 0.8]))
    assert torch.equal(soft_in, torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]))


def test_smoothing_errors_name_the_argument():
    with pytest.raises(ValueError, match="num_classes is required"):
        label_smoothing(torch.tensor([1]), 0.1)
    with pytest.raises(ValueError, match="epsilon"):
        label_smoothing(torch.tensor([1]), 1.5, num_classes=3)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        label_smoothing(torch.tensor([3]), 0.1, num_classes=3)
    with pytest.raises(ValueError, match="spread='both'"):
        label_smoothing(torch.tensor([1]), 0.1, num_classes=3, spread="both")


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.6])
def test_symmetric_flip_rate_is_the_stated_rate(labels, rate):
    noisy = flip_labels(labels, rate, num_classes=C, generator=gen(int(rate * 100)))
    changed = noisy != labels
    assert binomial_ok(int(changed.sum()), N, rate)
    # Spread evenly over the other classes: a flipped 0 lands on each of 1..9 with rate/(C-1).
    zeros = labels == 0
    for target in range(1, C):
        assert binomial_ok(int((noisy[zeros] == target).sum()), int(zeros.sum()), rate / (C - 1))


def test_flip_keeps_dtype_and_never_touches_input(labels):
    y = labels[:50].to(torch.int32)
    before = y.clone()
    out = flip_labels(y, 0.5, num_classes=C, generator=gen())
    assert out.dtype == torch.int32 and torch.equal(y, before)
    assert flip_labels(y, 0.0, num_classes=C) is y


def test_flip_is_reproducible_from_the_generator(labels):
    a = flip_labels(labels, 0.3, num_classes=C, generator=gen(5))
    b = flip_labels(labels, 0.3, num_classes=C, generator=gen(5))
    assert torch.equal(a, b)


def test_pair_flip_support(labels):
    noisy = flip_labels(labels, 0.3, num_classes=C, pattern="pair", generator=gen())
    changed = noisy != labels
    assert torch.equal(noisy[changed], (labels[changed] + 1) % C)
    assert binomial_ok(int(changed.sum()), N, 0.3)


def test_patrini_map_flips_only_mapped_classes_to_their_targets(labels):
    rate = 0.4
    noisy = flip_labels(labels, rate, num_classes=C, pattern=PATRINI_MNIST, generator=gen())
    for c in range(C):
        rows = labels == c
        moved = noisy[rows] != c
        if c in PATRINI_MNIST:
            assert bool((noisy[rows][moved] == PATRINI_MNIST[c]).all())
            assert binomial_ok(int(moved.sum()), int(rows.sum()), rate)
        else:
            assert not bool(moved.any())


def test_matrix_pattern_follows_its_transition_matrix(labels):
    dest = torch.tensor([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    y = labels % 3
    noisy = flip_labels(y, 0.5, num_classes=3, pattern=dest, generator=gen(3))
    expected = transition_matrix(3, 0.5, dest)
    assert torch.allclose(expected, torch.tensor([[0.5, 0.25, 0.25], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]))
    for i in range(3):
        rows = y == i
        for j in range(3):
            assert binomial_ok(int((noisy[rows] == j).sum()), int(rows.sum()), float(expected[i, j]))


def test_transition_matrix_symmetric():
    t = transition_matrix(4, 0.3)
    assert torch.allclose(t.diagonal(), torch.full((4,), 0.7))
    assert torch.allclose(t.sum(1), torch.ones(4))
    assert torch.allclose(t[0, 1:], torch.full((3,), 0.1))


def test_disturb_label_redraws_over_all_classes(labels):
    alpha = 0.3
    noisy = disturb_labels(labels, alpha, num_classes=C, generator=gen())
    assert binomial_ok(int((noisy != labels).sum()), N, alpha * (C - 1) / C)
    kept_zero = (labels == 0) & (noisy == 0)
    assert binomial_ok(int(kept_zero.sum()), int((labels == 0).sum()), 1 - alpha + alpha / C)


def test_soft_targets_flip_like_their_labels(labels):
    y = labels[:500]
    hard = flip_labels(y, 0.4, num_classes=C, generator=gen(9))
    soft = flip_labels(F.one_hot(y, C).float(), 0.4, generator=gen(9))
    assert torch.equal(soft, F.one_hot(hard, C).float())
    smooth = label_smoothing(y, 0.2, num_classes=C)
    flipped = flip_labels(smooth, 0.4, generator=gen(9))
    assert torch.equal(flipped.argmax(-1), hard)
    assert torch.equal(flipped.sort(-1).values, smooth.sort(-1).values)


def test_ignore_index_and_per_sample_rates():
    y = torch.tensor([-100, 1, 2, 3, -100])
    out = flip_labels(y, 1.0, num_classes=4, generator=gen())
    assert out[0] == -100 and out[4] == -100 and bool((out[1:4] != y[1:4]).all())
    rates = torch.tensor([0.0, 1.0, 0.0, 1.0, 1.0])
    out = flip_labels(torch.tensor([0, 1, 2, 3, 0]), rates, num_classes=4, generator=gen())
    assert torch.equal(out != torch.tensor([0, 1, 2, 3, 0]), rates.bool())


def test_flip_errors():
    with pytest.raises(ValueError, match="rate"):
        flip_labels(torch.tensor([0]), 1.2, num_classes=3)
    with pytest.raises(ValueError, match="pattern='swap'"):
        flip_labels(torch.tensor([0]), 0.1, num_classes=3, pattern="swap")
    with pytest.raises(ValueError, match="target class=12 must be an int >= 0 and <= 9"):
        LabelFlip(0.1, num_classes=10, pattern={2: 12})
    with pytest.raises(ValueError, match="summing to 1"):
        flip_labels(torch.tensor([0]), 0.1, num_classes=2, pattern=torch.tensor([[0.0, 0.5], [1.0, 0.0]]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        flip_labels(torch.tensor([5]), 0.1, num_classes=3)
    with pytest.raises(ValueError, match="num_classes=0"):
        DisturbLabel(0.1, num_classes=0)


def test_regression_noise_is_gaussian_noise():
    y = torch.randn(20, 2, generator=gen(1))
    assert torch.equal(regression_noise(y, 0.3, generator=gen(4)), gaussian(y, 0.3, generator=gen(4)))


def test_kinds_as_train_only_layers():
    y = torch.tensor([0, 1, 2, 1])
    smooth = NoiseLayer(LabelSmoothing(Linear(0.0, 0.2, steps=2), num_classes=3))
    assert smooth(y) is y  # step 0: epsilon 0
    assert torch.allclose(smooth(y).sum(-1), torch.ones(4))
    assert smooth.eval()(y) is y
    flip = NoiseLayer(LabelFlip(0.5, num_classes=3, pattern="pair"), seed=3)
    first = flip(y)
    flip.reseed(3)
    assert torch.equal(first, flip(y)) and flip.applied == 2
    disturb = NoiseLayer(DisturbLabel(1.0, num_classes=3), seed=1)
    assert torch.equal(disturb(y), disturb_labels(y, 1.0, num_classes=3, generator=noise_generator(1)))
