"""Kinds of noise: each a pure tensor function and a small frozen config with the same parameters.

See :mod:`noisereg.noise.base` for the conventions every kind follows (strength broadcasting, mask,
clip, dtype) and :mod:`noisereg.noise.kinds` for the table of kinds (strength, identity, bounds).
Names are loaded on first use (PEP 562), so that the table of kinds can be read without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from noisereg._lazy import lazy_names

# public name -> module that defines it
_PUBLIC = {
    "KINDS": "noisereg.noise.kinds",
    "NoiseKind": "noisereg.noise.base",
    "gaussian": "noisereg.noise.additive",
    "uniform": "noisereg.noise.additive",
    "rademacher": "noisereg.noise.symmetric",
    "multiplicative_gaussian": "noisereg.noise.multiplicative",
    "speckle": "noisereg.noise.multiplicative",
    "gaussian_dropout": "noisereg.noise.multiplicative",
    "alpha_dropout": "noisereg.noise.multiplicative",
    "snr_gaussian": "noisereg.noise.signal",
    "impulse": "noisereg.noise.discrete",
    "shot": "noisereg.noise.discrete",
    "colored": "noisereg.noise.signal",
    "spatial": "noisereg.noise.signal",
    "filter_gaussian": "noisereg.noise.filterwise",
    "FilterGaussian": "noisereg.noise.filterwise",
    "Gaussian": "noisereg.noise.additive",
    "Uniform": "noisereg.noise.additive",
    "Rademacher": "noisereg.noise.symmetric",
    "MultiplicativeGaussian": "noisereg.noise.multiplicative",
    "Speckle": "noisereg.noise.multiplicative",
    "GaussianDropoutNoise": "noisereg.noise.multiplicative",
    "AlphaDropoutNoise": "noisereg.noise.multiplicative",
    "SNRGaussian": "noisereg.noise.signal",
    "Impulse": "noisereg.noise.discrete",
    "Shot": "noisereg.noise.discrete",
    "Colored": "noisereg.noise.signal",
    "Spatial": "noisereg.noise.signal",
}

__all__ = list(_PUBLIC)


__getattr__, __dir__ = lazy_names("noisereg.noise", _PUBLIC, globals())


if TYPE_CHECKING:
    from noisereg.noise.additive import Gaussian, Uniform, gaussian, uniform
    from noisereg.noise.base import NoiseKind
    from noisereg.noise.discrete import Impulse, Shot, impulse, shot
    from noisereg.noise.filterwise import FilterGaussian, filter_gaussian
    from noisereg.noise.kinds import KINDS
    from noisereg.noise.multiplicative import (
        AlphaDropoutNoise,
        GaussianDropoutNoise,
        MultiplicativeGaussian,
        Speckle,
        alpha_dropout,
        gaussian_dropout,
        multiplicative_gaussian,
        speckle,
    )
    from noisereg.noise.signal import Colored, SNRGaussian, Spatial, colored, snr_gaussian, spatial
    from noisereg.noise.symmetric import Rademacher, rademacher
