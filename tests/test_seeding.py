from __future__ import annotations

import pytest
import torch

from noisereg.seeding import check_seed, derive_seed, make_generator, seeded_global_rng


def test_derive_is_deterministic_and_distinct():
    seeds = {derive_seed(0, "replica", r) for r in range(1000)}
    assert len(seeds) == 1000
    assert derive_seed(5, "input", 3) == derive_seed(5, "input", 3)
    assert derive_seed(5, "input") != derive_seed(5, "hidden")
    assert derive_seed(5, "input") != derive_seed(6, "input")
    assert derive_seed(1, 2) != derive_seed(2, 1)
    assert all(0 <= s < 2**63 for s in seeds)


def test_derive_leaves_global_state_alone():
    state = torch.get_rng_state()
    derive_seed(3, "x")
    assert torch.equal(state, torch.get_rng_state())


def test_make_generator():
    g = make_generator(7)
    assert torch.equal(torch.randn(3, generator=g), torch.randn(3, generator=torch.Generator().manual_seed(7)))
    assert make_generator(None) is None
    assert make_generator(g) is g


@pytest.mark.parametrize("bad,err", [(-1, ValueError), (1.5, TypeError), ("3", TypeError), (True, TypeError)])
def test_bad_seeds(bad, err):
    with pytest.raises(err, match="seed"):
        check_seed(bad)
    with pytest.raises(err):
        derive_seed(bad)


def test_bad_keys():
    with pytest.raises(TypeError, match="key"):
        derive_seed(0, 1.5)
    with pytest.raises(ValueError, match="key"):
        derive_seed(0, -2)


def test_seeded_global_rng_seeds_as_torch_does_and_restores_the_callers_state():
    torch.manual_seed(11)
    torch.rand(3)
    before = torch.get_rng_state()
    with seeded_global_rng(2**40 + 5) as reseed:
        inside = torch.get_rng_state()
        torch.rand(4)
        reseed(9)
        again = torch.get_rng_state()
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(2**40 + 5)
    assert torch.equal(inside, torch.get_rng_state())
    torch.manual_seed(9)
    assert torch.equal(again, torch.get_rng_state())


def test_seeded_global_rng_restores_after_an_exception():
    before = torch.get_rng_state()
    with pytest.raises(RuntimeError, match="boom"), seeded_global_rng(1):
        torch.rand(2)
        raise RuntimeError("boom")
    assert torch.equal(torch.get_rng_state(), before)


def test_seeded_global_rng_on_a_cpu_queues_nothing_for_accelerators(monkeypatch):
    # torch.manual_seed queues a seed, with the caller's stack, for each accelerator torch knows
    def refuse(seed):
        raise AssertionError("torch.manual_seed called for work on the CPU")

    monkeypatch.setattr(torch, "manual_seed", refuse)
    with seeded_global_rng(3, "cpu") as reseed:
        reseed(4)


@pytest.mark.parametrize(("bad", "err"), [(-1, ValueError), (2**64, ValueError), ("1", TypeError), (1.5, TypeError)])
def test_seeded_global_rng_refuses_bad_seeds(bad, err):
    with pytest.raises(err, match="seed"), seeded_global_rng(bad):
        pass
