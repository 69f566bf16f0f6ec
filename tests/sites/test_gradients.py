import pytest
import torch
from torch import nn

from noisereg.layers import noise_enabled
from noisereg.noise import Gaussian, gaussian
from noisereg.schedules import Annealed
from noisereg.seeding import derive_seed, noise_generator
from noisereg.sites import annealed_gaussian, attach, describe

from .helpers import six_se_var
from .models import mlp


def _wide() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(100, 100, bias=False)


def test_noise_variance_follows_the_annealed_schedule():
    model = _wide()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    eta, gamma = 0.3, 0.55
    handle = attach(model, annealed_gaussian(eta, gamma), at="gradients", optimizer=opt, seed=1)
    for t in range(61):
        model.weight.grad = torch.zeros_like(model.weight)
        opt.step()
        if t in (0, 5, 60):
            expected = eta / (1 + t) ** gamma
            error, bound = six_se_var(model.weight.grad, expected)
            assert error < bound, (t, error, bound)
    assert handle.layers[0].step == 61 and handle.layers[0].applied == 61
    assert annealed_gaussian(0.01) == Gaussian(std=Annealed(eta=0.01, gamma=0.55))


def test_noise_is_added_to_the_gradient_before_the_step():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    attach(model, Gaussian(0.2), at="gradients", optimizer=opt, seed=3)
    model(torch.ones(2, 3)).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    flat = torch.cat([g.reshape(-1) for g in grads])
    expected = gaussian(flat, 0.2, generator=noise_generator(derive_seed(3, "gradients", "SGD")))
    opt.step()
    assert torch.equal(torch.cat([p.grad.reshape(-1) for p in model.parameters()]), expected)


def test_scale_by_learning_rate_and_selection():
    model = mlp()
    groups = [{"params": [model[0].weight], "lr": 0.1}, {"params": [model[2].weight], "lr": 0.01}]
    opt = torch.optim.Adam(groups)
    attach(model, Gaussian(1.0), at="gradients", optimizer=opt, scale_by_lr=True, select="*.weight", seed=0)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    stream = noise_generator(derive_seed(0, "gradients", "Adam"))
    noise = gaussian(torch.zeros(16 * 3 + 2 * 16), 1.0, generator=stream)
    assert torch.allclose(model[0].weight.grad.reshape(-1), 0.1 * noise[:48])
    assert torch.allclose(model[2].weight.grad.reshape(-1), 0.01 * noise[48:])
    assert not bool(model[0].bias.grad.any())  # selected out


def test_one_draw_per_step_under_accumulation_and_switch_off():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    handle = attach(model, Gaussian(0.1), at="gradients", optimizer=opt, seed=0)
    for _ in range(3):
        model(torch.ones(2, 3)).sum().backward()
    opt.step()
    assert handle.layers[0].applied == 1
    model.zero_grad()
    model(torch.ones(2, 3)).sum().backward()
    clean = [p.grad.clone() for p in model.parameters()]
    with noise_enabled(model, False):
        opt.step()
        assert describe(model)[0].state == "forced off (noise_enabled)"
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), clean, strict=True))
    model.eval()  # an optimizer step is training by definition
    opt.step()
    assert handle.layers[0].applied == 2


def test_optimizer_must_train_the_model():
    model, other = mlp(), mlp()
    opt = torch.optim.SGD(other.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="none of the 4 selected parameters is in the optimizer"):
        attach(model, Gaussian(0.1), at="gradients", optimizer=opt)
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        attach(model, Gaussian(0.1), at="gradients", optimizer="adam")


def _closure_or_not(use_closure: bool) -> list[torch.Tensor]:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    handle = attach(model, annealed_gaussian(0.3), at="gradients", optimizer=opt, seed=3)
    x = torch.ones(2, 3)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = model(x).sum()
        loss.backward()
        return loss

    for _ in range(3):
        if use_closure:
            opt.step(closure)
        else:
            closure()
            opt.step()
    assert handle.layers[0].step == 3 and handle.layers[0].applied == 3
    return [p.detach().clone() for p in model.parameters()]


def test_a_closure_step_noises_the_fresh_gradients():
    # step(closure) computes the gradients inside the step (LBFGS, Lightning): the noise must land
    # on them, exactly as when backward runs before step().
    for a, b in zip(_closure_or_not(True), _closure_or_not(False), strict=True):
        assert torch.equal(a, b)


def test_gradient_noise_is_one_stream_on_every_rank(monkeypatch):
    # DDP averages gradients before the step: different noise per rank would make the replicas diverge
    dist = torch.distributed
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    seeds = set()
    for rank in range(2):
        monkeypatch.setattr(dist, "get_rank", lambda rank=rank: rank)
        model = mlp()
        handle = attach(
            model, Gaussian(0.1), at="gradients", optimizer=torch.optim.SGD(model.parameters(), lr=0.1), seed=5
        )
        seeds.add(handle.layers[0].seed)
        handle.remove()
    assert seeds == {derive_seed(5, "gradients", "SGD")}
