"""Noise on the hidden state of a recurrent layer at every step (noisy RNN) against its formula."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import noisereg
from noisereg.noise import Gaussian, gaussian
from noisereg.seeding import derive_seed, noise_generator
from noisereg.sites.recurrent import run_unrolled

TOL = {"rtol": 1e-5, "atol": 1e-6}  # float32: the fused kernel sums in another order


def _layers() -> list[nn.RNNBase]:
    torch.manual_seed(0)
    return [
        nn.LSTM(3, 5, num_layers=2, batch_first=True),
        nn.GRU(3, 5, batch_first=True),
        nn.RNN(3, 5, nonlinearity="relu"),
        nn.RNN(3, 5, num_layers=2, bias=False),
    ]


@pytest.mark.parametrize("rnn", _layers(), ids=lambda m: repr(m))
def test_unrolled_equals_torchs_kernel(rnn: nn.RNNBase) -> None:
    """Without noise, the step-by-step formula is torch's own layer (an independent implementation)."""
    x = torch.randn(4, 6, 3)
    out, state = rnn(x)
    mine, mine_state = run_unrolled(rnn, x)
    torch.testing.assert_close(mine, out, **TOL)
    for a, b in zip(
        state if isinstance(rnn, nn.LSTM) else (state,),
        mine_state if isinstance(rnn, nn.LSTM) else (mine_state,),
        strict=True,
    ):
        torch.testing.assert_close(b, a, **TOL)
    hx = tuple(torch.randn_like(s) for s in state) if isinstance(rnn, nn.LSTM) else torch.randn_like(state)
    torch.testing.assert_close(run_unrolled(rnn, x, hx)[0], rnn(x, hx)[0], **TOL)


def test_noise_enters_the_recurrence_draw_for_draw() -> None:
    """h_t = cell(x_t, h̃_{t−1}) + σ·ε_t with ε re-drawn from the place's stream, derive_seed(seed, site, place)."""
    torch.manual_seed(0)
    rnn = nn.GRU(3, 4, batch_first=True)
    x = torch.randn(2, 5, 3)
    handle = noisereg.attach(rnn, Gaussian(std=0.3), at="activations", where="state", seed=11)
    rnn.train()
    out, h_n = rnn(x)
    handle.remove()
    generator = noise_generator(derive_seed(11, "activations", ":state"), x.device)
    h = torch.zeros(2, 4)
    expected = []
    with torch.no_grad():
        for t in range(5):
            _, h_clean = nn.GRU.forward(rnn, x[:, t : t + 1], h.unsqueeze(0))
            h = gaussian(h_clean[0], 0.3, generator=generator)
            expected.append(h)
    torch.testing.assert_close(out.detach(), torch.stack(expected, dim=1), **TOL)
    torch.testing.assert_close(h_n[0].detach(), expected[-1], **TOL)
    clean, _ = rnn(x)
    assert (clean - out).abs().max() > 0.05  # the noise changed later steps through the recurrence


def test_eval_and_zero_strength_are_the_clean_layer() -> None:
    torch.manual_seed(0)
    rnn = nn.LSTM(3, 4, batch_first=True)
    x = torch.randn(2, 5, 3)
    clean, _ = rnn(x)
    with noisereg.attach(rnn, Gaussian(std=0.5), at="activations", where="state", seed=0):
        rnn.eval()
        assert torch.equal(rnn(x)[0], clean)
    with noisereg.attach(rnn, Gaussian(std=0.0), at="activations", where="state", seed=0):
        rnn.train()
        assert torch.equal(rnn(x)[0], clean)
    rnn.train()
    assert torch.equal(rnn(x)[0], clean)  # removed


def test_refusals() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    with pytest.raises(ValueError, match="not an nn.RNN, nn.GRU or nn.LSTM"):
        noisereg.attach(model, Gaussian(std=0.1), at="activations", select=nn.ReLU, where="state")
    with pytest.raises(ValueError, match="bidirectional=True"):
        noisereg.attach(nn.LSTM(3, 3, bidirectional=True), Gaussian(std=0.1), at="activations", where="state")
