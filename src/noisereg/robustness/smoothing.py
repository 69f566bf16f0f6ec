"""Certified robustness by randomized smoothing (Cohen, Rosenfeld & Kolter 2019).

The smoothed classifier of a base classifier f is g(x) = argmax_c P(f(x + ε) = c), ε ~ N(0, σ²I).
If the top class has probability p_A >= ½ under the noise, g is constant within the L2 ball of radius
σ·Φ⁻¹(p_A) around x (their Theorem 1, with p_B = 1 - p_A). Both functions below estimate g by Monte
Carlo and come with the paper's guarantees, each at level ``alpha``:

- :func:`predict` returns a class other than g(x) with probability at most alpha (it abstains instead).
- :func:`certify` returns a class and radius that are wrong (the class is not g(x), or g is not
  robust within the radius) with probability at most alpha.

Noise is added to the inputs as given, so the model must contain its own normalization (the paper's
"noise in input space, before normalization"). The base classifier is the model in eval mode: the
argmax of ``[B, C]`` outputs, or for one output column class 1 when the logit is > 0 (``from_logits``)
or the probability > 0.5.

Sampling: for each input, noisy copies are drawn from one generator in chunks whose size depends only
on the input's shape, then evaluated ``batch_size`` at a time, so ``batch_size`` changes speed and
memory but never the noise for a fixed seed (a class count could move only if a noisy copy sat on a
decision boundary within the model's float rounding, which can depend on the batch shape). Inputs are
processed in order, each using the next n0 + n (or n) draws of the stream.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from scipy.stats import beta, binomtest, norm
from torch import Tensor

from noisereg._checks import check_int, check_real, check_type
from noisereg.noise import gaussian
from noisereg.robustness._evaluation import (
    Model,
    check_inputs,
    check_model,
    check_positive,
    evaluating,
    predicted_classes,
    rebatch,
    rows_per_chunk,
)
from noisereg.seeding import make_generator

__all__ = ["ABSTAIN", "Certificate", "certified_accuracy", "certify", "predict"]

ABSTAIN = -1
"""The class index returned where the smoothed classifier abstains."""


def _check_alpha(alpha: object) -> float:
    return check_real(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)


def _noisy_batches(
    x: Tensor, sigma: float, total: int, batch_size: int, generator: torch.Generator | None
) -> Iterator[Tensor]:
    """``total`` copies x + σ·ε in batches of ``batch_size``; the stream does not depend on it."""
    chunk = rows_per_chunk(x)
    sizes = [min(chunk, total - start) for start in range(0, total, chunk)]
    chunks = (gaussian(x.expand(size, *x.shape), sigma, generator=generator) for size in sizes)
    return rebatch(chunks, batch_size)


def _counts(
    model: Model,
    x: Tensor,
    total: int,
    *,
    sigma: float,
    batch_size: int,
    generator: torch.Generator | None,
    from_logits: bool,
) -> Tensor:
    """How often the base classifier picks each class over ``total`` noisy copies of one input."""
    counts: Tensor | None = None
    for batch in _noisy_batches(x, sigma, total, batch_size, generator):
        classes, num_classes = predicted_classes(model(batch), from_logits=from_logits, batch=len(batch))
        found = torch.bincount(classes.cpu(), minlength=num_classes)
        counts = found if counts is None else counts + found
    # total >= 1 (checked by the callers), so there was at least one batch.
    return cast(Tensor, counts)


def _checked(
    model: object,
    x: object,
    sigma: object,
    n: object,
    alpha: object,
    batch_size: object,
    seed: int | torch.Generator | None,
    from_logits: object,
) -> tuple[Model, Tensor, int, float, dict[str, Any]]:
    """The checked arguments: (model, x, n, alpha, the keyword arguments of :func:`_counts`)."""
    check_type(from_logits, "from_logits", bool, "True (logits) or False (probabilities)")
    model, x = check_model(model), check_inputs(x)
    options = {
        "sigma": check_positive(sigma, "sigma"),
        "batch_size": check_int(batch_size, "batch_size", low=1),
        "generator": make_generator(seed, x.device),
        "from_logits": from_logits,
    }
    return model, x, check_int(n, "n", low=1), _check_alpha(alpha), options


def predict(
    model: Model,
    x: Tensor,
    *,
    sigma: float,
    n: int = 100_000,
    alpha: float = 0.001,
    batch_size: int = 1_000,
    seed: int | torch.Generator | None = None,
    from_logits: bool = True,
) -> Tensor:
    """PREDICT of Cohen et al. 2019: the smoothed classifier's class for each input, or ``ABSTAIN``.

    Per input: count the base classifier's classes on n copies x + σ·ε; with n_A, n_B the two largest
    counts, return the top class if the two-sided binomial test of n_A out of n_A + n_B against ½ has
    p-value <= alpha, else abstain. The returned class differs from g(x) with probability <= alpha.

    Args:
        model: the base classifier, an ``nn.Module`` (put in eval mode for the call, restored after)
            or a callable mapping a batch to ``[B]``/``[B, C]`` outputs.
        x: inputs ``[N, ...]`` (floating point), in the space the noise is meant for.
        sigma: noise standard deviation, > 0.
        n: Monte-Carlo samples per input, >= 1 (default 100,000 as in the paper).
        alpha: test level in (0, 1) (default 0.001).
        batch_size: noisy copies per forward pass, >= 1; does not change the noise.
        seed: an int, a ``torch.Generator`` on x's device (used as is), or None (torch's global one).
        from_logits: for one-column outputs, whether they are logits (True) or probabilities.

    Returns:
        A long tensor ``[N]`` of classes, ``ABSTAIN`` (-1) where the test is not significant.

    Raises:
        ValueError: ``sigma <= 0``, ``n < 1``, ``alpha`` outside (0, 1), ``batch_size < 1``, model
            outputs of the wrong shape. TypeError: x not floating point, model not callable.
    """
    model, x, n, alpha, options = _checked(model, x, sigma, n, alpha, batch_size, seed, from_logits)
    result = torch.full((len(x),), ABSTAIN, dtype=torch.long)
    with evaluating(model):
        for i in range(len(x)):
            counts = _counts(model, x[i], n, **options)
            top = torch.topk(counts, 2)
            n_a, n_b = int(top.values[0]), int(top.values[1])
            if binomtest(n_a, n_a + n_b, 0.5).pvalue <= alpha:
                result[i] = int(top.indices[0])
    return result


@dataclass(frozen=True)
class Certificate:
    """What :func:`certify` found for each input (tensors of shape ``[N]`` on the CPU).

    ``prediction``: the class, ``ABSTAIN`` (-1) where p_lower < ½; ``radius``: σ·Φ⁻¹(p_lower), NaN
    where abstained; ``p_lower``: the one-sided Clopper–Pearson lower bound on p_A at level alpha;
    ``count``: n_A, the estimation samples that fell in the selected class.
    """

    prediction: Tensor
    radius: Tensor
    p_lower: Tensor
    count: Tensor
    sigma: float
    n0: int
    n: int
    alpha: float

    @property
    def abstained(self) -> Tensor:
        return self.prediction == ABSTAIN


def certify(
    model: Model,
    x: Tensor,
    *,
    sigma: float,
    n0: int = 100,
    n: int = 100_000,
    alpha: float = 0.001,
    batch_size: int = 1_000,
    seed: int | torch.Generator | None = None,
    from_logits: bool = True,
) -> Certificate:
    """CERTIFY of Cohen et al. 2019: a class and a certified L2 radius for each input, or abstain.

    Per input: the class c_A is the most frequent of the base classifier's classes on n0 copies
    x + σ·ε; on n fresh copies, n_A of them fall in c_A and
    p_lower = Beta⁻¹(alpha; n_A, n - n_A + 1) (one-sided Clopper–Pearson, 0 if n_A = 0). If
    p_lower >= ½ the result is c_A with radius σ·Φ⁻¹(p_lower), else abstain. With probability at
    least 1 - alpha a returned (class, radius) is right: g(x + δ) = c_A for all ‖δ‖₂ < radius.

    Args:
        n0: selection samples per input, >= 1 (default 100); must be < n.
        n: estimation samples per input (default 100,000).
        Other arguments as :func:`predict`.

    Raises:
        ValueError: as :func:`predict`, and ``n0 >= n``.
    """
    model, x, n, alpha, options = _checked(model, x, sigma, n, alpha, batch_size, seed, from_logits)
    n0 = check_int(n0, "n0", low=1)
    if n0 >= n:
        raise ValueError(f"{n0=} must be < {n=}: the selection samples are meant to be a small prelude")
    prediction = torch.full((len(x),), ABSTAIN, dtype=torch.long)
    radius = torch.full((len(x),), math.nan, dtype=torch.float64)
    p_lower = torch.zeros(len(x), dtype=torch.float64)
    count = torch.zeros(len(x), dtype=torch.long)
    with evaluating(model):
        for i in range(len(x)):
            c_a = int(_counts(model, x[i], n0, **options).argmax())
            counts = _counts(model, x[i], n, **options)
            n_a = int(counts[c_a])
            bound = float(beta.ppf(alpha, n_a, n - n_a + 1)) if n_a > 0 else 0.0
            count[i], p_lower[i] = n_a, bound
            if bound >= 0.5:
                prediction[i], radius[i] = c_a, sigma * float(norm.ppf(bound))
    return Certificate(prediction, radius, p_lower, count, options["sigma"], n0, n, alpha)


def certified_accuracy(certificate: Certificate, labels: Tensor, radii: Sequence[float]) -> list[float]:
    """Certified accuracy at each radius r: the share of inputs certified correct with radius >= r.

    An input counts at r when ``prediction == label`` (so never when abstained) and ``radius >= r``.
    The curve over r is the paper's Fig. 1-style "certified accuracy vs radius".

    Args:
        certificate: the result of :func:`certify` on N inputs.
        labels: their true classes ``[N]``.
        radii: radii >= 0, in any order; the result follows the same order.

    Raises:
        ValueError: no inputs, labels of the wrong shape, a negative or non-finite radius.
    """
    if not isinstance(certificate, Certificate):
        got = type(certificate).__name__
        raise TypeError(f"certificate must be a Certificate from certify(), got {got}")
    labels = torch.as_tensor(labels).reshape(-1).cpu()
    if len(certificate.prediction) == 0 or labels.shape != certificate.prediction.shape:
        raise ValueError(
            f"labels must have shape {list(certificate.prediction.shape)} (one per certified input, at "
            f"least one), got {list(labels.shape)}"
        )
    checked: list[float] = []
    for i, r in enumerate(radii):
        checked.append(check_real(r, f"radii[{i}]", low=0.0))
    correct = certificate.prediction == labels.long()
    return [((correct & (certificate.radius >= r)).double().mean().item()) for r in checked]
