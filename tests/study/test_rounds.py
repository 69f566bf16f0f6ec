"""Sequential studies: the config keys, the rounds (noisereg.study.rounds), and a real run through
the runner: rounds stored as cells, resumed, and decided as a replay of a fixed study decides."""

from __future__ import annotations

import json

import numpy as np
import pytest

from noisereg.study.cells import plan_cells
from noisereg.study.config import StudyConfigError, parse_config
from noisereg.study.rounds import Next, Rounds, decisions, due, merge_rounds, plan_rounds, race, raced_at, round_key
from noisereg.study.run.runner import run_study
from noisereg.study.selection import choose
from noisereg.study.store import Store, default_url
from tests.study.fakes import fake_results, tiny_raw

ROUNDS = {"max": 12, "step": 5}


def test_rounds_cover_the_seeds_once() -> None:
    config = parse_config(tiny_raw(seeds=ROUNDS))
    cells = plan_rounds(config, plan_cells(config))
    none = [c for c in cells if c.of == "none"]
    assert [(c.key, c.seeds) for c in none] == [
        ("none@round1", (0, 5)),
        ("none@round2", (5, 10)),
        ("none@round3", (10, 12)),
    ]
    assert len(cells) == 3 * len(plan_cells(config))
    assert none[0].meta()["of"] == "none" and none[0].meta()["seeds"] == [0, 5]
    fixed = parse_config(tiny_raw(seeds=12))
    assert plan_rounds(fixed, plan_cells(fixed)) == plan_cells(fixed)


@pytest.mark.parametrize(
    ("overrides", "path", "text"),
    [
        ({"seeds": {"max": 10, "step": 10}}, "seeds", "must be below max"),
        ({"seeds": {"max": 10}}, "seeds.step", "missing"),
        ({"seeds": {"max": 10, "step": 2, "margin": 0}}, "seeds.margin", "> 0"),
        ({"seeds": True}, "seeds", "number of seeds or a table"),
        ({"selection": {"arm": "grid", "folds": 3, "racing": True}}, "", "selection.racing"),
        ({"seeds": ROUNDS, "selection": {"arm": "grid", "folds": 3, "nested": True}}, "", "selection.nested"),
        ({"seeds": ROUNDS, "robustness": {"enabled": True}}, "", "robustness.enabled"),
    ],
)
def test_config_errors_name_the_key(overrides: dict, path: str, text: str) -> None:
    with pytest.raises(StudyConfigError) as err:
        parse_config(tiny_raw(**overrides))
    assert len(err.value.problems) == 1
    where, message = err.value.problems[0]
    assert where == path and text in message


def _merged(shifts: dict[str, float], seeds: int) -> dict[str, dict]:
    return {k: fake_results(k, seeds, s, cv=k.startswith("grid")) for k, s in shifts.items()}


def test_the_next_round_is_for_open_comparisons_and_the_baseline() -> None:
    rounds = Rounds(max=30, step=10, alpha=0.05, margin=None)
    keys = {c: [round_key(c, k) for k in (1, 2, 3)] for c in ("none", "better", "same")}
    assert due(rounds, keys, {}, "none", "test_acc", True).keys == ["none@round1", "better@round1", "same@round1"]
    results = _merged({"none": 0.0, "better": 0.1, "same": 0.0}, 10)
    rng = np.random.default_rng(0)
    results["same"]["final"]["test_acc"] = list(np.add(results["none"]["final"]["test_acc"], rng.normal(0, 0.02, 10)))
    decided = decisions(rounds, results, list(keys), "none", "test_acc", True)
    assert decided["better"].status == "better" and decided["same"].status == "continue"
    assert due(rounds, keys, results, "none", "test_acc", True) == Next(["same@round2", "none@round2"], [])
    # loss: lower is better, so the same shift reads as worse
    assert decisions(rounds, results, list(keys), "none", "test_loss", False)["better"].status == "better"


