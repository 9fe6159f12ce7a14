"""Diagnosis of training dynamics: collapse, plateau, dominance, fixed rate."""

from keras_multiphase.diagnosis.heads import HeadDiagnosis
from keras_multiphase.diagnosis.report import DiagnosisReport, diagnose
from keras_multiphase.diagnosis.signs import SIGN_NAMES, Sign

__all__ = ["DiagnosisReport", "HeadDiagnosis", "SIGN_NAMES", "Sign", "diagnose"]
