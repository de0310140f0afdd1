"""The Activations and Filters views: each layer's maps for the probe images, each conv's weights with a noise
score. One PNG mosaic per picture, bounded in channels and pixels; the numbers the tab marks go beside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .. import metadata, render, summary
from ..methods._hooks import conv_layers, split_call
from ..methods.activations.filters import NOISE_THRESHOLD, noise_score
from ..methods.activations.maps import ActivationSnapshot, layer_activations
from ..sink import Sink


def log_activations(
    sink: Sink,
    model: nn.Module,
    images: torch.Tensor,
    step: int,
    layers: Sequence[str] | None,
    labels: Sequence[int] | None,
    max_channels: int,
    max_size: int,
) -> list[str]:
    """Write each layer's maps (``layers``; default ``methods.default_layers``: every conv and ReLU-like call, or a
    deep net's first conv and each block's output); returns the layers written."""
    snapshots = layer_activations(model, images, layers, max_channels, max_size)
    if not snapshots:
        raise ValueError(
            f"{type(model).__name__} has no conv or ReLU-like layer that ran; pass layers=[...] naming the modules to show"
        )
    modules = dict(model.named_modules())
    for order, (layer, snap) in enumerate(snapshots.items()):
        module, call = split_call(layer)
        module_type = type(modules[module]).__name__ if module in modules else ""
        sink.write(activation_summary(layer, snap, order, module, (call or 0) + 1, module_type, labels), step)
    return list(snapshots)


def activation_summary(
    layer: str,
    snap: ActivationSnapshot,
    order: int = 0,
    module: str | None = None,
    call: int = 1,
    module_type: str = "",
    labels: Sequence[int | None] | None = None,
) -> summary.summary_pb2.Summary:
    """One layer's activations for the probe images: meta JSON and one PNG mosaic per image."""
    pictures, tile, scale = render.activation_pictures(snap.maps)
    tile.update(source_height=snap.source_size[0], source_width=snap.source_size[1])
    n = snap.maps.shape[0]
    meta = {
        "module": module or layer,
        "call": call,
        "module_type": module_type,
        "shape": list(snap.shape),
        "channels": snap.channels,
        "channels_total": snap.channels_total,
        "tile": tile,
        "scale": scale,
        "stats": {"max": snap.max.tolist(), "mean": snap.mean.tolist(), "zero_fraction": snap.zero_fraction.tolist()},
        "dead": snap.dead,
        "nonfinite": snap.nonfinite,
        "labels": list(labels)[:n] if labels is not None else [None] * n,
        "omitted": {"channels": snap.channels_total - len(snap.channels), "downsampled": snap.downsampled},
    }
    return summary.pictures_summary(metadata.ACTIVATIONS, layer, meta, pictures, order)


def log_filters(
    sink: Sink, model: nn.Module, step: int, layers: Sequence[str] | None, max_filters: int, max_inputs: int
) -> list[str]:
    """Write every 2-D conv's weights (of ``layers``, if given) with per-filter noise scores; returns the convs."""
    all_convs = conv_layers(model)
    convs = {n: m for n, m in all_convs.items() if m.weight is not None and m.weight.dim() == 4}
    if layers is not None:
        wanted = {split_call(layer)[0] for layer in layers}
        convs = {n: m for n, m in convs.items() if n in wanted}
    if not convs:
        raise ValueError(
            f"{type(model).__name__} has no 2-D convolution (nn.Conv2d) "
            + ("among layers=" + repr(list(layers)) if layers is not None else "")
            + "; log_filters shows conv weights only"
        )
    first_conv = next(iter(all_convs.values()))
    noise = []
    for order, (layer, conv) in enumerate(convs.items()):
        rgb = conv is first_conv and conv.weight.shape[1] == 3  # the input image's colours
        with torch.inference_mode():
            scores = noise_score(conv.weight.detach()).cpu()  # every filter's, once: the picture shows the first
        sink.write(filter_summary(layer, conv.weight, order, max_filters, max_inputs, rgb=rgb,
                                  noise=scores[:max_filters]), step)
        noise.append(summary.scalar_value(metadata.FILTER_NOISE_PREFIX + layer, float(scores.mean())))
    sink.write(summary.summary_pb2.Summary(value=noise), step)  # beside the loss: noisy filters over training
    return list(convs)


def filter_summary(
    layer: str, weight: torch.Tensor, order: int = 0, max_filters: int = 64, max_inputs: int = 16, rgb: bool = False,
    noise: torch.Tensor | None = None,
) -> summary.summary_pb2.Summary:
    """One conv layer's filters: meta JSON (with each filter's noise score: ``noise``, if the caller has it)
    and one PNG mosaic; ``rgb`` draws each filter as a colour tile (for a first layer on RGB images)."""
    if weight.dim() != 4:
        raise ValueError(f"filters of {layer!r}: expected a 2-D conv weight (out, in, kH, kW); got {tuple(weight.shape)}")
    weight = weight.detach()
    shown = weight[:max_filters]
    noise = noise_score(shown).cpu() if noise is None else noise
    picture, layout = render.filter_picture(shown, max_inputs=max_inputs, rgb=rgb)
    meta = {
        "shape": list(weight.shape),
        "mode": layout["mode"],
        "filters": list(range(shown.shape[0])),
        "filters_total": weight.shape[0],
        "inputs": layout["inputs"],
        "inputs_total": weight.shape[1],
        "tile": layout["tile"],
        "scale": layout["scale"],
        "noise": noise.tolist(),
        "noise_threshold": NOISE_THRESHOLD,
        "noisy": torch.nonzero(noise > NOISE_THRESHOLD).flatten().tolist(),
        "omitted": {"filters": weight.shape[0] - shown.shape[0], "inputs": weight.shape[1] - len(layout["inputs"])},
    }
    if "sub" in layout:
        sub = layout["sub"]
        meta["sub"] = {"rows": sub["rows"], "cols": sub["cols"], "kernel_h": sub["height"],
                       "kernel_w": sub["width"], "gap": sub["gap"]}
    return summary.pictures_summary(metadata.FILTERS, layer, meta, [picture], order)
