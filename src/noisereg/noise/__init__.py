"""Kinds of noise: each a pure tensor function and a small frozen config with the same parameters.

See :mod:`noisereg.noise.base` for the conventions every kind follows (strength broadcasting, mask,
clip, dtype).
"""

from noisereg.noise.additive import Gaussian, Uniform, gaussian, uniform
from noisereg.noise.base import NoiseKind
from noisereg.noise.discrete import Impulse, Shot, impulse, shot
from noisereg.noise.multiplicative import (
    AlphaDropout,
    GaussianDropout,
    MultiplicativeGaussian,
    Speckle,
    alpha_dropout,
    gaussian_dropout,
    multiplicative_gaussian,
    speckle,
)
from noisereg.noise.signal import Colored, SNRGaussian, Spatial, colored, snr_gaussian, spatial

__all__ = [
    "NoiseKind",
    "gaussian",
    "uniform",
    "multiplicative_gaussian",
    "speckle",
    "gaussian_dropout",
    "alpha_dropout",
    "snr_gaussian",
    "impulse",
    "shot",
    "colored",
    "spatial",
    "Gaussian",
    "Uniform",
    "MultiplicativeGaussian",
    "Speckle",
    "GaussianDropout",
    "AlphaDropout",
    "SNRGaussian",
    "Impulse",
    "Shot",
    "Colored",
    "Spatial",
]
