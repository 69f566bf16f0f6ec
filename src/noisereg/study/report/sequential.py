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
``raced_by`` (the grid cell whose CV score beat it), ``stopped_early`` (fewer seeds than ``max``: the
comparison stopped before the maximum) and ``text``; ``cs_confidence``, the level of every ``cs``
(1 − ``alpha_each``/2). Racing concerns the selection only: a raced-out cell's comparison goes on, on
its test folds, until it decides.

In a sequential study the number of seeds a comparison ends with depends on its data, and fixed-n
intervals computed on those seeds do not keep their coverage: a comparison stopped because its
first seeds looked good has an interval that leans the same way. The confidence sequence covers the
difference at every number of seeds at once, so also at the one the study stopped at (optional
stopping: Howard et al. 2021). :func:`anytime_intervals` gives it to each comparison of the summary
as ``paired.anytime``, and drops the fixed-n intervals of a comparison stopped early.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from noisereg.study.rounds import Rounds, decisions, merge_rounds, raced_at

__all__ = ["merged", "sequential_section", "sequential_tables", "anytime_intervals", "difference_interval", "METHOD"]

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
        entry["stopped_early"] = key != baseline and seeds < rounds.max
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
        "cs_confidence": 1 - rounds.alpha / max(1, len(keys) - 1) / 2,
        "margin": rounds.margin,
        "method": METHOD,
        "trainings": trainings,
        "trainings_fixed": fixed,
        "cells": out_cells,
    }


def anytime_intervals(arms: list[dict[str, Any]], sequential: Mapping[str, Any] | None) -> None:
    """In a sequential study, each comparison with the baseline (``paired`` of ``arms``) gets
    ``anytime``: its confidence sequence at the round it stopped at (``ci``, cell − baseline in the
    metric's units; null ends are infinite), ``confidence``, ``seeds``, ``look`` and ``method``; and
    ``stopped_early``. A comparison stopped early has its fixed-n intervals dropped (``ci95_diff``,
    ``bootstrap.ci95_diff`` and ``bootstrap.ci95_improvement`` null): ``anytime.ci`` is its interval
    of the difference. Nothing changes in a fixed study (``sequential`` None)."""
    if not sequential:
        return
    for entry in arms:
        p, cell = entry.get("paired"), sequential["cells"].get(entry["name"])
        if not p or not p.get("n") or not cell or cell["status"] == "baseline":
            continue
        p["anytime"] = {
            "ci": cell["cs"],
            "confidence": sequential["cs_confidence"],
            "seeds": cell["seeds"],
            "look": cell["look"],
            "method": "confidence sequence",
        }
        p["stopped_early"] = cell["stopped_early"]
        if cell["stopped_early"]:
            p["ci95_diff"] = None
            if p.get("bootstrap"):
                p["bootstrap"].update(ci95_diff=None, ci95_improvement=None)


def difference_interval(paired: Mapping[str, Any]) -> str:
    """The interval of a comparison's difference as the report words it: the 95% t-interval, or for a
    sequential comparison stopped early (``ci95_diff`` dropped) the anytime-valid one."""
    anytime = paired.get("anytime") if paired.get("ci95_diff") is None else None
    if anytime:  # a null end of a confidence sequence is infinite
        lo, hi = anytime["ci"]
        low, high = "−∞" if lo is None else _3g(lo), "∞" if hi is None else _3g(hi)
        return f"anytime-valid {_level(anytime)} CI (confidence sequence) [{low}, {high}]"
    lo, hi = paired["ci95_diff"]
    return f"95% CI [{_3g(lo)}, {_3g(hi)}]"


def sequential_tables(summary: Mapping[str, Any]) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """The report's table of a sequential study's rounds (none for a fixed study): per cell its
    seeds, trainings, status and confidence sequence."""
    seq = summary.get("sequential")
    if not seq:
        return []
    note = (
        f"Seeds in rounds of {seq['step']} up to {seq['max']}; a comparison stops once it is decided "
        f"(alpha {seq['alpha_each']:.3g} each, {seq['alpha']:g} for all together: {seq['method']}). "
        f"{seq['trainings']} trainings, against {seq['trainings_fixed']} for {seq['max']} seeds of every cell. "
        f"The confidence sequence (CS, level {_level(seq)}) covers cell − baseline at every round at once, so also "
        "where the study stopped: it is the interval of the difference of a comparison stopped before the maximum "
        "(marked *), whose t-interval and bootstrap intervals, computed as if its number of seeds had been fixed, "
        "do not keep their coverage after stopping and are not given."
    )
    headers = ["cell", "seeds", "trainings", "stopped", f"anytime-valid CS of cell − baseline ({_level(seq)})"]
    rows = []
    for name, cell in seq["cells"].items():
        cs = cell["cs"]
        shown = "—" if cs is None else "[" + ", ".join("−∞/∞" if v is None else f"{v:+.4f}" for v in cs) + "]"
        shown += " *" if cell.get("stopped_early") else ""
        rows.append([name, str(cell["seeds"]), str(cell["trainings"]), cell["text"], shown])
    return [("Rounds", note, headers, rows)]


def _level(of: Mapping[str, Any]) -> str:
    """The level of a summary's ``sequential`` (``cs_confidence``; summaries stored before it derive it
    from ``alpha_each``) or of a comparison's ``anytime`` (``confidence``), as shown."""
    level = of.get("confidence") or of.get("cs_confidence") or 1 - of["alpha_each"] / 2
    return f"{100 * level:.3g}%"


def _3g(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"
