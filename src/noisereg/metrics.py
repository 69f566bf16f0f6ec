"""Classification metrics: accuracy, NLL, Brier score, calibration error and reliability bins.

Every function takes model ``outputs`` and integer ``labels`` and must be told what the outputs are,
with the keyword ``from_logits`` (no guessing from the values):

- binary: shape ``[N]`` or ``[N, 1]``, the logit (``from_logits=True``) or the probability of class 1
  (``from_logits=False``). It is read as the two-class distribution ``[1 - p, p]``, so a binary model
  and a two-logit model that agree give the same numbers.
- multi-class: shape ``[N, C]`` with ``C >= 2``, logits (softmax is applied) or probabilities (each
  row in [0, 1] and summing to 1).

All sums are taken in float64; results are Python floats.

Calibration follows Guo et al. 2017 ("On Calibration of Modern Neural Networks"): with bins
``B_1..B_M`` of the confidences, ``ECE = sum_m |B_m|/N * |acc(B_m) - conf(B_m)|``. Equal-width bins
are ``[m/M, (m+1)/M)``, the last one closed, ``[(M-1)/M, 1]``, so a confidence of exactly 1.0 is
counted in it. The adaptive ECE uses equal-mass bins instead (Nixon et al. 2019, "Measuring
Calibration in Deep Learning"): the samples sorted by confidence (stable sort) and cut into ``M``
groups whose sizes differ by at most one.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, cast

import numpy as np
import torch
import torch.nn.functional as F

from noisereg._checks import check_int, check_type

__all__ = [
    "Reliability",
    "accuracy",
    "adaptive_ece",
    "brier_score",
    "classification_metrics",
    "ece",
    "nll",
    "reliability",
]

Binning = Literal["equal_width", "equal_mass"]
Mode = Literal["top_label", "positive_class"]
Array = torch.Tensor | np.ndarray
"""Model outputs or labels as every metric takes them: a tensor or a NumPy array."""

_BINNINGS = ("equal_width", "equal_mass")
_MODES = ("top_label", "positive_class")
_ROW_SUM_TOL = 1e-4


def _log_probs(outputs: torch.Tensor | np.ndarray, from_logits: bool) -> torch.Tensor:
    """Log-probabilities ``[N, C]`` in float64 from binary or multi-class outputs."""
    probs, log_probs, _ = _outputs(outputs, from_logits)
    # _outputs gives exactly one of the two.
    return cast(torch.Tensor, log_probs) if probs is None else probs.log()


def _outputs(
    outputs: torch.Tensor | np.ndarray, from_logits: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.dtype]:
    """Checked outputs as ``(probabilities, None, dtype)`` when given probabilities (float64 ``[N, C]``,
    the given values unchanged) or ``(None, log-probabilities, float64)`` from logits; ``dtype`` is the
    precision the probabilities are exact in."""
    check_type(from_logits, "from_logits", bool, "True (logits) or False (probabilities)")
    outputs = torch.as_tensor(outputs)
    if not outputs.is_floating_point():
        raise TypeError(f"outputs must be a floating tensor, got dtype {outputs.dtype}")
    given = outputs.dtype
    outputs = outputs.detach().to(torch.float64)
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        outputs = outputs[:, 0]
    if outputs.ndim not in (1, 2) or outputs.shape[0] == 0:
        raise ValueError(
            f"outputs must have shape [N] or [N, 1] (binary) or [N, C] (multi-class), N >= 1; "
            f"got {tuple(outputs.shape)}"
        )
    if outputs.isnan().any():
        raise ValueError("outputs contain NaN")
    if from_logits:
        if outputs.ndim == 1:
            return None, torch.stack([F.logsigmoid(-outputs), F.logsigmoid(outputs)], dim=1), torch.float64
        return None, torch.log_softmax(outputs, dim=1), torch.float64
    if outputs.min() < 0 or outputs.max() > 1:
        raise ValueError(
            "outputs must be probabilities in [0, 1] with from_logits=False; "
            f"got values in [{outputs.min().item():.4g}, {outputs.max().item():.4g}] "
            "(pass from_logits=True for logits)"
        )
    if outputs.ndim == 1:
        outputs = torch.stack([1 - outputs, outputs], dim=1)
    worst = (outputs.sum(dim=1) - 1).abs().max().item()
    if worst > _ROW_SUM_TOL:
        raise ValueError(
            f"probability rows must sum to 1 (within {_ROW_SUM_TOL}); the worst is off by {worst:.4g} "
            "(pass from_logits=True for logits)"
        )
    return outputs, None, given


def _labels(labels: torch.Tensor | np.ndarray, n: int, num_classes: int) -> torch.Tensor:
    labels = torch.as_tensor(labels).detach()
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape [{n}] to match outputs, got {tuple(labels.shape)}")
    if labels.is_floating_point():
        # Float 0/1 targets are what BCE training uses; accept them only when they are whole numbers.
        if not torch.equal(labels, labels.round()):
            raise ValueError("labels must be class indices; got non-integer floating values")
    labels = labels.to(torch.long)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"labels must be in [0, {num_classes - 1}] for {num_classes} classes; "
            f"got values in [{labels.min().item()}, {labels.max().item()}]"
        )
    return labels


def _prepare(outputs: Array, labels: Array, from_logits: bool) -> tuple[torch.Tensor, torch.Tensor]:
    log_probs = _log_probs(outputs, from_logits)
    return log_probs, _labels(labels, log_probs.shape[0], log_probs.shape[1])


def accuracy(outputs: Array, labels: Array, *, from_logits: bool) -> float:
    """Fraction of samples whose most probable class is the label.

    Ties go to the lower class index (a binary probability of exactly 0.5 predicts class 0).

    Args:
        outputs: ``[N]``/``[N, 1]`` binary or ``[N, C]`` multi-class logits or probabilities.
        labels: ``[N]`` class indices.
        from_logits: True if ``outputs`` are logits, False if probabilities.

    >>> accuracy(torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1, 1, 1]), from_logits=True)
    0.6666666666666666
    """
    log_probs, labels = _prepare(outputs, labels, from_logits)
    return (log_probs.argmax(dim=1) == labels).double().mean().item()


def nll(outputs: Array, labels: Array, *, from_logits: bool) -> float:
    """Mean negative log-likelihood, ``-(1/N) sum_i log p_i[y_i]`` (natural log).

    From logits it is computed with ``log_softmax``/``logsigmoid`` (no overflow); a probability of 0
    on the true class gives ``inf``, which is the honest value (no clipping).

    Args: as :func:`accuracy`.
    """
    log_probs, labels = _prepare(outputs, labels, from_logits)
    return -log_probs.gather(1, labels[:, None]).mean().item()


def brier_score(outputs: Array, labels: Array, *, from_logits: bool) -> float:
    """Brier score, ``(1/N) sum_i sum_c (p_ic - y_ic)^2`` with ``y`` one-hot, in [0, 2] (Brier 1950).

    The same definition for binary and multi-class outputs: for a binary model it is twice the
    customary ``mean((p - y)^2)`` (sklearn's ``brier_score_loss`` default halves binary scores).

    Args: as :func:`accuracy`.
    """
    log_probs, labels = _prepare(outputs, labels, from_logits)
    one_hot = F.one_hot(labels, log_probs.shape[1]).to(torch.float64)
    return ((log_probs.exp() - one_hot) ** 2).sum(dim=1).mean().item()


@dataclass(frozen=True)
class Reliability:
    """Per-bin calibration data: the numbers behind a reliability diagram.

    ``lower``/``upper`` are the bin edges (for equal-mass bins, the smallest and largest confidence in
    the bin; NaN for an empty bin); ``confidence`` the mean confidence and ``accuracy`` the observed
    frequency of being right in each bin (NaN where ``count`` is 0). With ``mode="positive_class"``
    the confidence is ``p(class 1)`` and ``accuracy`` the fraction of samples labelled 1.
    """

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    confidence: tuple[float, ...]
    accuracy: tuple[float, ...]
    count: tuple[int, ...]
    binning: Binning
    mode: Mode

    @property
    def ece(self) -> float:
        """``sum_m count_m/N * |accuracy_m - confidence_m|`` over the non-empty bins."""
        total = sum(self.count)
        return math.fsum(
            n / total * abs(a - c) for n, a, c in zip(self.count, self.accuracy, self.confidence, strict=True) if n
        )

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready data (None for the NaNs of empty bins), as the report module reads it."""

        def clean(values: tuple[float, ...]) -> list[float | None]:
            return [None if math.isnan(v) else v for v in values]

        return {
            "lower": clean(self.lower),
            "upper": clean(self.upper),
            "confidence": clean(self.confidence),
            "accuracy": clean(self.accuracy),
            "count": list(self.count),
            "binning": self.binning,
            "mode": self.mode,
        }


def _nearest(value: Fraction, dtype: torch.dtype) -> float:
    """``value`` rounded to the nearest number of ``dtype`` (ties to the lower one).

    Rounding to float64 first and then to a narrower type can round twice; the neighbours of that
    first guess are compared with the exact value instead."""
    guess = torch.tensor(float(value), dtype=torch.float64).to(dtype)
    up = torch.nextafter(guess, torch.tensor(math.inf, dtype=dtype))
    down = torch.nextafter(guess, torch.tensor(-math.inf, dtype=dtype))
    candidates = [float(c) for c in (down, guess, up) if math.isfinite(float(c))]
    return min(candidates, key=lambda c: (abs(Fraction(c) - value), c))


def equal_width_edges(n_bins: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The edges ``m/M``, m = 0..M, each rounded to the nearest number of ``dtype``.

    A confidence equal to ``m/M`` in its own precision (what ``m / M`` gives in that type) lands in
    bin m: linspace's ``m * (1/M)`` can be one unit low (11/15, 3/10), which sent such confidences
    one bin low.

    >>> equal_width_edges(10)[3].item() == 3 / 10
    True
    """
    return torch.tensor(_edges(n_bins, dtype), dtype=dtype)


@functools.lru_cache(maxsize=128)
def _edges(n_bins: int, dtype: torch.dtype) -> tuple[float, ...]:
    # Python's int / int is correctly rounded to float64; narrower types compare neighbours exactly.
    if dtype == torch.float64:
        return tuple(m / n_bins for m in range(n_bins + 1))
    return tuple(_nearest(Fraction(m, n_bins), dtype) for m in range(n_bins + 1))


def _bin_index(
    confidence: torch.Tensor, n_bins: int, binning: Binning, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    if binning == "equal_width":
        # edges[m] <= c < edges[m + 1] gives bin m; the clamp sends c == 1.0 into the last bin. The
        # comparison runs in the precision the confidences were given in, so that a float32 11/15
        # meets the float32 edge 11/15 (in float64 it sits just above or below the float64 edge).
        edges = equal_width_edges(n_bins, dtype)
        return (torch.bucketize(confidence.to(dtype), edges, right=True) - 1).clamp_(0, n_bins - 1)
    order = torch.argsort(confidence, stable=True)
    index = torch.empty_like(order)
    for m, chunk in enumerate(torch.tensor_split(order, n_bins)):
        index[chunk] = m
    return index


def reliability(
    outputs: Array,
    labels: Array,
    *,
    from_logits: bool,
    n_bins: int = 15,
    binning: Binning = "equal_width",
    mode: Mode = "top_label",
) -> Reliability:
    """Bin the predictions by confidence and return each bin's mean confidence, accuracy and count.

    Args:
        outputs, labels, from_logits: as :func:`accuracy`.
        n_bins: number of bins, >= 1 (default 15, as in Guo et al. 2017).
        binning: ``"equal_width"`` (bins ``[m/M, (m+1)/M)``, the last closed at 1) or
            ``"equal_mass"`` (sorted samples cut into groups of equal size, sizes differing by <= 1).
        mode: ``"top_label"`` (confidence = the highest class probability, correct = the argmax is
            the label; the usual ECE) or ``"positive_class"`` (binary only: confidence = p(class 1),
            correct = label is 1; what torchmetrics' ``binary_calibration_error`` and sklearn's
            ``calibration_curve`` bin).

    Raises:
        ValueError: bad ``n_bins``, ``binning`` or ``mode``, or ``positive_class`` with more than two
            classes; the errors of :func:`accuracy`.
    """
    check_int(n_bins, "n_bins", low=1)
    if binning not in _BINNINGS:
        raise ValueError(f"{binning=} must be one of {_BINNINGS}")
    if mode not in _MODES:
        raise ValueError(f"{mode=} must be one of {_MODES}")
    given, log_probs, precision = _outputs(outputs, from_logits)
    # Probabilities are binned as given: exp(log(p)) can differ from p in the last place.
    probs = given if given is not None else cast(torch.Tensor, log_probs).exp()
    labels = _labels(labels, probs.shape[0], probs.shape[1])
    if mode == "top_label":
        confidence, predicted = probs.max(dim=1)
        hit = (predicted == labels).to(torch.float64)
    elif probs.shape[1] == 2:
        confidence, hit = probs[:, 1].contiguous(), labels.to(torch.float64)
    else:
        raise ValueError(f"{mode=} needs binary outputs; got {probs.shape[1]} classes")
    index = _bin_index(confidence, n_bins, binning, precision)
    count = torch.bincount(index, minlength=n_bins)
    # 0 / 0 = NaN marks the empty bins.
    mean_conf = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, index, confidence) / count
    mean_hit = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, index, hit) / count
    if binning == "equal_width":
        edges = equal_width_edges(n_bins)
        lower, upper = edges[:-1], edges[1:]
    else:
        fill = torch.full((n_bins,), math.nan, dtype=torch.float64)
        lower = fill.scatter_reduce(0, index, confidence, "amin", include_self=False)
        upper = fill.scatter_reduce(0, index, confidence, "amax", include_self=False)
    return Reliability(
        lower=tuple(lower.tolist()),
        upper=tuple(upper.tolist()),
        confidence=tuple(mean_conf.tolist()),
        accuracy=tuple(mean_hit.tolist()),
        count=tuple(count.tolist()),
        binning=binning,
        mode=mode,
    )


def ece(outputs: Array, labels: Array, *, from_logits: bool, n_bins: int = 15, mode: Mode = "top_label") -> float:
    """Expected calibration error with ``n_bins`` equal-width bins (Guo et al. 2017).

    ``ECE = sum_m |B_m|/N * |acc(B_m) - conf(B_m)|``; bins ``[m/M, (m+1)/M)``, the last one closed so
    that a confidence of exactly 1.0 is counted. Arguments as :func:`reliability`.

    Three binary probabilities, all with top-label confidence 0.75, two of them right:

    >>> round(ece(torch.tensor([0.75, 0.75, 0.25]), torch.tensor([1, 0, 0]), from_logits=False), 6)
    0.083333
    """
    return reliability(outputs, labels, from_logits=from_logits, n_bins=n_bins, mode=mode).ece


def adaptive_ece(
    outputs: Array, labels: Array, *, from_logits: bool, n_bins: int = 15, mode: Mode = "top_label"
) -> float:
    """ECE over ``n_bins`` equal-mass bins (Nixon et al. 2019). Arguments as :func:`reliability`."""
    return reliability(outputs, labels, from_logits=from_logits, n_bins=n_bins, binning="equal_mass", mode=mode).ece


def classification_metrics(outputs: Array, labels: Array, *, from_logits: bool, n_bins: int = 15) -> dict[str, float]:
    """All scalar metrics at once: ``accuracy``, ``nll``, ``brier``, ``ece``, ``adaptive_ece``.

    ECEs are top-label with ``n_bins`` bins. Arguments as :func:`reliability`.
    """
    kwargs: dict[str, Any] = {"from_logits": from_logits}
    return {
        "accuracy": accuracy(outputs, labels, **kwargs),
        "nll": nll(outputs, labels, **kwargs),
        "brier": brier_score(outputs, labels, **kwargs),
        "ece": ece(outputs, labels, n_bins=n_bins, **kwargs),
        "adaptive_ece": adaptive_ece(outputs, labels, n_bins=n_bins, **kwargs),
    }
