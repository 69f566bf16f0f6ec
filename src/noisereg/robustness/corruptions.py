"""Noise corruptions at five severities: Hendrycks & Dietterich 2019's constants, and tabular levels.

Severity constants, from Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR 2019 (the ImageNet-C and CIFAR-10-C code of
github.com/hendrycks/robustness), for images in [0, 1], each result clipped back to [0, 1]:

corruption  formula                    ImageNet-C c, severity 1-5   CIFAR-10-C c, severity 1-5
----------  -------------------------  ---------------------------  --------------------------
gaussian    x + N(0, c²)               .08 .12 .18 .26 .38          .04 .06 .08 .09 .10
shot        Poisson(x·c) / c           60 25 12 5 3                 500 250 100 75 50
impulse     salt-and-pepper, amount c  .03 .06 .09 .17 .27          .01 .02 .03 .05 .07
speckle     x + x·N(0, c²)             .15 .2 .35 .45 .6            .06 .1 .12 .16 .2

Two noises the paper does not have are added with noisereg's own levels: ``uniform`` is x + U(-a, a)
with the same set's Gaussian standard deviation c (a = c·√3), a same-power test of the noise's shape;
``snr_gaussian`` is Gaussian noise at 20, 15, 10, 5, 0 dB signal-to-noise ratio per sample (noise rms
= signal rms / 10^(dB/20)) for every set. The images are not rounded to 8 bits as the saved
ImageNet-C files are.

For standardized tabular data (``constants="tabular"``, no clipping) the strengths are multiples k of
the feature scale s (1 for standardized data): gaussian std k·s and uniform std k·s with k = 0.1, 0.25,
0.5, 0.75, 1 (severity 5 is noise as large as the feature's own spread); speckle std k with the same k;
impulse replaces values by ±3·s (three scales out: an outlier) with amounts .01 .02 .03 .05 .07; SNR as
above. Shot noise counts photons of non-negative data and has no tabular form.

The noise itself is drawn by :mod:`noisereg.noise`; this module only chooses the strengths. The
evaluation of a model over the suite is :func:`noisereg.robustness.evaluate_corruptions`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, cast, get_args

import torch
from torch import Tensor

from noisereg import noise
from noisereg._checks import check_int
from noisereg.robustness._evaluation import check_inputs, check_positive

__all__ = [
    "CORRUPTIONS",
    "PARAMETERS",
    "SEVERITY_CONSTANTS",
    "Constants",
    "Corruption",
    "corrupt",
    "corruption_strength",
]

Corruption = Literal["gaussian", "shot", "impulse", "speckle", "uniform", "snr_gaussian"]
Constants = Literal["cifar10", "imagenet", "tabular"]
CORRUPTIONS: tuple[str, ...] = get_args(Corruption)

_SNR_DB = (20.0, 15.0, 10.0, 5.0, 0.0)
_IMAGENET_C = {
    "gaussian": (0.08, 0.12, 0.18, 0.26, 0.38),
    "shot": (60.0, 25.0, 12.0, 5.0, 3.0),
    "impulse": (0.03, 0.06, 0.09, 0.17, 0.27),
    "speckle": (0.15, 0.2, 0.35, 0.45, 0.6),
}
_CIFAR10_C = {
    "gaussian": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot": (500.0, 250.0, 100.0, 75.0, 50.0),
    "impulse": (0.01, 0.02, 0.03, 0.05, 0.07),
    "speckle": (0.06, 0.1, 0.12, 0.16, 0.2),
}
_TABULAR_K = (0.1, 0.25, 0.5, 0.75, 1.0)
_TABULAR_OUTLIER = 3.0

SEVERITY_CONSTANTS: Mapping[str, Mapping[str, tuple[float, ...]]] = MappingProxyType(
    {
        name: MappingProxyType({**table, "uniform": table["gaussian"], "snr_gaussian": _SNR_DB})
        for name, table in (("imagenet", _IMAGENET_C), ("cifar10", _CIFAR10_C))
    }
    | {
        "tabular": MappingProxyType(
            {
                "gaussian": _TABULAR_K,
                "impulse": _CIFAR10_C["impulse"],
                "speckle": _TABULAR_K,
                "uniform": _TABULAR_K,
                "snr_gaussian": _SNR_DB,
            }
        )
    }
)
"""constants -> corruption -> the five severities' parameter (std, scale, amount or dB; for tabular
gaussian/uniform a multiple of the feature scale)."""

PARAMETERS = MappingProxyType(
    {
        "gaussian": "std",
        "uniform": "std",
        "speckle": "std",
        "shot": "scale",
        "impulse": "amount",
        "snr_gaussian": "snr_db",
    }
)
"""What each corruption's constant is, as named in :mod:`noisereg.noise`."""


