"""Certified accuracy in the summary: per radius, the paired test against the baseline with Holm's correction."""

from __future__ import annotations

from typing import Any

from noisereg.study.cells import plan_cells
from noisereg.study.report.documents import robustness_tables, to_markdown
from noisereg.study.report.summary import summarize
from noisereg.study.stats import ALPHA, holm, paired
from noisereg.study.store import ROBUSTNESS_PREFIX, ROBUSTNESS_VS_BASELINE
from tests.study.fakes import fake_results, fake_robustness, tiny_config

RADII = [0.0, 0.25, 0.5]
SETTINGS = {"smoothing": {"sigma": 0.5}}


def stored(seeds: list[int], certified: list[list[float]]) -> dict[str, Any]:
    return fake_robustness(seeds, certified, RADII, SETTINGS)


def study(measured: dict[str, dict[str, Any]]) -> dict[str, Any]:
    cfg = tiny_config()
    attrs = {
        "config": cfg.model_dump(mode="json"),
        "cells": {c.key: c.meta() for c in plan_cells(cfg)},
        "meta": {"task": "classification"},
    }
    attrs[ROBUSTNESS_VS_BASELINE] = {"settings": SETTINGS, "cells": {}}
    attrs.update({ROBUSTNESS_PREFIX + name: value for name, value in measured.items()})
    return attrs


# Per seed: [r = 0, r = 0.25, r = 0.5]. "input" is far above at r = 0.25, a little below at r = 0
# (with a spread so that the t-test is defined) and equal to the baseline (all zeros) at r = 0.5.
BASE = {s: [0.8 + 0.01 * s, 0.2 + 0.02 * (s % 3), 0.0] for s in range(6)}
INPUT = {s: [0.79 + 0.01 * s + 0.002 * (s % 2), 0.6 + 0.01 * (s % 4), 0.0] for s in range(6)}
PRE = {s: [0.8 + 0.01 * s + 0.001 * (s % 3), 0.25 + 0.015 * (s % 2), 0.0] for s in range(6)}


def summary(input_seeds: tuple[int, ...] = tuple(range(6))) -> dict[str, Any]:
    done = {key: fake_results(key, 6, 0.0, cv=False) for key in ("none", "input", "before")}
    measured = {
        "none": stored(list(BASE), list(BASE.values())),
        "input": stored(list(input_seeds), [INPUT[s] for s in input_seeds]),
        "before": stored(list(PRE), list(PRE.values())),
    }
    return summarize(study(measured), done)


def test_each_radius_is_a_paired_test_on_the_same_seeds_holm_corrected_over_arms_and_radii() -> None:
    arms = {a["name"]: a for a in summary()["arms"]}
    assert "paired" not in arms["none"]["certified"]
    expected = {
        name: [paired([table[s][i] for s in range(6)], [BASE[s][i] for s in range(6)]) for i in range(len(RADII))]
        for name, table in (("input", INPUT), ("before", PRE))
    }
    family = expected["input"] + expected["before"]
    adjusted = holm([p["p_ttest"] for p in family])
    got = arms["input"]["certified"]["paired"] + arms["before"]["certified"]["paired"]
    assert len(got) == 2 * len(RADII)
    for g, e, p in zip(got, family, adjusted, strict=True):
        assert {k: g[k] for k in e} == e
        assert g["p_holm"] == p
    up = arms["input"]["certified"]["paired"][1]
    assert up["mean_diff"] > 0 and up["p_holm"] < ALPHA and up["better"] and not up["worse"]
    same = arms["input"]["certified"]["paired"][2]  # every difference 0: p = 1, no verdict
    assert same["p_ttest"] == 1.0 and same["p_holm"] == 1.0 and not same["better"] and not same["worse"]


def test_only_seeds_certified_in_both_arms_are_paired() -> None:
    arms = {a["name"]: a for a in summary(input_seeds=(1, 3, 4))["arms"]}
    first = arms["input"]["certified"]["paired"][0]
    assert first["n"] == 3
    assert first["mean_diff"] == paired([INPUT[s][0] for s in (1, 3, 4)], [BASE[s][0] for s in (1, 3, 4)])["mean_diff"]


def test_the_report_shows_the_difference_and_holm_p_per_radius() -> None:
    s = summary()
    title, note, headers, rows = next(t for t in robustness_tables(s) if t[0] == "Certified accuracy")
    diff = next(r for r in rows if r[0] == "Δ input − none (Holm p)")
    assert len(diff) == len(headers)
    p = next(a for a in s["arms"] if a["name"] == "input")["certified"]["paired"][1]
    assert diff[2].startswith(f"{p['mean_diff']:+.3f} (p = ")
    assert "Holm-corrected over every arm and radius" in note
    assert "Δ input − none (Holm p)" in to_markdown(s)
