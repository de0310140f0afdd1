"""Where the network fails: one streamed pass of predictions, accuracy by class and by image attribute,
confusion, calibration."""

from .accuracy_stats import accuracy_by, calibration, class_metrics, confusion_matrix, pr_curve_counts, wilson_interval
from .image_attributes import image_attributes, saliency_concentration
from .predictions import Evaluation, WrongExample, evaluate

__all__ = [
    "Evaluation", "WrongExample", "accuracy_by", "calibration", "class_metrics", "confusion_matrix", "evaluate",
    "image_attributes", "pr_curve_counts", "saliency_concentration", "wilson_interval",
]
