"""Flatness in a study's summary and report: the trace of each arm's training-loss Hessian.

Read from the cells' final metric ``hessian_trace`` (measured by the engine when ``[training]
hessian_samples`` > 0, see :mod:`noisereg.engine.flatness`). Per arm: mean ± sd over seeds; each arm
against the baseline on the same seeds (paired t-test, Holm over these comparisons; lower is flatter),
and against the arm it names with ``versus``. No torch here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from noisereg.study.report.formatting import Table, fmt
from noisereg.study.stats import ALPHA, holm, paired, summary_statistics

__all__ = ["annotate_flatness", "flatness_tables"]

KEY = "hessian_trace"


def _by_seed(res: Mapping[str, Any]) -> dict[int, float]:
    values = res["final"].get(KEY) or []
    return {s: float(v) for s, v in zip(res["seeds"], values, strict=False) if v is not None and math.isfinite(v)}


def _paired(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    x, y = _by_seed(a), _by_seed(b)
    common = [s for s in x if s in y]
    return paired([x[s] for s in common], [y[s] for s in common]) if len(common) > 1 else {"n": len(common)}


def annotate_flatness(
    config: Mapping[str, Any], done: Mapping[str, Any], arms: list[dict[str, Any]], baseline: str
) -> None:
    """Give each arm whose cells measured the Hessian trace ``flatness``: its statistics, the paired
    comparison with the baseline (``paired``, Holm-adjusted ``p_holm``, ``flatter``/``sharper``) and
    with its ``versus`` arm (``versus``)."""
    versus = {a["name"]: a.get("versus") for a in config.get("arms", [])}
    measured = [a for a in arms if _by_seed(done[a["name"]])]
    for entry in measured:
        entry["flatness"] = {**summary_statistics(list(_by_seed(done[entry["name"]]).values()))}
        if entry["name"] != baseline and baseline in done:
            entry["flatness"]["paired"] = _paired(done[entry["name"]], done[baseline])
        other = versus.get(entry["arm"])
        if other is not None and other in done:
            entry["flatness"]["versus"] = {"arm": other, **_paired(done[entry["name"]], done[other])}
    compared = [a["flatness"]["paired"] for a in measured if a["flatness"].get("paired", {}).get("n", 0) > 1]
    for p, adjusted in zip(compared, holm([p.get("p_ttest") for p in compared]), strict=True):
        p["p_holm"] = adjusted
        p["flatter"] = bool(adjusted is not None and adjusted < ALPHA and p["mean_diff"] < 0)
        p["sharper"] = bool(adjusted is not None and adjusted < ALPHA and p["mean_diff"] > 0)


def flatness_tables(summary: Mapping[str, Any]) -> list[Table]:
    """The flatness table: per arm tr ∇²L mean ± sd, Δ vs the baseline with p (t, Holm), Δ vs its versus arm."""
    measured = [a for a in summary["arms"] if a.get("flatness")]
    if not measured:
        return []
    rows = []
    for a in measured:
        f = a["flatness"]
        p, v = f.get("paired") or {}, f.get("versus") or {}
        mark = "flatter" if p.get("flatter") else ("sharper" if p.get("sharper") else "")
        rows.append(
            [
                a["name"],
                f"{fmt(f['mean'], 4)} ± {fmt(f['std'], 3)}",
                f"{p['mean_diff']:+.4g}" if p.get("n") else "baseline",
                fmt(p.get("p_ttest"), 3) if p.get("n") else "—",
                fmt(p.get("p_holm"), 3) if p.get("n") else "—",
                mark,
                f"{v['mean_diff']:+.4g} vs {v['arm']} (p {fmt(v.get('p_ttest'), 3)})" if v.get("n") else "",
            ]
        )
    note = (
        "Trace of the Hessian of the mean training loss at the final weights (eval mode, whole training part), "
        "Hutchinson's estimator; mean ± sd over seeds. Lower is flatter. Paired t-test against the baseline on "
        "the same seeds, Holm over these comparisons; the last column against the arm named by versus (unadjusted)."
    )
    headers = ["arm", "tr ∇²L", "Δ vs baseline", "p (t)", "p (Holm)", "", "Δ vs versus"]
    return [("Flatness (Hessian trace)", note, headers, rows)]
