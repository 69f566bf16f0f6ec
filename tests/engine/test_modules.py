"""Replicas of any nn.Module (vmap over functional_call) against a plain loop, and what is refused."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from noisereg import noise, schedules
from noisereg.engine import (
    FoldData,
    Group,
    ModuleSpec,
    OptimSpec,
    Replica,
    SiteNoise,
    initial_module,
    train_group,
)
from noisereg.engine.specs import site_kinds
from noisereg.seeding import derive_seed, make_generator, noise_generator
from noisereg.sites import LabelSmoothing


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.head = nn.Linear(3 * 4 * 4, 3)

    def forward(self, x):
        return self.head(torch.tanh(self.conv(x)).flatten(1))


class SmallGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(2, 5, batch_first=True)
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        return self.head(self.gru(x)[0][:, -1])


class WithBatchNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(4)

    def forward(self, x):
        return self.bn(x)[:, :3]


class WithDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        return F.dropout(self.lin(x), 0.5, training=True)


SITES = (
    SiteNoise("input", noise.Gaussian(std=0.1)),
    SiteNoise("targets", LabelSmoothing(0.1)),
    SiteNoise("gradients", noise.Gaussian(std=schedules.Annealed(eta=0.01))),
    SiteNoise("weights", noise.Gaussian(std=0.05)),
)


def _fold(shape) -> FoldData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(26, *shape, generator=g)
    y = torch.randint(0, 3, (26,), generator=g)
    return FoldData(x[:18], y[:18], x[18:], y[18:])


def _group(factory, replicas) -> Group:
    optimizer = OptimSpec("adamw", lr=0.01, weight_decay=0.01, clip_grad_norm=1.0)
    return Group(ModuleSpec(factory, 3), optimizer, "ce", 4, 7, SITES, tuple(replicas))


def _plain(group: Group, replica: Replica, fold: FoldData) -> dict[str, torch.Tensor]:
    model = initial_module(group.model, replica.seed).double()
    params = list(model.parameters())
    weights = [
        p for name, p in model.named_parameters() if name.rsplit(".", 1)[-1].startswith("weight")
    ]  # biases stay clean
    opt = torch.optim.AdamW(params, lr=0.01, weight_decay=0.01)
    gens = [noise_generator(derive_seed(replica.seed, "noise", *group.stream_keys(i))) for i in range(4)]
    kinds = site_kinds(group, replica)

    def noisy(i, t):
        return t if kinds[i].is_off(step) else kinds[i](t, step=step, generator=gens[i])

    batches = make_generator(derive_seed(replica.seed, "batches"))
    x_all, q_all, step = fold.x_train.double(), F.one_hot(fold.y_train, 3).double(), 0
    for _ in range(group.epochs):
        order = torch.randperm(18, generator=batches)
        for start in range(0, 18, 7):
            idx = order[start : start + 7]
            x = noisy(0, x_all[idx])
            q = noisy(1, q_all[idx])
            clean = torch.nn.utils.parameters_to_vector(weights).detach().clone()
            with torch.no_grad():
                torch.nn.utils.vector_to_parameters(noisy(3, clean.clone()), weights)
            loss = -(torch.log_softmax(model(x), 1) * q).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            with torch.no_grad():  # the gradient at the noisy weights updates the clean ones
                torch.nn.utils.vector_to_parameters(clean, weights)
            g = noisy(2, torch.nn.utils.parameters_to_vector([p.grad for p in params]))
            torch.nn.utils.vector_to_parameters(g, [p.grad for p in params])
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
    return {k: v.detach() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(("factory", "shape"), [(SmallCNN, (1, 6, 6)), (SmallGRU, (4, 2))])
def test_module_replicas_end_with_the_weights_of_a_plain_loop(factory, shape):
    replicas = [Replica(3), Replica(4, strengths=(0.3, 0.0, 0.05, 0.02))]
    group, fold = _group(factory, replicas), _fold(shape)
    result = train_group(group, [fold], dtype=torch.float64)
    for r, replica in enumerate(replicas):
        expected = _plain(group, replica, fold)
        for key, value in expected.items():
            torch.testing.assert_close(result.state_dict(r)[key], value, rtol=1e-10, atol=1e-12)
    assert set(result.curves) >= {"train_acc", "test_acc", "train_loss", "test_loss"}


def test_a_module_replica_alone_matches_it_in_a_group():
    replicas = [Replica(s, strengths=(0.1 * s, 0.05, 0.0, 0.02)) for s in range(4)]
    fold = _fold((1, 6, 6))
    together = train_group(_group(SmallCNN, replicas), [fold])
    alone = train_group(_group(SmallCNN, replicas[2:3]), [fold])
    for key, value in alone.weights.items():
        torch.testing.assert_close(together.weights[key][2], value[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("factory", "sites", "match"),
    [
        (WithBatchNorm, (), "buffers"),
        (WithDropout, (), "draws random numbers"),
        (SmallCNN, (SiteNoise("before", noise.Gaussian(0.1)),), "model.hidden"),
    ],
)
def test_unsupported_modules_and_sites_are_refused(factory, sites, match):
    with pytest.raises(ValueError, match=match):
        group = Group(ModuleSpec(factory, 3), OptimSpec(), "ce", 1, 4, sites, (Replica(0),))
        train_group(group, [_fold((4,))])


def test_module_init_leaves_the_global_generator_alone():
    state = torch.get_rng_state()
    a = initial_module(ModuleSpec(SmallCNN, 3), 5)
    assert torch.equal(torch.get_rng_state(), state)
    b = initial_module(ModuleSpec(SmallCNN, 3), 5)
    assert torch.equal(a.conv.weight, b.conv.weight)


def _plain_hidden(group: Group, replica: Replica, fold: FoldData, place: str) -> dict[str, torch.Tensor]:
    """A plain loop with the group's one hidden site as a forward hook on ``place`` (SGD, no clipping)."""
    model = initial_module(group.model, replica.seed).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = noise_generator(derive_seed(replica.seed, "noise", *group.stream_keys(0)))
    kind = site_kinds(group, replica)[0]
    step = 0

    def hook(module, args, out):
        first = out[0] if isinstance(out, tuple) else out
        noisy = kind(first, step=step, generator=gen)
        return (noisy, *out[1:]) if isinstance(out, tuple) else noisy

    model.get_submodule(place).register_forward_hook(hook)
    batches = make_generator(derive_seed(replica.seed, "batches"))
    for _ in range(group.epochs):
        order = torch.randperm(18, generator=batches)
        for start in range(0, 18, 7):
            idx = order[start : start + 7]
            opt.zero_grad()
            F.cross_entropy(model(fold.x_train.double()[idx]), fold.y_train[idx]).backward()
            opt.step()
            step += 1
    return {k: v.detach() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    ("factory", "shape", "place", "site"),
    [
        (SmallCNN, (1, 6, 6), "conv", "before"),
        (SmallGRU, (4, 2), "gru", "after"),
    ],
)
def test_hidden_noise_of_a_module_equals_a_hook_in_a_plain_loop(factory, shape, place, site):
    spec = ModuleSpec(factory, 3, hidden=((place, place),))
    sites = (SiteNoise(site, noise.Gaussian(std=schedules.Annealed(eta=0.04))),)
    replicas = (Replica(3), Replica(4, strengths=(0.0,)), Replica(5))
    group, fold = Group(spec, OptimSpec("sgd", lr=0.1), "ce", 2, 7, sites, replicas), _fold(shape)
    result = train_group(group, [fold], dtype=torch.float64)
    for r, replica in enumerate(replicas):
        for key, value in _plain_hidden(group, replica, fold, place).items():
            torch.testing.assert_close(result.state_dict(r)[key], value, rtol=1e-10, atol=1e-12, msg=key)
    clean = train_group(
        Group(spec, OptimSpec("sgd", lr=0.1), "ce", 2, 7, (), replicas[:1]), [fold], dtype=torch.float64
    )
    assert not torch.equal(clean.state_dict(0)["head.weight"], result.state_dict(0)["head.weight"])


def test_a_hidden_place_the_module_lacks_is_named():
    with pytest.raises(ValueError, match=r"hidden\[0\] names 'nope'"):
        group = Group(
            ModuleSpec(SmallCNN, 3, hidden=(("nope", "conv"),)),
            OptimSpec(),
            "ce",
            1,
            4,
            (SiteNoise("before", noise.Gaussian(0.1)),),
            (Replica(0),),
        )
        train_group(group, [_fold((1, 6, 6))])
