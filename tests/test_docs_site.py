"""The documentation site: every example on it runs, the study-file reference covers every key, the
site builds with warnings as errors, and its pages render in a real browser.

Examples live in ``docs/examples/`` and are included into the pages; a file whose docstring says
``requires: NAME`` runs only where ``NAME`` can be imported (the Lightning and Transformers pages).
"""

from __future__ import annotations

import functools
import html
import html.parser
import http.server
import importlib
import importlib.util
import json
import os
import pathlib
import re
import runpy
import shutil
import subprocess
import sys
import threading
import tomllib
import urllib.parse
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from noisereg.cli import main
from tests.environment import required_in_ci

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


@pytest.mark.parametrize("name", PYTHON_EXAMPLES)
def test_example_runs(name, tmp_path, monkeypatch) -> None:
    path = EXAMPLES / name
    for module in _required(path):
        if importlib.util.find_spec(module) is None:
            required_in_ci(f"{name} shows the {module} integration, and {module} is not installed")
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


def _assert_sections_cover(text: str, tables: list) -> None:
    sections = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    assert len(sections) == len(tables)
    for (_, model), section in zip(tables, sections, strict=True):
        assert section.startswith(model.__name__)
        for key in model.model_fields:
            assert f"| `{key}` |" in section, f"{model.__name__}.{key} is missing from the reference"
        assert "```toml" in section


def test_the_study_file_reference_lists_every_key_of_every_table() -> None:
    from noisereg.study.config import StudyConfig

    ref = _reference()
    tables = ref.tables()
    assert tables[0] == ("", StudyConfig)
    names = {model.__name__ for _, model in tables}
    expected = {"DataConfig", "ArmConfig", "GaussianTable", "AnnealedSchedule", "SearchConfig", "SmoothingConfig"}
    assert expected <= names
    _assert_sections_cover(ref.reference_markdown(), tables)


def test_the_reference_lists_every_key_of_an_own_model_study() -> None:
    from noisereg.study.config.user import FactoryConfig, LoaderConfig, UserSiteConfig, UserStudyConfig

    ref = _reference()
    tables = ref.user_tables()
    assert tables[0] == ("", UserStudyConfig)
    paths = dict((model, path) for path, model in tables)
    assert paths[FactoryConfig] == "model" and paths[LoaderConfig] == "data"
    assert paths[UserSiteConfig] == "arms[].noise[]"
    # the optimizer table is the built-in one, documented once
    assert not {model for _, model in tables} & {model for _, model in ref.tables()}
    text = ref.user_reference_markdown()
    _assert_sections_cover(text, tables)
    assert 'factory = "own_nets:make_net"' in text and 'loader = "own_nets:load"' in text


def test_the_reference_examples_are_valid_study_tables() -> None:
    from noisereg.study.config.user import UserArmConfig

    ref = _reference()
    for path, model in ref.tables():
        source, snippet = ref.example(path, model)
        parsed = tomllib.loads(snippet)  # every example is TOML
        assert parsed, (model.__name__, source)
    for path, model in ref.user_tables():
        source, snippet = ref.user_example(path, model)
        parsed = tomllib.loads(snippet)
        if path.startswith("arms[]"):  # an arm's snippet is a whole arm: it validates as one
            for arm in parsed["arms"]:
                UserArmConfig.model_validate(arm)
        elif path:
            model.model_validate(parsed[path])


