"""The report of a sequential study (``seeds = { max, step }``): each cell's rounds merged into one
result, and what the rounds did.

``summary.json``'s ``sequential`` (null for a fixed study): ``max``, ``earlier_max`` (the maxima before
``max`` was raised on a stored study, oldest first; empty if never), ``step``, ``alpha`` (for all
decisions together), ``alpha_each`` (alpha / comparisons, Bonferroni), ``margin``, ``method``,
``trainings`` (replicas trained: seeds × folds, summed over cells), ``trainings_fixed`` (what the
same study with ``seeds = max`` trains), and ``cells``: per cell ``seeds``, ``rounds``,
``trainings`` (replicas: test and CV folds), ``cv_seeds`` (seeds trained on the CV folds; null for a
cell outside the selection), ``status`` of its comparison with the baseline (``baseline``;
``better`` / ``worse`` / ``equivalent``: decided; ``max``: reached the largest number of seeds
undecided; ``continue``: the study stopped before deciding), ``look`` (the round it stopped at),
``cs`` (the confidence sequence of cell − baseline at that round, in the metric's units, at level
1 − ``alpha_each``/2), ``by`` (``cs``, or ``final``: the paired t-test at ``max`` seeds, level
``alpha_each``/2, decided it), ``p_final`` (that test's p-value where it decided), ``raced_at`` (the
round after which the cell was raced out of the selection, its CV folds stopped, null if never),
``raced_by`` (the grid cell whose CV score beat it) and ``text``. Racing concerns the selection
only: a raced-out cell's comparison goes on, on its test folds, until it decides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from noisereg.study.rounds import Rounds, decisions, merge_rounds, raced_at

__all__ = ["merged", "sequential_section", "sequential_tables", "METHOD"]

METHOD = (
    "each comparison's alpha (Bonferroni over the comparisons) spent half on a t-mixture confidence sequence "
    "(Lai 1976; the safe t-test's Bayes factor, normal prior g = 1 on the standardized effect) looked at after "
    "every round, half on a paired t-test at the maximum number of seeds"
)


def merged(attrs: Mapping[str, Any], done: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The study's attributes and completed results with each cell's rounds merged into one cell."""
    cells, results = merge_rounds(attrs.get("cells", {}), done)
    return {**attrs, "cells": cells}, results


def _text(
    status: str, look: int, seeds: int, raced: tuple[str, int] | None, p_final: float | None, max_seeds: int
) -> str:
    if p_final is not None:
        where = "the maximum" if seeds >= max_seeds else "the maximum planned before max was raised"
        verdict = f"decided {status} at {where}, {seeds} seeds, by the final t-test (p = {p_final:.2g})"
    elif status == "baseline":
        return f"baseline: {seeds} seeds (as many as the longest comparison)"
    elif status == "max":
        verdict = f"undecided at the maximum, {seeds} seeds"
    elif status == "continue":
        verdict = f"open after round {look} ({seeds} seeds): the study stopped before deciding"
    else:
        verdict = f"decided {status} at round {look} ({seeds} seeds)"
    if raced is None:
        return verdict
    by, k = raced
    return (
        f"raced out of the selection at round {k} (its CV score is worse than {by}'s; no more CV folds); "
        f"its comparison with the baseline: {verdict}"
    )


def _fixed_trainings(replicas: int, seeds: int, cv_rows: Any, max_seeds: int, cv_limit: int | None) -> int:
    """What a cell with ``replicas`` on ``seeds`` test seeds and ``cv_rows`` (per CV seed, its folds)
    trains in the same study with ``max_seeds`` seeds: a raced-out cell's later rounds had no CV folds,
    so its test and CV replicas per seed are counted apart (CV seeds at most ``selection.seeds``)."""
    if not seeds:
        return 0
    cv_replicas = sum(len(row) for row in cv_rows) if isinstance(cv_rows, list) else 0
    per_cv_seed = cv_replicas / len(cv_rows) if cv_replicas else 0.0
    per_seed = (replicas - cv_replicas) / seeds
    return round(per_seed * max_seeds + per_cv_seed * min(max_seeds, cv_limit or max_seeds))


