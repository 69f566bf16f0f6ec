"""The engine's names for its choices, shared with the study files that ask for them (no torch here).

>>> from typing import get_args
>>> get_args(Loss)
('bce', 'ce', 'mse')
"""

from __future__ import annotations

from typing import Literal

__all__ = ["Activation", "Init", "Loss", "SiteName", "ClockUnit", "HIDDEN_SITES"]

Activation = Literal["relu", "tanh", "gelu", "sigmoid", "elu", "selu", "identity"]
"""An MLP's activation (``elu`` with alpha = 1, ``gelu`` in its exact erf form, as torch's defaults)."""

Init = Literal["default", "he", "glorot", "normal"]
"""An MLP's initialization (see :class:`noisereg.engine.MLPSpec`)."""

Loss = Literal["bce", "ce", "mse"]
"""The training loss: binary or multi-class cross-entropy, or mean squared error."""

SiteName = Literal["input", "pre", "post", "weights", "gradients", "targets"]
"""Where the engine puts noise: the inputs, a hidden layer's linear output before (``pre``) or after
(``post``) its activation, the model's ``weight*`` parameters (``weights``: drawn once per optimizer step
and held for every sample of its minibatch), each replica's gradient, or the targets."""

ClockUnit = Literal["step", "epoch"]
"""What a scheduled strength counts: optimizer steps or epochs (both 0-based)."""

HIDDEN_SITES: tuple[SiteName, ...] = ("pre", "post")
"""The sites inside an MLP: only the hand-written MLP path has them (not a ``ModuleSpec``)."""
