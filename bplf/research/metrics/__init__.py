"""Measuring generated faces: an emotion classifier, and fidelity metrics built on it."""

from bplf.research.metrics.classifier import (
    ClassifierConfig,
    EmotionCNN,
    evaluate_classifier,
    load_classifier,
    train_classifier,
)

__all__ = [
    "ClassifierConfig",
    "EmotionCNN",
    "evaluate_classifier",
    "load_classifier",
    "train_classifier",
]
