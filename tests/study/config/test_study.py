"""Study files: validation before any work, errors that name the key path the user wrote."""

from __future__ import annotations

import tomllib

import pytest

from noisereg.study.cells import plan_cells, signature, strengths
from noisereg.study.config import (
    StudyConfigError,
    builtin_studies,
    load_config,
    parse_config,
    resolve_study,
)
from tests.study.fakes import tiny_raw


def problems(raw: dict) -> list[tuple[str, str]]:
    with pytest.raises(StudyConfigError) as info:
        parse_config(raw)
    return info.value.problems


def with_arm(arm: dict) -> dict:
    raw = tiny_raw()
    raw["arms"] = [{"name": "none"}, {"name": "a"}, arm]
    raw.pop("selection")
    return raw


def test_negative_std_names_the_key_path() -> None:
    arm = {"name": "bad", "noise": {"at": "activations", "where": "before", "kind": "gaussian", "std": -0.1}}
    assert problems(with_arm(arm)) == [("arms[2].noise.std", "must be >= 0, got -0.1")]


def test_list_of_sites_keeps_the_index_the_user_wrote() -> None:
    arm = {
        "name": "bad",
        "noise": [
            {"at": "input", "kind": "gaussian", "std": 0.1},
            {"at": "activations", "where": "before", "kind": "gaussian", "std": -1.0},
        ],
    }
    assert problems(with_arm(arm)) == [("arms[2].noise[1].std", "must be >= 0, got -1.0")]


def test_unknown_key_suggests_close_matches() -> None:
    raw = tiny_raw(optimizer={"name": "adam", "lr_rate": 0.1})
    [(path, msg)] = problems(raw)
    assert path == "optimizer" and "unknown key 'lr_rate'" in msg and "did you mean 'lr'" in msg


def test_unknown_kind_and_schedule_suggest_the_right_name() -> None:
    arm = {"name": "bad", "noise": {"at": "gradients", "kind": "gausian", "std": 0.1}}
    [(path, msg)] = problems(with_arm(arm))
    assert path == "arms[2].noise.kind" and "did you mean 'gaussian'" in msg
    arm = {
        "name": "bad",
        "noise": {"at": "gradients", "kind": "gaussian", "std": {"schedule": "anealed", "eta": 0.3}},
    }
    [(path, msg)] = problems(with_arm(arm))
    assert path == "arms[2].noise.std.schedule" and "did you mean 'annealed'" in msg


def test_schedule_parameters_are_checked() -> None:
    arm = {
        "name": "bad",
        "noise": {"at": "gradients", "kind": "gaussian", "std": {"schedule": "annealed", "eta": -1}},
    }
    assert problems(with_arm(arm)) == [("arms[2].noise.std.eta", "must be >= 0, got -1")]


def test_missing_key_and_several_problems_at_once() -> None:
    raw = tiny_raw(training={"batch_size": 0})
    found = dict(problems(raw))
    assert found["training.epochs"] == "required key is missing"
    assert found["training.batch_size"] == "must be >= 1, got 0"


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ([], "must have at least 1 item(s)"),
        ([0.1, 0.1], "distinct"),
        ([0.1, -0.2], "grid.values[1] sets std: must be >= 0, got -0.2"),
    ],
)
def test_bad_grids_are_refused(grid: list, message: str) -> None:
    arm = {"name": "g", "noise": {"at": "activations", "where": "before", "kind": "gaussian", "std": 0.1}, "grid": grid}
    [(path, msg)] = problems(with_arm(arm))
    assert path.startswith("arms[2]") and message in msg


def test_grid_needs_a_param_when_an_arm_has_several_sites() -> None:
    noise = [
        {"at": "input", "kind": "gaussian", "std": 0.1},
        {"at": "activations", "where": "before", "kind": "gaussian", "std": 0.1},
    ]
    [(_, msg)] = problems(with_arm({"name": "g", "noise": noise, "grid": [0.1, 0.2]}))
    assert "param" in msg
    raw = with_arm({"name": "g", "noise": noise, "grid": {"values": [0.1, 0.2], "param": "[1].std"}})
    cells = plan_cells(parse_config(raw))
    assert [c.noise[1].std for c in cells[2:]] == [0.1, 0.2] and cells[2].key == "g[[1].std=0.1]"


