"""The counter-based generator: known answers, the exact transform, statistics, positions, threads."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from noisereg import noise
from noisereg.layers import GaussianNoise
from noisereg.philox import _radius32_pass
from noisereg.seeding import derive_seed, noise_generator, set_noise_generator
from noisereg.streams import Stream, fill_normals, fill_uniforms, philox4x32
from tests.conftest import six_se_mean, six_se_var

# Random123 kat_vectors, Philox4x32-10: counter (4 words), key (2 words) -> output (4 words).
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]
N = 1 << 18


def _words(key: int, counter: int, blocks: int) -> np.ndarray:
    """The raw 32-bit words of ``blocks`` blocks (float64 uniforms are w·2⁻³², exact)."""
    u = Stream(key, counter).uniform((4 * blocks,), torch.float64)
    return (u.numpy() * 2.0**32).astype(np.uint64)


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_block_function_matches_the_published_vectors(counter, key, expected) -> None:
    assert philox4x32(counter, key) == expected


@pytest.mark.parametrize(("key", "counter"), [(0, 0), (0xA4093822 | (0x299F31D0 << 32), 2**32 - 1), (2**64 - 1, 7)])
def test_stream_blocks_are_the_block_function_of_key_and_counter(key, counter) -> None:
    words = _words(key, counter, 3).reshape(3, 4)
    for b in range(3):
        c = counter + b
        expected = philox4x32((c & 0xFFFFFFFF, c >> 32, 0, 0), (key & 0xFFFFFFFF, key >> 32))
        assert tuple(int(w) for w in words[b]) == expected


def test_normals_are_box_muller_of_the_words_to_float64_rounding() -> None:
    words = _words(11, 5, N // 4).reshape(-1, 2)
    u = (words[:, 0].astype(np.float64) + 1.0) * 2.0**-32
    theta = 2.0 * math.pi * words[:, 1].astype(np.float64) * 2.0**-32
    r = np.sqrt(-2.0 * np.log(u))
    expected = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1).reshape(-1)
    z64 = Stream(11, 5).normal((N,), torch.float64)
    # Both sides are within a few float64 ulps (libm to 1 ulp, the series below rounding) of |z| <= 6.66.
    largest = math.sqrt(64 * math.log(2.0))
    np.testing.assert_allclose(z64.numpy(), expected, rtol=0, atol=16 * np.finfo(np.float64).eps * largest)
    assert float(z64.abs().max()) <= largest


# Words where the float32 radius changes case: u = ½ and u = √½ (the split of the log), u = 1 (r = 0),
# the smallest u (the largest r), and the neighbourhoods of each.
_SQRT_HALF_WORD = int(math.sqrt(0.5) * 2**32)
EDGE_WORDS = sorted(
    {
        w
        for centre in (0, 2**31, _SQRT_HALF_WORD, 2**32 - 1, 2**24, 2**32 - 2**24)
        for w in range(centre - 64, centre + 64)
        if 0 <= w < 2**32
    }
)


def _radius_exact(words: np.ndarray) -> np.ndarray:
    """√(−2 ln u), u = (w + 1)·2⁻³², in float64 from exact arguments: log1p(−(1 − u)) where u >= ½."""
    w = words.astype(np.float64)
    minus_log = np.where(words >= 2**31, -np.log1p(-(2.0**32 - 1.0 - w) * 2.0**-32), -np.log((w + 1.0) * 2.0**-32))
    return np.sqrt(2.0 * minus_log)


def _radius32(words: np.ndarray) -> np.ndarray:
    radii, scratch = np.empty(words.size, np.float32), np.empty(words.size, np.float32)
    _radius32_pass(words.astype(np.uint32), radii, scratch, words.size)
    return radii


# The float32 radius's bound (philox._radius32_pass): −ln u to 8·2⁻²⁴ relative, halved by the square
# root, which rounds once more: 5·2⁻²⁴ relative. The reference is float64 (< 2⁻⁵⁰ relative).
RADIUS_BOUND = 5 * 2.0**-24


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=64))
def test_float32_radius_is_within_its_bound_of_math_log(words: list[int]) -> None:
    w = np.array(words, dtype=np.uint64)
    exact = _radius_exact(w)
    assert np.all(np.abs(_radius32(w) - exact) <= RADIUS_BOUND * exact)


def test_float32_radius_over_many_words_and_every_edge() -> None:
    w = np.concatenate([np.array(EDGE_WORDS, dtype=np.uint64), _words(21, 0, N // 4)])
    exact, radii = _radius_exact(w), _radius32(w)
    assert np.all(np.abs(radii - exact) <= RADIUS_BOUND * exact)
    assert radii[w == 2**32 - 1][0] == 0.0  # u = 1
    assert float(radii.max()) <= math.sqrt(64 * math.log(2.0)) * (1 + RADIUS_BOUND)  # u = 2⁻³², rounded


def test_float32_normals_are_box_muller_to_their_bound() -> None:
    # float32 output is Box–Muller evaluated in float32, not the float64 result rounded: the radius to
    # 5·2⁻²⁴, cos and sin to 7·2⁻²⁴ (angle from a rounded integer: 3; series roundings: 3; argument: 1),
    # the product one rounding: 13·2⁻²⁴ relative; the float64 values stand in for the exact ones.
    z64 = Stream(11, 5).normal((N,), torch.float64).numpy()
    z32 = Stream(11, 5).normal((N,), torch.float32).numpy().astype(np.float64)
    largest = math.sqrt(64 * math.log(2.0))
    bound = 13 * 2.0**-24 * np.abs(z64) + 16 * np.finfo(np.float64).eps * largest
    assert np.all(np.abs(z32 - z64) <= bound)


def test_moments_and_kolmogorov_smirnov() -> None:
    z = Stream(derive_seed(0, "moments")).normal((N,), torch.float64)
    for observed, bound in (six_se_mean(z, 0.0), six_se_var(z, 1.0)):
        assert observed < bound
    # 4th moment 3 with standard error √((E z⁸ − 9)/N) = √(96/N)
    assert abs(float(z.pow(4).mean()) - 3.0) < 6 * math.sqrt(96 / N)
    # KS at level 1e-6 (a fixed key: the same statistic on every run)
    alpha = 1e-6
    assert stats.kstest(z.numpy(), "norm").statistic < math.sqrt(-math.log(alpha / 2) / (2 * N))
    u = Stream(derive_seed(0, "uniform")).uniform((N,), torch.float32).double()
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert stats.kstest(u.numpy(), "uniform").statistic < math.sqrt(-math.log(alpha / 2) / (2 * N))


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.double(), b.double()]))[0, 1])


@pytest.mark.parametrize("replica", [0, 1, 7])
def test_neighbouring_keys_and_counters_are_uncorrelated(replica: int) -> None:
    bound = 6.0 / math.sqrt(N)  # six standard errors of a correlation of independent samples
    a = Stream(derive_seed(3, "replica", replica)).normal((N,))
    b = Stream(derive_seed(3, "replica", replica + 1)).normal((N,))
    assert abs(_corr(a, b)) < bound
    raw = Stream(replica).normal((N,)), Stream(replica + 1).normal((N,))  # keys one apart
    assert abs(_corr(*raw)) < bound
    blocks = raw[0].view(-1, 4)  # value j of block c against value j of block c + 1, each j
    for j in range(4):
        assert abs(_corr(blocks[:-1, j], blocks[1:, j])) < 6.0 / math.sqrt(blocks.shape[0] - 1)
    assert abs(_corr(blocks[:, 0], blocks[:, 1])) < 6.0 / math.sqrt(blocks.shape[0])  # a Box–Muller pair


def test_a_stream_resumes_at_any_position() -> None:
    whole = Stream(5).normal((40,))
    s = Stream(5)
    first, second = s.normal((10,)), s.normal((7,))
    assert s.counter == 3 + 2
    assert torch.equal(first, whole[:10]) and torch.equal(second, whole[12:19])
    assert torch.equal(Stream(5, counter=3).normal((7,)), second)
    copy = Stream(0)
    copy.load_state_dict(s.state_dict())
    assert torch.equal(copy.normal((9,)), s.normal((9,)))


def test_values_do_not_depend_on_threads_or_on_the_other_rows() -> None:
    keys, counters = [derive_seed(1, "replica", r) for r in range(3)], [0, 5, 2**40]
    previous = torch.get_num_threads()
    rows = {}
    try:
        for threads in (1, 2, 5):
            torch.set_num_threads(threads)
            out = torch.empty(3, 10_001)
            fill_normals(out, keys, counters)
            rows[threads] = out
            uniform = torch.empty(2, 9_999, dtype=torch.float64)
            fill_uniforms(uniform, keys[:2], counters[:2])
            rows[-threads] = uniform
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(rows[1], rows[2]) and torch.equal(rows[1], rows[5])
    assert torch.equal(rows[-1], rows[-2]) and torch.equal(rows[-1], rows[-5])
    for r in range(3):
        assert torch.equal(rows[1][r], Stream(keys[r], counters[r]).normal((10_001,)))


def test_kinds_draw_from_a_stream_like_from_a_generator() -> None:
    x = torch.randn(6, 5, dtype=torch.float64)
    noisy = noise.gaussian(x, 0.3, generator=Stream(9))
    assert torch.equal(noisy, Stream(9).normal(x.shape, torch.float64).mul_(0.3).add_(x))
    half = noise.gaussian(x.half(), 0.3, generator=Stream(9))
    assert half.dtype == torch.float16
    with pytest.raises(ValueError, match="Stream draws on the CPU"):
        noise.gaussian(torch.zeros(2, device="meta"), 0.1, generator=Stream(0))
    photons = torch.rand(4, 4)  # Poisson draws come from a torch generator seeded by the stream's next block
    shot = noise.shot(photons, 10.0, generator=Stream(2))
    assert torch.equal(shot, noise.shot(photons, 10.0, generator=Stream(2).spawn_generator()))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 9_000),
    scale=st.floats(0.0, 10.0, allow_nan=False),
    double=st.booleans(),
    counter=st.integers(0, 2**64 - 1),
)
def test_added_normals_are_the_three_passes_bit_for_bit(n: int, scale: float, double: bool, counter: int) -> None:
    dtype = torch.float64 if double else torch.float32
    x = torch.randn(n, dtype=dtype, generator=torch.Generator().manual_seed(n)) * 4
    stream, reference = Stream(11, counter), Stream(11, counter)
    fused = stream.add_normal(x, scale)
    assert torch.equal(fused, reference.normal((n,), dtype).mul_(scale).add_(x))
    assert stream.counter == reference.counter
    rows = torch.empty(2, n, dtype=dtype)  # the shift may be the output itself: in place
    rows.copy_(x.expand(2, n))
    fill_normals(rows, [11, 11], [counter, counter], shift=rows, scale=scale)
    assert torch.equal(rows[0], fused) and torch.equal(rows[1], fused)


def test_gaussian_noise_in_one_pass_keeps_values_and_gradients() -> None:
    x = torch.randn(3, 4097, generator=torch.Generator().manual_seed(0), requires_grad=True)
    noisy = noise.gaussian(x, 0.25, generator=Stream(3))
    assert torch.equal(noisy, Stream(3).normal(x.shape).mul_(0.25).add_(x.detach()))
    (noisy * torch.arange(4097.0)).sum().backward()
    assert torch.equal(x.grad, torch.arange(4097.0).expand(3, 4097))
    # where the kernel cannot run (here a transposed view) the same numbers come the long way
    view = x.detach().t()
    assert torch.equal(
        noise.gaussian(view, 0.25, generator=Stream(3)), Stream(3).normal(view.shape).mul_(0.25).add_(view)
    )


def test_choosing_torchs_generator() -> None:
    previous = set_noise_generator("philox")
    assert isinstance(noise_generator(4), Stream)
    set_noise_generator("torch")
    try:
        assert isinstance(noise_generator(4), torch.Generator)
        layer = GaussianNoise(0.1, seed=4)
        expected = noise.gaussian(torch.zeros(3), 0.1, generator=torch.Generator().manual_seed(4))
        assert torch.equal(layer(torch.zeros(3)), expected)
        philox_state = {"step": 1, "applied": 1, "seed": 4, "streams": {"cpu": {"key": 4, "counter": 1}}}
        with pytest.raises(ValueError, match="set_noise_generator"):
            GaussianNoise(0.1, seed=4).set_extra_state(philox_state)
    finally:
        set_noise_generator(previous)
    with pytest.raises(ValueError, match="family='mt'"):
        set_noise_generator("mt")  # type: ignore[arg-type]


def test_bad_keys_counters_and_buffers_are_refused() -> None:
    with pytest.raises(ValueError, match=r"key=-1 must be an int in \[0, 2\*\*64\)"):
        Stream(-1)
    with pytest.raises(ValueError, match="counter"):
        Stream(0, 2**64)
    with pytest.raises(TypeError, match="key=True"):
        Stream(True)
    with pytest.raises(ValueError, match="keys 'key' and 'counter'"):
        Stream(0).load_state_dict({"key": 1})
    with pytest.raises(ValueError, match="float32 or float64"):
        Stream(0).normal((2,), torch.int64)
    with pytest.raises(ValueError, match="one key and one counter per row"):
        fill_normals(torch.empty(2, 3), [0], [0, 0])
    with pytest.raises(ValueError, match="contiguous"):
        fill_normals(torch.empty(3, 2).t(), [0, 0], [0, 0])
    with pytest.raises(ValueError, match=r"shift must be a plain tensor of out's shape \(2, 3\)"):
        fill_normals(torch.empty(2, 3), [0, 0], [0, 0], shift=torch.empty(3, 2))
    with pytest.raises(ValueError, match="shift must be a contiguous CPU tensor of dtype torch.float32"):
        fill_normals(torch.empty(2, 3), [0, 0], [0, 0], shift=torch.empty(2, 3, dtype=torch.float64))


def test_a_traced_export_of_stream_noise_names_the_fix() -> None:
    # torch.export runs the model on fake tensors, which the kernel cannot fill: say so and how to export.
    previous = set_noise_generator("philox")
    try:
        model = torch.nn.Sequential(GaussianNoise(0.3, seed=1), torch.nn.Linear(3, 2)).train()
        with pytest.raises(TypeError, match=r"set_noise_generator\('torch'\)"):
            torch.export.export(model, (torch.zeros(4, 3),))
    finally:
        set_noise_generator(previous)
