"""The CNNViz facade: the few calls a training loop makes to fill the CNNVIZ tab.

Each method checks its arguments, keeps the state a run needs (probe images, the sink, the dead-filter window)
and delegates to the view's module in :mod:`.views`. Logging never changes training: every call leaves the
model as found (see ``methods._hooks``), and a call that fails warns and returns instead of stopping the loop
(``raise_errors=True`` makes it raise).

Under DDP (see :mod:`.distributed`) rank 0 writes. Collective calls -- :meth:`CNNViz.step`,
:meth:`~CNNViz.flush_dead_filters`, :meth:`~CNNViz.log_top_activations`, :meth:`~CNNViz.close` -- must be made
by every rank in the same order; every other view does no collective and is skipped on ranks other than 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Callable

import torch
from torch import nn

from . import distributed, metadata, sink, thinning
from .guard import LoggingFailedWarning, logging_call
from .methods._hooks import check_images, check_positive_int, resolve_layers, unwrap_model
from .methods.activations.dead_filters import DEFAULT_THRESHOLD, DeadFilterMonitor
from .methods.attribution.grad_cam import last_conv_name
from .methods.synthesis.activation_maximization import check_size
from .views import activations, attribution, correspondence, embedding, health, performance, synthesis, top_patches
from .views.attribution import Targets
from .views.health import DeadFilterWarning

__all__ = ["CNNViz", "DeadFilterWarning", "LoggingFailedWarning"]


class CNNViz:
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
        layers: module names to show (default: every conv and ReLU-like module; a net with more than 40 of
            them: its first conv and each block's output, see ``methods.default_layers``).
        max_channels, max_size: bound each activation picture (channels shown, pixels per map side).
        max_filters, max_inputs: bound each filter picture (output filters, input channels per filter).
        raise_errors: raise instead of warning when a logging call fails.
        name: the model's name, when several models share a run (a GAN's ``"generator"`` and
            ``"discriminator"``): every tag carries it and the tab lists each model apart. A second instance on
            the same log directory without a name (or with a taken one) warns and takes a distinct name.
        purge_step: the step a run resumed from a checkpoint starts again at (as ``SummaryWriter(purge_step=)``):
            what the dead process logged at or after it is hidden. Create the CNNViz before logging at that step.
        keep_steps: how many steps of each view TensorBoard holds in a long run: the first, the latest and the
            rest on an even grid over the run (at most ``keep_steps + 1``; see ``tb_cnnviz.thinning``). ``None``
            keeps every step (TensorBoard's memory then grows with the run).

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
        name: str | None = None,
        purge_step: int | None = None,
        keep_steps: int | None = thinning.DEFAULT_KEEP,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        for argument, value in (("max_channels", max_channels), ("max_size", max_size),
                                ("max_filters", max_filters), ("max_inputs", max_inputs)):
            check_positive_int(value, argument)
        self.model = model = unwrap_model(model)  # DataParallel / DDP / torch.compile: the module they wrap
        self.layers = list(layers) if layers is not None else None
        resolve_layers(model, self.layers)  # a mistyped name fails here, listing the layers there are
        self.probe_images = check_images(probe_images, "probe_images") if probe_images is not None else None
        self.probe_labels = self._check_labels(probe_labels)
        self.max_channels, self.max_size = max_channels, max_size
        self.max_filters, self.max_inputs = max_filters, max_inputs
        self.raise_errors = raise_errors
        self.writes = distributed.world()[0] == distributed.WRITER_RANK  #: False on DDP ranks other than 0
        if name is not None:
            metadata.check_model_name(name)
        self._sink = (sink.SummarySink(writer_or_logdir, name, type(model).__name__, purge_step, keep_steps)
                      if self.writes
                      else sink.DiscardingSink(name))
        self.name: str = self._sink.model  #: the model's name in the run ("" unnamed)
        self._health = health.HealthLog(model, self._sink, self.writes)
        self._last_step: int | None = None
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
        self, every: int = 100, threshold: float = DEFAULT_THRESHOLD, layers: Sequence[str] | None = None,
        measure_every: int | None = None,
    ) -> DeadFilterMonitor:
        """Hook every activation (or ``layers``); :meth:`step` writes the rates every ``every`` steps.

        Found with no arguments: ReLU modules, functional ReLUs (at the module making their input) and smooth
        activations (SiLU, GELU, ...: *dormant* channels, never positive, the gradient still flowing). Counts
        stay on the model's device between flushes; a flush writes per-channel rates (for the tab),
        ``cnnviz/dead_fraction/<layer>`` (or ``dormant_fraction``) and ``cnnviz/sparsity/<layer>`` scalars (for
        the Scalars tab) and warns when channels newly go off.

        ``measure_every``: measure the forwards of one training step in this many (by default 4 when
        ``every >= 64``, else 1: every step). The rates are then shares of the measured steps' inputs, a
        sample of the window; ``measure_every=1`` counts every input, at about 4x the hooks' cost.
        """
        return self._health.watch(every, threshold, layers, measure_every)

    def step(self, step: int) -> None:
        """Call once per training step; flushes the dead-filter window every ``every`` calls.
        Under DDP every rank calls it (a flush is collective)."""
        self._last_step = int(step)
        if self._health.due():
            self.flush_dead_filters(step)

    @logging_call(collective=True)
    def flush_dead_filters(self, step: int) -> dict[str, list[int]] | None:
        """Write the rates of the window so far and start a new one; returns the channels off (dead, or dormant
        for a smooth activation) per layer.

        Warns the first time each channel dies, so even a flapping channel over 100,000 flushes warns once.
        Under DDP the counts of every rank are summed first (one ``all_reduce`` of one vector, on the device),
        so every rank must call it, in the same order, after at least one forward; rank 0 writes and warns."""
        return self._health.flush(step)

    # -- pictures -------------------------------------------------------------------------------------------

    @logging_call
    def log_activations(self, step: int, images: torch.Tensor | None = None) -> list[str] | None:
        """Write each selected layer's maps for the probe images (or ``images``); returns the layers written."""
        images = self._images(images)
        with self._health.paused():
            return activations.log_activations(self._sink, self.model, images, step, self.layers,
                                               self._labels_of(images), self.max_channels, self.max_size)

    @logging_call
    def log_filters(self, step: int) -> list[str] | None:
        """Write every 2-D conv layer's weights (of ``layers``, if given) with per-filter noise scores."""
        return activations.log_filters(self._sink, self.model, step, self.layers, self.max_filters, self.max_inputs)

    # -- where the network looks ----------------------------------------------------------------------------

    @logging_call
    def log_saliency(self, step: int, images: torch.Tensor | None = None, targets: Targets = None,
                     method: str = "guided_backprop", smooth: bool = False, n: int = 25, sigma: float = 0.15,
                     checks: bool = False, masks: torch.Tensor | None = None) -> str | None:
        """Write one attribution method's maps for the probe images (or ``images``); returns the name shown
        in the tab. ``method``: saliency, deconvnet, guided_backprop, grad_cam or guided_grad_cam;
        ``smooth`` averages it over ``n`` noisy copies (SmoothGrad, noise ``sigma`` x each image's range).
        ``targets`` default to the probe labels, else the predicted class. ``checks`` adds whether each map can
        be trusted (sanity check, deletion / insertion against a random order; pointing game and mass in mask
        against ``masks`` (N, H, W) of the objects, when given): one map per conv and linear layer and 4 x 33
        forwards per image more."""
        images = self._images(images)
        with self._health.paused():
            cam_layer = self._cam_layer(images) if method in attribution.CAM_METHODS else None
            return attribution.log_saliency(self._sink, self.model, images, step, self._labels_of(images), targets,
                                            method, smooth, n, sigma, cam_layer, checks, masks)

    @logging_call
    def log_occlusion(self, step: int, images: torch.Tensor | None = None, targets: Targets = None,
                      window: int | None = None, stride: int | None = None, fill: float = 0.0,
                      batch_size: int = 64, checks: bool = False, masks: torch.Tensor | None = None) -> str | None:
        """Write occlusion maps (Zeiler & Fergus) for the probe images (or ``images``). ``window`` defaults to
        32 px on images of 128 px and more, else a quarter of the shorter side; ``stride`` to half the window.
        ``checks`` and ``masks`` as for :meth:`log_saliency`."""
        images = self._images(images)
        with self._health.paused():
            return attribution.log_occlusion(self._sink, self.model, images, step, self._labels_of(images), targets,
                                             window, stride, fill, batch_size, checks, masks)

    # -- where the network fails -----------------------------------------------------------------------------

    @logging_call
    def log_performance(self, data: Iterable, step: int, attributes: Mapping[str, Sequence] | str | None = None,
                        class_names: Sequence[str] | None = None, examples: int = 16,
                        to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None, name: str = "eval",
                        bins: int = 10, topk: tuple[int, ...] = (1, 5), saliency_concentration: bool = False) -> dict | None:
        """Stream ``data`` (batches of images, (images, labels) or (images, labels, index)) once and write the
        accuracy views: by class, confusion, by image attribute (computed ones, plus ``attributes``: a dict
        name -> one value per example in data set order, or a CSV path with an ``index`` column), calibration,
        the ``examples`` most confidently wrong per class as thumbnails; top-k accuracy as scalars
        ``cnnviz/accuracy/<name>/top<k>`` and per-class PR curves for TensorBoard's PR Curves tab.
        ``to_pixels`` maps model inputs to [0, 1] pixels for the attributes and thumbnails (undo your
        normalisation). ``saliency_concentration`` adds that attribute (the share of each image's saliency
        in its top 10% of pixels, a proxy for object size; one backward per batch). Returns the top-k accuracies."""
        with self._health.paused():
            return performance.log_performance(self._sink, self.model, data, step, attributes, class_names, examples,
                                               to_pixels, name, bins, topk, saliency_concentration)

    # -- what a channel responds to ---------------------------------------------------------------------------

    @logging_call(collective=True)
    def log_top_activations(self, data: Iterable, layer: str, step: int, k: int = 9,
                            directions: int | torch.Tensor | None = None,
                            to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None,
                            channels: Sequence[int] | None = None, patch_size: int = 32,
                            whole_size: int = 48) -> list[str] | None:
        """Stream ``data`` once and write, per channel of ``layer`` (the first ``max_channels``, or
        ``channels``), its ``k`` strongest images with the receptive-field patch each was seen in. With
        ``directions`` (a count, or (D, channels) vectors) the same along random directions of the layer's
        channel space is written beside it, as ``<layer> (random directions)``. Each kept image is also kept
        whole (``whole_size`` px) so the tab can draw the box; the tab links each channel to its filter in the
        conv that makes it. Returns the names written.

        Under DDP every rank calls it with its shard of the data (batches carrying data set indices, so that
        images do not collide); rank 0 gathers every rank's candidates, merges them exactly and writes."""
        with self._health.paused():
            return top_patches.log_top_activations(self._sink, self.model, data, layer, step, k, directions, to_pixels,
                                                   channels, self.max_channels, patch_size, whole_size)

    # -- embedding of CNN codes ------------------------------------------------------------------------------

    @logging_call
    def log_embedding(self, data: Iterable, layer: str, step: int, n: int = 2000,
                      to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None,
                      class_names: Sequence[str] | None = None, method: str = "tsne", grid: int = 1024,
                      projector: bool = True) -> int | None:
        """Lay out the codes of ``layer`` for the first ``n`` images of ``data`` in 2-D (t-SNE after PCA) and
        write the layout with labels, predictions and thumbnails; the first ``grid`` points are also snapped
        to a grid. With ``projector`` the codes also go to TensorBoard's Projector tab. Returns how many."""
        with self._health.paused():
            return embedding.log_embedding(self._sink, self.model, data, layer, step, n, to_pixels, class_names,
                                           method, grid, projector)

    # -- images made by the network --------------------------------------------------------------------------

    @logging_call
    def log_inversion(self, step: int, image: torch.Tensor | None = None, layers: Sequence[str] | None = None,
                      steps: int = 200, name: str | None = None, seed: int = 0) -> str | None:
        """Reconstruct one image (default: the first probe image) from its code at each of ``layers``
        (default: up to four convs from first to last, and the last linear layer), shallow to deep, and
        write the original beside the reconstructions; returns the name shown in the tab."""
        if image is None:
            images, name, label = self._images(None)[:1], name or "probe 0", (self.probe_labels or [None])[0]
        else:
            images, name, label = synthesis.one_image(image), name or "image", None
        with self._health.paused():
            return synthesis.log_inversion(self._sink, self.model, step, images, name, label, layers, steps, seed)

    @logging_call
    def log_class_models(self, step: int, classes: Sequence[int] | None = None,
                         class_names: Sequence[str] | None = None, size: tuple[int, int, int] | None = None,
                         steps: int = 200, seed: int = 0, jitter_pixels: int = 0, blur: float = 0.0) -> str | None:
        """Write class models (Simonyan et al.) of ``classes`` (default: the probe labels, else the first ten
        classes) at the probe images' size (or ``size``, (C, H, W)); returns the name shown in the tab.
        ``jitter_pixels`` and ``blur`` regularise as in :func:`~tb_cnnviz.methods.class_model` (without them a
        net that reads fine texture gives noise)."""
        size = self._input_size(size)
        if classes is None and self.probe_labels:
            classes = sorted(set(self.probe_labels))
        with self._health.paused():
            return synthesis.log_class_models(self._sink, self.model, step, classes, class_names, size, steps, seed,
                                              jitter_pixels, blur)

    @logging_call
    def log_channel_visualizations(self, step: int, layer: str, channels: Sequence[int] | None = None,
                                   size: tuple[int, int, int] | None = None,
                                   input_range: tuple[float, float] | None = None, steps: int = 256,
                                   seed: int = 0) -> str | None:
        """Write one optimised image per channel of ``layer`` (default: its first 16 channels) at the probe
        images' size (or ``size``), with pixels inside ``input_range`` (default: the probe images' range,
        else [0, 1]); the tab shows them beside the channel's top patches and filter when those are logged."""
        resolve_layers(self.model, [layer], "layer")
        size = self._input_size(size)
        if input_range is None:
            input_range = ((self.probe_images.min().item(), self.probe_images.max().item())
                           if self.probe_images is not None else (0.0, 1.0))
        with self._health.paused():
            return synthesis.log_channel_visualizations(self._sink, self.model, step, layer, channels, size,
                                                        input_range, steps, seed)

    @logging_call
    def log_correspondence(self, step: int, image_a: torch.Tensor, image_b: torch.Tensor, layer: str, k: int = 256,
                           grid: int = 1, points: torch.Tensor | Sequence[Sequence[float]] | None = None,
                           to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None,
                           name: str | None = None) -> int | None:
        """Match keypoints of ``image_a`` (every ``grid``-th cell of ``layer``'s map, or ``points``) to
        ``image_b`` by nearest neighbours in ``layer``'s features (Long et al.) and write the two images with
        the ``k`` best matches (pixel points, cosine scores, mutual flags); the tab draws them as lines.
        ``to_pixels`` maps model inputs to [0, 1] pixels (else each image is stretched to its range); ``name``
        (default: the layer) tells several pairs apart. Returns how many matches were written."""
        with self._health.paused():
            return correspondence.log_correspondence(self._sink, self.model, step, image_a, image_b, layer, k, grid,
                                                     points, to_pixels, name)

    # -- inputs ---------------------------------------------------------------------------------------------

    def _images(self, images: torch.Tensor | None) -> torch.Tensor:
        if images is None:
            if self.probe_images is None:
                raise ValueError("no images to show: pass images=... or give CNNViz probe_images=...")
            return self.probe_images
        return check_images(images)

    def _labels_of(self, images: torch.Tensor) -> list[int] | None:
        """The probe labels when ``images`` are the probe images; other images come without labels."""
        return self.probe_labels if images is self.probe_images else None

    def _input_size(self, size: tuple[int, int, int] | None) -> tuple[int, int, int]:
        if size is not None:
            return check_size(size)
        if self.probe_images is None:
            raise ValueError("no input size: pass size=(channels, height, width) or give CNNViz probe_images=...")
        return tuple(self.probe_images.shape[1:])

    def _cam_layer(self, images: torch.Tensor) -> str:
        """Grad-CAM's layer, the last conv the forward runs: found once (one forward of one image), then kept."""
        if self._grad_cam_layer is None:
            self._grad_cam_layer = last_conv_name(self.model, images)
        return self._grad_cam_layer

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
            if self._health.monitor is not None and self._last_step is not None and self._health.steps_since_flush:
                self.flush_dead_filters(self._last_step)
        finally:
            self._health.close()
            self._sink.close()

    def __enter__(self) -> CNNViz:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
