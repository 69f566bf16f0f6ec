"""Noise at every site of a model users already have.

Target noise (labels, regression targets, mixing) lives in :mod:`noisereg.sites.targets` and
:mod:`noisereg.sites.mixing` as pure tensor functions and frozen configs.
"""

from noisereg.sites.mixing import CutMix, MixingLayer, Mixup, cutmix, mixup
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

__all__ = [
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
    "MixingLayer",
]
