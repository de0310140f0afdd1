"""The Correspondence view: matches between two images by nearest neighbours in a layer's features (Long et
al., "Do ConvNets learn correspondence?"), written as the two images with pixel points, scores and mutual flags.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable

import torch
from torch import nn

from .. import metadata, render, summary
from ..methods._hooks import check_positive_int
from ..methods.synthesis.correspondence import correspondence
from ..sink import Sink


def log_correspondence(
    sink: Sink,
    model: nn.Module,
    step: int,
    image_a: torch.Tensor,
    image_b: torch.Tensor,
    layer: str,
    k: int,
    grid: int,
    points: torch.Tensor | Sequence[Sequence[float]] | None,
    to_pixels: Callable[[torch.Tensor], torch.Tensor] | None,
    name: str | None,
) -> int:
    """Match ``image_a``'s keypoints to ``image_b`` and write the ``k`` best; returns how many were written."""
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
        "keypoints": len(found), "mutual_total": int(found.mutual.sum()), "count": shown,
        "points_a": found.points_a[:shown].tolist(), "points_b": found.points_b[:shown].tolist(),
        "scores": found.scores[:shown].tolist(), "mutual": found.mutual[:shown].tolist(),
    }
    sink.write(summary.pictures_summary(metadata.CORRESPONDENCE, name or layer, meta, pictures), step)
    return shown
