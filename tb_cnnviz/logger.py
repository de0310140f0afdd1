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
from typing import Any, Callable

import torch
from torch import nn

from . import distributed, metadata, sink, thinning
from .autolog import Autolog
from .guard import LoggingFailedWarning, logging_call
from .methods._hooks import check_images, check_positive_int, resolve_layers, unwrap_model
from .methods.activations.dead_filters import DEFAULT_THRESHOLD, DeadFilterMonitor
from .methods.targets import Output, check_output
from .methods.synthesis.activation_maximization import CHANNEL_STEPS, CLASS_MODEL_STEPS
from .methods.synthesis.inversion import INVERSION_STEPS
from .views import (activations, attribution, channel_images, class_models, correspondence, dead, embedding, filters,
                    inversion, performance, top_activations)
from .views.attribution import Targets
from .views.dead import DeadFilterWarning
from .views.declaration import LoggingRun

__all__ = ["CNNViz", "DeadFilterWarning", "LoggingFailedWarning"]


class _RunAttribute:
    """A CNNViz attribute kept in its :class:`LoggingRun` (one place: what a logging call reads)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, viz: Any, owner: type | None = None) -> Any:
        return self if viz is None else getattr(viz._run, self.name)

    def __set__(self, viz: Any, value: Any) -> None:
        setattr(viz._run, self.name, value)


def _checked_labels(labels: Sequence[int] | torch.Tensor | None, images: torch.Tensor | None) -> list[int] | None:
    if labels is None:
        return None
    values = labels.flatten().tolist() if isinstance(labels, torch.Tensor) else list(labels)
    if images is not None and len(values) != len(images):
        raise ValueError(
            f"probe_labels has {len(values)} labels but probe_images has {len(images)} images; "
            "give one label per image"
        )
    return [int(v) for v in values]


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
        output: where the class scores are in what the model returns, when that is not a tensor: an index
            (``0``) or key (``"logits"``) of its tuple or dict, or a callable from its output to the (N, classes)
            scores. By default a tuple or list whose first element is (N, classes), and a dict's ``logits`` (or
            its one (N, classes) tensor), are found; anything else is an error naming what the model returned.

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
        output: Output = None,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        for argument, value in (("max_channels", max_channels), ("max_size", max_size),
                                ("max_filters", max_filters), ("max_inputs", max_inputs)):
            check_positive_int(value, argument)
        output = check_output(output)
        self.model = model = unwrap_model(model)  # DataParallel / DDP / torch.compile: the module they wrap
        layers = list(layers) if layers is not None else None
        resolve_layers(model, layers)  # a mistyped name fails here, listing the layers there are
        probe_images = check_images(probe_images, "probe_images") if probe_images is not None else None
        probe_labels = _checked_labels(probe_labels, probe_images)
        self.raise_errors = raise_errors
        self.writes = distributed.world()[0] == distributed.WRITER_RANK  #: False on DDP ranks other than 0
        if name is not None:
            metadata.check_model_name(name)
        self._sink = (sink.SummarySink(writer_or_logdir, name, type(model).__name__, purge_step, keep_steps)
                      if self.writes
                      else sink.DiscardingSink(name))
        self.name: str = self._sink.model  #: the model's name in the run ("" unnamed)
        #: what every logging call gets: the sink, the model, the probe images and the bounds of each picture
        self._run = LoggingRun(self._sink, model, probe_images, probe_labels, layers, max_channels, max_size,
                               max_filters, max_inputs, output)
        self._health = dead.HealthLog(model, self._sink, self.writes)
        self._last_step: int | None = None
        self._autolog: Autolog | None = None
        self._reported_failures: set[tuple] = set()
        self._closed = False

    probe_images = _RunAttribute()
    probe_labels = _RunAttribute()
    layers = _RunAttribute()
    max_channels = _RunAttribute()
    max_size = _RunAttribute()
    max_filters = _RunAttribute()
    max_inputs = _RunAttribute()
    output = _RunAttribute()

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
        """Call once per training step; flushes the dead-filter window every ``every`` calls, and logs the views
        that are due after :meth:`autolog`. Under DDP every rank calls it (a flush is collective)."""
        self._last_step = int(step)
        flush = (lambda: self.flush_dead_filters(step)) if self._health.due() else None
        if self._autolog is not None:
            self._autolog.step(step, flush)
        elif flush is not None:
            flush()

    def autolog(self, budget: float = 0.05, views: Sequence[str] | None = None, data: Iterable | None = None,
                background: bool = False, min_every: int = 10) -> Autolog | None:
        """From now on :meth:`step` logs every view by itself (or ``views``: stems, or one call such as
        ``"grad_cam"``), each as often as ``budget`` allows: the time spent in tb_cnnviz stays at most
        ``budget`` of the training time between steps, measured. Cheap views come often (at most every
        ``min_every`` steps), expensive ones rarely; a view's first call waits until its share covers its
        estimated cost. The data-set views (top patches, embedding, performance) read ``data`` (a DataLoader or
        a list of batches); without it they are left out. Dead-filter watching is switched on (every 100 steps)
        if it is not yet. Each call's measured cost goes out as ``cnnviz/cost/<view>``; :meth:`close` says which
        views never fit; the returned :class:`~tb_cnnviz.autolog.Autolog`'s ``report()`` says where each ran.

        ``background``: run the views on a copy of the weights in a worker thread (one more copy of the model in
        memory); the training step waits only for the copy. Under DDP rank 0 alone schedules and logs; top
        patches, which are collective, are left to the user there."""
        if self._autolog is not None:
            raise RuntimeError("autolog is already on for this CNNViz (call it once)")
        if not self.writes:
            return None
        if self._health.monitor is None and (views is None or "dead" in views):
            self.watch_dead_filters()
        views = [view for view in views if view != "dead"] if views is not None else None
        self._autolog = Autolog(self, budget, views, data, background, check_positive_int(min_every, "min_every"))
        return self._autolog

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
        return self._log(activations.log_activations, locals())

    @logging_call
    def log_filters(self, step: int) -> list[str] | None:
        """Write every 2-D conv layer's weights (of ``layers``, if given) with per-filter noise scores."""
        return self._log(filters.log_filters, locals())

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
        return self._log(attribution.log_saliency, locals())

    @logging_call
    def log_occlusion(self, step: int, images: torch.Tensor | None = None, targets: Targets = None,
                      window: int | None = None, stride: int | None = None, fill: float = 0.0,
                      batch_size: int = 64, checks: bool = False, masks: torch.Tensor | None = None) -> str | None:
        """Write occlusion maps (Zeiler & Fergus) for the probe images (or ``images``). ``window`` defaults to
        32 px on images of 128 px and more, else a quarter of the shorter side; ``stride`` to half the window.
        ``checks`` and ``masks`` as for :meth:`log_saliency`."""
        return self._log(attribution.log_occlusion, locals())

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
        return self._log(performance.log_performance, locals())

    # -- what a channel responds to ---------------------------------------------------------------------------

    @logging_call(collective=True)
    def log_top_activations(self, data: Iterable, layer: str | None, step: int, k: int = 9,
                            directions: int | torch.Tensor | None = None,
                            to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None,
                            channels: Sequence[int] | None = None, patch_size: int = 32,
                            whole_size: int = 48, rank: str = "activation", target: str | None = None,
                            class_names: Sequence[str] | None = None) -> list[str] | None:
        """Stream ``data`` once and write, per channel of ``layer`` (the first ``max_channels``, or
        ``channels``), its ``k`` strongest images with the receptive-field patch each was seen in. With
        ``directions`` (a count, or (D, channels) vectors) the same along random directions of the layer's
        channel space is written beside it, as ``<layer> (random directions)``. Each kept image is also kept
        whole (``whole_size`` px) so the tab can draw the box; the tab links each channel to its filter in the
        conv that makes it. ``layer`` None: the middle convolution whose units have a grid, in the order the
        forward runs them (never a layer after global pooling). Returns the names written.

        ``rank="relevance"``: the images where each channel *matters* for the class instead of where it
        fires most: ranked by activation x gradient of the class score summed over the channel's map (Grad x
        Input at the layer, after zennit-crp's RelMax), the patch where that product is largest; one forward
        and one backward (to the layer only) per batch. ``target``: whose class score -- "label" (each image's
        label), "predicted", or None: the label where the batches carry labels, else the prediction.
        Written as ``<layer> (relevance)``; the tab shows it beside the activation ranking, each channel's
        "fires on" and "matters for <class>" (named by ``class_names``).

        Under DDP every rank calls it with its shard of the data (batches carrying data set indices, so that
        images do not collide); rank 0 gathers every rank's candidates, merges them exactly and writes."""
        return self._log(top_activations.log_top_activations, locals())

    # -- embedding of CNN codes ------------------------------------------------------------------------------

    @logging_call
    def log_embedding(self, data: Iterable, layer: str, step: int, n: int = 2000,
                      to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None,
                      class_names: Sequence[str] | None = None, method: str = "tsne", grid: int = 1024,
                      projector: bool = True) -> int | None:
        """Lay out the codes of ``layer`` for the first ``n`` images of ``data`` in 2-D (t-SNE after PCA) and
        write the layout with labels, predictions and thumbnails; the first ``grid`` points are also snapped
        to a grid. With ``projector`` the codes also go to TensorBoard's Projector tab. Returns how many."""
        return self._log(embedding.log_embedding, locals())

    # -- images made by the network --------------------------------------------------------------------------

    @logging_call
    def log_inversion(self, step: int, image: torch.Tensor | None = None, layers: Sequence[str] | None = None,
                      steps: int = INVERSION_STEPS, name: str | None = None, seed: int = 0) -> str | None:
        """Reconstruct one image (default: the first probe image) from its code at each of ``layers``
        (default: up to four convs from first to last, and the last linear layer), shallow to deep, and
        write the original beside the reconstructions; returns the name shown in the tab."""
        return self._log(inversion.log_inversion, locals())

    @logging_call
    def log_class_models(self, step: int, classes: Sequence[int] | None = None,
                         class_names: Sequence[str] | None = None, size: tuple[int, int, int] | None = None,
                         steps: int = CLASS_MODEL_STEPS, seed: int = 0, jitter_pixels: int = 0,
                         blur: float = 0.0, input_range: tuple[float, float] | None = None,
                         parameterization: str = "fourier") -> str | None:
        """Write class models (Simonyan et al.; Olah et al.'s image parameterisation) of ``classes`` (default:
        the probe labels, else the first ten classes) at the probe images' size (or ``size``, (C, H, W)),
        inside ``input_range`` (default: the probe images' range); returns the name shown in the tab. The
        other arguments are :func:`~tb_cnnviz.methods.class_model`'s."""
        return self._log(class_models.log_class_models, locals())

    @logging_call
    def log_channel_images(self, step: int, layer: str, channels: Sequence[int] | None = None,
                           size: tuple[int, int, int] | None = None,
                           input_range: tuple[float, float] | None = None, steps: int = CHANNEL_STEPS,
                           seed: int = 0) -> str | None:
        """Write one optimised image per channel of ``layer`` (default: its first 16 channels) at the probe
        images' size (or ``size``), with pixels inside ``input_range`` (default: the probe images' range,
        else [0, 1]); the tab shows them beside the channel's top patches and filter when those are logged."""
        return self._log(channel_images.log_channel_images, locals())

    @logging_call
    def log_channel_visualizations(self, *args: Any, **kwargs: Any) -> str | None:
        """The former name of :meth:`log_channel_images` (the same arguments), kept for existing code."""
        return CNNViz.log_channel_images.__wrapped__(self, *args, **kwargs)

    @logging_call
    def log_correspondence(self, step: int, image_a: torch.Tensor, image_b: torch.Tensor, layer: str | None = None,
                           k: int = 256, grid: int = 1, points: torch.Tensor | Sequence[Sequence[float]] | None = None,
                           to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None,
                           name: str | None = None) -> int | None:
        """Match keypoints of ``image_a`` (every ``grid``-th cell of ``layer``'s map, or ``points``) to
        ``image_b`` by nearest neighbours in ``layer``'s features (Long et al.) and write the two images with
        the ``k`` best matches (pixel points, cosine scores, mutual flags); the tab draws them as lines.
        ``to_pixels`` maps model inputs to [0, 1] pixels (else each image is stretched to its range); ``name``
        (default: the layer) tells several pairs apart; ``layer`` None: the middle convolution whose units have a
        grid. Returns how many matches were written."""
        return self._log(correspondence.log_correspondence, locals())

    def _log(self, log: Callable[..., Any], arguments: dict[str, Any]) -> Any:
        """Call a view's logging function with this method's arguments, by name (a view's parameters are
        keyword-only: a reordered one cannot swap values), with the dead-filter hooks paused (our own forward
        passes are not training inputs)."""
        arguments.pop("self")
        with self._health.paused():
            return log(self._run, **arguments)

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
            if self._autolog is not None:
                self._autolog.close()  # the view in flight first: it writes through the sink
            if self._health.monitor is not None and self._last_step is not None and self._health.steps_since_flush:
                self.flush_dead_filters(self._last_step)
        finally:
            self._health.close()
            self._sink.close()

    def __enter__(self) -> CNNViz:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
