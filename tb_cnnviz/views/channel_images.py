"""The Channel images view: one input optimised per channel of a layer to maximise it (activation maximisation,
with jitter and blur), shown beside the channel's top patches and filter when those are logged. It optimises
for seconds to minutes, so it is logged rarely.

Kind ``channel_images`` (``channel_vis`` in files written before the rename), a blob sequence: [meta JSON
(channels, final activations, input range, the conv that makes the layer), PNG per channel].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


from .. import render, summary
from ..methods._hooks import resolve_layers
from ..methods.dataset.receptive_field import default_layer, feeding_conv
from ..methods.synthesis.activation_maximization import (CHANNEL_STEPS, channel_count, channel_visualization,
                                                         check_size)
from .class_models import probe_range
from .declaration import LoggingRun, Scheduled, View

KIND = "channel_images"


def log_channel_images(run: LoggingRun, *, step: int, layer: str, channels: Sequence[int] | None = None,
                       size: tuple[int, int, int] | None = None, input_range: tuple[float, float] | None = None,
                       steps: int = CHANNEL_STEPS, seed: int = 0) -> str:
    """Write one optimised image per channel of ``layer`` (default: its first 16 channels) at the probe images'
    size (or ``size``), with pixels inside ``input_range`` (default: the probe images' range, else [0, 1]);
    the tab shows them beside the channel's top patches and filter when those are logged. Returns the layer."""
    model = run.model
    resolve_layers(model, [layer], "layer")
    size = check_size(run.input_size(size))
    input_range = probe_range(run, input_range)
    if channels is None:
        channels = list(range(min(16, channel_count(model, layer, size))))
    result = channel_visualization(model, layer, list(channels), size=size, input_range=input_range, steps=steps, seed=seed)
    meta = {
        "channels": result.units,
        "activation": result.objective[-1].cpu().tolist(),
        "input_range": list(input_range),
        "filter_layer": feeding_conv(model, layer),
        "steps": len(result.objective),  # taken: fewer than max_steps when the objective stopped improving
        "max_steps": steps,
        "height": size[1],
        "width": size[2],
    }
    pictures = render.pictures_in_range(result.images, *input_range)
    run.sink.write([summary.Pictures(KIND, layer, meta, pictures)], step)
    return layer


def _analyze(job: Any) -> None:
    for layer in job.spatial:
        job.viz.log_channel_images(job.step, layer)


VIEW = View(KIND, calls=(log_channel_images,), analyze=_analyze, opt_in=True,
            autolog=(Scheduled(KIND, lambda run, step, data: log_channel_images(run, step=step, layer=default_layer(run.model)),
                               lambda run, data: CHANNEL_STEPS * 3 * 16 / run.probe_count()),))
