"""The numba kernels of :mod:`noisereg.streams`: the Philox4x32-10 block function and its words turned
into uniform and normal values, row by row. Block function: Philox4x32-10 (Salmon, Moraes, Dror & Shaw 2011, "Parallel random numbers: as easy as
1, 2, 3"), the generator torch uses on CUDA and JAX everywhere; counter (c0, c1, c2, c3) = (block index
low 32 bits, high 32 bits, 0, 0), key (k0, k1) = (key low 32 bits, high 32 bits). Its known-answer
vectors (Random123's ``kat_vectors``) are checked by ``tests/test_streams.py``.

One block gives four 32-bit words w0..w3. A draw of n values from a stream at counter c uses blocks
c, c+1, ..., c + ⌈n/4⌉ − 1 (value j from word j mod 4 of block c + ⌊j/4⌋) and leaves the counter at
c + ⌈n/4⌉.

- Uniform on [0, 1): float32 (w >> 8)·2⁻²⁴ (24 random bits, never 1.0); float64 w·2⁻³².
- Normal: Box–Muller on the pairs (w0, w1) and (w2, w3), u = (w_even + 1)·2⁻³² ∈ (0, 1],
  θ = 2π·w_odd·2⁻³²: z = √(−2 ln u)·cos θ, √(−2 ln u)·sin θ, evaluated in the output's precision with
  series after exact integer reductions (ln by 2·atanh((m−1)/(m+1)) after an exponent split, sin and
  cos by Taylor series after the quadrant), truncated below that precision's rounding:
  float64 output is exact to float64 rounding; float32 output is within 13·2⁻²⁴ relative of the exact
  value (radius 5·2⁻²⁴, tested against ``math.log``), computed on 8 float32 lanes, so it is not the
  float64 result rounded. Where u >= ½ the float32 log works on 1 − u = (2³² − 1 − w)·2⁻³², which keeps
  all 32 bits of u near 1. Exact but for the 32-bit resolution of u: |z| ≤ √(64 ln 2) ≈ 6.66, a tail
  of probability 2.7·10⁻¹¹ that is cut.

Every value is a fixed sequence of IEEE operations (no fast-math, no FMA contraction, no libm), so it
is the same on every CPU numba compiles for, whatever its vector width.

A kernel fills a 2-d array [rows, values] from per-row keys and counters, tasks [first, last) of
``4·_CHUNK`` values of one row each, so that work split over threads gives the same values.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["philox4x32"]

_MASK = np.uint64(0xFFFFFFFF)
_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
_S32, _S8 = np.uint64(32), np.uint64(8)
_KEY_BITS, _COUNTER_BITS = 64, 64
_CHUNK = 1024  # blocks per task: 4096 values, scratch that stays in L1/L2

_LN2 = math.log(2.0)
_SQRT2 = math.sqrt(2.0)
_HALF_PI_SCALED = (math.pi / 2.0) * 2.0**-30
# ln m = 2·atanh(s) = 2·Σ s^(2k+1)/(2k+1), |s| ≤ 3 − 2√2 ≈ 0.172: eleven terms leave < 1.5·10⁻¹⁷ relative.
_ATANH = tuple(2.0 / (2 * k + 1) for k in range(11))
# sin and cos on |φ| ≤ π/4 by Taylor series to φ¹⁹ and φ²⁰: the next terms are below 10⁻¹⁹.
_SIN = tuple((-1.0) ** k / math.factorial(2 * k + 1) for k in range(10))
_COS = tuple((-1.0) ** k / math.factorial(2 * k) for k in range(11))
_S, _C = _SIN, _COS


@numba.njit(inline="always", error_model="numpy")
def _rounds(c0: np.uint64, c1: np.uint64, c2: np.uint64, c3: np.uint64, k0: np.uint64, k1: np.uint64) -> tuple:
    """Philox4x32-10 of counter (c0, c1, c2, c3) under key (k0, k1); 32-bit values held in uint64."""
    for _ in range(10):
        p0 = c0 * _M0
        p1 = c2 * _M1
        c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0, p1 & _MASK, (p0 >> _S32) ^ c3 ^ k1, p0 & _MASK
        k0 = (k0 + _W0) & _MASK
        k1 = (k1 + _W1) & _MASK
    return c0, c1, c2, c3


@numba.njit(inline="always", error_model="numpy")
def _block(c0: np.uint64, c1: np.uint64, k0: np.uint64, k1: np.uint64) -> tuple:
    """The block of a stream: counter (block index low word, high word, 0, 0)."""
    return _rounds(c0, c1, np.uint64(0), np.uint64(0), k0, k1)


@numba.njit(cache=True, error_model="numpy")
def _philox_words(words: np.ndarray) -> tuple:
    return _rounds(words[0], words[1], words[2], words[3], words[4], words[5])


def philox4x32(counter: tuple[int, int, int, int], key: tuple[int, int]) -> tuple[int, int, int, int]:
    """The Philox4x32-10 block function on one 128-bit counter and 64-bit key (32-bit words).

    >>> [hex(w) for w in philox4x32((0, 0, 0, 0), (0, 0))]
    ['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
    """
    words = [*counter, *key]
    if len(counter) != 4 or len(key) != 2 or not all(0 <= int(w) < 2**32 for w in words):
        raise ValueError(f"philox4x32 needs 4 counter and 2 key words in [0, 2**32), got {counter}, {key}")
    return tuple(int(w) for w in _philox_words(np.array(words, dtype=np.uint64)))  # type: ignore[return-value]


_FRACTION, _ONE = np.uint64((1 << 52) - 1), np.uint64(1023 << 52)
_TWO52_BITS, _TWO52_PLUS_BIAS = np.uint64(0x4330000000000000), 2.0**52 + 1023 + 32
_A = _ATANH


@numba.njit(inline="always", error_model="numpy")
def _radius(m: float, exponent: float) -> float:
    """√(−2·ln u) for u = m·2^exponent, m ∈ [1, 2): series for ln m after moving m into [√½, √2)."""
    big = m > _SQRT2
    m = m * 0.5 if big else m
    e = exponent + 1.0 if big else exponent
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    series = _A[0] + z * (
        _A[1]
        + z
        * (
            _A[2]
            + z
            * (_A[3] + z * (_A[4] + z * (_A[5] + z * (_A[6] + z * (_A[7] + z * (_A[8] + z * (_A[9] + z * _A[10])))))))
        )
    )
    return math.sqrt(-2.0 * (e * _LN2 + s * series))


@numba.njit(inline="always", error_model="numpy")
def _cos_sin(w: np.uint64) -> tuple:
    """(cos θ, sin θ) for θ = 2π·w·2⁻³²: quadrant q and remainder d found exactly in integers."""
    q = ((w + np.uint64(1 << 29)) >> np.uint64(30)) & np.uint64(3)
    d = np.int64(w & np.uint64((1 << 30) - 1))
    if d >= (1 << 29):
        d -= 1 << 30
    phi = d * _HALF_PI_SCALED
    z = phi * phi
    s = phi * (
        _S[0]
        + z
        * (
            _S[1]
            + z
            * (_S[2] + z * (_S[3] + z * (_S[4] + z * (_S[5] + z * (_S[6] + z * (_S[7] + z * (_S[8] + z * _S[9])))))))
        )
    )
    c = _C[0] + z * (
        _C[1]
        + z
        * (
            _C[2]
            + z
            * (_C[3] + z * (_C[4] + z * (_C[5] + z * (_C[6] + z * (_C[7] + z * (_C[8] + z * (_C[9] + z * _C[10])))))))
        )
    )
    odd = (q & np.uint64(1)) != 0
    cos_t = s if odd else c
    sin_t = c if odd else s
    cos_sign = -1.0 if ((q + np.uint64(1)) & np.uint64(2)) != 0 else 1.0
    sin_sign = -1.0 if (q & np.uint64(2)) != 0 else 1.0
    return cos_t * cos_sign, sin_t * sin_sign


@numba.njit(inline="always", error_model="numpy")
def _philox_pass(
    evens: np.ndarray, odds: np.ndarray, blocks: int, base: np.uint64, k0: np.uint64, k1: np.uint64
) -> None:
    """Blocks base .. base + blocks − 1 into uint32 scratch: (w0, w2) of block b at evens[2b], evens[2b + 1],
    (w1, w3) at odds[2b], odds[2b + 1]. Contiguous stores, so the rounds run on 4 blocks a vector
    (vpmuludq on AVX2)."""
    for b in range(blocks):
        ctr = base + np.uint64(b)
        w0, w1, w2, w3 = _block(ctr & _MASK, ctr >> _S32, k0, k1)
        evens[2 * b] = w0
        evens[2 * b + 1] = w2
        odds[2 * b] = w1
        odds[2 * b + 1] = w3


# ---- float32 output: the transform in float32 (8 lanes on AVX2) ------------------------------------
_TWO31 = np.uint32(1 << 31)
_F0, _F1, _F2, _HALF = np.float32(0.0), np.float32(1.0), np.float32(2.0), np.float32(0.5)
_SQRT2_F = np.float32(_SQRT2)
_EDGE_F = np.float32(1.0 - math.sqrt(0.5))
_BIAS_PLUS_32 = np.float32(127 + 32)
_LN2_HI = np.float32(0.693145751953125)  # ln 2 to 16 bits: g·_LN2_HI is exact for the integers g <= 32
_LN2_LO = np.float32(_LN2 - 0.693145751953125)
_ANGLE_F = np.float32(math.pi * 2.0**-31)  # (π/2)·2⁻³⁰
# log1p(f) = 2·atanh(s), s = f/(2 + f), |s| <= 3 − 2√2: terms to s⁹ leave < 2.1·10⁻⁹ relative (< 2⁻²⁸).
_A32 = tuple(np.float32(2.0 / (2 * k + 1)) for k in range(5))
# sin to φ⁹ and cos to φ¹⁰ on |φ| <= π/4: the next terms are below 1.8·10⁻⁹ and 1.2·10⁻¹⁰ (< 2⁻²⁸).
_S32F = tuple(np.float32(c) for c in _SIN[:5])
_C32F = tuple(np.float32(c) for c in _COS[:6])
_EXPONENT_MASK32, _FRACTION32, _ONE32, _S23 = np.uint32(0xFF), np.uint32(0x7FFFFF), np.uint32(0x3F800000), np.uint32(23)


@numba.njit(inline="always", error_model="numpy")
def _argument32_pass(words: np.ndarray, radii: np.ndarray, scratch: np.ndarray, n: int) -> None:
    """The log's argument x = fl32(w + 1) or fl32(~w) (see :func:`_radius32_pass`) into ``radii`` and its
    mantissa m ∈ [1, 2) into ``scratch``: one correctly rounded uint32 -> float32 conversion each."""
    x_bits = radii.view(np.uint32)
    m_bits = scratch.view(np.uint32)
    for i in range(n):
        w = words[i]
        radii[i] = np.float32(np.uint32(~w) if w >= _TWO31 else np.uint32(w + np.uint32(1)))
    for i in range(n):  # m by its bits, in a loop of its own (scalar bit casts do not vectorize)
        m_bits[i] = (x_bits[i] & _FRACTION32) | _ONE32


@numba.njit(inline="always", error_model="numpy")
def _log32_pass(words: np.ndarray, radii: np.ndarray, scratch: np.ndarray, n: int) -> None:
    """radii[i] = √(−2 ln u) from the argument and mantissa that :func:`_argument32_pass` left."""
    x_bits = radii.view(np.uint32)
    for i in range(n):
        x, m = radii[i], scratch[i]
        exponent = np.float32(np.int32((x_bits[i] >> _S23) & _EXPONENT_MASK32))
        big = m > _SQRT2_F
        f_low = (m * _HALF if big else m) - _F1
        g_low = _BIAS_PLUS_32 - exponent - (_F1 if big else _F0)
        v = x * np.float32(2.0**-32)
        far = v > _EDGE_F
        f_high = _F1 - (v + v) if far else -v
        g_high = _F1 if far else _F0
        high = words[i] >= _TWO31
        f = f_high if high else f_low
        g = g_high if high else g_low
        s = f / (_F2 + f)
        z = s * s
        log1p = s * (_A32[0] + z * (_A32[1] + z * (_A32[2] + z * (_A32[3] + z * _A32[4]))))
        radii[i] = np.sqrt(_F2 * (g * _LN2_HI + (g * _LN2_LO - log1p)))  # −ln u = g·ln 2 − log1p(f)


@numba.njit(inline="always", error_model="numpy")
def _radius32_pass(words: np.ndarray, radii: np.ndarray, scratch: np.ndarray, n: int) -> None:
    """radii[i] = √(−2 ln u) in float32 for u = (words[i] + 1)·2⁻³², accurate to a few float32 ulps.

    u < ½: x = fl32(w + 1) is split exactly into 2^e·m, ln u = (e − 32)·ln 2 + log1p(m − 1).
    u >= ½: v = 1 − u = fl32(~w)·2⁻³² holds all 32 bits of u near 1 (fl32(u) would round them away),
    ln u = log1p(−v), or −ln 2 + log1p(1 − 2v) when v > 1 − √½ (1 − 2v is exact there).
    Error of −ln u: the rounded argument ≤ 2·2⁻²⁴ relative, the series and its roundings ≤ 5·2⁻²⁴,
    the final sum 2⁻²⁴; the square root halves that and rounds once: r within 5·2⁻²⁴ relative.
    """
    _argument32_pass(words, radii, scratch, n)
    _log32_pass(words, radii, scratch, n)


@numba.njit(inline="always", error_model="numpy")
def _cos_sin32(w: np.uint32) -> tuple:
    """(cos θ, sin θ) in float32 for θ = 2π·w·2⁻³²: quadrant q and remainder d found exactly in integers."""
    q = ((w + np.uint32(1 << 29)) >> np.uint32(30)) & np.uint32(3)
    d = np.int32(w & np.uint32((1 << 30) - 1))
    d = d - np.int32(1 << 30) if d >= np.int32(1 << 29) else d
    phi = np.float32(d) * _ANGLE_F
    z = phi * phi
    s = phi * (_S32F[0] + z * (_S32F[1] + z * (_S32F[2] + z * (_S32F[3] + z * _S32F[4]))))
    c = _C32F[0] + z * (_C32F[1] + z * (_C32F[2] + z * (_C32F[3] + z * (_C32F[4] + z * _C32F[5]))))
    odd = (q & np.uint32(1)) != 0
    cos_t = s if odd else c
    sin_t = c if odd else s
    cos_t = -cos_t if ((q + np.uint32(1)) & np.uint32(2)) != 0 else cos_t
    sin_t = -sin_t if (q & np.uint32(2)) != 0 else sin_t
    return cos_t, sin_t


# ---- float64 output: the transform in float64, exact to float64 rounding ----------------------------
@numba.njit(inline="always", error_model="numpy")
def _radius64_pass(words: np.ndarray, radii: np.ndarray, exponents: np.ndarray, n: int) -> None:
    """radii[i] = √(−2 ln u) in float64 for u = (words[i] + 1)·2⁻³² (see :func:`_radius`)."""
    radii_bits = radii.view(np.uint64)
    exponent_bits = exponents.view(np.uint64)
    for i in range(n):
        radii[i] = np.float64(words[i]) + 1.0
    # Exponent split in integers (one pass), the float series in another: both passes vectorize.
    # The biased exponent b becomes the float 2⁵² + b by its bits (AVX2 has no int64 -> float64).
    for i in range(n):
        bits = radii_bits[i]
        exponent_bits[i] = _TWO52_BITS | (bits >> np.uint64(52))
        radii_bits[i] = (bits & _FRACTION) | _ONE
    for i in range(n):
        radii[i] = _radius(radii[i], exponents[i] - _TWO52_PLUS_BIAS)


@numba.njit(inline="always", error_model="numpy")
def _task(n: int, task: int, keys: np.ndarray, counters: np.ndarray) -> tuple:
    """Task t is chunk t mod chunks of row t // chunks: (row, start, stop, blocks, first block, k0, k1)."""
    chunks = (n + 4 * _CHUNK - 1) // (4 * _CHUNK)
    r, c = task // chunks, task % chunks
    start = 4 * _CHUNK * c
    stop = min(n, start + 4 * _CHUNK)
    key = keys[r]
    return r, start, stop, (stop - start + 3) // 4, counters[r] + np.uint64(_CHUNK * c), key & _MASK, key >> _S32


@numba.njit(inline="always", error_model="numpy")
def _store_shifted(values: np.ndarray, at: np.ndarray, scale: float, cosines: np.ndarray, sines: np.ndarray) -> None:
    """values = scale·(r·cos θ, r·sin θ interleaved) + at, rounded as (scale·z) + at; ``at`` may be
    ``values`` itself."""
    pairs = len(values) // 2
    for i in range(pairs):
        values[2 * i] = scale * cosines[i] + at[2 * i]
        values[2 * i + 1] = scale * sines[i] + at[2 * i + 1]
    if len(values) % 2:
        values[-1] = scale * cosines[pairs] + at[-1]


# One kernel per output dtype: a chunk of up to _CHUNK blocks goes through L1-sized scratch in passes
# (Philox, radii, then angles and the store), each a loop the compiler vectorizes.
@numba.njit(nogil=True, cache=True, error_model="numpy")
def _normals32(
    out: np.ndarray,
    keys: np.ndarray,
    counters: np.ndarray,
    rows: np.ndarray,
    shift: np.ndarray,
    scales: np.ndarray,
    first: int,
    last: int,
) -> None:
    """Tasks [first, last) of the float32 normals of rows ``rows`` of ``out`` (task row i is out's row
    rows[i], see :func:`_task`); with ``shift`` of out's shape (not empty), shift + scales[i]·z instead
    of z, rounded as (scales[i]·z) + shift."""
    evens, odds = np.empty(2 * _CHUNK, dtype=np.uint32), np.empty(2 * _CHUNK, dtype=np.uint32)
    radii, scratch = np.empty(2 * _CHUNK, dtype=np.float32), np.empty(2 * _CHUNK, dtype=np.float32)
    sines = np.empty(2 * _CHUNK, dtype=np.float32)
    shifted = shift.size > 0
    for task in range(first, last):
        r, start, stop, blocks, base, k0, k1 = _task(out.shape[1], task, keys, counters)
        _philox_pass(evens, odds, blocks, base, k0, k1)
        _radius32_pass(evens, radii, scratch, 2 * blocks)
        values, pairs = out[rows[r], start:stop], (stop - start) // 2  # a slice: indices from 0 vectorize
        if shifted:
            # r·cos θ and r·sin θ in a pass of their own first: the shift is often ``out`` itself, and
            # a loop that reads and writes the same memory runs unvectorized, cos and sin included.
            cosines = scratch
            for i in range(2 * blocks):
                c, s = _cos_sin32(odds[i])
                cosines[i] = radii[i] * c
                sines[i] = radii[i] * s
            _store_shifted(values, shift[rows[r], start:stop], scales[r], cosines, sines)
            continue
        for i in range(pairs):
            c, s = _cos_sin32(odds[i])
            values[2 * i] = radii[i] * c
            values[2 * i + 1] = radii[i] * s
        if (stop - start) % 2:
            values[-1] = radii[pairs] * _cos_sin32(odds[pairs])[0]


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _normals64(
    out: np.ndarray,
    keys: np.ndarray,
    counters: np.ndarray,
    rows: np.ndarray,
    shift: np.ndarray,
    scales: np.ndarray,
    first: int,
    last: int,
) -> None:
    """Tasks [first, last) of the float64 normals of ``out``; ``rows``, ``shift`` and ``scales`` as in
    :func:`_normals32`."""
    evens, odds = np.empty(2 * _CHUNK, dtype=np.uint32), np.empty(2 * _CHUNK, dtype=np.uint32)
    radii, scratch = np.empty(2 * _CHUNK, dtype=np.float64), np.empty(2 * _CHUNK, dtype=np.float64)
    sines = np.empty(2 * _CHUNK, dtype=np.float64)
    shifted = shift.size > 0
    for task in range(first, last):
        r, start, stop, blocks, base, k0, k1 = _task(out.shape[1], task, keys, counters)
        _philox_pass(evens, odds, blocks, base, k0, k1)
        _radius64_pass(evens, radii, scratch, 2 * blocks)
        values, pairs = out[rows[r], start:stop], (stop - start) // 2
        if shifted:
            # r·cos θ and r·sin θ in a pass of their own first: the shift is often ``out`` itself, and
            # a loop that reads and writes the same memory runs unvectorized, cos and sin included.
            cosines = scratch
            for i in range(2 * blocks):
                c, s = _cos_sin(np.uint64(odds[i]))
                cosines[i] = radii[i] * c
                sines[i] = radii[i] * s
            _store_shifted(values, shift[rows[r], start:stop], scales[r], cosines, sines)
            continue
        for i in range(pairs):
            c, s = _cos_sin(np.uint64(odds[i]))
            values[2 * i] = radii[i] * c
            values[2 * i + 1] = radii[i] * s
        if (stop - start) % 2:
            values[-1] = radii[pairs] * _cos_sin(np.uint64(odds[pairs]))[0]


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _uniforms(out: np.ndarray, keys: np.ndarray, counters: np.ndarray, single: bool, first: int, last: int) -> None:
    """Tasks [first, last) of the uniforms of ``out``: task t is chunk t mod chunks of row t // chunks."""
    n = out.shape[1]
    chunks = (n + 4 * _CHUNK - 1) // (4 * _CHUNK)
    shift, scale = (_S8, 2.0**-24) if single else (np.uint64(0), 2.0**-32)
    for task in range(first, last):
        r, c = task // chunks, task % chunks
        k0, k1 = keys[r] & _MASK, keys[r] >> _S32
        row = out[r]
        stop = min((n + 3) // 4, _CHUNK * (c + 1))
        full = min(stop, n // 4)  # blocks whose four values all fit: a branch-free loop that vectorizes
        for b in range(_CHUNK * c, full):
            ctr = counters[r] + np.uint64(b)
            w0, w1, w2, w3 = _block(ctr & _MASK, ctr >> _S32, k0, k1)
            row[4 * b] = np.float64(w0 >> shift) * scale
            row[4 * b + 1] = np.float64(w1 >> shift) * scale
            row[4 * b + 2] = np.float64(w2 >> shift) * scale
            row[4 * b + 3] = np.float64(w3 >> shift) * scale
        for b in range(max(full, _CHUNK * c), stop):  # the last, partial block
            ctr = counters[r] + np.uint64(b)
            words = _block(ctr & _MASK, ctr >> _S32, k0, k1)
            for j in range(n - 4 * b):
                row[4 * b + j] = np.float64(words[j] >> shift) * scale
