"""Randomized smoothing against a linear classifier, where everything has a closed form.

For f(x) = 1[w·x + b > 0] and ε ~ N(0, σ²I), P(f(x + ε) = 1) = Φ(m/σ) with m = (w·x + b)/‖w‖ the
signed distance to the decision boundary, so the smoothed classifier is f itself and its true certified
radius is |m|: σ·Φ⁻¹(Φ(|m|/σ)) = |m|.

The statistical checks rest on the paper's guarantee: each certify/predict call is wrong (a class that
is not g(x), or a radius larger than the true one) with probability at most alpha. Over K independent
calls the number of wrong ones is then dominated by Binomial(K, alpha), and we accept up to the count
that Binomial(K, alpha) exceeds with probability below 1e-9: a correct implementation fails this test
for fewer than one seed in a billion, while an optimistic one fails it at once (with the point estimate
n_A/n in place of the lower bound, 105 to 166 of the 300 calls per margin below are wrong; the correct
bound gives 0 to 3). Seeds are fixed, so each run is also exactly reproducible.
"""

import math

import pytest
import torch
from scipy.stats import beta, binom, norm
from torch import nn

from noisereg.robustness import ABSTAIN, Certificate, certified_accuracy, certify, predict
from tests.conftest import six_se_mean, six_se_var

W = torch.tensor([3.0, 4.0])  # ‖w‖ = 5
B = 0.5
SIGMA = 0.5
ALPHA = 0.01
REPEATS = 300


def _linear(columns: int) -> nn.Module:
    """The linear classifier as one logit, or as two logits [0, w·x + b] (argmax path)."""
    model = nn.Linear(2, columns)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
        model.weight[-1] = W
        model.bias[-1] = B
    return model


def _point(margin: float) -> torch.Tensor:
    """An input at signed distance ``margin`` from the boundary w·x + b = 0."""
    return (margin - B / 5) * W / 5


def _max_wrong(repeats: int, alpha: float) -> int:
    # Smallest t with P(Binomial(repeats, alpha) > t) < 1e-9.
    t = 0
    while binom.sf(t, repeats, alpha) >= 1e-9:
        t += 1
    return t


def test_closed_form_of_the_test_case():
    assert float(W @ _point(0.7) + B) / 5 == pytest.approx(0.7)
    assert _max_wrong(REPEATS, ALPHA) == 18  # expected count: 3


@pytest.mark.parametrize("columns", [1, 2])
@pytest.mark.parametrize("margin", [0.05, 0.15, 0.5])
def test_certified_radius_is_never_optimistic(columns, margin):
    x = _point(margin).expand(REPEATS, 2)
    cert = certify(_linear(columns), x, sigma=SIGMA, n0=50, n=500, alpha=ALPHA, seed=int(100 * margin))
    returned = ~cert.abstained
    wrong = returned & ((cert.prediction != 1) | (cert.radius > margin))
    assert int(wrong.sum()) <= _max_wrong(REPEATS, ALPHA)
    # The bound is also usable: at margin 0.5 (p_A = Φ(1) ≈ 0.84) nearly every call certifies.
    if margin == 0.5:
        assert bool(returned.all())


def test_certify_abstains_where_p_a_is_one_half():
    x = torch.tensor([-0.5, 0.25]).expand(REPEATS, 2)  # w·x + b = 0 exactly: p_A = 1/2
    assert float(W @ x[0] + B) == 0.0
    cert = certify(_linear(1), x, sigma=SIGMA, n0=50, n=500, alpha=ALPHA, seed=1)
    assert int((~cert.abstained).sum()) <= _max_wrong(REPEATS, ALPHA)
    assert bool(cert.radius[cert.abstained].isnan().all())


def test_predict_abstains_where_p_a_is_one_half_and_answers_far_away():
    x = torch.tensor([-0.5, 0.25]).expand(REPEATS, 2)
    near = predict(_linear(2), x, sigma=SIGMA, n=200, alpha=ALPHA, seed=2)
    assert int((near != ABSTAIN).sum()) <= _max_wrong(REPEATS, ALPHA)
    # At 3σ from the boundary the minority class has probability Φ(-3) ≈ 0.0013: abstaining needs
    # dozens of minority draws out of 200, a chance far below 1e-30.
    far = predict(_linear(2), _point(-3 * SIGMA).expand(50, 2), sigma=SIGMA, n=200, alpha=ALPHA, seed=3)
    assert bool((far == 0).all())


def test_lower_bound_is_clopper_pearson_and_tight():
    n = 20_000
    cert = certify(_linear(1), _point(SIGMA)[None], sigma=SIGMA, n0=100, n=n, alpha=ALPHA, seed=4)
    k, p_lower = int(cert.count[0]), float(cert.p_lower[0])
    assert p_lower == beta.ppf(ALPHA, k, n - k + 1)
    # Clopper–Pearson: the p at which seeing k or more successes has probability alpha.
    assert binom.sf(k - 1, n, p_lower) == pytest.approx(ALPHA, rel=1e-6)
    assert float(cert.radius[0]) == SIGMA * norm.ppf(p_lower)
    p_a = norm.cdf(1.0)
    sd = math.sqrt(p_a * (1 - p_a) / n)
    assert p_a - (6 + norm.isf(ALPHA)) * sd < p_lower < p_a


