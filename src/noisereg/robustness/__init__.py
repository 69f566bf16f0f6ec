"""Robustness of trained models: certification by randomized smoothing and corruption benchmarks."""

from noisereg.robustness.smoothing import ABSTAIN, Certificate, certified_accuracy, certify, predict

__all__ = ["ABSTAIN", "Certificate", "certified_accuracy", "certify", "predict"]
