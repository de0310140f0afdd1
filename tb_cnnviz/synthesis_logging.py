"""The CNNViz calls that write images made by the network: inversions, class models, channel images.

A mixin of :class:`~tb_cnnviz.logger.CNNViz`: the views optimise an input (seconds to minutes each), so they
live apart from the cheap per-step views; they use the facade's model, sink, probe images and guard.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Callable

import torch
from torch import nn

from . import metadata, render, summary
from .guard import logging_call
from .methods._hooks import check_images, model_device, resolve_layers
from .methods.synthesis.activation_maximization import channel_count, channel_visualization, check_size, class_model
from .methods.synthesis.inversion import default_inversion_layers, invert, normalised_correlation
from .methods.dataset.receptive_field import feeding_conv
from .methods.targets import class_probabilities

CURVE_POINTS = 64  #: points kept of an optimisation's per-step series (the tab draws a sparkline)


def downsample(values: list[float], points: int) -> list[float]:
    """At most ``points`` values, evenly spaced, always keeping the first and the last."""
    if len(values) <= points:
        return values
    return [values[round(i * (len(values) - 1) / (points - 1))] for i in range(points)]


class SynthesisViews:
    """Inversion, class models and channel images for :class:`~tb_cnnviz.logger.CNNViz`."""

    model: nn.Module
    probe_images: torch.Tensor | None
    probe_labels: list[int] | None
    _sink: summary.SummarySink
    _own_passes: Callable[[], AbstractContextManager[None]]
    _images: Callable[[torch.Tensor | None], torch.Tensor]

    @logging_call
    def log_inversion(
        self,
        step: int,
        image: torch.Tensor | None = None,
        layers: Sequence[str] | None = None,
        steps: int = 200,
        name: str | None = None,
        seed: int = 0,
    ) -> str | None:
        """Reconstruct one image (default: the first probe image) from its code at each of ``layers``
        (default: up to four convs from first to last, and the last linear layer), shallow to deep, and
        write the original beside the reconstructions; returns the name shown in the tab."""
        if image is None:
            images, name = self._images(None)[:1], name or "probe 0"
        else:
            images = check_images(image[None] if isinstance(image, torch.Tensor) and image.dim() == 3 else image, "image")
            if len(images) != 1:
                raise ValueError(f"image must be one image (C, H, W) or (1, C, H, W); got shape {tuple(images.shape)}")
            name = name or "image"
        layers = list(layers) if layers is not None else default_inversion_layers(self.model)
        resolve_layers(self.model, layers, "layers")
        rows = []
        with self._own_passes():
            for layer in layers:
                started = time.perf_counter()
                result = invert(self.model, images, layer, steps=steps, seed=seed)
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
            "label": self.probe_labels[0] if image is None and self.probe_labels else None,
            "height": images.shape[2],
            "width": images.shape[3],
        }
        pictures = render.pictures_in_range(torch.cat([images.cpu(), reconstructions]), lo, hi)
        self._sink.write(summary.pictures_summary(metadata.INVERSION, name, meta, pictures), step)
        return name

    @logging_call
    def log_class_models(
        self,
        step: int,
        classes: Sequence[int] | None = None,
        class_names: Sequence[str] | None = None,
        size: tuple[int, int, int] | None = None,
        steps: int = 200,
        seed: int = 0,
    ) -> str | None:
        """Write class models (Simonyan et al.) of ``classes`` (default: the probe labels, else the first ten
        classes) at the probe images' size (or ``size``, (C, H, W)); returns the name shown in the tab."""
        size = self._input_size(size)
        with self._own_passes():
            if classes is None:
                classes = sorted(set(self.probe_labels)) if self.probe_labels else list(range(min(10, self._class_count(size))))
            result = class_model(self.model, list(classes), size=size, steps=steps, seed=seed)
            probabilities = class_probabilities(self.model, result.images).cpu()
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
        self._sink.write(summary.pictures_summary(metadata.CLASS_MODEL, "classes", meta, render.input_pictures(result.images)), step)
        return "classes"

    @logging_call
    def log_channel_visualizations(
        self,
        step: int,
        layer: str,
        channels: Sequence[int] | None = None,
        size: tuple[int, int, int] | None = None,
        input_range: tuple[float, float] | None = None,
        steps: int = 256,
        seed: int = 0,
    ) -> str | None:
        """Write one optimised image per channel of ``layer`` (default: its first 16 channels) at the probe
        images' size (or ``size``), with pixels inside ``input_range`` (default: the probe images' range,
        else [0, 1]); the tab shows them beside the channel's top patches and filter when those are logged."""
        resolve_layers(self.model, [layer], "layer")
        size = self._input_size(size)
        if input_range is None:
            input_range = ((self.probe_images.min().item(), self.probe_images.max().item())
                           if self.probe_images is not None else (0.0, 1.0))
        with self._own_passes():
            if channels is None:
                channels = list(range(min(16, channel_count(self.model, layer, size))))
            result = channel_visualization(self.model, layer, list(channels), size=size, input_range=input_range,
                                           steps=steps, seed=seed)
        meta = {
            "channels": result.units,
            "activation": result.objective[-1].cpu().tolist(),
            "input_range": list(input_range),
            "filter_layer": feeding_conv(self.model, layer),
            "steps": steps,
            "height": size[1],
            "width": size[2],
        }
        pictures = render.pictures_in_range(result.images, *input_range)
        self._sink.write(summary.pictures_summary(metadata.CHANNEL_VIS, layer, meta, pictures), step)
        return layer

    def _input_size(self, size: tuple[int, int, int] | None) -> tuple[int, int, int]:
        if size is not None:
            return check_size(size)
        if self.probe_images is None:
            raise ValueError("no input size: pass size=(channels, height, width) or give CNNViz probe_images=...")
        return tuple(self.probe_images.shape[1:])

    def _class_count(self, size: tuple[int, int, int]) -> int:
        return class_probabilities(self.model, torch.zeros((1, *size), device=model_device(self.model))).shape[1]
