"""The [robustness] table and data.value_range: every mistake reported under the key path the user wrote."""

from __future__ import annotations

import numpy as np
import pytest

from noisereg.study.bridge.prepare import prepare
from noisereg.study.config import StudyConfigError, parse_config, resolve_study
from noisereg.study.data import DataError, load_dataset
from tests.study.fakes import tiny_raw


def problems(raw: dict) -> list[tuple[str, str]]:
    with pytest.raises(StudyConfigError) as info:
        parse_config(raw)
    return info.value.problems


def prepare_problems(raw: dict) -> list[tuple[str, str]]:
    with pytest.raises(StudyConfigError) as info:
        prepare(parse_config(raw))
    return info.value.problems


def digits(**robustness) -> dict:
    raw = tiny_raw(data={"source": "digits", "standardize": False, "value_range": [0, 16]}, selection=None)
    raw["split"] = {"kind": "holdout", "n_train": 1000}
    raw["arms"] = raw["arms"][:2]
    raw["robustness"] = robustness
    return raw


@pytest.mark.parametrize(
    ("robustness", "path", "message"),
    [
        ({"severities": [0, 3]}, "robustness.severities[0]", "must be >= 1, got 0"),
        ({"severities": [1, 6]}, "robustness.severities[1]", "must be <= 5, got 6"),
        ({"severities": [2, 2]}, "robustness", "severities must be distinct, got [2, 2]"),
        ({"smoothing": {"sigma": 0.0}}, "robustness.smoothing.sigma", "must be > 0, got 0.0"),
        ({"smoothing": {"sigma": -0.5}}, "robustness.smoothing.sigma", "must be > 0, got -0.5"),
        ({"smoothing": {"alpha": 1.0}}, "robustness.smoothing.alpha", "must be < 1, got 1.0"),
        ({"smoothing": {"alpha": 0}}, "robustness.smoothing.alpha", "must be > 0, got 0"),
        (
            {"smoothing": {"n0": 100, "n": 100}},
            "robustness.smoothing",
            "n0=100 must be < n=100: the selection samples are meant to be a small prelude",
        ),
        (
            {"monitor": {"corruption": "shot", "std": 0.1}},
            "robustness.monitor",
            "std is a Gaussian standard deviation; corruption = 'shot' uses severity",
        ),
        ({"monitor": {"severity": 2, "std": 0.1}}, "robustness.monitor", "give severity or std, not both"),
        (
            {"constants": "cifar"},
            "robustness.constants",
            "must be one of 'cifar10', 'imagenet', 'tabular', got 'cifar'; did you mean 'cifar10'?",
        ),
        ({"ece_bin": 10}, "robustness", "unknown key 'ece_bin'; did you mean 'ece_bins'?"),
        (
            {"constants": "cifar10", "scale": 2.0},
            "robustness",
            "scale is the feature scale of tabular levels; 'cifar10' images are in [0, 1]",
        ),
    ],
)
def test_bad_settings_name_their_key_path(robustness: dict, path: str, message: str) -> None:
    assert problems(tiny_raw(robustness=robustness)) == [(path, message)]


def test_smoothing_seeds_cannot_exceed_the_studys_seeds() -> None:
    [(_, message)] = problems(tiny_raw(robustness={"smoothing": {"seeds": 4}}))
    assert message == "robustness.smoothing.seeds=4 exceeds the study's seeds=3"


def test_corruption_names_are_checked_by_the_library_for_the_constants() -> None:
    found = prepare_problems(tiny_raw(robustness={"corruptions": ["gaussian", "gausian", "shot"]}))
    assert [p for p, _ in found] == ["robustness.corruptions[1]", "robustness.corruptions[2]"]
    assert "unknown corruption 'gausian' for constants='tabular'" in found[0][1]
    assert "known: ('gaussian', 'impulse', 'speckle', 'uniform', 'snr_gaussian')" in found[0][1]
    assert "shot noise needs non-negative data such as images" in found[1][1]
    [(path, message)] = prepare_problems(tiny_raw(robustness={"monitor": {"corruption": "salt"}}))
    assert path == "robustness.monitor.corruption" and "unknown corruption 'salt'" in message


def test_image_constants_refuse_data_outside_0_1_and_say_how_to_map_it() -> None:
    raw = digits(constants="cifar10")
    raw["data"] = {"source": "digits"}  # standardized: values far outside [0, 1]
    [(path, message)] = prepare_problems(raw)
    assert path == "robustness.constants"
    assert "constants='cifar10' holds Hendrycks & Dietterich's constants for images in [0, 1], but x is in" in message
    assert "data.value_range = [low, high] with data.standardize = false" in message
    prepare(parse_config(digits(constants="cifar10")))  # the same study on [0, 1] pixels is fine


def test_the_suite_is_for_classifiers_only() -> None:
    raw = tiny_raw(data={"source": "diabetes"}, selection=None, arms=[{"name": "none"}], robustness={"enabled": True})
    [(path, message)] = prepare_problems(raw)
    assert path == "robustness.enabled" and "'diabetes' is a regression: set enabled = false" in message
    del raw["robustness"]
    prepare(parse_config(raw))  # by default the suite is off for regression; the monitor stays on


def test_value_range_maps_to_the_unit_interval_and_refuses_values_outside() -> None:
    cfg = parse_config(digits())
    data = load_dataset(cfg.data)
    raw = load_dataset(parse_config(tiny_raw(data={"source": "digits"})).data)
    np.testing.assert_array_equal(data.x, raw.x / 16.0)
    assert data.x.min() == 0.0 and data.x.max() == 1.0
    [(path, message)] = problems(tiny_raw(data={"source": "digits", "value_range": [0, 16]}))
    assert path == "data" and "set standardize = false" in message
    [(path, message)] = problems(tiny_raw(data={"source": "digits", "standardize": False, "value_range": [16, 0]}))
    assert "value_range=[16.0, 0.0] must be [low, high] with low < high" in message
    with pytest.raises(
        DataError,
        match=r"data.value_range=\[0.0, 8.0\] but feature 'pixel_0_2' holds values in \[0, 16\] \(33687 value\(s\) outside",
    ):
        load_dataset(
            parse_config(tiny_raw(data={"source": "digits", "standardize": False, "value_range": [0, 8]})).data
        )


def test_the_builtin_robustness_study_prepares() -> None:
    prep = prepare(resolve_study("digits-robustness"))
    assert prep.config.robustness.constants == "imagenet" and prep.eval_noise is not None
    assert prep.meta()["monitor"] == {
        "corruption": "gaussian",
        "severity": 3,
        "constants": "imagenet",
        "parameter": "std",
        "strength": 0.18,
    }
