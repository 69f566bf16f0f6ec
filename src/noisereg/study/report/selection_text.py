"""The report's words on a study's selection by cross-validation: the table of the values tried, what
each criterion chose and why, the search that proposed them, the nested check and the chosen value's
test result (markdown lines, no torch)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from noisereg.study.report.formatting import fmt

__all__ = ["selection_lines", "selection_texts", "selection_value"]


def selection_value(sel: Mapping[str, Any], i: int) -> str:
    """The selection's i-th value as shown: ``site: value`` for a search that also proposes sites."""
    site = sel["sites"][i] if sel.get("sites") else None
    return f"{site}: {fmt(sel['values'][i])}" if site else fmt(sel["values"][i])


def selection_lines(sel: Mapping[str, Any] | None) -> list[str]:
    if not sel:
        return []
    lines = [
        "",
        "## Selection by cross-validation",
        "",
        (
            f"Arm **{sel['arm']}**, {sel['folds']}-fold cross-validation on the training part; criterion: "
            f"{_CRITERIA.get(sel['criterion'], sel['criterion'])}"
            f"{', one-standard-error rule (the least noise within one standard error of the best)' if sel.get('rule') == 'one_se' else ''}."
        ),
        "",
        f"| {sel['param']} | CV loss (mean ± se) | CV accuracy |",
        "|---|---|---|",
    ]
    for i, (v, loss, se, acc) in enumerate(
        zip(sel["values"], sel["cv_loss"], sel["cv_loss_se"], sel["cv_acc"], strict=False)
    ):
        star = " ← chosen" if v is not None and v == sel["chosen"] else ""
        star += " (screened out)" if v is not None and v in (sel.get("screened_out") or []) else ""
        lines.append(f"| {selection_value(sel, i)}{star} | {fmt(loss)} ± {fmt(se)} | {fmt(acc)} |")
    return lines + ["", *selection_texts(sel)]


_CRITERIA = {
    "likelihood": "maximum cross-validated likelihood (minimum validation loss)",
    "accuracy": "validation accuracy",
    "brier": "minimum validation Brier score",
    "calibrated": "maximum cross-validated likelihood after temperature scaling",
    "early": "maximum cross-validated likelihood at the best epoch (early stopping)",
}


def selection_texts(sel: Mapping[str, Any]) -> list[str]:
    """The search that proposed the values, if any; the values chosen by each criterion; the chosen
    value's test result."""
    # The study's own criterion and rule lead: the plain likelihood and accuracy choices follow for
    # comparison, so a reader never takes one of them for the value the study chose.
    rule = ", one-standard-error rule" if sel.get("rule") == "one_se" else ""
    criterion = _CRITERIA.get(sel.get("criterion") or "likelihood", sel.get("criterion"))
    if sel.get("screen") and sel.get("criterion") != "accuracy":
        out = sel.get("screened_out") or []
        rule += ", among the values whose CV accuracy is within two standard errors of the best"
        rule += f" (screened out: {', '.join(fmt(v) for v in out)})" if out else ""
    check = sel.get("gain_check")
    if check:  # the gain check of noisereg.study.selection: kept, or sent back to no noise
        lo, hi = check["ci"]
        rule += (
            f"; gain check of {fmt(check['value'])}: CV {check['metric']} gain {check['gain']:+.4f}, "
            f"{check['confidence']:.0%} interval [{fmt(lo)}, {fmt(hi)}] over {check['folds']} folds, "
            + ("above zero: kept" if check["passed"] else "not above zero: no noise")
        )
    chosen = f"Chosen: {_chosen(sel, 'chosen')} ({criterion}{rule})."
    if sel.get("at_edge"):
        chosen += f" The chosen value is the {sel['at_edge']} of the grid: the best may lie beyond it; extend the grid."
    texts = [
        chosen
        + f" By likelihood alone: {_chosen(sel, 'chosen_by_likelihood')}; by accuracy alone: {_chosen(sel, 'chosen_by_accuracy')}."
    ]
    search = sel.get("search")
    if search:
        tried = sum(v is not None for v in sel["values"])
        sampler = "TPE sampler" if search["sampler"] == "tpe" else "random sampler"
        first = f", {search['startup']} of them random to start" if search["sampler"] == "tpe" else ""
        sites = f" and the site among {', '.join(search['sites'])}" if search.get("sites") else ""
        texts.insert(
            0,
            (
                f"Values proposed by Optuna's {sampler}: {tried} of {search['trials']} trials of {sel['param']} in "
                f"[{fmt(search['low'])}, {fmt(search['high'])}]{' on a log scale' if search['log'] else ''}{sites}{first}, "
                "each ranked by its cross-validated score; rows in the order proposed."
            ),
        )
    if sel.get("chosen_by"):
        texts.append(
            "Every procedure's choice: " + "; ".join(f"{name}: {fmt(v)}" for name, v in sel["chosen_by"].items()) + "."
        )
    nested = sel.get("nested")
    if nested:
        gain = nested["gain"]
        lo, hi = gain["ci95"]
        texts.append(
            f"Nested cross-validation ({nested['folds']} outer folds of the training part, each choosing by the same procedure "
            f"from an inner {nested['folds']}-fold CV, {nested['seeds']} seed(s)): choosing then training changes the held-out "
            f"result by {gain['mean']:+.4f} against no noise (positive is better; 95% t-interval over the outer folds "
            f"[{fmt(lo)}, {fmt(hi)}]); values chosen per outer fold: {', '.join(fmt(v) for v in nested['chosen'])}."
        )
    test = sel.get("test")
    if test:
        p = test.get("paired") or {}
        texts.append(
            f"Test result of the chosen value ({test['name']}): {fmt(test['mean'])} ± {fmt(test['std'])} "
            f"(95% CI [{fmt(test['ci95'][0])}, {fmt(test['ci95'][1])}], n = {test['n']})"
            + (f"; vs baseline {p['mean_diff']:+.4f}, p (t) = {fmt(p.get('p_ttest'), 3)}." if p.get("n") else ".")
        )
    return texts


def _chosen(sel: Mapping[str, Any], key: str) -> str:
    """A chosen value as shown, with its site for a search over sites."""
    if sel.get(key) is None or not sel.get("sites"):
        return fmt(sel.get(key))
    return selection_value(sel, sel["values"].index(sel[key]))
