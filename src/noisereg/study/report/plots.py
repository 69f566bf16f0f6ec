"""PNG figures of a study, drawn from stored results with matplotlib's Agg canvas (no pyplot state,
no torch).

- :func:`plot_learning_curves`: train (dashed) and test (solid) metric per evaluated epoch, mean over
  seeds ± one standard deviation as a band, one panel per arm (the reference article's figure), and
  the test metric on noisy test inputs (dotted) where the study recorded it.
- :func:`plot_grid`: test metric against the grid value with 95% t-interval error bars, and the
  cross-validated loss (mean ± standard error) when the arm is selected by cross-validation.
- :func:`plot_seeds`: every seed's test metric per arm, a box per arm and the points spread evenly
  across the box (a deterministic spread, not random jitter).
- :func:`plot_profiles`: performance profiles, the share of seeds scoring better than each threshold
  per arm (Agarwal et al. 2021): whole distributions over seeds side by side, where a mean hides a
  seed that failed to train.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from noisereg.study.stats import performance_profile

__all__ = ["plot_learning_curves", "plot_grid", "plot_seeds", "plot_profiles"]

_CURVE = {"accuracy": "acc", "loss": "loss", "r2": "r2"}


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_learning_curves(path: Path, panels: Sequence[tuple[str, Mapping[str, Any]]], metric: str) -> Path:
    """One panel per ``(title, cell results)``; curves ``curve:train_<m>`` and ``curve:test_<m>``."""
    suffix = _CURVE[metric]
    cols = min(3, max(1, len(panels)))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    for ax, (title, res) in zip(axes.ravel(), panels, strict=False):
        epochs = np.asarray(res["epochs"], dtype=float)
        for part, style, color in (
            ("train", "--", "tab:blue"),
            ("test", "-", "tab:orange"),
            ("noisy_test", ":", "tab:red"),
        ):
            data = res.get(f"curve:{part}_{suffix}")
            if data is None:
                continue
            arr = np.asarray(data, dtype=float)
            mean, std = np.nanmean(arr, axis=0), np.nanstd(arr, axis=0)
            ax.plot(epochs, mean, style, color=color, label=f"{part.replace('_', ' ')} (mean)")
            ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
        ax.set_title(f"{title} (n={len(res['seeds'])})", fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(panels) :]:
        ax.set_visible(False)
    axes[0, 0].set_ylabel(metric)
    axes[0, 0].legend(fontsize=8, loc="best")
    fig.suptitle("Learning curves: mean ± 1 sd over seeds", fontsize=10)
    return _save(fig, path)


def plot_grid(
    path: Path, arm: str, entries: Sequence[Mapping[str, Any]], metric: str, selection: Mapping[str, Any] | None
) -> Path:
    """Test metric vs grid value for ``arm`` (entries of summary['arms']); CV loss if selected.
    Points are joined in the order of their values; a search over sites draws one series per site."""
    entries = sorted(entries, key=lambda e: e["grid_value"])
    values = np.array([e["grid_value"] for e in entries], dtype=float)
    mean = np.array([e["mean"] for e in entries], dtype=float)
    ci = np.array([[math.nan if c is None else c for c in e["ci95"]] for e in entries], dtype=float)
    err = np.nan_to_num(np.abs(ci - mean[:, None]).T)
    panels = 2 if selection else 1
    fig = Figure(figsize=(5.0 * panels, 3.4), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    scale = "symlog" if values.min() <= 0 < values.max() else ("log" if values.min() > 0 else "linear")
    ax = axes[0]
    _series(ax, values, mean, err, [e.get("site") for e in entries], fmt="o-")
    ax.set_title(f"{arm}: test {metric} (mean, 95% CI)", fontsize=9)
    if selection:
        ax2 = axes[1]
        order = sorted(
            (i for i, v in enumerate(selection["values"]) if v is not None), key=lambda i: selection["values"][i]
        )
        loss = np.array(
            [math.nan if selection["cv_loss"][i] is None else selection["cv_loss"][i] for i in order], dtype=float
        )
        se = np.array([selection["cv_loss_se"][i] or 0.0 for i in order], dtype=float)
        sites = [selection["sites"][i] for i in order] if selection.get("sites") else [None] * len(order)
        _series(ax2, np.array([selection["values"][i] for i in order], dtype=float), loss, se, sites, fmt="s-")
        if selection.get("chosen") is not None:
            ax2.axvline(selection["chosen"], color="tab:red", linestyle=":", label=f"chosen {selection['chosen']:g}")
            ax2.legend(fontsize=8)
        ax2.set_title(f"{selection['folds']}-fold CV loss (−log-likelihood), mean ± se", fontsize=9)
    for a in axes:
        if scale == "symlog":
            positive = values[values > 0]
            linthresh = float(positive.min()) if positive.size else 1.0
            a.set_xscale("symlog", linthresh=linthresh)
            a.set_xlim(-0.3 * linthresh, values.max() * 1.6)
        elif scale == "log":
            a.set_xscale("log")
        a.set_xlabel(entries[0].get("param") or "value")
        a.grid(alpha=0.3)
    return _save(fig, path)


def _series(ax: Any, x: np.ndarray, y: np.ndarray, err: np.ndarray, sites: Sequence[str | None], fmt: str) -> None:
    """Error bars joined in the order of ``x``, one series per site (a search over sites)."""
    for site in dict.fromkeys(sites):
        on = np.array([s == site for s in sites], dtype=bool)
        ax.errorbar(x[on], y[on], yerr=err[..., on], fmt=fmt, capsize=3, label=site)
    if any(sites):
        ax.legend(fontsize=8)


def plot_seeds(path: Path, entries: Sequence[Mapping[str, Any]], metric: str, baseline: str) -> Path:
    """Per-seed test metric per cell: a box and every seed's value."""
    fig = Figure(figsize=(max(5.0, 0.7 * len(entries) + 2), 3.8), layout="constrained")
    ax = fig.subplots()
    data = [np.asarray(e["per_seed"], dtype=float) for e in entries]
    ax.boxplot(data, widths=0.6, showfliers=False)
    for i, d in enumerate(data, start=1):
        order = np.argsort(np.argsort(d, kind="stable"), kind="stable")
        offsets = (order / max(1, len(d) - 1) - 0.5) * 0.4 if len(d) > 1 else np.zeros(1)
        color = "tab:gray" if entries[i - 1]["name"] == baseline else "tab:blue"
        ax.plot(i + offsets, d, "o", color=color, alpha=0.6, markersize=3)
    ax.set_xticks(range(1, len(entries) + 1), [e["name"] for e in entries], rotation=40, ha="right", fontsize=8)
    ax.set_ylabel(f"test {metric}")
    ax.set_title("Every seed's result per arm", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def plot_profiles(path: Path, entries: Sequence[Mapping[str, Any]], metric: str, higher: bool, baseline: str) -> Path:
    """The share of seeds whose test metric is better than each threshold, one step curve per cell;
    thresholds span every seed's value of every cell drawn."""
    values = np.concatenate([np.asarray(e["per_seed"], dtype=float) for e in entries])
    low, high = float(values.min()), float(values.max())
    pad = 0.02 * (high - low) or 0.01
    thresholds = np.unique(np.concatenate([np.linspace(low - pad, high + pad, 200), values]))
    fig = Figure(figsize=(5.6, 3.8), layout="constrained")
    ax = fig.subplots()
    for e in entries:
        share = performance_profile(e["per_seed"], thresholds.tolist(), higher=higher)
        # the baseline on top, dashed, so that arms with the same results do not hide it
        style = {"color": "black", "linestyle": "--", "zorder": 3} if e["name"] == baseline else {"linewidth": 1.2}
        ax.step(thresholds, share, where="post", label=f"{e['name']} (n={len(e['per_seed'])})", **style)
    ax.set_xlabel(f"threshold τ (test {metric})")
    ax.set_ylabel(f"share of seeds {'above' if higher else 'below'} τ")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title("Performance profiles over seeds", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)
