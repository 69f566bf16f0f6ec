"""noisereg: train neural networks with injected noise, and measure what the noise does.

The public surface. Kinds of noise live in :mod:`noisereg.noise`, schedules in
:mod:`noisereg.schedules`, stream derivation in :mod:`noisereg.seeding`.
"""

from noisereg import distributed, noise, schedules, seeding
from noisereg.layers import (
    AlphaDropout,
    GaussianDropout,
    GaussianNoise,
    NoiseLayer,
    bind_clock,
    noise_enabled,
    noise_layers,
    unbind_clock,
)
from noisereg.schedules import Clock

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "distributed",
    "noise",
    "schedules",
    "seeding",
    "NoiseLayer",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "noise_enabled",
    "noise_layers",
    "bind_clock",
    "unbind_clock",
    "Clock",
]
