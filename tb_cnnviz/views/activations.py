"""The Activations view: each layer's maps for the probe images, one PNG mosaic per image, bounded in channels
and pixels, with the numbers the tab marks beside them.

Kind ``activations``, a blob sequence: [meta JSON (shape, channels shown, tile layout, per-channel scale and
stats, dead and non-finite channels, labels), PNG mosaic per probe image].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .. import render, summary
from ..methods._hooks import split_call
from ..methods.activations.maps import ActivationSnapshot, layer_activations
from .declaration import LoggingRun, Scheduled, View


KIND = "activations"


def log_activations(run: LoggingRun, *, step: int, images: torch.Tensor | None = None) -> list[str]:
    """Write each layer's maps (the run's ``layers``; default ``methods.default_layers``: every conv and
    ReLU-like call, or a deep net's first conv and each block's output) for the probe images (or ``images``);
    returns the layers written."""
    images = run.images(images)
    model = run.model
    snapshots = layer_activations(model, images, run.layers, run.max_channels, run.max_size)
    if not snapshots:
        raise ValueError(
            f"{type(model).__name__} has no conv or ReLU-like layer that ran; pass layers=[...] naming the modules to show"
        )
    modules = dict(model.named_modules())
    labels = run.labels_of(images)
    records = []
    for order, (layer, snap) in enumerate(snapshots.items()):
        module, call = split_call(layer)
        module_type = type(modules[module]).__name__ if module in modules else ""
        records.append(activation_record(layer, snap, order, module, (call or 0) + 1, module_type, labels))
    run.sink.write(records, step)
    return list(snapshots)


def activation_record(
    layer: str,
    snap: ActivationSnapshot,
    order: int = 0,
    module: str | None = None,
    call: int = 1,
    module_type: str = "",
    labels: Sequence[int | None] | None = None,
) -> summary.Pictures:
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
    return summary.Pictures(KIND, layer, meta, pictures, order)


def _analyze(job: Any) -> None:
    job.viz.log_activations(job.step)


VIEW = View(KIND, calls=(log_activations,), analyze=_analyze,
            autolog=(Scheduled(KIND, lambda run, step, data: log_activations(run, step=step), lambda run, data: 1.0),))


