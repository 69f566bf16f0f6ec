"""Study files: Anti-PGD's increments, SAM's radius, filter-wise weight noise and the unrolled LSTM
reach the engine as written; a run trains them; the Hessian trace table compares an arm with its versus arm."""

from __future__ import annotations

from noisereg.engine import ModuleSpec
from noisereg.noise import FilterGaussian
from noisereg.study.bridge.prepare import prepare
from noisereg.study.bridge.sites import site_noise
from noisereg.study.config import parse_config
from noisereg.study.report.curvature import annotate_curvature, curvature_tables
from noisereg.study.run.runner import run_study
from tests.study.fakes import tiny_raw

ARMS = [
    {"name": "none"},
    {"name": "pgd", "noise": {"at": "weights", "kind": "gaussian", "std": 0.01, "increments": "independent"}},
    {
        "name": "anti",
        "noise": {"at": "weights", "kind": "gaussian", "std": 0.01, "increments": "anticorrelated"},
        "versus": "pgd",
    },
    {"name": "rwp", "noise": {"at": "weights", "kind": "filter_gaussian", "std": 0.03}, "versus": "sam"},
    {"name": "sam", "sam_rho": 0.05},
]


def _raw() -> dict:
    return tiny_raw(arms=ARMS, selection=None, seeds=2, training={"epochs": 3, "batch_size": 32, "hessian_trace": 4})


def test_the_tables_reach_the_engine() -> None:
    prep = prepare(parse_config(_raw()))
    cells = {c.key: c for c in prep.cells}
    assert site_noise(cells["anti"].noise[0]).increments == "anticorrelated"
    assert site_noise(cells["pgd"].noise[0]).increments == "independent"
    assert isinstance(site_noise(cells["rwp"].noise[0]).kind, FilterGaussian)
    assert prep.group_options(cells["sam"])["optimizer"].sam_rho == 0.05
    assert prep.group_options(cells["none"])["optimizer"].sam_rho == 0.0


def test_an_unrolled_lstm_puts_hidden_noise_on_its_state() -> None:
    raw = tiny_raw(
        data={"source": "digits"},
        split={"kind": "holdout", "n_train": 100},
        model={"family": "lstm", "input_shape": [8, 8], "hidden": 4, "layers": 2, "unroll": True},
        selection=None,
        arms=[
            {"name": "none"},
            {"name": "state", "noise": {"at": "activations", "where": "after", "kind": "gaussian", "std": 0.1}},
        ],
    )
    spec = prepare(parse_config(raw)).model
    assert isinstance(spec, ModuleSpec)
    assert spec.hidden == (("states.0", "states.0"), ("states.1", "states.1"))


def test_a_run_and_the_versus_column(tmp_path) -> None:
    summary = run_study(parse_config(_raw()), tmp_path / "run")
    arms = {a["name"]: a for a in summary["arms"]}
    assert arms["anti"]["hessian_trace"]["versus"]["arm"] == "pgd"
    assert arms["rwp"]["hessian_trace"]["versus"]["arm"] == "sam"
    # SAM trains apart from the no-noise arm: another optimizer, other weights
    assert arms["sam"]["loss"] != arms["none"]["loss"]
    [(_, _, headers, rows)] = curvature_tables(summary)
    assert headers[-1] == "Δ tr H vs versus"
    anti = next(r for r in rows if r[0] == "anti")
    assert " vs pgd (p " in anti[-1]


def test_versus_needs_two_common_seeds() -> None:
    done = {
        "base": {"seeds": [0, 1], "final": {"hessian_trace": [1.0, 2.0]}},
        "a": {"seeds": [0, 1], "final": {"hessian_trace": [0.5, 1.0]}},
        "b": {"seeds": [0], "final": {"hessian_trace": [3.0]}},
    }
    arms = [{"name": "base"}, {"name": "a", "versus": {"arm": "b"}}, {"name": "b"}]
    annotate_curvature(arms, done, "base")
    assert "versus" not in arms[1]["hessian_trace"]
    assert arms[1]["hessian_trace"]["paired"]["mean_diff"] == -0.75
