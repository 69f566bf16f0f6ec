"""Whether a study can run on this machine at all: the device exists and one replica fits in memory.

Checked before anything is stored, so that an absurd size (``widths = [10**9]``, ``n_samples =
10**10``) is refused with the key that causes it instead of failing in the allocator halfway
through a run. The bound is the memory available now (``MemAvailable`` of ``/proc/meminfo`` on
Linux, the free device memory on CUDA): one replica must fit, by the engine's own estimate
(:func:`noisereg.engine.estimate_replica_bytes`); more replicas are trained in chunks, so this is
the least any run needs. Where the available memory cannot be read, nothing is refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from noisereg.engine import FoldData, Group, estimate_replica_bytes
from noisereg.study.config import DataConfig, StudyConfigError

__all__ = [
    "GENERATED_BYTES_PER_SAMPLE",
    "available_bytes",
    "check_device",
    "check_generated_size",
    "check_replica_fits",
]

GENERATED_BYTES_PER_SAMPLE = 64
"""Peak bytes per sample while scikit-learn draws circles or moons: the float64 features [n, 2], the
noise added to them, the angles and their cosine and sine: 8 float64 values."""

_MEMINFO = Path("/proc/meminfo")


def available_bytes(device: str = "cpu") -> int | None:
    """Bytes that can be allocated now on ``device`` ("cpu" or "cuda[:i]"); None when unknown."""
    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_device(device: object) -> str:
    """``device`` as a string, if torch can train on it here; else a ``ValueError`` saying why.

    >>> check_device("cpu")
    'cpu'
    """
    if not isinstance(device, str):
        raise TypeError(f"device={device!r} must be a str such as 'cpu' or 'cuda', got {type(device).__name__}")
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device={device!r} is not a torch device; use 'cpu' or 'cuda'") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        build = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        raise ValueError(f"device={device!r}: {build}; use --device cpu")
    if parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r}: studies train on 'cpu' or 'cuda'")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(f"device={device!r}: this machine has {count} CUDA device(s), 'cuda:0' to 'cuda:{count - 1}'")
    return device


def check_generated_size(
    config: DataConfig, source: str = "study", available: Callable[[], int | None] = available_bytes
) -> None:
    """Refuse generated data (circles, moons) that cannot fit in memory, before drawing it."""
    if config.source not in ("circles", "moons"):
        return
    n = config.n_samples + (config.test_samples or 0)
    need, have = n * GENERATED_BYTES_PER_SAMPLE, available()
    if have is not None and need > have:
        key = "data.n_samples" if not config.test_samples else "data.n_samples + data.test_samples"
        raise StudyConfigError(
            [(key, f"{n} samples need about {_gib(need)} to generate, but {_gib(have)} of memory is available")],
            source,
        )


def check_replica_fits(
    groups: list[Group],
    folds: list[FoldData],
    device: str,
    key: str,
    value: object,
    source: str = "study",
    available: Callable[[str], int | None] = available_bytes,
) -> None:
    """Refuse a study of which one replica of the largest ``group`` cannot fit in ``device``'s memory;
    the error names the study key ``key`` and its ``value``."""
    try:  # a module spec is built once to count its parameters: an absurd one fails right here
        need = max(estimate_replica_bytes(g, folds) for g in groups)
    except (RuntimeError, MemoryError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StudyConfigError([(key, f"{value!r}: building one replica failed: {first}")], source) from None
    have = available(device)
    if have is not None and need > have:
        raise StudyConfigError(
            [
                (
                    key,
                    f"{value!r}: one replica needs about {_gib(need)} while training (parameters, optimizer state, "
                    f"activations and data, by the engine's estimate), but {_gib(have)} is available on {device}",
                )
            ],
            source,
        )
