"""The Dead filters view (activation health): the window of a training run, flushed every ``every`` steps as
per-channel rates (for the tab), and per layer the share of dead -- or, for smooth activations, dormant --
channels and the layer's sparsity (scalars beside the loss), with a warning when channels go off.

Kind ``dead``, a float32 tensor (C,): per channel, the share of inputs whose map was all zero (all <= 0); the
content's ``health`` says what an off channel is: ``"dead"`` (a ReLU's, no gradient) or ``"dormant"`` (a
smooth activation's, never positive, its gradient still flowing); files without it (written before it existed)
are ``"dead"``. Scalars ``cnnviz/dead_fraction/<layer>`` (or ``cnnviz/dormant_fraction/<layer>``) and
``cnnviz/sparsity/<layer>`` go with each flush.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext

from torch import nn

from .. import distributed, summary
from ..methods._hooks import check_positive_int
from ..methods.activations.dead_filters import DEFAULT_THRESHOLD, DeadFilterMonitor, DeadReport
from ..sink import Sink
from .declaration import View

KIND = "dead"


class DeadFilterWarning(UserWarning):
    """Channels of a layer stopped firing for (nearly) every input."""


#: A window of at least this many steps per sampled step is measured on one step in k (k <= MAX_STRIDE).
MIN_MEASURED_STEPS = 16
MAX_STRIDE = 4


def measuring_stride(every: int) -> int:
    """Measure one training step in this many: 4 for windows of 64 steps and more (25 of the default 100),
    every step in short windows. The rates are shares of the measured inputs, an unbiased sample of the
    window's (a dead channel is off on every one of them); the hooks' cost drops by the stride (1.5% of a
    resnet18 training step on the CPU when every step is measured)."""
    return max(1, min(MAX_STRIDE, every // MIN_MEASURED_STEPS))


class HealthLog:
    """One run's dead-filter window: the monitor's hooks, when to flush, which steps are measured, and which
    channels were warned about (at most one warning per channel: bounded over any run, even for a channel
    that flaps)."""

    def __init__(self, model: nn.Module, sink: Sink, writes: bool):
        self.model, self.sink, self.writes = model, sink, writes
        self.monitor: DeadFilterMonitor | None = None
        self.every = 0
        self.stride = 1  #: one training step in this many is measured
        self.steps_since_flush = 0
        self.warned: dict[str, set[int]] = {}

    def watch(self, every: int, threshold: float = DEFAULT_THRESHOLD, layers: Sequence[str] | None = None,
              measure_every: int | None = None) -> DeadFilterMonitor:
        check_positive_int(every, "every", "steps between flushes")
        if measure_every is not None:
            check_positive_int(measure_every, "measure_every", "training steps per measured step")
        if self.monitor is not None:
            self.monitor.close()
        self.monitor = DeadFilterMonitor(self.model, layers=layers, threshold=threshold).start()
        self.every, self.steps_since_flush = every, 0
        self.stride = measure_every if measure_every is not None else measuring_stride(every)
        return self.monitor

    def due(self) -> bool:
        """Count one training step; whether the window is full (the caller flushes it). The next step's
        forwards are measured when it starts a stride of the window (the first step of a window always is)."""
        if self.monitor is None:
            return False
        self.steps_since_flush += 1
        self.monitor.idle = self.steps_since_flush % self.stride != 0
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
        self.monitor.idle = False  # a new window starts with a measured step
        reduce = distributed.all_reduce_sum if distributed.is_distributed() else None
        if reduce is None and self.monitor.inputs_seen == 0:
            return {}
        reports = self.monitor.report(reset=True, reduce=reduce)
        if not any(report.inputs for report in reports.values()):
            return {}
        off = {}
        for order, report in enumerate(reports.values()):
            self.sink.write(dead_records(report, order=order), step)
            off[report.layer] = sorted(report.flagged)
            self._warn_newly_off(report, step)
        return off

    def _warn_newly_off(self, report: DeadReport, step: int) -> None:
        now = set(report.flagged)
        warned = self.warned.setdefault(report.layer, set())
        newly = sorted(now - warned)  # a channel that dies, recovers and dies again warned the first time
        warned |= now
        if newly and self.writes:
            listed = ", ".join(map(str, newly[:16])) + (", ..." if len(newly) > 16 else "")
            what = ("went dormant", "never positive", "; their gradient still flows") if report.health == "dormant" \
                else ("died", "all-zero", "")
            of_model = f" of model {self.sink.model!r}" if self.sink.model else ""
            warnings.warn(
                f"tb_cnnviz: {len(newly)} of {report.rates.numel()} channels of layer '{report.layer}'{of_model} "
                f"{what[0]} by step {step} ({what[1]} for >= {report.threshold:.0%} of the {report.inputs} inputs "
                f"measured since the last flush{what[2]}): channels {listed}",
                DeadFilterWarning,
                stacklevel=5,
            )

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.close()


def dead_records(report: DeadReport, order: int = 0) -> list[summary.Record]:
    """Per-channel off rates (tensor, for the tab; the content says dead or dormant), and as scalars for the
    Scalars tab the layer's dead (or dormant) fraction and its sparsity."""
    dormant = report.health == "dormant"
    records = [
        summary.Rates(KIND, report.layer, report.rates.numpy(), order, threshold=report.threshold, health=report.health),
        summary.Scalar(f"{'dormant' if dormant else 'dead'}_fraction/{report.layer}",
                       report.dormant_fraction if dormant else report.dead_fraction),
    ]
    if report.sparsity == report.sparsity:  # not NaN: the window saw elements
        records.append(summary.Scalar(f"sparsity/{report.layer}", report.sparsity))
    return records


#: Watched during training (``CNNViz.watch_dead_filters``, flushed by ``CNNViz.step``): no logging call of its
#: own, and nothing for ``analyze``, which sees no training.
VIEW = View(KIND)
