"""What a test needs of the machine: a missing piece is a skip on a developer's machine and a
failure in CI (``CI`` set, as ``.ci/run`` runs), where every piece is installed; and paths made
unwritable for real, for root too."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


def required_in_ci(reason: str) -> None:
    """Skip with ``reason``, or fail under CI, whose set-up provides what the test needs."""
    if os.environ.get("CI"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def lock(path: Path) -> None:
    """Make ``path`` refuse writes: chmod for a user; for root, whom chmod does not stop, the
    immutable attribute (``chattr +i``), which the kernel enforces for root too."""
    if os.geteuid() != 0:
        path.chmod(0o555 if path.is_dir() else 0o444)
        return
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        required_in_ci(f"cannot make a path unwritable for root here: chattr +i said {done.stderr.strip()!r}")


def unlock(path: Path) -> None:
    """Undo :func:`lock`."""
    if os.geteuid() != 0:
        path.chmod(0o755 if path.is_dir() else 0o644)
    else:
        subprocess.run(["chattr", "-i", str(path)], check=True)
