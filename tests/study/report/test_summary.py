"""The summary from stored results: statistics, pairing on seeds, verdict, CV selection."""

from __future__ import annotations

import pytest

from noisereg.study.cells import plan_cells
from noisereg.study.report.documents import TERMINAL_HEADERS, fmt, robustness_tables, table_rows
from noisereg.study.report.summary import summarize
from noisereg.study.stats import bootstrap_paired, iqm, paired, power, summary_statistics
from tests.study.fakes import fake_results, populate, tiny_config


def study_attrs() -> dict:
    cfg = tiny_config()
    return {
        "config": cfg.model_dump(mode="json"),
        "cells": {c.key: c.meta() for c in plan_cells(cfg)},
        "meta": {"task": "classification"},
    }


def results(shifts: dict[str, float], noise: float = 0.0) -> dict:
    out = {}
    for key, meta in study_attrs()["cells"].items():
        res = fake_results(key, 6, shifts.get(key, 0.0), cv=meta["selection"])
        # seed-dependent wobble so that differences are not constant
        res["final"]["test_acc"] = [
            a + noise * ((i * 7 + len(key)) % 3 - 1) for i, a in enumerate(res["final"]["test_acc"])
        ]
        out[key] = res
    return out


def test_arms_hold_describe_and_paired_on_the_same_seeds() -> None:
    done = results({"before": 0.05}, noise=0.01)
    s = summarize(study_attrs(), done)
    assert (s["metric"], s["metric_key"], s["baseline"], s["higher_is_better"]) == (
        "accuracy",
        "test_acc",
        "none",
        True,
    )
    by = {a["name"]: a for a in s["arms"]}
    assert list(by) == list(study_attrs()["cells"])
    pre = by["before"]
    expected = summary_statistics(done["before"]["final"]["test_acc"])
    assert {k: pre[k] for k in expected} == expected
    assert by["none"]["paired"] is None
    ref = paired(done["before"]["final"]["test_acc"], done["none"]["final"]["test_acc"])
    assert {k: pre["paired"][k] for k in ref} == ref
    assert pre["paired"]["better"] and s["verdict"]["better"] == ["before"] and s["verdict"]["any_better"]
    assert "1 noise setting(s) beat no noise ('none')" in s["verdict"]["text"]


def test_pairing_uses_common_seeds_only() -> None:
    done = results({}, noise=0.01)
    done["input"] = dict(done["input"], seeds=[2, 3, 4, 5, 6, 7])
    s = summarize(study_attrs(), done)
    assert next(a for a in s["arms"] if a["name"] == "input")["paired"]["n"] == 4


def test_says_plainly_when_no_noise_setting_beats_no_noise() -> None:
    s = summarize(study_attrs(), results({"input": -0.05, "before": 0.001}, noise=0.01))
    assert not s["verdict"]["any_better"]
    assert s["verdict"]["text"].startswith("No noise setting beats no noise ('none') on test accuracy")
    assert s["verdict"]["worse"] == ["input"] and "Significantly worse than no noise: input" in s["verdict"]["text"]


def test_selection_minimizes_cross_validated_loss_and_reports_the_test_result() -> None:
    s = summarize(study_attrs(), results({"grid[std=0.1]": 0.05, "grid[std=1.0]": -0.02}, noise=0.01))
    sel = s["selection"]
    assert sel["values"] == [0.0, 0.1, 1.0] and sel["param"] == "std" and sel["folds"] == 3
    assert sel["chosen"] == 0.1 == sel["chosen_by_likelihood"] == sel["chosen_by_accuracy"]
    assert sel["cv_loss"] == pytest.approx([0.51, 0.46, 0.53])
    assert sel["test"]["name"] == "grid[std=0.1]" and sel["cell"] == "grid[std=0.1]" and sel["at_edge"] is None
    edge = summarize(study_attrs(), results({"grid[std=1.0]": 0.05}))["selection"]
    assert edge["chosen"] == 1.0 and edge["at_edge"] == "largest"


def test_a_seed_with_a_non_finite_metric_is_left_out() -> None:
    done = results({}, noise=0.01)
    done["input"]["final"]["test_acc"][2] = float("nan")
    entry = next(a for a in summarize(study_attrs(), done)["arms"] if a["name"] == "input")
    assert entry["n"] == 5 and entry["paired"]["n"] == 5 and len(entry["per_seed"]) == 5


