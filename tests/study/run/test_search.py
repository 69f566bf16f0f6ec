"""search = { sampler = "tpe", ... }: the study file's keys, the sampler's proposals, and whole studies."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from noisereg.engine import train_group
from noisereg.study.bridge.prepare import prepare
from noisereg.study.cells import plan_cells, signature
from noisereg.study.config import StudyConfigError, parse_config
from noisereg.study.config.search import SearchConfig
from noisereg.study.report import summarize, table_rows
from noisereg.study.report.documents import selection_texts
from noisereg.study.run.runner import enqueue_study, run_study
from noisereg.study.run.search import PROPOSAL, cv_score, propose, propose_cell
from noisereg.study.store import Store, default_url
from tests.study.fakes import fake_results, tiny_raw

SEARCH = {"trials": 4, "low": 0.01, "high": 3.0, "log": True}


def search_raw(search: dict | None = None, **overrides) -> dict:
    """A tiny study whose third arm is searched; its cells train 2 seeds on the test fold and 2 CV folds."""
    arms = [
        {"name": "none"},
        {"name": "input", "noise": {"site": "input", "kind": "gaussian", "std": 0.1}},
        {"name": "tpe", "noise": {"site": "before", "kind": "gaussian", "std": 0.1}, "search": search or SEARCH},
    ]
    raw = tiny_raw(seeds=2, arms=arms, selection={"arm": "tpe", "folds": 2}, training={"epochs": 20, "eval_every": 5})
    raw.update(overrides)
    return raw


def problems(raw: dict) -> list[tuple[str, str]]:
    with pytest.raises(StudyConfigError) as info:
        parse_config(raw)
    return info.value.problems


# ---- the study file --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("search", "path", "message"),
    [
        ({**SEARCH, "low": 1.0, "high": 0.5}, "arms[2].search", "low=1.0 must be < high=0.5"),
        ({**SEARCH, "low": 0.0}, "arms[2].search", "log = true needs low > 0, got low=0.0"),
        ({**SEARCH, "trials": 0}, "arms[2].search.trials", "must be >= 1, got 0"),
        (
            {**SEARCH, "sampler": "tpr"},
            "arms[2].search.sampler",
            "must be one of 'tpe', 'random', got 'tpr'; did you mean 'tpe'?",
        ),
        ({**SEARCH, "high": math.inf}, "arms[2].search.high", "Input should be a finite number, got inf"),
        (
            {**SEARCH, "sites": ["before", "hidden"]},
            "arms[2].search.sites[1]",
            "must be one of 'input', 'before', 'after', got 'hidden'",
        ),
        ({**SEARCH, "param": "clip"}, "arms[2]", "grid.param='clip' must name a number, it names NoneType"),
    ],
)
def test_bad_search_tables_name_the_key(search: dict, path: str, message: str) -> None:
    assert problems(search_raw(search)) == [(path, message)]


def test_unknown_search_key_suggests_the_right_one() -> None:
    [(path, msg)] = problems(search_raw({**SEARCH, "trails": 4}))
    assert path == "arms[2].search" and "unknown key 'trails'; did you mean 'trials'?" in msg


def test_bounds_are_checked_as_values_of_the_strength_at_every_site() -> None:
    raw = search_raw()
    raw["arms"][2]["noise"] = {"site": "before", "kind": "gaussian_dropout", "rate": 0.1}
    raw["arms"][2]["search"] = {"trials": 3, "low": 0.1, "high": 1.0}
    assert problems(raw) == [("arms[2]", "search.high sets rate: must be < 1, got 1.0")]
    raw = search_raw({**SEARCH, "sites": ["before", "input"]})
    raw["arms"][2]["noise"]["layers"] = [0]
    [(path, msg)] = problems(raw)
    assert path == "arms[2]" and msg.startswith("search.low sets std with at = 'input': select picks hidden layers")


def test_a_search_needs_its_own_selection() -> None:
    [(_, msg)] = problems(search_raw(selection=None))
    assert (
        msg
        == "arms[2].search needs [selection] arm = 'tpe': the sampler ranks values by their cross-validated score, never by the test set"
    )
    raw = search_raw(selection={"arm": "input"})
    assert "has no grid or search to choose from" in problems(raw)[0][1]
    raw = search_raw({**SEARCH, "sites": ["input", "after"]}, model={"family": "cnn", "input_shape": [1, 1, 2]})
    raw["arms"][2]["noise"]["site"] = "input"
    assert parse_config(raw).model.family == "cnn"  # a CNN takes hidden-layer noise too
    raw = search_raw()
    raw["arms"][2]["grid"] = [0.1, 0.2]
    assert problems(raw) == [("arms[2]", "an arm has a grid or a search, not both")]


def test_a_search_plans_one_cell_per_trial_each_trained_alone() -> None:
    cells = plan_cells(parse_config(search_raw()))
    search = [c for c in cells if c.search]
    assert [c.key for c in search] == [f"tpe[trial={i}]" for i in range(1, 5)]
    assert all(c.selection and c.value is None and c.param == "std" for c in search)
    assert len({signature(c) for c in search}) == 4 and search[0].meta()["search"] is True
    assert "search" not in cells[0].meta()
    assert (
        SearchConfig(trials=30, low=0, high=1).n_startup == 10 and SearchConfig(trials=2, low=0, high=1).n_startup == 1
    )


# ---- proposals -----------------------------------------------------------------------------------


def bowl(value: float) -> float:
    """A criterion with its best value at 0.1 (on a log scale)."""
    return (math.log10(value) + 1.0) ** 2


def test_proposals_are_seeded_within_bounds_and_leave_out_diverged_cells() -> None:
    search = SearchConfig(trials=20, low=0.01, high=3.0, log=True, startup=3)
    finished = [({"value": v, "site": None}, bowl(v)) for v in (0.02, 0.5, 2.0, 0.09)]
    first = propose(search, finished, [], seed=7)
    assert propose(search, finished, [], seed=7) == first and first["site"] is None
    assert propose(search, [*finished, ({"value": 1.0, "site": None}, math.nan)], [], seed=7) == first
    assert propose(search, finished, [], seed=8) != first
    assert propose(search, finished, [first], seed=7) != first  # a cell in training counts as a bad one
    values = [propose(search, finished, [], seed=s)["value"] for s in range(30)]
    assert all(0.01 <= v <= 3.0 for v in values)


def test_tpe_moves_towards_the_good_values_and_random_does_not() -> None:
    def run(sampler: str) -> list[float]:
        search = SearchConfig(sampler=sampler, trials=24, low=0.001, high=10.0, log=True, startup=6)
        finished: list = []
        for i in range(24):
            proposal = propose(search, finished, [], seed=i)
            finished.append((proposal, bowl(proposal["value"])))
        return [bowl(p["value"]) for p, _ in finished[12:]]

    assert np.median(run("tpe")) < np.median(run("random")) / 2


def test_sites_are_proposed_from_the_list_and_tpe_prefers_the_better_one() -> None:
    search = SearchConfig(trials=10, low=0.0, high=1.0, sites=["input", "after"], startup=2)
    assert {propose(search, [], [], seed=s)["site"] for s in range(12)} == {"input", "after"}
    finished = [({"value": 0.5, "site": "after"}, 1.0), ({"value": 0.2, "site": "input"}, 0.5)]
    sites = [propose(search, finished, [], seed=s)["site"] for s in range(12)]
    assert sites.count("input") > sites.count("after")


def test_objective_follows_the_selection_criterion() -> None:
    results = {"cv": {"val_loss": [[0.5, 0.7], [0.3, 0.5]], "val_acc": [[0.6, 0.8], [1.0, 0.6]]}}
    assert cv_score(results, "likelihood") == pytest.approx(0.5)
    assert cv_score(results, "accuracy") == pytest.approx(-0.75)
    assert cv_score({"cv": {"val_loss": [[2.0]]}}, "accuracy") == 2.0


# ---- whole studies ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> tuple[Path, dict, dict]:
    run_dir = tmp_path_factory.mktemp("search")
    summary = run_study(parse_config(search_raw()), run_dir)
    return run_dir, summary, Store(default_url(run_dir), "tiny").completed()


def test_a_search_study_stores_and_reproduces_its_proposals(searched, tmp_path) -> None:
    _, summary, done = searched
    proposals = [done[f"tpe[trial={i}]"][PROPOSAL] for i in range(1, 5)]
    assert all(0.01 <= p["value"] <= 3.0 and p["site"] is None for p in proposals)
    assert len({p["value"] for p in proposals}) == 4
    sel = summary["selection"]
    assert sel["values"] == [p["value"] for p in proposals] and sel["search"]["sampler"] == "tpe"
    assert sel["chosen"] in sel["values"] and sel["cell"].startswith("tpe[trial=")
    assert [a["grid_value"] for a in summary["arms"] if a.get("search")] == sel["values"]
    assert all(np.asarray(done[f"tpe[trial={i}]"]["cv"]["val_loss"]).shape == (2, 2) for i in range(1, 5))
    again = run_study(parse_config(search_raw()), tmp_path / "again")
    assert again["arms"] == [{**a, "elapsed_s": b["elapsed_s"]} for a, b in zip(summary["arms"], again["arms"])]


def test_the_report_shows_the_search(searched) -> None:
    run_dir, _, _ = searched
    markdown = (run_dir / "summary.md").read_text()
    assert "Values proposed by Optuna's TPE sampler: 4 of 4 trials of std in [0.01, 3] on a log scale" in markdown
    assert "| tpe[trial=1]: std=" in markdown and "Selection by cross-validation" in markdown
    assert "TPE sampler: 4 of 4 trials of std" in (run_dir / "report.html").read_text()
    assert (run_dir / "plots" / "grid_tpe.png").is_file()


def test_an_interrupted_search_resumes_with_the_same_proposals(searched, tmp_path) -> None:
    _, _, done = searched
    calls = []

    def interrupted(group, folds, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # none, input, the first search cell, then Ctrl-C in the second one
            raise KeyboardInterrupt
        return train_group(group, folds, **kwargs)

    cfg = parse_config(search_raw())
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, tmp_path, train=interrupted)
    resumed = run_study(cfg, tmp_path)
    after = Store(default_url(tmp_path), "tiny").completed()
    assert [after[f"tpe[trial={i}]"][PROPOSAL] for i in range(1, 5)] == [
        done[f"tpe[trial={i}]"][PROPOSAL] for i in range(1, 5)
    ]
    assert resumed["selection"]["values"] == [done[f"tpe[trial={i}]"][PROPOSAL]["value"] for i in range(1, 5)]


def test_a_dead_workers_search_cell_is_retried_with_its_proposal(tmp_path) -> None:
    cfg = parse_config(search_raw())
    prep, _ = enqueue_study(cfg, tmp_path, heartbeat_interval=1, grace_period=1)
    store = Store(default_url(tmp_path), "tiny", heartbeat_interval=1, grace_period=1)
    [claim] = store.claim(1, accept=lambda k: k == "tpe[trial=1]")
    cell = propose_cell(prep, store, claim)  # then the worker dies: no heartbeat, no result
    assert 0.01 <= cell.value <= 3.0 and cell.noise[0].std == cell.value and cell.search
    time.sleep(2.5)
    store.reap()
    [retry] = store.claim(1, accept=lambda k: k == "tpe[trial=1]")
    assert retry.trial_id != claim.trial_id and propose_cell(prepare(cfg), store, retry) == cell


def test_a_search_over_sites_is_reported_with_each_cells_site() -> None:
    cfg = parse_config(search_raw({**SEARCH, "trials": 3, "sites": ["input", "before"]}))
    cells = {c.key: c.meta() for c in plan_cells(cfg)}
    done = {k: fake_results(k, 2, 0.1 if k == "tpe[trial=2]" else 0.0, cv=cells[k]["selection"]) for k in cells}
    done["tpe[trial=1]"]["proposal"] = {"value": 0.5, "site": "input"}
    done["tpe[trial=2]"]["proposal"] = {"value": 0.2, "site": "before"}
    del done["tpe[trial=3]"]  # still in training
    summary = summarize(
        {"config": cfg.model_dump(mode="json"), "cells": cells, "meta": {"task": "classification"}}, done
    )
    sel = summary["selection"]
    assert sel["values"] == [0.5, 0.2, None] and sel["sites"] == ["input", "before", None] and sel["chosen"] == 0.2
    assert [r["arm"] for r in table_rows(summary)][2:] == [
        "tpe[trial=1]: input std=0.5",
        "tpe[trial=2]: before std=0.2",
    ]
    assert summary["missing"] == ["tpe[trial=3]"]
    texts = selection_texts(sel)
    assert texts[0].startswith(
        "Values proposed by Optuna's TPE sampler: 2 of 3 trials of std in [0.01, 3] on a log scale and the site among input, before"
    )
    criterion = "maximum cross-validated likelihood (minimum validation loss)"
    screen = "among the values whose CV accuracy is within two standard errors of the best"
    assert (
        texts[1] == f"Chosen: before: 0.2 ({criterion}, one-standard-error rule, {screen} (screened out: 0.5)). "
        "By likelihood alone: before: 0.2; by accuracy alone: before: 0.2."
    )


_EARLIEST = {"before": "pre", "after": "post"}


def _with_earlier_site_names(data: object) -> object:
    """``data`` as a run stored before the renames holds it: noise tables with ``site`` (hidden sites
    written ``pre`` / ``post``) and ``layers``, a search's ``sites``, proposals' sites ``pre``."""
    if isinstance(data, dict):
        if "at" in data:  # a noise table or a search's place
            site = data.get("where") if data["at"] == "activations" else data["at"]
            out = {k: _with_earlier_site_names(v) for k, v in data.items() if k not in ("at", "where", "select")}
            return {
                **out,
                "site": _EARLIEST.get(site, site),
                **({"layers": data["select"]} if "select" in data else {}),
            }
        out = {k: ("pre" if k == "site" and v == "before" else _with_earlier_site_names(v)) for k, v in data.items()}
        if "places" in out:
            places = out.pop("places")
            out["sites"] = None if places is None else [p["site"] for p in places]
        return out
    if isinstance(data, list):
        return [_with_earlier_site_names(v) for v in data]
    return data


def test_a_run_stored_before_the_rename_reports_its_sites_by_their_new_names() -> None:
    cfg = parse_config(search_raw({**SEARCH, "trials": 3, "sites": ["input", "before"]}))
    cells = {c.key: c.meta() for c in plan_cells(cfg)}
    done = {k: fake_results(k, 2, 0.1 if k == "tpe[trial=2]" else 0.0, cv=cells[k]["selection"]) for k in cells}
    done["tpe[trial=1]"]["proposal"] = {"value": 0.5, "site": "input"}
    done["tpe[trial=2]"]["proposal"] = {"value": 0.2, "site": "before"}
    study = {"config": cfg.model_dump(mode="json"), "cells": cells, "meta": {"task": "classification"}}
    stored = _with_earlier_site_names(study)
    assert isinstance(stored, dict)
    stored["config"]["arms"][2]["search"]["sites"] = ["input", "pre"]
    assert "'before'" not in repr(stored) and "'before'" in repr(study)
    summary = summarize(study, done)
    assert summarize(stored, _with_earlier_site_names(done)) == summary
    assert summary["selection"]["sites"] == ["input", "before", None] and summary["selection"]["search"]["sites"] == [
        "input",
        "before",
    ]
    with pytest.warns(DeprecationWarning) as caught:
        assert parse_config(stored["config"]) == cfg  # as a worker or a robustness pass reads it
    assert [str(w.message).split(" = ")[0] for w in caught] == [
        "study: arms[1].noise[0].site",
        "study: arms[2].noise[0].site",
        "study: arms[2].search.sites",
    ]
