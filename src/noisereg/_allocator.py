"""glibc's ``malloc`` in the worker processes noisereg forks: freed memory kept for the next step.

torch allocates CPU tensors with ``malloc``. glibc serves a block above its mmap threshold (128 KiB,
raised as blocks are freed, at most 32 MiB) with a fresh ``mmap`` and returns freed memory at the top
of its heap to the system once more than a trim threshold is free. A training step allocates its
activations and gradients anew each time, so each step faults in fresh pages for them: on a 2-vCPU
virtual machine (AMD EPYC with AVX-512) a ResNet-style CNN's study went from 22.4 s to 14.7-15.3 s
(``benchmarks/own_model_speed.py``; the same setting took its floor, one model in big batches, from
19.1 s to 14.7 s). :func:`keep_freed_memory` sets the thresholds so that blocks up to 32 MiB come from
the heap and freed memory stays there for the next step.

It is called in processes noisereg starts and ends itself (the workers of
:func:`noisereg.engine.train_group` and of a study's training jobs), never in the caller's process:
the allocator of a program is its own. The price is a worker's resident memory, which stays at its peak
until the worker ends. Setting ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` in the
environment (glibc's own variables, which also reach a process with ``workers=1``) leaves the workers
to them.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MMAP_MAX = 32 << 20  # glibc's upper limit for the mmap threshold on 64-bit systems
_TRIM = 1 << 30
_TOP_PAD = 64 << 20
_USERS_OWN = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def keep_freed_memory() -> bool:
    """Set glibc's mmap threshold to 32 MiB and its trim threshold to 1 GiB in this process (see the
    module docstring). Returns whether it did: False without glibc, or where the environment sets
    glibc's own variables for them."""
    if platform.libc_ver()[0] != "glibc" or any(name in os.environ for name in _USERS_OWN):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    # the mmap threshold first: a trim threshold set alone fixes the mmap threshold at its 128 KiB
    # start, and every activation then comes from mmap (the CNN above took 38 s)
    if mallopt(_M_MMAP_THRESHOLD, _MMAP_MAX) != 1:
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, _TRIM) == 1 and mallopt(_M_TOP_PAD, _TOP_PAD) == 1)
