"""The per-replica path (engine/loop.py) equals a plain loop written with attach, in float64, for an MLP
with BatchNorm, a small ResNet-style CNN, a GRU and a tiny transformer encoder, with noise at every site."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from noisereg import LabelSmoothing, attach, noise
from noisereg.engine.loop import AttachSite, LoopTask, seeded_model, train_replica
from noisereg.seeding import derive_seed


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.bn, self.act, self.head = nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.bn(self.fc(x))))


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.act, self.conv2 = nn.Conv2d(2, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.conv2(self.act(self.conv1(x))))


class ResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem, self.blocks, self.head = nn.Conv2d(1, 2, 3, padding=1), nn.Sequential(Block()), nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(torch.relu(self.stem(x.reshape(-1, 1, 2, 3)))).mean(dim=(2, 3)))


class GRUNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn, self.head = nn.GRU(2, 5, batch_first=True), nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x.reshape(-1, 3, 2))
        return self.head(out[:, -1])


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(2, 4)
        layer = nn.TransformerEncoderLayer(4, nhead=2, dim_feedforward=8, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x.reshape(-1, 3, 2))).mean(dim=1))


CASES: dict[str, tuple[Callable[[], nn.Module], str, str]] = {  # model, activation site, weight site
    "mlp-batchnorm": (MLP, "act", "head.weight"),
    "resnet-cnn": (ResNet, "blocks.*.act", "blocks.0.conv2.weight"),
    "gru": (GRUNet, "rnn", "rnn.weight_hh_l0"),
    "transformer": (Encoder, "encoder.layers.0.linear1", "encoder.layers.0.linear2.weight"),
}

g = torch.Generator().manual_seed(0)
X = torch.randn(20, 6, generator=g, dtype=torch.float64)
Y = torch.arange(20) % 3
EPOCHS, BATCH = 2, 5


def _sites(act: str, weight: str) -> tuple[AttachSite, ...]:
    return (
        AttachSite(noise.Gaussian(std=0.1), "input"),
        AttachSite(noise.Gaussian(std=0.2), "activations", (("select", act), ("where", "before"))),
        AttachSite(noise.Gaussian(std=0.05), "weights", (("select", weight),)),
        AttachSite(noise.Gaussian(std=0.01), "gradients"),
        AttachSite(LabelSmoothing(epsilon=0.1, num_classes=3), "targets"),
    )


def _loop_task(factory: Callable[[], nn.Module], sites: tuple[AttachSite, ...], **changes: object) -> LoopTask:
    task = LoopTask(
        model=factory,
        sites=sites,
        train=(X, Y),
        test=(X, Y),
        loss=nn.CrossEntropyLoss(),
        optimizer=lambda p: torch.optim.Adam(p, lr=1e-2),
        epochs=EPOCHS,
        batch_size=BATCH,
        task="classification",
        seed=7,
        dtype=torch.float64,
    )
    return dataclasses.replace(task, **changes)


def _plain(
    factory: Callable[[], nn.Module],
    sites: tuple[AttachSite, ...],
    seed: int,
    batch: int = BATCH,
    clip: float | None = None,
) -> tuple[dict[str, torch.Tensor], list[float]]:
    """The reference, written out: seeded model, attach per site, Adam, shuffled batches (one batch that
    holds every sample in its stored order, nothing drawn), eval each epoch; ``clip``: the gradient
    clipped by hand before each step (sites without gradient noise, where the order does not matter)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "init"))
        model = factory().double()
        torch.manual_seed(derive_seed(seed, "train"))
        handles = [
            attach(model, s.noise, s.at, seed=derive_seed(seed, "site", j, s.at), **dict(s.options))
            for j, s in enumerate(sites)
            if s.at != "gradients"
        ]
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        handles += [
            attach(model, s.noise, s.at, optimizer=opt, seed=derive_seed(seed, "site", j, s.at))
            for j, s in enumerate(sites)
            if s.at == "gradients"
        ]
        targets = [h for h, s in zip(handles, [s for s in sites if s.at != "gradients"]) if s.at == "targets"]
        order = torch.Generator().manual_seed(derive_seed(seed, "batches"))
        losses = []
        for _ in range(EPOCHS):
            model.train()
            perm = torch.randperm(len(X), generator=order) if len(X) > batch else torch.arange(len(X))
            for start in range(0, len(X), batch):
                i = perm[start : start + batch]
                x, y = X[i], Y[i]
                for h in targets:
                    y = h(y)
                opt.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                opt.step()
            model.eval()
            with torch.no_grad():
                losses.append(float(nn.functional.cross_entropy(model(X), Y)))
        for h in handles:
            h.remove()
        return {k: v.clone() for k, v in model.state_dict().items()}, losses


