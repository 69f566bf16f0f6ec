from __future__ import annotations

import math

import pytest

from noisereg import schedules as S


def test_constant():
    assert [S.Constant(0.3)(t) for t in (0, 5, 10**6)] == [0.3, 0.3, 0.3]


def test_linear_and_cosine_closed_forms():
    lin = S.Linear(1.0, 0.0, steps=10, begin=5)
    assert [lin(t) for t in (0, 5, 10, 15, 100)] == [1.0, 1.0, 0.5, 0.0, 0.0]
    cos = S.Cosine(1.0, 0.0, steps=10)
    assert cos(0) == 1.0 and cos(10) == 0.0
    assert cos(5) == pytest.approx(0.5, abs=1e-15)
    assert cos(2) == pytest.approx((1 + math.cos(math.pi * 0.2)) / 2, abs=1e-15)


def test_exponential_decay():
    s = S.ExponentialDecay(2.0, 0.5, decay_steps=4)
    assert s(0) == 2.0 and s(4) == 1.0 and s(2) == pytest.approx(2.0 * 0.5**0.5)
    st = S.ExponentialDecay(2.0, 0.5, decay_steps=4, staircase=True)
    assert [st(t) for t in (0, 3, 4, 7, 8)] == [2.0, 2.0, 1.0, 1.0, 0.5]


@pytest.mark.parametrize("eta", [0.01, 0.3, 1.0])
def test_annealed_is_neelakantan_std(eta):
    s = S.Annealed(eta)
    for t in (0, 1, 10, 1000):
        assert s(t) ** 2 == pytest.approx(eta / (1 + t) ** 0.55, rel=1e-14)


def test_piecewise_interval_warmup():
    p = S.Piecewise((10, 20), (0.0, 0.1, 0.05))
    assert [p(t) for t in (0, 9, 10, 19, 20, 99)] == [0.0, 0.0, 0.1, 0.1, 0.05, 0.05]
    i = S.Interval(0.2, on=2, off=3)
    assert [i(t) for t in range(7)] == [0.2, 0.2, 0.0, 0.0, 0.0, 0.2, 0.2]
    i2 = S.Interval(0.2, on=1, off=1, offset=3, off_value=0.05)
    assert [i2(t) for t in range(6)] == [0.05, 0.05, 0.05, 0.2, 0.05, 0.2]
    w = S.WarmUp(0.4, delay=10, ramp=4)
    assert [w(t) for t in (0, 9, 10, 12, 14, 50)] == [0.0, 0.0, 0.0, 0.2, 0.4, 0.4]
    assert S.WarmUp(0.4, delay=3)(3) == 0.4


def test_composition():
    prod = S.Product((S.Interval(1.0, on=1, off=1), S.Constant(0.5)))
    assert [prod(t) for t in range(4)] == [0.5, 0.0, 0.5, 0.0]
    seq = S.Sequence((S.Constant(0.0), S.Linear(0.0, 1.0, steps=10)), boundaries=(5,))
    assert [seq(t) for t in (0, 4, 5, 10, 15)] == [0.0, 0.0, 0.0, 0.5, 1.0]


def test_per_epoch():
    s = S.per_epoch(S.Interval(0.1, on=2, off=1), steps_per_epoch=3)
    assert [s(t) for t in range(12)] == [0.1] * 6 + [0.0] * 3 + [0.1] * 3


def test_resolve_and_user_callables():
    assert S.resolve(0.3, 100) == 0.3
    assert S.resolve(S.Constant(0.2), 7) == 0.2
    assert S.resolve(lambda t: t / 10, 5) == 0.5


def test_clock():
    c = S.Clock()
    assert c.step == 0 and c.tick() == 1 and c.tick(3) == 4
    c.step = 10
    assert c.step == 10
    with pytest.raises(ValueError, match="step"):
        c.step = -1


@pytest.mark.parametrize(
    "make,name",
    [
        (lambda: S.Linear(0, 1, steps=0), "steps"),
        (lambda: S.Constant(math.nan), "value"),
        (lambda: S.ExponentialDecay(1.0, 1.5), "rate"),
        (lambda: S.Annealed(-1.0), "eta"),
        (lambda: S.Piecewise((5, 3), (0, 1, 2)), "boundaries"),
        (lambda: S.Piecewise((5,), (0,)), "values"),
        (lambda: S.Interval(0.1, on=0, off=1), "on"),
        (lambda: S.Sequence((S.Constant(1),), (3,)), "schedules"),
        (lambda: S.Product(()), "schedules"),
        (lambda: S.per_epoch(S.Constant(1), 0), "steps_per_epoch"),
    ],
)
def test_bad_arguments_fail_eagerly(make, name):
    with pytest.raises((ValueError, TypeError), match=name):
        make()


def test_negative_step_refused():
    with pytest.raises(ValueError, match="step"):
        S.Constant(1.0)(-1)
