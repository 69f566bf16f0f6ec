"""A user's MLP on the stacked MLP kernels (engine/lowering.py) equals the per-replica path with attach,
replica by replica, in float64 — noise draws included — and every model, noise, optimizer or loss the
kernels do not cover goes to the vmap path instead.

Tolerance as in test_vectorized.py: the same float64 operations with batched kernels that may round
differently; 2¹⁶·eps ≈ 1.5·10⁻¹¹ is still 10⁸ below the effect of any noise draw here (σ ≥ 0.05).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch
from torch import nn

from noisereg import LabelFlip, LabelSmoothing, Mixup, annealed_gaussian, noise
from noisereg.engine.loop import AttachSite, LoopTask, train_replica
from noisereg.engine.lowered_mlp import LoweredMLP
from noisereg.engine.lowering import kernel_stacks, lowered_group, lowering_refusal
from noisereg.engine.vectorized_training import train_vectorized
from noisereg.schedules import Linear
from noisereg.study.bridge.user import make_loss

TOL = 2.0**16 * torch.finfo(torch.float64).eps
_gen = torch.Generator().manual_seed(0)
X = torch.randn(37, 3, generator=_gen, dtype=torch.float64)  # 37 = 4 batches of 8 and one of 5
X_TEST = torch.randn(21, 3, generator=_gen, dtype=torch.float64)
LABELS = {
    "bce": (X[:, 0] > 0).double(),
    "ce": (X[:, 0] > 0).long() + (X[:, 1] > 0.5).long(),
    "mse": X[:, :2].sum(1, keepdim=True) + X[:, 2:] ** 2,
}
LABELS_TEST = {
    "bce": (X_TEST[:, 0] > 0).double(),
    "ce": (X_TEST[:, 0] > 0).long() + (X_TEST[:, 1] > 0.5).long(),
    "mse": X_TEST[:, :2].sum(1, keepdim=True) + X_TEST[:, 2:] ** 2,
}
OUT = {"bce": 1, "ce": 3, "mse": 1}


def _mlp(loss: str, act: type[nn.Module] = nn.Tanh, depth: int = 2) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        layers: list[nn.Module] = [nn.Linear(3, 16)]
        for _ in range(depth - 1):
            layers += [act(), nn.Linear(16, 16)]
        layers += [act(), nn.Linear(16, OUT[loss])]
        if loss == "bce":
            layers.append(nn.Flatten(0))
        return nn.Sequential(*layers)

    return build


def _site(std: float, at: str = "activations", **options: object) -> AttachSite:
    return AttachSite(noise.Gaussian(std=std), at, tuple(options.items()))


ARMS = [
    (),
    (_site(0.3, "input"),),
    (_site(0.2, select="0"), _site(0.1, select="3", where="before")),  # before layer 0's act, before layer 1's
    (_site(0.2, select=nn.Tanh),),  # after every hidden activation
    (_site(0.1, select="2"), _site(0.05, select="2", stack=True)),  # two at one place: in the order attached
    (AttachSite(noise.MultiplicativeGaussian(std=0.2), "activations", (("select", nn.Tanh),)),),
    (  # beside the Gaussian input noise of another arm: each kind a stream of its own
        AttachSite(noise.GaussianDropoutNoise(rate=0.2), "input", ()),
        AttachSite(noise.GaussianDropoutNoise(rate=0.1), "activations", (("select", "0"),)),
    ),
]


def _tasks(
    loss: str = "bce",
    optimizer: Callable[..., torch.optim.Optimizer] = lambda p: torch.optim.Adam(p, lr=1e-2),
    arms: list[tuple[AttachSite, ...]] = ARMS,
    model: Callable[[], nn.Module] | None = None,
    loss_fn: object = None,
) -> list[LoopTask]:
    fn = loss_fn if loss_fn is not None else make_loss(loss, "classification")[1]
    return [
        LoopTask(
            model=model or _mlp(loss),
            sites=sites,
            train=(X, LABELS[loss]),
            test=(X_TEST, LABELS_TEST[loss]),
            loss=fn,  # type: ignore[arg-type]
            optimizer=optimizer,
            epochs=5,
            batch_size=8,
            task="regression" if loss == "mse" else "classification",
            seed=100 + i,
            eval_every=2,
            dtype=torch.float64,
        )
        for i, sites in enumerate(arms)
    ]


def _assert_equal_to_per_replica(tasks: list[LoopTask], tol: float = TOL) -> None:
    group = lowered_group(tasks)
    assert isinstance(group, LoweredMLP)
    group.close()
    lowered = train_vectorized(tasks)
    for task, got in zip(tasks, lowered, strict=True):
        want = train_replica(task)
        assert got.epochs == want.epochs == [2, 4, 5]
        assert got.final.keys() == want.final.keys()
        for name in want.final:
            assert got.final[name] == pytest.approx(want.final[name], abs=tol), name
            assert torch.allclose(torch.as_tensor(got.curves[name]), torch.as_tensor(want.curves[name]), atol=tol)
        assert got.state.keys() == want.state.keys()
        for name in want.state:
            assert torch.allclose(got.state[name], want.state[name], atol=tol, rtol=0), name


@pytest.mark.parametrize("loss", ["bce", "ce", "mse"])
def test_each_replica_equals_its_lone_training_noise_included(loss: str) -> None:
    arms = ARMS if loss == "bce" else ARMS[:2]  # the places are the same for every loss
    _assert_equal_to_per_replica(_tasks(loss, arms=arms))


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3),
        lambda p: torch.optim.SGD(p, lr=0.1),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda p: torch.optim.AdamW(p, lr=1e-2, betas=(0.8, 0.99), weight_decay=0.1),
        lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True),
        lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=0.1),
    ],
    ids=["sgd-momentum", "sgd", "sgd-nesterov", "adamw", "adam-decoupled", "adam-l2"],
)
def test_the_optimizers_update_rules_are_torchs(optimizer: Callable[..., torch.optim.Optimizer]) -> None:
    _assert_equal_to_per_replica(_tasks(optimizer=optimizer, arms=ARMS[:3]))


@pytest.mark.parametrize("act", [nn.ReLU, nn.GELU, nn.SELU, nn.SiLU, nn.LeakyReLU, nn.Softplus])
def test_other_activations_and_a_linear_model(act: type[nn.Module]) -> None:
    _assert_equal_to_per_replica(_tasks(model=_mlp("bce", act, depth=1), arms=[(), (_site(0.3, "input"),)]))


WEIGHT_ARMS = [
    (),
    (_site(0.05, "weights", select="0.weight"),),  # a hidden layer's weight (stored transposed)
    (_site(0.05, "weights", select=nn.Linear, biases=True),),  # every weight and bias, the output layer's too
    (_site(0.05, "weights", select="4.weight", resample="forward"),),  # drawn at each use: once a step here
    (  # two on one weight, in the order attached, beside noise on the activations
        AttachSite(noise.MultiplicativeGaussian(std=0.1), "weights", (("select", "2.weight"),)),
        _site(0.02, "weights", select="2.weight", stack=True),
        _site(0.2, select="0"),
    ),
]


@pytest.mark.parametrize("loss", ["bce", "ce"])
def test_weight_noise_drawn_once_a_step_equals_its_lone_training(loss: str) -> None:
    # W + δ in the forward and backward, the gradient at W + δ applied to the clean W (as attach's
    # parametrization), each replica's δ from its own stream in its parameter's shape
    _assert_equal_to_per_replica(_tasks(loss, arms=WEIGHT_ARMS))


SCHEDULED_ARMS = [
    (),
    (AttachSite(noise.Gaussian(std=Linear(0.3, 0.0, steps=10)), "input", ()),),  # off after step 10: no draws
    (AttachSite(noise.Gaussian(std=Linear(0.0, 0.2, steps=8)), "activations", (("select", "0"),)),),  # 0 at step 0
    (  # a weight's first of two noises counts one step before training (torch evaluated it registering the second)
        AttachSite(noise.MultiplicativeGaussian(std=Linear(0.2, 0.02, steps=12)), "weights", (("select", "2.weight"),)),
        AttachSite(
            noise.Gaussian(std=Linear(0.0, 0.05, steps=6, begin=3)),
            "weights",
            (("select", "2.weight"), ("stack", True)),
        ),
    ),
    (AttachSite(noise.GaussianDropoutNoise(rate=Linear(0.3, 0.1, steps=20)), "activations", (("select", nn.Tanh),)),),
]


def test_scheduled_strengths_equal_their_lone_training() -> None:
    # each schedule read at the step its layer counts: forwards for the input and activations, draws
    # for a weight's noise, from where the layer's count stands when training starts
    _assert_equal_to_per_replica(_tasks(arms=SCHEDULED_ARMS))


GRADIENT_ARMS = [
    (),
    (AttachSite(annealed_gaussian(0.01), "gradients", ()),),  # Neelakantan et al.'s schedule, the default
    (  # weight noise moves 0.weight under a parametrization: the optimizer's order starts with 0.bias
        _site(0.01, "gradients"),
        _site(0.05, "weights", select="0.weight"),
    ),
    (  # two on the gradients, drawn in the order attached, beside noise on the activations
        AttachSite(noise.MultiplicativeGaussian(std=0.2), "gradients", ()),
        _site(0.005, "gradients", stack=True),
        _site(0.2, select="0"),
    ),
    (_site(0.02, "gradients", select="2.*", scale_by_lr=True),),  # some parameters, g + lr·(noise(g) − g)
    (  # the same site without scaling (another stream of the kernels) and on other parameters
        _site(0.02, "gradients", select="*.bias"),
        _site(0.05, "weights", select="2.weight"),
    ),
]


@pytest.mark.parametrize(
    "optimizer",
    [lambda p: torch.optim.Adam(p, lr=1e-2), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)],
    ids=["adam", "sgd-momentum"],
)
def test_gradient_noise_equals_its_lone_training(optimizer: Callable[..., torch.optim.Optimizer]) -> None:
    # each replica's draw over its gradients flattened in its optimizer's order, before the update,
    # its schedule at the optimizer's step count (attach's step pre-hook)
    _assert_equal_to_per_replica(_tasks(optimizer=optimizer, arms=GRADIENT_ARMS))


WALK_ARMS = [
    (),
    (_site(0.02, "weights", select="0.weight", increments="independent"),),  # stored transposed
    (_site(0.02, "weights", select=nn.Linear, biases=True, increments="anticorrelated"),),  # Anti-PGD
    (  # a walk whose schedule ends at step 12 (then −ξ_{t−1}, then nothing), beside noise drawn once a step
        AttachSite(
            noise.Gaussian(std=Linear(0.03, 0.0, steps=12)),
            "weights",
            (("select", "2.weight"), ("increments", "anticorrelated")),
        ),
        _site(0.05, "weights", select="2.weight", stack=True),
    ),
]


def test_weight_noise_as_increments_equals_its_lone_training() -> None:
    # W ← W + ξ_t (independent) or W + ξ_t − ξ_{t−1} (anticorrelated) on the stored weights before each
    # step's forward, ξ from each replica's stream in its parameter's shape (attach's walk)
    _assert_equal_to_per_replica(_tasks(arms=WALK_ARMS))


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_target_noise_equals_its_lone_training(loss: str) -> None:
    # each replica's handles called on its batch's targets, as its loop calls them: soft targets from
    # label smoothing, labels flipped from the handle's own stream, noisy regression targets
    if loss == "ce":
        arms = [(), (AttachSite(LabelFlip(rate=0.3, num_classes=3), "targets"), _site(0.2, select="0"))]
    else:
        arms = [(), (AttachSite(noise.Gaussian(std=0.2), "targets"),)]
    _assert_equal_to_per_replica(_tasks(loss, arms=arms))


def test_label_smoothing_equals_its_lone_training_to_the_rounding_of_its_targets() -> None:
    # attach's soft targets are float32 (torch's default dtype), so a row sums to 1 only to float32
    # rounding; torch's cross-entropy gradient is softmax·Σq − q, the kernels' softmax − q: they
    # differ by that rounding (1e-9 here), not by anything of float64's
    arms = [(), (AttachSite(LabelSmoothing(epsilon=0.1, num_classes=3), "targets"),)]
    _assert_equal_to_per_replica(_tasks("ce", arms=arms), tol=64 * torch.finfo(torch.float32).eps)


OTHER_KINDS = [
    (),
    (AttachSite(noise.Uniform(half_width=0.3), "input", ()),),
    (  # clipped: no closed form, so the hidden layer is differentiated by autograd
        AttachSite(noise.Gaussian(std=0.2, clip=(-1.0, 1.0)), "activations", (("select", "0"),)),
        AttachSite(noise.Rademacher(std=0.1), "activations", (("select", nn.Tanh),)),
    ),
    (
        AttachSite(noise.Uniform(half_width=Linear(0.05, 0.0, steps=15)), "weights", (("select", "2.weight"),)),
        AttachSite(noise.Uniform(half_width=0.01), "gradients", ()),
    ),
    (
        AttachSite(
            noise.FilterGaussian(std=0.05), "weights", (("select", "0.weight"), ("increments", "anticorrelated"))
        ),
    ),
]


def test_other_noise_kinds_are_applied_by_their_own_functions_on_each_replica() -> None:
    _assert_equal_to_per_replica(_tasks(arms=OTHER_KINDS))


def _margin(out: torch.Tensor, y: torch.Tensor) -> float:
    return float(out.abs().mean())


def test_extra_metrics_are_measured_on_the_kernels_outputs() -> None:
    tasks = [dataclasses.replace(t, metrics=(("margin", _margin),)) for t in _tasks(arms=ARMS[:2])]
    _assert_equal_to_per_replica(tasks)
    assert "test_margin" in train_vectorized(tasks)[0].final


def _dropout_mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(3, 16),
        nn.Tanh(),
        nn.Dropout(0.2),
        nn.Linear(16, 16),
        nn.Tanh(),
        nn.Linear(16, 16),
        nn.Tanh(),
        nn.Dropout(0.5),
        nn.Linear(16, 1),
        nn.Flatten(0),
    )


DROPOUT_ARMS = [
    (),
    (_site(0.2, select="1"),),  # after the activation, before its dropout
    (_site(0.2, select="2", where="before"), _site(0.1, select="7")),  # before one dropout, after another
    (_site(0.2, select="3", where="before"), _site(0.3, "input")),  # after the dropout, before the next Linear
    (AttachSite(noise.MultiplicativeGaussian(std=0.2), "activations", (("select", nn.Tanh),)),),
]


class _Marked(nn.Module):
    """Dropout on the inputs and before an activation; identities as named places for noise."""

    def __init__(self) -> None:
        super().__init__()
        self.drop_in, self.fc1, self.mark = nn.Dropout(0.1), nn.Linear(3, 16), nn.Identity()
        self.drop_pre, self.fc2, self.end = nn.Dropout(0.3), nn.Linear(16, 1), nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mark(torch.tanh(self.drop_pre(self.fc1(self.drop_in(x)))))
        return self.end(self.fc2(h)).squeeze(-1)


MARKED_ARMS = [
    (),
    (_site(0.3, "input"), _site(0.1, select="drop_in")),  # before and after the input's dropout
    (_site(0.2, select="drop_pre", where="before"), _site(0.2, select="mark")),  # around the tanh
    (_site(0.1, select="mark", where="before"), _site(0.1, select="fc2", where="before")),
]


def test_dropout_anywhere_before_the_output_and_identities_as_places_for_noise() -> None:
    _assert_equal_to_per_replica(_tasks(model=_Marked, arms=MARKED_ARMS))


def test_the_models_own_dropout_draws_what_it_draws_trained_alone() -> None:
    # each replica's masks from torch's generator in its own state, in the order of its forward, between
    # the noise placed before and after the dropout module
    _assert_equal_to_per_replica(_tasks(model=_dropout_mlp, arms=DROPOUT_ARMS))


def test_torchs_own_loss_objects_are_recognised() -> None:
    tasks = _tasks("ce", arms=ARMS[:2], loss_fn=nn.CrossEntropyLoss())
    _assert_equal_to_per_replica(tasks)


def test_cross_entropy_with_label_smoothing_trains_on_smoothed_targets() -> None:
    # torch's CrossEntropyLoss(label_smoothing=ε) is the cross-entropy of (1 − ε)·q + ε/K, after
    # the targets' own noise (labels flipped here)
    arms = [*ARMS[:2], (AttachSite(LabelFlip(rate=0.3, num_classes=3), "targets"),)]
    _assert_equal_to_per_replica(_tasks("ce", arms=arms, loss_fn=nn.CrossEntropyLoss(label_smoothing=0.1)))


def test_a_replicas_result_does_not_depend_on_its_group() -> None:
    tasks = _tasks()
    alone = train_vectorized(tasks[2:3])[0]
    grouped = train_vectorized(tasks)[2]
    for name in alone.state:
        assert torch.allclose(alone.state[name], grouped.state[name], atol=TOL, rtol=0)


def test_the_group_takes_its_noise_off_and_leaves_the_data_alone() -> None:
    tasks = _tasks()
    before = X.clone()
    group = lowered_group(tasks)
    assert group is not None
    modules = group.replicas
    assert any(m._forward_hooks or m._forward_pre_hooks for module in modules for m in module.modules())
    group.train_step(X[:8].expand(len(tasks), 8, 3), LABELS["bce"][:8].expand(len(tasks), 8))
    group.close()
    assert not any(m._forward_hooks or m._forward_pre_hooks for module in modules for m in module.modules())
    assert torch.equal(X, before)


def test_outputs_have_the_modules_shape() -> None:
    for loss in ("bce", "ce", "mse"):
        tasks = _tasks(loss, arms=ARMS[:2])
        group = lowered_group(tasks)
        assert group is not None
        module = _mlp(loss)().double()
        assert group.outputs(X_TEST).shape == (2, *module(X_TEST).shape)
        group.close()


class _Custom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).squeeze(-1)


def _frozen() -> nn.Module:
    model = _mlp("bce")()
    model[0].weight.requires_grad_(False)
    return model


def _hooked() -> nn.Module:
    model = _mlp("bce")()
    model[1].register_forward_pre_hook(lambda module, args: (args[0] * 2,))
    return model


UNLOWERED = {
    "dropout": dict(model=lambda: nn.Sequential(nn.Linear(3, 16), nn.Dropout(0.1), nn.Linear(16, 1), nn.Flatten(0))),
    "no bias": dict(model=lambda: nn.Sequential(nn.Linear(3, 16, bias=False), nn.Tanh(), nn.Linear(16, 1))),
    "two activations": dict(
        model=lambda: nn.Sequential(
            nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1), nn.Flatten(0)
        )
    ),
    "leaky relu of another slope": dict(
        model=lambda: nn.Sequential(nn.Linear(3, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1), nn.Flatten(0))
    ),
    "frozen layer": dict(model=lambda: _frozen()),
    "hooked layer": dict(model=lambda: _hooked()),
    "output noise": dict(arms=[(_site(0.1, select="4"),)]),
    "noise of a tensor strength": dict(arms=[(AttachSite(noise.Gaussian(std=torch.tensor(0.1)), "input", ()),)]),
    "weight noise drawn when asked": dict(arms=[(_site(0.01, "weights", resample="manual"),)]),
    "dampening": dict(optimizer=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1)),
    "amsgrad": dict(optimizer=lambda p: torch.optim.Adam(p, amsgrad=True)),
    "rmsprop": dict(optimizer=lambda p: torch.optim.RMSprop(p)),
    "own loss": dict(loss_fn=lambda out, y: ((out - y) ** 2).mean()),
    "weighted loss": dict(loss_fn=nn.BCEWithLogitsLoss(pos_weight=torch.tensor(2.0))),
    "target noise on bce": dict(arms=[(AttachSite(LabelSmoothing(epsilon=0.1, num_classes=2), "targets"),)]),
    "mixup": dict(loss="ce", arms=[(AttachSite(Mixup(alpha=0.2, num_classes=3), "targets"),)]),
}


@pytest.mark.parametrize("case", sorted(UNLOWERED))
def test_what_the_kernels_do_not_cover_goes_to_the_vmap_path(case: str) -> None:
    tasks = _tasks(**UNLOWERED[case])  # type: ignore[arg-type]
    assert lowered_group(tasks) is None


def test_the_refusal_names_settings_read_without_building_the_model() -> None:
    (task,) = _tasks(arms=[()])
    assert lowering_refusal(task) is None
    assert "CPU" in str(lowering_refusal(dataclasses.replace(task, dtype=torch.float16)))
    held = _site(0.1, "weights", resample="manual")
    assert "weight noise" in str(lowering_refusal(dataclasses.replace(task, sites=(held,))))
    walk = _site(0.1, "weights", increments="anticorrelated")
    assert lowering_refusal(dataclasses.replace(task, sites=(walk,))) is None
    assert lowering_refusal(dataclasses.replace(task, sites=(_site(0.1, "gradients"),))) is None
    assert "embeddings" in str(lowering_refusal(dataclasses.replace(task, sites=(_site(0.1, "embeddings"),))))


def test_a_study_of_a_users_mlp_says_the_kernels_trained_it(tmp_path) -> None:
    from noisereg import study
    from noisereg.engine.lowering import LOWERED

    arms = {
        "none": [],
        "input": [study.site(noise.Gaussian(std=0.1), at="input")],
        "weights": [study.site(noise.Gaussian(std=0.01), at="weights")],
        "gradients": [study.site(noise.Gaussian(std=0.01), at="gradients")],
        "chosen gradients": [study.site(noise.Gaussian(std=0.01), at="gradients", select="0.weight")],
        "tensor std": [study.site(noise.Gaussian(std=torch.tensor(0.1)), at="input")],
        "anti-pgd": [study.site(noise.Gaussian(std=0.01), at="weights", increments="anticorrelated")],
    }
    result = study.run_model(
        model=_mlp("bce"),
        data={"train": (X.float(), LABELS["bce"].float()), "test": (X_TEST.float(), LABELS_TEST["bce"].float())},
        arms=arms,
        out=tmp_path / "run",
        loss="bce",
        epochs=2,
        batch_size=8,
        seeds=2,
        save_models=False,
    )
    why = {key: p["why"] for key, p in result.summary["data"]["paths"].items()}
    assert {why[arm] for arm in arms if arm != "tensor std"} == {LOWERED}
    assert "vmap" in why["tensor std"]  # a strength held in a tensor: vmap


IMAGES = X.reshape(37, 1, 3)  # samples of several dimensions: an image MLP flattens them first


def _image_mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1), nn.Flatten(0))


def test_an_image_mlp_flattening_its_samples_first_equals_its_lone_training() -> None:
    arms = [
        (),
        (_site(0.3, "input"),),  # on the samples before the Flatten
        (_site(0.2, select="0"),),  # after the Flatten: the same values in the same order
        (_site(0.1, select="1", where="before"), _site(0.2, select="2")),
    ]
    tasks = [
        dataclasses.replace(t, model=_image_mlp, train=(IMAGES, t.train[1]), test=(X_TEST.reshape(21, 1, 3), t.test[1]))  # type: ignore[index]
        for t in _tasks(arms=arms)
    ]
    _assert_equal_to_per_replica(tasks)


class _OwnMLP(nn.Module):
    """An MLP as users write one: layers as attributes, functional activations, a dropout module."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(3, 16), nn.Linear(16, 16), nn.Linear(16, 1)
        self.drop = nn.Dropout(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        x = self.drop(torch.tanh(self.fc1(x)))
        x = self.fc2(x).tanh()
        return self.out(x).squeeze(-1)


OWN_ARMS = [
    (),
    (_site(0.3, "input"),),
    (_site(0.2, select="fc1"), _site(0.1, select="drop", where="before")),  # before the tanh, before the dropout
    (_site(0.2, select="drop"), _site(0.1, select="out", where="before")),  # after the dropout, before out
    (_site(0.05, "weights", select="fc2.weight"), _site(0.01, "gradients")),
]


def test_an_mlp_of_the_users_own_class_equals_its_lone_training() -> None:
    # the forward traced with torch.fx: a chain of the kernels' layers, whatever the module's class
    images = [
        dataclasses.replace(t, model=_OwnMLP, train=(IMAGES, t.train[1]), test=(X_TEST.reshape(21, 1, 3), t.test[1]))  # type: ignore[index]
        for t in _tasks(arms=OWN_ARMS)
    ]
    _assert_equal_to_per_replica(images)
    inside = [*ARMS[:2], (_site(0.2, select="body.1"),)]
    _assert_equal_to_per_replica(_tasks(model=_Custom, arms=inside))  # an nn.Sequential inside


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(3, 3), nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)) + x).squeeze(-1)


