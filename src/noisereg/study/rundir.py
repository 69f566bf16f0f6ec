"""Writing into a run directory: every file whole or absent, and a failure that names the file.

A run directory may become unwritable while a study runs (permissions changed, a full disk, the
folder removed). Every write into it goes through :func:`write_file` (or :func:`writing` for a
writer that opens the path itself), which turns the ``OSError`` into one :class:`RunDirError`
naming the file and the reason, so the command can say which file failed and what is safe.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

__all__ = ["RunDirError", "writing", "write_file"]


class RunDirError(RuntimeError):
    """A file of the run directory could not be written: ``path``, the ``OSError`` behind it, and
    (for the message) what that means for the run, ``consequence``."""

    def __init__(self, path: str | Path, error: OSError, consequence: str = "") -> None:
        self.path, self.error, self.consequence = Path(path), error, consequence
        super().__init__(
            f"cannot write {self.path}: {error.strerror or error}" + (f"; {consequence}" if consequence else "")
        )


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
