"""Intervals after early stopping: a sequential comparison stopped before its maximum is reported with
its confidence sequence, not with fixed-n intervals (noisereg.study.report.sequential.anytime_intervals)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from noisereg.study.export.table import _comparison_rows
from noisereg.study.report.documents import to_markdown
from noisereg.study.report.summary import summarize
from noisereg.study.rounds import Rounds, compare
from noisereg.study.sequential import interval
from tests.study.fakes import fake_results, tiny_raw


def _results(key: str, acc: np.ndarray) -> dict[str, Any]:
    res = fake_results(key, len(acc), 0.0, cv=False)
    res["final"]["test_acc"] = acc.tolist()
    return res


def _study() -> tuple[dict[str, Any], dict[str, Any], np.ndarray]:
    """A stored sequential study, rounds merged (as the report reads it): rounds of 8 seeds up to 24;
    "input" is far better than "none" and stopped after its first round, "before" equals it and ran to
    the maximum. Returns the study's attributes, its results and input's 8 differences."""
    raw = tiny_raw(name="seq", seeds={"max": 24, "step": 8})
    raw["arms"] = raw["arms"][:3]
    del raw["selection"]
    rng = np.random.default_rng(3)
    base = 0.7 + rng.normal(0, 0.02, 24)
    better = base[:8] + 0.1 + rng.normal(0, 0.01, 8)
    same = base + rng.normal(0, 0.01, 24)
    done = {"none": _results("none", base), "input": _results("input", better), "before": _results("before", same)}
    cells = {name: {"arm": name, "value": None, "param": None} for name in done}
    meta = {"data": "circles", "task": "classification", "classes": ["0", "1"], "n_train": [30], "n_test": [30]}
    return {"config": raw, "cells": cells, "meta": meta}, done, better - base[:8]


def test_a_comparison_stopped_early_gets_its_confidence_sequence_and_no_fixed_n_interval() -> None:
    attrs, done, diffs = _study()
    summary = summarize(attrs, done)
    assert summary["schema"] == "noisereg.summary/3"
    seq = summary["sequential"]
    assert (seq["cells"]["input"]["status"], seq["cells"]["input"]["seeds"]) == ("better", 8)
    assert seq["cells"]["before"]["status"] == "max" and not seq["cells"]["before"]["stopped_early"]
    # two comparisons: alpha 0.05 / 2 each, half of it spent on the confidence sequence
    assert seq["cs_confidence"] == pytest.approx(1 - 0.05 / 2 / 2)
    arms = {a["name"]: a for a in summary["arms"]}
    early = arms["input"]["paired"]
    assert early["stopped_early"] and early["ci95_diff"] is None
    assert early["bootstrap"]["ci95_diff"] is None and early["bootstrap"]["ci95_improvement"] is None
    # one look at 8 seeds: the interval of noisereg.study.sequential at the level the decision used
    assert early["anytime"]["ci"] == pytest.approx(list(interval(list(diffs), 0.05 / 2 / 2)), abs=1e-12)
    assert early["anytime"]["ci"][0] > 0 and early["anytime"]["seeds"] == 8 and early["anytime"]["look"] == 1
    assert early["anytime"]["confidence"] == seq["cs_confidence"]
    # a fixed-n interval would have been narrower: the price of stopping when one likes
    t_lo, t_hi = sps.t.interval(0.95, 7, loc=diffs.mean(), scale=sps.sem(diffs))
    assert early["anytime"]["ci"][1] - early["anytime"]["ci"][0] > t_hi - t_lo
    full = arms["before"]["paired"]
    assert not full["stopped_early"] and full["ci95_diff"][0] < full["mean_diff"] < full["ci95_diff"][1]
    assert full["bootstrap"]["ci95_diff"] is not None and full["anytime"]["seeds"] == 24
    assert "anytime" not in (arms["none"]["paired"] or {})

    text = to_markdown(summary)
    lo, hi = early["anytime"]["ci"]
    assert f"[{lo:.3g}, {hi:.3g}] CS" in text  # the estimate table's Δ column
    assert f"[{lo:+.4f}, {hi:+.4f}] *" in text  # the Rounds table, marked as stopped early
    assert "(no interval: stopped early)" in text and "anytime-valid CS of cell − baseline (98.8%)" in text
    assert f"anytime-valid 98.8% CI (confidence sequence) [{lo:.3g}, {hi:.3g}]" in text  # the recommendation's evidence


def test_the_export_carries_the_interval_that_holds() -> None:
    attrs, done, _ = _study()
    summary = summarize(attrs, done)
    rows = {r["cell"]: r for r in _comparison_rows(attrs, done)}
    early = {a["name"]: a for a in summary["arms"]}["input"]["paired"]
    assert [rows["input"]["anytime_ci_low"], rows["input"]["anytime_ci_high"]] == early["anytime"]["ci"]
    assert rows["input"]["stopped_early"] and rows["input"]["diff_ci95_low"] is None
    assert rows["input"]["boot_diff_ci95_low"] is None and rows["input"]["p_improvement_ci95_low"] is None
    assert rows["before"]["stopped_early"] is False and rows["before"]["diff_ci95_low"] is not None
    assert rows["input"]["anytime_confidence"] == pytest.approx(0.9875)


def test_a_fixed_study_is_unchanged() -> None:
    attrs, done, _ = _study()
    attrs["config"] = {**attrs["config"], "seeds": 24}
    done["input"] = _results("input", np.asarray(done["none"]["final"]["test_acc"]) + 0.05)
    summary = summarize(attrs, done)
    assert summary["sequential"] is None
    for arm in summary["arms"]:
        p = arm["paired"] or {}
        assert "anytime" not in p and "stopped_early" not in p
    assert "CS" not in to_markdown(summary)


def test_the_confidence_sequence_at_the_stopping_time_covers_the_difference() -> None:
    # 400 paired sequences of normal differences with mean 0.5 sd, looked at every 5 seeds up to 30 and
    # stopped by the study's rule (alpha 0.05 for the comparison: 0.025 on the confidence sequence).
    # At whatever round each stops, its confidence sequence covers the true difference at >= 97.5%
    # (margin: 4 binomial standard errors). The t-interval on the same seeds does not: among the
    # comparisons stopped early, which stopped because their first seeds looked good, it covers far
    # less than its 95% (0.79 here), which is why the report drops it.
    rounds, delta, trials = Rounds(max=30, step=5, alpha=0.05, margin=None), 0.5, 400
    rng = np.random.default_rng(5)
    covered = early = early_covered = early_t = 0
    for _ in range(trials):
        d = rng.normal(delta, 1.0, rounds.max)
        decision = compare(list(d), rounds.looks, rounds, rounds.alpha)
        covered += decision.low <= delta <= decision.high
        if decision.n < rounds.max:
            early += 1
            early_covered += decision.low <= delta <= decision.high
            lo, hi = sps.t.interval(0.95, decision.n - 1, loc=d[: decision.n].mean(), scale=sps.sem(d[: decision.n]))
            early_t += lo <= delta <= hi

    def bound(level: float, n: int) -> float:
        return level - 4 * math.sqrt(level * (1 - level) / n)

    assert early >= 50  # optional stopping is exercised
    assert covered / trials >= bound(0.975, trials)
    assert early_covered / early >= bound(0.975, early)
    assert early_t / early < bound(0.95, early)
