from __future__ import annotations

import pytest
import torch

from noisereg.seeding import check_seed, derive_seed, make_generator


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