# one batch that holds the training set is taken in its stored order (as in the built-in engine:
# reordering it changes only which sample meets which noise draw); with input noise, a shuffled batch
# would give other weights than the reference's
@pytest.mark.parametrize("batch", [BATCH, len(X) + 3], ids=["shuffled-batches", "one-batch-in-stored-order"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_replica_equals_the_plain_loop_with_attach(case: str, batch: int) -> None:
    factory, act, weight = CASES[case]
    sites = _sites(act, weight)
    seed = derive_seed(0, "seed", 3)
    task = _loop_task(factory, sites, batch_size=batch, seed=seed, threads=torch.get_num_threads())
    result = train_replica(task)
    state, losses = _plain(factory, sites, seed, batch)
    for name, value in state.items():  # float64; same thread count, so the same reductions
        torch.testing.assert_close(result.state[name], value, rtol=1e-12, atol=1e-12, msg=name)
    torch.testing.assert_close(
        result.curves["test_loss"], torch.tensor(losses, dtype=torch.float64).numpy(), rtol=1e-12, atol=1e-12
    )
    assert result.epochs == [1, 2]
    clean = train_replica(LoopTask(**{**task.__dict__, "sites": ()}))
    assert not torch.equal(clean.state[weight], result.state[weight])  # the noise did something


def test_a_replica_leaves_the_callers_random_state_and_threads_alone() -> None:
    factory, act, weight = CASES["mlp-batchnorm"]
    before, threads = torch.random.get_rng_state(), torch.get_num_threads()
    task = LoopTask(
        model=factory,
        sites=_sites(act, weight),
        train=(X, Y),
        test=(X, Y),
        loss=nn.CrossEntropyLoss(),
        optimizer=lambda p: torch.optim.Adam(p, lr=1e-2),
        epochs=1,
        batch_size=BATCH,
        task="classification",
        seed=1,
        dtype=torch.float64,
        threads=1,
    )
    train_replica(task)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.get_num_threads() == threads


def test_a_dataset_that_fits_one_batch_trains_as_the_same_tensors_do() -> None:
    # a Dataset's DataLoader keeps the stored order of one batch too, as the tensors' batches do
    factory, act, weight = CASES["mlp-batchnorm"]
    task = LoopTask(
        model=factory,
        sites=_sites(act, weight)[:2],
        train=(X, Y),
        test=(X, Y),
        loss=nn.CrossEntropyLoss(),
        optimizer=lambda p: torch.optim.Adam(p, lr=1e-2),
        epochs=EPOCHS,
        batch_size=len(X),
        task="classification",
        seed=derive_seed(0, "seed", 7),
        dtype=torch.float64,
    )
    tensors = train_replica(task)
    dataset = train_replica(dataclasses.replace(task, train=TensorDataset(X, Y)))
    for name, value in tensors.state.items():
        torch.testing.assert_close(dataset.state[name], value, rtol=0, atol=0, msg=name)


def test_clip_grad_norm_clips_before_every_update_as_a_loop_that_clips_by_hand() -> None:
    sites = _sites("act", "head.weight")[:3]  # input, activations, weights: no gradient noise
    clipped = train_replica(_loop_task(MLP, sites, clip_grad_norm=0.05))
    state, losses = _plain(MLP, sites, 7, clip=0.05)
    for name, value in state.items():
        torch.testing.assert_close(clipped.state[name], value, rtol=1e-12, atol=1e-12, msg=name)
    want = torch.tensor(losses, dtype=torch.float64).numpy()
    torch.testing.assert_close(clipped.curves["test_loss"], want, rtol=1e-12, atol=1e-12)
    free = train_replica(_loop_task(MLP, sites))
    assert not torch.allclose(free.state["head.weight"], clipped.state["head.weight"])  # the clip acted


def test_clip_grad_norm_clips_the_gradient_noise_with_the_gradient() -> None:
    # one step of SGD with lr 1 moves the weights by the clipped gradient: with noise far above the clip,
    # they move by the clip's norm exactly when the noise is clipped too, and by the noise's (~90) if not
    def net() -> nn.Module:
        return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))

    task = _loop_task(
        net,
        (AttachSite(noise.Gaussian(std=10.0), "gradients"),),
        optimizer=lambda p: torch.optim.SGD(p, lr=1.0),
        epochs=1,
        batch_size=len(X),
        clip_grad_norm=1e-3,
    )
    with seeded_model(task) as model:
        start = {k: v.clone() for k, v in model.state_dict().items()}
    moved = torch.stack([(v - start[k]).norm() for k, v in train_replica(task).state.items()]).norm()
    assert float(moved) == pytest.approx(1e-3, rel=1e-6)