def test_batch_size_and_seed_form_do_not_change_the_result():
    x = torch.stack([_point(m) for m in (-0.4, 0.02, 0.3)])
    results = [
        certify(_linear(2), x, sigma=SIGMA, n0=30, n=300, batch_size=size, seed=5) for size in (1, 7, 64, 10_000)
    ]
    results.append(certify(_linear(2), x, sigma=SIGMA, n0=30, n=300, seed=torch.Generator().manual_seed(5)))
    for other in results[1:]:
        assert torch.equal(other.prediction, results[0].prediction)
        assert torch.equal(other.count, results[0].count)
        assert torch.equal(other.radius.nan_to_num(-1.0), results[0].radius.nan_to_num(-1.0))
    assert not torch.equal(certify(_linear(2), x, sigma=SIGMA, n0=30, n=300, seed=6).count, results[0].count)
    first = predict(_linear(2), x, sigma=SIGMA, n=300, batch_size=3, seed=7)
    assert torch.equal(first, predict(_linear(2), x, sigma=SIGMA, n=300, batch_size=1000, seed=7))


class _Recorder(nn.Module):
    """A one-logit classifier that keeps what it was given and in which mode."""

    def __init__(self):
        super().__init__()
        self.inner = nn.Dropout(0.5)
        self.seen: list[torch.Tensor] = []
        self.modes: set[tuple[bool, bool]] = set()

    def forward(self, x):
        self.seen.append(x.clone())
        self.modes.add((self.training, self.inner.training))
        return x[:, 0]


def test_noise_is_gaussian_in_input_space_and_model_runs_in_eval_mode():
    x = torch.tensor([[0.3, -0.2, 1.0]])
    units = []
    for sigma in (0.5, 2.0):
        model = _Recorder().train()
        model.inner.eval()  # mixed flags must come back as they were
        certify(model, x, sigma=sigma, n0=10, n=4000, seed=8)
        assert model.modes == {(False, False)}
        assert model.training and not model.inner.training
        units.append((torch.cat(model.seen) - x) / sigma)
    # Same seed, two strengths: the same unit noise, scaled.
    torch.testing.assert_close(units[0], units[1])
    for distance, bound in (six_se_mean(units[0], 0.0), six_se_var(units[0], 1.0)):
        assert distance < bound


def test_plain_callable_and_probability_outputs():
    x = _point(0.5)[None]
    kwargs = {"sigma": SIGMA, "n0": 20, "n": 200, "seed": 9}
    prob = certify(lambda b: torch.sigmoid(b @ W + B), x, from_logits=False, **kwargs)
    logit = certify(lambda b: b @ W + B, x, **kwargs)
    assert torch.equal(prob.count, logit.count)


def test_certified_accuracy_counts_correct_and_large_enough():
    cert = Certificate(
        prediction=torch.tensor([1, ABSTAIN, 0, 2]),
        radius=torch.tensor([0.5, math.nan, 1.0, 0.2], dtype=torch.float64),
        p_lower=torch.zeros(4, dtype=torch.float64),
        count=torch.zeros(4, dtype=torch.long),
        sigma=0.5,
        n0=10,
        n=100,
        alpha=0.001,
    )
    labels = torch.tensor([1, 1, 0, 0])
    assert certified_accuracy(cert, labels, [0.0, 0.5, 0.6, 2.0]) == [0.5, 0.5, 0.25, 0.0]
    with pytest.raises(ValueError, match="radii"):
        certified_accuracy(cert, labels, [-0.1])
    with pytest.raises(ValueError, match="labels"):
        certified_accuracy(cert, labels[:3], [0.0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": -1.0}, "sigma"),
        ({"sigma": math.inf}, "sigma"),
        ({"n0": 100, "n": 100}, "n0"),
        ({"n0": 0}, "n0"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_certify_rejects_bad_arguments(kwargs, match):
    arguments = {"sigma": SIGMA, "n0": 10, "n": 100, **kwargs}
    with pytest.raises(ValueError, match=match):
        certify(_linear(1), _point(0.1)[None], **arguments)


def test_bad_inputs_and_outputs():
    with pytest.raises(ValueError, match="n="):
        predict(_linear(1), _point(0.1)[None], sigma=SIGMA, n=0)
    with pytest.raises(TypeError, match="floating"):
        predict(_linear(1), torch.zeros(1, 2, dtype=torch.long), sigma=SIGMA, n=10)
    with pytest.raises(ValueError, match="outputs"):
        predict(lambda b: b[None], _point(0.1)[None], sigma=SIGMA, n=10)
