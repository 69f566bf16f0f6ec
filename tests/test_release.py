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
import sysconfig
import tarfile
import tomllib
import zipfile

import pytest

import noisereg
from noisereg.cli import main
from tests.environment import required_in_ci

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


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> pathlib.Path:
    """The wheel and the sdist of this checkout, built once for the module."""
    pytest.importorskip("setuptools")
    try:
        import build  # noqa: F401
    except ImportError:
        required_in_ci("the 'build' package is not installed (pip install -e '.[release]')")
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


def _venv_seeing_these_packages(venv: pathlib.Path) -> pathlib.Path:
    """A fresh venv whose imports fall back on the running interpreter's installed packages.

    ``--system-site-packages`` would give the *base* interpreter's packages, which inside a venv (where a
    newcomer runs the tests) lack the dependencies. A ``.pth`` file naming this environment's
    site-packages lists them after the venv's own instead; as plain paths, the ``.pth`` files inside
    them (the editable install of this checkout) are not processed, so ``noisereg`` comes from the wheel.
    """
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (pathlib.Path(purelib) / "_running_environment.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python


def test_the_wheel_installs_in_a_fresh_venv_and_its_tests_pass(dist, tmp_path) -> None:
    (wheel,) = dist.glob("*.whl")
    venv = tmp_path / "venv"
    python = _venv_seeing_these_packages(venv)
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


def test_ci_runs_the_readme_set_up_commands_in_a_fresh_venv() -> None:
    """The README's first two commands are the pinned install-and-run and install-and-test, and .ci/run
    reads them from the README (not a copy) and runs them in a venv of its own."""
    done = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "readme_commands.py"), str(ROOT / "README.md"), "2"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.splitlines() == [
        "pip install torch==2.13.0 -e . && noisereg study",
        'pip install torch==2.13.0 -e ".[dev]" && python -m pytest -q',
    ]
    script = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m venv" in script and 'source "$venv/bin/activate"' in script
    assert ".ci/readme_commands.py README.md 2" in script
    assert "pip install" not in script, ".ci/run installs only through the README's own commands"
