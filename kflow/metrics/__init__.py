"""Evaluation: classifier features, Frechet distance, improved precision/recall, CDR.
Needs the `metrics` extra only for tests against scipy / scikit-learn."""

from .classifier import ClassifierInfo, FeatureClassifier, train_classifier
from .evaluate import Scores, cdr, per_class_fd, reference_features, score_features
from .frechet import FeatureStats, PrecisionRecall, frechet_distance, precision_recall
from .psnr import psnr

__all__ = [
    "psnr",
    "FeatureClassifier",
    "ClassifierInfo",
    "train_classifier",
    "FeatureStats",
    "frechet_distance",
    "precision_recall",
    "PrecisionRecall",
    "score_features",
    "Scores",
    "per_class_fd",
    "cdr",
    "reference_features",
]
