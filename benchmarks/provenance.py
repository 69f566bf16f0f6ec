"""Where and how a benchmark ran, for the record it stores with ``--summary FILE``.

Every stored figure says its command, the machine (CPU model, whether it has AVX-512, cores, torch),
the load average, the minutes it took and the date: a figure without them cannot be compared with
another. The docs render these records (``docs/hooks/benchmark_tables.py``).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any

import torch


def cpu() -> str:
    """The CPU's model name and whether it has AVX-512 (``avx512f`` in ``/proc/cpuinfo``)."""
    try:
        with open("/proc/cpuinfo") as info:
            lines = info.read().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    return f"{name} ({'with' if 'avx512f' in flags else 'without'} AVX-512)"


def machine() -> str:
    """CPU, core count and torch build, as one line."""
    return f"{cpu()}, {os.cpu_count()} CPUs, torch {torch.__version__}"


def record(script: str, *, started: float, setup: str, noise_generator: str = "philox", **extra: Any) -> dict[str, Any]:
    """The provenance of a run of ``benchmarks/<script>`` started at ``time.time()`` = ``started``."""
    env = " ".join(f"{k}={os.environ[k]}" for k in ("ATEN_CPU_CAPABILITY", "NUMBA_CPU_NAME") if os.environ.get(k))
    command = f"PYTHONPATH=src python benchmarks/{script} {' '.join(sys.argv[1:])}".rstrip()
    return {
        "command": f"{env} {command}".strip(),
        "machine": machine(),
        "noise_generator": noise_generator,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "minutes": round((time.time() - started) / 60, 1),
        "date": time.strftime("%Y-%m-%d"),
        "setup": setup,
        **extra,
    }
