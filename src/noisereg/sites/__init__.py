"""Noise at every site of a model users already have: ``attach``, its handle, and ``describe``.

:func:`strip` takes every noise off for export. Sites: the input, activations, embeddings (NEFTune), weights, gradients and targets — see
:func:`attach`. Learned noise (:class:`NoisyLinear`, :class:`PNI`) and noisy activation
functions (:class:`NoisyHardTanh`, :class:`NoisyHardSigmoid`) are modules to swap in; target noise,
mixing and denoising pairs are also pure tensor functions.

``__all__`` holds what users call; the machinery behind it (the handle subclasses, ``describe``'s
entries, the kinds and layers that attach builds) stays importable from its own module.
"""

from noisereg.sites.attach import Handle, attach
from noisereg.sites.denoising import DenoisingCollate, DenoisingDataset
from noisereg.sites.describe import describe
from noisereg.sites.embeddings import NEFTune, SymNoise, neftune, symnoise
from noisereg.sites.gradients import annealed_gaussian
from noisereg.sites.learned import PNI, NoisyLinear
from noisereg.sites.mixing import CutMix, Mixup, cutmix, mixup
from noisereg.sites.noisy_activations import (
    NoisyHardSigmoid,
    NoisyHardTanh,
    noisy_hard_activation,
)
from noisereg.sites.noisytune import noisytune
from noisereg.sites.strip import random_ops, strip
from noisereg.sites.targets import (
    PATRINI_MNIST,
    DisturbLabel,
    LabelFlip,
    LabelSmoothing,
    disturb_labels,
    flip_labels,
    label_smoothing,
    regression_noise,
    transition_matrix,
)
from noisereg.sites.weights import WeightNoise

__all__ = [
    "attach",
    "describe",
    "strip",
    "random_ops",
    "Handle",
    "NEFTune",
    "neftune",
    "SymNoise",
    "symnoise",
    "noisytune",
    "annealed_gaussian",
    "NoisyLinear",
    "PNI",
    "NoisyHardTanh",
    "NoisyHardSigmoid",
    "noisy_hard_activation",
    "DenoisingDataset",
    "DenoisingCollate",
    "PATRINI_MNIST",
    "label_smoothing",
    "flip_labels",
    "disturb_labels",
    "transition_matrix",
    "regression_noise",
    "mixup",
    "cutmix",
    "LabelSmoothing",
    "LabelFlip",
    "DisturbLabel",
    "Mixup",
    "CutMix",
]