def sequential_section(
    config: Mapping[str, Any],
    cells: Mapping[str, Mapping[str, Any]],
    done: Mapping[str, Mapping[str, Any]],
    baseline: str,
    metric_key: str,
    higher: bool,
    earlier: Sequence[int] | None = None,
) -> dict[str, Any] | None:
    """The ``sequential`` object of the summary (module docstring), or None for a fixed study.
    ``earlier``: the maxima of a study whose ``max`` was raised (:data:`~noisereg.study.rounds.EARLIER_MAX`)."""
    rounds = Rounds.of(config.get("seeds"), earlier)
    if rounds is None:
        return None
    keys = list(cells)
    decided = decisions(rounds, done, keys, baseline, metric_key, higher)
    sel = config.get("selection") or {}
    raced: dict[str, tuple[str, int]] = {}
    if sel.get("racing"):
        grid = [k for k in keys if cells[k].get("arm") == sel.get("arm")]
        criterion, rule = sel.get("criterion", "likelihood"), sel.get("rule", "one_se")
        raced = raced_at(rounds, done, grid, criterion, rule, sel.get("screen", True))
    sign = 1 if higher else -1
    out_cells: dict[str, Any] = {}
    trainings = fixed = 0
    for key in keys:
        res = done.get(key)
        seeds = len(res["seeds"]) if res else 0
        replicas = int(res.get("replicas", 0)) if res else 0
        trainings += replicas
        cv = (res or {}).get("cv") or {}
        cv_rows = next((v for k, v in cv.items() if k.startswith("val_") and k != "val_epochs"), None)
        fixed += _fixed_trainings(replicas, seeds, cv_rows, rounds.max, sel.get("seeds"))
        entry: dict[str, Any] = {
            "seeds": seeds,
            "cv_seeds": len(cv_rows) if isinstance(cv_rows, list) else None,
            "rounds": res.get("rounds", 1) if res else 0,
            "trainings": replicas,
        }
        if key == baseline:
            entry.update(status="baseline", look=None, cs=None, raced_at=None, raced_by=None, by=None, p_final=None)
        else:
            d = decided[key]
            low, high = sorted((sign * d.low, sign * d.high))
            entry.update(
                status=d.status,
                look=d.look,
                cs=[low if math.isfinite(low) else None, high if math.isfinite(high) else None],
                raced_at=raced[key][1] if key in raced else None,
                raced_by=raced[key][0] if key in raced else None,
                by=d.by,
                p_final=d.p_final,
            )
        entry["text"] = _text(
            entry["status"], entry["look"] or 0, seeds, raced.get(key), entry.get("p_final"), rounds.max
        )
        out_cells[key] = entry
    return {
        "max": rounds.max,
        "earlier_max": list(rounds.earlier),
        "step": rounds.step,
        "alpha": rounds.alpha,
        "alpha_each": rounds.alpha / max(1, len(keys) - 1),
        "margin": rounds.margin,
        "method": METHOD,
        "trainings": trainings,
        "trainings_fixed": fixed,
        "cells": out_cells,
    }


def sequential_tables(summary: Mapping[str, Any]) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """The report's table of a sequential study's rounds (none for a fixed study): per cell its
    seeds, trainings, status and confidence sequence."""
    seq = summary.get("sequential")
    if not seq:
        return []
    note = (
        f"Seeds in rounds of {seq['step']} up to {seq['max']}; a comparison stops once it is decided "
        f"(alpha {seq['alpha_each']:.3g} each, {seq['alpha']:g} for all together: {seq['method']}). "
        f"{seq['trainings']} trainings, against {seq['trainings_fixed']} for {seq['max']} seeds of every cell."
    )
    headers = ["cell", "seeds", "trainings", "stopped", "CS of cell − baseline"]
    rows = []
    for name, cell in seq["cells"].items():
        cs = cell["cs"]
        shown = "—" if cs is None else "[" + ", ".join("−∞/∞" if v is None else f"{v:+.4f}" for v in cs) + "]"
        rows.append([name, str(cell["seeds"]), str(cell["trainings"]), cell["text"], shown])
    return [("Rounds", note, headers, rows)]
