"""The Embedding view: CNN codes of many images laid out in 2-D (t-SNE), as a scatter coloured by label and as
a grid of thumbnails snapped to the layout; the codes also go to TensorBoard's own Projector.

Kind ``embedding``, a blob sequence (the "layer" is the layer whose codes were laid out): [meta JSON (2-D
layout, labels, predictions, grid cells), PNG sprite of the thumbnails]. The codes also go to TensorBoard's
Projector (``SummaryWriter.add_embedding``, tag ``cnnviz/<layer>``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Callable

import numpy as np
import torch

from .. import render, summary
from ..methods.dataset.embedding import MAX_GRID_POINTS, collect_codes, embed, grid_layout
from .declaration import LoggingRun, View

KIND = "embedding"


def log_embedding(run: LoggingRun, *, data: Iterable, layer: str, step: int, n: int = 2000,
                  to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  class_names: Sequence[str] | None = None, method: str = "tsne", grid: int = 1024,
                  projector: bool = True) -> int:
    """Lay out the codes of ``layer`` for the first ``n`` images of ``data`` in 2-D (t-SNE after PCA) and write
    the layout with labels, predictions and thumbnails; the first ``grid`` points are also snapped to a grid.
    With ``projector`` the codes also go to TensorBoard's Projector tab. Returns how many."""
    model = run.model
    if isinstance(grid, bool) or not isinstance(grid, int) or not 0 <= grid <= MAX_GRID_POINTS:
        raise ValueError(f"grid must be an int in 0..{MAX_GRID_POINTS} (points snapped to the grid); got {grid!r}")
    kept = collect_codes(model, data, layer, n=n, to_pixels=to_pixels, thumbnail=32 if n <= 2500 else 16,
                         output=run.output)
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
    run.sink.write([embedding_record(layer, meta, kept.thumbnails)], step)
    if projector:
        names = [class_names[v] if class_names is not None and v >= 0 else str(v) for v in kept.labels.tolist()]
        run.sink.add_projector_embedding(kept.codes, names, kept.thumbnails, step, layer)
    return count


def embedding_record(layer: str, meta: dict, thumbnails: torch.Tensor) -> summary.Pictures:
    """A layout of CNN codes: meta JSON, then the sprite of thumbnails (N, C, t, t) uint8 in the squarest grid."""
    tiles = thumbnails.permute(0, 2, 3, 1).numpy() if thumbnails.shape[1] == 3 else thumbnails[:, 0].numpy()
    picture, layout = render.mosaic(np.ascontiguousarray(tiles), gap=0)
    return summary.Pictures(KIND, layer, {**meta, "tile": layout}, [render.png_bytes(picture)])


def _analyze(job: Any) -> None:
    job.viz.log_embedding(job.data, job.code_layer(), job.step, n=2000, to_pixels=job.data.to_pixels,
                          class_names=job.model_class_names())


VIEW = View(KIND, calls=(log_embedding,), analyze=_analyze)
