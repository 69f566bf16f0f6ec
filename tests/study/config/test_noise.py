"""Study files' noise tables, derived from the table of kinds and the named schedules."""

from __future__ import annotations

import math

import pytest

from noisereg import schedules
from noisereg.noise.kinds import KINDS
from noisereg.study.bridge.sites import site_noise
from noisereg.study.config import StudyConfigError, parse_config
from noisereg.study.config.noise import STUDY_KINDS
from tests.study.fakes import tiny_raw

STUDIED = sorted(STUDY_KINDS)


def _study(table: dict) -> dict:
    raw = tiny_raw()
    raw["arms"] = [{"name": "none"}, {"name": "k", "noise": table}]
    raw.pop("selection")
    return raw


def _typical(name: str) -> float:
    entry = KINDS[name]
    return 10.0 if entry.identity == math.inf else 0.1


def test_the_study_names_every_registered_kind_meant_for_studies():
    assert STUDIED == sorted(n for n, k in KINDS.items() if k.in_studies)
    assert {"gaussian", "label_smoothing", "label_flip"} <= set(STUDIED)


@pytest.mark.parametrize("name", STUDIED)
def test_every_kind_is_accepted_and_builds_its_config(name):
    entry = KINDS[name]
    at = "targets" if entry.labels else "input"
    config = parse_config(_study({"at": at, "kind": name, entry.strength: _typical(name)}))
    table = config.arms[1].noise[0]
    built = site_noise(table)
    assert type(built.kind) is entry.load()
    assert built.kind.strength == _typical(name) and built.site == at
    for option, spec in entry.options.items():
        assert getattr(built.kind, option) == spec.default


@pytest.mark.parametrize("name", [n for n in STUDIED if KINDS[n].low > -math.inf])
def test_a_strength_outside_the_kinds_range_is_refused_under_its_key(name):
    entry = KINDS[name]
    at = "targets" if entry.labels else "input"
    outside = entry.low - 1.0
    with pytest.raises(StudyConfigError) as info:
        parse_config(_study({"at": at, "kind": name, entry.strength: outside}))
    [(path, _)] = info.value.problems
    assert path == f"arms[1].noise.{entry.strength}"


@pytest.mark.parametrize("name", sorted(schedules.NAMED))
def test_every_named_schedule_is_a_study_table(name):
    cls = schedules.NAMED[name]
    examples = {
        "constant": {"value": 0.1},
        "linear": {"start": 0.1, "end": 0.0, "steps": 10},
        "cosine": {"start": 0.1, "end": 0.0, "steps": 10},
        "exponential_decay": {"init": 0.1, "rate": 0.5},
        "annealed": {"eta": 0.3},
        "piecewise": {"boundaries": [5], "values": [0.1, 0.0]},
        "interval": {"value": 0.1, "on": 2, "off": 3},
        "warmup": {"value": 0.1, "delay": 4},
    }
    table = {"at": "input", "kind": "gaussian", "std": {"schedule": name, "per": "epoch", **examples[name]}}
    built = site_noise(parse_config(_study(table)).arms[1].noise[0])
    assert isinstance(built.kind.std, cls) and built.clock == "epoch"


def test_a_schedule_refused_by_its_class_is_refused_under_the_strengths_key():
    table = {"at": "input", "kind": "gaussian", "std": {"schedule": "linear", "start": 0.1, "end": 0.0, "steps": 0}}
    with pytest.raises(StudyConfigError) as info:
        parse_config(_study(table))
    [(path, message)] = info.value.problems
    assert path == "arms[1].noise.std" and "steps=0 must be an int >= 1" in message
