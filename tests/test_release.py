"""The release: one version, ``noisereg --version``, shell completion, and a wheel that works on its own.

The wheel test builds the wheel and the sdist with ``python -m build``, installs the wheel into a fresh
virtual environment and runs a smoke check and a subset of the test suite there, from a copy of the
tests outside the source tree, so that ``noisereg`` is imported from the wheel and not from ``src/``.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile

import pytest

import noisereg
from noisereg.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Package data a study needs at run time: built-in study files and the report's templates.
PACKAGE_DATA = ("noisereg/study/builtin/case-study.toml", "noisereg/study/report/templates/")
# Tests run against the installed wheel: the public surface, the built-in study files (package data),
# the CLI's --list, version and completion, and the noise kinds' contract.
WHEEL_TESTS = [
    "tests/test_package.py",
    "tests/study/config",
    "tests/test_release.py::test_version_option_prints_the_package_version",
    "tests/test_release.py::test_shell_completion_is_offered_and_completes_commands",
    "tests/test_cli.py::test_list_shows_the_builtin_studies",
    "tests/noise/test_errors.py",
]


def test_the_version_is_written_in_one_place() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "noisereg.__version__"}
    assert f"## {noisereg.__version__}" in (ROOT / "CHANGELOG.md").read_text()


def test_version_option_prints_the_package_version(capsys) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"noisereg {noisereg.__version__}"


def test_shell_completion_is_offered_and_completes_commands(capsys, monkeypatch) -> None:
    # Typer's own switch for tests: name the shell instead of detecting the one that runs pytest.
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    assert main(["--show-completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert "_noisereg_completion" in script and "complete " in script
    # What the shell runs on <TAB>: the completion variable set, the words typed so far.
    env = {**os.environ, "_NOISEREG_COMPLETE": "complete_bash", "COMP_WORDS": "noisereg rob", "COMP_CWORD": "1"}
    done = subprocess.run([sys.executable, "-m", "noisereg"], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["robustness"]


def _ci_or_skip(reason: str) -> None:
    # CI installs the release extra (.ci/run): there a missing build tool is a failure.
    if os.environ.get("CI"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> pathlib.Path:
    """The wheel and the sdist of this checkout, built once for the module."""
    pytest.importorskip("setuptools")
    try:
        import build  # noqa: F401
    except ImportError:
        _ci_or_skip("the 'build' package is not installed (pip install -e '.[release]')")
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation builds with the setuptools already installed: the tests need no network.
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    return out


def test_wheel_and_sdist_hold_the_package_data(dist) -> None:
    (wheel,) = dist.glob(f"noisereg-{noisereg.__version__}-py3-none-any.whl")
    (sdist,) = dist.glob(f"noisereg-{noisereg.__version__}.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    for data in PACKAGE_DATA:
        assert any(n.startswith(data) for n in names), f"{data} is not in the wheel"
    assert f"noisereg-{noisereg.__version__}.dist-info/entry_points.txt" in names
    with tarfile.open(sdist) as tar:
        members = tar.getnames()
    assert f"noisereg-{noisereg.__version__}/src/{PACKAGE_DATA[0]}" in members
    assert f"noisereg-{noisereg.__version__}/CHANGELOG.md" in members
    # the docs build from an sdist: it renders the selection benchmark from its stored output
    assert f"noisereg-{noisereg.__version__}/benchmarks/results/selection.json" in members


def test_the_wheel_installs_in_a_fresh_venv_and_its_tests_pass(dist, tmp_path) -> None:
    (wheel,) = dist.glob("*.whl")
    venv = tmp_path / "venv"
    # --system-site-packages reuses the installed torch; --ignore-installed puts the wheel in the venv
    # even where another noisereg (an editable install) is installed system-wide, and shadows it.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no source tree on the path
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--ignore-installed", str(wheel)],
        check=True,
    )
    site = subprocess.run(
        [python, "-c", "import noisereg, importlib.metadata as m; print(noisereg.__file__, m.version('noisereg'))"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert pathlib.Path(site[0]).is_relative_to(venv), f"noisereg imported from {site[0]}, not from the wheel"
    assert site[1] == noisereg.__version__
    command = subprocess.run(
        [venv / "bin" / "noisereg", "--version"], cwd=tmp_path, env=env, check=True, capture_output=True, text=True
    )
    assert command.stdout.strip() == f"noisereg {noisereg.__version__}"

    # A copy of the tests away from the checkout: pyproject's pythonpath = ["src"] must not apply.
    shutil.copytree(ROOT / "tests", tmp_path / "tests")
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    done = subprocess.run(
        [python, "-m", "pytest", "-q", "-x", *WHEEL_TESTS],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