def test_racing_stops_a_value_clearly_worse_in_cv() -> None:
    rounds = Rounds(max=15, step=5, alpha=0.05, margin=None)
    results = _merged({"grid[a]": 0.0, "grid[b]": 0.2}, 10)
    for s, row in enumerate(results["grid[a]"]["cv"]["val_loss"]):  # some spread over seeds
        row[0] += 0.01 * (s % 3)
    assert race(rounds, results, ["grid[a]", "grid[b]"], "likelihood") == {"grid[a]": "grid[b]"}
    assert race(rounds, results, ["grid[a]", "grid[b]"], "accuracy") == {"grid[a]": "grid[b]"}
    assert race(rounds, results, ["grid[a]", "grid[b]"], "likelihood", "one_se") == {"grid[a]": "grid[b]"}
    # within one standard error of the best: the one-SE rule may choose it, so it keeps training
    close = _merged({"grid[a]": 0.0, "grid[b]": 0.001}, 10)
    for s, row in enumerate(close["grid[a]"]["cv"]["val_loss"]):
        row[1] += 0.05 * (s % 2)
    assert race(rounds, close, ["grid[a]", "grid[b]"], "likelihood", "one_se") == {}


def test_merging_rounds_concatenates_seeds_in_order() -> None:
    cells = {
        "a@round1": {"arm": "a", "value": None, "param": None, "of": "a", "seeds": [0, 2]},
        "a@round2": {"arm": "a", "value": None, "param": None, "of": "a", "seeds": [2, 4]},
    }
    r1, r2 = fake_results("a@round1", 2, 0.0, cv=True), fake_results("a@round2", 2, 0.1, cv=True)
    r2["seeds"] = [2, 3]
    r2["epochs"] = r2["cv"]["val_epochs"] = [1, 3, 5]  # thinned otherwise: put on round 1's epochs
    r2["curve:test_acc"] = r2["curve:train_acc"] = [[0.0, 0.5, 1.0], [0.0, 0.5, 1.0]]
    r2["cv"]["val_loss_curve"] = [[[1.0, 0.5, 0.0]] * 3] * 2
    meta, merged = merge_rounds(cells, {"a@round1": r1, "a@round2": r2})
    assert list(meta) == ["a"] and "of" not in meta["a"]
    a = merged["a"]
    assert a["seeds"] == [0, 1, 2, 3] and a["rounds"] == 2
    assert a["final"]["test_acc"] == r1["final"]["test_acc"] + r2["final"]["test_acc"]
    assert a["replicas"] == r1["replicas"] + r2["replicas"]
    assert a["curve:test_acc"][2] == [0.0, 0.25, 0.5, 0.75, 1.0]  # interpolated onto round 1's epochs
    assert np.asarray(a["cv"]["val_loss"]).shape == (4, 3)
    assert a["cv"]["val_loss_curve"][3][0] == [1.0, 0.0]
    only_first, _ = merge_rounds(cells, {"a@round1": r1})
    assert merge_rounds(cells, {"a@round1": r1})[1]["a"]["seeds"] == [0, 1]
    assert merge_rounds(cells, {"a@round2": r2})[1] == {}  # round 1 missing: nothing to merge yet


