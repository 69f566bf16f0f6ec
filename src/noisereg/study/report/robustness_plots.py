"""PNG figures of robustness, drawn from the summary's plain data with matplotlib's Agg canvas (no torch).

- :func:`plot_corruptions`: accuracy against severity, one panel per corruption, one line per arm
  (severity 0 is the clean test set), mean over seeds ± one standard deviation as a band.
- :func:`plot_certified`: certified accuracy against L2 radius per arm, mean ± one sd.
- :func:`plot_noisy_gap`: clean minus noisy test metric over the evaluated epochs per arm, mean ± one
  sd: the clean-vs-noisy gap during training.

The reliability diagram is :func:`noisereg.study.report.reliability.plot_reliability`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_corruptions", "plot_certified", "plot_noisy_gap"]

_SUFFIX = {"accuracy": "acc", "loss": "acc", "r2": "r2"}


def _save(fig: Figure, path: Path) -> Path:
    # The figures use constrained layout, so no "tight" bounding box (a second full draw) is needed.
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


def _band(
    ax: Any, x: np.ndarray, mean: Sequence[float], std: Sequence[float | None], label: str, marker: str = "o"
) -> None:
    mean_a = np.asarray(mean, dtype=float)
    std_a = np.array([math.nan if s is None else s for s in std], dtype=float)
    (line,) = ax.plot(x, mean_a, marker=marker, markersize=3, label=label)
    ax.fill_between(x, mean_a - std_a, mean_a + std_a, color=line.get_color(), alpha=0.15, linewidth=0)


def plot_corruptions(path: Path, entries: Sequence[Mapping[str, Any]]) -> Path:
    """One panel per corruption: accuracy at severity 0 (clean) and each severity, per arm."""
    corruptions = list(entries[0]["corruption"]["by_severity"])
    cols = min(3, len(corruptions))
    rows = math.ceil(len(corruptions) / cols)
    fig = Figure(figsize=(4.0 * cols, 3.0 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    for ax, name in zip(axes.ravel(), corruptions, strict=False):
        for e in entries:
            c = e["corruption"]
            x = np.array([0, *c["severities"]], dtype=float)
            mean = [c["clean"]["mean"], *c["by_severity"][name]["mean"]]
            std = [c["clean"]["std"], *c["by_severity"][name]["std"]]
            _band(ax, x, mean, std, e["name"])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("severity (0 = clean)")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(corruptions) :]:
        ax.set_visible(False)
    axes[0, 0].set_ylabel("test accuracy")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle("Accuracy under corruption: mean ± 1 sd over seeds", fontsize=10)
    return _save(fig, path)


def plot_certified(path: Path, entries: Sequence[Mapping[str, Any]]) -> Path:
    """Certified accuracy against radius per arm."""
    fig = Figure(figsize=(5.5, 3.6), layout="constrained")
    ax = fig.subplots()
    for e in entries:
        c = e["certified"]
        _band(ax, np.asarray(c["radii"], dtype=float), c["mean"], c["std"], e["name"])
    c0 = entries[0]["certified"]
    ax.set(xlabel="L2 radius", ylabel="certified accuracy", ylim=(0, 1.02))
    ax.set_title(
        f"Randomized smoothing, σ = {c0['sigma']:g}, n = {c0['n']}, α = {c0['alpha']:g}: mean ± 1 sd", fontsize=9
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_noisy_gap(path: Path, panels: Sequence[tuple[str, Mapping[str, Any]]], metric: str) -> Path:
    """Clean minus noisy test metric per evaluated epoch, one line per ``(title, cell results)``."""
    suffix = _SUFFIX[metric]
    fig = Figure(figsize=(5.5, 3.6), layout="constrained")
    ax = fig.subplots()
    for title, res in panels:
        clean, noisy = res.get(f"curve:test_{suffix}"), res.get(f"curve:noisy_test_{suffix}")
        if clean is None or noisy is None:
            continue
        gap = np.asarray(clean, dtype=float) - np.asarray(noisy, dtype=float)
        _band(
            ax,
            np.asarray(res["epochs"], dtype=float),
            np.nanmean(gap, axis=0),
            np.nanstd(gap, axis=0),
            title,
            marker="",
        )
    ax.axhline(0.0, color="0.5", linewidth=0.8)
    name = "accuracy" if suffix == "acc" else "R²"
    ax.set(xlabel="epoch", ylabel=f"clean − noisy test {name}")
    ax.set_title("Clean − noisy test metric during training (mean ± 1 sd; lower: more robust)", fontsize=8)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)
