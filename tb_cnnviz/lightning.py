"""PyTorch Lightning: the CNNVIZ tab from a callback, no training loop to write.

``pip install tb_cnnviz[lightning]``. The callback writes through the Trainer's ``TensorBoardLogger`` (its
``SummaryWriter``, ``trainer.logger.experiment``), into the same event file as Lightning's own scalars. Health
monitoring (dead / dormant channels, sparsity) is flushed from ``on_train_batch_end`` every ``every_n_steps``
optimizer steps; the chosen ``views`` are logged at the end of each validation run (not the sanity check), or,
with ``budget=``, every view is logged by :meth:`CNNViz.autolog` within that share of training time (the data-set
views over the validation data).
Under DDP every rank calls the flushes (they reduce over ranks) and rank zero writes, as with :class:`CNNViz`.

Example::

    trainer = lightning.Trainer(logger=TensorBoardLogger("runs"),
                                callbacks=[CNNVizCallback(probe_images=x[:8], probe_labels=y[:8])])
    trainer.fit(module, train_loader, val_loader)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # the older package name
    try:
        from pytorch_lightning.callbacks import Callback
    except ImportError as exc:
        raise ImportError("tb_cnnviz.lightning needs PyTorch Lightning: pip install 'tb_cnnviz[lightning]'") from exc

from .autolog import autolog_names
from .logger import CNNViz
from .methods._hooks import check_images, check_positive_int
from .methods.attribution.registry import METHODS

__all__ = ["CNNVizCallback", "VIEWS"]

#: Views the callback can log at the end of validation: probe-image views, and "performance" over the
#: validation data (batches of (images, labels)).
VIEWS = ("activations", "filters", *METHODS, "occlusion", "performance")
DEFAULT_VIEWS = ("activations", "filters", "guided_backprop", "grad_cam")


class CNNVizCallback(Callback):
    """Log the CNNVIZ views of the LightningModule being trained.

    Args:
        probe_images: fixed images (N, C, H, W) shown in the picture views; moved to the module's device.
        probe_labels: their labels, shown beside them and explained by the attribution maps.
        every_n_steps: optimizer steps between health flushes (``0``: no health monitoring).
        views: what to log at the end of each validation run; see :data:`VIEWS`. With ``budget``: what autolog
            logs (view stems or calls, as :meth:`CNNViz.autolog` takes them; default every view).
        budget: log by :meth:`CNNViz.autolog` instead, within this share of training time (e.g. ``0.05``),
            from the start of training; the data-set views read ``data``, else the validation data.
        background: with ``budget``, run the views on a copy of the weights in a worker thread.
        data: with ``budget``, the data set of the data-set views (default: the Trainer's validation loader).
        **options: passed to :class:`~tb_cnnviz.CNNViz` (``layers``, ``max_channels``, ``raise_errors``, ...).
    """

    def __init__(
        self,
        probe_images: torch.Tensor | None = None,
        probe_labels: Sequence[int] | torch.Tensor | None = None,
        every_n_steps: int = 100,
        views: Sequence[str] | None = None,
        budget: float | None = None,
        background: bool = False,
        data: Any = None,
        **options: Any,
    ):
        super().__init__()
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 0:
            raise ValueError(f"every_n_steps must be an int >= 0 (0: no health monitoring); got {every_n_steps!r}")
        if isinstance(views, str):
            views = [views]
        allowed = VIEWS if budget is None else autolog_names()
        unknown = [view for view in views or () if view not in allowed]
        if unknown:
            raise ValueError(f"views: unknown {unknown}; the views are {', '.join(allowed)}"
                             + ("" if budget is None else " (with budget=: autolog's views)"))
        if budget is not None and not (isinstance(budget, (int, float)) and 0 < budget < 1):
            raise ValueError(f"budget must be a share of training time in (0, 1), e.g. 0.05; got {budget!r}")
        if background and budget is None:
            raise ValueError("background=True runs autolog's views off the loop: give budget= too (e.g. 0.05)")
        if views is None:
            views = DEFAULT_VIEWS if budget is None else None
        needs_probes = [view for view in views if view != "performance"] if budget is None else []
        if needs_probes and probe_images is None:
            raise ValueError(f"views {needs_probes} need probe_images=... (a few fixed images, (N, C, H, W))")
        self.probe_images = check_images(probe_images, "probe_images") if probe_images is not None else None
        self.probe_labels = probe_labels
        self.every_n_steps = every_n_steps
        self.views = list(views) if views is not None else None
        self.budget, self.background, self.data = budget, background, data
        self.options = options
        self.viz: CNNViz | None = None

    def on_fit_start(self, trainer: Any, pl_module: torch.nn.Module) -> None:
        writer = trainer.logger.experiment if trainer.is_global_zero else None
        if trainer.is_global_zero and not hasattr(writer, "_get_file_writer"):
            raise TypeError("CNNVizCallback writes through a TensorBoardLogger (a SummaryWriter); the Trainer's "
                            f"logger is {type(trainer.logger).__name__}: pass logger=TensorBoardLogger(...)")
        probes = self.probe_images.to(pl_module.device) if self.probe_images is not None else None
        self.viz = CNNViz(pl_module, writer, probe_images=probes, probe_labels=self.probe_labels, **self.options)
        if self.every_n_steps:
            self.viz.watch_dead_filters(every=check_positive_int(self.every_n_steps, "every_n_steps"))

    def on_train_start(self, trainer: Any, pl_module: torch.nn.Module) -> None:
        """With ``budget``: autolog from here (after the sanity check, when the validation loader is ready)."""
        if self.viz is None or self.budget is None:
            return
        data = self.data
        if data is None:
            loaders = trainer.val_dataloaders
            data = loaders[0] if isinstance(loaders, (list, tuple)) and loaders else loaders
        self.viz.autolog(budget=self.budget, views=self.views, data=data, background=self.background)

    def on_train_batch_end(self, trainer: Any, pl_module: torch.nn.Module, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.viz is not None:
            self.viz.step(trainer.global_step)

    def on_validation_end(self, trainer: Any, pl_module: torch.nn.Module) -> None:
        if self.viz is None or trainer.sanity_checking or self.budget is not None:
            return
        step = trainer.global_step
        for view in self.views:
            if view == "activations":
                self.viz.log_activations(step)
            elif view == "filters":
                self.viz.log_filters(step)
            elif view == "occlusion":
                self.viz.log_occlusion(step)
            elif view == "performance":
                self._log_performance(trainer, step)
            else:
                self.viz.log_saliency(step, method=view)
        self.viz.flush()

    def _log_performance(self, trainer: Any, step: int) -> None:
        loaders = trainer.val_dataloaders
        loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
        for index, loader in enumerate(loaders):
            if loader is not None:
                self.viz.log_performance(loader, step, name="val" if len(loaders) == 1 else f"val{index}")

    def on_fit_end(self, trainer: Any, pl_module: torch.nn.Module) -> None:
        if self.viz is not None:
            viz, self.viz = self.viz, None
            viz.close()  # the last health window; hooks removed; every rank calls it

    def teardown(self, trainer: Any, pl_module: torch.nn.Module, stage: str) -> None:
        if self.viz is not None:  # fit raised: still remove the hooks
            viz, self.viz = self.viz, None
            viz.close()
