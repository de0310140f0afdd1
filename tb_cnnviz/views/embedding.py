"""The Embedding view: CNN codes of many images laid out in 2-D (t-SNE), as a scatter coloured by label and as
a grid of thumbnails snapped to the layout; the codes also go to TensorBoard's own Projector.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Callable

import numpy as np
import torch
from torch import nn

from .. import metadata, render, summary
from ..methods.dataset.embedding import MAX_GRID_POINTS, collect_codes, embed, grid_layout
from ..sink import Sink


def log_embedding(
    sink: Sink,
    model: nn.Module,
    data: Iterable,
    layer: str,
    step: int,
    n: int,
    to_pixels: Callable[[torch.Tensor], torch.Tensor] | None,
    class_names: Sequence[str] | None,
    method: str,
    grid: int,
    projector: bool,
) -> int:
    """Collect the codes of the first ``n`` images, lay them out and write the view; returns how many."""
    if isinstance(grid, bool) or not isinstance(grid, int) or not 0 <= grid <= MAX_GRID_POINTS:
        raise ValueError(f"grid must be an int in 0..{MAX_GRID_POINTS} (points snapped to the grid); got {grid!r}")
    kept = collect_codes(model, data, layer, n=n, to_pixels=to_pixels, thumbnail=32 if n <= 2500 else 16)
    count = len(kept.codes)
    largest = max(kept.labels.max().item(), kept.predicted.max().item())
    if class_names is not None and largest >= len(class_names):
        raise ValueError(f"class_names has {len(class_names)} names but the labels or predictions go up to {largest}")
    xy = embed(kept.codes, method=method, seed=0)
    snapped = min(grid, count)
    cells = grid_layout(xy[:snapped]) if snapped >= 1 else np.zeros(0, dtype=np.int64)
    cols = math.ceil(math.sqrt(snapped)) if snapped else 0
    meta = {
        "count": count, "dimensions": int(kept.codes.shape[1]), "method": method,
        "constant": bool((kept.codes == kept.codes[:1]).all()),
        "xy": xy.round(4).tolist(), "labels": kept.labels.tolist(), "predicted": kept.predicted.tolist(),
        "index": kept.index.tolist(), "class_names": [str(c) for c in class_names] if class_names is not None else None,
        "grid": {"count": snapped, "cols": cols, "rows": math.ceil(snapped / cols) if cols else 0, "cells": cells.tolist()},
    }
    sink.write(embedding_summary(layer, meta, kept.thumbnails), step)
    if projector:
        names = [class_names[v] if class_names is not None and v >= 0 else str(v) for v in kept.labels.tolist()]
        sink.add_projector_embedding(kept.codes, names, kept.thumbnails, step, f"cnnviz/{layer}")
    return count


def embedding_summary(layer: str, meta: dict, thumbnails: torch.Tensor) -> summary.summary_pb2.Summary:
    """A layout of CNN codes: meta JSON, then the sprite of thumbnails (N, C, t, t) uint8 in the squarest grid."""
    tiles = thumbnails.permute(0, 2, 3, 1).numpy() if thumbnails.shape[1] == 3 else thumbnails[:, 0].numpy()
    picture, layout = render.mosaic(np.ascontiguousarray(tiles), gap=0)
    return summary.pictures_summary(metadata.EMBEDDING, layer, {**meta, "tile": layout}, [render.png_bytes(picture)])
