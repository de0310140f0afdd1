"""The Embedding view: CNN codes of many images laid out in 2-D (t-SNE), as a scatter coloured by label and as
a grid of thumbnails snapped to the layout; the codes also go to TensorBoard's own Projector.

Kind ``embedding``, a blob sequence (the "layer" is the layer whose codes were laid out): [meta JSON (2-D
layout, labels, predictions, grid cells; ``pooled``: how a map became a code, e.g. "global average of a
(512, 13, 13) map", or null for a layer that gives vectors), PNG sprite of the thumbnails]. The codes also go
to TensorBoard's Projector (``SummaryWriter.add_embedding``, tag ``cnnviz/<layer>``), at most
``PROJECTOR_MAX_BYTES`` of them a call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Callable

import numpy as np
import torch

from .. import render, summary
from ..guard import warn_at_user
from ..methods.dataset.embedding import MAX_GRID_POINTS, code_layer, collect_codes, embed, grid_layout
from .declaration import LoggingRun, Scheduled, View, data_images

KIND = "embedding"

#: The most bytes of codes one call writes for TensorBoard's Projector (its ``tensors.tsv``, which the browser
#: loads whole): 2000 pooled codes of resnet50 (2048 numbers each) take about 60 MB. Codes past it are left out.
PROJECTOR_MAX_BYTES = 128 * 2**20
#: ``str(float)`` of a float32 code and its tab, as ``SummaryWriter.add_embedding`` writes it: at most about
#: 24 bytes ("-1.2345678901234567e-05\t"), 4 for a zero ("0.0\t", most of a ReLU's outputs).
_NONZERO_BYTES, _ZERO_BYTES = 24, 4


def projector_bytes(codes: torch.Tensor) -> torch.Tensor:
    """(N,) an upper estimate of the bytes each code takes in the Projector's ``tensors.tsv``."""
    nonzero = (codes != 0).sum(dim=1)
    return nonzero * _NONZERO_BYTES + (codes.shape[1] - nonzero) * _ZERO_BYTES


def log_embedding(run: LoggingRun, *, data: Iterable, layer: str, step: int, n: int = 2000,
                  to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  class_names: Sequence[str] | None = None, method: str = "tsne", grid: int = 1024,
                  projector: bool = True) -> int:
    """Lay out the codes of ``layer`` for the first ``n`` images of ``data`` in 2-D (t-SNE after PCA) and write
    the layout with labels, predictions and thumbnails; the first ``grid`` points are also snapped to a grid.
    A layer that gives a (C, H, W) map is averaged over its positions to C numbers an image (its meta's
    ``pooled`` says so; name a module whose output is already flat to lay out every position). With
    ``projector`` the codes also go to TensorBoard's Projector tab, as many as fit in ``PROJECTOR_MAX_BYTES``
    (a warning says when some were left out). Returns how many."""
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
        "pooled": (f"global average of a ({', '.join(map(str, kept.pooled_from))}) map"
                   if kept.pooled_from is not None else None),
        "constant": bool((kept.codes == kept.codes[:1]).all()),
        "xy": xy.round(4).tolist(), "labels": kept.labels.tolist(), "predicted": kept.predicted.tolist(),
        "index": kept.index.tolist(), "class_names": [str(c) for c in class_names] if class_names is not None else None,
        "grid": {"count": snapped, "cols": cols, "rows": math.ceil(snapped / cols) if cols else 0, "cells": cells.tolist()},
    }
    run.sink.write([embedding_record(layer, meta, kept.thumbnails)], step)
    if projector:
        names = [class_names[v] if class_names is not None and v >= 0 else str(v) for v in kept.labels.tolist()]
        fits = _projector_share(kept.codes, layer)
        if fits:
            run.sink.add_projector_embedding(kept.codes[:fits], names[:fits], kept.thumbnails[:fits], step, layer)
    return count


def _projector_share(codes: torch.Tensor, layer: str) -> int:
    """How many of the codes (first ones first) fit in ``PROJECTOR_MAX_BYTES``; warns when not all do."""
    sizes = projector_bytes(codes)
    fits = int((sizes.cumsum(0) <= PROJECTOR_MAX_BYTES).sum())
    if fits < len(codes):
        total = int(sizes.sum())
        warn_at_user(
            f"tb_cnnviz: the Projector gets the first {fits} of {len(codes)} codes of layer {layer!r}: all of them "
            f"would take about {total / 2**20:.0f} MB ({codes.shape[1]} numbers a code), over the bound of "
            f"{PROJECTOR_MAX_BYTES / 2**20:.0f} MB a call. The CNNVIZ tab's layout has every code; for all of them "
            f"in the Projector, lay out fewer images (n=) or a smaller layer, or pass projector=False",
        )
    return fits


def embedding_record(layer: str, meta: dict, thumbnails: torch.Tensor) -> summary.Pictures:
    """A layout of CNN codes: meta JSON, then the sprite of thumbnails (N, C, t, t) uint8 in the squarest grid."""
    tiles = thumbnails.permute(0, 2, 3, 1).numpy() if thumbnails.shape[1] == 3 else thumbnails[:, 0].numpy()
    picture, layout = render.mosaic(np.ascontiguousarray(tiles), gap=0)
    return summary.Pictures(KIND, layer, {**meta, "tile": layout}, [render.png_bytes(picture)])


def _analyze(job: Any) -> None:
    job.viz.log_embedding(job.data, job.code_layer(), job.step, n=2000, to_pixels=job.data.to_pixels,
                          class_names=job.model_class_names())


def _autolog(run: LoggingRun, step: int, data: Iterable) -> int:
    return log_embedding(run, data=data, layer=code_layer(run.model), step=step, n=AUTOLOG_POINTS)


#: points autolog lays out (t-SNE's time grows faster than linearly with them)
AUTOLOG_POINTS = 1000

VIEW = View(KIND, calls=(log_embedding,), analyze=_analyze,
            autolog=(Scheduled(KIND, _autolog, lambda run, data: min(data_images(data), AUTOLOG_POINTS) * 1.5 / run.probe_count(),
                               needs_data=True),))
