"""The CNNViz facade: the few calls a training loop makes to fill the CNNVIZ tab.

Logging never changes training: every call leaves the model as found (see ``methods._hooks``), and a call
that fails warns and returns instead of stopping the loop (``raise_errors=True`` makes it raise).

Under DDP (see :mod:`.distributed`) rank 0 writes. Collective calls -- :meth:`CNNViz.step`,
:meth:`~CNNViz.flush_dead_filters`, :meth:`~CNNViz.log_top_activations`, :meth:`~CNNViz.close` -- must be made
by every rank in the same order; every other view does no collective and is skipped on ranks other than 0.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Callable

import numpy as np
import torch
from torch import nn

from tensorboard.compat.proto import summary_pb2

from . import distributed, metadata, render, summary
from .guard import LoggingFailedWarning, logging_call
from .methods._hooks import check_images, check_positive_int, conv_layers, resolve_layers, split_call
from .methods.evaluation.accuracy_stats import pr_curve_counts
from .methods.activations.maps import layer_activations
from .methods.attribution.registry import CAM_METHODS, METHODS, attribution_map, check_method
from .methods.synthesis.correspondence import correspondence
from .methods.activations.dead_filters import DEFAULT_THRESHOLD, DeadFilterMonitor
from .methods.dataset.embedding import MAX_GRID_POINTS, collect_codes, embed, grid_layout
from .methods.evaluation.predictions import evaluate
from .methods.attribution.grad_cam import last_conv_name
from .methods.attribution.occlusion import occlusion, occlusion_grid
from .methods.targets import class_probabilities, resolve_targets
from .methods.dataset.receptive_field import feeding_conv
from .methods.dataset.top_activations import random_directions, top_activations
from .performance_report import align_attributes, performance_report
from .synthesis_logging import SynthesisViews

__all__ = ["CNNViz", "DeadFilterWarning", "LoggingFailedWarning"]


class DeadFilterWarning(UserWarning):
    """Channels of a layer stopped firing for (nearly) every input."""


class CNNViz(SynthesisViews):
    """Log what a CNN learns to TensorBoard's CNNVIZ tab.

    Example::

        viz = CNNViz(model, SummaryWriter("runs/exp1"), probe_images=x[:8], probe_labels=y[:8])
        viz.watch_dead_filters(every=100)
        for step, (x, y) in enumerate(loader):
            ...train...
            viz.step(step)
            if step % 500 == 0:
                viz.log_activations(step); viz.log_filters(step)
                viz.log_saliency(step, method="guided_backprop"); viz.log_occlusion(step)
        viz.close()

    Args:
        model: the network (any ``nn.Module``; conv and ReLU-like layers are found by type).
        writer_or_logdir: a ``torch.utils.tensorboard.SummaryWriter`` or a log directory.
        probe_images: fixed images (N, C, H, W) shown in every activation view.
        probe_labels: their labels (N,), shown beside them.
        layers: module names to show (default: every conv and ReLU-like module).
        max_channels, max_size: bound each activation picture (channels shown, pixels per map side).
        max_filters, max_inputs: bound each filter picture (output filters, input channels per filter).
        raise_errors: raise instead of warning when a logging call fails.

    Under DDP (``torch.distributed`` initialised, world size > 1) only rank 0 writes: pass the writer (or log
    directory) there and ``None`` on the other ranks. Every rank calls :meth:`step`, :meth:`log_top_activations`
    and :meth:`close` in the same order (they reduce over ranks); the other views run on rank 0 only.
    """

    def __init__(
        self,
        model: nn.Module,
        writer_or_logdir: object,
        probe_images: torch.Tensor | None = None,
        probe_labels: Sequence[int] | torch.Tensor | None = None,
        layers: Sequence[str] | None = None,
        max_channels: int = 64,
        max_size: int = 56,
        max_filters: int = 64,
        max_inputs: int = 16,
        raise_errors: bool = False,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        for name, value in (("max_channels", max_channels), ("max_size", max_size),
                            ("max_filters", max_filters), ("max_inputs", max_inputs)):
            check_positive_int(value, name)
        self.model = model
        self.layers = list(layers) if layers is not None else None
        resolve_layers(model, self.layers)  # a mistyped name fails here, listing the layers there are
        self.probe_images = check_images(probe_images, "probe_images") if probe_images is not None else None
        self.probe_labels = self._check_labels(probe_labels)
        self.max_channels, self.max_size = max_channels, max_size
        self.max_filters, self.max_inputs = max_filters, max_inputs
        self.raise_errors = raise_errors
        self.writes = distributed.world()[0] == distributed.WRITER_RANK  #: False on DDP ranks other than 0
        self._sink = summary.SummarySink(writer_or_logdir) if self.writes else summary.DiscardingSink()
        self._monitor: DeadFilterMonitor | None = None
        self._dead_every = 0
        self._steps_since_flush = 0
        self._last_step: int | None = None
        self._dead_warned: dict[str, set[int]] = {}  # at most one warning per channel: bounded over any run
        self._reported_failures: set[tuple[str, str, str]] = set()
        self._grad_cam_layer: str | None = None
        self._closed = False

    def _check_labels(self, labels: Sequence[int] | torch.Tensor | None) -> list[int] | None:
        if labels is None:
            return None
        values = labels.flatten().tolist() if isinstance(labels, torch.Tensor) else list(labels)
        if self.probe_images is not None and len(values) != len(self.probe_images):
            raise ValueError(
                f"probe_labels has {len(values)} labels but probe_images has {len(self.probe_images)} images; "
                "give one label per image"
            )
        return [int(v) for v in values]

    # -- dead filters ---------------------------------------------------------------------------------------

    def watch_dead_filters(
        self, every: int = 100, threshold: float = DEFAULT_THRESHOLD, layers: Sequence[str] | None = None
    ) -> DeadFilterMonitor:
        """Hook every ReLU-like output (or ``layers``); :meth:`step` writes the dead rates every ``every`` steps.

        Counts stay on the model's device between flushes; a flush writes per-channel rates (for the tab),
        ``cnnviz/dead_fraction/<layer>`` scalars (for the Scalars tab) and warns when channels newly die.
        """
        check_positive_int(every, "every", "steps between flushes")
        if self._monitor is not None:
            self._monitor.close()
        self._monitor = DeadFilterMonitor(self.model, layers=layers, threshold=threshold).start()
        self._dead_every = every
        self._steps_since_flush = 0
        return self._monitor

    def step(self, step: int) -> None:
        """Call once per training step; flushes the dead-filter window every ``every`` calls.
        Under DDP every rank calls it (a flush is collective)."""
        self._last_step = int(step)
        if self._monitor is None:
            return
        self._steps_since_flush += 1
        if self._steps_since_flush >= self._dead_every:
            self._steps_since_flush = 0
            self.flush_dead_filters(step)

    @logging_call(collective=True)
    def flush_dead_filters(self, step: int) -> dict[str, list[int]] | None:
        """Write the dead rates of the window so far and start a new one; returns the dead channels per layer.

        Warns the first time each channel dies, so even a flapping channel over 100,000 flushes warns once.
        Under DDP the counts of every rank are summed first (one ``all_reduce`` of one vector, on the device),
        so every rank must call it, in the same order, after at least one forward; rank 0 writes and warns."""
        if self._monitor is None:
            raise RuntimeError("flush_dead_filters needs watch_dead_filters() first")
        reduce = distributed.all_reduce_sum if distributed.is_distributed() else None
        if reduce is None and self._monitor.inputs_seen == 0:
            return {}
        reports = self._monitor.report(reset=True, reduce=reduce)
        if not any(report.inputs for report in reports.values()):
            return {}
        dead = {}
        for order, report in enumerate(reports.values()):
            self._sink.write(summary.dead_summary(report, order=order), step)
            now = set(report.dead)
            warned = self._dead_warned.setdefault(report.layer, set())
            newly = sorted(now - warned)  # a channel that dies, recovers and dies again warned the first time
            warned |= now
            dead[report.layer] = sorted(now)
            if newly and self.writes:
                listed = ", ".join(map(str, newly[:16])) + (", ..." if len(newly) > 16 else "")
                warnings.warn(
                    f"tb_cnnviz: {len(newly)} of {report.rates.numel()} channels of layer '{report.layer}' died "
                    f"by step {step} (all-zero for >= {report.threshold:.0%} of the last {report.inputs} inputs): "
                    f"channels {listed}",
                    DeadFilterWarning,
                    stacklevel=3,
                )
        return dead

    @contextmanager
    def _own_passes(self) -> Iterator[None]:
        """Our own forward passes are not training inputs: keep them out of the dead-filter counts."""
        with self._monitor.paused() if self._monitor is not None else nullcontext():
            yield

    # -- pictures -------------------------------------------------------------------------------------------

    @logging_call
    def log_activations(self, step: int, images: torch.Tensor | None = None) -> list[str] | None:
        """Write each selected layer's maps for the probe images (or ``images``); returns the layers written."""
        images = self._images(images)
        with self._own_passes():
            snapshots = layer_activations(self.model, images, self.layers, self.max_channels, self.max_size)
        if not snapshots:
            raise ValueError(
                f"{type(self.model).__name__} has no conv or ReLU-like layer that ran; pass layers=[...] "
                "naming the modules to show"
            )
        modules = dict(self.model.named_modules())
        labels = self.probe_labels if images is self.probe_images else None
        for order, (layer, snap) in enumerate(snapshots.items()):
            module, call = split_call(layer)
            value = summary.activation_summary(
                layer, snap, order=order, module=module, call=(call or 0) + 1,
                module_type=type(modules[module]).__name__ if module in modules else "", labels=labels,
            )
            self._sink.write(value, step)
        return list(snapshots)

    @logging_call
    def log_filters(self, step: int) -> list[str] | None:
        """Write every 2-D conv layer's weights (of ``layers``, if given) with per-filter noise scores."""
        convs = {n: m for n, m in conv_layers(self.model).items() if m.weight is not None and m.weight.dim() == 4}
        if self.layers is not None:
            wanted = {split_call(layer)[0] for layer in self.layers}
            convs = {n: m for n, m in convs.items() if n in wanted}
        if not convs:
            raise ValueError(
                f"{type(self.model).__name__} has no 2-D convolution (nn.Conv2d) "
                + ("among layers=" + repr(self.layers) if self.layers is not None else "")
                + "; log_filters shows conv weights only"
            )
        first_conv = next(iter(conv_layers(self.model).values()))
        for order, (layer, conv) in enumerate(convs.items()):
            rgb = conv is first_conv and conv.weight.shape[1] == 3  # the input image's colours
            self._sink.write(
                summary.filter_summary(layer, conv.weight, order, self.max_filters, self.max_inputs, rgb=rgb), step
            )
        return list(convs)

    # -- where the network looks ----------------------------------------------------------------------------

    @logging_call
    def log_saliency(
        self,
        step: int,
        images: torch.Tensor | None = None,
        targets: int | Sequence[int] | torch.Tensor | None = None,
        method: str = "guided_backprop",
        smooth: bool = False,
        n: int = 25,
        sigma: float = 0.15,
    ) -> str | None:
        """Write one attribution method's maps for the probe images (or ``images``); returns the name shown
        in the tab. ``method``: saliency, deconvnet, guided_backprop, grad_cam or guided_grad_cam;
        ``smooth`` averages it over ``n`` noisy copies (SmoothGrad, noise ``sigma`` x each image's range).
        ``targets`` default to the probe labels, else the predicted class."""
        check_method(method)
        images = self._images(images)
        with self._own_passes():
            probabilities, chosen, labels = self._explained_classes(images, targets)
            cam_layer = self._cam_layer(images) if method in CAM_METHODS else None
            raw = attribution_map(method, self.model, images, chosen, smooth=smooth, n=n, sigma=sigma, layer=cam_layer)
        style, values, scale, nonfinite = render.display_map(method, raw)
        name = f"smoothgrad({method})" if smooth else method
        meta = {
            **self._class_meta(probabilities, chosen, labels),
            "method": method,
            "smooth": {"n": n, "sigma": sigma} if smooth else None,
            "style": style,
            "scale": scale,
            "nonfinite": nonfinite,
            "height": images.shape[2],
            "width": images.shape[3],
            "cam_layer": cam_layer,
        }
        order = list(METHODS).index(method) + (len(METHODS) if smooth else 0)
        self._sink.write(
            summary.attribution_summary(name, meta, render.input_pictures(images), render.unit_pictures(values), order), step
        )
        return name

    @logging_call
    def log_occlusion(
        self,
        step: int,
        images: torch.Tensor | None = None,
        targets: int | Sequence[int] | torch.Tensor | None = None,
        window: int | None = None,
        stride: int | None = None,
        fill: float = 0.0,
        batch_size: int = 64,
    ) -> str | None:
        """Write occlusion maps (Zeiler & Fergus) for the probe images (or ``images``). ``window`` defaults to
        32 px on images of 128 px and more, else a quarter of the shorter side; ``stride`` to half the window."""
        images = self._images(images)
        height, width = images.shape[2:]
        if window is None:
            window = 32 if min(height, width) >= 128 else max(1, min(height, width) // 4)
        if stride is None:
            stride = max(1, window // 2)
        rows, cols = occlusion_grid(height, width, window, stride)
        with self._own_passes():
            probabilities, chosen, labels = self._explained_classes(images, targets)
            heat = occlusion(self.model, images, chosen, window=window, stride=stride, fill=fill, batch_size=batch_size)
        heat, nonfinite = render.finite(heat.float().cpu())
        meta = {
            **self._class_meta(probabilities, chosen, labels),
            "method": "occlusion",
            "style": "occlusion",
            "nonfinite": nonfinite,
            "height": height,
            "width": width,
            "grid": {"window": window, "stride": stride, "fill": fill, "rows": rows, "cols": cols, "values": heat.tolist()},
        }
        self._sink.write(summary.attribution_summary("occlusion", meta, render.input_pictures(images), [], 2 * len(METHODS)), step)
        return "occlusion"

    # -- where the network fails -----------------------------------------------------------------------------

    @logging_call
    def log_performance(
        self,
        data: Iterable,
        step: int,
        attributes: Mapping[str, Sequence] | str | None = None,
        class_names: Sequence[str] | None = None,
        examples: int = 16,
        to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None,
        name: str = "eval",
        bins: int = 10,
        topk: tuple[int, ...] = (1, 5),
        saliency_concentration: bool = False,
    ) -> dict | None:
        """Stream ``data`` (batches of images, (images, labels) or (images, labels, index)) once and write the
        accuracy views: by class, confusion, by image attribute (computed ones, plus ``attributes``: a dict
        name -> one value per example in data set order, or a CSV path with an ``index`` column), calibration,
        the ``examples`` most confidently wrong per class as thumbnails; top-k accuracy as scalars
        ``cnnviz/accuracy/<name>/top<k>`` and per-class PR curves for TensorBoard's PR Curves tab.
        ``to_pixels`` maps model inputs to [0, 1] pixels for the attributes and thumbnails (undo your
        normalisation). ``saliency_concentration`` adds that attribute (the share of each image's saliency
        in its top 10% of pixels, a proxy for object size; one backward per batch). Returns the top-k accuracies."""
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"name must be a non-empty string without '/', naming the data set; got {name!r}")
        with self._own_passes():
            result = evaluate(self.model, data, topk=topk, attributes=True, to_pixels=to_pixels, pr_curves=True,
                              wrong_examples=examples, saliency=saliency_concentration)
        if class_names is not None and len(class_names) != result.classes:
            raise ValueError(f"class_names has {len(class_names)} names but the model has {result.classes} classes")
        meta, sprites = performance_report(result, align_attributes(attributes, result.index), class_names, bins)
        values = []
        accuracies = {}
        if meta["labelled"]:
            for k in sorted(set(topk)):
                accuracies[f"top{k}"] = result.topk_accuracy(min(k, result.classes))
                values.append(summary.scalar_value(f"cnnviz/accuracy/{name}/top{k}", accuracies[f"top{k}"]))
            counts = pr_curve_counts(result.positive_histogram, result.negative_histogram)
            rows = [counts[key].numpy() for key in ("tp", "fp", "tn", "fn", "precision", "recall")]
            for c in range(result.classes):
                label = str(class_names[c]) if class_names is not None else str(c)
                values.append(summary.pr_curve_value(f"cnnviz/pr_curve/{name}/{c}", [row[c] for row in rows], label))
        self._sink.write(summary.performance_summary(name, meta, sprites), step)
        if values:
            self._sink.write(summary_pb2.Summary(value=values), step)
        return accuracies

    # -- what a channel responds to ---------------------------------------------------------------------------

    @logging_call(collective=True)
    def log_top_activations(
        self,
        data: Iterable,
        layer: str,
        step: int,
        k: int = 9,
        directions: int | torch.Tensor | None = None,
        to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None,
        channels: Sequence[int] | None = None,
        patch_size: int = 32,
        whole_size: int = 48,
    ) -> list[str] | None:
        """Stream ``data`` once and write, per channel of ``layer`` (the first ``max_channels``, or
        ``channels``), its ``k`` strongest images with the receptive-field patch each was seen in. With
        ``directions`` (a count, or (D, channels) vectors) the same along random directions of the layer's
        channel space is written beside it, as ``<layer> (random directions)``. Each kept image is also kept
        whole (``whole_size`` px) so the tab can draw the box; the tab links each channel to its filter in the
        conv that makes it. Returns the names written.

        Under DDP every rank calls it with its shard of the data (batches carrying data set indices, so that
        images do not collide); rank 0 gathers every rank's candidates, merges them exactly and writes."""
        if directions is not None and iter(data) is data:
            raise ValueError("directions need data that can be read twice (a DataLoader or a list of batches), "
                             "not a generator: the random directions are ranked in a second pass")
        names = []
        with self._own_passes():
            result = top_activations(self.model, data, layer, k=k, patch_size=patch_size, to_pixels=to_pixels,
                                     whole_size=whole_size)
            total = result.values.shape[0]
            units = list(range(min(total, self.max_channels))) if channels is None else [int(c) for c in channels]
            bad = [u for u in units if not 0 <= u < total]
            if bad:  # every rank sees the same channels and layer: all raise here, none waits in a gather
                raise ValueError(f"channels {bad[:5]} are out of range: layer {layer!r} has {total} channels (0..{total - 1})")
            merged = distributed.gather_top(result)
            if merged is not None:
                self._sink.write(summary.top_summary(layer, merged, units, order=0, filter_layer=feeding_conv(self.model, layer)), step)
            names.append(layer)
            if directions is not None:
                vectors = random_directions(total, directions, seed=0) if isinstance(directions, int) else directions
                result = distributed.gather_top(top_activations(
                    self.model, data, layer, k=k, directions=vectors, patch_size=patch_size, to_pixels=to_pixels,
                    whole_size=whole_size))
                name = f"{layer} (random directions)"
                if result is not None:
                    self._sink.write(summary.top_summary(name, result, list(range(len(vectors))), order=1), step)
                names.append(name)
        return names

    # -- embedding of CNN codes ------------------------------------------------------------------------------

    @logging_call
    def log_embedding(
        self,
        data: Iterable,
        layer: str,
        step: int,
        n: int = 2000,
        to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None,
        class_names: Sequence[str] | None = None,
        method: str = "tsne",
        grid: int = 1024,
        projector: bool = True,
    ) -> int | None:
        """Lay out the codes of ``layer`` for the first ``n`` images of ``data`` in 2-D (t-SNE after PCA) and
        write the layout with labels, predictions and thumbnails; the first ``grid`` points are also snapped
        to a grid. With ``projector`` the codes also go to TensorBoard's Projector tab. Returns how many."""
        if isinstance(grid, bool) or not isinstance(grid, int) or not 0 <= grid <= MAX_GRID_POINTS:
            raise ValueError(f"grid must be an int in 0..{MAX_GRID_POINTS} (points snapped to the grid); got {grid!r}")
        with self._own_passes():
            kept = collect_codes(self.model, data, layer, n=n, to_pixels=to_pixels, thumbnail=32 if n <= 2500 else 16)
        count = len(kept.codes)
        if class_names is not None and max(kept.labels.max().item(), kept.predicted.max().item()) >= len(class_names):
            raise ValueError(f"class_names has {len(class_names)} names but the labels or predictions go up to "
                             f"{max(kept.labels.max().item(), kept.predicted.max().item())}")
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
        self._sink.write(summary.embedding_summary(layer, meta, kept.thumbnails), step)
        if projector:
            names = [class_names[v] if class_names is not None and v >= 0 else str(v) for v in kept.labels.tolist()]
            self._sink.add_projector_embedding(kept.codes, names, kept.thumbnails, step, f"cnnviz/{layer}")
        return count

    # -- correspondence --------------------------------------------------------------------------------------

    @logging_call
    def log_correspondence(
        self,
        step: int,
        image_a: torch.Tensor,
        image_b: torch.Tensor,
        layer: str,
        k: int = 256,
        grid: int = 1,
        points: torch.Tensor | Sequence[Sequence[float]] | None = None,
        to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None,
        name: str | None = None,
    ) -> int | None:
        """Match keypoints of ``image_a`` (every ``grid``-th cell of ``layer``'s map, or ``points``) to
        ``image_b`` by nearest neighbours in ``layer``'s features (Long et al.) and write the two images with
        the ``k`` best matches (pixel points, cosine scores, mutual flags); the tab draws them as lines.
        ``to_pixels`` maps model inputs to [0, 1] pixels (else each image is stretched to its range); ``name``
        (default: the layer) tells several pairs apart. Returns how many matches were written."""
        check_positive_int(k, "k", "matches written, best first")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"name must be a non-empty string naming this pair; got {name!r}")
        with self._own_passes():
            found = correspondence(self.model, image_a, image_b, layer, points=points, grid=grid)
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
        self._sink.write(summary.pictures_summary(metadata.CORRESPONDENCE, name or layer, meta, pictures), step)
        return shown

    def _cam_layer(self, images: torch.Tensor) -> str:
        """Grad-CAM's layer, the last conv the forward runs: found once (one forward of one image), then kept."""
        if self._grad_cam_layer is None:
            self._grad_cam_layer = last_conv_name(self.model, images)
        return self._grad_cam_layer

    def _explained_classes(
        self, images: torch.Tensor, targets: int | Sequence[int] | torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, list[int] | None]:
        """(class probabilities, the class each map explains, true labels or None): targets given, else the
        probe labels, else the predicted class."""
        labels = self.probe_labels if images is self.probe_images else None
        probabilities = class_probabilities(self.model, images)
        if targets is not None and not isinstance(targets, (int, torch.Tensor)):
            targets = torch.as_tensor(list(targets))
        if targets is None and labels is not None:
            targets = torch.as_tensor(labels)
        return probabilities, resolve_targets(targets, probabilities), labels

    @staticmethod
    def _class_meta(probabilities: torch.Tensor, targets: torch.Tensor, labels: list[int] | None) -> dict:
        probabilities = probabilities.cpu()
        targets = targets.cpu()
        predicted_probability, predicted = probabilities.max(dim=1)
        return {
            "images": len(probabilities),
            "classes": probabilities.shape[1],
            "targets": targets.tolist(),
            "target_probability": probabilities.gather(1, targets[:, None])[:, 0].tolist(),
            "predicted": predicted.tolist(),
            "predicted_probability": predicted_probability.tolist(),
            "labels": list(labels) if labels is not None else [None] * len(probabilities),
        }

    def _images(self, images: torch.Tensor | None) -> torch.Tensor:
        if images is None:
            if self.probe_images is None:
                raise ValueError("no images to show: pass images=... or give CNNViz probe_images=...")
            return self.probe_images
        return check_images(images)

    # -- lifetime -------------------------------------------------------------------------------------------

    def flush(self) -> None:
        self._sink.flush()

    def close(self) -> None:
        """Write what the dead-filter window holds, remove every hook, flush (safe to call twice). Under DDP
        every rank calls it (the last window's flush is collective)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._monitor is not None and self._last_step is not None and self._steps_since_flush:
                self.flush_dead_filters(self._last_step)
        finally:
            if self._monitor is not None:
                self._monitor.close()
            self._sink.close()

    def __enter__(self) -> CNNViz:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
