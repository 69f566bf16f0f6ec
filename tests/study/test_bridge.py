"""The bridge from study tables to engine specs: one schema on both sides."""

from __future__ import annotations

import dataclasses

from noisereg.engine import OptimSpec
from noisereg.study.bridge.models import optimizer_spec
from noisereg.study.config import OptimizerConfig
from tests.study.fakes import tiny_config


def test_the_optimizer_table_has_the_keys_and_defaults_of_the_engines_spec():
    engine = {f.name: f.default for f in dataclasses.fields(OptimSpec)}
    study = {name: field.default for name, field in OptimizerConfig.model_fields.items()}
    assert study == engine


def test_the_optimizer_table_becomes_the_spec_key_for_key():
    config = tiny_config(optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9, "clip_grad_norm": 1.0})
    assert optimizer_spec(config) == OptimSpec(name="sgd", lr=0.05, momentum=0.9, clip_grad_norm=1.0)
