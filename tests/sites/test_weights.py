import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.nn.utils import parametrize

from noisereg.noise import Gaussian, MultiplicativeGaussian, gaussian, multiplicative_gaussian
from noisereg.seeding import NoiseGenerator, derive_seed, noise_generator
from noisereg.sites import attach, describe
from noisereg.sites.selectors import clean_name

from .models import CellNet, SeqNet, assert_same, mlp, snapshot


def _stream(name: str) -> NoiseGenerator:
    return noise_generator(derive_seed(7, "weights", name))


X = torch.randn(6, 3, generator=torch.Generator().manual_seed(2))
Y = torch.randn(6, 2, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize(
    ("kind", "function"),
    [(Gaussian(std=0.2), gaussian), (MultiplicativeGaussian(std=0.3), multiplicative_gaussian)],
)
def test_gradient_is_taken_at_the_noisy_weights_and_applied_to_the_clean_ones(kind, function):
    model, reference = mlp(), mlp()
    attach(model, kind, at="weights", biases=True, seed=7)
    F.mse_loss(model(X), Y).backward()
    grads = {clean_name(n): p.grad for n, p in model.named_parameters()}
    noisy = {
        n: function(p.detach(), kind.strength, generator=_stream(n)).requires_grad_()
        for n, p in reference.named_parameters()
    }
    loss = F.mse_loss(functional_call(reference, noisy, (X,)), Y)
    expected = dict(zip(noisy, torch.autograd.grad(loss, list(noisy.values())), strict=True))
    assert grads.keys() == expected.keys()
    for name in grads:
        assert torch.allclose(grads[name], expected[name], rtol=1e-5, atol=1e-7), name
    # The clean weights are what the model stores.
    pairs = zip(model.state_dict().items(), reference.state_dict().items(), strict=True)
    for (name, value), (_, ref) in pairs:
        assert torch.equal(value, ref), name


def test_checkpoint_saved_mid_training_loads_into_a_clean_model():
    model = mlp()
    clean_keys = list(model.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)  # built before attaching: same Parameter objects
    handle = attach(model, Gaussian(0.1), at="weights", seed=0)
    for _ in range(3):
        opt.zero_grad()
        F.mse_loss(model(X), Y).backward()
        opt.step()
    state = model.state_dict()
    assert list(state) == clean_keys
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    fresh = mlp(seed=5)
    fresh.load_state_dict(torch.load(buffer), strict=True)
    with torch.no_grad():
        assert torch.equal(fresh(X), model.eval()(X))
    # A clean checkpoint also loads into the model while the noise is attached.
    other = mlp(seed=9)
    model.load_state_dict(other.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(model(X), other(X))
    handle.remove()
    assert list(model.state_dict()) == clean_keys


def test_optimizer_updates_the_clean_parameters():
    model = mlp()
    weight = model[0].weight
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    attach(model, Gaussian(0.1), at="weights", seed=0)
    before = weight.detach().clone()
    F.mse_loss(model(X), Y).backward()
    opt.step()
    assert model[0].parametrizations.weight.original is weight
    assert not torch.equal(weight.detach(), before)


def _uses(module: nn.Module, name: str) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    module.register_forward_pre_hook(lambda mod, args: seen.append(getattr(mod, name).detach().clone()))
    return seen


def test_step_resampling_holds_the_noise_for_a_whole_forward():
    model = CellNet()
    x = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(0))
    handle = attach(model, Gaussian(0.1), at="weights", select="cell.weight_hh", seed=0)
    seen = _uses(model.cell, "weight_hh")
    model(x)
    model(x)
    assert all(torch.equal(seen[0], w) for w in seen[1:4])
    assert not torch.equal(seen[0], seen[4]) and all(torch.equal(seen[4], w) for w in seen[5:8])
    assert handle.layers[0].applied == 2 and handle.layers[0].step == 2  # one draw per forward


def test_forward_and_manual_resampling():
    x = torch.randn(2, 3, 3, generator=torch.Generator().manual_seed(0))
    model = CellNet()
    attach(model, Gaussian(0.1), at="weights", select="cell.weight_hh", resample="forward", seed=0)
    seen = _uses(model.cell, "weight_hh")
    model(x)
    assert len({w.sum().item() for w in seen}) == len(seen) == 3
    model = CellNet()
    handle = attach(model, Gaussian(0.1), at="weights", select="cell.weight_hh", resample="manual", seed=0)
    seen = _uses(model.cell, "weight_hh")
    model(x)
    model(x)
    assert all(torch.equal(seen[0], w) for w in seen)
    handle.resample()
    model(x)
    assert not torch.equal(seen[0], seen[-1])


def test_lstm_weight_noise_reaches_every_time_step():
    model = SeqNet()
    ids = torch.tensor([[3, 4, 5, 6], [7, 1, 2, 9]])
    handle = attach(model, Gaussian(0.2), at="weights", select="lstm.weight_hh_l0", seed=0)
    seen = _uses(model.lstm, "weight_hh_l0")
    model(ids)  # one training forward of the model: one draw, held for the whole sequence batch
    assert handle.layers[0].applied == 1
    emb = model.emb(ids)
    out, _ = model.lstm(emb)
    assert handle.layers[0].applied == 1 and torch.equal(seen[0], seen[1])
    clean = SeqNet()
    expected, _ = functional_call(clean.lstm, {"weight_hh_l0": seen[0]}, (emb,))
    assert torch.allclose(out, expected, atol=1e-6)
    assert not torch.allclose(out, clean.lstm(emb)[0], atol=1e-3)


def test_defaults_skip_biases_and_refuse_bad_parameters():
    model = mlp()
    assert attach(model, Gaussian(0.1), at="weights").places == ["weight '0.weight'", "weight '2.weight'"]
    odd = nn.Linear(2, 2)
    odd.weight = nn.Parameter(torch.zeros(2, 2, dtype=torch.long), requires_grad=False)
    with pytest.raises(ValueError, match=r"weight noise on 'weight'.*dtype=torch.int64"):
        attach(odd, Gaussian(0.1), at="weights")
    tied = nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 5, bias=False))
    tied[1].weight = tied[0].weight
    with pytest.raises(ValueError, match=r"'0.weight'.*shared with \['0.weight', '1.weight'\]"):
        attach(tied, Gaussian(0.1), at="weights")


class Double(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return 2 * w


def test_coexists_with_the_users_own_parametrization():
    model = mlp()
    parametrize.register_parametrization(model[0], "weight", Double())
    before = snapshot(model)
    clean = model(X)
    handle = attach(model, Gaussian(0.1), at="weights", select="0.weight", seed=0)
    assert list(model.state_dict()) == [k for k, _ in before["state"]]
    assert not torch.equal(model(X), clean)
    assert [e.where for e in describe(model)] == ["weight '0.weight'"]
    handle.remove()
    assert_same(snapshot(model), before)
    assert isinstance(model[0].parametrizations.weight[0], Double)
