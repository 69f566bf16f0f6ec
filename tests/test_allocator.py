"""noisereg._allocator: glibc's thresholds in the library's worker processes, checked in a child process
so that the test process keeps its own allocator."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from noisereg import _allocator

GLIBC = platform.libc_ver()[0] == "glibc"

CHILD = r"""
import ctypes, sys
import torch
from noisereg._allocator import keep_freed_memory

class Info(ctypes.Structure):  # glibc's struct mallinfo2 (2.33+)
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

class OldInfo(ctypes.Structure):  # struct mallinfo (int fields), what a glibc before 2.33 has
    _fields_ = [(name, ctypes.c_int) for name, _ in Info._fields_]

libc = ctypes.CDLL(None)
info = getattr(libc, "mallinfo2", None) or libc.mallinfo
info.restype = Info if hasattr(libc, "mallinfo2") else OldInfo
print("applied", keep_freed_memory() if sys.argv[1:] == ["call"] else None)
mapped = lambda: info().hblkhd
before = mapped()
small = torch.empty(4 << 20, dtype=torch.uint8)  # 4 MiB: from the heap now
print("small mapped", mapped() > before)
block = torch.empty(16 << 20, dtype=torch.uint8)
del block  # 16 MiB freed: kept in the heap for the next step, not trimmed
print("kept free", info().fordblks >= 16 << 20)
"""


def _child(env: dict[str, str]) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    command = [sys.executable, "-c", CHILD, "call"]
    out = subprocess.run(command, env={**clean, **env}, capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_blocks_up_to_32_mib_come_from_the_heap_and_freed_memory_stays_there() -> None:
    lines = _child({})
    # (with glibc's defaults, here: a fresh mapping for the block, and the 16 MiB trimmed; how far the
    # default threshold has moved by then depends on what the imports freed, so that is not asserted)
    assert lines == ["applied True", "small mapped False", "kept free True"]


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_the_users_own_malloc_variables_are_left_to_them() -> None:
    assert _child({"MALLOC_TRIM_THRESHOLD_": "131072"})[:1] == ["applied False"]


def test_nothing_is_set_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    assert _allocator.keep_freed_memory() is False
