"""The Top activations view ("top patches"): over a data set, each channel's strongest images with the
receptive-field patch each was seen in (Zeiler & Fergus), and the same along random directions of the layer
(Szegedy et al.'s control).

Kind ``top_activations`` (``top`` in files written before the rename), a blob sequence: [meta JSON (per unit:
values, image indices, positions, boxes; ``gates``: the modules whose whole-image gate also scales the
layer, not in its field), PNG sprite of the units' top patches, a row of k per unit, and the
same of the whole images]; the "layer" is the layer (``<layer> (random directions)`` for the control,
``<layer> (relevance)`` for the ranking by contribution to the class score). The meta's ``rank`` says which
ranking it is ("activation" where absent: files written before it); a relevance record adds per unit the
class each image's relevance explains (``classes``) and the most frequent one (``top_class``), the ``target``
(whose class: "label" or "predicted") and the ``class_names`` when given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Callable

import numpy as np
import torch

from .. import distributed, render, summary
from ..methods.dataset.receptive_field import default_layer, feeding_conv
from ..methods.dataset.top_activations import TopActivations, check_rank, random_directions, top_activations
from .declaration import LoggingRun, Scheduled, View, data_images

KIND = "top_activations"
RELEVANCE_SUFFIX = " (relevance)"  #: the relevance ranking of a layer is written as "<layer> (relevance)"


def log_top_activations(run: LoggingRun, *, data: Iterable, layer: str | None, step: int, k: int = 9,
                        directions: int | torch.Tensor | None = None,
                        to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None,
                        channels: Sequence[int] | None = None, patch_size: int = 32,
                        whole_size: int = 48, rank: str = "activation", target: str | None = None,
                        class_names: Sequence[str] | None = None) -> list[str]:
    """Stream ``data`` once (twice with ``directions``) and write, per channel of ``layer`` (the first
    ``max_channels``, or ``channels``), its ``k`` strongest images with the receptive-field patch each was seen
    in; returns the names written. Collective under DDP: every rank ranks its shard, rank 0 merges the
    candidates exactly and writes. ``layer`` None: the middle convolution with a grid (:func:`default_layer`).
    ``rank="relevance"`` ranks by contribution to the class score instead (of ``target``: see
    :func:`~tb_cnnviz.methods.top_activations`), written as ``<layer> (relevance)`` so that the tab shows it
    beside the activation ranking; ``class_names`` name the classes it explains."""
    model, max_channels = run.model, run.max_channels
    check_rank(rank, target, directions)
    layer = default_layer(model) if layer is None else layer
    if directions is not None and iter(data) is data:
        raise ValueError("directions need data that can be read twice (a DataLoader or a list of batches), "
                         "not a generator: the random directions are ranked in a second pass")
    options = {"k": k, "patch_size": patch_size, "to_pixels": to_pixels, "whole_size": whole_size}
    ranking = {"rank": rank, "target": target, "output": run.output} if rank == "relevance" else {}
    result = top_activations(model, data, layer, **options, **ranking)
    total = result.values.shape[0]
    units = list(range(min(total, max_channels))) if channels is None else [int(c) for c in channels]
    bad = [u for u in units if not 0 <= u < total]
    if bad:  # every rank sees the same channels and layer: all raise here, none waits in a gather
        raise ValueError(f"channels {bad[:5]} are out of range: layer {layer!r} has {total} channels (0..{total - 1})")
    merged = distributed.gather_top(result)
    name = layer + RELEVANCE_SUFFIX if rank == "relevance" else layer
    if merged is not None:
        record = top_record(name, merged, units, order=2 if rank == "relevance" else 0,
                            filter_layer=feeding_conv(model, layer), class_names=class_names)
        run.sink.write([record], step)
    names = [name]
    if directions is not None:
        vectors = random_directions(total, directions, seed=0) if isinstance(directions, int) else directions
        merged = distributed.gather_top(top_activations(model, data, layer, directions=vectors, **options))
        name = f"{layer} (random directions)"
        if merged is not None:
            run.sink.write([top_record(name, merged, list(range(len(vectors))), order=1)], step)
        names.append(name)
    return names


def _unit_sprite(pictures: torch.Tensor, k: int) -> tuple[bytes, dict]:
    """(U, k, C, t, t) uint8 -> a PNG with a row of k tiles per unit, and its layout."""
    tiles = pictures.flatten(0, 1).permute(0, 2, 3, 1).numpy() if pictures.shape[2] == 3 else pictures.flatten(0, 1)[:, 0].numpy()
    picture, layout = render.mosaic(np.ascontiguousarray(tiles), columns=k)
    return render.png_bytes(picture), layout


def top_record(name: str, result: TopActivations, units: Sequence[int], order: int = 0,
               filter_layer: str | None = None, class_names: Sequence[str] | None = None) -> summary.Pictures:
    """Top activations of ``units`` (indices into ``result``): meta JSON, one sprite with a row of k patches
    per unit (empty slots stay background), and the same for the whole images when ``result`` has them.
    A relevance ranking keeps only the images where the channel adds to the class score (relevance > 0): one
    where it is off throughout has relevance 0, a tie that says nothing about the channel."""
    k = result.values.shape[1]
    kept = (result.image >= 0) & (result.values > 0 if result.rank == "relevance" else True)  # best first
    blank = (~kept)[:, :, None, None, None]
    picture, layout = _unit_sprite(result.patches.masked_fill(blank, 0)[list(units)], k)
    sprites = [picture]
    whole_layout = None
    if result.wholes is not None:
        whole, whole_layout = _unit_sprite(result.wholes.masked_fill(blank, 0)[list(units)], k)
        sprites.append(whole)
    entries = []
    for unit in units:
        filled = int(kept[unit].sum())
        entries.append({
            "unit": unit,
            "values": result.values[unit, :filled].tolist(),
            "images": result.image[unit, :filled].tolist(),
            "positions": result.position[unit, :filled].tolist(),
            "boxes": [list(result.box(unit, slot)) for slot in range(filled)],
        })
        if result.classes is not None:
            classes = result.classes[unit, :filled].tolist()
            entries[-1]["classes"] = classes  # the class each image's relevance explains
            # the most frequent; in a tie the one of the better-ranked image
            entries[-1]["top_class"] = max(classes, key=classes.count) if classes else None
    field = result.field
    meta = {
        "source_layer": result.layer, "k": k,
        "axes": "directions" if result.directions is not None else "channels",
        "units_total": int(result.values.shape[0]), "units": entries,
        "field": {"stride": list(field.stride), "offset": list(field.offset), "size": list(field.size)},
        "tile": layout, "whole_tile": whole_layout, "input_size": list(result.input_size or []),
        "filter_layer": filter_layer,
        "gates": list(field.gates),  # the global gates (squeeze-and-excitation) that also scale the layer's maps
        "rank": result.rank,
    }
    if result.rank == "relevance":
        meta.update(target=result.target, class_names=[str(c) for c in class_names] if class_names else None)
    return summary.Pictures(KIND, name, meta, sprites, order)


def _analyze(job: Any) -> None:
    """Each layer ranked by activation (with the random-direction control) and by relevance: of each image's
    label when the folder's classes are the model's, else of the predicted class."""
    names = job.model_class_names()
    for layer in job.spatial:
        job.viz.log_top_activations(job.data, layer, job.step, to_pixels=job.data.to_pixels, directions=8)
        job.viz.log_top_activations(job.data, layer, job.step, to_pixels=job.data.to_pixels, rank="relevance",
                                    target="label" if names else "predicted", class_names=names)


VIEW = View(KIND, calls=(log_top_activations,), analyze=_analyze, analyze_names=("top",),
            autolog=(Scheduled(KIND, lambda run, step, data: log_top_activations(run, data=data, layer=None, step=step),
                               lambda run, data: data_images(data) / run.probe_count(), needs_data=True,
                               collective=True),
                     # the patches that matter beside those that fire: a forward and a backward to the layer
                     Scheduled("top_relevance",
                               lambda run, step, data: log_top_activations(run, data=data, layer=None, step=step,
                                                                           rank="relevance"),
                               lambda run, data: 3 * data_images(data) / run.probe_count(), needs_data=True,
                               collective=True)))
