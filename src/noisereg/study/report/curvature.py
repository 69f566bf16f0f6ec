"""The Hessian trace per arm (``[training] hessian_trace``): the summary's entries and the report's table.

Flat-minimum claims (label-noise SGD, Anti-PGD) say that noise leads to a smaller Hessian trace of
the training loss; each arm's trace is compared with the baseline's seed by seed (arm − baseline,
paired t-test, Holm over the arms), and ``flatter`` / ``sharper`` say which way a significant
difference goes. No torch here: the traces were measured when the replicas were trained.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from noisereg.study.report.formatting import Table, bracket, fmt, pm
from noisereg.study.stats import ALPHA, holm, paired, summary_statistics

__all__ = ["KEY", "annotate_curvature", "curvature_tables"]

KEY = "hessian_trace"
"""The stored final metric: Hutchinson's estimate of tr ∇²L at the trained weights, per seed."""


def _by_seed(res: Mapping[str, Any]) -> dict[int, float]:
    values = res["final"].get(KEY) or []
    return {s: float(v) for s, v in zip(res["seeds"], values, strict=False) if v is not None and math.isfinite(v)}


def annotate_curvature(arms: list[dict[str, Any]], done: Mapping[str, Any], baseline: str) -> None:
    """Each arm whose cell stored a Hessian trace gets ``hessian_trace``: its statistics over seeds
    and, except the baseline, ``paired`` (arm − baseline, with ``p_holm``, ``flatter``, ``sharper``);
    an arm compared with another by ``versus`` (Anti-PGD with PGD) also ``versus`` (arm − that arm,
    unadjusted, with the other arm's name)."""
    base = _by_seed(done[baseline]) if baseline in done else {}
    compared = []
    for entry in arms:
        values = _by_seed(done[entry["name"]])
        if not values:
            continue
        entry[KEY] = {**summary_statistics(list(values.values())), "paired": None}
        common = [s for s in values if s in base]
        if entry["name"] != baseline and common:
            entry[KEY]["paired"] = paired([values[s] for s in common], [base[s] for s in common])
            compared.append(entry[KEY]["paired"])
        other = (entry.get("versus") or {}).get("arm")
        theirs = _by_seed(done[other]) if other is not None and other in done else {}
        both = [s for s in values if s in theirs]
        if len(both) > 1:
            entry[KEY]["versus"] = {"arm": other, **paired([values[s] for s in both], [theirs[s] for s in both])}
    for p, adjusted in zip(compared, holm([p.get("p_ttest") for p in compared]), strict=True):
        significant = adjusted is not None and adjusted < ALPHA
        p.update(
            p_holm=adjusted, flatter=significant and p["mean_diff"] < 0, sharper=significant and p["mean_diff"] > 0
        )


def curvature_tables(summary: Mapping[str, Any]) -> list[Table]:
    """One table of the Hessian trace per arm, with its comparison with the baseline; none where the
    study did not measure it."""
    measured = [a for a in summary["arms"] if a.get(KEY)]
    if not measured:
        return []
    rows = []
    for a in measured:
        h, p, v = a[KEY], a[KEY].get("paired"), a[KEY].get("versus")
        against = f"{fmt(v['mean_diff'], 4)} vs {v['arm']} (p {fmt(v.get('p_ttest'), 2)})" if v else ""
        if p and p.get("n"):
            said = "flatter" if p.get("flatter") else "sharper" if p.get("sharper") else "no significant difference"
            rows.append(
                [
                    a["name"],
                    pm(h, 4),
                    fmt(p["mean_diff"], 4),
                    bracket(p.get("ci95_diff"), 4),
                    fmt(p.get("p_holm"), 2),
                    said,
                    against,
                ]
            )
        else:
            said = "baseline" if a["name"] == summary["baseline"] else "—"
            rows.append([a["name"], pm(h, 4), "—", "—", "—", said, against])
    note = (
        "Trace of the Hessian of the clean training loss at the trained weights (Hutchinson's estimator, mean ± sd "
        f"over seeds); Δ = arm − {summary['baseline']!r} on the same seeds, paired t-test, Holm over the arms. "
        "Smaller is flatter. Last column: Δ against the arm named by versus, paired t-test (unadjusted)."
    )
    headers = ["arm", "tr H", "Δ tr H", "95% CI", "p (Holm)", "vs baseline", "Δ tr H vs versus"]
    return [("Hessian trace (sharpness)", note, headers, rows)]
