"""The public surface: every exported name resolves, and the report layer stays free of torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

import noisereg


@pytest.mark.parametrize("name", noisereg.__all__)
def test_every_public_name_resolves(name):
    assert getattr(noisereg, name) is not None


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        noisereg.no_such_name  # noqa: B018


def test_report_layer_imports_without_torch():
    code = (
        "import sys, pkgutil, importlib, noisereg.study.report as r\n"
        "for m in pkgutil.iter_modules(r.__path__):\n"
        "    importlib.import_module('noisereg.study.report.' + m.name)\n"
        "assert 'torch' not in sys.modules, sorted(k for k in sys.modules if k.startswith('torch'))[:3]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