def test_the_own_model_study_file_runs(tmp_path, monkeypatch, capsys) -> None:
    """The how-to's command: the study file names docs/examples/own_nets.py by import path."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    run = tmp_path / "own-net"
    assert main(["study", str(EXAMPLES / "own_model_study.toml"), "--out", str(run), "--workers", "1", "--quiet"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert [a["name"] for a in summary["arms"]] == [
        "no noise",
        "input",
        "hidden[std=0.1]",
        "hidden[std=0.3]",
        "weights",
    ]
    assert (run / "report.html").is_file()


# --- every how-to runs what it shows ---------------------------------------------------------------

INCLUDE = re.compile(r'--8<-- "docs/examples/([^"]+)"')
RUN_BY_A_TEST = {"read_summary.py", "workers.sh", "case-study-quick.toml", "own_model_study.toml"}


def _blocks(text: str) -> list[tuple[str, str]]:
    return re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)


@pytest.mark.parametrize("page", sorted(p.name for p in (DOCS / "how-to").glob("*.md")))
def test_every_how_to_includes_an_example_that_runs(page) -> None:
    included = INCLUDE.findall((DOCS / "how-to" / page).read_text())
    assert included, f"how-to/{page} shows no example file from docs/examples/: its code is not run"
    assert all(name in PYTHON_EXAMPLES or name in NEEDS_A_RUN or name in RUN_BY_A_TEST for name in included)


def test_the_own_model_how_to_is_built_on_run_model_and_a_study_file() -> None:
    from noisereg.study.config.user import is_user_study, parse_user_config

    page = (DOCS / "how-to" / "own-model.md").read_text()
    included = INCLUDE.findall(page)
    assert included[:3] == ["own_model_run.py", "own_nets.py", "own_model_study.toml"]
    assert "study.run_model(" in (EXAMPLES / "own_model_run.py").read_text()
    raw = tomllib.loads((EXAMPLES / "own_model_study.toml").read_text())
    assert is_user_study(raw) and raw["model"]["factory"] and raw["data"]["loader"]
    parse_user_config(raw)
    assert "model.factory" in page and "data.loader" in page


PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_on_a_page_are_example_files_or_run(page, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for lang, code in _blocks((DOCS / page).read_text()):
        if lang not in ("python", "py", "pycon"):
            continue
        if INCLUDE.fullmatch(code.strip()):
            continue  # an example file: test_example_runs runs it
        exec(compile(code, f"docs/{page}", "exec"), {"__name__": "__main__"})


# --- the built site in a browser -------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> pathlib.Path:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None:
        required_in_ci("the docs extra is not installed (pip install -e '.[docs]')")
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
    required_in_ci("Chromium is not installed (apt-get install -y chromium)")
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

    png = tmp_path / "page.png"
    subprocess.run(
        [*_browser_args(tmp_path / "profile"), f"--screenshot={png}", f"{served}/{page}"],
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


# --- the built site as a whole: every page, every link, every image, every public name -------------

TOUR = "__tour__.html"  # written into the served site by the browser test, never part of the build


def _built_pages(site: pathlib.Path) -> list[str]:
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html") if p.name != TOUR)


class _Refs(html.parser.HTMLParser):
    """The URLs a page points at (links, images, stylesheets, scripts) and the ids it defines."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        for key in ("href", "src"):
            if a.get(key) and tag in ("a", "img", "link", "script", "source", "iframe"):
                self.refs.append((tag, a[key]))


def _parse(path: pathlib.Path) -> _Refs:
    parser = _Refs()
    parser.feed(path.read_text())
    return parser


def _valid_image(path: pathlib.Path) -> bool:
    if path.suffix == ".svg":
        return ET.parse(path).getroot().tag.endswith("svg")
    import matplotlib.image

    return matplotlib.image.imread(path).size > 0


def test_every_internal_link_and_image_of_the_built_site_resolves(site) -> None:
    """A crawl of the built HTML: what `mkdocs build --strict` cannot see (links written by hooks,
    mkdocstrings and the theme) must point at a file, and a fragment at an id of that file."""
    pages = _built_pages(site)
    parsed = {page: _parse(site / page) for page in pages}
    broken, images = [], 0
    for page, refs in parsed.items():
        for tag, ref in refs.refs:
            url = urllib.parse.urlsplit(ref)
            if url.scheme or url.netloc or ref.startswith(("mailto:", "javascript:", "data:")):
                continue
            target = urllib.parse.urljoin("/" + page, url.path) if url.path else "/" + page
            path = site / urllib.parse.unquote(target).lstrip("/")
            if path.is_dir():
                path = path / "index.html"
            if not path.is_file():
                broken.append(f"{page}: <{tag}> {ref} (no {path.relative_to(site)})")
                continue
            if tag == "img" or path.suffix in (".png", ".svg", ".jpg", ".ico"):
                images += 1
                if not _valid_image(path):
                    broken.append(f"{page}: <{tag}> {ref} is not a readable image")
            if url.fragment and path.suffix == ".html":
                ids = parsed[path.relative_to(site).as_posix()].ids if path.name != "404.html" else set()
                if urllib.parse.unquote(url.fragment) not in ids:
                    broken.append(f"{page}: <{tag}> {ref} (no id {url.fragment!r} there)")
    assert not broken, "\n".join(broken)
    assert images > 0  # the favicon at least: the image check ran


