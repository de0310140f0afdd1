"""Dead filters: channels whose post-ReLU map is all zero for (nearly) every input.

A dead ReLU unit gets no gradient and never recovers; a learning rate that is too high kills many at once.
The monitor counts, per channel, the inputs whose map is all zero, with a few element-wise kernels per
ReLU call and no host synchronisation: the counts stay on the model's device until :meth:`report`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ._hooks import call_name, forward_hooks, relu_layers, resolve_layers

#: A channel dead for at least this share of the inputs in a window is flagged.
DEFAULT_THRESHOLD = 0.99


def dead_maps(output: torch.Tensor) -> torch.Tensor:
    """(N, C, ...) -> (N, C) bool: which maps are all zero (or below, for safety). NaN maps are not dead."""
    if output.dim() < 2:
        raise ValueError(f"expected a (N, C, ...) layer output; got shape {tuple(output.shape)}")
    if output.dim() == 2:
        return output <= 0
    return output.amax(dim=tuple(range(2, output.dim()))) <= 0


@dataclass
class DeadReport:
    """Dead-filter statistics of one layer over one window of inputs."""

    layer: str
    rates: torch.Tensor  #: (C,) float32 on the CPU: share of inputs whose map was all zero
    inputs: int  #: how many inputs (images) the window saw
    threshold: float

    @property
    def dead(self) -> list[int]:
        return torch.nonzero(self.rates >= self.threshold).flatten().tolist()

    @property
    def dead_fraction(self) -> float:
        return len(self.dead) / max(1, self.rates.numel())


class DeadFilterMonitor:
    """Count all-zero maps of every ReLU-like output (or the given ``layers``) during forward passes.

    Example::

        with DeadFilterMonitor(model) as monitor:
            for x, y in loader:
                train_step(x, y)
            for report in monitor.report().values():
                print(report.layer, report.dead)
    """

    def __init__(self, model: nn.Module, layers: Sequence[str] | None = None, threshold: float = DEFAULT_THRESHOLD):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1]; got {threshold!r}")
        self.model = model
        self.threshold = float(threshold)
        self.modules = relu_layers(model) if layers is None else resolve_layers(model, layers)
        if not self.modules:
            raise ValueError(
                f"{type(model).__name__} has no ReLU-like module (nn.ReLU, nn.ReLU6) to watch; "
                "pass layers=[...] naming modules whose outputs are zero where units are off"
            )
        self._counts: dict[tuple[str, int], torch.Tensor] = {}
        self._inputs: dict[tuple[str, int], int] = {}
        self._calls: dict[str, int] = {}
        self._order: list[tuple[str, int]] = []
        self._paused = 0
        self._hooks: ExitStack | None = None

    def start(self) -> DeadFilterMonitor:
        if self._hooks is None:
            stack = ExitStack()
            stack.enter_context(forward_hooks(self.model, self.modules, self._count))
            self._hooks = stack
        return self

    def close(self) -> None:
        """Remove the hooks (safe to call twice)."""
        if self._hooks is not None:
            hooks, self._hooks = self._hooks, None
            hooks.close()

    def __enter__(self) -> DeadFilterMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Do not count forwards made inside this block (the visualisations' own passes)."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def _count(self, name: str, call: int, output: torch.Tensor) -> None:
        if self._paused or output.dim() < 2:
            return
        key = (name, call)
        self._calls[name] = max(self._calls.get(name, 0), call + 1)
        with torch.no_grad():
            dead = dead_maps(output.detach()).sum(dim=0)
        counts = self._counts.get(key)
        if counts is None or counts.shape != dead.shape or counts.device != dead.device:
            if key not in self._inputs:
                self._order.append(key)
            self._counts[key] = dead.to(torch.int64)
            self._inputs[key] = output.shape[0]
        else:
            counts.add_(dead)
            self._inputs[key] += output.shape[0]

    @property
    def inputs_seen(self) -> int:
        """Inputs counted since the last reset (by the first watched layer that ran)."""
        return max(self._inputs.values(), default=0)

    def report(self, reset: bool = False) -> dict[str, DeadReport]:
        """Per watched layer (per call, in execution order), the dead rates over the window so far.

        This is the only place counts leave the device (one copy per layer). ``reset=True`` starts a new window.
        """
        reports = {}
        for name, call in self._order:
            inputs = self._inputs[(name, call)]
            rates = self._counts[(name, call)].double().div_(max(1, inputs)).float().cpu()
            layer = call_name(name, call, self._calls[name])
            reports[layer] = DeadReport(layer=layer, rates=rates, inputs=inputs, threshold=self.threshold)
        if reset:
            self.reset()
        return reports

    def reset(self) -> None:
        """Start a new window: zero every count (kept on the device, no reallocation)."""
        for counts in self._counts.values():
            counts.zero_()
        for key in self._inputs:
            self._inputs[key] = 0
