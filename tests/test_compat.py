"""Every private torch call has a public fallback that gives the same numbers (or, for samplers, the
same distribution): the fallbacks are forced here with ``PRIVATE["enabled"] = False``."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from noisereg import _compat
from noisereg._compat.torch_private import (
    adam_step_,
    beta_symmetric,
    functional_names,
    is_batched,
    sgd_step_,
    values_readable,
)
from noisereg.noise import Gaussian


@pytest.fixture
def public(monkeypatch):
    monkeypatch.setitem(_compat.PRIVATE, "enabled", False)


def _buffers(seed: int = 0, n: int = 257):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dtype=torch.float64, generator=g), [
        torch.randn(n, dtype=torch.float64, generator=g) for _ in range(6)
    ]


def _close(a, b):
    # The same update rule evaluated in another order: a few units of roundoff per step.
    torch.testing.assert_close(a, b, rtol=64 * torch.finfo(torch.float64).eps, atol=64 * torch.finfo(torch.float64).eps)


def _run_adam(decoupled: bool):
    params, grads = _buffers()
    m, v, step = torch.zeros_like(params), torch.zeros_like(params), torch.zeros((), dtype=torch.float32)
    for g in grads:
        adam_step_(params, g, m, v, step, lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1, decoupled=decoupled)
    return params, m, v, step


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_fallback_matches_the_fused_kernel(decoupled, monkeypatch):
    fused = _run_adam(decoupled)
    monkeypatch.setitem(_compat.PRIVATE, "enabled", False)
    public = _run_adam(decoupled)
    for a, b in zip(fused, public, strict=True):
        _close(a, b)
    assert float(public[3]) == len(_buffers()[1])


def _run_sgd(momentum: float):
    params, grads = _buffers(1)
    buffer = torch.empty_like(params) if momentum else None
    for i, g in enumerate(grads):
        sgd_step_(params, g, buffer, lr=0.05, momentum=momentum, weight_decay=0.01, first_step=i == 0)
    return params, buffer


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_fallback_matches_the_fused_kernel(momentum, monkeypatch):
    fused = _run_sgd(momentum)
    monkeypatch.setitem(_compat.PRIVATE, "enabled", False)
    public = _run_sgd(momentum)
    _close(fused[0], public[0])
    if momentum:
        _close(fused[1], public[1])


@pytest.mark.parametrize("private", [True, False])
@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_beta_draws_follow_beta_alpha_alpha(private, alpha, monkeypatch):
    monkeypatch.setitem(_compat.PRIVATE, "enabled", private)
    draws = beta_symmetric(alpha, 20_000, generator=torch.Generator().manual_seed(3), device="cpu")
    assert draws.dtype == torch.float64 and bool(((draws >= 0) & (draws <= 1)).all())
    # Seeded, so the outcome is fixed; a wrong sampler fails by hundreds of orders of magnitude.
    assert stats.kstest(draws.numpy(), stats.beta(alpha, alpha).cdf).pvalue > 1e-4


def test_beta_fallback_is_reproducible_from_the_generator(public):
    a = beta_symmetric(0.4, 64, generator=torch.Generator().manual_seed(5), device="cpu")
    b = beta_symmetric(0.4, 64, generator=torch.Generator().manual_seed(5), device="cpu")
    assert torch.equal(a, b)


@pytest.mark.parametrize("private", [True, False])
def test_values_are_readable_outside_transforms_only(private, monkeypatch):
    monkeypatch.setitem(_compat.PRIVATE, "enabled", private)
    x = torch.ones(3, 2)
    assert values_readable(x)
    seen = []
    torch.func.vmap(lambda row: seen.append(values_readable(row)) or row)(x)
    assert seen == [False]


def test_per_sample_strength_checks_run_under_vmap_with_the_fallback(public):
    x = torch.ones(4, 3)
    with pytest.raises(ValueError, match="std"):
        Gaussian(std=torch.tensor([0.1, -1.0, 0.1, 0.1]))(x, generator=torch.Generator().manual_seed(0))
    out = torch.func.vmap(lambda row: Gaussian(std=0.1)(row, generator=None), randomness="different")(x)
    assert out.shape == x.shape


def test_the_engine_trains_the_same_with_the_public_optimizers(monkeypatch):
    from noisereg.engine import train_group
    from tests.engine.test_group import FOLDS, REPLICAS, _group

    fused = train_group(_group(REPLICAS[:2]), FOLDS, dtype=torch.float64)
    monkeypatch.setitem(_compat.PRIVATE, "enabled", False)
    public = train_group(_group(REPLICAS[:2]), FOLDS, dtype=torch.float64)
    eps = torch.finfo(torch.float64).eps
    for key in fused.weights:
        torch.testing.assert_close(
            public.weights[key], fused.weights[key], rtol=0, atol=2**10 * eps * float(fused.weights[key].abs().max())
        )


def test_trial_ids_and_enqueued_cells_without_private_optuna(tmp_path, monkeypatch):
    import optuna

    from noisereg._compat.optuna_private import enqueued_cell, trial_id

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'x.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    study.enqueue_trial({"cell": "a"}, user_attrs={"cell": "a"})
    study.enqueue_trial({"cell": "b"})  # as stores made before the user attribute
    private = [(trial_id(storage, "s", t), enqueued_cell(t)) for t in study.get_trials()]
    monkeypatch.setitem(_compat.PRIVATE, "enabled", False)
    public = [(trial_id(storage, "s", t), enqueued_cell(t)) for t in study.get_trials()]
    assert [i for i, _ in public] == [i for i, _ in private] == [t._trial_id for t in study.get_trials()]
    assert [c for _, c in private] == ["a", "b"] and [c for _, c in public] == ["a", None]


def test_every_private_storage_call_of_optunas_cache_is_known():
    # The store retries every call of the storage interface while the server is down; Optuna's cache
    # calls some private methods of RDBStorage directly, and one missing from the list is not retried.
    import inspect
    import re

    import optuna.storages._cached_storage as cached

    from noisereg._compat.optuna_private import CACHED_BACKEND_CALLS

    called = set(re.findall(r"self\._backend\.(_\w+)\(", inspect.getsource(cached)))
    assert called == set(CACHED_BACKEND_CALLS)


@pytest.mark.parametrize("options", [{}, {"is_causal": True}, {"scale": 0.3}, {"mask": "bool"}, {"mask": "float"}])
def test_the_attention_vmap_rule_is_torchs_attention(options):
    from torch.func import vmap

    from noisereg._compat.torch_private import _attention, batch_attention_rule

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 2, 5, 4, generator=g, dtype=torch.float64) for _ in range(3))
    mask = {
        "bool": torch.rand(5, 5, generator=g) > 0.3,
        "float": torch.randn(5, 5, generator=g, dtype=torch.float64),
    }.get(options.pop("mask", ""))
    if mask is not None and mask.dtype == torch.bool:
        mask[:, 0] = True  # every query sees one key
    expected = torch.stack(
        [
            torch.nn.functional.scaled_dot_product_attention(q[r], k[r], v[r], attn_mask=mask, **options)
            for r in range(3)
        ]
    )
    out, lse = _attention(q, k, v, attn_mask=mask, **options)
    eps = torch.finfo(torch.float64).eps
    torch.testing.assert_close(out, expected, rtol=2**6 * eps, atol=2**6 * eps)
    assert batch_attention_rule()
    batched = vmap(
        lambda a, b, c: torch.nn.functional.scaled_dot_product_attention(a, b, c, attn_mask=mask, **options)
    )(q, k, v)
    torch.testing.assert_close(batched, expected, rtol=2**6 * eps, atol=2**6 * eps)
    with pytest.raises(RuntimeError, match="random"):
        _attention(q, k, v, dropout_p=0.1)


@pytest.mark.parametrize("private", [True, False])
def test_batched_values_are_told_from_plain_ones(private, monkeypatch):
    monkeypatch.setitem(_compat.PRIVATE, "enabled", private)
    seen = []
    torch.func.vmap(lambda row: seen.append(is_batched(row * 2)) or row)(torch.ones(3, 2))
    assert seen == [True]
    assert not is_batched(torch.ones(2))


@pytest.mark.parametrize("private", [True, False])
def test_functional_names_are_replaced_inside_only_with_the_private_path(private, monkeypatch):
    monkeypatch.setitem(_compat.PRIVATE, "enabled", private)
    original = torch.nn.functional.dropout

    def replacement(*args, **kwargs):
        return original(*args, **kwargs)

    with functional_names({"dropout": replacement, "no_such_name": replacement}):
        assert (torch.nn.functional.dropout is replacement) is private
        assert not hasattr(torch.nn.functional, "no_such_name")
    assert torch.nn.functional.dropout is original
