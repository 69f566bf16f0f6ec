"""The README is a short front door whose every block runs or is checked; docstring examples run."""

from __future__ import annotations

import doctest
import importlib
import json
import pathlib
import re
import tomllib

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


README = ROOT / "README.md"
# CI (.ci/run) runs these two commands word for word: the README must open with them.
FIRST_COMMANDS = [
    "pip install torch==2.13.0 -e . && noisereg study",
    'pip install torch==2.13.0 -e ".[dev]" && python -m pytest -q',
]


def _blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)


def test_readme_is_a_front_door() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 150, "the README is a front door: the manual is the docs site"
    blocks = _blocks(text)
    assert [code.strip() for _, code in blocks[:2]] == FIRST_COMMANDS
    assert [lang for lang, _ in blocks[:2]] == ["bash", "bash"]
    # every other block is checked below: a new kind of block needs a check first
    assert {lang for lang, _ in blocks[2:]} <= {"python", "toml"}, [lang for lang, _ in blocks]
    # the README shows attach and a study of one's own model, by run_model and by a study file
    assert "noisereg.attach(" in text and "study.run_model(" in text and "factory = " in text


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the snippets write runs/ where they run: not into the checkout
    snippets = [code for lang, code in _blocks(README.read_text()) if lang == "python"]
    assert len(snippets) >= 2, "the README lost its attach or its run_model example"
    for code in snippets:
        exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "runs" / "my-net" / "summary.json").is_file()


def test_readme_study_files_are_valid() -> None:
    from noisereg.study.config import parse_config
    from noisereg.study.config.user import is_user_study, parse_user_config

    files = [tomllib.loads(code) for lang, code in _blocks(README.read_text()) if lang == "toml"]
    assert files, "the README lost its study file"
    for raw in files:
        (parse_user_config if is_user_study(raw) else parse_config)(raw, source="README.md")
    assert any(is_user_study(raw) and raw["data"]["loader"] for raw in files)


def test_readme_links_point_at_files() -> None:
    text = README.read_text()
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert links
    for link in links:
        if "://" not in link:
            assert (ROOT / link).exists(), f"README links to {link}, which does not exist"


def test_readme_evidence_sentence_matches_the_stored_benchmark() -> None:
    stored = json.loads((ROOT / "benchmarks" / "results" / "selection.json").read_text())
    row = next(r for r in stored["rows"] if r["procedure"] == stored["default"])
    sentence = " ".join(README.read_text().split())
    assert f"lost {row['mean_regret']:.4f} of test score on average" in sentence
    assert f"significantly worse than no noise on {row['worse']} of {row['problems']}" in sentence


@pytest.mark.parametrize("name", DOCTESTED)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
