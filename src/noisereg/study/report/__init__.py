"""Reports of a study, rebuilt from the store alone (optuna, numpy, scipy, matplotlib, jinja2; no torch).

:func:`build_report` reads the completed cells and writes into the run directory ``summary.json``
(schema in :mod:`noisereg.study.report.summary`), ``summary.md``, ``report.html`` and PNG plots under
``plots/``. Each file is written whole or not at all; when one cannot be written (a full disk, a
directory that cannot be written) :class:`~noisereg.study.rundir.RunDirError` names it and says that
the results are safe in the store (on SQLite, after the store passed SQLite's integrity check).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from pathlib import Path
from typing import Any

from noisereg.study.report.documents import table_rows, to_html, to_markdown
from noisereg.study.report.plots import plot_grid, plot_learning_curves, plot_profiles, plot_seeds
from noisereg.study.report.reliability import plot_reliability
from noisereg.study.report.robustness_plots import plot_certified, plot_corruptions, plot_noisy_gap
from noisereg.study.report.sequential import merged
from noisereg.study.report.summary import SCHEMA, summarize
from noisereg.study.rundir import RunDirError, write_file, writing
from noisereg.study.store import ROBUSTNESS_PREFIX, Store, StoreError, default_url, masked_url

__all__ = ["build_report", "read_run", "summarize", "table_rows", "SCHEMA"]


def read_run(run_dir: str | Path, storage: str | None = None, study: str | None = None) -> tuple[str, str]:
    """(storage URL, study name) of a run directory: the arguments, else ``run.json``, else the
    default SQLite file.

    ``run.json`` holds ``{"study": name, "storage": url}``; a storage without ``://`` is a file path
    relative to the run directory (the default ``study.db`` is written so, and a copied or moved run
    directory then reads its own store). Raises :class:`StoreError` when neither says which study, or
    run.json cannot be read.
    """
    run_dir = Path(run_dir)
    info: dict[str, Any] = {}
    path = run_dir / "run.json"
    if path.is_file():
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreError(f"{path} cannot be read ({exc}); pass --storage URL and --study NAME") from None
        if not isinstance(info, dict) or not all(isinstance(info.get(k, ""), str) for k in ("study", "storage")):
            raise StoreError(
                f'{path} is not a run.json written by noisereg (expected {{"study": name, "storage": url}}); '
                "pass --storage URL and --study NAME"
            )
    stored = info.get("storage")
    if stored and "://" not in stored:
        stored = f"sqlite:///{(run_dir / stored).resolve()}"
    url = storage or stored or default_url(run_dir)
    if "***" in url:
        raise StoreError(f"{run_dir}/run.json names a storage with a hidden password: pass --storage URL")
    name = study or info.get("study")
    if name is None:
        raise StoreError(f"{run_dir} has no run.json: pass the study name")
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise StoreError(f"no study store at {url}: is {run_dir} a run directory?")
    return url, name


def _clean(value: Any) -> Any:
    """Strict JSON: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "arm"


def build_report(run_dir: str | Path, *, storage: str | None = None, study: str | None = None) -> dict[str, Any]:
    """Write summary.json, summary.md, report.html and plots/*.png into ``run_dir``; return the summary.

    Raises:
        StoreError: no study to report (see :func:`read_run`). RunDirError: a report file could not be
            written; the message names it and what the store holds.
    """
    run_dir = Path(run_dir)
    url, name = read_run(run_dir, storage, study)
    with Store(url, name) as store:
        attrs = store.attrs()
        done = store.completed()
        try:
            return _write_report(run_dir, attrs, done)
        except RunDirError as exc:
            intact = store.integrity()
            checked = (
                ""
                if intact is None
                else (
                    " (it passed SQLite's integrity check)"
                    if intact == "ok"
                    else f" (but SQLite's integrity check says: {intact})"
                )
            )
            raise RunDirError(
                exc.path,
                exc.error,
                f"the report could not be written; the results of {len(done)} cell(s) are safe in the store at "
                f"{masked_url(url)}{checked}; once there is room, run 'noisereg report {run_dir}'",
            ) from None


