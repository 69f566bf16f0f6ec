"""The ``selection`` object of ``summary.json``: what the cross-validation of a study's selection arm
measured per value, what each procedure chooses from it, the gain check, the nested-CV estimate of
choosing then training, and the chosen value's test result (the fields are listed in
:mod:`noisereg.study.report.summary`). Plain data only, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from noisereg.study.config.search import SearchConfig
from noisereg.study.selection import RULES, SCORES, choose, gain_check, procedure_name, screened
from noisereg.study.stats import summary_statistics

__all__ = ["selection_summary"]


def _nested(
    sel: Mapping[str, Any],
    keys: list[str],
    values: list[Any],
    done: Mapping[str, Any],
    baseline: str,
    metric_key: str,
    higher: bool,
) -> dict[str, Any] | None:
    """The nested-CV estimate of choosing the value by ``sel``'s criterion and rule, then training."""
    base = (done.get(baseline) or {}).get("nested")
    outer: list[Any] = [(done.get(k) or {}).get("nested") for k in keys]
    if not base or any(not o for o in outer):
        return None
    criterion, rule, screen = sel.get("criterion", "likelihood"), sel.get("rule", "best"), sel.get("screen", False)
    guard = sel.get("guard", False)
    chosen, chosen_metric, base_metric, gains = [], [], [], []
    for o, base_fold in enumerate(base):
        i = choose(values, [cell[o]["cv"] for cell in outer], score=criterion, rule=rule, screen=screen, guard=guard)
        if i is None:
            return None
        picked = outer[i][o]
        a = dict(zip(picked["seeds"], picked["test"].get(metric_key, []), strict=True))
        b = dict(zip(base_fold["seeds"], base_fold["test"].get(metric_key, []), strict=True))
        common = [s for s in a if s in b and a[s] is not None and b[s] is not None]
        if not common:
            return None
        mean_a, mean_b = float(np.mean([a[s] for s in common])), float(np.mean([b[s] for s in common]))
        chosen.append(values[i])
        chosen_metric.append(mean_a)
        base_metric.append(mean_b)
        gains.append((mean_a - mean_b) * (1 if higher else -1))
    return {
        "folds": len(base),
        "chosen": chosen,
        "chosen_metric": chosen_metric,
        "baseline_metric": base_metric,
        "gain": summary_statistics(gains),
        "seeds": len(common),
    }


def selection_summary(
    config: Mapping[str, Any],
    cells: Mapping[str, Any],
    done: Mapping[str, Any],
    arms: list[dict[str, Any]],
    baseline: str,
    metric_key: str,
    higher: bool,
) -> dict[str, Any] | None:
    sel = config.get("selection")
    if not sel:
        return None
    keys = [k for k, m in cells.items() if m["arm"] == sel["arm"]]
    values = [cells[k]["value"] for k in keys]
    search = next((a.get("search") for a in config["arms"] if a["name"] == sel["arm"]), None)
    if search:
        parsed = SearchConfig.model_validate(search)  # either spelling: places, or a stored run's sites
        search = {**parsed.model_dump(mode="json"), "startup": parsed.n_startup, "sites": parsed.sites}
    loss, loss_se, acc = [], [], []
    for k in keys:
        cv = (done.get(k) or {}).get("cv") or {}
        flat = np.asarray(cv.get("val_loss", []), dtype=float).ravel()
        loss.append(float(flat.mean()) if flat.size else None)
        loss_se.append(float(flat.std(ddof=1) / math.sqrt(flat.size)) if flat.size > 1 else None)
        accs = np.asarray(cv.get("val_acc", []), dtype=float).ravel()
        acc.append(float(accs.mean()) if accs.size else None)
    cvs = [(done.get(k) or {}).get("cv") for k in keys]
    # Stored configs from before the screen existed chose without it: they report what they chose.
    screen = sel.get("screen", False)
    by_lik = _chosen_key(keys, values, cvs, "likelihood", "best", screen=False)
    acc_key = _chosen_key(keys, values, cvs, "accuracy", "best")
    criterion, rule = sel.get("criterion", "likelihood"), sel.get("rule", "best")
    guard = sel.get("guard", False)  # stored configs from before the gain check chose without it
    picked = choose(values, cvs, score=criterion, rule=rule, screen=screen)
    check = gain_check(values, cvs, picked) if guard and picked is not None else None
    chosen_key = _chosen_key(keys, values, cvs, criterion, rule, screen=screen, guard=guard)
    chosen_by = {}
    for score in SCORES:
        for r in RULES:
            for screen_it in (True, False) if score != "accuracy" else (True,):
                key = _chosen_key(keys, values, cvs, score, r, screen=screen_it)
                if key is not None:
                    chosen_by[procedure_name(score, r, screen=screen_it)] = cells[key]["value"]
    kept = screened(values, cvs)
    entry = next((a for a in arms if a["name"] == chosen_key), None)
    chosen = cells[chosen_key]["value"] if chosen_key else None
    edge = None
    known = [v for v in values if v is not None]  # a search's unfinished cells have no value yet
    # A search proposes values from its whole range, so the extremes of what it tried are no grid edge.
    if chosen is not None and len(known) > 1 and not search:
        if chosen == max(known):
            edge = "largest"
        elif chosen == min(known) and chosen > 0:
            edge = "smallest"
    return {
        "nested": _nested(sel, keys, values, done, baseline, metric_key, higher) if sel.get("nested") else None,
        "arm": sel["arm"],
        "param": cells[keys[0]]["param"] if keys else None,
        "criterion": criterion,
        "rule": rule,
        "screen": screen,
        "screened_out": [v for v, k in zip(values, kept, strict=True) if not k and v is not None] if screen else [],
        "guard": guard,
        "gain_check": check,
        "chosen_by": chosen_by,
        "folds": sel.get("folds"),
        "values": values,
        "cv_loss": loss,
        "cv_loss_se": loss_se,
        "cv_acc": acc,
        "chosen": chosen,
        "at_edge": edge,
        "chosen_by_likelihood": cells[by_lik]["value"] if by_lik else None,
        "chosen_by_accuracy": cells[acc_key]["value"] if acc_key else None,
        "cell": chosen_key,
        "test": entry,
        "search": search,
        "sites": [cells[k].get("site") for k in keys] if search and search.get("sites") else None,
    }


def _chosen_key(
    keys: list[str],
    values: list[Any],
    cvs: list[Any],
    score: str,
    rule: str,
    *,
    screen: bool = True,
    guard: bool = False,
) -> str | None:
    """The cell key :func:`noisereg.study.selection.choose` picks; None if no cell has the score."""
    i = choose(values, cvs, score=score, rule=rule, screen=screen, guard=guard)
    return None if i is None else keys[i]
