"""Noisy evaluation during training: identity noise, a plain reference, grouping invariance, errors."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from noisereg import noise
from noisereg.engine import FoldData, Group, MLPSpec, ModuleSpec, OptimSpec, Replica, build_module, train_group
from noisereg.seeding import derive_seed, noise_generator


def _fold() -> FoldData:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(70, 4, generator=g, dtype=torch.float64)
    y = (x[:, :3].argmax(1) + (x[:, 3] > 0.5).long()) % 3
    return FoldData(x[:40], y[:40], x[40:], y[40:])


def _group(spec, eval_noise, seeds=(0, 1, 2)) -> Group:
    replicas = tuple(Replica(s) for s in seeds)
    return Group(
        spec, OptimSpec("adam", lr=0.02), "ce", 6, 16, sites=(), replicas=replicas, eval_every=2, eval_noise=eval_noise
    )


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


SPECS = {"mlp": MLPSpec(4, (8,), 3), "module": ModuleSpec(Tiny, 3)}


def _unchanged(x, *, generator):
    return x.clone()


@pytest.mark.parametrize("kind", list(SPECS))
def test_identity_noise_gives_the_clean_test_metrics_exactly(kind) -> None:
    result = train_group(_group(SPECS[kind], _unchanged), [_fold()], dtype=torch.float64)
    for metric in ("loss", "acc"):
        assert torch.equal(
            torch.as_tensor(result.curves[f"noisy_test_{metric}"]), torch.as_tensor(result.curves[f"test_{metric}"])
        )
    plain = train_group(_group(SPECS[kind], None), [_fold()], dtype=torch.float64)
    assert "noisy_test_acc" not in plain.curves
    assert torch.equal(torch.as_tensor(plain.curves["test_loss"]), torch.as_tensor(result.curves["test_loss"]))


@pytest.mark.parametrize("kind", list(SPECS))
def test_noisy_metrics_match_a_plain_evaluation_of_the_returned_weights(kind) -> None:
    spec, fold, std = SPECS[kind], _fold(), 0.7
    result = train_group(_group(spec, noise.Gaussian(std=std)), [fold], dtype=torch.float64)
    for r, seed in enumerate((0, 1, 2)):
        model = (build_module(spec) if kind == "mlp" else Tiny()).double()
        model.load_state_dict(result.state_dict(r))
        generator = noise_generator(derive_seed(seed, "noisy_eval"))
        x_noisy = noise.gaussian(fold.x_test, std, generator=generator)
        with torch.no_grad():
            logits = model(x_noisy)
        assert result.final["noisy_test_loss"][r] == pytest.approx(
            F.cross_entropy(logits, fold.y_test).item(), rel=1e-9
        )
        assert result.final["noisy_test_acc"][r] == (logits.argmax(1) == fold.y_test).double().mean().item()
    assert (result.final["noisy_test_loss"] != result.final["test_loss"]).all()


def test_a_replicas_noisy_copy_does_not_depend_on_its_chunk() -> None:
    eval_noise = functools.partial(noise.uniform, half_width=0.5)
    group = _group(SPECS["mlp"], eval_noise, seeds=(4, 5, 6, 7))
    together = train_group(group, [_fold()], dtype=torch.float64)
    apart = train_group(group, [_fold()], dtype=torch.float64, chunk_size=1)
    alone = train_group(_group(SPECS["mlp"], eval_noise, seeds=(6,)), [_fold()], dtype=torch.float64)
    for name in ("noisy_test_loss", "noisy_test_acc"):
        assert (together.curves[name] == apart.curves[name]).all()
        assert (together.curves[name][2] == alone.curves[name][0]).all()


def test_bad_eval_noise_is_refused() -> None:
    with pytest.raises(TypeError, match="eval_noise=0.1 must be a callable"):
        _group(SPECS["mlp"], 0.1)
    with pytest.raises(ValueError, match="eval_noise must return a tensor shaped like its input"):
        train_group(_group(SPECS["mlp"], lambda x, generator: x[:, :2]), [_fold()])