PUBLIC_MODULES = [
    "noisereg",
    "noisereg.noise",
    "noisereg.schedules",
    "noisereg.sites",
    "noisereg.metrics",
    "noisereg.robustness",
    "noisereg.study",
    "noisereg.integrations",
]


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_public_name_is_on_the_api_page(site, module) -> None:
    page = site / "reference" / "api" / "index.html"
    text = page.read_text()
    ids = _parse(page).ids
    missing = [
        name
        for name in importlib.import_module(module).__all__
        # rendered under its own heading, or named as the same object as one that is
        if not any(i == name or i.endswith("." + name) for i in ids) and f"<code>{module}.{name}</code>" not in text
    ]
    assert not missing, f"{module}.__all__ names missing from reference/api: {missing}"


NAMES = ("selection", "selection_heldout")


def test_the_selection_page_shows_the_stored_benchmark(site) -> None:
    families = [json.loads((ROOT / "benchmarks" / "results" / f"{n}.json").read_text()) for n in NAMES]
    text = html.unescape((site / "evidence" / "selection-benchmark" / "index.html").read_text())
    rows = re.findall(r"<tr>\s*<td>(.*?)</td>\s*<td>(\d+)</td>\s*<td>([\d.]+)</td>", text)
    expected = [(r["procedure"], str(r["problems"]), f"{r['mean_regret']:.4f}") for f in families for r in f["rows"]]
    assert expected == rows
    words = re.sub(r"<[^>]+>", "", text)  # code is highlighted token by token
    for stored in families:
        assert stored["machine"] in words and stored["date"] in words and stored["command"] in words
        cells = re.findall(r"<td>(.*?)</td>\s*<td>([\d.]+)</td>\s*<td>([+-][\d.]+)</td>", text)
        for problem in stored["problems"]:  # the default procedure, problem by problem: name, σ, Δ
            assert (problem["problem"], f"{problem['chosen']:g}", f"{problem['delta']:+.4f}") in cells
    assert "no numbers are shown" not in words.lower()


def _browser_args(profile: pathlib.Path) -> list[str]:
    return [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={WIDTH},{HEIGHT}",
    ]


# Run in a page that frames every page of the site: the frames load (with their styles, scripts and
# images) before the page's load event, which then reads each frame as a person would see it.
TOUR_SCRIPT = """
window.addEventListener("load", () => {
  const out = [];
  for (const f of document.querySelectorAll("iframe")) {
    const d = f.contentDocument, w = f.contentWindow, article = d.querySelector("article");
    const header = d.querySelector(".md-header"), h1 = article && article.querySelector("h1");
    out.push({
      page: f.dataset.page,
      url: w.location.pathname,
      ready: d.readyState,
      title: d.title,
      h1: h1 ? h1.textContent.trim() : null,
      text: article ? article.innerText.trim().length : 0,
      styled: header ? w.getComputedStyle(header).position : null,
      scripted: typeof w.document$ !== "undefined",
      images: [...d.images].map(i => ({src: i.currentSrc, shown: i.complete && i.naturalWidth > 0})),
      wider: d.documentElement.scrollWidth > w.innerWidth + 1,
    });
  }
  const pre = document.createElement("pre");
  pre.id = "tour";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
"""


