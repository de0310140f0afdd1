"""The Correspondence view: matches between two images by nearest neighbours in a layer's features (Long et
al., "Do ConvNets learn correspondence?"), written as the two images with pixel points, scores and mutual flags.

Kind ``correspondence``, a blob sequence (the "layer" is the name given, default the layer): [meta JSON (matched
pixel points in each image, scores, mutual flags, the layer's receptive field, ``gates``: the modules whose
whole-image gate also scales the layer), PNG of image a, PNG of image b].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import torch

from .. import render, summary
from ..methods._hooks import check_positive_int
from ..methods.dataset.receptive_field import default_layer
from ..methods.synthesis.correspondence import correspondence
from .declaration import LoggingRun, Scheduled, View

KIND = "correspondence"


def log_correspondence(run: LoggingRun, *, step: int, image_a: torch.Tensor, image_b: torch.Tensor, layer: str | None = None,
                       k: int = 256, grid: int = 1, points: torch.Tensor | Sequence[Sequence[float]] | None = None,
                       to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None, name: str | None = None) -> int:
    """Match keypoints of ``image_a`` (every ``grid``-th cell of ``layer``'s map, or ``points``) to ``image_b`` by
    nearest neighbours in ``layer``'s features (Long et al.) and write the two images with the ``k`` best matches
    (pixel points, cosine scores, mutual flags); the tab draws them as lines. ``to_pixels`` maps model inputs
    to [0, 1] pixels (else each image is stretched to its range); ``name`` (default: the layer) tells several
    pairs apart; ``layer`` None: the middle convolution with a grid (:func:`default_layer`). Returns how many
    matches were written."""
    model = run.model
    if layer is None:
        layer = default_layer(model, tuple(image_a.shape[-2:]))
    check_positive_int(k, "k", "matches written, best first")
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"name must be a non-empty string naming this pair; got {name!r}")
    found = correspondence(model, image_a, image_b, layer, points=points, grid=grid)
    pair = torch.cat([image.reshape(1, *image.shape[-3:]) for image in (image_a, image_b)]).detach()
    pictures = (render.unit_pictures(to_pixels(pair).float().cpu()) if to_pixels is not None
                else render.input_pictures(pair))
    shown = min(k, len(found))
    field = found.field
    meta = {
        "source_layer": layer, "height": found.image_size[0], "width": found.image_size[1],
        "map_size": list(found.map_size),
        "field": {"stride": list(field.stride), "offset": list(field.offset), "size": list(field.size)},
        "gates": list(field.gates),
        "keypoints": len(found), "mutual_total": int(found.mutual.sum()), "count": shown,
        "points_a": found.points_a[:shown].tolist(), "points_b": found.points_b[:shown].tolist(),
        "scores": found.scores[:shown].tolist(), "mutual": found.mutual[:shown].tolist(),
    }
    run.sink.write([summary.Pictures(KIND, name or layer, meta, pictures)], step)
    return shown


def _analyze(job: Any) -> None:
    probes = job.viz.probe_images
    if len(probes) < 2:
        raise job.error("correspondence matches the first two images: --images needs at least two readable")
    job.viz.log_correspondence(job.step, probes[0], probes[1], job.spatial[0], to_pixels=job.data.to_pixels,
                               name="images 0 and 1")


def _autolog(run: LoggingRun, step: int, data: Any) -> int:
    probes = run.images(None)
    if len(probes) < 2:
        raise ValueError("correspondence matches the first two probe images: give CNNViz at least two")
    return log_correspondence(run, step=step, image_a=probes[0], image_b=probes[1], name="probe images 0 and 1")


VIEW = View(KIND, calls=(log_correspondence,), analyze=_analyze, opt_in=True,
            autolog=(Scheduled(KIND, _autolog, lambda run, data: 2.0 / run.probe_count()),))
