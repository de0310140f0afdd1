"""Where the network fails: one streamed pass of predictions, accuracy by class and by image attribute,
confusion, calibration."""

from .accuracy_stats import accuracy_by, calibration, class_metrics, confusion_matrix, pr_curve_counts, wilson_interval
from .image_attributes import image_attributes, saliency_concentration
from .many_classes import confused_pairs, micro_histograms, pr_curve_classes
from .predictions import Evaluation, WrongExample, evaluate

__all__ = [
    "Evaluation", "WrongExample", "accuracy_by", "calibration", "class_metrics", "confused_pairs", "confusion_matrix",
    "evaluate", "image_attributes", "micro_histograms", "pr_curve_classes", "pr_curve_counts", "saliency_concentration", "wilson_interval",
]
