"""The "Where it looks" view: attribution maps (saliency, DeconvNet, guided backprop, Grad-CAM, SmoothGrad) and
occlusion heat maps for the probe images, each recording which class it explains and how sure the net was, and
with ``checks=True`` whether it can be trusted (map_checks.py).

Kind ``attribution``, a blob sequence per method (the "layer" is the method's name): [meta JSON (classes
explained and their probabilities, display style and scale; the stability against the previous logged step,
map_stability.py; with ``checks=True`` the map checks: sanity, deletion / insertion, pointing), input PNG per
probe image, map PNG per probe image (none for occlusion, whose probabilities are numbers in the meta)].
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Union

import torch
from torch import nn

from .. import render, summary
from ..methods.attribution.occlusion import occlusion, occlusion_grid
from ..methods.attribution.registry import CAM_METHODS, METHODS, attribution_map, check_method
from ..methods.checks import check_map, occlusion_importance
from ..methods.targets import Output, class_probabilities, resolve_targets
from .declaration import LoggingRun, Scheduled, View
from .map_checks import CHECK_LAYERS, CHECK_STEPS, check_masks, checks_meta, checks_scalars
from .map_stability import stability_scalars

#: The classes to explain: one for all images, one per image, or None (the labels, else the prediction).
Targets = Union[int, Sequence[int], torch.Tensor, None]
KIND = "attribution"


def log_saliency(run: LoggingRun, *, step: int, images: torch.Tensor | None = None, targets: Targets = None,
                 method: str = "guided_backprop", smooth: bool = False, n: int = 25, sigma: float = 0.15,
                 checks: bool = False, masks: torch.Tensor | None = None) -> str:
    """Write one attribution method's maps for the probe images (or ``images``); returns the name shown in the
    tab (``smoothgrad(<method>)`` when smoothed). ``checks``: also the map checks (map_checks.py), scored
    against ``masks`` (N, H, W) when given."""
    images = run.images(images)
    model, labels = run.model, run.labels_of(images)
    check_method(method)
    masks = check_masks(masks, images, checks)
    probabilities, chosen = explained_classes(model, images, targets, labels, run.output)
    cam_layer = run.cam_layer(images) if method in CAM_METHODS else None
    raw = attribution_map(method, model, images, chosen, smooth=smooth, n=n, sigma=sigma, layer=cam_layer,
                          output=run.output)
    style, values, scale, nonfinite = render.display_map(method, raw)
    name = f"smoothgrad({method})" if smooth else method
    meta = {
        **class_meta(probabilities, chosen, labels),
        "method": method,
        "smooth": {"n": n, "sigma": sigma} if smooth else None,
        "style": style,
        "scale": scale,
        "nonfinite": nonfinite,
        # one value at every pixel (not zero: its scale says that): a map that ranks no pixel above another
        "constant": [bool(flat.max() == flat.min()) and size > 0 for flat, size in zip(values.flatten(1), scale)],
        "height": images.shape[2],
        "width": images.shape[3],
        "cam_layer": cam_layer,
    }
    settings = (method, smooth, n, sigma, cam_layer)
    meta["stability"] = run.map_history.compare(name, step, images, chosen, raw, settings)
    if checks:
        options = {"smooth": smooth, "n": n, "sigma": sigma, "layer": cam_layer}
        found = check_map(model, images, chosen, method, raw, masks=masks, steps=CHECK_STEPS, output=run.output,
                          at_most=CHECK_LAYERS, **options)
        meta["checks"] = checks_meta(found)
    order = list(METHODS).index(method) + (len(METHODS) if smooth else 0)
    pictures = [*render.input_pictures(images), *render.unit_pictures(values)]
    scalars = [*(checks_scalars(name, found) if checks else []), *stability_scalars(name, meta["stability"])]
    run.sink.write([summary.Pictures(KIND, name, meta, pictures, order), *scalars], step)
    return name


def log_occlusion(run: LoggingRun, *, step: int, images: torch.Tensor | None = None, targets: Targets = None,
                  window: int | None = None, stride: int | None = None, fill: float = 0.0, batch_size: int = 64,
                  checks: bool = False, masks: torch.Tensor | None = None) -> str:
    """Write occlusion maps (Zeiler & Fergus) for the probe images (or ``images``): the probability of the
    explained class as the occluder slides. ``window`` defaults to 32 px on images of 128 px and more, else a
    quarter of the shorter side; ``stride`` to half the window. ``checks``: also the map checks, the pixels
    ranked by :func:`occlusion_importance`."""
    images = run.images(images)
    model, labels = run.model, run.labels_of(images)
    masks = check_masks(masks, images, checks)
    height, width = images.shape[2:]
    window, stride = default_occluder(height, width, window, stride)
    rows, cols = occlusion_grid(height, width, window, stride)
    probabilities, chosen = explained_classes(model, images, targets, labels, run.output)
    raw = occlusion(model, images, chosen, window=window, stride=stride, fill=fill, batch_size=batch_size,
                    output=run.output)
    heat, nonfinite = render.finite(raw.float().cpu())
    meta = {
        **class_meta(probabilities, chosen, labels),
        "method": "occlusion",
        "style": "occlusion",
        "nonfinite": nonfinite,
        "height": height,
        "width": width,
        "grid": {"window": window, "stride": stride, "fill": fill, "rows": rows, "cols": cols, "values": heat.tolist()},
        "stability": run.map_history.compare("occlusion", step, images, chosen, raw, (window, stride, fill)),
    }
    if checks:
        again = functools.partial(occlusion, window=window, stride=stride, fill=fill, batch_size=batch_size, progress=False,
                                  output=run.output)
        pixels = occlusion_importance(raw, height, width, window, stride)
        found = check_map(model, images, chosen, again, raw, importance=pixels, masks=masks, steps=CHECK_STEPS,
                          output=run.output, at_most=CHECK_LAYERS)
        meta["checks"] = checks_meta(found)
    pictures = render.input_pictures(images)
    scalars = [*(checks_scalars("occlusion", found) if checks else []),
               *stability_scalars("occlusion", meta["stability"])]
    run.sink.write([summary.Pictures(KIND, "occlusion", meta, pictures, 2 * len(METHODS)), *scalars], step)
    return "occlusion"


def explained_classes(
    model: nn.Module, images: torch.Tensor, targets: Targets, labels: list[int] | None, output: Output = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(class probabilities, the class each map explains): ``targets`` given, else the labels, else the
    predicted class."""
    probabilities = class_probabilities(model, images, output)
    if targets is not None and not isinstance(targets, (int, torch.Tensor)):
        targets = torch.as_tensor(list(targets))
    if targets is None and labels is not None:
        targets = torch.as_tensor(labels)
    return probabilities, resolve_targets(targets, probabilities)


