"""A model's accuracy and loss over the corruption suite, and the corruption error against a baseline.

mCE and relative mCE as in Hendrycks & Dietterich 2019 (ICLR, "Benchmarking Neural Network Robustness
to Common Corruptions and Perturbations"), Section 3, with E the error rate (1 - accuracy):

    CE_c  = sum_s E_{s,c} / sum_s E^base_{s,c}                                 mCE = mean_c CE_c
    rCE_c = sum_s (E_{s,c} - E_clean) / sum_s (E^base_{s,c} - E^base_clean)    relative mCE = mean_c rCE_c

The paper uses AlexNet as the baseline and prints percentages; here the baseline is any model
evaluated on the same suite (e.g. the same network trained without noise) and the results are ratios.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor

from noisereg import metrics
from noisereg._checks import check_int
from noisereg.robustness._evaluation import (
    Model,
    check_inputs,
    check_model,
    evaluating,
    rebatch,
    rows_per_chunk,
)
from noisereg.robustness.corruptions import (
    PARAMETERS,
    SEVERITY_CONSTANTS,
    Constants,
    Corruption,
    check_range,
    corrupt,
    corruption_strength,
)
from noisereg.seeding import check_seed, derive_seed, make_generator

__all__ = ["CorruptionResult", "evaluate_corruptions", "mce", "relative_mce"]


@dataclass(frozen=True)
class CorruptionResult:
    """Accuracy and loss (mean NLL) of one model on clean data and on every corruption and severity.

    ``accuracy[c][i]``, ``loss[c][i]`` and ``strengths[c][i]`` belong to corruption c at severity
    ``severities[i]``.
    """

    constants: str
    severities: tuple[int, ...]
    clean_accuracy: float
    clean_loss: float
    accuracy: dict[str, tuple[float, ...]]
    loss: dict[str, tuple[float, ...]]
    strengths: dict[str, tuple[float, ...]]

    @property
    def clean_error(self) -> float:
        return 1.0 - self.clean_accuracy

    @property
    def errors(self) -> dict[str, tuple[float, ...]]:
        """Error rates, 1 - accuracy, per corruption and severity (the E of mCE)."""
        return {c: tuple(1.0 - a for a in accs) for c, accs in self.accuracy.items()}

    @property
    def mean_corruption_accuracy(self) -> float:
        """Mean accuracy over all corruptions and severities."""
        return math.fsum(a for accs in self.accuracy.values() for a in accs) / self._cells

    @property
    def gap(self) -> float:
        """Clean accuracy minus mean corruption accuracy: the smaller, the more robust."""
        return self.clean_accuracy - self.mean_corruption_accuracy

    @property
    def _cells(self) -> int:
        return len(self.accuracy) * len(self.severities)

    def rows(self) -> list[dict[str, object]]:
        """One flat row per corruption and severity, for a table: the corruption, severity, parameter
        name and value, accuracy, error, loss, and the gap to clean accuracy."""
        return [
            {
                "corruption": c,
                "severity": s,
                "parameter": PARAMETERS[c],
                "strength": self.strengths[c][i],
                "accuracy": self.accuracy[c][i],
                "error": 1.0 - self.accuracy[c][i],
                "loss": self.loss[c][i],
                "gap": self.clean_accuracy - self.accuracy[c][i],
            }
            for c in self.accuracy
            for i, s in enumerate(self.severities)
        ]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready data; :meth:`from_dict` rebuilds the result."""
        return {
            "constants": self.constants,
            "severities": list(self.severities),
            "clean_accuracy": self.clean_accuracy,
            "clean_loss": self.clean_loss,
            "accuracy": {c: list(v) for c, v in self.accuracy.items()},
            "loss": {c: list(v) for c, v in self.loss.items()},
            "strengths": {c: list(v) for c, v in self.strengths.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> CorruptionResult:
        def tuples(table: Mapping[str, Sequence[float]]) -> dict[str, tuple[float, ...]]:
            return {c: tuple(float(v) for v in values) for c, values in table.items()}

        # What to_dict() wrote; a value of another shape fails in the conversions below.
        fields = cast(Mapping[str, Any], data)
        return cls(
            constants=str(fields["constants"]),
            severities=tuple(int(s) for s in fields["severities"]),
            clean_accuracy=float(fields["clean_accuracy"]),
            clean_loss=float(fields["clean_loss"]),
            accuracy=tuples(fields["accuracy"]),
            loss=tuples(fields["loss"]),
            strengths=tuples(fields["strengths"]),
        )

    def _check_comparable(self, baseline: CorruptionResult) -> None:
        if not isinstance(baseline, CorruptionResult):
            raise TypeError(f"baseline must be a CorruptionResult, got {type(baseline).__name__}")
        mine = (self.constants, self.severities, sorted(self.accuracy))
        theirs = (baseline.constants, baseline.severities, sorted(baseline.accuracy))
        if mine != theirs:
            raise ValueError(
                f"baseline was evaluated on another suite: (constants, severities, corruptions) {theirs} != {mine}"
            )

    def mce(self, baseline: CorruptionResult) -> float:
        """:func:`mce` of this result against ``baseline`` (same constants, severities, corruptions)."""
        self._check_comparable(baseline)
        return mce(self.errors, baseline.errors)

    def relative_mce(self, baseline: CorruptionResult) -> float:
        """:func:`relative_mce` of this result against ``baseline``."""
        self._check_comparable(baseline)
        return relative_mce(self.errors, self.clean_error, baseline.errors, baseline.clean_error)


def _outputs(model: Model, batches: Iterator[Tensor]) -> Tensor:
    return torch.cat([model(batch).detach().cpu() for batch in batches])


def evaluate_corruptions(
    model: Model,
    x: Tensor,
    y: Tensor,
    *,
    constants: Constants,
    corruptions: Sequence[Corruption] | None = None,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    scale: float | None = None,
    seed: int = 0,
    batch_size: int = 1_000,
    from_logits: bool = True,
) -> CorruptionResult:
    """Evaluate a classifier on clean data and on corrupted copies of it at each severity.

    The model runs in eval mode without gradients (each submodule's mode is restored after). For each
    corruption c and severity s the data are corrupted with :func:`~noisereg.robustness.corrupt` in
    chunks of about 2^20 values; chunk k draws from ``derive_seed(seed, c, s, k)``, so the noise
    depends on ``seed`` only, never on ``batch_size`` or on which other corruptions are evaluated.
    The same seed and batch size give the same table; another batch size can move the model's own
    float rounding (BLAS blocking) and so the losses in their last digits.

    Args:
        model: an ``nn.Module`` or a callable mapping a batch to ``[B]``/``[B, C]`` outputs.
        x: inputs ``[N, ...]``; in [0, 1] for image constants.
        y: class labels ``[N]``.
        constants: ``"cifar10"``, ``"imagenet"`` (Hendrycks & Dietterich's image constants) or
            ``"tabular"`` (multiples of the feature scale); see :mod:`noisereg.robustness.corruptions`.
        corruptions: names from :data:`~noisereg.robustness.CORRUPTIONS`; default all those the
            constants define (all but ``"shot"`` for tabular data).
        severities: distinct ints in 1-5 (default all five).
        scale: feature scale for tabular constants (default 1: standardized data).
        seed: int >= 0 (default 0).
        batch_size: inputs per forward pass, >= 1; does not change the noise.
        from_logits: whether the outputs are logits (True) or probabilities; the loss is the mean NLL.

    Raises:
        ValueError: unknown constants or corruption names (the known ones are listed), severities
            outside 1-5 or repeated, image data outside [0, 1], labels that do not fit the outputs.
    """
    model, x = check_model(model), check_inputs(x)
    seed, batch_size = check_seed(seed), check_int(batch_size, "batch_size", low=1)
    if constants not in SEVERITY_CONSTANTS:
        raise ValueError(f"{constants=} must be one of {tuple(SEVERITY_CONSTANTS)}")
    if isinstance(corruptions, str) or not isinstance(severities, Sequence):
        raise TypeError(
            f"corruptions={corruptions!r} and severities={severities!r} must be sequences, "
            "e.g. corruptions=['gaussian'], severities=(1, 2)"
        )
    # Each name is checked by corruption_strength below, before any model runs.
    names = cast(tuple[Corruption, ...], tuple(SEVERITY_CONSTANTS[constants] if corruptions is None else corruptions))
    levels = tuple(severities)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"corruptions={names} must be distinct names, at least one")
    if not levels or len(set(levels)) != len(levels):
        raise ValueError(f"severities={levels} must be distinct ints in 1-5, at least one")
    # Every (corruption, severity) and the data range are checked before any model runs.
    strengths: dict[str, tuple[float, ...]] = {
        c: tuple(corruption_strength(c, s, constants=constants, scale=scale) for s in levels) for c in names
    }
    check_range(x, constants)
    rows = rows_per_chunk(x[0])

    def corrupted(c: Corruption, s: int) -> Iterator[Tensor]:
        for k, start in enumerate(range(0, len(x), rows)):
            generator = make_generator(derive_seed(seed, c, s, k), x.device)
            part = x[start : start + rows]
            yield corrupt(part, c, s, constants=constants, scale=scale, generator=generator)

    def score(outputs: Tensor) -> tuple[float, float]:
        kwargs = {"from_logits": from_logits}
        return metrics.accuracy(outputs, y, **kwargs), metrics.nll(outputs, y, **kwargs)

    accuracy: dict[str, tuple[float, ...]] = {}
    loss: dict[str, tuple[float, ...]] = {}
    with evaluating(model):
        clean_accuracy, clean_loss = score(_outputs(model, iter(x.split(batch_size))))
        for c in names:
            scores = [score(_outputs(model, rebatch(corrupted(c, s), batch_size))) for s in levels]
            accuracy[c] = tuple(a for a, _ in scores)
            loss[c] = tuple(v for _, v in scores)
    return CorruptionResult(constants, levels, clean_accuracy, clean_loss, accuracy, loss, strengths)


def _check_errors(errors: object, name: str) -> dict[str, tuple[float, ...]]:
    if not isinstance(errors, Mapping) or not errors:
        raise ValueError(f"{name} must be a non-empty mapping: corruption -> errors per severity")
    table = {}
    for c, values in errors.items():
        values = tuple(float(v) for v in values)
        if not values or not all(0.0 <= v <= 1.0 for v in values):
            raise ValueError(f"{name}[{c!r}]={values} must be error rates in [0, 1], at least one")
        table[c] = values
    return table


def _check_pair(
    errors: object, baseline_errors: object
) -> tuple[dict[str, tuple[float, ...]], dict[str, tuple[float, ...]]]:
    errors = _check_errors(errors, "errors")
    baseline = _check_errors(baseline_errors, "baseline_errors")
    if set(errors) != set(baseline):
        raise ValueError(
            f"errors and baseline_errors must cover the same corruptions: {sorted(errors)} != {sorted(baseline)}"
        )
    for c in errors:
        if len(errors[c]) != len(baseline[c]):
            raise ValueError(
                f"errors[{c!r}] and baseline_errors[{c!r}] must have one value per severity each, "
                f"got {len(errors[c])} and {len(baseline[c])}"
            )
    return errors, baseline


def mce(errors: Mapping[str, Sequence[float]], baseline_errors: Mapping[str, Sequence[float]]) -> float:
    """Mean corruption error: mean over corruptions c of sum_s E_{s,c} / sum_s E^base_{s,c}.

    Args:
        errors: corruption -> error rates (1 - accuracy) at each severity, e.g.
            ``CorruptionResult.errors``.
        baseline_errors: the same for the baseline model, same corruptions and severities.

    Raises:
        ValueError: different corruptions or severity counts, rates outside [0, 1], or a baseline
            with no error on a corruption (CE undefined).

    >>> mce({"gaussian": [0.25, 0.5]}, {"gaussian": [0.5, 0.5]})
    0.75
    """
    errors, baseline = _check_pair(errors, baseline_errors)
    ratios = []
    for c in errors:
        denominator = math.fsum(baseline[c])
        if denominator == 0:
            raise ValueError(f"baseline_errors[{c!r}] are all 0: the corruption error is undefined")
        ratios.append(math.fsum(errors[c]) / denominator)
    return math.fsum(ratios) / len(ratios)


def relative_mce(
    errors: Mapping[str, Sequence[float]],
    clean_error: float,
    baseline_errors: Mapping[str, Sequence[float]],
    baseline_clean_error: float,
) -> float:
    """Relative mCE: mean over c of sum_s (E_{s,c} - E_clean) / sum_s (E^base_{s,c} - E^base_clean).

    It measures how much accuracy is lost to corruption relative to the baseline's loss, apart from
    the clean error. Arguments as :func:`mce` plus the two clean error rates in [0, 1].

    Raises:
        ValueError: as :func:`mce`, and a baseline whose corrupted errors sum to its clean error on a
            corruption (zero denominator).

    >>> round(relative_mce({"shot": [0.2, 0.3]}, 0.1, {"shot": [0.3, 0.5]}, 0.1), 6)
    0.5
    """
    errors, baseline = _check_pair(errors, baseline_errors)
    for name, value in (("clean_error", clean_error), ("baseline_clean_error", baseline_clean_error)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name}={value!r} must be an error rate in [0, 1]")
    ratios = []
    for c in errors:
        denominator = math.fsum(b - baseline_clean_error for b in baseline[c])
        if denominator == 0:
            raise ValueError(
                f"baseline_errors[{c!r}] sum to the baseline's clean error: the relative error is undefined"
            )
        ratios.append(math.fsum(e - clean_error for e in errors[c]) / denominator)
    return math.fsum(ratios) / len(ratios)
