"""The vectorized generic path (engine/vectorized.py) equals a plain loop written with attach, replica by
replica, in float64: an MLP with BatchNorm, a small ResNet-style CNN, a GRU and a tiny transformer
encoder, with noise at the input, activations, weights, gradients and targets.

Tolerance: a replica runs the same float64 operations as the plain loop, only with batched kernels that
may round differently (observed: at most a few units of 2⁻⁵² after the 8 steps). 2¹⁶·eps ≈ 1.5·10⁻¹¹
leaves room for that to grow and is still 10⁸ below the effect of any noise draw here (σ ≥ 0.01). The
models have no parameter whose gradient is zero in exact arithmetic (a bias right before BatchNorm, the
attention's key bias): Adam divides such a gradient's rounding noise by its own size, which no
float64 tolerance covers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch
from torch import nn

from noisereg import LabelSmoothing, noise
from noisereg.engine.loop import AttachSite, LoopTask, train_replica
from noisereg.engine.vectorized import VECTORIZED, probe, refusal, train_vectorized
from noisereg.seeding import derive_seed
from tests.engine.test_loop import BATCH, EPOCHS, GRUNet, ResNet, X, Y, _plain, _sites

TOL = 2.0**16 * torch.finfo(torch.float64).eps


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.bn, self.act, self.head = nn.Linear(6, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.bn(self.fc(x))))


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(2, 4)
        layer = nn.TransformerEncoderLayer(4, nhead=2, dim_feedforward=8, dropout=0.0, batch_first=True, bias=False)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x.reshape(-1, 3, 2))).mean(dim=1))


class Dropped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.drop = nn.Linear(6, 3), nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc(x))


CASES: dict[str, tuple[Callable[[], nn.Module], str, str]] = {  # model, activation site, weight site
    "mlp-batchnorm": (MLP, "act", "head.weight"),
    "resnet-cnn": (ResNet, "blocks.*.act", "blocks.0.conv2.weight"),
    "gru": (GRUNet, "rnn", "rnn.weight_hh_l0"),
    "transformer": (Encoder, "encoder.layers.0.linear1", "encoder.layers.0.linear2.weight"),
}

LOSS = nn.CrossEntropyLoss()


def _adam(params):  # one object for every task of a group
    return torch.optim.Adam(params, lr=1e-2)


def _task(factory: Callable[[], nn.Module], sites: tuple[AttachSite, ...], i: int, **changes) -> LoopTask:
    task = LoopTask(model=factory, sites=sites, train=(X, Y), test=(X, Y), loss=LOSS, optimizer=_adam,
                    epochs=EPOCHS, batch_size=BATCH, task="classification", seed=derive_seed(0, "seed", i),
                    dtype=torch.float64)
    return dataclasses.replace(task, **changes)


@pytest.mark.parametrize("case", list(CASES))
def test_a_vectorized_replica_equals_the_plain_loop_with_attach(case: str) -> None:
    factory, act, weight = CASES[case]
    every = _sites(act, weight)  # input, activations (before), weights, gradients, targets
    label = every[-1:]
    # Arms of one group: every site; targets only; input + activations; every site with another seed.
    arms = [every, label, every[:2] + label, every]
    tasks = [_task(factory, sites, i) for i, sites in enumerate(arms)]
    assert probe(tasks[0]) is None
    results = train_vectorized(tasks)
    for task, result in zip(tasks, results, strict=True):
        state, losses = _plain(factory, task.sites, task.seed)
        assert set(result.state) == set(state)
        for name, value in state.items():
            torch.testing.assert_close(result.state[name], value, rtol=TOL, atol=TOL, msg=name)
        torch.testing.assert_close(result.curves["test_loss"], torch.tensor(losses, dtype=torch.float64).numpy(), rtol=TOL, atol=TOL)
        assert result.epochs == [1, 2]
    # the noise did something: the first and last arm differ only in their seed, the second has less noise
    assert not torch.allclose(results[0].state[weight], results[3].state[weight])


def test_a_replicas_result_does_not_depend_on_its_group() -> None:
    factory, act, weight = CASES["mlp-batchnorm"]
    every = _sites(act, weight)
    alone = train_vectorized([_task(factory, every, 2)])[0]
    grouped = train_vectorized([_task(factory, every, i) for i in range(4)])[2]
    for name, value in alone.state.items():
        torch.testing.assert_close(grouped.state[name], value, rtol=TOL, atol=TOL, msg=name)


def test_vectorized_results_match_the_per_replica_path_without_noise_and_with_sgd() -> None:
    def sgd(params):
        return torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-3)

    sites = (AttachSite(noise.Gaussian(std=0.3), "input"),)
    tasks = [_task(MLP, s, i, optimizer=sgd, eval_every=2, epochs=3) for i, s in enumerate([(), sites])]
    for task, result in zip(tasks, train_vectorized(tasks), strict=True):
        expected = train_replica(task)
        assert result.epochs == expected.epochs == [2, 3]
        for name in expected.curves:
            torch.testing.assert_close(result.curves[name], expected.curves[name], rtol=TOL, atol=TOL, msg=name)


def test_refusal_and_probe_name_the_reason() -> None:
    assert refusal(_task(MLP, (), 0, step=lambda m, b, o: None)) == "step= is the user's own training step: each replica runs it"
    weights = (AttachSite(noise.Gaussian(std=0.1), "weights", (("resample", "forward"),)),)
    assert "resample='forward'" in refusal(_task(MLP, weights, 0))
    assert "Dataset" in refusal(_task(MLP, (), 0, train=torch.utils.data.TensorDataset(X, Y)))
    reason = probe(_task(Dropped, (), 0))
    assert reason is not None and reason.startswith("vmap trial failed: RuntimeError") and "random" in reason
    assert probe(_task(MLP, _sites("act", "head.weight"), 0)) is None
    assert VECTORIZED == "vectorized"


def test_the_callers_random_state_and_the_model_are_left_alone() -> None:
    before = torch.random.get_rng_state()
    train_vectorized([_task(MLP, _sites("act", "head.weight"), 0, epochs=1)])
    assert torch.equal(torch.random.get_rng_state(), before)


def test_label_smoothing_groups_apart_from_hard_labels() -> None:
    smoothing = (AttachSite(LabelSmoothing(epsilon=0.1, num_classes=3), "targets"),)
    with pytest.raises(ValueError, match="same target noise kinds"):
        train_vectorized([_task(MLP, smoothing, 0), _task(MLP, (), 1)])


def test_gradient_noise_goes_per_replica_where_torch_hides_the_step_hooks() -> None:
    from noisereg._compat import PRIVATE

    gradients = (AttachSite(noise.Gaussian(std=0.01), "gradients"),)
    PRIVATE["enabled"] = False
    try:
        reason = probe(_task(MLP, gradients, 0))
    finally:
        PRIVATE["enabled"] = True
    assert reason is not None and "step hooks" in reason
    assert probe(_task(MLP, gradients, 0)) is None
