"""Robustness and calibration in the summary, from the stored plain data (no torch).

Per arm (cell) of ``summary["arms"]`` (statistics are :func:`noisereg.study.stats.summary_statistics` over
seeds; a seed whose value is not finite is left out):

- ``noisy``: the last evaluation on the noisy test inputs of the training monitor: ``test`` (the
  noisy test metric), ``loss``, and ``gap`` (clean minus noisy test accuracy, or R², per seed);
- ``calibration``: ``accuracy``, ``ece``, ``adaptive_ece``, ``nll``, ``brier`` on the clean test set,
  ``bins`` and ``reliability`` (bins pooled over seeds);
- ``corruption``: ``clean`` (accuracy), ``mean`` (mean corruption accuracy over all corruptions and
  severities), ``gap`` (clean − mean), ``loss`` (mean loss on corrupted inputs), ``mce`` and
  ``relative_mce`` (against the baseline, per seed), and ``by_severity`` {corruption: {``mean``,
  ``std``: [per severity]}};
- ``certified``: ``radii``, ``mean`` and ``std`` of certified accuracy at each radius, ``abstained``
  (share of certified inputs abstained on), ``seeds`` (how many), ``inputs`` (certified per seed),
  the smoothing settings ``sigma``, ``n0``, ``n``, ``alpha``, and, except for the baseline,
  ``paired``: one :func:`~noisereg.study.stats.paired` comparison per radius (arm − baseline on their
  common certified seeds) with ``p_holm`` (the paired t-test's p, Holm-corrected over every arm and
  radius of the study: one family), ``better`` and ``worse`` (Holm p < ``ALPHA`` in that direction).

``summary["robustness"]``: ``monitor`` (the noisy evaluation's corruption, severity, parameter and
value), ``settings`` (of the suite), ``measured`` and ``unmeasured`` (cell keys).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from noisereg.study.stats import ALPHA, holm, paired, summary_statistics
from noisereg.study.store import ROBUSTNESS_PREFIX as ATTR_PREFIX
from noisereg.study.store import ROBUSTNESS_VS_BASELINE as VS_BASELINE

__all__ = ["annotate_robustness"]

_NOISY = {"accuracy": "acc", "loss": "loss", "r2": "r2"}


def _stats(values: Sequence[float | None] | None) -> dict[str, Any] | None:
    finite = [float(v) for v in values or () if v is not None and math.isfinite(v)]
    return summary_statistics(finite) if finite else None


def _noisy(res: Mapping[str, Any], metric: str) -> dict[str, Any] | None:
    final = res.get("final", {})
    suffix = "acc" if metric == "loss" else _NOISY[metric]
    noisy, clean = final.get(f"noisy_test_{suffix}"), final.get(f"test_{suffix}")
    if noisy is None or clean is None:
        return None
    gaps = [None if a is None or b is None else a - b for a, b in zip(clean, noisy, strict=False)]
    return {"test": _stats(noisy), "loss": _stats(final.get("noisy_test_loss")), "gap": _stats(gaps)}


def _corruption(stored: Mapping[str, Any], versus: Mapping[str, Any] | None) -> dict[str, Any]:
    acc = {
        c: np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)
        for c, rows in stored["accuracy"].items()
    }
    loss = np.array(
        [[[np.nan if v is None else v for v in row] for row in rows] for rows in stored["loss"].values()], dtype=float
    )
    per_seed = np.mean(np.stack(list(acc.values())), axis=(0, 2))  # [seeds]
    clean = np.array(stored["clean_accuracy"], dtype=float)
    return {
        "clean": _stats(clean.tolist()),
        "mean": _stats(per_seed.tolist()),
        "gap": _stats((clean - per_seed).tolist()),
        "loss": _stats(np.mean(loss, axis=(0, 2)).tolist()),
        "mce": _stats(versus["mce"]) if versus else None,
        "relative_mce": _stats(versus["relative_mce"]) if versus else None,
        "severities": stored["severities"],
        "by_severity": {
            c: {
                "mean": np.nanmean(a, axis=0).tolist(),
                "std": (np.nanstd(a, axis=0, ddof=1) if len(a) > 1 else np.full(a.shape[1], np.nan)).tolist(),
            }
            for c, a in acc.items()
        },
    }


def _certified(stored: Mapping[str, Any]) -> dict[str, Any]:
    table = np.array(stored["certified"], dtype=float).reshape(len(stored["seeds"]), len(stored["radii"]))
    std = np.std(table, axis=0, ddof=1) if len(table) > 1 else np.full(table.shape[1], np.nan)
    return {
        "radii": stored["radii"],
        "mean": np.mean(table, axis=0).tolist() if len(table) else [],
        "std": std.tolist(),
        "abstained": _stats(stored["abstained"]),
        "seeds": len(table),
        **{k: stored[k] for k in ("sigma", "n0", "n", "alpha")},
        "inputs": stored["inputs"][0] if stored["inputs"] else 0,
    }


def _baseline(study: Mapping[str, Any]) -> str | None:
    config = study.get("config") or {}
    return config.get("baseline") or next((a["name"] for a in config.get("arms", []) if not a.get("noise")), None)


def _paired_ece(study: Mapping[str, Any], arms: list[dict[str, Any]]) -> None:
    """``calibration.ece_paired``: each measured arm's ECE against the baseline's, seed by seed
    on their common seeds (:func:`~noisereg.study.stats.paired`, arm − baseline; lower is better)."""
    base = _baseline(study)
    stored_base = study.get(ATTR_PREFIX + base) if base else None
    if not stored_base:
        return

    def by_seed(stored: Mapping[str, Any]) -> dict[int, float]:
        pairs = zip(stored["seeds"], stored["calibration"]["ece"], strict=False)
        return {s: float(v) for s, v in pairs if v is not None and math.isfinite(v)}

    ref = by_seed(stored_base)
    for entry in arms:
        stored = study.get(ATTR_PREFIX + entry["name"])
        if entry["name"] == base or not entry.get("calibration") or not stored:
            continue
        ece = by_seed(stored)
        common = [s for s in ece if s in ref]
        if len(common) > 1:
            entry["calibration"]["ece_paired"] = paired([ece[s] for s in common], [ref[s] for s in common])


def _certified_by_seed(stored: Mapping[str, Any]) -> dict[int, list[float]]:
    return {int(s): [float(v) for v in row] for s, row in zip(stored["seeds"], stored["certified"], strict=True)}


def _paired_certified(study: Mapping[str, Any], arms: list[dict[str, Any]]) -> None:
    """``certified.paired``: per radius, each certified arm against the baseline on their common
    certified seeds, with Holm's correction over all arms and radii together (see the module docstring)."""
    base = _baseline(study)
    entry_base = next((a for a in arms if a["name"] == base and a.get("certified")), None)
    if base is None or entry_base is None:
        return
    ref = _certified_by_seed(study[ATTR_PREFIX + base]["smoothing"])
    family: list[dict[str, Any]] = []
    for entry in arms:
        if (
            entry["name"] == base
            or not entry.get("certified")
            or entry["certified"]["radii"] != entry_base["certified"]["radii"]
        ):
            continue
        mine = _certified_by_seed(study[ATTR_PREFIX + entry["name"]]["smoothing"])
        common = [s for s in mine if s in ref]
        if len(common) < 2:
            continue
        per_radius = [
            paired([mine[s][i] for s in common], [ref[s][i] for s in common])
            for i in range(len(entry["certified"]["radii"]))
        ]
        entry["certified"]["paired"] = per_radius
        family.extend(per_radius)
    for p, adjusted in zip(family, holm([p["p_ttest"] for p in family]), strict=True):
        p.update(
            p_holm=adjusted,
            better=bool(adjusted is not None and adjusted < ALPHA and p["mean_diff"] > 0),
            worse=bool(adjusted is not None and adjusted < ALPHA and p["mean_diff"] < 0),
        )