def test_a_sequential_run_stores_rounds_resumes_and_matches_the_replay(tmp_path) -> None:
    raw = tiny_raw(name="seq", seeds={"max": 6, "step": 2})
    raw["selection"] = {"arm": "grid", "folds": 3, "racing": True}
    summary = run_study(parse_config(raw), tmp_path / "seq")
    seq = summary["sequential"]
    assert seq["max"] == 6 and seq["trainings"] <= seq["trainings_fixed"]
    assert set(seq["cells"]) == {"none", "input", "before", "grid[std=0.0]", "grid[std=0.1]", "grid[std=1.0]"}
    for name, cell in seq["cells"].items():
        assert cell["seeds"] in (2, 4, 6) and cell["status"] in ("baseline", "better", "worse", "max"), name
        assert (cell["status"] in ("max", "baseline")) == (cell["seeds"] == 6) or cell["status"] == "baseline"
    store = Store(default_url(tmp_path / "seq"), "seq")
    trials = len(store.study.get_trials())
    again = run_study(parse_config(raw), tmp_path / "seq")  # resumed: nothing left to train
    assert len(store.study.get_trials()) == trials and again["sequential"] == seq
    assert json.loads((tmp_path / "seq" / "summary.json").read_text())["sequential"]["cells"] == seq["cells"]
    # the same study with every seed at once: each seed's result is the same (the engine promises a
    # replica's result whatever its stack, to rounding), and so is every decision
    fixed = run_study(
        parse_config({**raw, "name": "fixed", "seeds": 6, "selection": raw["selection"] | {"racing": False}}),
        tmp_path / "fixed",
        robustness=False,
    )
    per_seed = {a["name"]: a["per_seed"] for a in fixed["arms"]}
    for a in summary["arms"]:
        np.testing.assert_allclose(a["per_seed"], per_seed[a["name"]][: a["n"]], rtol=0, atol=1e-6, err_msg=a["name"])
    fixed_store = Store(default_url(tmp_path / "fixed"), "fixed")
    rounds = Rounds(max=6, step=2, alpha=0.05, margin=None)
    replay = decisions(rounds, fixed_store.completed(), list(seq["cells"]), "none", "test_acc", True)
    for name, cell in seq["cells"].items():
        if cell["status"] in ("better", "worse", "max"):
            assert replay[name].status == cell["status"] and replay[name].n == cell["seeds"], name


def test_a_raced_out_value_keeps_its_test_comparison_without_cv_folds() -> None:
    """Racing is about the selection: a value the rule cannot choose stops its CV folds, but its
    comparison with the baseline, still open, gets its next round (on the test folds only)."""
    rounds = Rounds(max=15, step=5, alpha=0.05, margin=None)
    results = _merged({"none": 0.0, "grid[a]": 0.0, "grid[b]": 0.2}, 10)
    for s, row in enumerate(results["grid[a]"]["cv"]["val_loss"]):  # some spread over seeds
        row[0] += 0.01 * (s % 3)
    rng = np.random.default_rng(1)  # grid[a] against no noise on test: undecided after 10 seeds
    results["grid[a]"]["final"]["test_acc"] = list(
        np.add(results["none"]["final"]["test_acc"], rng.normal(0, 0.02, 10))
    )
    keys = {c: [round_key(c, k) for k in (1, 2, 3)] for c in ("none", "grid[a]", "grid[b]")}
    racing = (["grid[a]", "grid[b]"], "likelihood", "best", True)
    assert decisions(rounds, results, list(keys), "none", "test_acc", True)["grid[a]"].status == "continue"
    assert race(rounds, results, *racing) == {"grid[a]": "grid[b]"}
    assert due(rounds, keys, results, "none", "test_acc", True, racing) == Next(
        ["grid[a]@round3", "none@round3"], ["grid[a]@round3"]
    )
    # five seeds cannot decide at this level: raced out after round 2
    assert raced_at(rounds, results, *racing) == {"grid[a]": ("grid[b]", 2)}


