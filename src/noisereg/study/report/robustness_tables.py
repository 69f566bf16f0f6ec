"""The report's robustness tables: noisy test data during training, calibration, corruptions and
certified accuracy, as display strings (no torch)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from noisereg.study.report.formatting import Table, fmt, pm

__all__ = ["robustness_tables"]


def _monitor_text(monitor: Mapping[str, Any] | None) -> str:
    if not monitor:
        return "no noisy evaluation during training"
    level = f" severity {monitor['severity']}" if monitor.get("severity") else ""
    return f"{monitor['corruption']}{level} ({monitor['parameter']} = {fmt(monitor['strength'])}, {monitor['constants']} constants)"


def _radius_cells(certified: Mapping[str, Any]) -> list[str]:
    cells = []
    for mean, std in zip(certified["mean"], certified["std"], strict=False):
        spread = std is not None and math.isfinite(std)
        cells.append(f"{fmt(mean, 3)} ± {fmt(std, 2)}" if spread else fmt(mean, 3))
    return cells


def _radius_diff(p: Mapping[str, Any]) -> str:
    if not p.get("n"):
        return "—"
    return f"{p['mean_diff']:+.3f} (p = {fmt(p.get('p_holm'), 2)})"


def _ece_diff(p: Mapping[str, Any] | None) -> str:
    if not p or not p.get("n"):
        return "—"
    return f"{p['mean_diff']:+.4f} (p = {fmt(p.get('p_ttest'), 3)})"


def robustness_tables(summary: Mapping[str, Any]) -> list[Table]:
    """(title, note, headers, rows of display strings) of each robustness table that has data."""
    arms, info = summary["arms"], summary.get("robustness") or {}
    metric = summary["metric"]
    tables: list[Table] = []
    noisy = [a for a in arms if a.get("noisy")]
    if noisy:
        name = "accuracy" if metric == "loss" else metric
        rows = [[a["name"], pm(a["noisy"]["test"]), pm(a["noisy"]["gap"]), pm(a["noisy"]["loss"])] for a in noisy]
        note = f"Last evaluation of each replica on its noisy copy of the test inputs: {_monitor_text(info.get('monitor'))}. Mean ± sd over seeds."
        unlike = [a["name"] for a in noisy if (a["noisy"].get("paired") or {}).get("like_for_like") is False]
        if unlike:
            note += (
                f" The noise is drawn in each arm's own input units: {', '.join(unlike)} scale their inputs otherwise than "
                f"{summary['baseline']!r}, so their noisy results are not like for like with the baseline's."
            )
        tables.append(
            (
                "Noisy test data during training",
                note,
                ["arm", f"noisy test {name}", f"gap (clean − noisy {name})", "noisy test loss"],
                rows,
            )
        )
    cal = [a for a in arms if a.get("calibration")]
    if cal:
        bins = cal[0]["calibration"]["bins"]
        keys = ("accuracy", "ece", "adaptive_ece", "nll", "brier")
        rows = [
            [a["name"], *(pm(a["calibration"][k]) for k in keys), _ece_diff(a["calibration"].get("ece_paired"))]
            for a in cal
        ]
        note = f"Clean test set; ECE with {bins} equal-width bins, adaptive ECE with {bins} equal-mass bins; lower is better except accuracy. Mean ± sd over seeds."
        tables.append(
            (
                "Calibration",
                note,
                [
                    "arm",
                    "accuracy",
                    f"ECE ({bins} bins)",
                    "adaptive ECE",
                    "NLL",
                    "Brier",
                    "Δ ECE vs baseline (paired t p)",
                ],
                rows,
            )
        )
    cor = [a for a in arms if a.get("corruption")]
    if cor:
        settings = info.get("settings") or {}
        rows = [
            [a["name"], *(pm(a["corruption"][k]) for k in ("clean", "mean", "gap", "loss", "mce", "relative_mce"))]
            for a in cor
        ]
        note = (
            f"Corruptions with the {settings.get('constants')} severity constants (Hendrycks & Dietterich 2019 for images), "
            f"severities {settings.get('severities')}; mCE and relative mCE per seed against {summary['baseline']!r} (1 = as the baseline, lower is better)."
        )
        tables.append(
            (
                "Corruption robustness",
                note,
                ["arm", "clean acc", "mean corruption acc", "gap", "corrupted loss", "mCE", "relative mCE"],
                rows,
            )
        )
    cert = [a for a in arms if a.get("certified")]
    if cert:
        c0 = cert[0]["certified"]
        rows = [[a["name"], *_radius_cells(a["certified"]), pm(a["certified"]["abstained"])] for a in cert]
        rows += [
            [f"Δ {a['name']} − {summary['baseline']} (Holm p)", *map(_radius_diff, a["certified"]["paired"]), ""]
            for a in cert
            if a["certified"].get("paired")
        ]
        note = (
            f"Randomized smoothing (Cohen et al. 2019): σ = {fmt(c0['sigma'])}, n0 = {c0['n0']}, n = {c0['n']}, α = {fmt(c0['alpha'])}, "
            f"{c0['inputs']} test inputs per seed; share certified correct within each L2 radius, mean ± sd over seeds. "
            "Δ rows: mean paired difference against the baseline on the same seeds, paired t-test Holm-corrected over every arm and radius."
        )
        tables.append(
            ("Certified accuracy", note, ["arm", *(f"r = {fmt(r, 3)}" for r in c0["radii"]), "abstained"], rows)
        )
    return tables
