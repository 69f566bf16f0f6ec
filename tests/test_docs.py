"""The examples in the README and in docstrings run as written."""

from __future__ import annotations

import doctest
import importlib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCTESTED = [
    "noisereg._checks",
    "noisereg.schedules._base",
    "noisereg.schedules._shapes",
    "noisereg.schedules._compose",
    "noisereg.seeding",
    "noisereg._registry",
    "noisereg.noise.kinds",
    "noisereg.engine.vocabulary",
    "noisereg.engine.replica_slices",
    "noisereg.study.config.noise",
    "noisereg.streams",
    "noisereg.noise.base",
    "noisereg.noise.additive",
    "noisereg.noise.multiplicative",
    "noisereg.noise.discrete",
    "noisereg.noise.signal",
    "noisereg.layers",
    "noisereg.metrics",
    "noisereg.robustness.suite",
]


def test_readme_quick_start_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the snippets write runs/ where they run: not into the checkout
    text = (ROOT / "README.md").read_text()
    snippets = re.findall(r"```python\n(.*?)```", text, re.S)
    assert snippets, "the README lost its Python quick start"
    for code in snippets:
        exec(compile(code, "README.md", "exec"), {})


@pytest.mark.parametrize("name", DOCTESTED)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
