"""The ``[model]`` table of a study file: an MLP, a linear model, a small CNN, or a GRU/LSTM."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from noisereg.engine.vocabulary import Activation, Init
from noisereg.study.config.strict import Strict

__all__ = ["MLPConfig", "LinearConfig", "CNNConfig", "RecurrentConfig", "ModelConfig"]


class MLPConfig(Strict):
    """A multilayer perceptron: inputs -> ``widths`` hidden layers -> outputs (set from the data)."""

    kind: Literal["mlp"] = "mlp"
    widths: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)] = [500]
    activation: Activation = "relu"
    init: Init = "default"
    init_std: Annotated[float, Field(gt=0)] = 0.01


class LinearConfig(Strict):
    """A linear model, ŷ = W·x + b (the engine's MLP without hidden layers): with ``mse`` this is
    least squares fitted by the optimizer. ``init`` as for an MLP (``normal`` uses ``init_std``).
    It has no hidden layer, so it takes input, gradients and targets noise, not ``before``/``after``."""

    kind: Literal["linear"]
    init: Init = "default"
    init_std: Annotated[float, Field(gt=0)] = 0.01


class CNNConfig(Strict):
    """A small CNN for images: ``channels`` conv layers (3x3, ReLU, 2x2 max-pool) then ``hidden``."""

    kind: Literal["cnn"]
    input_shape: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=3, max_length=3)]
    channels: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)] = [16, 32]
    hidden: Annotated[int, Field(ge=1)] = 64
    activation: Activation = "relu"
    init: Literal["default", "he", "glorot"] = "default"


class RecurrentConfig(Strict):
    """A GRU or LSTM over sequences of ``input_shape = [steps, features]``, then a linear head.

    ``unroll = true`` runs the recurrence step by step, so that hidden-layer noise (``before`` /
    ``after``; hidden layer i is recurrent layer i) goes on the hidden state h_t at every time step,
    inside the recurrence (noisy RNN); without it that noise goes on the output sequence only."""

    kind: Literal["gru", "lstm"]
    input_shape: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=2, max_length=2)]
    hidden: Annotated[int, Field(ge=1)] = 64
    layers: Annotated[int, Field(ge=1)] = 1
    unroll: bool = False


ModelConfig = Annotated[MLPConfig | LinearConfig | CNNConfig | RecurrentConfig, Field(discriminator="kind")]
