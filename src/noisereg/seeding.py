"""Independent random streams derived from one seed.

Every noise source in noisereg takes either a ``seed`` or a ``torch.Generator``. Where many streams
are needed (one per site, per replica of a study, per rank of a distributed run) they are derived from
one root seed with :func:`derive_seed`:

    stream seed = first 63 bits of SeedSequence(entropy=root, spawn_key=keys).generate_state(2, uint32)

``numpy.random.SeedSequence`` hashes the root entropy and the spawn key with a mixing function designed
so that streams for different keys are statistically independent, and it never touches numpy's or
torch's global state. String keys (site names) are turned into integers with BLAKE2b, so the stream of a
site depends on its name and not on the order in which sites were attached. A replica's stream depends
only on (root seed, its own keys), never on how many other replicas share its batch.

Which generator draws the noise is decided in one place, :func:`noise_generator`: on a CPU a
counter-based :class:`~noisereg.streams.Stream` (Philox4x32-10, key = the stream seed, counter from 0),
unless :func:`set_noise_generator` chose torch's generator; on other devices torch's generator of the
device. Draws that a Stream does not make itself (Poisson, Beta, permutations, categorical draws, and
the engine's batch order and weight initialization) use torch's generators.
"""

from __future__ import annotations

import contextlib
import hashlib
import numbers
from collections.abc import Callable, Iterator
from typing import Literal, overload

import numpy as np
import torch

from noisereg._checks import SEED_MAX, check_int
from noisereg.streams import Stream

__all__ = [
    "derive_seed",
    "rank_seed",
    "current_rank",
    "make_generator",
    "check_seed",
    "noise_generator",
    "set_noise_generator",
    "use_noise_generator",
    "noise_generator_family",
    "NoiseGenerator",
    "seeded_global_rng",
]

Family = Literal["philox", "torch"]
NoiseGenerator = Stream | torch.Generator
_FAMILIES = ("philox", "torch")
# The one setting: which generator draws noise on a CPU. Philox by default: about twice as fast as
# torch's for float32 (benchmarks/study_speed.py --generator-only), and a replica's draws are a pure
# function of its key and position, whatever the group, the thread count or the resumption point.
_family: list[str] = ["philox"]

_SEED_BITS = 63


def _key_to_int(key: int | str) -> int:
    if isinstance(key, bool) or not isinstance(key, (numbers.Integral, str)):
        raise TypeError(f"stream key {key!r} must be an int >= 0 or a str, got {type(key).__name__}")
    if isinstance(key, str):
        return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    if key < 0:
        raise ValueError(f"stream key {key!r} must be >= 0")
    return int(key)


def check_seed(seed: object, *, name: str = "seed") -> int:
    """``seed`` as an int in [0, 2**64 − 1].

    Args:
        seed: the value to check.
        name: the argument's name in the error message.

    Returns:
        ``int(seed)``.

    Raises:
        TypeError: ``seed`` is not an int (a bool is not). ValueError: it is out of range.

    >>> check_seed(7)
    7
    >>> check_seed(-1, name="replica_seed")
    Traceback (most recent call last):
    ...
    ValueError: replica_seed=-1 must be an int >= 0 and <= 18446744073709551615
    """
    return check_int(seed, name, low=0, high=SEED_MAX)


def derive_seed(seed: int, *keys: int | str) -> int:
    """Seed of the independent stream named by ``keys`` under the root ``seed``.

    Args:
        seed: the root seed, an int in [0, 2**64 − 1].
        keys: ints >= 0 or strings (hashed with BLAKE2b) naming the stream.

    Returns:
        The stream's seed, an int in [0, 2**63).

    Raises:
        TypeError: the seed or a key is neither an int nor (for keys) a str. ValueError: one is negative
            or the seed is out of range.

    >>> derive_seed(0, "input") == derive_seed(0, "input")
    True
    >>> derive_seed(0, "replica", 1) != derive_seed(0, "replica", 2)
    True

    With no keys the root seed is still mixed, so ``derive_seed(s)`` differs from ``s``.
    """
    root = check_seed(seed)
    spawn_key = tuple(_key_to_int(k) for k in keys)
    state = np.random.SeedSequence(entropy=root, spawn_key=spawn_key).generate_state(2, np.uint32)
    return (int(state[0]) | (int(state[1]) << 32)) & ((1 << _SEED_BITS) - 1)


def rank_seed(seed: int, *keys: int | str, rank: int) -> int:
    """The stream of ``keys`` on process ``rank`` of a distributed run: ``derive_seed(seed, *keys, "rank", rank)``.

    The same seed on every rank would give every rank the same noise, which averaging the ranks'
    gradients cannot remove; the rank as the last key makes the ranks' streams independent.

    Args:
        seed, keys: as :func:`derive_seed`.
        rank: the process's rank, an int >= 0.

    Returns:
        The stream's seed on that rank.

    Raises:
        TypeError, ValueError: as :func:`derive_seed`, and for a ``rank`` that is not an int >= 0.

    >>> rank_seed(0, "input", rank=1) == derive_seed(0, "input", "rank", 1)
    True
    """
    return derive_seed(seed, *keys, "rank", check_seed(rank, name="rank"))


