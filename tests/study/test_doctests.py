"""The examples in the study layer's docstrings run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "name",
    [
        "noisereg.study",
        "noisereg.study.stats",
        "noisereg.study.store.base",
        "noisereg.study.store.artifacts",
        "noisereg.study.store.connection",
        "noisereg.study.selection",
        "noisereg.study.api",
        "noisereg.study.bridge.resources",
    ],
)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_every_public_study_name_resolves() -> None:
    import noisereg.study as study

    for name in study.__all__:
        assert getattr(study, name) is not None
    with pytest.raises(AttributeError, match="no_such"):
        study.no_such  # noqa: B018
