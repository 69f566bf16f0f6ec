"""noisereg: train neural networks with injected noise, and measure what the noise does.

The curated public surface. Names are loaded on first use (PEP 562), so that ``noisereg.study.report``
can rebuild a report from stored results without importing torch. Kinds of noise live in
:mod:`noisereg.noise`, schedules in :mod:`noisereg.schedules`, stream derivation in
:mod:`noisereg.seeding`, metrics in :mod:`noisereg.metrics`, robustness in :mod:`noisereg.robustness`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from noisereg._lazy import lazy_names

__version__ = "0.1.0"

# public name -> module that defines it (a module's own name maps to the module itself)
_PUBLIC = {
    "distributed": "noisereg.distributed",
    "metrics": "noisereg.metrics",
    "curvature": "noisereg.curvature",
    "noise": "noisereg.noise",
    "robustness": "noisereg.robustness",
    "schedules": "noisereg.schedules",
    "seeding": "noisereg.seeding",
    "sites": "noisereg.sites",
    "study": "noisereg.study",
    "NoiseLayer": "noisereg.layers",
    "GaussianNoise": "noisereg.layers",
    "GaussianDropout": "noisereg.layers",
    "AlphaDropout": "noisereg.layers",
    "noise_enabled": "noisereg.layers",
    "noise_layers": "noisereg.layers",
    "bind_clock": "noisereg.layers",
    "unbind_clock": "noisereg.layers",
    "Clock": "noisereg.schedules",
    "attach": "noisereg.sites",
    "describe": "noisereg.sites",
    "strip": "noisereg.sites",
    "NEFTune": "noisereg.sites",
    "SymNoise": "noisereg.sites",
    "noisytune": "noisereg.sites",
    "annealed_gaussian": "noisereg.sites",
    "LabelSmoothing": "noisereg.sites",
    "LabelFlip": "noisereg.sites",
    "DisturbLabel": "noisereg.sites",
    "Mixup": "noisereg.sites",
    "CutMix": "noisereg.sites",
    "NoisyLinear": "noisereg.sites",
    "PNI": "noisereg.sites",
    "NoisyHardTanh": "noisereg.sites",
    "NoisyHardSigmoid": "noisereg.sites",
    "DenoisingDataset": "noisereg.sites",
    "DenoisingCollate": "noisereg.sites",
}

__all__ = ["__version__", *_PUBLIC]


__getattr__, __dir__ = lazy_names("noisereg", _PUBLIC, globals())


if TYPE_CHECKING:
    from noisereg import curvature, distributed, metrics, noise, robustness, schedules, seeding, sites, study
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
    from noisereg.sites import (
        PNI,
        CutMix,
        DenoisingCollate,
        DenoisingDataset,
        DisturbLabel,
        LabelFlip,
        LabelSmoothing,
        Mixup,
        NEFTune,
        NoisyHardSigmoid,
        NoisyHardTanh,
        NoisyLinear,
        SymNoise,
        annealed_gaussian,
    )

    # From their own modules: each shares its name with that module, which mypy would otherwise
    # see bound twice.
    from noisereg.sites.attach import attach
    from noisereg.sites.describe import describe
    from noisereg.sites.noisytune import noisytune
    from noisereg.sites.strip import strip