def test_missing_cells_are_listed_not_invented(tmp_path) -> None:
    done = results({})
    del done["before"]
    s = summarize(study_attrs(), done)
    assert s["missing"] == ["before"] and s["cells_complete"] == 5 and "before" not in [a["name"] for a in s["arms"]]
    assert populate(tmp_path, tiny_config(), {}, skip=("input",)).unfinished() == {"input": "RUNNING"}


def test_versus_compares_two_arms_on_the_same_seeds_with_holm_over_the_contrasts() -> None:
    attrs = study_attrs()
    attrs["config"]["arms"][2]["versus"] = "input"
    done = results({"before": 0.05}, noise=0.01)
    s = summarize(attrs, done)
    pre = next(a for a in s["arms"] if a["name"] == "before")
    ref = paired(done["before"]["final"]["test_acc"], done["input"]["final"]["test_acc"])
    assert {k: pre["versus"][k] for k in ref} == ref and pre["versus"]["arm"] == "input"
    assert pre["versus"]["p_holm"] == ref["p_ttest"] and pre["versus"]["better"]
    assert all("versus" not in a for a in s["arms"] if a["name"] != "before")
    from noisereg.study.report.documents import to_markdown

    assert "## Paired contrasts" in to_markdown(s) and "| before | input | +0.0500" in to_markdown(s)


def test_a_noisy_comparison_across_input_scales_is_marked_not_like_for_like() -> None:
    attrs = study_attrs()
    attrs["cells"]["before"] = {**attrs["cells"]["before"], "standardize": not attrs["config"]["data"]["standardize"]}
    done = results({}, noise=0.01)
    for res in done.values():
        res["final"]["noisy_test_acc"] = [a - 0.1 for a in res["final"]["test_acc"]]
    s = summarize(attrs, done)
    by = {a["name"]: a for a in s["arms"]}
    assert by["before"]["noisy"]["paired"]["like_for_like"] is False
    assert by["before"]["noisy"]["paired"]["scale"].startswith("its inputs are raw and the baseline's standardized")
    assert "like_for_like" not in by["input"]["noisy"]["paired"]  # the same scale as the baseline: comparable
    assert by["before"]["noisy"]["paired"]["n"] == by["input"]["noisy"]["paired"]["n"] == 6
    note = next(t[1] for t in robustness_tables(s) if t[0] == "Noisy test data during training")
    assert "before scale their inputs otherwise than 'none', so their noisy results are not like for like" in note


def test_the_accuracy_screen_keeps_likelihood_from_choosing_a_network_that_learned_nothing() -> None:
    # std 1.0 predicts the class frequencies: the lowest held-out log-loss, the worst accuracy
    done = results({"grid[std=0.1]": 0.05}, noise=0.01)
    for key, loss, acc in (("grid[std=0.0]", 3.8, 0.80), ("grid[std=0.1]", 2.3, 0.78), ("grid[std=1.0]", 0.69, 0.50)):
        done[key]["cv"]["val_loss"] = [[loss, loss + 0.2, loss - 0.2]] * 2
        done[key]["cv"]["val_acc"] = [[acc, acc + 0.1, acc - 0.1]] * 2
    attrs = study_attrs()
    assert attrs["config"]["selection"]["screen"] is True
    attrs["config"]["selection"]["guard"] = False  # the screen alone (the gain check: tests/study/test_selection.py)
    sel = summarize(attrs, done)["selection"]
    assert sel["chosen"] == 0.1 and sel["screen"] and sel["screened_out"] == [1.0]
    assert sel["chosen_by"]["likelihood, unscreened"] == 1.0 == sel["chosen_by_likelihood"]
    from noisereg.study.report.documents import selection_texts

    assert (
        "among the values whose CV accuracy is within two standard errors of the best (screened out: 1)"
        in selection_texts(sel)[0]
    )
    # a run stored before the screen existed reports the choice it made
    del attrs["config"]["selection"]["screen"]
    old = summarize(attrs, done)["selection"]
    assert old["chosen"] == 1.0 and not old["screen"] and old["screened_out"] == []
    assert "screened" not in selection_texts(old)[0]


