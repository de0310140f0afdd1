"""Dead filters: channels whose post-ReLU map is all zero for (nearly) every input.

A dead ReLU unit gets no gradient and never recovers; a learning rate that is too high kills many at once.
The monitor counts, per channel, the inputs whose map is all zero, with a few element-wise kernels per
ReLU call and no host synchronisation: the counts stay on the model's device until :meth:`report`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .._hooks import call_name, forward_hooks, is_relu_like, relu_layers, resolve_layers

#: A channel dead for at least this share of the inputs in a window is flagged.
DEFAULT_THRESHOLD = 0.99


def map_measure(output: torch.Tensor, nonnegative: bool = False) -> torch.Tensor:
    """(N, C, ...) -> (N, C) float: a number per map that is <= 0 exactly when the map is all <= 0 (dead), and
    NaN for a map holding NaN (not dead): the map's max, or, when ``nonnegative`` promises ``output >= 0``
    (a ReLU's), its sum -- a sum of non-negative floats is 0 only if every term is. Sums are the cheapest
    reduction on the CPU; for small maps as a matrix-vector product, which the reduction kernels lose to by
    2-3x on 2x2 and 4x4 maps.
    """
    if output.dim() < 2:
        raise ValueError(f"expected a (N, C, ...) layer output; got shape {tuple(output.shape)}")
    if output.dim() == 2:
        return output
    if not output.is_contiguous():
        return output.amax(dim=tuple(range(2, output.dim())))
    maps = output.flatten(2)  # a view: the reduction runs over the contiguous trailing axis
    if not nonnegative:
        return maps.amax(dim=2)
    pixels = maps.shape[2]
    small = pixels <= _SMALL_MAP and maps.device.type == "cpu"  # GPUs reduce small maps well
    return maps @ maps.new_ones(pixels) if small else maps.sum(dim=2)


def dead_maps(output: torch.Tensor, nonnegative: bool = False) -> torch.Tensor:
    """(N, C, ...) -> (N, C) bool: which maps are all zero (or below, for safety). NaN maps are not dead."""
    return map_measure(output, nonnegative) <= 0


_SMALL_MAP = 16  # pixels: up to 4x4 maps are summed by a matrix-vector product


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
        self._nonnegative = {name for name, module in self.modules.items() if is_relu_like(module)}
        self._pending: list[tuple[tuple[str, int], torch.Tensor]] = []  # this forward's map measures
        self._flat: torch.Tensor | None = None  # every layer's counts in one buffer; _counts holds views of it
        self._flat_keys: list[tuple[str, int]] = []
        self._counts: dict[tuple[str, int], torch.Tensor] = {}
        self._inputs: dict[tuple[str, int], int] = {}
        self._calls: dict[str, int] = {}
        self._order: list[tuple[str, int]] = []
        self._paused = 0
        self._hooks: ExitStack | None = None

    def start(self) -> DeadFilterMonitor:
        if self._hooks is None:
            stack = ExitStack()
            stack.enter_context(forward_hooks(self.model, self.modules, self._measure))
            # Settle at the end of every forward of the model, and at the start of the next one (in case the
            # last one raised half way, or watched modules were called on their own).
            stack.callback(self.model.register_forward_pre_hook(lambda *_: self._settle()).remove)
            stack.callback(self.model.register_forward_hook(lambda *_: self._settle()).remove)
            stack.callback(self._settle)
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

    def _measure(self, name: str, call: int, output: torch.Tensor) -> None:
        """Per watched call, one reduction; the rest waits for the end of the forward (:meth:`_settle`)."""
        if self._paused or output.dim() < 2:
            return
        self._calls[name] = max(self._calls.get(name, 0), call + 1)
        self._pending.append(((name, call), map_measure(output.detach(), name in self._nonnegative)))

    def _settle(self) -> None:
        """Fold the measures of the last forward into the counts. In the common case -- the same layers as
        before, one batch size, one device -- that is one comparison, one sum and one add for all layers."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        keys = [key for key, _ in pending]
        measures = [m for _, m in pending]
        batch, device = measures[0].shape[0], measures[0].device
        uniform = all(m.shape[0] == batch and m.device == device and m.dim() == 2 for m in measures)
        if uniform and not self._counts:  # the first forward fixes the layout of the shared buffer
            sizes = [m.shape[1] for m in measures]
            if len(set(keys)) == len(keys):
                self._flat = torch.zeros(sum(sizes), dtype=torch.int64, device=device)
                self._flat_keys = keys
                self._counts = dict(zip(keys, self._flat.split(sizes)))
                self._order = list(keys)
                self._inputs = dict.fromkeys(keys, 0)
        if uniform and keys == self._flat_keys:
            self._flat.add_((torch.cat(measures, dim=1) <= 0).sum(dim=0))
            for key in keys:
                self._inputs[key] += batch
            return
        for key, measure in pending:  # a forward that differs: layer by layer
            dead = (measure <= 0).sum(dim=0)
            counts = self._counts.get(key)
            if counts is None or counts.shape != dead.shape or counts.device != dead.device:
                if key not in self._inputs:
                    self._order.append(key)
                if key in self._flat_keys:
                    self._flat_keys = []  # this key's counts leave the shared buffer: no more fast path
                self._counts[key] = dead.to(torch.int64)
                self._inputs[key] = measure.shape[0]
            else:
                counts.add_(dead)
                self._inputs[key] += measure.shape[0]

    @property
    def inputs_seen(self) -> int:
        """Inputs counted since the last reset (by the first watched layer that ran)."""
        self._settle()
        return max(self._inputs.values(), default=0)

    def report(
        self, reset: bool = False, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> dict[str, DeadReport]:
        """Per watched layer (per call, in execution order), the dead rates over the window so far.

        This is the only place counts leave the device (one copy per layer). ``reset=True`` starts a new window.
        ``reduce`` maps one int64 vector -- every layer's counts, then every layer's input count -- to the same
        vector summed elsewhere (DDP: an ``all_reduce`` over ranks, which must watch the same layers).
        """
        self._settle()
        counts = {key: self._counts[key] for key in self._order}
        inputs = {key: self._inputs[key] for key in self._order}
        if reduce is not None:
            counts, inputs = self._reduced(counts, inputs, reduce)
        reports = {}
        for name, call in self._order:
            rates = counts[(name, call)].double().div_(max(1, inputs[(name, call)])).float().cpu()
            layer = call_name(name, call, self._calls[name])
            reports[layer] = DeadReport(layer=layer, rates=rates, inputs=inputs[(name, call)], threshold=self.threshold)
        if reset:
            self.reset()
        return reports

    def _reduced(
        self, counts: dict[tuple[str, int], torch.Tensor], inputs: dict[tuple[str, int], int],
        reduce: Callable[[torch.Tensor], torch.Tensor],
    ) -> tuple[dict[tuple[str, int], torch.Tensor], dict[tuple[str, int], int]]:
        """Counts and input counts packed into one vector, reduced in one call, unpacked: one collective."""
        device = next(iter(counts.values())).device if counts else torch.device("cpu")
        sizes = [c.numel() for c in counts.values()]
        packed = torch.cat([*(c.to(device) for c in counts.values()),
                            torch.tensor(list(inputs.values()), dtype=torch.int64, device=device)])
        total = reduce(packed)
        if total.shape != packed.shape:
            raise ValueError(f"reduce returned shape {tuple(total.shape)} for counts of shape {tuple(packed.shape)}")
        parts = total.split([*sizes, len(inputs)])
        reduced_inputs = dict(zip(inputs, parts[-1].tolist()))
        return dict(zip(counts, parts[:-1])), reduced_inputs

    def reset(self) -> None:
        """Start a new window: zero every count (kept on the device, no reallocation)."""
        for counts in self._counts.values():
            counts.zero_()
        for key in self._inputs:
            self._inputs[key] = 0
