import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import noisereg.study.report.reliability as module
from noisereg.metrics import reliability
from noisereg.study.report.reliability import plot_reliability

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _curve(seed, binning="equal_width"):
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(300, 3, generator=g)
    labels = torch.randint(0, 3, (300,), generator=g)
    # Through JSON, as a study stores it: empty bins become None.
    data = reliability(logits, labels, from_logits=True, binning=binning).to_dict()
    return json.loads(json.dumps(data))


def _tiny():
    return {
        "lower": [0.0, 0.5],
        "upper": [0.5, 1.0],
        "confidence": [None, 0.8],
        "accuracy": [None, 0.7],
        "count": [0, 10],
    }


@pytest.mark.parametrize("binning", ["equal_width", "equal_mass"])
def test_writes_a_png_for_several_arms(tmp_path, binning):
    target = tmp_path / "plots" / "reliability.png"
    path = plot_reliability({"no noise": _curve(0, binning), "input σ=0.1": _curve(1, binning)}, target, title="digits")
    assert path == target
    assert path.read_bytes()[:8] == _PNG_MAGIC


def test_ece_in_the_legend_is_the_weighted_gap():
    # One non-empty bin: |0.7 - 0.8| = 0.1.
    assert module._ece(module._check_curve("a", _tiny())) == pytest.approx(0.1)


def test_module_draws_without_torch(tmp_path):
    # The report is rebuilt where torch is absent: load this file alone with torch blocked.
    code = (
        "import importlib.util, sys\n"
        "sys.modules['torch'] = None\n"
        f"spec = importlib.util.spec_from_file_location('reliability', {module.__file__!r})\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        f"mod.plot_reliability({{'a': {_tiny()!r}}}, {str(tmp_path / 'r.png')!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert Path(tmp_path / "r.png").read_bytes()[:8] == _PNG_MAGIC


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"count": [0, 0]}, "count"),
        ({"count": [1.5, 3]}, "count"),
        ({"accuracy": [None, 1.2]}, "accuracy"),
        ({"upper": [0.5]}, "one value per bin"),
        ({"lower": None}, "lacks"),
    ],
)
def test_bad_curves_raise(tmp_path, change, match):
    data = {**_tiny(), **change}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(ValueError, match=match):
        plot_reliability({"a": data}, tmp_path / "r.png")


def test_no_curves_or_wrong_type(tmp_path):
    with pytest.raises(ValueError, match="non-empty"):
        plot_reliability({}, tmp_path / "r.png")
    with pytest.raises(TypeError, match="mapping"):
        plot_reliability({"a": [1, 2]}, tmp_path / "r.png")
