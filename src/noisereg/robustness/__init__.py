"""Robustness of trained models: the corruption suite with mCE, and certification by randomized smoothing.

- :func:`evaluate_corruptions` (accuracy and loss per corruption and severity, Hendrycks & Dietterich
  2019 constants or tabular levels), :func:`mce`, :func:`relative_mce`, :func:`corrupt`.
- :func:`certify`, :func:`predict`, :func:`certified_accuracy` (Cohen, Rosenfeld & Kolter 2019).
"""

from noisereg.robustness.corruptions import (
    CORRUPTIONS,
    PARAMETERS,
    SEVERITY_CONSTANTS,
    Constants,
    Corruption,
    corrupt,
    corruption_strength,
)
from noisereg.robustness.smoothing import ABSTAIN, Certificate, certified_accuracy, certify, predict
from noisereg.robustness.suite import CorruptionResult, evaluate_corruptions, mce, relative_mce

__all__ = [
    "ABSTAIN",
    "CORRUPTIONS",
    "PARAMETERS",
    "SEVERITY_CONSTANTS",
    "Certificate",
    "Constants",
    "Corruption",
    "CorruptionResult",
    "certified_accuracy",
    "certify",
    "corrupt",
    "corruption_strength",
    "evaluate_corruptions",
    "mce",
    "predict",
    "relative_mce",
]