def _write_report(run_dir: Path, attrs: dict[str, Any], done: Any) -> dict[str, Any]:
    attrs, done = merged(attrs, done)  # a sequential study's rounds, as one cell each
    summary = _clean(summarize(attrs, done))
    write_file(run_dir / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    write_file(run_dir / "summary.md", to_markdown(summary))
    plots = _plots(run_dir / "plots", summary, done)
    plots += _robustness_plots(run_dir / "plots", summary, attrs, done)
    write_file(run_dir / "report.html", to_html(summary, [(t, f"plots/{p.name}") for t, p in plots]))
    return summary


def _draw(plot: Any, path: Path, *args: Any) -> Path:
    """``plot(path, ...)``; a failed write removes the partial file and raises RunDirError naming it."""
    try:
        return plot(path, *args)
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        raise RunDirError(path, exc) from None


def _plots(folder: Path, summary: dict[str, Any], done: dict[str, Any]) -> list[tuple[str, Path]]:
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    arms = summary["arms"]
    if not arms:
        return []
    metric = summary["metric"]
    sel = summary.get("selection")
    shown = _shown(summary)
    panels = [(a["name"], done[a["name"]]) for a in shown]
    out = [("Learning curves", _draw(plot_learning_curves, folder / "learning_curves.png", panels, metric))]
    grid_arms = list(dict.fromkeys(a["arm"] for a in arms if a["grid_value"] is not None))
    for arm in grid_arms:
        entries = [a for a in arms if a["arm"] == arm]
        arm_sel = sel if sel and sel["arm"] == arm else None
        out.append(
            (
                f"{arm}: test {metric} against {entries[0]['param']}",
                _draw(plot_grid, folder / f"grid_{_slug(arm)}.png", arm, entries, metric, arm_sel),
            )
        )
    out.append(("Per-seed results", _draw(plot_seeds, folder / "seeds.png", arms, metric, summary["baseline"])))
    higher = summary["higher_is_better"]
    title = (
        f"Performance profiles: the share of seeds with test {metric} {'above' if higher else 'below'} each threshold"
    )
    out.append((title, _draw(plot_profiles, folder / "profiles.png", shown, metric, higher, summary["baseline"])))
    return out


def _shown(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The arms drawn in figures: every arm without a grid, and the grid value chosen by selection."""
    sel = summary.get("selection")
    return [a for a in summary["arms"] if a["grid_value"] is None or (sel and a["name"] == sel.get("cell"))]


def _robustness_plots(
    folder: Path, summary: dict[str, Any], attrs: dict[str, Any], done: dict[str, Any]
) -> list[tuple[str, Path]]:
    shown = _shown(summary)
    out: list[tuple[str, Path]] = []
    noisy = [(a["name"], done[a["name"]]) for a in shown if a.get("noisy")]
    if noisy:
        out.append(
            (
                "Clean-vs-noisy gap during training",
                _draw(plot_noisy_gap, folder / "noisy_gap.png", noisy, summary["metric"]),
            )
        )
    corrupted = [a for a in shown if a.get("corruption")]
    if corrupted:
        out.append(
            ("Accuracy against corruption severity", _draw(plot_corruptions, folder / "corruptions.png", corrupted))
        )
    calibrated = [a for a in shown if a.get("calibration")]
    if calibrated:
        bins = calibrated[0]["calibration"]["bins"]
        curves = {a["name"]: a["calibration"]["reliability"] for a in calibrated}
        title = f"Reliability diagram, {bins} bins, pooled over seeds"
        out.append(
            (
                "Reliability diagram",
                _draw(lambda path: plot_reliability(curves, path, title=title), folder / "reliability.png"),
            )
        )
        seeds = [
            {
                "name": a["name"],
                "per_seed": [v for v in attrs[ROBUSTNESS_PREFIX + a["name"]]["calibration"]["ece"] if v is not None],
            }
            for a in calibrated
        ]
        out.append(
            (
                f"ECE ({bins} bins) per seed",
                _draw(plot_seeds, folder / "ece.png", seeds, f"ECE ({bins} bins)", summary["baseline"]),
            )
        )
    certified = [a for a in shown if a.get("certified")]
    if certified:
        out.append(("Certified accuracy against radius", _draw(plot_certified, folder / "certified.png", certified)))
    return out
