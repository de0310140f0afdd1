"""The Dead filters view: the dead-filter window of a training run, flushed every ``every`` steps as per-channel
rates (for the tab) and a dead fraction per layer (a scalar beside the loss), with a warning when channels die.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext

from torch import nn

from .. import distributed, metadata, summary
from ..methods._hooks import check_positive_int
from ..methods.activations.dead_filters import DEFAULT_THRESHOLD, DeadFilterMonitor, DeadReport
from ..sink import Sink


class DeadFilterWarning(UserWarning):
    """Channels of a layer stopped firing for (nearly) every input."""


class HealthLog:
    """One run's dead-filter window: the monitor's hooks, when to flush, and which channels were warned about
    (at most one warning per channel: bounded over any run, even for a channel that flaps)."""

    def __init__(self, model: nn.Module, sink: Sink, writes: bool):
        self.model, self.sink, self.writes = model, sink, writes
        self.monitor: DeadFilterMonitor | None = None
        self.every = 0
        self.steps_since_flush = 0
        self.warned: dict[str, set[int]] = {}

    def watch(self, every: int, threshold: float = DEFAULT_THRESHOLD, layers: Sequence[str] | None = None) -> DeadFilterMonitor:
        check_positive_int(every, "every", "steps between flushes")
        if self.monitor is not None:
            self.monitor.close()
        self.monitor = DeadFilterMonitor(self.model, layers=layers, threshold=threshold).start()
        self.every, self.steps_since_flush = every, 0
        return self.monitor

    def due(self) -> bool:
        """Count one training step; whether the window is full (the caller flushes it)."""
        if self.monitor is None:
            return False
        self.steps_since_flush += 1
        return self.steps_since_flush >= self.every

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Our own forward passes are not training inputs: keep them out of the counts."""
        with self.monitor.paused() if self.monitor is not None else nullcontext():
            yield

    def flush(self, step: int) -> dict[str, list[int]]:
        """Write the window's rates and start a new one; returns the dead channels per layer. Under DDP the
        counts of every rank are summed first (one ``all_reduce`` of one vector), so every rank calls it."""
        if self.monitor is None:
            raise RuntimeError("flush_dead_filters needs watch_dead_filters() first")
        self.steps_since_flush = 0
        reduce = distributed.all_reduce_sum if distributed.is_distributed() else None
        if reduce is None and self.monitor.inputs_seen == 0:
            return {}
        reports = self.monitor.report(reset=True, reduce=reduce)
        if not any(report.inputs for report in reports.values()):
            return {}
        dead = {}
        for order, report in enumerate(reports.values()):
            self.sink.write(dead_summary(report, order=order), step)
            dead[report.layer] = sorted(report.dead)
            self._warn_newly_dead(report, step)
        return dead

    def _warn_newly_dead(self, report: DeadReport, step: int) -> None:
        now = set(report.dead)
        warned = self.warned.setdefault(report.layer, set())
        newly = sorted(now - warned)  # a channel that dies, recovers and dies again warned the first time
        warned |= now
        if newly and self.writes:
            listed = ", ".join(map(str, newly[:16])) + (", ..." if len(newly) > 16 else "")
            of_model = f" of model {self.sink.model!r}" if self.sink.model else ""
            warnings.warn(
                f"tb_cnnviz: {len(newly)} of {report.rates.numel()} channels of layer '{report.layer}'{of_model} died "
                f"by step {step} (all-zero for >= {report.threshold:.0%} of the last {report.inputs} inputs): "
                f"channels {listed}",
                DeadFilterWarning,
                stacklevel=5,
            )

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.close()


def dead_summary(report: DeadReport, order: int = 0) -> summary.summary_pb2.Summary:
    """Per-channel dead rates (tensor, for the tab) and the layer's dead fraction (scalar, for Scalars)."""
    content = metadata.PluginContent(kind=metadata.DEAD, layer=report.layer, order=order, threshold=report.threshold)
    return summary.summary_pb2.Summary(
        value=[
            summary.float_tensor_value(metadata.tag(metadata.DEAD, report.layer), content, report.rates.numpy()),
            summary.scalar_value(metadata.dead_fraction_tag(report.layer), report.dead_fraction),
        ]
    )
