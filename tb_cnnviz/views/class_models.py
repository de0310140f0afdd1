"""The Class models view: an input optimised to maximise each class's score (Simonyan et al.), with how the net
sees each. It optimises for seconds to minutes, so it is logged rarely.

Kind ``class_models`` (``class_model`` in files written before the rename), a blob sequence (the "layer" is
``classes``): [meta JSON (classes, their names, final scores, probabilities, predictions), PNG per class].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .. import render, summary
from ..methods._hooks import model_device
from ..methods.synthesis.activation_maximization import CLASS_MODEL_STEPS, check_size, class_model
from ..methods.targets import Output, class_probabilities
from .declaration import LoggingRun, Scheduled, View

KIND = "class_models"


def log_class_models(run: LoggingRun, *, step: int, classes: Sequence[int] | None = None,
                     class_names: Sequence[str] | None = None, size: tuple[int, int, int] | None = None,
                     steps: int = CLASS_MODEL_STEPS, seed: int = 0, jitter_pixels: int = 0, blur: float = 0.0) -> str:
    """Write class models of ``classes`` (default: the probe labels, else the first ten classes) at the probe
    images' size (or ``size``, (C, H, W)); returns the name shown in the tab. ``jitter_pixels`` and ``blur``
    regularise as in :func:`~tb_cnnviz.methods.class_model` (without them a net that reads fine texture gives
    noise)."""
    model = run.model
    size = check_size(run.input_size(size))
    if classes is None and run.probe_labels:
        classes = sorted(set(run.probe_labels))
    if classes is None:
        classes = list(range(min(10, class_count(model, size, run.output))))
    result = class_model(model, list(classes), size=size, steps=steps, seed=seed, jitter_pixels=jitter_pixels, blur=blur,
                         output=run.output)
    probabilities = class_probabilities(model, result.images, run.output).cpu()
    units = torch.tensor(result.units)
    meta = {
        "classes": result.units,
        # None where the call named no class: the tab then takes the run's names (from log_performance), else the number
        "class_names": [str(class_names[c]) if class_names is not None and c < len(class_names) else None for c in result.units],
        "score": result.objective[-1].cpu().tolist(),
        "probability": probabilities.gather(1, units[:, None])[:, 0].tolist(),
        "predicted": probabilities.argmax(dim=1).tolist(),
        "steps": steps,
        "height": size[1],
        "width": size[2],
    }
    run.sink.write([summary.Pictures(KIND, "classes", meta, render.input_pictures(result.images))], step)
    return "classes"


def class_count(model: nn.Module, size: tuple[int, int, int], output: Output = None) -> int:
    return class_probabilities(model, torch.zeros((1, *size), device=model_device(model)), output).shape[1]


def _analyze(job: Any) -> None:
    job.viz.log_class_models(job.step, class_names=job.data.classes)


def _class_model_passes(run: LoggingRun, data: Any) -> float:
    """The default steps of a forward and backward of one image per class (the probe labels', else ten)."""
    classes = len(set(run.probe_labels)) if run.probe_labels else 10
    return CLASS_MODEL_STEPS * 3 * classes / run.probe_count()


VIEW = View(KIND, calls=(log_class_models,), analyze=_analyze, opt_in=True, folder_classes=True,
            autolog=(Scheduled(KIND, lambda run, step, data: log_class_models(run, step=step), _class_model_passes),))
