"""Counter-based noise streams: Philox4x32-10 with an exact Box–Muller transform, on all CPU cores.

A :class:`Stream` is a key and a counter, nothing else. Its output at (key, position) is a pure
function, so a stream can be resumed at any position without replaying it, and a replica's noise does
not depend on the other replicas of its batch or on the number of threads that drew it.

The block function, Philox4x32-10, and the transforms of its words into values are in
:mod:`noisereg.philox`.

The kernel is compiled with numba (cached on disk after the first run, ``NUMBA_CACHE_DIR`` to move the
cache) and runs on ``torch.get_num_threads()`` threads (so the engine's one-thread workers draw on one).
CPU tensors only: on CUDA noisereg draws with torch's own generator (see :func:`noisereg.seeding.make_generator`).

>>> s = Stream(7)
>>> a = s.normal((5,))
>>> s.counter
2
>>> bool(torch.equal(Stream(7).normal((5,)), a))
True
"""

from __future__ import annotations

import concurrent.futures
import itertools
import numbers
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["Stream", "philox4x32", "fill_normals", "fill_uniforms", "add_normals_to_rows_"]

from noisereg.philox import _CHUNK, _COUNTER_BITS, _KEY_BITS, _normals32, _normals64, _uniforms, philox4x32

# Threads of our own, not numba's threading layer: its OpenMP layer aborts in processes forked after
# use (the engine's workers fork), and its workqueue layer refuses concurrent callers. The kernels
# release the GIL; one pool per process (a forked child makes its own).
_pools: dict[int, concurrent.futures.ThreadPoolExecutor] = {}


