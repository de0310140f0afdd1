"""The "Where it fails" view: one streamed pass over a data set, written as accuracy by class and by image
attribute, confusion, calibration and the most confidently wrong examples (the numbers come from
:mod:`.performance_report`), plus top-k scalars and PR curves for TensorBoard's own tabs.

Kind ``performance``, a blob sequence per data set (the "layer" is the data set's name): [meta JSON (accuracy by
class, confusion, attribute bins, calibration), PNG sprite of the most confidently wrong examples, PNG sprite of
their saliency maps]. Beside it, ``cnnviz/accuracy/<name>/top<k>`` scalars and ``cnnviz/pr_curve/<name>/<class>``
in the PR Curves plugin's own format (every class up to 20; above, the 10 worst and the most frequent, as the
meta's ``pr_curves`` records), with ``cnnviz/pr_curve/<name>/micro``, the micro-average over every class.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable

import torch

from .. import summary
from ..methods.evaluation.accuracy_stats import pr_curve_counts
from ..methods.evaluation.many_classes import micro_histograms, pr_curve_classes
from ..methods.evaluation.predictions import evaluate
from .declaration import LoggingRun, Scheduled, View, data_images
from .performance_report import align_attributes, performance_report


KIND = "performance"


def log_performance(run: LoggingRun, *, data: Iterable, step: int, attributes: Mapping[str, Sequence] | str | None = None,
                    class_names: Sequence[str] | None = None, examples: int = 16,
                    to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None, name: str = "eval",
                    bins: int = 10, topk: tuple[int, ...] = (1, 5), saliency_concentration: bool = False) -> dict:
    """Evaluate the model on ``data`` once and write the view; returns the top-k accuracies."""
    model = run.model
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"name must be a non-empty string without '/', naming the data set; got {name!r}")
    result = evaluate(model, data, topk=topk, attributes=True, to_pixels=to_pixels, pr_curves=True,
                      wrong_examples=examples, saliency=saliency_concentration, output=run.output)
    if class_names is not None and len(class_names) != result.classes:
        raise ValueError(f"class_names has {len(class_names)} names but the model has {result.classes} classes")
    meta, sprites = performance_report(result, align_attributes(attributes, result.index), class_names, bins)
    beside = []
    accuracies = {}
    if meta["labelled"]:
        for k in sorted(set(topk)):
            accuracies[f"top{k}"] = result.topk_accuracy(min(k, result.classes))
            beside.append(summary.Scalar(f"accuracy/{name}/top{k}", accuracies[f"top{k}"]))
        beside += _pr_curves(result, meta, class_names, name)
    run.sink.write([summary.Pictures(KIND, name, meta, sprites), *beside], step)
    return accuracies


#: PR curves written per call: every class up to this many, else the worst and the most frequent classes.
MAX_PR_CURVES = 20


def _pr_curves(result, meta: dict, class_names: Sequence[str] | None, name: str) -> list[summary.PRCurve]:
    """TensorBoard PR curves for a bounded set of classes (``pr_curve_classes``) plus the micro-average
    over every class (tag ``.../micro``); the choice is recorded in ``meta["pr_curves"]`` for the tab."""
    chosen = pr_curve_classes(meta["per_class"]["support"], meta["per_class"]["accuracy"], MAX_PR_CURVES)
    meta["pr_curves"] = {**chosen, "micro": True, "of": result.classes}
    counts = pr_curve_counts(result.positive_histogram, result.negative_histogram)
    micro = pr_curve_counts(*micro_histograms(result.positive_histogram, result.negative_histogram))
    keys = ("tp", "fp", "tn", "fn", "precision", "recall")
    values = []
    for c in chosen["classes"]:
        label = str(class_names[c]) if class_names is not None else str(c)
        values.append(summary.PRCurve(f"pr_curve/{name}/{c}", [counts[key][c].numpy() for key in keys], label))
    values.append(summary.PRCurve(f"pr_curve/{name}/micro", [micro[key][0].numpy() for key in keys],
                                  "micro-average over every class"))
    return values


def _analyze(job: Any) -> None:
    if job.data.labels is None:
        raise job.error("a flat folder has no labels: give one subfolder per class for the accuracy views")
    job.viz.log_performance(job.data, job.step, class_names=job.data.classes, to_pixels=job.data.to_pixels)


VIEW = View(KIND, calls=(log_performance,), analyze=_analyze, folder_classes=True,
            autolog=(Scheduled(KIND, lambda run, step, data: log_performance(run, data=data, step=step),
                               lambda run, data: data_images(data) / run.probe_count(), needs_data=True),))
