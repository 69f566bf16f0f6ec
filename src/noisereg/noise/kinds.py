"""The table of noise kinds: for each, its config class, its strength, the strength's identity and bounds.

One entry per kind is the single definition that the configs (:class:`~noisereg.noise.base.NoiseKind`
subclasses read ``strength_field`` and ``identity`` here), their pure functions (which check the
strength against these bounds) and the study files (:mod:`noisereg.study.config.noise` derives its
tables from :data:`KINDS`) share; adding a kind here makes study files accept it. This module imports
no torch, so study files are validated without it.

>>> KINDS["gaussian_dropout"].strength, KINDS["gaussian_dropout"].bounds
('rate', {'low': 0.0, 'low_open': False, 'high': 1.0, 'high_open': True, 'allow_inf': False})
>>> KINDS["snr_gaussian"].identity
inf
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["Kind", "Option", "KINDS"]


@dataclasses.dataclass(frozen=True)
class Option:
    """A parameter of a kind besides its strength: its default and its range or choices.

    Args:
        default: the config's default value.
        low, high: the closed range of a number (``-inf``/``inf`` for no bound).
        choices: the allowed strings of a choice (then ``low``/``high`` do not apply).
    """

    default: float | str
    low: float = -math.inf
    high: float = math.inf
    choices: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Kind:
    """One kind of noise as the library and study files know it.

    Args:
        name: the kind's name in study files (``kind = "gaussian"``).
        config: ``"module:Class"`` of its frozen config (a :class:`~noisereg.noise.base.NoiseKind`).
        strength: the config field that says how much noise (what a grid varies).
        identity: the strength's value for no noise.
        low, low_open, high, high_open, allow_inf: the strength's range, as
            :func:`noisereg.noise.base.check_strength` takes it.
        clip: whether the kind takes ``clip=(low, high)``.
        options: its other parameters that study files may set.
        labels: label noise, only for the targets of a classifier.
        pairs: noise on (input, target) pairs: its function is ``function(x, y, strength)`` and
            returns both (mixup, CutMix).
        in_studies: whether study files may name it (kinds that need image- or signal-shaped inputs
            do not fit a study's flat feature rows).

    >>> KINDS["gaussian"].load().__name__
    'Gaussian'
    """

    name: str
    config: str
    strength: str
    identity: float = 0.0
    low: float = 0.0
    low_open: bool = False
    high: float = math.inf
    high_open: bool = False
    allow_inf: bool = False
    clip: bool = True
    options: Mapping[str, Option] = dataclasses.field(default_factory=dict)
    labels: bool = False
    pairs: bool = False
    in_studies: bool = True

    @property
    def bounds(self) -> dict[str, Any]:
        """The strength's range as keyword arguments of :func:`~noisereg.noise.base.check_strength`."""
        return {
            "low": self.low,
            "low_open": self.low_open,
            "high": self.high,
            "high_open": self.high_open,
            "allow_inf": self.allow_inf,
        }

    def load(self) -> Any:
        """The config class (importing it, and torch with it)."""
        module, _, name = self.config.partition(":")
        return getattr(importlib.import_module(module), name)


KINDS: Mapping[str, Kind] = MappingProxyType(
    {
        k.name: k
        for k in (
            Kind("gaussian", "noisereg.noise.additive:Gaussian", "std"),
            Kind("uniform", "noisereg.noise.additive:Uniform", "half_width"),
            Kind("rademacher", "noisereg.noise.symmetric:Rademacher", "std"),
            Kind("multiplicative_gaussian", "noisereg.noise.multiplicative:MultiplicativeGaussian", "std"),
            Kind(
                "gaussian_dropout",
                "noisereg.noise.multiplicative:GaussianDropoutNoise",
                "rate",
                high=1.0,
                high_open=True,
            ),
            Kind(
                "alpha_dropout",
                "noisereg.noise.multiplicative:AlphaDropoutNoise",
                "rate",
                clip=False,
                high=1.0,
                high_open=True,
            ),
            Kind(
                "impulse",
                "noisereg.noise.discrete:Impulse",
                "amount",
                clip=False,
                options={
                    "salt_vs_pepper": Option(0.5, low=0.0, high=1.0),
                    "low": Option(0.0),
                    "high": Option(1.0),
                },
                high=1.0,
            ),
            Kind(
                "shot",
                "noisereg.noise.discrete:Shot",
                "scale",
                identity=math.inf,
                low_open=True,
                allow_inf=True,
                in_studies=False,
            ),
            Kind(
                "snr_gaussian",
                "noisereg.noise.signal:SNRGaussian",
                "snr_db",
                identity=math.inf,
                low=-math.inf,
                allow_inf=True,
            ),
            Kind(
                "colored",
                "noisereg.noise.signal:Colored",
                "std",
                options={"beta": Option(1.0, low=0.0)},
                in_studies=False,
            ),
            Kind(
                "spatial",
                "noisereg.noise.signal:Spatial",
                "std",
                options={"length": Option(2.0, low=0.0)},
                in_studies=False,
            ),
            # random weight perturbation (RWP): for at="weights", noise scaled per filter to its norm
            Kind("filter_gaussian", "noisereg.noise.filterwise:FilterGaussian", "std"),
            Kind(
                "label_smoothing",
                "noisereg.sites.targets:LabelSmoothing",
                "epsilon",
                clip=False,
                options={"spread": Option("all", choices=("all", "others"))},
                labels=True,
                high=1.0,
            ),
            Kind(
                "label_flip",
                "noisereg.sites.targets:LabelFlip",
                "rate",
                clip=False,
                options={"pattern": Option("symmetric", choices=("symmetric", "pair", "uniform"))},
                labels=True,
                high=1.0,
            ),
            Kind(
                "disturb_label",
                "noisereg.sites.targets:DisturbLabel",
                "alpha",
                clip=False,
                labels=True,
                in_studies=False,
                high=1.0,
            ),
            # Kinds for one site of a model (token embeddings, hard activations, input-target pairs):
            # the library's, not the study files'.
            Kind("neftune", "noisereg.sites.embeddings:NEFTune", "alpha", clip=False, in_studies=False),
            Kind("symnoise", "noisereg.sites.embeddings:SymNoise", "alpha", clip=False, in_studies=False),
            Kind("noisytune", "noisereg.sites.noisytune:NoisyTune", "lam", clip=False, in_studies=False),
            Kind(
                "saturation",
                "noisereg.sites.noisy_activations:SaturationNoise",
                "c",
                clip=False,
                in_studies=False,
            ),
            Kind("mixup", "noisereg.sites.mixing:Mixup", "alpha", clip=False, pairs=True, in_studies=False),
            Kind("cutmix", "noisereg.sites.mixing:CutMix", "alpha", clip=False, pairs=True, in_studies=False),
        )
    }
)
"""Every kind of noise by name. A study file names a kind by its key."""