def test_the_recommendation_is_the_cv_choice_not_the_best_test_arm() -> None:
    # The failure: CV on the training part chose 0.1, the report crowned the best test arm.
    done = results({"grid[std=0.1]": 0.05}, noise=0.01)
    for key, gain in (("grid[std=0.1]", 0.0), ("grid[std=1.0]", 0.10)):  # the test set alone favours 1.0
        final = done[key]["final"]
        final["test_acc"] = [a + gain + 0.01 * (i % 2) for i, a in enumerate(final["test_acc"])]
    s = summarize(study_attrs(), done)
    rec = s["recommendation"]
    assert s["selection"]["chosen"] == 0.1 and s["verdict"]["best_mean"] == "grid[std=1.0]"
    assert (rec["status"], rec["cell"], rec["chosen_by"]) == ("use", "grid[std=0.1]", "cross-validation")
    assert rec["estimate"]["mean_diff"] == s["selection"]["test"]["paired"]["mean_diff"]
    assert rec["optimistic"]["cell"] == "grid[std=1.0]" and rec["text"].startswith("Use grid[std=0.1], chosen by")
    config = study_attrs()
    config["config"]["selection"] = None
    plain = summarize(config, done)["recommendation"]
    assert plain["status"] == "unselected" and plain["cell"] is None
    assert plain["beat_no_noise"] == ["grid[std=1.0]", "grid[std=0.1]"]


def test_interval_estimates_and_power_beside_the_tests() -> None:
    done = results({"before": 0.05, "input": 0.002}, noise=0.01)
    s = summarize(study_attrs(), done)
    by = {a["name"]: a for a in s["arms"]}
    seed = study_attrs()["config"]["seed"]
    acc = {k: done[k]["final"]["test_acc"] for k in ("none", "before", "input")}
    assert by["none"]["iqm"] == iqm(acc["none"], seed=seed) and by["none"]["paired"] is None
    boot = by["before"]["paired"]["bootstrap"]
    assert boot == {**bootstrap_paired(acc["before"], acc["none"], seed=seed), "over": "seeds"}
    assert boot["p_improvement"] == 1.0 and by["before"]["paired"]["power"] is None  # significant: no power
    p = by["input"]["paired"]
    holm_level = p["power"].pop("holm")  # at Holm's strictest level over the m comparisons: alpha / m
    assert not p["better"] and p["power"] == power(p["std_diff"], 6, effect=p["mean_diff"])
    m = sum(1 for a in s["arms"] if (a["paired"] or {}).get("p_ttest") is not None)
    strict = power(p["std_diff"], 6, effect=p["mean_diff"], alpha=0.05 / m)
    assert holm_level == {k: strict[k] for k in ("alpha", "mde", "mde_dz", "seeds_needed")}
    assert p["power"]["mde"] > abs(p["mean_diff"])  # not detected: the detectable effect is larger


def test_the_printed_table_reads_the_interval_estimates_from_the_summary() -> None:
    done = results({"before": 0.05, "input": 0.002}, noise=0.01)
    s = summarize(study_attrs(), done)
    rows = {r["arm"]: r for r in table_rows(s)}
    by = {a["name"]: a for a in s["arms"]}
    assert {"diff_ci", "p_better", "mde"} <= set(TERMINAL_HEADERS)
    assert "p_wilcoxon" not in TERMINAL_HEADERS  # in the report only: the terminal table stays narrow
    before, inp = by["before"]["paired"], by["input"]["paired"]
    lo, hi = before["bootstrap"]["ci95_diff"]
    assert rows["before"]["diff_ci"] == f"[{fmt(lo, 3)}, {fmt(hi, 3)}]"
    lo, hi = inp["bootstrap"]["ci95_improvement"]
    assert rows["input"]["p_better"] == f"{fmt(inp['bootstrap']['p_improvement'], 3)} [{fmt(lo, 3)}, {fmt(hi, 3)}]"
    # the minimum detectable effect only where the comparison is not significant
    assert rows["before"]["mde"] == "" and rows["input"]["mde"] == fmt(inp["power"]["mde"], 3)
    assert rows["none"]["diff_ci"] == "baseline" and rows["none"]["mde"] == "—"


def test_a_summary_stored_before_the_interval_estimates_still_prints() -> None:
    s = summarize(study_attrs(), results({"before": 0.05}, noise=0.01))
    for a in s["arms"]:
        a.pop("iqm")
        if a["paired"]:
            a["paired"].pop("bootstrap")
            a["paired"].pop("power")
    row = next(r for r in table_rows(s) if r["arm"] == "before")
    assert (row["diff_ci"], row["p_better"], row["mde"]) == ("—", "—", "—")
