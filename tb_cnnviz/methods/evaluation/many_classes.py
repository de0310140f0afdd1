"""Reading results over many classes (ImageNet's 1000): the most confused class pairs as a ranked list, the
analysis Russakovsky et al. (ILSVRC, IJCV 2015) give when a 1000 x 1000 matrix is too big to read; a bounded
set of classes worth a PR curve; and the micro-averaged PR curve over every class."""

from __future__ import annotations

import torch

from .._hooks import check_positive_int


def confused_pairs(confusion: torch.Tensor, k: int = 50) -> list[dict]:
    """The ``k`` largest off-diagonal cells of a (classes, classes) confusion matrix (row = true class), most
    examples first (ties: lower true class, then lower predicted class), each as ``{"true", "predicted",
    "count", "share"}`` where ``share`` is the part of the true class's examples called that class."""
    check_positive_int(k, "k", "pairs to keep")
    if confusion.dim() != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"confusion must be a square (classes, classes) matrix; got shape {tuple(confusion.shape)}")
    classes = confusion.shape[0]
    counts = confusion.detach().long().cpu().clone()
    counts.fill_diagonal_(0)
    flat = counts.flatten()
    order = torch.argsort(-flat, stable=True)  # stable: equal counts stay in row-major (true, predicted) order
    kept = [int(i) for i in order[:k] if flat[i] > 0]
    support = confusion.detach().long().cpu().sum(dim=1)
    return [{"true": i // classes, "predicted": i % classes, "count": int(flat[i]),
             "share": float(flat[i]) / max(int(support[i // classes]), 1)} for i in kept]


def pr_curve_classes(support: torch.Tensor, accuracy: torch.Tensor, limit: int = 20) -> dict[str, list[int]]:
    """At most ``limit`` classes for PR curves: half the worst by accuracy (among classes with examples; ties:
    more examples first, then lower index) and the rest the most frequent not already chosen. Every class when
    there are at most ``limit``. Returns ``{"worst", "most_frequent", "classes"}`` (``classes``: both, sorted)."""
    check_positive_int(limit, "limit", "PR curves to write")
    support, accuracy = torch.as_tensor(support).long().cpu(), torch.as_tensor(accuracy).double().cpu()
    count = len(support)
    if count <= limit:
        return {"worst": [], "most_frequent": [], "classes": list(range(count))}
    present = [c for c in range(count) if support[c] > 0]
    worst = sorted(present, key=lambda c: (float(accuracy[c]), -int(support[c]), c))[: limit // 2]
    chosen = set(worst)
    frequent = [c for c in sorted(range(count), key=lambda c: (-int(support[c]), c)) if c not in chosen]
    frequent = frequent[: limit - len(worst)]
    return {"worst": worst, "most_frequent": frequent, "classes": sorted(chosen | set(frequent))}


def micro_histograms(positive_histogram: torch.Tensor, negative_histogram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, T) histograms of every (example, class) score, positives and negatives pooled over the classes:
    the micro-average of one-vs-rest PR curves (each threshold's true and false positives summed over classes)."""
    return positive_histogram.sum(dim=0, keepdim=True), negative_histogram.sum(dim=0, keepdim=True)