def test_label_noise_only_on_targets_and_unique_sites() -> None:
    arm = {"name": "bad", "noise": {"at": "input", "kind": "label_smoothing", "epsilon": 0.1}}
    [(_, msg)] = problems(with_arm(arm))
    assert "only for at = 'targets'" in msg
    twice = [{"at": "input", "kind": "gaussian", "std": 0.1}, {"at": "input", "kind": "uniform", "half_width": 0.1}]
    [(_, msg)] = problems(with_arm({"name": "bad", "noise": twice}))
    assert "appears twice" in msg


def test_cross_checks_baseline_selection_and_names() -> None:
    raw = tiny_raw()
    raw["arms"] = [a for a in raw["arms"] if a["name"] != "none"]
    assert "no arm without noise" in problems(raw)[0][1]
    raw = tiny_raw(selection={"arm": "gird"})
    assert "did you mean 'grid'" in problems(raw)[0][1]
    raw = tiny_raw(selection={"arm": "before"})
    assert "has no grid" in problems(raw)[0][1]
    raw = tiny_raw()
    raw["arms"].append({"name": "before"})
    assert "repeated: ['before']" in problems(raw)[0][1]


def test_cells_of_one_arm_share_a_signature_and_differ_in_strength() -> None:
    cells = plan_cells(parse_config(tiny_raw()))
    by = {c.key: c for c in cells}
    assert signature(by["before"]) == signature(by["grid[std=0.1]"]) != signature(by["input"])
    assert [strengths(by[f"grid[std={v!r}]"]) for v in (0.0, 0.1, 1.0)] == [(0.0,), (0.1,), (1.0,)]
    assert by["grid[std=0.1]"].selection and not by["before"].selection


def test_load_config_reports_file_problems(tmp_path) -> None:
    with pytest.raises(StudyConfigError, match="no such study file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\n[data\n")
    with pytest.raises(StudyConfigError, match="not valid TOML.*line 2"):
        load_config(bad)


