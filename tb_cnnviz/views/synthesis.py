"""The views of images made by the network: inversions (Mahendran & Vedaldi), class models (Simonyan et al.)
and channel images. Each optimises an input for seconds to minutes, so they are logged rarely.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import nn

from .. import metadata, render, summary
from ..methods._hooks import check_images, model_device, resolve_layers
from ..methods.dataset.receptive_field import feeding_conv
from ..methods.synthesis.activation_maximization import channel_count, channel_visualization, check_size, class_model
from ..methods.synthesis.inversion import default_inversion_layers, invert, normalised_correlation
from ..methods.targets import class_probabilities
from ..sink import Sink

CURVE_POINTS = 64  #: points kept of an optimisation's per-step series (the tab draws a sparkline)


def downsample(values: list[float], points: int) -> list[float]:
    """At most ``points`` values, evenly spaced, always keeping the first and the last."""
    if len(values) <= points:
        return values
    return [values[round(i * (len(values) - 1) / (points - 1))] for i in range(points)]


def log_inversion(
    sink: Sink,
    model: nn.Module,
    step: int,
    images: torch.Tensor,
    name: str,
    label: int | None,
    layers: Sequence[str] | None,
    steps: int,
    seed: int,
) -> str:
    """Reconstruct one image from its code at each of ``layers`` (default: up to four convs and the last linear
    layer), shallow to deep, and write the original beside the reconstructions on the original's scale."""
    if len(images) != 1:
        raise ValueError(f"image must be one image (C, H, W) or (1, C, H, W); got shape {tuple(images.shape)}")
    layers = list(layers) if layers is not None else default_inversion_layers(model)
    resolve_layers(model, layers, "layers")
    rows = []
    for layer in layers:
        started = time.perf_counter()
        result = invert(model, images, layer, steps=steps, seed=seed)
        rows.append((result, time.perf_counter() - started))
    lo, hi = images.min().item(), images.max().item()
    reconstructions = torch.cat([result.images.cpu() for result, _ in rows])
    meta = {
        "layers": layers,
        "steps": steps,
        "code_error": [result.final_code_error.item() for result, _ in rows],
        "curves": [downsample(result.code_error[:, 0].cpu().tolist(), CURVE_POINTS) for result, _ in rows],
        "correlation": normalised_correlation(reconstructions, images.cpu().expand_as(reconstructions)).tolist(),
        "seconds": [seconds for _, seconds in rows],
        "label": label,
        "height": images.shape[2],
        "width": images.shape[3],
    }
    pictures = render.pictures_in_range(torch.cat([images.cpu(), reconstructions]), lo, hi)
    sink.write(summary.pictures_summary(metadata.INVERSION, name, meta, pictures), step)
    return name


def log_class_models(
    sink: Sink,
    model: nn.Module,
    step: int,
    classes: Sequence[int] | None,
    class_names: Sequence[str] | None,
    size: tuple[int, int, int],
    steps: int,
    seed: int,
    jitter_pixels: int = 0,
    blur: float = 0.0,
) -> str:
    """Write class models of ``classes`` (default: the first ten classes) with how the net sees each."""
    size = check_size(size)
    if classes is None:
        classes = list(range(min(10, class_count(model, size))))
    result = class_model(model, list(classes), size=size, steps=steps, seed=seed, jitter_pixels=jitter_pixels, blur=blur)
    probabilities = class_probabilities(model, result.images).cpu()
    units = torch.tensor(result.units)
    meta = {
        "classes": result.units,
        "class_names": [str(class_names[c]) if class_names is not None and c < len(class_names) else str(c) for c in result.units],
        "score": result.objective[-1].cpu().tolist(),
        "probability": probabilities.gather(1, units[:, None])[:, 0].tolist(),
        "predicted": probabilities.argmax(dim=1).tolist(),
        "steps": steps,
        "height": size[1],
        "width": size[2],
    }
    sink.write(summary.pictures_summary(metadata.CLASS_MODEL, "classes", meta, render.input_pictures(result.images)), step)
    return "classes"


def log_channel_visualizations(
    sink: Sink,
    model: nn.Module,
    step: int,
    layer: str,
    channels: Sequence[int] | None,
    size: tuple[int, int, int],
    input_range: tuple[float, float],
    steps: int,
    seed: int,
) -> str:
    """Write one optimised image per channel of ``layer`` (default: its first 16 channels); the tab shows each
    beside the channel's top patches and filter when those are logged."""
    resolve_layers(model, [layer], "layer")
    size = check_size(size)
    if channels is None:
        channels = list(range(min(16, channel_count(model, layer, size))))
    result = channel_visualization(model, layer, list(channels), size=size, input_range=input_range, steps=steps, seed=seed)
    meta = {
        "channels": result.units,
        "activation": result.objective[-1].cpu().tolist(),
        "input_range": list(input_range),
        "filter_layer": feeding_conv(model, layer),
        "steps": steps,
        "height": size[1],
        "width": size[2],
    }
    pictures = render.pictures_in_range(result.images, *input_range)
    sink.write(summary.pictures_summary(metadata.CHANNEL_VIS, layer, meta, pictures), step)
    return layer


def class_count(model: nn.Module, size: tuple[int, int, int]) -> int:
    return class_probabilities(model, torch.zeros((1, *size), device=model_device(model))).shape[1]


def one_image(image: torch.Tensor) -> torch.Tensor:
    """``image`` as a batch of one: (C, H, W) or (1, C, H, W)."""
    return check_images(image[None] if isinstance(image, torch.Tensor) and image.dim() == 3 else image, "image")
