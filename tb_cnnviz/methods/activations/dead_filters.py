"""Activation health: dead channels (a ReLU's map all zero), dormant ones (a smooth activation never positive),
and each layer's sparsity, counted during training.

A dead ReLU unit gets no gradient and never recovers; a learning rate that is too high kills many at once. A
channel of a smooth or leaky activation (SiLU, GELU, ...) whose pre-activation never turns positive is
*dormant*: its gradient still flows, so it may recover (see :mod:`.activation_sites`). Sparsity -- the share of
zero (ReLU) or non-positive (smooth) outputs -- is the CS231n notes' first diagnostic: activations "start out
blobby and dense and become sparse and localized" as a net trains.

The monitor counts, per channel, the inputs whose map is all <= 0, with a few element-wise kernels per watched
call and no host synchronisation: the counts stay on the model's device until :meth:`DeadFilterMonitor.report`.
In the same pass it bins a sample of each layer's values on one fixed signed log-spaced edge set
(:mod:`.histograms`): how the distribution moves over training, NaN and infinities counted apart.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .._hooks import call_name, forward_hooks, resolve_layers
from .activation_sites import DEAD, DORMANT, FEATURE, ActivationSite, find_activation_sites, mark_gates, module_site
from .histograms import bin_slots, sample_values, slot_count, symmetric_log_edges

#: A channel dead for at least this share of the inputs in a window is flagged.
DEFAULT_THRESHOLD = 0.99


def map_measure(output: torch.Tensor, nonnegative: bool = False, channel_axis: int = 1) -> torch.Tensor:
    """(N, C, ...) -> (N, C) float: a number per map that is <= 0 exactly when the map is all <= 0 (dead), and
    NaN for a map holding NaN (not dead): the map's max, or, when ``nonnegative`` promises ``output >= 0``
    (a ReLU's), its sum -- a sum of non-negative floats is 0 only if every term is. Sums are the cheapest
    reduction on the CPU; for small maps as a matrix-vector product, which the reduction kernels lose to by
    2-3x on 2x2 and 4x4 maps. ``channel_axis=-1`` takes channels from the last axis ((N, H, W, C) after a
    ``Linear``, as in ConvNeXt).
    """
    if output.dim() < 2:
        raise ValueError(f"expected a (N, C, ...) layer output; got shape {tuple(output.shape)}")
    if output.dim() == 2:
        return output.clone()  # the hooked tensor may be changed in place later in the forward
    axis = channel_axis % output.dim()
    if axis == 0:
        raise ValueError(f"channel_axis must not be the batch axis; got {channel_axis}")
    if axis != 1:
        other = tuple(d for d in range(1, output.dim()) if d != axis)
        return output.sum(dim=other) if nonnegative else output.amax(dim=other)
    if not output.is_contiguous():
        return output.amax(dim=tuple(range(2, output.dim())))
    maps = output.flatten(2)  # a view: the reduction runs over the contiguous trailing axis
    if not nonnegative:
        return maps.amax(dim=2)
    pixels = maps.shape[2]
    small = pixels <= _SMALL_MAP and maps.device.type == "cpu"  # GPUs reduce small maps well
    return maps @ maps.new_ones(pixels) if small else maps.sum(dim=2)


def dead_maps(output: torch.Tensor, nonnegative: bool = False, channel_axis: int = 1) -> torch.Tensor:
    """(N, C, ...) -> (N, C) bool: which maps are all zero (or below, for safety). NaN maps are not dead."""
    return map_measure(output, nonnegative, channel_axis) <= 0


#: Sparsity is counted on this many inputs of each batch (the first): an unbiased sample at 1/N of the cost
#: of counting every element, which would add about 1.5% to a resnet18 training step on the CPU on its own.
SPARSITY_SAMPLE = 1


_SMALL_MAP = 16  # pixels: up to 4x4 maps are summed by a matrix-vector product


@dataclass
class DeadReport:
    """Health statistics of one layer over one window of inputs."""

    layer: str
    rates: torch.Tensor  #: (C,) float32 on the CPU: share of inputs whose map was all zero (all <= 0)
    inputs: int  #: how many inputs (images) the window saw
    threshold: float
    health: str = DEAD  #: "dead" (a ReLU: no gradient where off) or "dormant" (smooth: the gradient flows)
    sparsity: float = float("nan")  #: share of zero (ReLU) / non-positive (smooth) outputs, sampled
    found_as: str = ""  #: the activation: "ReLU", "F.relu", "SiLU", ...
    role: str = FEATURE  #: "feature", or "gate": the squeeze path of a squeeze-and-excitation block
    #: (len(edges) + 2,) int64 on the CPU, counts of sampled values: -Inf, each bin of ``edges``, +Inf, NaN
    histogram: torch.Tensor | None = None
    edges: torch.Tensor | None = None  #: float32 bin edges, the same for every layer and flush

    @property
    def flagged(self) -> list[int]:
        """Channels off for at least ``threshold`` of the inputs: dead or dormant, as :attr:`health` says."""
        return torch.nonzero(self.rates >= self.threshold).flatten().tolist()

    @property
    def dead(self) -> list[int]:
        return self.flagged if self.health == DEAD else []

    @property
    def dormant(self) -> list[int]:
        return self.flagged if self.health == DORMANT else []

    @property
    def dead_fraction(self) -> float:
        return len(self.dead) / max(1, self.rates.numel())

    @property
    def dormant_fraction(self) -> float:
        return len(self.dormant) / max(1, self.rates.numel())


class DeadFilterMonitor:
    """Count off maps of every activation (or of the given ``layers``) during forward passes.

    With no ``layers`` every activation is found (:func:`.activation_sites.find_activation_sites`): ReLU
    modules, functional ReLUs at the module producing their input, smooth activations at their input.

    Example::

        with DeadFilterMonitor(model) as monitor:
            for x, y in loader:
                train_step(x, y)
            for report in monitor.report().values():
                print(report.layer, report.health, report.flagged, report.sparsity)
    """

    def __init__(self, model: nn.Module, layers: Sequence[str] | None = None, threshold: float = DEFAULT_THRESHOLD,
                 histograms: bool = True):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
            raise ValueError(f"threshold must be a number in (0, 1]; got {threshold!r}")
        self.model = model
        self.threshold = float(threshold)
        if layers is None:
            self.sites: dict[str, ActivationSite] = find_activation_sites(model)
        else:
            chosen = resolve_layers(model, layers)
            if not chosen:
                raise ValueError("layers is empty: name at least one module to watch, or pass None to find them")
            self.sites = {name: module_site(name, module) for name, module in chosen.items()}
        mark_gates(model, self.sites)
        named = dict(model.named_modules())
        self.modules = {name: named[name] for name in self.sites}
        #: this forward's measures: key, per-map measure, sampled non-positive count and elements, value sample
        self._pending: list[tuple[tuple[str, int], torch.Tensor, torch.Tensor, int, torch.Tensor | None]] = []
        self._flat: torch.Tensor | None = None  # every layer's counts in one buffer; _counts holds views of it
        self._flat_zeros: torch.Tensor | None = None  # every layer's sampled non-positive count; _zeros: views
        self._flat_keys: list[tuple[str, int]] = []
        #: the value histograms' edges (None: not kept), every layer's counts in one buffer, and the slot
        #: offsets of the last layout of samples (layer i's slots start at i * slot_count)
        self.edges = symmetric_log_edges().float() if histograms else None
        self._flat_hist: torch.Tensor | None = None
        self._hist_offsets: tuple[tuple[int, ...], torch.Tensor, torch.Tensor] | None = None
        self._hists: dict[tuple[str, int], torch.Tensor] = {}
        self._counts: dict[tuple[str, int], torch.Tensor] = {}
        self._zeros: dict[tuple[str, int], torch.Tensor] = {}
        self._elements: dict[tuple[str, int], int] = {}
        self._inputs: dict[tuple[str, int], int] = {}
        self._calls: dict[str, int] = {}
        self._order: list[tuple[str, int]] = []
        self._skipped: set[str] = set()
        self._paused = 0
        #: While True the hooks stay but count nothing: a caller measuring one training step in k (see
        #: ``views.dead.HealthLog``) sets it between steps, at the cost of one Python call per hooked module.
        self.idle = False
        self._hooks: ExitStack | None = None

    def start(self) -> DeadFilterMonitor:
        if self._hooks is None:
            stack = ExitStack()
            before = {name for name, site in self.sites.items() if site.before}
            stack.enter_context(forward_hooks(self.model, self.modules, self._measure, before=before))
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
        """Per watched call, one reduction and a sampled count; the rest waits for the end of the forward."""
        if self._paused or self.idle:
            return
        self._calls[name] = max(self._calls.get(name, 0), call + 1)
        site = self.sites[name]
        if site.calls is not None and call not in site.calls:
            return
        if output.dim() < 2 or not (output.is_floating_point() or output.is_complex()) or output.shape[0] == 0:
            self._skip(name, output)
            return
        output = output.detach()
        sample = output[:SPARSITY_SAMPLE]
        values = sample_values(output) if self.edges is not None else None
        self._pending.append(((name, call), map_measure(output, site.nonnegative, site.channel_axis),
                              (sample <= 0).sum(), sample.numel(), values))

    def _skip(self, name: str, output: torch.Tensor) -> None:
        if name not in self._skipped and output.shape[:1] != (0,):
            self._skipped.add(name)
            warnings.warn(
                f"tb_cnnviz: layer {name!r} gave a {output.dim()}-D {output.dtype} tensor of shape "
                f"{tuple(output.shape)}, not (N, C, ...) floats: health monitoring skips it",
                stacklevel=2,
            )

    @torch.inference_mode(False)  # counts made during an inference-mode forward must stay updatable after it
    def _settle(self) -> None:
        """Fold the measures of the last forward into the counts. In the common case -- the same layers as
        before, one batch size, one device -- that is one comparison, one sum and two adds for all layers,
        and one bucketize and one bincount for every layer's value sample."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        keys = [entry[0] for entry in pending]
        measures = [entry[1] for entry in pending]
        batch, device = measures[0].shape[0], measures[0].device
        uniform = all(m.shape[0] == batch and m.device == device and m.dim() == 2 for m in measures)
        if uniform and not self._counts:  # the first forward fixes the layout of the shared buffer
            sizes = [m.shape[1] for m in measures]
            if len(set(keys)) == len(keys):
                self._flat = torch.zeros(sum(sizes), dtype=torch.int64, device=device)
                self._flat_zeros = torch.zeros(len(keys), dtype=torch.int64, device=device)
                self._flat_keys = keys
                self._counts = dict(zip(keys, self._flat.split(sizes)))
                self._zeros = dict(zip(keys, self._flat_zeros.unbind()))
                if self.edges is not None:
                    self._flat_hist = torch.zeros(len(keys), slot_count(self.edges), dtype=torch.int64, device=device)
                    self._hists = dict(zip(keys, self._flat_hist.unbind()))
                self._order = list(keys)
                self._inputs = dict.fromkeys(keys, 0)
                self._elements = dict.fromkeys(keys, 0)
        if uniform and keys == self._flat_keys:
            self._flat.add_((torch.cat(measures, dim=1) <= 0).sum(dim=0))
            self._flat_zeros.add_(torch.stack([entry[2] for entry in pending]))
            if self._flat_hist is not None:
                self._flat_hist.view(-1).add_(self._binned_together([entry[4] for entry in pending]))
            for key, _, _, elements, _ in pending:
                self._inputs[key] += batch
                self._elements[key] += elements
            return
        for key, measure, zeros, elements, values in pending:  # a forward that differs: layer by layer
            dead = (measure <= 0).sum(dim=0)
            binned = self._binned_together([values]) if values is not None else None
            counts = self._counts.get(key)
            if counts is None or counts.shape != dead.shape or counts.device != dead.device:
                if key not in self._inputs:
                    self._order.append(key)
                if key in self._flat_keys:
                    self._flat_keys = []  # this key's counts leave the shared buffer: no more fast path
                self._counts[key] = dead.to(torch.int64)
                self._zeros[key] = zeros.to(torch.int64)
                if binned is not None:
                    self._hists[key] = binned
                self._inputs[key] = measure.shape[0]
                self._elements[key] = elements
            else:
                counts.add_(dead)
                self._zeros[key].add_(zeros)
                if binned is not None:
                    self._hists[key].add_(binned.to(self._hists[key].device))
                self._inputs[key] += measure.shape[0]
                self._elements[key] += elements

    def _binned_together(self, samples: list[torch.Tensor]) -> torch.Tensor:
        """(len(samples) * slot_count,) counts: sample i's values binned into slots i * slot_count onwards,
        in one bucketize and one bincount (the slot offsets are kept while the layout of samples stays)."""
        device, width = samples[0].device, slot_count(self.edges)
        lengths = tuple(len(sample) for sample in samples)
        if self._hist_offsets is None or self._hist_offsets[0] != lengths or self._hist_offsets[1].device != device:
            starts = torch.arange(len(samples), device=device) * width
            counts = torch.tensor(lengths, device=device)
            self._hist_offsets = (lengths, torch.repeat_interleave(starts, counts, output_size=sum(lengths)),
                                  self.edges.to(device))
        _, offsets, edges = self._hist_offsets
        values = torch.cat(samples).float() if len(samples) > 1 else samples[0].float()
        return torch.bincount(bin_slots(values, edges) + offsets, minlength=len(samples) * width)

    @property
    def inputs_seen(self) -> int:
        """Inputs counted since the last reset (by the first watched layer that ran)."""
        self._settle()
        return max(self._inputs.values(), default=0)

    def report(
        self, reset: bool = False, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> dict[str, DeadReport]:
        """Per watched layer (per call, in execution order), the rates and sparsity over the window so far.

        This is the only place counts leave the device (one copy). ``reset=True`` starts a new window.
        ``reduce`` maps one int64 vector -- every layer's counts, then every layer's input count -- to the same
        vector summed elsewhere (DDP: an ``all_reduce`` over ranks, which must watch the same layers).
        """
        self._settle()
        keys = list(self._order)
        counts = [self._counts[key] for key in keys]
        zeros = [self._zeros[key] for key in keys]
        width = slot_count(self.edges) if self.edges is not None else 0
        hists = [self._hists.get(key) for key in keys] if width else []
        hists = [h if h is not None else torch.zeros(width, dtype=torch.int64) for h in hists]
        host = [self._inputs[key] for key in keys] + [self._elements[key] for key in keys]
        device = counts[0].device if counts else torch.device("cpu")
        sizes = [c.numel() for c in counts]
        packed = torch.cat([*(c.to(device) for c in counts), *(h.to(device) for h in hists),
                            *(z.to(device).reshape(1) for z in zeros),
                            torch.tensor(host, dtype=torch.int64, device=device)])
        if reduce is not None:
            total = reduce(packed)
            if total.shape != packed.shape:
                raise ValueError(f"reduce returned shape {tuple(total.shape)} for counts of shape {tuple(packed.shape)}")
            packed = total
        parts = packed.cpu().split([*sizes, width * len(hists), len(keys), 2 * len(keys)])  # one copy to the host
        histograms = parts[len(sizes)].view(len(hists), width) if hists else None
        totals = parts[-1].tolist()
        inputs, elements, zero_counts = totals[: len(keys)], totals[len(keys):], parts[-2].tolist()
        reports = {}
        for index, (name, call) in enumerate(keys):
            site = self.sites[name]
            rates = parts[index].double().div_(max(1, inputs[index])).float()
            layer = call_name(name, call, self._calls[name])
            sparsity = zero_counts[index] / elements[index] if elements[index] else float("nan")
            reports[layer] = DeadReport(layer=layer, rates=rates, inputs=inputs[index], threshold=self.threshold,
                                        health=site.health, sparsity=sparsity, found_as=site.found_as,
                                        role=site.role, edges=self.edges,
                                        histogram=histograms[index].clone() if histograms is not None else None)
        if reset:
            self.reset()
        return reports

    def reset(self) -> None:
        """Start a new window: zero every count (kept on the device, no reallocation)."""
        for counts in self._counts.values():
            counts.zero_()
        for zeros in self._zeros.values():
            zeros.zero_()
        for histogram in self._hists.values():
            histogram.zero_()
        for key in self._inputs:
            self._inputs[key] = 0
            self._elements[key] = 0
