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
                     steps: int = CLASS_MODEL_STEPS, seed: int = 0, jitter_pixels: int = 0, blur: float = 0.0,
                     input_range: tuple[float, float] | None = None,
                     parameterization: str = "fourier") -> str:
    """Write class models of ``classes`` (default: the probe labels, else the first ten classes) at the probe
    images' size (or ``size``, (C, H, W)), inside ``input_range`` (default: the probe images' range, else
    [0, 1]); returns the name shown in the tab. ``parameterization``, ``jitter_pixels`` and ``blur`` are
    :func:`~tb_cnnviz.methods.class_model`'s (``"pixel"`` with blur: the former, Simonyan-style default)."""
    model = run.model
    size = check_size(run.input_size(size))
    input_range = probe_range(run, input_range)
    if classes is None and run.probe_labels:
        classes = sorted(set(run.probe_labels))
    if classes is None:
        classes = list(range(min(10, class_count(model, size, run.output))))
    result = class_model(model, list(classes), size=size, steps=steps, seed=seed, jitter_pixels=jitter_pixels,
                         blur=blur, output=run.output, input_range=input_range, parameterization=parameterization)
    probabilities = class_probabilities(model, result.images, run.output).cpu()
    units = torch.tensor(result.units)
    meta = {
        "classes": result.units,
        # None where the call named no class: the tab then takes the run's names (from log_performance), else the number
        "class_names": [str(class_names[c]) if class_names is not None and c < len(class_names) else None for c in result.units],
        "score": result.objective[-1].cpu().tolist(),
        "probability": probabilities.gather(1, units[:, None])[:, 0].tolist(),
        "predicted": probabilities.argmax(dim=1).tolist(),
        "steps": len(result.objective),  # taken: fewer than max_steps when the objective stopped improving
        "max_steps": steps,
        "input_range": list(input_range),
        "parameterization": parameterization,
        # an opacity channel over random backgrounds, the class's log-softmax maximised ("score" stays the logit)
        "transparent": result.transparent,
        "height": size[1],
        "width": size[2],
    }
    run.sink.write([summary.Pictures(KIND, "classes", meta, render.input_pictures(result.images))], step)
    return "classes"


def probe_range(run: LoggingRun, input_range: tuple[float, float] | None) -> tuple[float, float]:
    """``input_range``, else the probe images' range (the values the model's inputs take), else [0, 1]."""
    if input_range is not None:
        return tuple(input_range)  # type: ignore[return-value]
    images = run.probe_images
    return (images.min().item(), images.max().item()) if images is not None else (0.0, 1.0)


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