def class_meta(probabilities: torch.Tensor, targets: torch.Tensor, labels: list[int] | None) -> dict:
    """What the tab prints beside each map: the class explained and its probability, the prediction, the label."""
    probabilities = probabilities.cpu()
    targets = targets.cpu()
    predicted_probability, predicted = probabilities.max(dim=1)
    return {
        "images": len(probabilities),
        "classes": probabilities.shape[1],
        "targets": targets.tolist(),
        "target_probability": probabilities.gather(1, targets[:, None])[:, 0].tolist(),
        "predicted": predicted.tolist(),
        "predicted_probability": predicted_probability.tolist(),
        "labels": list(labels) if labels is not None else [None] * len(probabilities),
    }


def _analyze(job: Any) -> None:
    for method in ("saliency", "guided_backprop", "grad_cam"):
        job.viz.log_saliency(job.step, method=method)
    job.viz.log_occlusion(job.step)


def default_occluder(height: int, width: int, window: int | None = None, stride: int | None = None) -> tuple[int, int]:
    """The occluder's window (32 px on images of 128 px and more, else a quarter of the shorter side) and
    stride (half the window), where not given."""
    if window is None:
        window = 32 if min(height, width) >= 128 else max(1, min(height, width) // 4)
    return window, max(1, window // 2) if stride is None else stride


def _occlusion_passes(run: LoggingRun, data: Any) -> float:
    """One forward of the probe batch per occluder position (the default window and stride)."""
    height, width = run.probe_images.shape[2:] if run.probe_images is not None else (64, 64)
    rows, cols = occlusion_grid(height, width, *default_occluder(height, width))
    return float(rows * cols)


#: what autolog logs of "Where it looks": the two maps users read most, and occlusion
AUTOLOG = (
    Scheduled("guided_backprop", lambda run, step, data: log_saliency(run, step=step, method="guided_backprop"),
              lambda run, data: 3.0),
    Scheduled("grad_cam", lambda run, step, data: log_saliency(run, step=step, method="grad_cam"),
              lambda run, data: 3.0),
    Scheduled("occlusion", lambda run, step, data: log_occlusion(run, step=step), _occlusion_passes),
)

VIEW = View(KIND, calls=(log_saliency, log_occlusion), analyze=_analyze, analyze_names=("saliency", "occlusion"),
            autolog=AUTOLOG)
