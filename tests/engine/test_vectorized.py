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

from noisereg import LabelSmoothing, NEFTune, noise
from noisereg.engine import vectorized, vectorized_training
from noisereg.engine.loop import AttachSite, LoopTask, train_replica
from noisereg.engine.vectorized import VECTORIZED, refusal
from noisereg.engine.vectorized_training import probe, probe_arms, train_vectorized
from noisereg.seeding import derive_seed
from tests.engine.test_loop import BATCH, EPOCHS, GRUNet, ResNet, X, Y, _plain, _sites

TOL = 2.0**16 * torch.finfo(torch.float64).eps


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.bn, self.act, self.head = (
            nn.Linear(6, 8, bias=False),
            nn.BatchNorm1d(8),
            nn.ReLU(),
            nn.Linear(8, 3),
        )

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
    """Dropout modules of several kinds, one of them in place."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.drop, self.act = nn.Linear(6, 8), nn.Dropout(0.5), nn.ReLU()
        self.drop2, self.head, self.alpha = nn.Dropout1d(0.25), nn.Linear(8, 3), nn.AlphaDropout(0.2)
        self.inplace = nn.Dropout(0.3, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop2(self.act(self.drop(self.fc(x))).reshape(-1, 4, 2)).reshape(-1, 8)
        return self.alpha(self.head(self.inplace(h * 1.0)))


class FunctionalDropout(nn.Module):
    """Random calls in forward: functional dropout and a Bernoulli draw on a value of the replica."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.p = nn.Linear(6, 3), 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.dropout(self.fc(x), self.p, self.training)
        return h * torch.bernoulli(torch.full_like(h, 1.0 - self.p / 5)) if self.training else h


class NotDropped(FunctionalDropout):
    def __init__(self) -> None:
        super().__init__()
        self.p = 0.0


class OwnGenerator(nn.Module):
    """Draws from a generator of its own: the vectorized path cannot give each replica its stream."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.generator = nn.Linear(6, 3), torch.Generator().manual_seed(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        return h * torch.bernoulli(torch.full_like(h, 0.9), generator=self.generator)


class DroppedEncoder(nn.Module):
    """A transformer encoder with torch's default dropout: dropout modules and attention dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(2, 4)
        layer = nn.TransformerEncoderLayer(4, nhead=2, dim_feedforward=8, dropout=0.1, batch_first=True, bias=False)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x.reshape(-1, 3, 2))).mean(dim=1))


TOKENS = torch.randint(1, 7, (20, 5), generator=torch.Generator().manual_seed(1))
TOKENS[::3, 3:] = 0  # padding


class Tokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed, self.head = nn.Embedding(7, 4, padding_idx=0), nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x).mean(dim=1))


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
    task = LoopTask(
        model=factory,
        sites=sites,
        train=(X, Y),
        test=(X, Y),
        loss=LOSS,
        optimizer=_adam,
        epochs=EPOCHS,
        batch_size=BATCH,
        task="classification",
        seed=derive_seed(0, "seed", i),
        dtype=torch.float64,
    )
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
        torch.testing.assert_close(
            result.curves["test_loss"], torch.tensor(losses, dtype=torch.float64).numpy(), rtol=TOL, atol=TOL
        )
        assert result.epochs == [1, 2]
    # the noise did something: the first and last arm differ only in their seed, the second has less noise
    assert not torch.allclose(results[0].state[weight], results[3].state[weight])


def test_one_batch_of_the_whole_training_set_is_taken_as_the_per_replica_path_takes_it() -> None:
    factory, act, weight = CASES["mlp-batchnorm"]
    every = _sites(act, weight)
    tasks = [_task(factory, sites, i, batch_size=len(X)) for i, sites in enumerate([every, every[:2] + every[-1:]])]
    for task, result in zip(tasks, train_vectorized(tasks), strict=True):
        state, _ = _plain(factory, task.sites, task.seed, batch=len(X))
        for name, value in state.items():
            torch.testing.assert_close(result.state[name], value, rtol=TOL, atol=TOL, msg=name)


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
    assert (
        refusal(_task(MLP, (), 0, step=lambda m, b, o: None))
        == "step= is the user's own training step: each replica runs it"
    )
    weights = (AttachSite(noise.Gaussian(std=0.1), "weights", (("resample", "forward"),)),)
    assert "resample='forward'" in refusal(_task(MLP, weights, 0))
    assert "Dataset" in refusal(_task(MLP, (), 0, train=torch.utils.data.TensorDataset(X, Y)))
    reason = probe(_task(OwnGenerator, (), 0))
    assert (
        reason is not None
        and reason.startswith("the model draws random numbers inside forward")
        and "generator=" in reason
    )
    packed = (AttachSite(NEFTune(alpha=5.0), "embeddings", (("packed", True),)),)
    assert "packed=True" in refusal(_task(Tokens, packed, 0, train=(TOKENS, Y), test=(TOKENS, Y)))
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


