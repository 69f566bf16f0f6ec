"""The documentation site: every example on it runs, the study-file reference covers every key, the
site builds with warnings as errors, and its pages render in a real browser.

Examples live in ``docs/examples/`` and are included into the pages; a file whose docstring says
``requires: NAME`` runs only where ``NAME`` can be imported (the Lightning and Transformers pages).
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import os
import pathlib
import re
import runpy
import shutil
import subprocess
import sys
import threading
import tomllib

import numpy as np
import pytest

from noisereg.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
QUICK = EXAMPLES / "case-study-quick.toml"
# Run by their own tests below: they need a finished study or a PostgreSQL server.
NEEDS_A_RUN = {"read_summary.py"}
PYTHON_EXAMPLES = sorted(p.name for p in EXAMPLES.glob("*.py") if p.name not in NEEDS_A_RUN)


def _required(path: pathlib.Path) -> list[str]:
    found = re.search(r"^requires: (.+)$", path.read_text(), re.MULTILINE)
    return [name.strip() for name in found.group(1).split(",")] if found else []


def _ci_or_skip(reason: str) -> None:
    # CI installs the docs extra and Chromium (.ci/run): there a missing piece is a failure.
    if os.environ.get("CI"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.mark.parametrize("name", PYTHON_EXAMPLES)
def test_example_runs(name, tmp_path, monkeypatch) -> None:
    path = EXAMPLES / name
    for module in _required(path):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{name} shows the {module} integration, and {module} is not installed")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(path)])
    runpy.run_path(str(path), run_name="__main__")


def test_every_example_is_shown_on_a_page() -> None:
    pages = "\n".join(p.read_text() for p in DOCS.rglob("*.md"))
    included = set(re.findall(r'--8<-- "docs/examples/([^"]+)"', pages))
    assert included == {p.name for p in EXAMPLES.iterdir() if p.is_file()}


def test_the_quick_study_is_the_case_study_made_small() -> None:
    from noisereg.study.config import builtin_studies

    full = tomllib.loads(builtin_studies()["case-study"].read_text())
    quick = tomllib.loads(QUICK.read_text())
    assert quick["name"] == "case-study-quick" and quick["seeds"] == 2
    assert quick["training"]["epochs"] == 50 and quick["selection"]["seeds"] == 2
    for study in (full, quick):
        del study["name"], study["seeds"], study["training"]["epochs"], study["selection"]["seeds"]
    assert quick == full, (
        "docs/examples/case-study-quick.toml must be case-study.toml with 2 seeds and 50 epochs: copy it again"
    )


def test_the_tutorial_study_runs_and_its_report_reads(tmp_path, monkeypatch, capsys) -> None:
    """The tutorial's command on the quick study (2 seeds, 50 epochs), then its report-reading script."""
    run = tmp_path / "quick"
    assert main(["study", str(QUICK), "--out", str(run), "--workers", "1", "--quiet"]) == 0
    monkeypatch.setattr(sys, "argv", ["read_summary.py", str(run)])
    runpy.run_path(str(EXAMPLES / "read_summary.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "case-study-quick: test accuracy over 2 seeds; baseline 'no noise'" in out
    assert "cross-validation chose std = " in out


def test_the_workers_script_runs_a_study_on_postgresql(postgres_url, tmp_path) -> None:
    shim = tmp_path / "bin"
    shim.mkdir()
    # `noisereg` on PATH as this interpreter with this checkout's package, whatever else is installed
    (shim / "noisereg").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m noisereg "$@"\n')
    (shim / "noisereg").chmod(0o755)
    (shim / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT / "src")}
    run = tmp_path / "run"
    done = subprocess.run(
        ["bash", str(EXAMPLES / "workers.sh"), postgres_url, str(QUICK), str(run), "2"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (run / "summary.json").exists() and (run / "report.html").exists()


# --- the study-file reference ----------------------------------------------------------------------


def _reference():
    spec = importlib.util.spec_from_file_location("study_reference", DOCS / "hooks" / "study_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_study_file_reference_lists_every_key_of_every_table() -> None:
    from noisereg.study.config import StudyConfig

    ref = _reference()
    text = ref.reference_markdown()
    tables = ref.tables()
    assert tables[0] == ("", StudyConfig)
    names = {model.__name__ for _, model in tables}
    expected = {"DataConfig", "ArmConfig", "GaussianTable", "AnnealedSchedule", "SearchConfig", "SmoothingConfig"}
    assert expected <= names
    sections = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    assert len(sections) == len(tables)
    for (path, model), section in zip(tables, sections):
        assert section.startswith(model.__name__)
        for key in model.model_fields:
            assert f"| `{key}` |" in section, f"{model.__name__}.{key} is missing from the reference"
        assert "```toml" in section


def test_the_reference_examples_are_valid_study_tables() -> None:
    ref = _reference()
    for path, model in ref.tables():
        source, snippet = ref.example(path, model)
        parsed = tomllib.loads(snippet)  # every example is TOML
        assert parsed, (model.__name__, source)


# --- the built site in a browser -------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> pathlib.Path:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None:
        _ci_or_skip("the docs extra is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    _ci_or_skip("Chromium is not installed (apt-get install -y chromium)")
    return ""


@pytest.fixture(scope="module")
def served(site):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


WIDTH, HEIGHT = 1280, 900


@pytest.mark.parametrize("page", ["", "tutorial/"])
def test_pages_render_in_a_headless_browser(served, page, tmp_path) -> None:
    import matplotlib.image

    browser = _chromium()
    png = tmp_path / "page.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={WIDTH},{HEIGHT}",
            f"--screenshot={png}",
            f"{served}/{page}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pixels = matplotlib.image.imread(png)
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    grey = pixels[..., :3].mean(axis=2)
    # A blank page is one colour; a rendered one has a header bar, text and code blocks.
    assert float(np.var(grey)) > 1e-3
    assert len(np.unique(np.round(grey, 2))) > 20
    # The article itself, right of the navigation and below the header, holds text: not just a title.
    article = grey[160:840, 300:1240]
    assert float((np.abs(article - np.median(article)) > 0.1).mean()) > 0.02
    keep = os.environ.get("NOISEREG_SCREENSHOTS")  # a folder to keep the screenshots in, to look at
    if keep:
        shutil.copy(png, pathlib.Path(keep) / f"{page.strip('/') or 'home'}.png")
