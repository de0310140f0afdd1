"""The "Where it fails" view: one streamed pass over a data set, written as accuracy by class and by image
attribute, confusion, calibration and the most confidently wrong examples (the numbers come from
:mod:`.performance_report`), plus top-k scalars and PR curves for TensorBoard's own tabs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Callable

import torch
from torch import nn

from .. import metadata, summary
from ..methods.evaluation.accuracy_stats import pr_curve_counts
from ..methods.evaluation.many_classes import micro_histograms, pr_curve_classes
from ..methods.evaluation.predictions import evaluate
from ..sink import Sink
from .performance_report import align_attributes, performance_report


def log_performance(
    sink: Sink,
    model: nn.Module,
    data: Iterable,
    step: int,
    attributes: Mapping[str, Sequence] | str | None,
    class_names: Sequence[str] | None,
    examples: int,
    to_pixels: Callable[[torch.Tensor], torch.Tensor] | None,
    name: str,
    bins: int,
    topk: tuple[int, ...],
    saliency_concentration: bool,
) -> dict:
    """Evaluate ``model`` on ``data`` once and write the view; returns the top-k accuracies."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"name must be a non-empty string without '/', naming the data set; got {name!r}")
    result = evaluate(model, data, topk=topk, attributes=True, to_pixels=to_pixels, pr_curves=True,
                      wrong_examples=examples, saliency=saliency_concentration)
    if class_names is not None and len(class_names) != result.classes:
        raise ValueError(f"class_names has {len(class_names)} names but the model has {result.classes} classes")
    meta, sprites = performance_report(result, align_attributes(attributes, result.index), class_names, bins)
    values = []
    accuracies = {}
    if meta["labelled"]:
        for k in sorted(set(topk)):
            accuracies[f"top{k}"] = result.topk_accuracy(min(k, result.classes))
            values.append(summary.scalar_value(f"cnnviz/accuracy/{name}/top{k}", accuracies[f"top{k}"]))
        values += _pr_curves(result, meta, class_names, name)
    sink.write(summary.pictures_summary(metadata.PERFORMANCE, name, meta, sprites), step)
    if values:
        sink.write(summary.summary_pb2.Summary(value=values), step)
    return accuracies


#: PR curves written per call: every class up to this many, else the worst and the most frequent classes.
MAX_PR_CURVES = 20


def _pr_curves(result, meta: dict, class_names: Sequence[str] | None, name: str) -> list:
    """TensorBoard PR-curve values for a bounded set of classes (``pr_curve_classes``) plus the micro-average
    over every class (tag ``.../micro``); the choice is recorded in ``meta["pr_curves"]`` for the tab."""
    chosen = pr_curve_classes(meta["per_class"]["support"], meta["per_class"]["accuracy"], MAX_PR_CURVES)
    meta["pr_curves"] = {**chosen, "micro": True, "of": result.classes}
    counts = pr_curve_counts(result.positive_histogram, result.negative_histogram)
    micro = pr_curve_counts(*micro_histograms(result.positive_histogram, result.negative_histogram))
    keys = ("tp", "fp", "tn", "fn", "precision", "recall")
    values = []
    for c in chosen["classes"]:
        label = str(class_names[c]) if class_names is not None else str(c)
        values.append(summary.pr_curve_value(f"cnnviz/pr_curve/{name}/{c}", [counts[key][c].numpy() for key in keys], label))
    values.append(summary.pr_curve_value(f"cnnviz/pr_curve/{name}/micro", [micro[key][0].numpy() for key in keys],
                                         "micro-average over every class"))
    return values