def _check_constants(constants: object) -> Constants:
    if constants not in SEVERITY_CONSTANTS:
        raise ValueError(f"{constants=} must be one of {tuple(SEVERITY_CONSTANTS)}")
    return cast(Constants, constants)


def _check_corruption(corruption: object, constants: str) -> Corruption:
    known = tuple(SEVERITY_CONSTANTS[constants])
    if corruption not in known:
        hint = " (shot noise needs non-negative data such as images)" if corruption == "shot" else ""
        raise ValueError(f"unknown corruption {corruption!r} for {constants=}{hint}; known: {known}")
    return cast(Corruption, corruption)


def _check_severity(severity: object) -> int:
    return check_int(severity, "severity", low=1, high=5)


def _check_scale(scale: object, constants: str) -> float:
    if constants != "tabular":
        if scale is not None:
            raise ValueError(f"{scale=} applies only to constants='tabular'; images are in [0, 1]")
        return 1.0
    return 1.0 if scale is None else check_positive(scale, "scale")


def check_range(x: Tensor, constants: str) -> None:
    """Refuse data outside [0, 1] for the image constants (their levels assume that range)."""
    if constants != "tabular" and x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"{constants=} holds Hendrycks & Dietterich's constants for images in [0, 1], but x is in "
            f"[{x.min().item():.4g}, {x.max().item():.4g}]: scale the images to [0, 1] (before any "
            "normalization, which the model should do itself) or use constants='tabular'"
        )


def corruption_strength(
    corruption: Corruption, severity: int, *, constants: Constants, scale: float | None = None
) -> float:
    """The parameter (:data:`PARAMETERS`) that ``corruption`` at ``severity`` gets; see the table.

    For tabular gaussian and uniform noise this is the multiple times ``scale``. Raises as
    :func:`corrupt`.
    """
    constants = _check_constants(constants)
    corruption = _check_corruption(corruption, constants)
    scale = _check_scale(scale, constants)
    value = SEVERITY_CONSTANTS[constants][corruption][_check_severity(severity) - 1]
    return value * scale if corruption in ("gaussian", "uniform") else value


def corrupt(
    x: Tensor,
    corruption: Corruption,
    severity: int,
    *,
    constants: Constants,
    scale: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Return a corrupted copy of ``x``: ``corruption`` at ``severity`` with the given constants.

    Formulas and constants are in the module docstring; image sets clip the result to [0, 1].

    Args:
        x: floating tensor ``[N, ...]``; in [0, 1] for ``"cifar10"``/``"imagenet"``.
        corruption: one of :data:`CORRUPTIONS` (``"shot"`` only for images).
        severity: 1 to 5.
        constants: ``"cifar10"``, ``"imagenet"`` or ``"tabular"``.
        scale: feature scale s for ``"tabular"`` (default 1, standardized data), > 0; not for images.
        generator: a ``torch.Generator`` on x's device, or None for torch's global one.

    Raises:
        ValueError: unknown constants or corruption (the known ones are listed), severity outside
            1-5, image data outside [0, 1], a scale <= 0 or given with image constants.
    """
    x = check_inputs(x)
    value = corruption_strength(corruption, severity, constants=constants, scale=scale)
    check_range(x, constants)
    image = constants != "tabular"
    clip = (0.0, 1.0) if image else None
    if corruption == "gaussian":
        return noise.gaussian(x, value, clip=clip, generator=generator)
    if corruption == "uniform":
        return noise.uniform(x, value * math.sqrt(3.0), clip=clip, generator=generator)
    if corruption == "speckle":
        return noise.speckle(x, value, clip=clip, generator=generator)
    if corruption == "shot":
        return noise.shot(x, value, clip=clip, generator=generator)
    if corruption == "snr_gaussian":
        return noise.snr_gaussian(x, value, clip=clip, generator=generator)
    extreme = 1.0 if image else _TABULAR_OUTLIER * _check_scale(scale, constants)
    return noise.impulse(x, value, low=0.0 if image else -extreme, high=extreme, generator=generator)
