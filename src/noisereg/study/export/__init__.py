"""A study's stored results in the tools people already use, from the store alone (no retraining):
a tidy table (CSV, Parquet; :mod:`~noisereg.study.export.table`), TensorBoard scalars
(:mod:`~noisereg.study.export.to_tensorboard`) and MLflow runs (:mod:`~noisereg.study.export.to_mlflow`).
Every target carries every stage of the table (curves, finals, CV folds and their curves, certified
accuracy) at full float precision.

An export is all or nothing: it is written into a fresh hidden sibling of the target
(``.<name>.<random>.partial``) and moved onto the target only when complete, so a failure leaves the
target as it was and removes the partial copy. An existing target is refused unless ``force``; with
it, the target is replaced by a fresh export (an MLflow folder too: its database holds this study
only), and a folder only where an earlier export wrote it (its :data:`MARK` file): a shared
TensorBoard or MLflow folder holds other runs. Errors: :class:`ExportError` (a ValueError) for what the caller can fix — an unknown format,
a store without a completed cell, a target that exists or is a file where a folder is written, a
missing or broken optional package (named, with the command that installs it); :class:`ExportFailed`
for a failure while writing, naming the target and chaining the cause.

Importing this package imports no torch; TensorBoard's writer does (``torch.utils.tensorboard``,
which needs the ``tensorboard`` package: the ``export`` extra); Parquet needs ``pyarrow`` (the
``parquet`` extra) and MLflow ``mlflow-skinny`` (the ``mlflow`` extra).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from noisereg._optional import OptionalImportError, require
from noisereg.study.export.table import tidy_rows, write_csv, write_parquet
from noisereg.study.export.to_mlflow import write_mlflow
from noisereg.study.export.to_tensorboard import write_tensorboard
from noisereg.study.store import Store

__all__ = ["tidy_rows", "export_run", "Format", "FORMATS", "ExportError", "ExportFailed"]

Format = Literal["csv", "parquet", "tensorboard", "mlflow"]
FORMATS: tuple[str, ...] = ("csv", "parquet", "tensorboard", "mlflow")
_FOLDERS = ("tensorboard", "mlflow")
# per format: (module to import, the extra that installs it, its distribution where the module's
# top-level name is another package: torch.utils.tensorboard needs tensorboard)
_NEEDS: dict[str, list[tuple[str, str, str | None]]] = {
    "csv": [],
    "parquet": [("pyarrow", "parquet", None), ("pyarrow.parquet", "parquet", None)],
    "tensorboard": [("torch.utils.tensorboard", "export", "tensorboard")],
    "mlflow": [("mlflow.entities", "mlflow", None), ("mlflow.tracking", "mlflow", None)],
}


#: The file in every exported folder that marks it as noisereg's own: ``--force`` replaces no other folder.
MARK = ".noisereg-export"


class ExportError(ValueError):
    """The export cannot be done as asked; nothing was written. The message says how to fix it."""


class ExportFailed(RuntimeError):
    """Writing the export failed; the target was left as it was (the cause is chained)."""


def _optional(module: str, extra: str, package: str | None, to: str) -> Any:
    """``module``, or an ExportError (the user's environment: exit 2) with the one message of
    :func:`noisereg._optional.require`: the package, missing or broken, and the fix."""
    try:
        return require(module, extra, package=package)
    except OptionalImportError as error:
        raise ExportError(f"--to {to}: {error}") from error.__cause__


@contextlib.contextmanager
def _staged(out: Path, folder: bool) -> Iterator[Path]:
    """A fresh path beside ``out`` to write into (a folder, or a file in a hidden folder), moved onto
    ``out`` when the block succeeds and removed when it fails."""
    stage = out.parent / f".{out.name}.{secrets.token_hex(4)}.partial"
    stage.mkdir()  # mkdir, not mkdtemp: the folder gets the user's usual permissions once moved
    written = stage if folder else stage / out.name
    try:
        yield written
        if not folder:
            os.replace(written, out)  # atomic, over an existing file too
        elif not out.exists():
            os.rename(stage, out)
        else:  # a folder cannot be replaced in one step: move the old one aside first, restore it on failure
            old = stage.with_name(stage.name.removesuffix(".partial") + ".old")
            os.rename(out, old)
            try:
                os.rename(stage, out)
            except BaseException:
                os.rename(old, out)
                raise
            shutil.rmtree(old, ignore_errors=True)  # the export is in place: a leftover is no failure
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def export_run(store: Store, to: Format, out: str | Path, *, force: bool = False) -> Path:
    """Write ``store``'s results to ``out`` as ``to`` ("csv", "parquet": a file; "tensorboard",
    "mlflow": a folder), all or nothing (see the package docstring), and return ``out``.

    Args:
        force: replace an existing ``out`` (default: refuse it).

    Raises ExportError (nothing written) for an unknown format, a store with no completed cell, an
    ``out`` that exists (without ``force``) or is a file where a folder is written or the reverse,
    and a missing or broken optional package; ExportFailed when writing fails (``out`` untouched).
    """
    if to not in FORMATS:
        raise ExportError(f"{to=} must be one of {FORMATS}")
    out = Path(out)
    folder = to in _FOLDERS
    if out.exists():
        if out.is_dir() != folder:
            wanted = "a folder" if folder else "a file"
            raise ExportError(
                f"out={str(out)!r} (--out) is {'a folder' if out.is_dir() else 'a file'}: --to {to} writes {wanted}"
            )
        if not force:
            raise ExportError(f"out={str(out)!r} (--out) exists: pass --force to replace it, or choose another --out")
        if folder and not (out / MARK).is_file():
            # a shared TensorBoard log folder or MLflow tracking folder holds other people's runs
            raise ExportError(
                f"out={str(out)!r} (--out) is not a folder that noisereg export wrote (it has no {MARK}): "
                "--force replaces only noisereg's own exports; choose another --out"
            )
    modules = [_optional(*need, to) for need in _NEEDS[to]]
    try:
        rows = tidy_rows(store)
    except Exception as error:
        raise ExportFailed(
            f"export --to {to} failed while reading the stored results ({type(error).__name__}: {error}); "
            f"{out} was not touched"
        ) from error
    if not rows:
        raise ExportError("the study has no completed cell yet: nothing to export")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _staged(out, folder) as path:
            if to == "csv":
                write_csv(rows, path)
            elif to == "parquet":
                write_parquet(rows, path, *modules)
            elif to == "tensorboard":
                write_tensorboard(rows, path, modules[0].SummaryWriter)
            else:
                write_mlflow(store, rows, path, out, *modules)
            if folder:
                (path / MARK).write_text(f"noisereg export --to {to}\n", encoding="utf-8")
    except Exception as error:
        raise ExportFailed(
            f"export --to {to} failed while writing {out} ({type(error).__name__}: {error}); "
            f"{'the existing one is unchanged' if out.exists() else 'nothing was written'}"
        ) from error
    return out
