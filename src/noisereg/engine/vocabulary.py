"""The engine's names for its choices, shared with the study files that ask for them (no torch here).

>>> from typing import get_args
>>> get_args(Loss)
('bce', 'ce', 'mse')
"""

from __future__ import annotations

from typing import Literal

from noisereg._checks import warn_deprecated

__all__ = [
    "Activation",
    "Init",
    "Loss",
    "SiteName",
    "ClockUnit",
    "HIDDEN_SITES",
    "RENAMED_SITES",
    "current_site",
    "renamed_site",
]

Activation = Literal["relu", "tanh", "gelu", "sigmoid", "elu", "selu", "silu", "leaky_relu", "softplus", "identity"]
"""An MLP's activation (``elu`` with alpha = 1, ``gelu`` in its exact erf form, as torch's defaults)."""

Init = Literal["default", "he", "glorot", "normal"]
"""An MLP's initialization (see :class:`noisereg.engine.MLPSpec`)."""

Loss = Literal["bce", "ce", "mse"]
"""The training loss: binary or multi-class cross-entropy, or mean squared error."""

SiteName = Literal["input", "before", "after", "weights", "gradients", "targets"]
"""Where the engine puts noise: the inputs, a hidden layer's linear output ``before`` its activation or
its output ``after`` it (as ``attach(model, noise, "activations", select=nn.ReLU, where="before")`` and
``where="after"`` do), the model's ``weight*`` parameters (``weights``: drawn once per optimizer step
and held for every sample of its minibatch), each replica's gradient, or the targets."""

ClockUnit = Literal["step", "epoch"]
"""What a scheduled strength counts: optimizer steps or epochs (both 0-based)."""

HIDDEN_SITES: tuple[SiteName, ...] = ("before", "after")
"""The sites inside a network's hidden layers."""

RENAMED_SITES: dict[str, SiteName] = {"pre": "before", "post": "after"}
"""The hidden sites' earlier names and their names today. The earlier names are accepted for a
deprecation period (with a ``DeprecationWarning`` where a user writes them) and read from stored runs."""


def current_site(name: object) -> object:
    """The site ``name`` as it is called today: an earlier name (:data:`RENAMED_SITES`) becomes its new
    name, anything else is returned as it is. Silent: for reading stored runs and study tables.

    >>> current_site("pre"), current_site("after"), current_site("input"), current_site(3)
    ('before', 'after', 'input', 3)
    """
    return RENAMED_SITES.get(name, name) if isinstance(name, str) else name


def renamed_site(old: str, where: str) -> SiteName:
    """The name today of the earlier site name ``old``, with a ``DeprecationWarning`` that names
    ``where`` the user wrote it and the new spelling.

    The warning is attributed to the first caller outside noisereg, so that Python's default filters
    show it to a script that wrote the old name.

    Raises:
        KeyError: ``old`` is not an earlier name (a key of :data:`RENAMED_SITES`).

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     renamed_site("pre", "arms[1].noise.site")
    'before'
    >>> str(caught[0].message)
    "arms[1].noise.site = 'pre' is deprecated: write 'before'"
    """
    new = RENAMED_SITES[old]
    warn_deprecated(f"{where} = {old!r} is deprecated: write {new!r}")
    return new
