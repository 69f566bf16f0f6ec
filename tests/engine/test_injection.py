"""Per-replica noise on stacks: the fast path draws exactly what the core kinds draw."""

from __future__ import annotations

import pytest
import torch

from noisereg import noise, schedules
from noisereg.engine.injection import SiteStream
from noisereg.seeding import make_generator
from noisereg.streams import Stream

FAST = [
    lambda s: noise.Gaussian(std=s),
    lambda s: noise.MultiplicativeGaussian(std=s),
    lambda s: noise.GaussianDropoutNoise(rate=s),
]


def _stack(dtype):
    return torch.randn(4, 6, 5, generator=torch.Generator().manual_seed(0), dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("make", FAST, ids=["gaussian", "multiplicative", "dropout"])
@pytest.mark.parametrize("streams", [Stream, make_generator], ids=["philox", "torch"])
@pytest.mark.parametrize("strengths", [[0.3, 0.0, 0.1, 0.5], [0.3, 0.2, 0.1, 0.5]], ids=["one-off", "all-on"])
def test_fast_path_equals_the_kind_called_on_each_replica(make, dtype, streams, strengths):
    kinds = [make(s) for s in strengths]
    stream = SiteStream(kinds, [streams(10 + r) for r in range(4)], name="site")
    assert stream.closed_form
    x = _stack(dtype)
    refs = [streams(10 + r) for r in range(4)]
    for step in range(3):  # several steps: the generators advance as the kind's would
        expected = torch.stack([kind(x[r], generator=refs[r]) for r, kind in enumerate(kinds)])
        got, multiplier = stream.apply(x.clone(), step=step, epoch=0)
        assert torch.equal(got, expected)
        if multiplier is not None:
            assert torch.equal(x * multiplier, got)
        if strengths[1] == 0.0:
            assert torch.equal(got[1], x[1])  # zero strength: exactly the input


@pytest.mark.parametrize("streams", [Stream, make_generator], ids=["philox", "torch"])
def test_general_path_calls_the_kind_with_each_replicas_generator(streams):
    kinds = [noise.Uniform(half_width=s) for s in (0.2, 0.0, 0.4)]
    stream = SiteStream(kinds, [streams(r) for r in range(3)], name="site")
    assert not stream.closed_form
    x = _stack(torch.float32)[:3]
    got, multiplier = stream.apply(x, step=0, epoch=0)
    refs = [streams(r) for r in range(3)]
    expected = torch.stack([k(x[r], generator=refs[r]) for r, k in enumerate(kinds)])
    assert multiplier is None and torch.equal(got, expected) and torch.equal(got[1], x[1])


def test_schedules_are_read_at_the_sites_clock():
    kinds = [noise.Gaussian(std=schedules.Piecewise((2,), (0.0, 1.0)))] * 2
    by_epoch = SiteStream(kinds, [make_generator(0), make_generator(1)], name="site", clock="epoch")
    x = torch.zeros(2, 3, 4)
    assert torch.equal(by_epoch.apply(x.clone(), step=5, epoch=1)[0], x)
    assert not torch.equal(by_epoch.apply(x.clone(), step=0, epoch=2)[0], x)


@pytest.mark.parametrize(
    ("kind", "match"),
    # Numbers are refused when the config is made; a schedule's value only at the step it takes it.
    [(noise.Gaussian(std=lambda step: -0.1), "-0.1"), (noise.GaussianDropoutNoise(rate=lambda step: 1.0), "1.0")],
)
def test_bad_strengths_are_refused_on_the_fast_path(kind, match):
    stream = SiteStream([kind], [make_generator(0)], name="sites[3]")
    with pytest.raises(ValueError, match=match):
        stream.apply(torch.zeros(1, 2, 2), step=0, epoch=0)


def test_one_generator_and_kind_per_replica():
    with pytest.raises(ValueError, match="one kind and one generator"):
        SiteStream([noise.Gaussian(0.1)], [], name="site")
