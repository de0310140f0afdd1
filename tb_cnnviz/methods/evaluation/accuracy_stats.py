"""Accuracy broken down: by attribute bins with Wilson intervals, by class, as a confusion matrix, as a
reliability diagram, and as per-class precision-recall curves from streamed histograms.

All take per-example tensors (CPU or device) and return plain Python numbers, ready for JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

Z95 = 1.959963984540054  #: the normal quantile of a two-sided 95% interval


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion; (nan, nan) for no trials.

    Why Wilson: unlike the normal approximation it stays inside [0, 1] and is honest for small bins and
    for accuracies near 0 or 1, which is where the interesting bins are.
    """
    if trials <= 0:
        return math.nan, math.nan
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the ends, where rounding would stray
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def _bin_entry(label: object, correct: torch.Tensor) -> dict:
    count = int(correct.numel())
    hits = int(correct.sum().item()) if count else 0
    low, high = wilson_interval(hits, count)
    return {"bin": label, "count": count, "correct": hits, "accuracy": hits / count if count else math.nan,
            "low": low, "high": high}


def accuracy_by(values: Sequence | torch.Tensor, correct: torch.Tensor, bins: int = 10,
                categorical: bool | None = None) -> dict:
    """Accuracy per bin of an attribute. Numeric values: ``bins`` quantile bins (edges merged where values
    tie), NaN values left out and counted in ``excluded``. Categorical values (strings, or ``categorical=True``):
    one bin per category, in order of first appearance; whole numbers with at most ``bins`` distinct values (a
    0/1 flag, a small count) get one bin per value, in increasing order. Each bin has count, correct, accuracy and its Wilson
    95% interval."""
    correct = torch.as_tensor(correct).flatten().bool().cpu()
    if isinstance(values, torch.Tensor):
        values = values.detach().flatten().cpu()
        count = values.numel()
    else:
        values = list(values)
        count = len(values)
    if count != correct.numel():
        raise ValueError(f"the attribute has {count} values but there are {correct.numel()} examples; give one per example")
    if categorical is None:
        categorical = not isinstance(values, torch.Tensor) and any(isinstance(v, str) for v in values)
    if categorical:
        keys = [str(v) for v in (values.tolist() if isinstance(values, torch.Tensor) else values)]
        order = list(dict.fromkeys(keys))
        codes = torch.tensor([order.index(k) for k in keys]) if keys else torch.zeros(0, dtype=torch.long)
        return {"kind": "categorical", "excluded": 0,
                "bins": [_bin_entry(name, correct[codes == i]) for i, name in enumerate(order)]}
    numbers = values.double() if isinstance(values, torch.Tensor) else torch.tensor(
        [float(v) if v is not None else math.nan for v in values], dtype=torch.float64)
    finite = torch.isfinite(numbers)
    numbers, kept = numbers[finite], correct[finite]
    excluded = int((~finite).sum())
    if not numbers.numel():
        return {"kind": "numeric", "excluded": excluded, "edges": [], "bins": []}
    distinct = numbers.unique()
    if len(distinct) <= bins and bool((distinct == distinct.round()).all()):  # a flag or a small count: bin per value
        return {"kind": "categorical", "excluded": excluded,
                "bins": [_bin_entry(_number_label(v), kept[numbers == v]) for v in distinct.tolist()]}
    edges = torch.quantile(numbers, torch.linspace(0, 1, bins + 1, dtype=torch.float64)).unique()
    if edges.numel() == 1:  # every value the same: one bin
        edges = torch.cat([edges, edges])
    inner = edges[1:-1]
    which = torch.bucketize(numbers, inner, right=True)  # bin i holds edges[i] <= v < edges[i+1]; the last closed
    entries = [_bin_entry([edges[i].item(), edges[i + 1].item()], kept[which == i]) for i in range(len(edges) - 1)]
    return {"kind": "numeric", "excluded": excluded, "edges": edges.tolist(), "bins": entries}


def _number_label(value: float) -> str:
    return str(int(value)) if value.is_integer() else f"{value:.4g}"


def confusion_matrix(labels: torch.Tensor, predicted: torch.Tensor, classes: int) -> torch.Tensor:
    """(classes, classes) counts: row = true class, column = predicted class (scikit-learn's convention)."""
    labels, predicted = labels.flatten().long(), predicted.flatten().long()
    return torch.bincount(labels * classes + predicted, minlength=classes * classes).view(classes, classes)


def class_metrics(confusion: torch.Tensor) -> dict[str, list[float]]:
    """Per class: support, accuracy (the share of its examples called right, i.e. recall), precision and
    recall; 0 where undefined, as scikit-learn's ``zero_division=0``."""
    confusion = confusion.double()
    right = confusion.diagonal()
    support = confusion.sum(dim=1)
    called = confusion.sum(dim=0)
    recall = torch.where(support > 0, right / support.clamp_min(1), torch.zeros_like(right))
    precision = torch.where(called > 0, right / called.clamp_min(1), torch.zeros_like(right))
    return {"support": support.long().tolist(), "accuracy": recall.tolist(), "precision": precision.tolist(),
            "recall": recall.tolist()}


def calibration(confidence: torch.Tensor, correct: torch.Tensor, bins: int = 15) -> dict:
    """Reliability diagram over ``bins`` equal-width confidence bins, and the expected calibration error
    ``ECE = sum_b |B_b| / N * |accuracy(B_b) - confidence(B_b)|`` (Guo et al. 2017)."""
    confidence = confidence.detach().flatten().double().cpu()
    correct = correct.detach().flatten().double().cpu()
    finite = torch.isfinite(confidence)
    confidence, correct = confidence[finite], correct[finite]
    which = (confidence * bins).long().clamp(0, bins - 1)  # [b/bins, (b+1)/bins), 1.0 in the last
    count = torch.bincount(which, minlength=bins).double()
    mean_confidence = torch.bincount(which, confidence, minlength=bins) / count.clamp_min(1)
    accuracy = torch.bincount(which, correct, minlength=bins) / count.clamp_min(1)
    total = max(1, confidence.numel())
    ece = float((count / total * (accuracy - mean_confidence).abs()).sum())
    empty = count == 0
    return {
        "edges": torch.linspace(0, 1, bins + 1).tolist(),
        "count": count.long().tolist(),
        "confidence": mean_confidence.masked_fill(empty, math.nan).tolist(),
        "accuracy": accuracy.masked_fill(empty, math.nan).tolist(),
        "ece": ece,
        "excluded": int((~finite).sum()),
    }


def pr_curve_counts(positive_histogram: torch.Tensor, negative_histogram: torch.Tensor) -> dict[str, torch.Tensor]:
    """From per-threshold-bucket histograms (classes, T) of the scores of positives and negatives, the
    counts and rates of TensorBoard's PR-curve summary: an example counts as predicted positive at threshold
    ``t`` when its bucket is >= t (buckets ``floor(score * (T - 1))``, as ``pr_curve.summary.pb`` makes them)."""
    tp = positive_histogram.double().flip(-1).cumsum(-1).flip(-1)
    fp = negative_histogram.double().flip(-1).cumsum(-1).flip(-1)
    tn = fp[..., :1] - fp
    fn = tp[..., :1] - tp
    precision = tp / (tp + fp).clamp_min(1e-7)
    recall = tp / (tp + fn).clamp_min(1e-7)
    return {"tp": tp, "fp": fp, "tn": tn, "fn": fn, "precision": precision, "recall": recall}