def annotate_robustness(
    study: Mapping[str, Any], done: Mapping[str, Mapping[str, Any]], arms: list[dict[str, Any]], metric: str
) -> dict[str, Any]:
    """Add ``noisy``, ``calibration``, ``corruption`` and ``certified`` to each arm entry (None where
    not measured) and return ``summary["robustness"]`` (see the module docstring)."""
    latest = study.get(VS_BASELINE) or {}
    versus, settings = latest.get("cells", {}), latest.get("settings")
    measured, unmeasured = [], []
    for entry in arms:
        name = entry["name"]
        entry["noisy"] = _noisy(done.get(name, {}), metric)
        stored = study.get(ATTR_PREFIX + name)
        entry["calibration"] = entry["corruption"] = entry["certified"] = None
        if not stored or stored.get("settings") != settings:  # missing, or made with older settings
            unmeasured.append(name)
            continue
        measured.append(name)
        cal = stored["calibration"]
        entry["calibration"] = {k: _stats(cal[k]) for k in ("accuracy", "ece", "adaptive_ece", "nll", "brier")}
        entry["calibration"].update(bins=cal["bins"], reliability=cal["reliability"])
        if stored.get("corruptions"):
            entry["corruption"] = _corruption(stored["corruptions"], versus.get(name))
        if stored.get("smoothing") and stored["smoothing"]["seeds"]:
            entry["certified"] = _certified(stored["smoothing"])
    _paired_ece(study, arms)
    _paired_certified(study, arms)
    monitor = study.get("meta", {}).get("monitor")
    return {
        "monitor": monitor,
        "settings": settings,
        "measured": measured,
        "unmeasured": unmeasured if measured else [],
    }
