"""The Inversion view: one image reconstructed from its code at several layers, shallow to deep, by gradient
descent with total-variation and norm regularisers (Mahendran & Vedaldi). It optimises for seconds per layer,
so it is logged rarely.

Kind ``inversion``, a blob sequence (the "layer" is the image's name): [meta JSON (layers, code error and its
curve per layer, correlation with the original, seconds: every layer is one row of one batched optimisation,
whose time is split evenly), PNG of the original, PNG per layer's reconstruction, all on the original's
scale].
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from .. import render, summary
from ..methods._hooks import check_images, resolve_layers
from ..methods.synthesis.inversion import (INVERSION_STEPS, default_inversion_layers, invert_layers,
                                           normalised_correlation)
from .declaration import LoggingRun, Scheduled, View

KIND = "inversion"
CURVE_POINTS = 64  #: points kept of an optimisation's per-step series (the tab draws a sparkline)


def downsample(values: list[float], points: int) -> list[float]:
    """At most ``points`` values, evenly spaced, always keeping the first and the last."""
    if len(values) <= points:
        return values
    return [values[round(i * (len(values) - 1) / (points - 1))] for i in range(points)]


def log_inversion(run: LoggingRun, *, step: int, image: torch.Tensor | None = None, layers: Sequence[str] | None = None,
                  steps: int = INVERSION_STEPS, name: str | None = None, seed: int = 0) -> str:
    """Reconstruct one image (default: the first probe image) from its code at each of ``layers`` (default: up
    to four convs from first to last, and the last linear layer), shallow to deep, and write the original
    beside the reconstructions on the original's scale; returns the name shown in the tab."""
    if image is None:
        images, name, label = run.images(None)[:1], name or "probe 0", (run.probe_labels or [None])[0]
    else:
        images, name, label = one_image(image), name or "image", None
    model = run.model
    if len(images) != 1:
        raise ValueError(f"image must be one image (C, H, W) or (1, C, H, W); got shape {tuple(images.shape)}")
    layers = list(layers) if layers is not None else default_inversion_layers(model)
    resolve_layers(model, layers, "layers")
    started = time.perf_counter()
    results = invert_layers(model, images, layers, steps=steps, seed=seed)
    share = (time.perf_counter() - started) / len(layers)
    rows = [(result, share) for result in results]
    lo, hi = images.min().item(), images.max().item()
    reconstructions = torch.cat([result.images.cpu() for result, _ in rows])
    meta = {
        "layers": layers,
        "steps": len(rows[0][0].code_error),  # taken: fewer than max_steps when the loss stopped improving
        "max_steps": steps,
        "code_error": [result.final_code_error.item() for result, _ in rows],
        "curves": [downsample(result.code_error[:, 0].cpu().tolist(), CURVE_POINTS) for result, _ in rows],
        "correlation": normalised_correlation(reconstructions, images.cpu().expand_as(reconstructions)).tolist(),
        "seconds": [seconds for _, seconds in rows],
        "label": label,
        "height": images.shape[2],
        "width": images.shape[3],
    }
    pictures = render.pictures_in_range(torch.cat([images.cpu(), reconstructions]), lo, hi)
    run.sink.write([summary.Pictures(KIND, name, meta, pictures)], step)
    return name


def one_image(image: torch.Tensor) -> torch.Tensor:
    """``image`` as a batch of one: (C, H, W) or (1, C, H, W)."""
    return check_images(image[None] if isinstance(image, torch.Tensor) and image.dim() == 3 else image, "image")


def _analyze(job: Any) -> None:
    job.viz.log_inversion(job.step)


VIEW = View(KIND, calls=(log_inversion,), analyze=_analyze, opt_in=True,
            autolog=(Scheduled(KIND, lambda run, step, data: log_inversion(run, step=step),
                               lambda run, data: INVERSION_STEPS * 5 * 3 / run.probe_count()),))
