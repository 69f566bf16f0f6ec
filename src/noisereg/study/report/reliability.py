"""Reliability diagrams drawn from stored calibration bins (numpy and matplotlib only, no torch).

The input is the plain data of :meth:`noisereg.metrics.Reliability.to_dict`, as a study stores it:
per bin ``lower``, ``upper``, mean ``confidence``, ``accuracy`` (None or NaN for empty bins) and
``count``. The figure has two panels: accuracy against mean confidence per non-empty bin with the
diagonal of perfect calibration (Guo et al. 2017, Fig. 1 style), and below it the share of samples in
each bin, so that a reader sees which points rest on few samples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_reliability"]

_KEYS = ("lower", "upper", "confidence", "accuracy", "count")


def _as_float(values: Sequence[float | None]) -> np.ndarray:
    return np.array([math.nan if v is None else float(v) for v in values], dtype=float)


def _check_curve(name: str, data: object) -> dict[str, np.ndarray]:
    where = f"curves[{name!r}]"
    if not isinstance(data, Mapping):
        raise TypeError(f"{where} must be a mapping (Reliability.to_dict()), got {type(data).__name__}")
    missing = [k for k in _KEYS if k not in data]
    if missing:
        raise ValueError(f"{where} lacks the keys {missing}; expected {list(_KEYS)}")
    arrays = {k: _as_float(data[k]) for k in _KEYS}
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) != 1 or lengths["count"] == 0:
        raise ValueError(f"{where} must have one value per bin in every key, got lengths {lengths}")
    count = arrays["count"]
    whole = np.isfinite(count) & (count >= 0) & (count == np.round(count))
    if not np.all(whole) or count.sum() == 0:
        raise ValueError(f"{where}['count'] must be whole numbers >= 0, not all 0; got {count.tolist()}")
    for key in ("confidence", "accuracy"):
        filled = arrays[key][count > 0]
        if not np.all((filled >= 0) & (filled <= 1)):
            raise ValueError(f"{where}[{key!r}] must be in [0, 1] for non-empty bins, got {filled.tolist()}")
    return arrays


def _ece(curve: dict[str, np.ndarray]) -> float:
    used = curve["count"] > 0
    weight = curve["count"][used] / curve["count"].sum()
    return float(np.sum(weight * np.abs(curve["accuracy"][used] - curve["confidence"][used])))


def plot_reliability(
    curves: Mapping[str, Mapping[str, object]],
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Draw a reliability diagram of one or more models (arms) and save it as a PNG.

    Args:
        curves: arm name -> ``Reliability.to_dict()`` data; each arm is one line, labelled with its
            ECE (sum over bins of count/N * |accuracy - confidence|).
        path: where to write the PNG; parent folders are created.
        title: figure title (default "Reliability diagram").

    Returns:
        The path written.

    Raises:
        ValueError: no curves, or a curve with missing keys, unequal lengths, negative or fractional
            counts, or confidences/accuracies outside [0, 1]. TypeError: a curve is not a mapping.
    """
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves must be a non-empty mapping: arm name -> Reliability.to_dict() data")
    checked = {str(name): _check_curve(str(name), data) for name, data in curves.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    figure = Figure(figsize=(5.5, 6.5), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot([0, 1], [0, 1], linestyle="--", color="0.5", linewidth=1, label="perfect calibration")
    for name, curve in checked.items():
        used = curve["count"] > 0
        (line,) = top.plot(
            curve["confidence"][used],
            curve["accuracy"][used],
            marker="o",
            label=f"{name} (ECE {_ece(curve):.3f})",
        )
        # Bin centres place empty equal-width bins too; equal-mass bins are drawn at their means.
        centre = np.where(
            np.isfinite(curve["lower"] + curve["upper"]),
            (curve["lower"] + curve["upper"]) / 2,
            curve["confidence"],
        )
        share = curve["count"] / curve["count"].sum()
        shown = np.isfinite(centre)
        bottom.plot(centre[shown], share[shown], marker=".", color=line.get_color())
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy", title=title or "Reliability diagram")
    top.legend(loc="upper left", fontsize="small")
    top.grid(alpha=0.3)
    bottom.set(xlabel="confidence", ylabel="share of samples", ylim=(0, None))
    bottom.grid(alpha=0.3)
    figure.savefig(path, format="png", dpi=100)
    return path
