"""The table of kinds against the configs and functions it describes."""

from __future__ import annotations

import dataclasses
import inspect
import math

import pytest
import torch

from noisereg.noise.kinds import KINDS

NAMES = sorted(KINDS)


@pytest.mark.parametrize("name", NAMES)
def test_each_config_takes_its_strength_and_identity_from_its_entry(name):
    entry = KINDS[name]
    config = entry.load()
    assert (config.kind, config.strength_field, config.identity) == (name, entry.strength, entry.identity)
    fields = {f.name: f for f in dataclasses.fields(config)}
    assert entry.strength in fields
    assert ("clip" in fields) == entry.clip
    for option, spec in entry.options.items():
        assert fields[option].default == spec.default, option


@pytest.mark.parametrize("name", NAMES)
def test_each_config_is_off_at_its_identity(name):
    entry = KINDS[name]
    config = entry.load()(**{entry.strength: entry.identity})
    assert config.is_off() and config.strength == entry.identity


@pytest.mark.parametrize("name", [n for n in NAMES if not KINDS[n].labels])
def test_the_function_refuses_a_strength_just_outside_the_bounds(name):
    entry = KINDS[name]
    function = entry.load().function
    x = torch.rand(2, 4, 4) + 0.5
    # a pair kind mixes images [batch, channels, height, width] with their targets
    pair = (x[:, None], torch.rand(2)) if entry.pairs else (x,)
    outside = []
    if entry.low > -math.inf:
        outside.append(entry.low if entry.low_open else entry.low - 1e-3)
    if entry.high < math.inf:
        outside.append(entry.high if entry.high_open else entry.high + 1e-3)
    for value in outside:
        with pytest.raises(ValueError, match=entry.strength):
            function(*pair, value)


def test_the_function_of_each_kind_takes_the_strength_second():
    for entry in KINDS.values():
        params = list(inspect.signature(entry.load().function).parameters)[entry.pairs :]
        assert params[1] in (entry.strength, "alpha", "rate", "epsilon"), entry.name
