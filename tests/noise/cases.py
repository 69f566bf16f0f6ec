"""Every noise kind, described once for the contract suite."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from noisereg import noise


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[float], noise.NoiseKind]  # config at a given main strength
    strength: float  # a typical, non-identity strength
    identity: float
    linear: bool  # x̃ − x scales linearly with the strength
    clip: bool  # has a clip option
    positive_input: bool = False


CASES = [
    Case("gaussian", lambda s: noise.Gaussian(std=s), 0.3, 0.0, True, True),
    Case("uniform", lambda s: noise.Uniform(half_width=s), 0.3, 0.0, True, True),
    Case("rademacher", lambda s: noise.Rademacher(std=s), 0.3, 0.0, True, True),
    Case("multiplicative", lambda s: noise.MultiplicativeGaussian(std=s), 0.3, 0.0, True, True),
    Case("gaussian_dropout", lambda s: noise.GaussianDropoutNoise(rate=s), 0.3, 0.0, False, True),
    Case("alpha_dropout", lambda s: noise.AlphaDropoutNoise(rate=s), 0.3, 0.0, False, False),
    Case("snr", lambda s: noise.SNRGaussian(snr_db=s), 10.0, math.inf, False, True),
    Case("impulse", lambda s: noise.Impulse(amount=s), 0.2, 0.0, False, False),
    Case("shot", lambda s: noise.Shot(scale=s), 20.0, math.inf, False, True, positive_input=True),
    Case("colored", lambda s: noise.Colored(std=s, beta=1.0), 0.3, 0.0, True, True),
    Case("spatial", lambda s: noise.Spatial(std=s, length=1.5), 0.3, 0.0, True, True),
    Case("filter_gaussian", lambda s: noise.FilterGaussian(std=s), 0.3, 0.0, True, True),
]
IDS = [c.name for c in CASES]