def current_rank() -> int:
    """This process's rank in the default ``torch.distributed`` process group, or 0 when none is initialized.

    Returns:
        The rank, an int >= 0.

    Raises:
        Nothing of its own: with no initialized process group it returns 0 rather than raising as
        ``torch.distributed.get_rank()`` does.

    >>> current_rank()  # no process group here
    0
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def set_noise_generator(family: Family) -> Family:
    """Choose what draws noisereg's seeded noise on a CPU; returns the previous choice.

    ``"philox"`` (the default): :class:`noisereg.streams.Stream`, counter-based, resumable at any
    position, independent of the thread count and of the other replicas by construction, and about
    twice as fast as torch's generator for float32 (``benchmarks/study_speed.py --generator-only``).
    ``"torch"``: torch's CPU generator (Mersenne Twister), torch's own streams (and the only choice a
    ``torch.export`` trace of a noisy training graph can hold). On other devices noise always comes
    from torch's generator of that device. A study file chooses with its ``noise_generator`` key. Applies to generators made
    after the call (layers made earlier keep theirs until ``reseed``); a checkpoint of one family does
    not load into the other.

    Args:
        family: ``"torch"`` or ``"philox"``.

    Returns:
        The family chosen before the call (to restore it).

    Raises:
        ValueError: any other ``family``.

    >>> previous = set_noise_generator("torch")
    >>> set_noise_generator(previous)
    'torch'
    """
    if family not in _FAMILIES:
        raise ValueError(f"{family=} must be one of {_FAMILIES}")
    previous = _family[0]
    _family[0] = family
    return previous  # type: ignore[return-value]


def noise_generator_family() -> Family:
    """What draws noisereg's seeded noise on a CPU now: ``"philox"`` or ``"torch"``."""
    return _family[0]  # type: ignore[return-value]


@contextlib.contextmanager
def use_noise_generator(family: Family) -> Iterator[None]:
    """:func:`set_noise_generator` for the ``with`` block, restored after it (also on error). One
    setting per process: threads inside the block share it; processes forked inside it inherit it.

    >>> with use_noise_generator("torch"):
    ...     type(noise_generator(3)).__name__
    'Generator'
    """
    previous = set_noise_generator(family)
    try:
        yield
    finally:
        set_noise_generator(previous)


@overload
def noise_generator(seed: None, device: torch.device | str = "cpu") -> None: ...
@overload
def noise_generator(seed: int | NoiseGenerator, device: torch.device | str = "cpu") -> NoiseGenerator: ...
def noise_generator(seed: int | NoiseGenerator | None, device: torch.device | str = "cpu") -> NoiseGenerator | None:
    """The generator that draws noise from ``seed`` on ``device``: the place that decides which.

    A :class:`~noisereg.streams.Stream` keyed by ``seed`` on a CPU (unless ``set_noise_generator("torch")``
    chose torch's), else ``make_generator(seed, device)``. A given generator or stream is returned as is; ``None``
    (torch's global generator) too.

    Args:
        seed: an int in [0, 2**64 − 1], a generator or stream, or None.
        device: the device the noise is drawn on (default CPU).

    Returns:
        The generator or stream; None for ``seed=None``.

    Raises:
        TypeError, ValueError: ``seed`` is not a valid seed (:func:`check_seed`).

    >>> noise_generator(3)
    Stream(key=3, counter=0)
    """
    if seed is None or isinstance(seed, (torch.Generator, Stream)):
        return seed
    if torch.device(device).type == "cpu" and _family[0] == "philox":
        return Stream(check_seed(seed))
    return make_generator(seed, device)


@overload
def make_generator(seed: None, device: torch.device | str = "cpu") -> None: ...
@overload
def make_generator(seed: int | torch.Generator, device: torch.device | str = "cpu") -> torch.Generator: ...
def make_generator(seed: int | torch.Generator | None, device: torch.device | str = "cpu") -> torch.Generator | None:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``; a given generator is returned as is.

    ``None`` means "use torch's global generator" and is returned unchanged.

    Args:
        seed: an int in [0, 2**64 − 1], a ``torch.Generator`` or None.
        device: the generator's device (default CPU).

    Returns:
        The seeded generator, the given one, or None.

    Raises:
        TypeError, ValueError: ``seed`` is not a valid seed (:func:`check_seed`).

    >>> make_generator(3).initial_seed()
    3
    """
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    generator = torch.Generator(device=device)
    generator.manual_seed(check_seed(seed))
    return generator


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: torch.device | str = "cpu") -> Iterator[Callable[[int], object]]:
    """Inside: torch's global generators seeded ``seed`` as ``torch.manual_seed(seed)`` seeds them, for
    work on ``device``; on leaving, the states they had before (the CPU's, and ``device``'s own).
    Yields a function that seeds them again (a model built under one seed, trained under another).

    On a CPU only the CPU's generator is seeded: ``torch.manual_seed`` also queues a seed for each
    accelerator torch knows and has not started, recording the caller's stack each time, 0.3 ms a
    call (a study sets up each of its replicas this way). Another device gets ``torch.manual_seed``.

    >>> with seeded_global_rng(3):
    ...     a = torch.rand(2)
    >>> with seeded_global_rng(3) as reseed:
    ...     _ = torch.rand(5)
    ...     _ = reseed(3)
    ...     torch.equal(torch.rand(2), a)
    True
    """
    check_seed(seed)
    where = torch.device(device)
    if where.type == "cpu":
        forked = torch.random.fork_rng(devices=[])
        reseed: Callable[[int], object] = torch.default_generator.manual_seed
    else:
        module = torch.get_device_module(where.type)
        index = where.index if where.index is not None else getattr(module, "current_device", lambda: 0)()
        forked = torch.random.fork_rng(devices=[index], device_type=where.type)
        reseed = torch.manual_seed
    with forked:
        reseed(seed)
        yield reseed
