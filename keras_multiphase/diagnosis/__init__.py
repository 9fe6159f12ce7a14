"""Diagnosis of training dynamics: collapse, plateau, dominance, fixed rate."""

from keras_multiphase.diagnosis.report import DiagnosisReport, diagnose
from keras_multiphase.diagnosis.signs import SIGN_NAMES, Sign

__all__ = ["DiagnosisReport", "SIGN_NAMES", "Sign", "diagnose"]