def _counted(monkeypatch: pytest.MonkeyPatch, fake: Callable | None = None) -> list[int]:
    """Replace the module's probe by ``fake`` (default: the real one), recording each call's task count."""
    calls: list[int] = []
    real = fake or vectorized_training.probe

    def counted(tasks):
        calls.append(1 if isinstance(tasks, LoopTask) else len(tasks))
        return real(tasks)

    monkeypatch.setattr(vectorized_training, "probe", counted)
    return calls


def test_one_trial_step_serves_the_arms_of_a_group(monkeypatch: pytest.MonkeyPatch) -> None:
    smoothing = (AttachSite(LabelSmoothing(epsilon=0.1, num_classes=3), "targets"),)
    arms = [(), _sites("act", "head.weight")[:3], (AttachSite(noise.Gaussian(std=0.1), "input"),), smoothing]
    calls = _counted(monkeypatch)
    assert probe_arms([_task(MLP, s, 0) for s in arms]) == [None] * 4
    assert calls == [3, 1]  # hard labels together, label smoothing (another group) apart


def test_each_arm_keeps_its_own_reason_when_a_group_trial_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from noisereg._compat import PRIVATE

    gradients = (AttachSite(noise.Gaussian(std=0.01), "gradients"),)
    weights = (AttachSite(noise.Gaussian(std=0.1), "weights", (("resample", "forward"),)),)
    inputs = (AttachSite(noise.Gaussian(std=0.1), "input"),)
    tasks = [_task(MLP, s, 0) for s in [(), gradients, weights, inputs]]
    calls = _counted(monkeypatch)
    PRIVATE["enabled"] = False  # gradient noise cannot run vectorized: the group's trial fails
    try:
        reasons = probe_arms(tasks)
    finally:
        PRIVATE["enabled"] = True
    assert reasons[0] is None and reasons[3] is None
    assert (
        reasons[1] is not None and reasons[1].startswith("vmap trial failed: ValueError") and "step hooks" in reasons[1]
    )
    assert reasons[2] == refusal(tasks[2])  # refused by its settings: never in a trial
    assert calls == [3, 1, 1, 1, 2]  # together; each alone; the two that passed, together again


def test_arms_that_pass_alone_but_fail_together_are_told_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(tasks):  # any one arm passes, any two fail
        return None if isinstance(tasks, LoopTask) or len(tasks) == 1 else "vmap trial failed: RuntimeError: boom"

    calls = _counted(monkeypatch, fake)
    reasons = probe_arms([_task(MLP, s, 0) for s in [(), (AttachSite(noise.Gaussian(std=0.1), "input"),)]])
    assert reasons == ["with the other arms of its group: vmap trial failed: RuntimeError: boom"] * 2
    assert calls == [2, 1, 1]


def _equal_to_the_per_replica_path(tasks: list[LoopTask]) -> list:
    assert probe(tasks[0]) is None
    results = train_vectorized(tasks)
    for task, result in zip(tasks, results, strict=True):
        expected = train_replica(task)
        for name, value in expected.state.items():
            torch.testing.assert_close(result.state[name], value, rtol=TOL, atol=TOL, msg=name)
        for name in expected.curves:
            torch.testing.assert_close(result.curves[name], expected.curves[name], rtol=TOL, atol=TOL, msg=name)
    return results


def test_the_models_own_dropout_draws_each_replicas_masks_from_its_own_stream() -> None:
    # a replica equals the same model trained alone, its dropout drawing from its own seeded generator
    sites = (
        AttachSite(noise.Gaussian(std=0.1), "input"),
        AttachSite(noise.Gaussian(std=0.1), "activations", (("select", "act"),)),
    )
    tasks = [_task(Dropped, s, i) for i, s in enumerate([(), sites, (), sites])]
    results = _equal_to_the_per_replica_path(tasks)
    assert not torch.equal(results[0].state["fc.weight"], results[2].state["fc.weight"])  # masks differ by seed
    alone = train_vectorized([tasks[2]])[0]  # and do not depend on the group
    for name, value in alone.state.items():
        torch.testing.assert_close(results[2].state[name], value, rtol=TOL, atol=TOL, msg=name)