class _Branching(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(3, 8), nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x))
        if h.sum() > 0:  # data-dependent: torch.fx cannot trace it
            h = h * 2
        return self.fc2(h).squeeze(-1)


class _EvalOnly(_Branching):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x))
        if not self.training:
            h = h * 0.5
        return self.fc2(h).squeeze(-1)


class _Unused(_Branching):
    def __init__(self) -> None:
        super().__init__()
        self.spare = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x))).squeeze(-1)


@pytest.mark.parametrize(
    ("model", "why"),
    [
        (_Residual, "calls <built-in function add>, which the kernels do not take"),
        (_Branching, "torch.fx cannot trace"),
        (_Unused, "parameters outside the Linear layers"),
        (_EvalOnly, "differs in training and evaluation"),
    ],
)
def test_an_own_class_that_is_not_a_chain_of_layers_stays_on_vmap(model: type[nn.Module], why: str) -> None:
    from noisereg.engine.mlp_layout import mlp_of

    assert why in str(mlp_of(model()))
    assert lowered_group(_tasks(model=model, arms=ARMS[:2])) is None


def test_samples_of_several_dimensions_without_a_flatten_stay_on_vmap() -> None:
    tasks = [dataclasses.replace(t, train=(IMAGES, t.train[1])) for t in _tasks(arms=ARMS[:2])]  # type: ignore[index]
    assert lowered_group(tasks) is None


