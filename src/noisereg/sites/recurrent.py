"""Noise on the hidden state of a recurrent layer at every time step, inside the recurrence (noisy RNN).

Lim et al. 2021 ("Noisy recurrent neural networks", NeurIPS) read an RNN as a discretized stochastic
differential equation and inject noise into its hidden state at every step during training:

    h_t = noise(cell(x_t, h_{t−1})),   e.g. h_t = cell(x_t, h_{t−1}) + σ·ε_t,  ε_t ~ N(0, I)

so the noisy h_t is what step t+1 reads (noise on the output sequence after the layer, which
``where="after"`` gives, never reaches the recurrence). Their analysis shows this noise regularizes
the RNN towards stability and robustness to input perturbations. For an LSTM the noise goes on h_t,
not on the cell state c_t; in a stack of layers on every layer's h_t.

torch's recurrent layers run their steps inside one fused kernel, so a recurrent layer with state
noise is unrolled: the step is the layer's own formula on its own parameters (torch's documented
equations for ``nn.RNN``, ``nn.GRU``, ``nn.LSTM``), run in Python in training mode while the noise is
active; otherwise (eval mode, zero strength, noise switched off) the layer's own forward runs as is,
so eval is exactly the clean layer. Unrolled layers must be unidirectional, without ``proj_size`` or
inter-layer dropout, and take a padded tensor (not a ``PackedSequence``). The fused forward still runs
first (a forward hook replaces its output), so a noisy training forward costs it plus the unrolled
one. As at the weights, the noise layer's ``applied`` counter and schedule step count draws: one per
time step and layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from noisereg.layers import NoiseLayer, registry
from noisereg.noise.base import NoiseKind
from noisereg.sites.placement import Placement, run_beside, stream_seed
from noisereg.sites.selectors import Selector, select_modules

__all__ = ["check_unrollable", "place_state", "run_unrolled"]

State = Callable[[Tensor, int], Tensor]
"""What happens to the hidden state h_t of layer ``l`` after each step: ``state(h_t, l) -> h̃_t``."""


def check_unrollable(rnn: nn.Module, name: str) -> nn.RNNBase:
    """``rnn`` as a recurrent layer this module can unroll; a ValueError naming ``name`` otherwise."""
    if not isinstance(rnn, (nn.RNN, nn.GRU, nn.LSTM)):
        raise ValueError(
            f"where='state' puts noise inside a recurrence: {name!r} is a {type(rnn).__name__}, "
            "not an nn.RNN, nn.GRU or nn.LSTM (use where='after' for noise on a layer's output)"
        )
    problems = []
    if rnn.bidirectional:
        problems.append("bidirectional=True")
    if getattr(rnn, "proj_size", 0):
        problems.append(f"proj_size={rnn.proj_size}")
    if rnn.dropout and rnn.num_layers > 1:
        problems.append(f"dropout={rnn.dropout}")
    if problems:
        raise ValueError(f"where='state' unrolls {name!r} step by step; it cannot with {', '.join(problems)}")
    return rnn


def _cell(rnn: nn.RNNBase, layer: int, x: Tensor, h: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """One step of layer ``layer`` of ``rnn`` (torch's equations), returning (h_t, c_t)."""
    w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
    b_ih = getattr(rnn, f"bias_ih_l{layer}") if rnn.bias else None
    b_hh = getattr(rnn, f"bias_hh_l{layer}") if rnn.bias else None
    gi = nn.functional.linear(x, w_ih, b_ih)
    gh = nn.functional.linear(h, w_hh, b_hh)
    if isinstance(rnn, nn.LSTM):
        if c is None:
            raise ValueError("an LSTM step needs its cell state c")
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    if isinstance(rnn, nn.GRU):
        ir, iz, in_ = gi.chunk(3, dim=-1)
        hr, hz, hn = gh.chunk(3, dim=-1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        n = torch.tanh(in_ + r * hn)
        return (1 - z) * n + z * h, None
    act = torch.tanh if rnn.nonlinearity == "tanh" else torch.relu
    return act(gi + gh), None


def run_unrolled(rnn: nn.RNNBase, x: Tensor, hx: Any = None, state: State | None = None) -> tuple[Tensor, Any]:
    """``rnn(x, hx)`` computed step by step with ``state`` applied to every layer's h_t after each step.

    Returns what the layer returns: ``(output, h_n)``, or ``(output, (h_n, c_n))`` for an LSTM. With
    ``state=None`` it equals the layer's own forward up to float rounding (the tests check it).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"where='state' needs a padded tensor input, got {type(x).__name__} (PackedSequence?)")
    batched = x.dim() == 3
    if not batched:
        x = x.unsqueeze(0 if rnn.batch_first else 1)
    seq = x if rnn.batch_first else x.transpose(0, 1)  # [batch, time, features]
    lstm = isinstance(rnn, nn.LSTM)
    zeros = seq.new_zeros(rnn.num_layers, seq.shape[0], rnn.hidden_size)
    if hx is None:
        h0, c0 = zeros, (zeros if lstm else None)
    elif lstm:
        h0, c0 = hx
    else:
        h0, c0 = hx, None
    if not batched:
        h0 = h0.unsqueeze(1)
        c0 = None if c0 is None else c0.unsqueeze(1)
    hs = list(h0.unbind(0))
    cs: list[Tensor | None] = list(c0.unbind(0)) if c0 is not None else [None] * rnn.num_layers
    outputs = []
    for t in range(seq.shape[1]):
        inp = seq[:, t]
        for layer in range(rnn.num_layers):
            h, cs[layer] = _cell(rnn, layer, inp, hs[layer], cs[layer])
            hs[layer] = inp = h if state is None else state(h, layer)
        outputs.append(inp)
    out = torch.stack(outputs, dim=1)
    if not rnn.batch_first:
        out = out.transpose(0, 1)
    h_n = torch.stack(hs)
    c_n = torch.stack([c for c in cs if c is not None]) if lstm else None
    if not batched:
        out = out.squeeze(0 if rnn.batch_first else 1)
        h_n = h_n.squeeze(1)
        c_n = None if c_n is None else c_n.squeeze(1)
    return out, ((h_n, c_n) if lstm else h_n)


def place_state(root: nn.Module, kind: NoiseKind, *, select: Selector | None, seed: int | None) -> list[Placement]:
    """State noise on each selected recurrent layer (default: every nn.RNN, nn.GRU and nn.LSTM)."""
    if select is not None:
        chosen = select_modules(root, select)
    else:
        chosen = [(n, m) for n, m in root.named_modules() if isinstance(m, (nn.RNN, nn.GRU, nn.LSTM))]
        if not chosen:
            raise ValueError(
                "where='state' without select= needs an nn.RNN, nn.GRU or nn.LSTM in the model; it has none"
            )
    placements = []
    for name, module in chosen:
        rnn = check_unrollable(module, name)
        layer = NoiseLayer(kind, seed=stream_seed(seed, "activations", f"{name}:state"))
        placements.append(_place_one(root, rnn, name, layer))
    return placements


def _place_one(root: nn.Module, rnn: nn.RNNBase, name: str, layer: NoiseLayer) -> Placement:
    def unroll(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        layer.training = module.training
        if not layer.active or layer.kind.is_off(layer.step):
            return output  # the layer's own forward: exactly the clean layer
        x = kwargs.get("input", args[0] if args else None)
        hx = kwargs.get("hx", args[1] if len(args) > 1 else None)
        if not isinstance(x, Tensor):
            raise TypeError(f"where='state' needs a padded tensor input, got {type(x).__name__} (PackedSequence?)")
        return run_unrolled(rnn, x, hx, lambda h, _: run_beside(layer, module, h))

    hook = rnn.register_forward_hook(torch.compiler.disable(unroll), with_kwargs=True)
    registry.add_beside(rnn, layer)

    def undo() -> None:
        hook.remove()
        registry.remove_beside(rnn, layer)

    return Placement("activations", f"state of {name!r}", ("activations", rnn, "state"), layer, rnn, undo)
