"""What the ``noisereg`` command prints: the summary table, progress, deprecations, and each error as
one line with its exit code (the codes are in :mod:`noisereg.cli`). Imports of the library sit inside
the functions, as in the CLI, so that ``noisereg report`` starts without torch.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = [
    "DEBUG",
    "ERR",
    "ProgressBar",
    "deprecations",
    "error",
    "exit_codes",
    "fail",
    "make_console",
    "print_enqueued",
    "print_summary",
    "summary_table",
]

ERR = Console(stderr=True)
DEBUG = {"on": False}


def summary_table(summary: dict[str, Any]) -> Table:
    from noisereg.study.report.documents import TERMINAL_HEADERS, table_rows

    table = Table(title=f"{summary['study']}: test {summary['metric']} over seeds (baseline: {summary['baseline']})")
    for key, header in TERMINAL_HEADERS.items():
        table.add_column(header, justify="left" if key == "arm" else "right", overflow="fold")
    for row in table_rows(summary):
        style = {"better": "green", "worse": "red"}.get(row["verdict"])
        table.add_row(*(Text(row[k]) for k in TERMINAL_HEADERS), style=style)
    return table


def print_summary(console: Console, summary: dict[str, Any], run_dir: Path) -> None:
    from noisereg.study.report.documents import selection_texts

    console.print(summary_table(summary))
    console.print(Text("Verdict. ", style="bold") + Text(summary["verdict"]["text"]))
    if summary.get("recommendation"):
        console.print(Text("Recommendation. ", style="bold") + Text(summary["recommendation"]["text"]))
    if summary.get("selection"):
        for text in selection_texts(summary["selection"]):
            console.print(Text(text))
    if summary["missing"]:
        console.print(
            Text(f"{len(summary['missing'])} cell(s) without results: {', '.join(summary['missing'])}", style="yellow")
        )
    console.print(f"Report: {run_dir / 'report.html'}")


def make_console(quiet: bool) -> Console:
    """Standard output; wide when it is not a terminal, so that a piped table is not folded."""
    console = Console(quiet=quiet)
    if not console.is_terminal:
        console.width = max(console.width, 150)
    return console


def fail(message: str, code: int) -> typer.Exit:
    ERR.print(Text("error: ", style="red") + Text(message), highlight=False, soft_wrap=True)  # one error, one line
    return typer.Exit(code)


@contextlib.contextmanager
def deprecations() -> Iterator[None]:
    """Each deprecation the library warns of inside (a study file's earlier spelling: its key path and
    the new one) as one line on stderr; other warnings as Python shows them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, DeprecationWarning):
                    ERR.print(Text("warning: ", style="yellow") + Text(str(w.message)), highlight=False, soft_wrap=True)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def print_enqueued(console: Console, name: str, cells: int, states: dict[str, str], run_dir: Path) -> None:
    waiting = sum(1 for v in states.values() if v == "WAITING")
    console.print(
        f"{name}: {cells} cells, {cells - len(states)} complete, {waiting} waiting.\n"
        f"Start workers (same storage URL, same --heartbeat) with:\n"
        f"  noisereg worker --storage URL --study {name}\n"
        f"Build the report with:\n  noisereg report {run_dir}",
        highlight=False,
    )


@contextlib.contextmanager
def exit_codes(interrupted: str) -> Iterator[None]:
    """Exit 2 for bad input (a study, data, option or store that cannot be used: StudyConfigError,
    DataError, StoreError, and the ValueError/TypeError of an argument check), 130 when interrupted,
    1 for anything that fails during the work; each as one line, the traceback only with --debug."""
    from noisereg.study.config import StudyConfigError
    from noisereg.study.data import DataError
    from noisereg.study.store import StoreError

    try:
        yield
    except typer.Exit:  # already reported (by fail): one error, one line
        raise
    except KeyboardInterrupt:
        raise fail(interrupted, 130) from None
    except (StudyConfigError, DataError, StoreError, ValueError, TypeError) as exc:
        raise error(exc, 2) from None
    except Exception as exc:
        raise error(exc, 1) from None


def error(exc: Exception, code: int) -> typer.Exit:
    """The one-line report of ``exc`` (our own errors say what failed; others get their type)."""
    from noisereg.study.cells import TrainingError
    from noisereg.study.config import StudyConfigError
    from noisereg.study.data import DataError
    from noisereg.study.export import ExportError, ExportFailed
    from noisereg.study.rundir import RunDirError
    from noisereg.study.store import StoreError, StoreUnreachable

    if DEBUG["on"]:
        traceback.print_exception(exc, file=sys.stderr)
    text = str(exc).strip()
    own = (
        StudyConfigError,
        DataError,
        StoreError,
        TrainingError,
        RunDirError,
        StoreUnreachable,
        ExportError,
        ExportFailed,
    )
    if isinstance(exc, own):
        message = text
    elif code == 2:  # an argument check: its message names the argument and the value
        message = (text.splitlines() or [type(exc).__name__])[0]
    else:  # torch's own errors (shapes, out of memory) and anything unforeseen
        message = f"{type(exc).__name__}: {(text.splitlines() or [''])[0]}"
    if isinstance(exc, TrainingError):
        message += "; each cell's traceback is stored with it (FAIL); rerun to retry"
    if code == 1 and not DEBUG["on"]:
        message += " (noisereg --debug ... shows the traceback)"
    return fail(message, code)


class ProgressBar:
    """A rich progress bar over replica-epochs (nothing when quiet)."""

    def __init__(self, console: Console, quiet: bool) -> None:
        self.bar: Any = None
        if not quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
        self.task: Any = None

    def __enter__(self) -> Any:
        if self.bar is None:
            return None
        self.bar.start()
        self.task = self.bar.add_task("replica-epochs", total=None)

        def advance(done: int, total: int) -> None:
            self.bar.update(self.task, completed=done, total=total)

        return advance

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