def test_relative_data_path_resolves_against_the_study_file(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    study = tmp_path / "sub" / "s.toml"
    study.write_text(
        'name = "f"\n[data]\nsource = "file"\npath = "d.csv"\ntarget = "y"\ntask = "classification"\n'
        '[split]\nn_train = 5\n[training]\nepochs = 1\n[[arms]]\nname = "none"\n'
    )
    assert load_config(study).data.path == str((tmp_path / "sub" / "d.csv").resolve())


def test_every_builtin_study_validates_and_the_default_is_the_case_study() -> None:
    names = set(builtin_studies())
    assert {"case-study", "moons", "digits", "breast-cancer", "diabetes"} <= names
    for name in names:
        resolve_study(name)
    case = resolve_study(None)
    assert (case.name, case.seeds, case.training.epochs, case.data.random_state) == ("case-study", 30, 4000, 1)
    assert [a.name for a in case.arms][:5] == [
        "no noise",
        "input 0.01",
        "hidden 0.1 before ReLU",
        "hidden 0.1 after ReLU",
        "input 0.01 + hidden 0.1",
    ]
    with pytest.raises(StudyConfigError, match="did you mean 'moons'"):
        resolve_study("mons")


def test_a_stored_configuration_validates_back_to_the_same_study() -> None:
    from noisereg.study.config import UserStudyConfig
    from noisereg.study.config.user import parse_user_config

    for name in builtin_studies():
        config = resolve_study(name)
        # a built-in study of a factory-made model (noisytune, symnoise) is an own-model study file
        parse = parse_user_config if isinstance(config, UserStudyConfig) else parse_config
        assert parse(config.model_dump(mode="json")) == config


def test_versus_must_name_another_single_cell_arm() -> None:
    raw = with_arm({"name": "b", "versus": "non"})
    [(_, msg)] = problems(raw)
    assert "arms[2].versus='non' is not an arm; did you mean 'none'?" in msg
    assert "names the arm itself" in problems(with_arm({"name": "b", "versus": "b"}))[0][1]
    raw = tiny_raw(
        arms=[
            {"name": "none"},
            {
                "name": "g",
                "noise": {"at": "activations", "where": "before", "kind": "gaussian", "std": 0.1},
                "grid": [0.0, 0.1],
            },
            {"name": "b", "versus": "g"},
        ]
    )
    raw.pop("selection")
    assert "has a grid or search" in problems(raw)[0][1]


def test_an_arm_may_override_standardize_and_trains_on_its_own_folds() -> None:
    from noisereg.study.bridge.prepare import prepare

    raw = with_arm({"name": "b", "standardize": False, "versus": "none"})
    prep = prepare(parse_config(raw))
    assert prep.fold_scaling == [True, False]
    by = {c.key: prep.folds_of(c) for c in prep.cells}
    assert by == {"none": [0], "a": [0], "b": [1]}
    raw_x, scaled_x = prep.folds[1].x_train, prep.folds[0].x_train
    assert abs(scaled_x.mean(0)).max() < 1e-12 and abs(raw_x - prep.data.x[:30]).max() == 0
    assert prep.meta()["n_train"] == [30]


def test_standardize_with_value_range_is_refused() -> None:
    raw = with_arm({"name": "b", "standardize": True})
    raw["data"] = {**raw["data"], "standardize": False, "value_range": [-2.0, 2.0]}
    assert "standardizing would undo" in problems(raw)[0][1]


def test_the_default_study_is_the_article_as_written() -> None:
    cfg = resolve_study(None)
    assert cfg.name == "case-study" and cfg.data.standardize is False
    assert (cfg.data.source, cfg.data.n_samples, cfg.data.noise, cfg.data.random_state) == ("circles", 100, 0.1, 1)
    assert (cfg.split.kind, cfg.split.n_train) == ("holdout", 30)
    assert (cfg.model.widths, cfg.model.activation, cfg.model.init) == ([500], "relu", "glorot")
    assert (
        cfg.optimizer.name,
        cfg.optimizer.lr,
        cfg.training.epochs,
        cfg.training.batch_size,
        cfg.training.eval_every,
    ) == ("adam", 1e-3, 4000, 32, 1)


# an own-model built-in ([model] factory) runs through run_model: tests/study/run/test_finetuning_studies.py
FAMILY_STUDIES = sorted(
    n for n, p in builtin_studies().items() if "factory" not in tomllib.loads(p.read_text()).get("model", {})
)


@pytest.mark.parametrize("name", FAMILY_STUDIES)
def test_every_builtin_study_prepares(name: str) -> None:
    from noisereg.study.bridge.prepare import prepare
    from noisereg.study.config import UserStudyConfig

    config = resolve_study(name)
    assert not isinstance(config, UserStudyConfig)
    prep = prepare(config)
    assert prep.cells and all(prep.folds_of(c) for c in prep.cells)


def test_an_arm_weight_decay_is_checked_and_trains_with_its_own_optimizer() -> None:
    from noisereg.study.bridge.prepare import prepare
    from noisereg.study.cells import signature

    raw = with_arm({"name": "b", "weight_decay": -1.0})
    assert problems(raw) == [("arms[2].weight_decay", "must be >= 0, got -1.0")]
    prep = prepare(parse_config(with_arm({"name": "b", "weight_decay": 0.5})))
    by = {c.key: c for c in prep.cells}
    assert signature(by["b"]) != signature(by["none"])
    assert prep.group_options(by["b"])["optimizer"].weight_decay == 0.5
    assert prep.group_options(by["none"])["optimizer"].weight_decay == prep.optimizer.weight_decay == 0.0
    assert by["b"].meta()["weight_decay"] == 0.5 and "weight_decay" not in by["none"].meta()


def test_a_linear_model_is_an_mlp_without_hidden_layers_and_refuses_hidden_noise() -> None:
    from noisereg.engine import MLPSpec
    from noisereg.study.bridge.prepare import prepare

    raw = with_arm({"name": "b", "noise": {"at": "input", "kind": "gaussian", "std": 0.1}})
    raw["model"] = {"family": "linear", "init": "normal", "init_std": 0.1}
    prep = prepare(parse_config(raw))
    assert prep.model == MLPSpec(in_features=2, widths=(), out_features=1, init="normal", init_std=0.1)
    raw["arms"].append({"name": "c", "noise": {"at": "activations", "where": "after", "kind": "gaussian", "std": 0.1}})
    with pytest.raises(StudyConfigError) as info:
        prepare(parse_config(raw))
    [(path, msg)] = info.value.problems
    assert path == "arms[3].noise[0].at" and "'linear' model has no hidden layer" in msg


def test_weight_noise_is_a_study_site_without_select() -> None:
    from noisereg.study.bridge.sites import site_noise

    arm = {"name": "w", "noise": {"at": "weights", "kind": "gaussian", "std": 0.05}}
    config = parse_config(with_arm(arm))
    assert site_noise(config.arms[2].noise[0]).site == "weights"
    arm["noise"] = {**arm["noise"], "select": [0]}
    [(path, msg)] = problems(with_arm(arm))
    assert path == "arms[2].noise.select" and "only for at = 'activations', not at = 'weights'" in msg