def test_a_raced_out_cell_trains_its_test_folds_to_a_decision(tmp_path, monkeypatch) -> None:
    """A real run in which grid[std=0.0] is raced out after round 1: its later rounds train no CV
    folds, its comparison with the baseline runs to max (no comparison can decide before 6 seeds at
    this alpha), and the report says both."""
    import noisereg.study.rounds as rounds_module

    def raced(rounds, results, values, criterion, rule="best", screen=False):  # noqa: ANN001, ANN202
        return {"grid[std=0.0]": "grid[std=0.1]"} if "grid[std=0.0]" in results else {}

    monkeypatch.setattr(rounds_module, "race", raced)
    raw = tiny_raw(name="raced", seeds={"max": 6, "step": 2})
    raw["selection"] = {"arm": "grid", "folds": 3, "racing": True}
    summary = run_study(parse_config(raw), tmp_path / "raced", robustness=False)
    cell = summary["sequential"]["cells"]["grid[std=0.0]"]
    assert (cell["seeds"], cell["cv_seeds"], cell["raced_at"], cell["status"]) == (6, 2, 1, "max")
    assert cell["trainings"] == 6 + 2 * 3  # a test fold for each of 6 seeds, 3 CV folds for the first 2
    assert (
        cell["text"].startswith("raced out of the selection at round 1") and "undecided at the maximum" in cell["text"]
    )
    other = summary["sequential"]["cells"]["grid[std=0.1]"]
    assert (other["seeds"], other["cv_seeds"], other["raced_at"], other["trainings"]) == (6, 6, None, 6 * 4)
    store = Store(default_url(tmp_path / "raced"), "raced")
    done = store.completed()
    assert done["grid[std=0.0]@round1"]["cv"] and not done["grid[std=0.0]@round2"]["cv"]
    trials = len(store.study.get_trials())
    again = run_study(parse_config(raw), tmp_path / "raced", robustness=False)  # resumed: nothing to train
    assert len(store.study.get_trials()) == trials and again["sequential"] == summary["sequential"]
    # the same study with 6 seeds of every cell: three plain cells (one test fold), three grid cells (and 3 CV folds)
    assert summary["sequential"]["trainings_fixed"] == 6 * (3 * 1 + 3 * 4)


def test_only_a_value_the_accuracy_screen_keeps_races_others_out() -> None:
    """The case study's heavy noise has the lowest held-out loss (it predicts little) and is dropped
    by the selection's accuracy screen: it must not race out the value the selection chooses."""
    rounds = Rounds(max=15, step=5, alpha=0.05, margin=None)
    results = _merged({"grid[a]": 0.0, "grid[b]": 0.2}, 10)
    for s, row in enumerate(results["grid[a]"]["cv"]["val_loss"]):
        row[0] += 0.01 * (s % 3)
    results["grid[b]"]["cv"]["val_acc"] = [[0.5 + 0.01 * f for f in range(3)] for _ in range(10)]
    cvs = [results["grid[a]"]["cv"], results["grid[b]"]["cv"]]
    assert choose([0.0, 3.0], cvs, rule="one_se") == 0 and choose([0.0, 3.0], cvs, screen=False) == 1
    grid = ["grid[a]", "grid[b]"]
    assert race(rounds, results, grid, "likelihood", "one_se", screen=True) == {}
    assert race(rounds, results, grid, "likelihood", "one_se", screen=False) == {"grid[a]": "grid[b]"}


def test_a_raced_out_value_stays_raced_out_whatever_the_others_train_next() -> None:
    """Once raced out, a value trains no more CV folds; the verdict is judged on the seeds it has, so
    a later round of the others (here: the winner's accuracy falls, so the screen would drop it on
    all its seeds) cannot bring it back, which would leave a gap in its CV seeds."""
    rounds = Rounds(max=20, step=5, alpha=0.05, margin=None)
    results = _merged({"grid[a]": 0.0, "grid[b]": 0.2}, 10)
    for s, row in enumerate(results["grid[a]"]["cv"]["val_loss"]):
        row[0] += 0.01 * (s % 3)
    grid = ["grid[a]", "grid[b]"]
    assert race(rounds, results, grid, "likelihood", "one_se", screen=True) == {"grid[a]": "grid[b]"}
    later = _merged({"grid[b]": 0.2}, 15)
    later["grid[a]"] = results["grid[a]"]
    later["grid[b]"]["cv"]["val_acc"][10:] = [[0.0] * 3 for _ in range(5)]
    assert race(rounds, later, grid, "likelihood", "one_se", screen=True) == {"grid[a]": "grid[b]"}