def test_gradient_clipping_on_the_kernels_equals_its_lone_training() -> None:
    # the clip acts on each replica's own gradient, its gradient noise included
    arms = [(), ARMS[2], *GRADIENT_ARMS[1:3]]
    tasks = [dataclasses.replace(t, clip_grad_norm=0.05) for t in _tasks(arms=arms)]
    _assert_equal_to_per_replica(tasks)
    clipped, free = (
        train_vectorized(tasks[:2]),
        train_vectorized([dataclasses.replace(t, clip_grad_norm=None) for t in tasks[:2]]),
    )
    for a, b in zip(clipped, free, strict=True):
        assert not torch.allclose(a.state["0.weight"], b.state["0.weight"])  # the clip acted


def _wide() -> nn.Module:  # a 4096-wide hidden stack of 8 float64 samples: 256 KiB a replica
    return nn.Sequential(nn.Linear(3, 4096), nn.Tanh(), nn.Linear(4096, 1), nn.Flatten(0))


def test_replicas_train_in_cache_sized_stacks_each_result_its_own() -> None:
    arms = [ARMS[1]] * 5 + [ARMS[0]] * 4
    tasks = [dataclasses.replace(t, model=_wide, epochs=2, eval_every=1) for t in _tasks(arms=arms)]
    assert [list(s) for s in kernel_stacks(tasks)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    for task, got in zip(tasks, train_vectorized(tasks), strict=True):
        want = train_replica(task)
        for name in want.state:
            assert torch.allclose(got.state[name], want.state[name], atol=TOL, rtol=0), name
        assert got.final == pytest.approx(want.final, abs=TOL)
