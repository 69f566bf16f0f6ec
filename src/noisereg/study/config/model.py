"""The ``[model]`` table of a study file: a built-in model family (``family = "mlp"``, ``"linear"``,
``"cnn"``, ``"gru"``, ``"lstm"``), or the user's own model by import path (:mod:`.user`).

``family`` was written ``kind`` before (``kind`` is a kind of noise); that spelling still loads, with
a ``DeprecationWarning`` from :func:`~noisereg.study.parse_config` naming ``model.kind``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field

from noisereg._checks import warn_deprecated
from noisereg.engine.vocabulary import Activation, Init
from noisereg.study.config.strict import Strict

__all__ = ["MLPConfig", "LinearConfig", "CNNConfig", "RecurrentConfig", "ModelConfig", "modern_model"]


def modern_model(data: Any) -> Any:
    """A ``[model]`` table written with the earlier key ``kind`` with ``family`` instead (silent);
    anything else as it is."""
    if isinstance(data, Mapping) and "kind" in data and "family" not in data:
        return {("family" if k == "kind" else k): v for k, v in data.items()}
    return data


class _Family(Strict):
    family: str

    @property
    def kind(self) -> str:
        """Deprecated: the model's ``family`` (``kind`` is a kind of noise)."""
        warn_deprecated(f"{type(self).__name__}.kind is deprecated: read .family")
        return self.family


class MLPConfig(_Family):
    """A multilayer perceptron: inputs -> ``widths`` hidden layers -> outputs (set from the data)."""

    family: Literal["mlp"] = "mlp"
    widths: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)] = [500]
    activation: Activation = "relu"
    init: Init = "default"
    init_std: Annotated[float, Field(gt=0)] = 0.01


class LinearConfig(_Family):
    """A linear model, ŷ = W·x + b (the engine's MLP without hidden layers): with ``mse`` this is
    least squares fitted by the optimizer. ``init`` as for an MLP (``normal`` uses ``init_std``).
    It has no hidden layer, so it takes input, gradients and targets noise, not ``before``/``after``."""

    family: Literal["linear"]
    init: Init = "default"
    init_std: Annotated[float, Field(gt=0)] = 0.01


class CNNConfig(_Family):
    """A small CNN for images: ``channels`` conv layers (3x3, ReLU, 2x2 max-pool) then ``hidden``."""

    family: Literal["cnn"]
    input_shape: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=3, max_length=3)]
    channels: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)] = [16, 32]
    hidden: Annotated[int, Field(ge=1)] = 64
    activation: Activation = "relu"
    init: Literal["default", "he", "glorot"] = "default"


class RecurrentConfig(_Family):
    """A GRU or LSTM over sequences of ``input_shape = [steps, features]``, then a linear head.

    ``unroll = true`` runs the recurrence step by step, so that hidden-layer noise (``before`` /
    ``after``; hidden layer i is recurrent layer i) goes on the hidden state h_t at every time step,
    inside the recurrence (noisy RNN); without it that noise goes on the output sequence only."""

    family: Literal["gru", "lstm"]
    input_shape: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=2, max_length=2)]
    hidden: Annotated[int, Field(ge=1)] = 64
    layers: Annotated[int, Field(ge=1)] = 1
    unroll: bool = False


ModelConfig = Annotated[MLPConfig | LinearConfig | CNNConfig | RecurrentConfig, Field(discriminator="family")]