def test_every_page_renders_in_a_headless_browser(site, served, tmp_path) -> None:
    pages = _built_pages(site)
    frames = "".join(f'<iframe data-page="{p}" src="/{p}" width="{WIDTH}" height="{HEIGHT}"></iframe>' for p in pages)
    (site / TOUR).write_text(f"<!doctype html><html><body>{frames}<script>{TOUR_SCRIPT}</script></body></html>")
    try:
        done = subprocess.run(
            [*_browser_args(tmp_path / "profile"), "--virtual-time-budget=20000", "--dump-dom", f"{served}/{TOUR}"],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        (site / TOUR).unlink()
    found = re.search(r'<pre id="tour">(.*?)</pre>', done.stdout, re.S)
    assert found, "the browser did not finish loading the site: " + done.stderr[-2000:]
    seen = {r["page"]: r for r in json.loads(html.unescape(found.group(1)))}
    assert sorted(seen) == pages
    problems = []
    for page, r in seen.items():
        if r["url"] != "/" + page or r["ready"] != "complete":
            problems.append(f"{page}: not loaded ({r['url']}, {r['ready']})")
        if r["styled"] != "sticky" or not r["scripted"]:
            problems.append(f"{page}: the theme's stylesheet or script did not run")
        if not r["h1"] or not r["title"]:
            problems.append(f"{page}: no title or heading")
        # every page but the 404 says something beyond its heading
        if page != "404.html" and r["text"] < len(r["h1"] or "") + 200:
            problems.append(f"{page}: {r['text']} characters of text")
        problems += [f"{page}: image {i['src']} not shown" for i in r["images"] if not i["shown"]]
        if r["wider"]:
            problems.append(f"{page}: wider than the window (scrolls sideways)")
    assert not problems, "\n".join(problems)


def test_the_selection_benchmark_writes_what_the_docs_render(tmp_path, monkeypatch) -> None:
    """`selection.py --summary FILE` writes rows with the keys the docs' hook renders, and the hook
    renders such a file; checked on two made-up problems, since a real run takes most of an hour."""
    spec = importlib.util.spec_from_file_location("selection_benchmark", ROOT / "benchmarks" / "selection.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "selection_benchmark", bench)  # its dataclasses look themselves up
    spec.loader.exec_module(bench)
    hook_spec = importlib.util.spec_from_file_location("benchmark_tables", DOCS / "hooks" / "benchmark_tables.py")
    hook = importlib.util.module_from_spec(hook_spec)
    hook_spec.loader.exec_module(hook)
    assert list(bench.COLUMNS) == list(hook.SELECTION_COLUMNS)
    assert [title for title, _ in hook.SELECTION_COLUMNS.values()] == list(bench.COLUMNS.values())
    assert [title for title, _ in hook.PROBLEM_COLUMNS.values()] == list(bench.PROBLEM_COLUMNS.values())
    assert list(bench.PROBLEM_COLUMNS) == list(hook.PROBLEM_COLUMNS)
    test = {"0.0": [0.70, 0.72, 0.71], "0.1": [0.80, 0.81, 0.79], "1.0": [0.60, 0.63, 0.60]}
    results = [{"choices": {"rule A": 0.1, "rule B": 1.0}, "test": test}] * 2
    provenance = {"command": "c", "machine": "m", "noise_generator": "philox", "load_average": [1.0, 1.0, 1.0]}
    provenance |= {"minutes": 1.0, "setup": "2 problems"}
    out = tmp_path / "selection.json"
    bench.write_summary(str(out), results, provenance)
    stored = json.loads(out.read_text())
    rows = {r["procedure"]: r for r in stored["rows"]}
    assert rows["rule A"]["mean_regret"] == 0.0 and rows["rule B"]["worse"] == 2
    assert rows["always no noise"]["mean_regret"] == pytest.approx(0.09)
    monkeypatch.setattr(hook, "RESULTS", tmp_path)
    text = hook.render("selection")
    assert "| rule A | 2 | 0.0000 |" in text and "noise drawn by the `philox` generator" in text


def test_every_benchmark_marker_of_the_docs_is_replaced_by_its_stored_table() -> None:
    """A marker the hook's pattern missed stays an HTML comment, which the site shows as nothing."""
    hook_spec = importlib.util.spec_from_file_location("benchmark_tables", DOCS / "hooks" / "benchmark_tables.py")
    hook = importlib.util.module_from_spec(hook_spec)
    hook_spec.loader.exec_module(hook)
    seen = set()
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text()
        seen |= set(re.findall(r"<!-- benchmark: (\S+) -->", text))
        rendered = hook.on_page_markdown(text, page=None)
        assert "<!-- benchmark:" not in rendered, page
    assert seen <= set(hook.COLUMNS)
    assert {"study_speed_avx2", "noise_overhead"} <= seen
