"""Reading a user's data file into named columns (CSV with a header row, NPZ, Parquet), with errors
that name the file and, where a value is at fault, its column and rows. numpy only (no torch).
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

from noisereg._optional import OptionalImportError, require

__all__ = ["DataError", "check_finite", "first_text", "read_columns"]


class DataError(ValueError):
    """Data that cannot be used for the study; the message names the key and, for files, where."""


def read_columns(path: Path) -> dict[str, np.ndarray]:
    """Columns of a CSV (with a header row), NPZ (one array per column; 2-D arrays give several
    columns) or Parquet file, as 1-D arrays (numbers as float64, anything else as str)."""
    if not path.is_file():
        raise DataError(f"data.path: no such file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return _read_csv(path)
        if suffix == ".npz":
            if not zipfile.is_zipfile(path):
                raise DataError(
                    f"data.path: cannot read {path}: it is not an .npz archive (a zip of .npy arrays, as numpy.savez writes); "
                    "save the columns with numpy.savez(path, name=array, ...)"
                )
            with np.load(path, allow_pickle=False) as archive:
                columns: dict[str, np.ndarray] = {}
                for key in archive.files:
                    arr = archive[key]
                    if arr.ndim == 1:
                        columns[key] = arr
                    elif arr.ndim == 2:
                        columns.update({f"{key}[{j}]": arr[:, j] for j in range(arr.shape[1])})
                    else:
                        raise DataError(f"{path}: array {key!r} has {arr.ndim} dims; expected 1 or 2")
                return columns
        if suffix == ".parquet":
            try:
                pq = require("pyarrow.parquet", "parquet")
            except OptionalImportError as error:
                raise DataError(f"{path}: reading Parquet: {error}") from error
            table = pq.read_table(path)
            return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    except DataError:
        raise
    except Exception as exc:  # a file the reader cannot parse: say which and why
        raise DataError(f"data.path: cannot read {path}: {type(exc).__name__}: {exc}") from None
    raise DataError(f"data.path: {path} must end in .csv, .npz or .parquet, got {suffix or 'no suffix'!r}")


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise DataError(f"{path}: empty file; expected a header row and data rows")
    header, body = rows[0], rows[1:]
    if not body:
        raise DataError(f"{path}: a header but no data rows")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise DataError(
            f"{path}: column name(s) {repeated} appear more than once in the header; name every column once"
        )
    bad = [i + 2 for i, r in enumerate(body) if len(r) != len(header)]
    if bad:
        raise DataError(f"{path}: lines {bad[:5]} have a different number of fields than the header ({len(header)})")
    columns: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        cells = [r[j].strip() for r in body]
        empty = [i + 2 for i, c in enumerate(cells) if not c]
        if empty:
            raise DataError(
                f"{path}: column {name!r} is empty at lines {empty[:5]}{' ...' if len(empty) > 5 else ''} "
                f"({len(empty)} empty value(s)); fill in or drop those rows (missing values are not imputed)"
            )
        try:
            columns[name] = np.array([float(c) for c in cells], dtype=np.float64)
        except ValueError:
            columns[name] = np.array(cells, dtype=str)
    return columns


def first_text(column: np.ndarray) -> str:
    """Where a column first holds something that is not a number, e.g. "'x3' in data row 4"."""
    for i, value in enumerate(column.tolist()):
        try:
            float(value)
        except (TypeError, ValueError):
            return f"{value!r} in data row {i + 1}"
    return f"its values have dtype {column.dtype}"


def check_finite(x: np.ndarray, names: tuple[str, ...], path: Path) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        places = []
        for j in np.flatnonzero(bad.any(axis=0))[:3]:
            rows = (np.flatnonzero(bad[:, j]) + 1).tolist()
            what = "NaN" if np.isnan(x[:, j]).any() else "inf"
            places.append(f"{what} in column {names[j]!r} at data rows {rows[:5]}{' ...' if len(rows) > 5 else ''}")
        raise DataError(
            f"{path}: {'; '.join(places)} (rows 1-based, header not counted); "
            f"{int(bad.sum())} non-finite value(s) in all"
        )
