"""Writing into a run directory: every file whole or absent, and a failure that names the file.

A run directory may become unwritable while a study runs (permissions changed, a full disk, the
folder removed). Every write into it goes through :func:`write_file` (or :func:`writing` for a
writer that opens the path itself), which turns the ``OSError`` into one :class:`RunDirError`
naming the file and the reason, so the command can say which file failed and what is safe.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

__all__ = ["RunDirError", "explain", "write_problem", "writing", "write_file"]

_REASONS = {
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied (check the owner and mode of the folder and the file)",
    errno.EPERM: "operation not permitted (an immutable file or folder, or another owner)",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
}


class RunDirError(RuntimeError):
    """A file of the run directory could not be written: ``path``, the ``OSError`` behind it, and
    (for the message) what that means for the run, ``consequence``."""

    def __init__(self, path: str | Path, error: OSError, consequence: str = "") -> None:
        self.path, self.error, self.consequence = Path(path), error, consequence
        super().__init__(
            f"cannot write {self.path}: {error.strerror or error}" + (f"; {consequence}" if consequence else "")
        )


def explain(error: OSError) -> str:
    """Why ``error`` stops a write, in words that say what to fix (read-only, permissions, full disk)."""
    return _REASONS.get(error.errno or 0, error.strerror or str(error))


def write_problem(folder: str | Path, files: Sequence[str | Path] = ()) -> tuple[Path, OSError] | None:
    """The first path that cannot be written and its ``OSError``: a file created and removed in
    ``folder`` (SQLite creates its journal there), then each existing one of ``files`` opened for
    writing; None when all can be. It tries rather than asks ``os.access``, which says yes to root
    on a read-only file system or an immutable folder."""
    folder = Path(folder)
    try:
        handle, name = tempfile.mkstemp(dir=folder, prefix=".noisereg-write-check-")
        os.close(handle)
        os.unlink(name)
    except OSError as exc:
        return folder, exc
    for file in map(Path, files):
        try:
            if file.exists():
                with open(file, "r+b"):
                    pass
        except OSError as exc:
            return file, exc
    return None


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Raise :class:`RunDirError` naming ``path`` (or the file the error names) for an ``OSError`` inside."""
    try:
        yield
    except OSError as exc:
        raise RunDirError(exc.filename or path, exc) from None


def write_file(path: str | Path, write: Callable[[IO[bytes]], None] | str | bytes) -> Path:
    """Write ``path`` whole or not at all: into a temporary file beside it, then renamed over it.

    ``write`` is the content (str as UTF-8, or bytes) or a function that writes into the open binary
    file. Raises :class:`RunDirError` naming ``path`` (its old content, if any, is kept).
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as f:
            if callable(write):
                write(f)
            else:
                f.write(write.encode() if isinstance(write, str) else write)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise RunDirError(path, exc) from None
    return path
