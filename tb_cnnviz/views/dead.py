"""The Dead filters view (activation health): the window of a training run, flushed every ``every`` steps as
per-channel rates (for the tab), and per layer the share of dead -- or, for smooth activations, dormant --
channels and the layer's sparsity (scalars beside the loss), with a warning when channels go off.

Kind ``dead``, a float32 tensor (C,): per channel, the share of inputs whose map was all zero (all <= 0); the
content's ``health`` says what an off channel is: ``"dead"`` (a ReLU's, no gradient) or ``"dormant"`` (a
smooth activation's, never positive, its gradient still flowing); files without it (written before it existed)
are ``"dead"``. Scalars ``cnnviz/dead_fraction/<layer>`` (or ``cnnviz/dormant_fraction/<layer>``) and
``cnnviz/sparsity/<layer>`` go with each flush, and the layer's value counts (the ``distribution`` kind). An activation in the squeeze path of a squeeze-and-excitation
block has ``"role": "gate"`` in the content (absent: feature channels).

The rates are the window's, as measured; the *warnings* wait for evidence: a channel is warned about once it has
been off (rate >= threshold) at every flush over at least ``MIN_EVIDENCE_STEPS`` training steps and
``MIN_EVIDENCE_INPUTS`` measured inputs in a row -- not at step 1 of a randomly initialised net, whose layers
revive within a few steps -- never for a gate layer, and at most once per layer, at the user's call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from .. import distributed, summary
from ..guard import warn_at_user
from ..methods._hooks import check_positive_int
from ..methods.activations.activation_sites import GATE
from ..methods.activations.dead_filters import DEFAULT_THRESHOLD, DeadFilterMonitor, DeadReport
from ..sink import Sink
from .declaration import View
from .distribution import distribution_record

KIND = "dead"


class DeadFilterWarning(UserWarning):
    """Channels of a layer stopped firing for (nearly) every input."""


#: A window of at least this many steps per sampled step is measured on one step in k (k <= MAX_STRIDE).
MIN_MEASURED_STEPS = 16
MAX_STRIDE = 4
#: A channel is warned about once it was off at every flush over at least this many training steps in a row...
MIN_EVIDENCE_STEPS = 16
#: ... and this many measured inputs (images): one batch at step 1 is no evidence.
MIN_EVIDENCE_INPUTS = 256


def measuring_stride(every: int) -> int:
    """Measure one training step in this many: 4 for windows of 64 steps and more (25 of the default 100),
    every step in short windows. The rates are shares of the measured inputs, an unbiased sample of the
    window's (a dead channel is off on every one of them); the hooks' cost drops by the stride (1.5% of a
    resnet18 training step on the CPU when every step is measured)."""
    return max(1, min(MAX_STRIDE, every // MIN_MEASURED_STEPS))


class HealthLog:
    """One run's dead-filter window: the monitor's hooks, when to flush, which steps are measured, each
    channel's evidence (training steps and inputs it has been off for, in a row) and which layers were warned
    about (at most one warning per layer: bounded over any run, even for a channel that flaps)."""

    def __init__(self, model: nn.Module, sink: Sink, writes: bool):
        self.model, self.sink, self.writes = model, sink, writes
        self.monitor: DeadFilterMonitor | None = None
        self.every = 0
        self.stride = 1  #: one training step in this many is measured
        self.steps_since_flush = 0
        self.warned: set[str] = set()  #: layers warned about
        #: per layer and channel, the training steps and inputs of the flushes in a row it was off at
        self.evidence: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

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
        steps, self.steps_since_flush = max(1, self.steps_since_flush), 0  # a flush without step(): one step
        self.monitor.idle = False  # a new window starts with a measured step
        reduce = distributed.all_reduce_sum if distributed.is_distributed() else None
        if reduce is None and self.monitor.inputs_seen == 0:
            return {}
        reports = self.monitor.report(reset=True, reduce=reduce)
        if not any(report.inputs for report in reports.values()):
            return {}
        off = {}
        for order, report in enumerate(reports.values()):
            distribution = distribution_record(report, order=order)
            self.sink.write(dead_records(report, order=order) + ([distribution] if distribution else []), step)
            off[report.layer] = sorted(report.flagged)
            self._warn_when_evident(report, step, steps)
        return off

    def _evident(self, report: DeadReport, steps: int) -> tuple[list[int], int, int]:
        """Add this flush to each channel's run of flushes off (a channel on at this flush starts again at 0);
        the channels whose run holds enough evidence, and the least steps and inputs among them."""
        flagged = report.rates >= report.threshold
        held = self.evidence.get(report.layer)
        if held is None or held[0].shape != flagged.shape:
            held = (torch.zeros(flagged.shape, dtype=torch.int64), torch.zeros(flagged.shape, dtype=torch.int64))
        run_steps = torch.where(flagged, held[0] + steps, 0)
        run_inputs = torch.where(flagged, held[1] + report.inputs, 0)
        self.evidence[report.layer] = (run_steps, run_inputs)
        evident = (run_steps >= MIN_EVIDENCE_STEPS) & (run_inputs >= MIN_EVIDENCE_INPUTS)
        if not evident.any():
            return [], 0, 0
        return evident.nonzero().flatten().tolist(), int(run_steps[evident].min()), int(run_inputs[evident].min())

    def _warn_when_evident(self, report: DeadReport, step: int, steps: int) -> None:
        channels, run_steps, run_inputs = self._evident(report, steps)
        if not channels or report.layer in self.warned or report.role == GATE or not self.writes:
            return
        self.warned.add(report.layer)
        listed = ", ".join(map(str, channels[:16])) + (", ..." if len(channels) > 16 else "")
        what = ("are dormant", "never positive", "; their gradient still flows") if report.health == "dormant" \
            else ("are dead", "all-zero", "")
        of_model = f" of model {self.sink.model!r}" if self.sink.model else ""
        warn_at_user(
            f"tb_cnnviz: {len(channels)} of {report.rates.numel()} channels of layer '{report.layer}'{of_model} "
            f"{what[0]} at step {step} ({what[1]} for >= {report.threshold:.0%} of the inputs at every flush of the "
            f"last {run_steps} or more training steps, {run_inputs} or more inputs{what[2]}): channels {listed}. "
            "Warned once per layer; the CNNVIZ tab's Dead filters view shows every flush",
            DeadFilterWarning,
        )

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.close()


def dead_records(report: DeadReport, order: int = 0) -> list[summary.Record]:
    """Per-channel off rates (tensor, for the tab; the content says dead or dormant), and as scalars for the
    Scalars tab the layer's dead (or dormant) fraction and its sparsity."""
    dormant = report.health == "dormant"
    records = [
        summary.Rates(KIND, report.layer, report.rates.numpy(), order, threshold=report.threshold, health=report.health,
                      role=GATE if report.role == GATE else None),
        summary.Scalar(f"{'dormant' if dormant else 'dead'}_fraction/{report.layer}",
                       report.dormant_fraction if dormant else report.dead_fraction),
    ]
    if report.sparsity == report.sparsity:  # not NaN: the window saw elements
        records.append(summary.Scalar(f"sparsity/{report.layer}", report.sparsity))
    return records


#: Watched during training (``CNNViz.watch_dead_filters``, flushed by ``CNNViz.step``): no logging call of its
#: own, and nothing for ``analyze``, which sees no training.
VIEW = View(KIND)
