"""Optional packages: missing or installed-but-broken, each gives one ImportError naming the package,
the original error and the fix; a broken package never makes noisereg itself fail to import."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from noisereg._optional import OptionalImportError, require, try_import

SRC = Path(__file__).resolve().parent.parent / "src"


@pytest.fixture
def packages(tmp_path, monkeypatch):
    """A folder on sys.path to write fake packages into; they leave sys.modules afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def _package(folder, name: str, body: str) -> None:
    (folder / name).mkdir()
    (folder / name / "__init__.py").write_text(textwrap.dedent(body))


def test_a_missing_package_names_the_extra():
    with pytest.raises(OptionalImportError, match=r'not installed: pip install "noisereg\[lightning\]"') as caught:
        require("noisereg_no_such_package", "lightning")
    assert caught.value.installed is False and isinstance(caught.value, ImportError)
    with pytest.raises(ImportError, match="not installed: pip install noisereg_no_such_package$"):
        require("noisereg_no_such_package")


def test_a_broken_package_names_the_original_error_and_the_fix(packages):
    _package(packages, "noisereg_broken_pkg", 'raise RuntimeError("operator torchvision::nms does not exist")')
    with pytest.raises(OptionalImportError) as caught:
        require("noisereg_broken_pkg.sub", "vision")
    message = str(caught.value)
    assert caught.value.installed is True
    assert "'noisereg_broken_pkg', which is installed but fails to import" in message
    assert "RuntimeError: operator torchvision::nms does not exist" in message
    assert "pip uninstall noisereg_broken_pkg" in message
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_a_lazy_importer_that_reraises_still_shows_the_first_error(packages):
    # as transformers re-raises a broken torchvision as "Could not import module 'trainer_utils'"
    body = """
        try:
            raise RuntimeError("operator torchvision::nms does not exist")
        except RuntimeError as error:
            raise ModuleNotFoundError("Could not import module 'trainer_utils'") from error
    """
    _package(packages, "noisereg_lazy_pkg", body)
    message = str(try_import("noisereg_lazy_pkg"))
    assert "(ModuleNotFoundError: Could not import module 'trainer_utils', from RuntimeError: operator" in message


def test_a_package_broken_by_another_names_the_other_in_the_fix(packages):
    # as lightning fails to import beside a torchvision built for another torch
    _package(packages, "noisereg_fake_vision", 'raise RuntimeError("operator torchvision::nms does not exist")')
    _package(packages, "noisereg_fake_trainer", "import noisereg_fake_vision")
    message = str(try_import("noisereg_fake_trainer", "lightning"))
    assert "needs 'noisereg_fake_trainer', which is installed but fails to import" in message
    assert "does not exist, in 'noisereg_fake_vision'): reinstall a build of noisereg_fake_vision" in message
    assert "pip uninstall noisereg_fake_vision" in message


def test_a_missing_dependency_of_an_installed_package_is_a_broken_install(packages):
    _package(packages, "noisereg_half_installed", "import noisereg_its_missing_dependency")
    found = try_import("noisereg_half_installed")
    assert isinstance(found, OptionalImportError) and found.installed is True
    assert "ModuleNotFoundError: No module named 'noisereg_its_missing_dependency'" in str(found)


def test_a_module_that_needs_another_package_names_that_package(packages):
    # as torch.utils.tensorboard needs tensorboard
    _package(packages, "noisereg_host", "")
    (packages / "noisereg_host" / "board.py").write_text("import noisereg_absent_board")
    with pytest.raises(OptionalImportError, match=r"'noisereg_absent_board', which is not installed") as caught:
        require("noisereg_host.board", "export", package="noisereg_absent_board")
    assert caught.value.installed is False
    found = try_import("noisereg_host.board")  # without package=: the host is installed, and broken
    assert isinstance(found, OptionalImportError) and found.installed is True


def test_a_working_package_is_returned(packages):
    _package(packages, "noisereg_fine_pkg", "VALUE = 3")
    assert require("noisereg_fine_pkg").VALUE == 3
    assert try_import("noisereg_fine_pkg").VALUE == 3


def test_a_broken_torchvision_leaves_noisereg_importable_and_image_noise_says_why(tmp_path):
    _package(tmp_path, "torchvision", 'raise RuntimeError("operator torchvision::nms does not exist")')
    code = textwrap.dedent(
        """
        import torch
        import noisereg, noisereg.integrations.vision as vision
        from noisereg.noise import Gaussian
        assert vision.HAS_TORCHVISION is False
        mixed = vision.MixupOrCutMix(noisereg.sites.Mixup(0.2, num_classes=2), noisereg.sites.CutMix(1.0, num_classes=2))
        mixed(torch.rand(2, 1, 4, 4), torch.tensor([0, 1]))  # needs no torchvision
        try:
            vision.ImageNoise(Gaussian(std=0.1))
        except ImportError as error:
            print(error)
        else:
            raise SystemExit("ImageNoise did not refuse a broken torchvision")
        """
    )
    # the fake torchvision first, then this checkout's noisereg (not the installed one)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(SRC)])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "'torchvision', which is installed but fails to import" in done.stdout
    assert "RuntimeError: operator torchvision::nms does not exist" in done.stdout


def test_docstring_example_runs():
    import doctest

    import noisereg._optional

    result = doctest.testmod(noisereg._optional)
    assert result.attempted > 0 and result.failed == 0


def test_a_postgresql_url_without_psycopg2_names_the_extra(monkeypatch):
    from noisereg.study.store.connection import engine_kwargs

    monkeypatch.setitem(sys.modules, "psycopg2", None)  # import raises ModuleNotFoundError
    with pytest.raises(ImportError, match=r'\'psycopg2\', which is not installed: pip install "noisereg\[postgres\]"'):
        engine_kwargs("postgresql://ann@db/runs")
    assert engine_kwargs("postgresql+psycopg://ann@db/runs")["pool_pre_ping"] is True  # another driver