def test_embedding_noise_runs_vectorized_and_leaves_padding_alone() -> None:
    real = (AttachSite(NEFTune(alpha=5.0), "embeddings"),)
    padded = (AttachSite(NEFTune(alpha=5.0, length="padded"), "embeddings"),)
    tasks = [_task(Tokens, s, i, train=(TOKENS, Y), test=(TOKENS, Y)) for i, s in enumerate([real, (), padded, real])]
    assert refusal(tasks[0]) is None
    # the second replica has no noise: its padding row's gradient is zero too (torch's vmap rule keeps
    # only the first replica's, the group zeroes the others')
    results = _equal_to_the_per_replica_path(tasks)
    assert torch.equal(results[1].state["embed.weight"][0], torch.zeros(4, dtype=torch.float64))


@pytest.mark.parametrize(("factory", "without"), [(FunctionalDropout, NotDropped), (DroppedEncoder, Encoder)])
def test_random_calls_inside_forward_draw_each_replicas_own_stream(
    factory: Callable[[], nn.Module], without: Callable[[], nn.Module]
) -> None:
    # functional dropout, a Bernoulli draw, a transformer's attention dropout: each replica of a group
    # equals the same model trained alone through the per-replica loop
    sites = (AttachSite(noise.Gaussian(std=0.1), "input"),)
    tasks = [_task(factory, s, i) for i, s in enumerate([(), sites, (), sites])]
    results = _equal_to_the_per_replica_path(tasks)
    # the draws did something: the same replica without them (same initial weights) ends elsewhere
    plain = train_replica(dataclasses.replace(tasks[0], model=without))
    assert not torch.allclose(
        results[0].state["fc.weight" if factory is FunctionalDropout else "head.weight"],
        plain.state["fc.weight" if factory is FunctionalDropout else "head.weight"],
    )


def test_only_a_model_that_draws_pays_for_per_replica_draws() -> None:
    from noisereg.engine.model_randomness import ModelRandomness

    for factory, draws in ((MLP, False), (Encoder, False), (Dropped, True), (DroppedEncoder, True)):
        group = vectorized.VectorizedGroup([_task(factory, (), i) for i in range(2)])
        try:
            assert isinstance(group.randomness, ModelRandomness) is draws, factory.__name__
        finally:
            group.close()


def test_symnoise_runs_vectorized_as_each_replica_alone() -> None:
    from noisereg import SymNoise

    sym = (AttachSite(SymNoise(alpha=5.0), "embeddings"),)
    tasks = [_task(Tokens, s, i, train=(TOKENS, Y), test=(TOKENS, Y)) for i, s in enumerate([sym, (), sym])]
    assert refusal(tasks[0]) is None
    _equal_to_the_per_replica_path(tasks)


def test_noisytune_is_refused_by_the_vectorized_path_with_its_reason() -> None:
    from noisereg import NoisyTune

    task = _task(Tokens, (AttachSite(NoisyTune(lam=0.15), "weights"),), 0, train=(TOKENS, Y), test=(TOKENS, Y))
    assert "NoisyTune perturbs the model once" in (refusal(task) or "")


def _branching_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy, with a branch on the outputs' values: vmap cannot batch it."""
    loss = nn.functional.cross_entropy(out, y)
    return loss if bool(out.abs().max() >= 0) else -loss


def test_a_loss_that_does_not_batch_is_evaluated_replica_by_replica() -> None:
    tasks = [_task(MLP, (), i, loss=_branching_loss) for i in range(2)]
    results = train_vectorized(tasks)
    for task, result in zip(tasks, results, strict=True):
        alone = train_replica(task)
        for name, value in alone.final.items():
            assert result.final[name] == pytest.approx(value, abs=TOL), name


def test_gradient_clipping_clips_each_replicas_noisy_gradient_as_its_lone_training() -> None:
    factory, act, weight = CASES["mlp-batchnorm"]
    noisy = _sites(act, weight)[:-1]  # gradient noise included (clipped with the gradient), no target noise
    tasks = [_task(factory, sites, i, clip_grad_norm=0.05) for i, sites in enumerate([(), noisy, noisy])]
    clipped = _equal_to_the_per_replica_path(tasks)
    free = train_vectorized([dataclasses.replace(t, clip_grad_norm=None) for t in tasks])
    for a, b in zip(clipped, free, strict=True):
        assert not torch.allclose(a.state[weight], b.state[weight])  # every replica's clip acted
