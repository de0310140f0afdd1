"""Where an occluder changes each feature map, worked out once from the model's fx graph (no tensor work).

Krypton's observation (Nakandala, Kumar, Papakonstantinou, SIGMOD 2019): an occluder changes only a box of
the early feature maps. The box grows by each layer's kernel and shrinks by its stride until it covers the
map. Everything here is per axis, because the occluder's rows depend only on its grid row ``i`` and its
columns only on its grid column ``j``: a :class:`Span` holds, for every ``i`` (or ``j``), the changed
interval and the fixed-size *patch* that holds it (clamped inside the map, so that every position's patch
has the same shape and many positions run as one batch).

A node of the graph is

- ``plain``: it does not depend on the image (a constant, a parameter): computed once;
- ``input``: the image, changed under the occluder;
- ``window``: a conv or pooling on a local input: run on a crop of the input around the patch;
- ``pointwise``: element-wise (activations, eval batch norm): run on the patch alone;
- ``union``: residual add or channel concatenation of local inputs: run on the union of their boxes;
- ``full``: anything else, or a box that covers the whole map: the ordinary batched forward.

The plan also counts multiply-adds (convs and linears), which gives the limit of the idea: full work over
the work on the changed boxes alone.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

POINTWISE_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish,
    nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Dropout, nn.Dropout2d, nn.Identity,
)
POINTWISE_FUNCTIONS = {F.relu, torch.relu, F.relu6, F.hardswish, F.hardsigmoid, F.silu, F.gelu, F.elu,
                       F.leaky_relu, torch.sigmoid, torch.tanh, F.sigmoid, F.tanh}
POINTWISE_METHODS = {"relu", "relu_", "sigmoid", "tanh", "contiguous", "clone"}
BINARY_FUNCTIONS = {operator.add, operator.iadd, torch.add, operator.sub, torch.sub, operator.mul, torch.mul}
BINARY_METHODS = {"add", "add_", "mul", "mul_", "sub"}


@dataclass(frozen=True, eq=False)  # identity: spans key per-batch tables
class Span:
    """Along one axis, per grid index: changed interval ``[lo, hi]`` (inclusive) and the patch
    ``[start, start + size)`` that holds it, ``size`` the same for every index."""

    lo: torch.Tensor
    hi: torch.Tensor
    start: torch.Tensor
    size: int
    extent: int

    @staticmethod
    def around(lo: torch.Tensor, hi: torch.Tensor, extent: int) -> Span:
        size = int((hi - lo + 1).max())
        return Span(lo, hi, torch.clamp(lo, max=extent - size), size, extent)

    @property
    def covers_map(self) -> bool:
        return self.size >= self.extent

    def mean_changed(self) -> float:
        return float((self.hi - self.lo + 1).double().mean())

    def same_patches(self, other: Span) -> bool:
        return self.size == other.size and torch.equal(self.start, other.start)


@dataclass(frozen=True)
class Window:
    """Conv or pooling geometry along one axis."""

    kernel: int
    stride: int
    padding: int
    dilation: int

    def through(self, span: Span, extent: int, cap: int | None) -> tuple[Span, torch.Tensor, int]:
        """Output span, and the input crop (start per grid index, size) that computes its patch."""
        reach = (self.kernel - 1) * self.dilation
        lo = torch.clamp(-((reach - self.padding - span.lo) // self.stride), min=0)  # ceil division
        hi = torch.clamp((span.hi + self.padding) // self.stride, max=extent - 1)
        if cap is not None:  # Krypton's projective-field threshold: keep the centre, drop the rim
            excess = torch.clamp(hi - lo + 1 - cap, min=0)
            lo = lo + excess // 2
            hi = hi - (excess - excess // 2)
        out = Span.around(lo, hi, extent)
        return out, out.start * self.stride - self.padding, (out.size - 1) * self.stride + reach + 1


def _pair(value: object) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)  # type: ignore[return-value]


def window_of(module: nn.Module) -> tuple[Window, Window, float] | None:
    """(row window, column window, padding value) of a conv or pooling module that works on a crop with
    padding 0 exactly as on the padded map; None for anything else."""
    if isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros" or isinstance(module.padding, str) and module.padding != "valid":
            return None
        padding, pad_value = ((0, 0) if module.padding == "valid" else module.padding), 0.0
    elif isinstance(module, nn.MaxPool2d):
        if module.return_indices:
            return None
        padding, pad_value = module.padding, -math.inf  # ceil mode: the partial window's extra cells pad to -inf
    elif isinstance(module, nn.AvgPool2d):
        if module.ceil_mode or (module.padding != 0 and not module.count_include_pad):
            return None
        padding, pad_value = module.padding, 0.0
    else:
        return None
    dilation = getattr(module, "dilation", 1)
    stride = module.stride if module.stride is not None else module.kernel_size
    rows, cols = (Window(*axis) for axis in zip(_pair(module.kernel_size), _pair(stride), _pair(padding), _pair(dilation)))
    return rows, cols, pad_value


@dataclass
class Step:
    """What to do for one node: ``kind`` (see the module docstring), the spans of its output patch, and for
    a window the crop (start per grid index and size, per axis) plus padding."""

    kind: str
    rows: Span | None = None
    cols: Span | None = None
    crop: tuple[torch.Tensor, int, torch.Tensor, int] | None = None
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)  # left, right, top, bottom, as F.pad takes them
    pad_value: float = 0.0
    full_macs: float = 0.0
    changed_macs: float = 0.0
    patch_macs: float = 0.0
    elements: int = 0  # per occluder position: the patch, or the whole value for a full step


@dataclass
class Plan:
    """A step per node, and the multiply-adds per occluder position: full forward, changed boxes only, and
    the fixed-size patches actually run."""

    steps: dict[torch.fx.Node, Step] = field(default_factory=dict)

    def macs(self, which: str) -> float:
        return sum(getattr(step, which) for step in self.steps.values())

    @property
    def speedup_limit(self) -> float:
        """Full multiply-adds over those of the exactly changed boxes (and the full layers after them)."""
        return self.macs("full_macs") / max(self.macs("changed_macs"), 1.0)

    @property
    def patch_speedup(self) -> float:
        """The same with the fixed-size patches this plan runs (what clamping and batching cost)."""
        return self.macs("full_macs") / max(self.macs("patch_macs"), 1.0)

    def batch_elements(self) -> int:
        """Elements per occluder position that a batch holds at its peak, roughly: a layer's input, crop
        and output at the largest layer."""
        return 3 * max((step.elements for step in self.steps.values()), default=1)


def _tensor_shape(value: object) -> tuple[int, ...] | None:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def _broadcasts_per_channel(value: object) -> bool:
    """A constant that an element-wise op may combine with a patch: a number, or a tensor without a grid."""
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, torch.Tensor) and (value.dim() < 2 or tuple(value.shape[-2:]) == (1, 1))


def _macs(module: nn.Module, out_shape: tuple[int, ...], rows: float, cols: float) -> float:
    if isinstance(module, nn.Conv2d):
        per_cell = module.out_channels * (module.in_channels // module.groups) * math.prod(_pair(module.kernel_size))
        return per_cell * rows * cols
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features * math.prod(out_shape[:-1])
    return 0.0


def _input_nodes(node: torch.fx.Node, kinds: dict[torch.fx.Node, Step]) -> list[torch.fx.Node]:
    return [n for n in node.all_input_nodes if kinds[n].kind != "plain"]


def _union(spans: list[Span]) -> Span:
    lo = torch.stack([s.lo for s in spans]).min(dim=0).values
    hi = torch.stack([s.hi for s in spans]).max(dim=0).values
    return Span.around(lo, hi, spans[0].extent)


def _local_step(node: torch.fx.Node, steps: dict[torch.fx.Node, Step], base: dict[torch.fx.Node, object],
                modules: dict[str, nn.Module], caps: tuple[int, int] | None) -> Step | None:
    """The local step for ``node``, or None when its locality is unknown (then it runs in full)."""
    inputs = _input_nodes(node, steps)
    shape = _tensor_shape(base[node])
    if not inputs or any(steps[n].kind == "full" for n in inputs) or shape is None or len(shape) != 4:
        return None
    first = steps[inputs[0]]
    others_plain = all(_broadcasts_per_channel(base[a] if isinstance(a, torch.fx.Node) else a)
                       for a in list(node.args) + list(node.kwargs.values())
                       if not (isinstance(a, torch.fx.Node) and a in inputs))
    if node.op == "call_module":
        module = modules[node.target]
        if len(inputs) != 1:
            return None
        if isinstance(module, nn.BatchNorm2d) and module.running_mean is not None and not module.training:
            return Step("pointwise", first.rows, first.cols)
        if isinstance(module, POINTWISE_MODULES):  # dropout included: the model runs in eval mode
            return Step("pointwise", first.rows, first.cols)
        geometry = window_of(module)
        if geometry is None:
            return None
        row_window, col_window, pad_value = geometry
        height, width = shape[2:]
        rows, row_start, row_size = row_window.through(first.rows, height, caps and caps[0])
        cols, col_start, col_size = col_window.through(first.cols, width, caps and caps[1])
        in_height, in_width = _tensor_shape(base[inputs[0]])[2:]
        pad = (max(0, -int(col_start.min())), max(0, int(col_start.max()) + col_size - in_width),
               max(0, -int(row_start.min())), max(0, int(row_start.max()) + row_size - in_height))
        return Step("window", rows, cols, (row_start, row_size, col_start, col_size), pad, pad_value)
    if node.op == "call_function" and node.target in POINTWISE_FUNCTIONS and len(inputs) == 1 and others_plain:
        return Step("pointwise", first.rows, first.cols)
    if node.op == "call_method" and node.target in POINTWISE_METHODS and len(inputs) == 1 and others_plain:
        return Step("pointwise", first.rows, first.cols)
    binary = (node.op == "call_function" and node.target in BINARY_FUNCTIONS
              or node.op == "call_method" and node.target in BINARY_METHODS)
    if binary and len(inputs) == 1 and others_plain:
        return Step("pointwise", first.rows, first.cols)
    concat = node.op == "call_function" and node.target is torch.cat and (node.args[1:] or [node.kwargs.get("dim", 0)])[0] in (1, -3)
    if (binary and len(inputs) == 2 and len(node.all_input_nodes) == 2) or concat and len(inputs) == len(node.all_input_nodes):
        if any(_tensor_shape(base[n])[2:] != shape[2:] for n in inputs):
            return None
        return Step("union", _union([steps[n].rows for n in inputs]), _union([steps[n].cols for n in inputs]))
    return None


def make_plan(graph: torch.fx.GraphModule, base: dict[torch.fx.Node, object], window: int, stride: int,
              grid: tuple[int, int], approximate: float | None = None) -> Plan:
    """A :class:`Plan` for occluders of side ``window`` at multiples of ``stride`` on the ``grid`` (nh, nw),
    from the graph and the unoccluded outputs ``base`` of its nodes. ``approximate`` (Krypton's tau in
    (0, 1]) caps each changed box at that fraction of its map: faster, no longer exact."""
    modules = dict(graph.named_modules())
    plan = Plan()
    for node in graph.graph.nodes:
        if node.op == "placeholder":
            height, width = base[node].shape[2:]
            rows = torch.arange(grid[0]) * stride
            cols = torch.arange(grid[1]) * stride
            step = Step("input", Span.around(rows, rows + window - 1, height), Span.around(cols, cols + window - 1, width))
        elif node.op in ("get_attr", "output") or not _input_nodes(node, plan.steps):
            step = Step("plain" if node.op != "output" else "full")
        else:
            shape = _tensor_shape(base[node])
            caps = None
            if approximate is not None and shape is not None and len(shape) == 4:
                caps = (max(1, math.ceil(approximate * shape[2])), max(1, math.ceil(approximate * shape[3])))
            step = _local_step(node, plan.steps, base, modules, caps)
            if step is None or step.rows.covers_map and step.cols.covers_map:
                step = Step("full")
        _count_macs(node, step, base, modules)
        shape = _tensor_shape(base[node])
        if step.rows is not None:
            step.elements = shape[1] * step.rows.size * step.cols.size
        elif step.kind == "full" and shape:
            step.elements = math.prod(shape[1:])
        plan.steps[node] = step
    return plan


def _count_macs(node: torch.fx.Node, step: Step, base: dict[torch.fx.Node, object], modules: dict[str, nn.Module]) -> None:
    shape = _tensor_shape(base[node])
    if node.op != "call_module" or shape is None:
        return
    module = modules[node.target]
    full_rows, full_cols = (shape[2], shape[3]) if len(shape) == 4 else (1, 1)
    step.full_macs = _macs(module, shape, full_rows, full_cols)
    if step.kind == "plain":
        step.full_macs = 0.0  # computed once, not per occluder position
    elif step.kind == "window":
        step.changed_macs = _macs(module, shape, step.rows.mean_changed(), step.cols.mean_changed())
        step.patch_macs = _macs(module, shape, step.rows.size, step.cols.size)
    else:
        step.changed_macs = step.patch_macs = step.full_macs