def _run(
    kernel: Any,
    array: np.ndarray,
    keys: Sequence[int] | np.ndarray,
    counters: Sequence[int] | np.ndarray,
    *extra: object,
) -> None:
    tasks = len(keys) * ((array.shape[1] + 4 * _CHUNK - 1) // (4 * _CHUNK))
    keys_, counters_ = np.asarray(keys, dtype=np.uint64), np.asarray(counters, dtype=np.uint64)
    threads = min(torch.get_num_threads(), tasks)
    if threads <= 1:
        kernel(array, keys_, counters_, *extra, 0, tasks)
        return
    pool = _pools.get(os.getpid())
    if pool is None or pool._max_workers < threads:
        pool = _pools[os.getpid()] = concurrent.futures.ThreadPoolExecutor(threads, "noisereg-stream")
    bounds = [tasks * i // threads for i in range(threads + 1)]
    jobs = [pool.submit(kernel, *(array, keys_, counters_, *extra, lo, hi)) for lo, hi in itertools.pairwise(bounds)]
    for job in jobs:
        job.result()


def _check_rows(out: Tensor, keys: list[int], counters: list[int], rows: int | None = None) -> np.ndarray:
    if isinstance(out, Tensor) and type(out) is not Tensor:
        # torch.export traces with fake tensors, which hold no memory for the kernel to fill.
        raise TypeError(
            f"a Stream fills plain CPU tensors, got a {type(out).__name__}: a traced program (torch.export) "
            "cannot run its kernel; export with noisereg.seeding.set_noise_generator('torch'), or strip the noise"
        )
    if not isinstance(out, Tensor) or out.dim() != 2 or out.device.type != "cpu":
        raise ValueError("out must be a 2-d CPU tensor [rows, values]")
    if out.dtype not in (torch.float32, torch.float64) or not out.is_contiguous():
        raise ValueError(f"out must be contiguous float32 or float64, got dtype={out.dtype}")
    filled = out.shape[0] if rows is None else rows
    if len(keys) != filled or len(counters) != filled:
        raise ValueError(f"need one key and one counter per row: {filled} rows")
    return out.numpy()


_UNSCALED = {np.float32: np.ones(1, np.float32), np.float64: np.ones(1, np.float64)}


def fill_normals(
    out: Tensor,
    keys: list[int],
    counters: list[int],
    *,
    shift: Tensor | None = None,
    scale: float | Sequence[float] = 1.0,
    rows: Sequence[int] | None = None,
) -> None:
    """Fill row r of ``out`` [rows, n] with N(0, 1) values of stream (keys[r], counters[r]), in place.

    All rows at once, on ``torch.get_num_threads()`` threads; row r is exactly
    ``Stream(keys[r], counters[r]).normal((n,))`` whatever the rows and threads.

    ``rows``: fill only these rows of ``out``, the i-th from stream (keys[i], counters[i]); the others
    are left as they are. With ``shift`` (a tensor of out's shape and dtype, ``out`` itself allowed):
    ``shift + scale·z`` in one pass (``scale`` one number, or one per filled row), bit for bit
    ``z.mul_(scale).add_(shift)`` with the scale rounded to out's dtype first, as torch does: additive
    noise without the two extra passes over memory.
    """
    index = np.arange(out.shape[0] if isinstance(out, Tensor) and out.dim() == 2 else 0, dtype=np.int64)
    if rows is not None:
        index = np.asarray(rows, dtype=np.int64)
        if index.ndim != 1 or ((index < 0) | (index >= out.shape[0])).any():
            raise ValueError(f"rows={list(rows)} must be row indices of out, in [0, {out.shape[0]})")
    array = _check_rows(out, keys, counters, len(index))
    if shift is None:
        shifted = array[:0]
    else:
        if not isinstance(shift, Tensor) or type(shift) is not Tensor or shift.shape != out.shape:
            raise ValueError(f"shift must be a plain tensor of out's shape {tuple(out.shape)}")
        if shift.dtype != out.dtype or shift.device.type != "cpu" or not shift.is_contiguous():
            raise ValueError(f"shift must be a contiguous CPU tensor of dtype {out.dtype}, got {shift.dtype}")
        shifted = shift.detach().numpy()
    dtype = np.float32 if out.dtype == torch.float32 else np.float64
    if shift is None:
        scales = _UNSCALED[dtype]  # read only with a shift
    elif isinstance(scale, numbers.Real):
        scales = np.full(len(index), scale, dtype=dtype)
    else:
        scales = np.asarray(scale, dtype=dtype)
        if scales.shape != (len(index),):
            raise ValueError(f"scale must be one number or one per filled row ({len(index)}), got shape {scales.shape}")
    if out.numel() and len(index):
        _run(_normals32 if out.dtype == torch.float32 else _normals64, array, keys, counters, index, shifted, scales)


def add_normals_to_rows_(
    out: np.ndarray, rows: np.ndarray, keys: np.ndarray, counters: np.ndarray, scales: np.ndarray
) -> None:
    """``out[rows[i]] += scales[i]·z_i`` in place, z_i from stream (keys[i], counters[i]): what
    ``fill_normals(out, keys, counters, shift=out, scale=scales, rows=rows)`` does, for a caller that
    made the arrays once (int64 rows, uint64 keys and counters, scales of out's dtype) and calls it at
    every step; nothing is checked here."""
    kernel = _normals32 if out.dtype == np.float32 else _normals64
    _run(kernel, out, keys, counters, rows, out, scales)


def fill_uniforms(out: Tensor, keys: list[int], counters: list[int]) -> None:
    """Fill row r of ``out`` [rows, n] with U[0, 1) values of stream (keys[r], counters[r]), in place."""
    array = _check_rows(out, keys, counters)
    if out.numel():
        _run(_uniforms, array, keys, counters, out.dtype == torch.float32)


def _check_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"a Stream draws float32 or float64, got {dtype=}")
    return dtype


class Stream:
    """A Philox4x32-10 stream: a 64-bit ``key`` and a 64-bit block ``counter`` (see the module docstring).

    Stands where a CPU ``torch.Generator`` stands in noisereg (``generator=`` of every noise kind): its
    draws advance the counter, and ``state_dict()`` / ``load_state_dict()`` save and resume it.

    Args:
        key: int in [0, 2⁶⁴), usually a :func:`noisereg.seeding.derive_seed`.
        counter: the block to start from, default 0.
    """

    device = torch.device("cpu")

    def __init__(self, key: int, counter: int = 0) -> None:
        self.key = self._word(key, "key", _KEY_BITS)
        self.counter = self._word(counter, "counter", _COUNTER_BITS)

    @staticmethod
    def _word(value: object, name: str, bits: int) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name}={value!r} must be an int in [0, 2**{bits}), got {type(value).__name__}")
        if not 0 <= int(value) < 1 << bits:
            raise ValueError(f"{name}={value!r} must be an int in [0, 2**{bits})")
        return int(value)

    def reserve(self, n: int) -> int:
        """Move the counter past the ⌈n/4⌉ blocks that n values use; return the first of them."""
        start = self.counter
        self.counter = (start + (n + 3) // 4) % (1 << _COUNTER_BITS)
        return start

    def normal(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> Tensor:
        """A new CPU tensor of N(0, 1) values of ``shape``; the counter moves on by ⌈numel/4⌉."""
        out = torch.empty(shape, dtype=_check_dtype(dtype))
        return self.normal_(out)

    def normal_(self, out: Tensor) -> Tensor:
        """Fill the contiguous CPU tensor ``out`` with N(0, 1) values, in place; returns ``out``."""
        fill_normals(out.view(1, -1), [self.key], [self.reserve(out.numel())])
        return out

    def add_normal(self, x: Tensor, std: float) -> Tensor:
        """A new tensor ``x + std·z``, z what ``normal(x.shape, x.dtype)`` would draw (the counter moves
        on the same), bit for bit ``z.mul_(std).add_(x)`` in one pass. ``x``: a contiguous
        float32/float64 CPU tensor (its autograd history is not followed)."""
        out = torch.empty(x.shape, dtype=_check_dtype(x.dtype))
        flat = out.view(1, -1)
        fill_normals(flat, [self.key], [self.reserve(out.numel())], shift=x.reshape(1, -1), scale=std)
        return out

    def uniform(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> Tensor:
        """A new CPU tensor of U[0, 1) values of ``shape``; the counter moves on by ⌈numel/4⌉."""
        out = torch.empty(shape, dtype=_check_dtype(dtype))
        fill_uniforms(out.view(1, -1), [self.key], [self.reserve(out.numel())])
        return out

    def spawn_generator(self) -> torch.Generator:
        """A torch CPU generator seeded from this stream (one block of it), for the draws a Stream does
        not make itself (Poisson, Beta, permutations, categorical draws)."""
        words = self.uniform((2,), torch.float64).mul_(2.0**32).to(torch.int64).tolist()
        return torch.Generator().manual_seed((words[0] | (words[1] << 32)) >> 1)

    def state_dict(self) -> dict[str, int]:
        """``{"key", "counter"}``: all of the stream's state."""
        return {"key": self.key, "counter": self.counter}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume at the key and counter of :meth:`state_dict`."""
        if not isinstance(state, dict) or set(state) != {"key", "counter"}:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"stream state must be a dict with keys 'key' and 'counter', got {got}")
        self.key = self._word(state["key"], "key", _KEY_BITS)
        self.counter = self._word(state["counter"], "counter", _COUNTER_BITS)

    def __repr__(self) -> str:
        return f"Stream(key={self.key}, counter={self.counter})"
