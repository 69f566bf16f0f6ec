"""The small CNN and the GRU/LSTM classifier of study files, as plain ``nn.Module`` classes.

The engine trains them through :class:`noisereg.engine.ModuleSpec` (replicas under
``torch.func.vmap``). Both take the flat feature rows of a study's data, [n, prod(input_shape)], and
reshape them to their input shape, so that input noise and standardization act on the same flat
features as for an MLP. Neither has buffers nor randomness of its own (the engine's noise sites
supply the noise).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from noisereg.engine.replicas import ACTIVATION_MODULES
from noisereg.sites.recurrent import run_unrolled

__all__ = ["SmallCNN", "RecurrentClassifier", "make_cnn", "make_recurrent"]

_ACTIVATIONS = ACTIVATION_MODULES  # one table for the engine's MLPs and the study's networks


def _initialize(module: nn.Module, init: str) -> None:
    """``default`` keeps torch's own; ``he`` N(0, 2/fan_in), ``glorot`` U(±√(6/(fan_in+fan_out))),
    both with zero biases, on every conv and linear layer (as the engine's MLP does)."""
    if init == "default":
        return
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            if init == "he":
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            elif init == "glorot":
                nn.init.xavier_uniform_(layer.weight)
            else:
                raise ValueError(f"init={init!r} must be 'default', 'he' or 'glorot' for a CNN")
            # the networks of this module make every conv and linear layer with a bias
            nn.init.zeros_(cast(Tensor, layer.bias))


class SmallCNN(nn.Module):
    """Conv(3x3, same padding) → activation → 2x2 max-pool per entry of ``channels`` (no pool once
    the map is 1 pixel wide), then Linear(·, hidden) → activation → Linear(hidden, out)."""

    def __init__(
        self,
        input_shape: Sequence[int],
        channels: Sequence[int],
        hidden: int,
        out_features: int,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        c, h, w = (int(v) for v in input_shape)
        self.input_shape = (c, h, w)
        layers: list[nn.Module] = []
        for width in channels:
            layers += [nn.Conv2d(c, width, 3, padding=1), _ACTIVATIONS[activation]()]
            if min(h, w) >= 2:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = width
        layers += [
            nn.Flatten(),
            nn.Linear(c * h * w, hidden),
            _ACTIVATIONS[activation](),
            nn.Linear(hidden, out_features),
        ]
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x.reshape(x.shape[0], *self.input_shape))

    def hidden_places(self) -> tuple[tuple[str, str], ...]:
        """Per hidden layer (each convolution, then the hidden Linear): the names of the module whose
        output is its linear output (``before`` noise) and of its activation (``after`` noise)."""
        names = [name for name, _ in self.body.named_children()]
        modules = list(self.body.children())
        return tuple(
            (f"body.{names[i]}", f"body.{names[i + 1]}")
            for i, m in enumerate(modules[:-1])
            if isinstance(m, (nn.Conv2d, nn.Linear))
        )


class RecurrentClassifier(nn.Module):
    """A GRU or LSTM over [steps, features] (batch first); the last step's output → Linear(out).

    ``unroll=True`` runs the recurrence step by step (:func:`noisereg.sites.recurrent.run_unrolled`,
    the layer's own formula on its own parameters) and passes every layer's hidden state h_t through
    ``states[layer]`` (an identity) after each step: noise there is noise inside the recurrence, at
    every time step (the noisy RNN of Lim et al. 2021)."""

    def __init__(
        self, kind: str, input_shape: Sequence[int], hidden: int, layers: int, out_features: int, unroll: bool = False
    ) -> None:
        super().__init__()
        self.input_shape = (int(input_shape[0]), int(input_shape[1]))
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[kind]
        self.rnn = rnn(self.input_shape[1], hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, out_features)
        self.unroll = unroll
        self.states = nn.ModuleList(nn.Identity() for _ in range(layers)) if unroll else None

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], *self.input_shape)
        if self.states is not None:
            states = self.states
            out, _ = run_unrolled(self.rnn, x, None, lambda h, layer: states[layer](h))
        else:
            out, _ = self.rnn(x)
        return self.head(out[:, -1])

    def hidden_places(self) -> tuple[tuple[str, str], ...]:
        """One hidden layer: the recurrent layers' output sequence. Its activations (tanh, the gates)
        run inside torch's recurrent kernel, so ``before`` and ``after`` noise both go on that output.
        Unrolled: one hidden layer per recurrent layer, its hidden state h_t at every step."""
        if self.states is not None:
            return tuple((f"states.{i}", f"states.{i}") for i in range(len(self.states)))
        return (("rnn", "rnn"),)


def make_cnn(
    input_shape: Sequence[int], channels: Sequence[int], hidden: int, out_features: int, activation: str, init: str
) -> SmallCNN:
    """A :class:`SmallCNN` initialized by ``init`` (a top-level factory, picklable with ``partial``)."""
    model = SmallCNN(input_shape, channels, hidden, out_features, activation)
    with torch.no_grad():
        _initialize(model, init)
    return model


def make_recurrent(
    kind: str, input_shape: Sequence[int], hidden: int, layers: int, out_features: int, unroll: bool = False
) -> RecurrentClassifier:
    """A :class:`RecurrentClassifier` with torch's default initialization."""
    return RecurrentClassifier(kind, input_shape, hidden, layers, out_features, unroll)
