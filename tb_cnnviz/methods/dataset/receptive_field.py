"""The exact input box a unit of a conv layer can see, from the model's own geometry, for any graph.

The model is traced with ``torch.fx`` and run once on a random input (``input_size``, default 224x224), so
that every tensor of the graph has its value and shape; every tensor gets, per spatial axis, ``(stride,
offset, size)``: unit ``i`` sees input pixels ``[i * stride + offset, i * stride + offset + size)``, and which
of its axes are the image's rows and columns. Rules:

- a convolution or pooling with kernel ``k``, stride ``t``, padding ``p``, dilation ``d`` maps ``(s, o, r)`` to
  ``(s * t, o - p * s, r + d * (k - 1) * s)``;
- element-wise and normalisation ops keep the field (batch norm, layer norm over channels, activations, dropout, ``stochastic_depth``, drop path); a residual add or a concatenation takes the union of
  its inputs' boxes; permutes, transposes and reshapes that move channels only (channels-last blocks, channel
  shuffle) move the axes; a ``Linear`` or layer norm over channels keeps the field; shapes (``size``,
  ``floordiv``, ``eq`` on them) are not tensors and have none;
- gates are not fields: a product with a tensor computed from the whole image (squeeze-and-excitation, ECA,
  CBAM's channel branch: global pooling, then a per-channel factor) scales the feature map without widening
  where a unit looks; the field follows the feature path and :attr:`ReceptiveField.gates` names the gates (and
  the group and instance norms, whose statistics over the whole map scale it the same way);
- global pooling, flattening or a reduction over the spatial axes leaves no grid: that layer is refused;
- any other op gets its field measured (:func:`_measured_op`): the gradient support of two neighbouring output
  units on its inputs, composed with their fields -- exact for a translation-equivariant op;
- a forward ``torch.fx`` cannot trace gets the whole field measured the same way from the input
  (:func:`measured_field`).

Offsets may be negative and boxes may pass the image's far edge: that is padding, and patches are padded there.
"""

from __future__ import annotations

import copy
import math
import operator
from dataclasses import dataclass, field as dataclass_field

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from .._hooks import is_conv, preserved_state, split_call, unknown_layer_message


@dataclass(frozen=True)
class ReceptiveField:
    """Per axis (rows, columns): unit ``(i, j)`` sees rows ``[i*stride[0] + offset[0], ... + size[0])``.
    ``gates``: the modules whose global (whole-image) gate also scales the layer's maps (not in the field)."""

    stride: tuple[int, int]
    offset: tuple[int, int]
    size: tuple[int, int]
    gates: tuple[str, ...] = dataclass_field(default=(), compare=False)

    def box(self, i: int, j: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right), bottom and right exclusive, in input pixels (may leave the image)."""
        top = i * self.stride[0] + self.offset[0]
        left = j * self.stride[1] + self.offset[1]
        return top, left, top + self.size[0], left + self.size[1]


class _Global:
    """The field of a tensor every position of which depends on the whole input."""


GLOBAL = _Global()


@dataclass(frozen=True)
class _Grid:
    """A tensor's field: per spatial axis (stride, offset, size); ``axes``: which of its dims they are."""

    stride: tuple[int, int]
    offset: tuple[int, int]
    size: tuple[int, int]
    axes: tuple[int, int]
    gates: tuple[str, ...] = ()

    def but(self, **changes) -> "_Grid":  # noqa: ANN003
        values = {"stride": self.stride, "offset": self.offset, "size": self.size, "axes": self.axes,
                  "gates": self.gates} | changes
        return _Grid(**values)


_SAME = (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU,
         nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Mish, nn.Softplus,
         nn.Dropout, nn.Dropout2d, nn.AlphaDropout, nn.Identity, nn.InstanceNorm2d, nn.GroupNorm, nn.SyncBatchNorm)
#: Normalisations whose statistics span the whole map: like a gate, they scale it (named in ``gates``).
_STATISTICS = (nn.GroupNorm, nn.InstanceNorm2d)
_GLOBAL_MODULES = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten)
_SAME_FUNCTIONS = {F.relu, torch.relu, F.relu6, F.hardswish, F.hardsigmoid, F.silu, F.gelu, F.mish, F.elu,
                   F.leaky_relu, F.hardtanh, F.softplus, torch.sigmoid, torch.tanh, F.sigmoid, F.tanh, F.dropout,
                   F.dropout2d, F.batch_norm, F.group_norm, F.instance_norm, torch.clamp, torch.clip, torch.abs,
                   torch.exp, operator.neg, operator.pos}
_SAME_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "contiguous", "clone", "float", "double", "half",
                 "to", "type_as", "clamp", "clamp_", "clamp_min", "clamp_min_", "clamp_max", "abs", "exp", "neg",
                 "div_", "mul_", "add_", "detach", "requires_grad_"}
_UNION_FUNCTIONS = {operator.add, operator.iadd, torch.add, operator.sub, operator.isub, torch.sub, torch.cat,
                    torch.concat, torch.maximum, torch.minimum}
_UNION_METHODS = {"add", "add_", "sub", "sub_"}
_GATE_FUNCTIONS = {operator.mul, operator.imul, torch.mul, operator.truediv, operator.itruediv, torch.div}
_GATE_METHODS = {"mul", "mul_", "div", "div_"}
_PERMUTES = {torch.permute, torch.transpose, torch.swapaxes, torch.movedim}
_PERMUTE_METHODS = {"permute", "transpose", "swapaxes", "movedim"}
_RESHAPES = {torch.reshape, torch.flatten, torch.unflatten}
_RESHAPE_METHODS = {"view", "reshape", "flatten", "unflatten", "view_as", "reshape_as"}
_SPLITS = {torch.chunk, torch.split, torch.tensor_split}
_SPLIT_METHODS = {"chunk", "split", "tensor_split"}
_REDUCTIONS = {torch.mean, torch.sum, torch.amax, torch.amin, F.adaptive_avg_pool2d, F.adaptive_max_pool2d}
_REDUCTION_METHODS = {"mean", "sum", "amax", "amin", "max", "min", "std", "var"}


def _same_function(target: object) -> bool:
    name = getattr(target, "__name__", "")
    # torchvision.ops.stochastic_depth, timm's drop_path: the identity at evaluation, a per-sample factor in training
    return target in _SAME_FUNCTIONS or name in ("stochastic_depth", "drop_path")


def _pair(value: object) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)  # type: ignore[return-value]


def _through_window(grid: _Grid, kernel, stride, padding, dilation) -> _Grid:  # noqa: ANN001
    kernel, stride, dilation = _pair(kernel), _pair(stride if stride else kernel), _pair(dilation)
    if padding == "valid":
        padding = 0
    if padding == "same":
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    padding = _pair(padding)
    (s, o, r) = grid.stride, grid.offset, grid.size
    return grid.but(
        stride=tuple(a * b for a, b in zip(s, stride)),
        offset=tuple(a - p * b for a, p, b in zip(o, padding, s)),
        size=tuple(a + d * (k - 1) * b for a, d, k, b in zip(r, dilation, kernel, s)),
    )


def _union(fields: list, axes: tuple[int, int] | None = None):  # noqa: ANN202
    fields = [f for f in fields if f is not None]
    if not fields:
        return None
    if any(f is GLOBAL for f in fields):
        return GLOBAL
    if len({f.stride for f in fields}) > 1 or len({f.axes for f in fields}) > 1:
        return GLOBAL  # grids that do not line up: no single box per unit is exact
    start = tuple(min(f.offset[a] for f in fields) for a in range(2))
    end = tuple(max(f.offset[a] + f.size[a] for f in fields) for a in range(2))
    gates = tuple(dict.fromkeys(g for f in fields for g in f.gates))
    return fields[0].but(offset=start, size=tuple(e - s for s, e in zip(start, end)), gates=gates)


def _tensors(value: object) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    return isinstance(value, (tuple, list)) and bool(value) and all(isinstance(v, torch.Tensor) for v in value)


def _channels_only(index: object, axes: tuple[int, int]) -> bool:
    """A tensor index that keeps every spatial position where it was: integers and slices before the spatial
    axes, whole slices (or nothing) on them."""
    index = index if isinstance(index, tuple) else (index,)
    if any(i is Ellipsis or i is None for i in index):
        return False
    for position, item in enumerate(index):
        if position >= min(axes):
            if not (isinstance(item, slice) and item == slice(None)):
                return False
        elif not isinstance(item, slice):
            return False  # an integer drops a dim in front: the axes would move
    return True


def _dims(value: object, ndim: int) -> list[int]:
    dims = value if isinstance(value, (tuple, list)) else [value]
    return [int(d) % ndim for d in dims]


def _gate_name(node: torch.fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack)) if stack else node.name


class _FieldInterpreter(torch.fx.Interpreter):
    """Runs the traced graph on a sample input and gives each node its field (:class:`_Grid`, ``GLOBAL`` or
    None for what is not a feature map: shapes, constants, parameters)."""

    def __init__(self, graph: torch.fx.GraphModule, stop: torch.fx.Node | None) -> None:
        super().__init__(graph, garbage_collect_values=True)
        self.fields: dict[torch.fx.Node, object] = {}
        self.stop = stop
        self.modules = dict(graph.named_modules())

    def run_node(self, n: torch.fx.Node):  # noqa: ANN201
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        value = getattr(self, n.op)(n.target, args, kwargs)
        self.fields[n] = self.field(n, args, kwargs, value)
        if n is self.stop:
            raise _Stop()
        return value

    def field(self, n: torch.fx.Node, args: tuple, kwargs: dict, value: object):  # noqa: ANN201, C901, PLR0911, PLR0912
        if n.op == "placeholder":
            return _Grid((1, 1), (0, 0), (1, 1), (value.dim() - 2, value.dim() - 1)) if isinstance(value, torch.Tensor) else None
        if n.op in ("get_attr", "output") or not _tensors(value):
            return None
        inputs = [self.fields.get(a) for a in n.all_input_nodes]
        grids = [f for f in inputs if f is not None]
        if not grids:
            return None  # made of constants and parameters only
        target, first = n.target, self.fields.get(n.args[0]) if n.args and isinstance(n.args[0], torch.fx.Node) else None
        module = self.modules[target] if n.op == "call_module" else None
        function = target if n.op == "call_function" else None
        method = target if n.op == "call_method" else None
        if function in _GATE_FUNCTIONS or method in _GATE_METHODS:  # gates are not fields
            spatial = [f for f in grids if isinstance(f, _Grid)]
            if spatial and len(spatial) < len(grids):
                gated = _union(spatial)
                return gated.but(gates=tuple(dict.fromkeys(gated.gates + (_gate_name(n),)))) if isinstance(gated, _Grid) else gated
            return _union(grids)
        if function in _UNION_FUNCTIONS or method in _UNION_METHODS:
            if function in (torch.cat, torch.concat) and isinstance(first := _union(grids), _Grid):
                dim = int(kwargs.get("dim", args[1] if len(args) > 1 else 0)) % value.dim()
                if dim in first.axes:
                    return self.measured(n, args, kwargs, value)
            return _union(grids)
        if any(f is GLOBAL for f in grids):
            return GLOBAL
        grid = first if isinstance(first, _Grid) else grids[0]
        if module is not None:
            if _plain(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)) and grid.axes == (value.dim() - 2, value.dim() - 1):
                return _through_window(grid, module.kernel_size, module.stride, module.padding,
                                       getattr(module, "dilation", 1))
            if isinstance(module, _GLOBAL_MODULES):
                return GLOBAL
            if isinstance(module, nn.Linear):
                return GLOBAL if value.dim() - 1 in grid.axes else grid
            if isinstance(module, nn.LayerNorm):
                return self._normalised(grid, len(module.normalized_shape), value)
            if isinstance(module, _STATISTICS):
                return grid.but(gates=tuple(dict.fromkeys(grid.gates + (target,))))
            if type(module) in _SAME or isinstance(module, _SAME) and _plain(module, _SAME):
                return grid
            return self.measured(n, args, kwargs, value)
        if function is not None:
            if function in (F.conv2d, torch.conv2d) and grid.axes == (value.dim() - 2, value.dim() - 1):
                weight = kwargs.get("weight", args[1])
                names = ("stride", "padding", "dilation")
                options = [kwargs.get(k, args[3 + i] if len(args) > 3 + i else (0 if k == "padding" else 1))
                           for i, k in enumerate(names)]
                return _through_window(grid, tuple(weight.shape[-2:]), *options)
            if function in (F.max_pool2d, F.avg_pool2d) and grid.axes == (value.dim() - 2, value.dim() - 1):
                values = list(args) + [None] * 5
                kernel = kwargs.get("kernel_size", values[1])
                stride = kwargs.get("stride", values[2]) or kernel
                padding = kwargs.get("padding", values[3] if values[3] is not None else 0)
                dilation = kwargs.get("dilation", values[4] if values[4] is not None and function is F.max_pool2d else 1)
                return _through_window(grid, kernel, stride, padding, dilation)
            if function in (F.group_norm, F.instance_norm):
                return grid.but(gates=tuple(dict.fromkeys(grid.gates + (_gate_name(n),))))
            if _same_function(function):
                return grid
            if function is F.layer_norm:
                shape = kwargs.get("normalized_shape", args[1] if len(args) > 1 else None)
                return self._normalised(grid, len(_pair(shape)) if not isinstance(shape, int) else 1, value)
            if function is F.linear:
                return GLOBAL if value.dim() - 1 in grid.axes else grid
            if function is operator.getitem and isinstance(args[0], (tuple, list)):
                return grid  # one of a tuple of maps (a chunk, a split)
            if function is operator.getitem and _channels_only(args[1], grid.axes):
                return grid  # x[:, :c]: a slice of channels
        name = method or getattr(function, "__name__", None)
        if function in _PERMUTES or method in _PERMUTE_METHODS:
            return self._permuted(name, grid, args, kwargs, value)
        if function in _RESHAPES or method in _RESHAPE_METHODS:
            return self._reshaped(grid, args[0], value)
        if function in _SPLITS or method in _SPLIT_METHODS:
            dim = kwargs.get("dim", args[2] if len(args) > 2 else 0)
            return grid if int(dim) % args[0].dim() not in grid.axes else self.measured(n, args, kwargs, value)
        if function in _REDUCTIONS or method in _REDUCTION_METHODS:
            if function in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
                return GLOBAL
            dims = kwargs.get("dim", args[1] if len(args) > 1 else None)
            if dims is None or set(_dims(dims, args[0].dim())) & set(grid.axes):
                return GLOBAL
            if isinstance(value, torch.Tensor) and value.dim() == args[0].dim():
                return grid  # over channels, dims kept
            if isinstance(value, torch.Tensor):  # over channels (split attention's sum over the radix)
                gone = _dims(dims, args[0].dim())
                return grid.but(axes=tuple(a - sum(d < a for d in gone) for a in grid.axes))
        if method in _SAME_METHODS:
            return grid
        return self.measured(n, args, kwargs, value)

    @staticmethod
    def _normalised(grid: _Grid, normalised_dims: int, value: torch.Tensor):  # noqa: ANN205
        """A layer norm over the last ``normalised_dims`` dims: per position when they are not spatial."""
        return GLOBAL if any(axis >= value.dim() - normalised_dims for axis in grid.axes) else grid

    @staticmethod
    def _permuted(name: str, grid: _Grid, args: tuple, kwargs: dict, value: torch.Tensor) -> _Grid:
        ndim = args[0].dim()
        order = list(range(ndim))
        if name == "permute":
            dims = args[1:] if len(args) > 2 or not isinstance(args[1], (tuple, list)) else args[1]
            order = _dims(kwargs.get("dims", dims), ndim)
        elif name in ("transpose", "swapaxes"):
            a, b = _dims(args[1], ndim)[0], _dims(args[2], ndim)[0]
            order[a], order[b] = order[b], order[a]
        else:  # movedim
            source, destination = _dims(args[1], ndim), _dims(args[2], ndim)
            rest = [d for d in range(ndim) if d not in source]
            order = [None] * ndim
            for s, d in zip(source, destination):
                order[d] = s
            order = [d if d is not None else rest.pop(0) for d in order]
        return grid.but(axes=(order.index(grid.axes[0]), order.index(grid.axes[1])))

    @staticmethod
    def _reshaped(grid: _Grid, tensor: torch.Tensor, value: torch.Tensor):  # noqa: ANN205
        """A reshape keeps the grid when the spatial axes are the last two before and after, with their sizes,
        and only the dims in front of them (channels) are regrouped; one that merges them leaves no grid."""
        h, w = (tensor.shape[a] for a in grid.axes)
        if (grid.axes == (tensor.dim() - 2, tensor.dim() - 1) and value.dim() >= 2
                and tuple(value.shape[-2:]) == (h, w) and value.shape[0] == tensor.shape[0]):
            return grid.but(axes=(value.dim() - 2, value.dim() - 1))
        return GLOBAL

    def measured(self, n: torch.fx.Node, args: tuple, kwargs: dict, value: object) -> _Grid | _Global:
        """An op without a rule: its field measured from the gradient support of its output units."""
        return _measured_op(n, lambda *a: getattr(self, n.op)(n.target, *a), value, self.fields, self.env)


class _Stop(Exception):
    pass


def _plain(module: nn.Module, kinds: tuple) -> bool:
    """``module`` is one of ``kinds`` with torch's own forward (timm's Conv2dSame pads in its own: measured)."""
    return any(isinstance(module, kind) and type(module).forward is kind.forward for kind in kinds)


def _support(gradient: torch.Tensor, axes: tuple[int, int]) -> list[tuple[int, int]] | None:
    """Per spatial axis, the [first, last + 1) of the positions where ``gradient`` is non-zero; None if none."""
    mass = gradient.detach().abs()
    spans = []
    for axis in axes:
        other = [d for d in range(mass.dim()) if d != axis]
        line = mass.sum(dim=other) if other else mass
        where = torch.nonzero(line > 0).flatten()
        if where.numel() == 0:
            return None
        spans.append((int(where.min()), int(where.max()) + 1))
    return spans


def _local_geometry(spans_a: list, spans_b: list, units_a: tuple, units_b: tuple, extent: tuple) -> tuple | None:
    """(stride, offset, size) per axis from the supports of two units one step apart on each axis; None when
    either support touches the edge of the map (it may be cut there) -- unless both cover it all."""
    stride, offset, size = [], [], []
    for axis in range(2):
        (a0, a1), (b0, b1) = spans_a[axis], spans_b[axis]
        if (a0 == 0 or b0 == 0 or a1 == extent[axis] or b1 == extent[axis]) and not (a0 == 0 and a1 == extent[axis] and b0 == 0 and b1 == extent[axis]):
            return None
        if (a0, a1) == (b0, b1) == (0, extent[axis]):
            return GLOBAL
        step = units_b[axis] - units_a[axis]
        if step == 0 or (b0 - a0) % step or b0 <= a0:
            return None  # no integer stride (an upsampling), or a map of one unit
        stride.append((b0 - a0) // step)
        offset.append(a0 - units_a[axis] * stride[-1])
        size.append(a1 - a0)
    return tuple(stride), tuple(offset), tuple(size)


def _measured_op(n: torch.fx.Node, call, value: object, fields: dict, env: dict):  # noqa: ANN001, ANN202
    """The field of an op without a rule, measured: each input that has a grid is replaced by a random positive
    tensor of its shape, two output units one step apart (in the middle of the map, on the same axes as the
    input's) are backpropagated to it, and the bounding boxes of the non-zero gradient give the op's own
    stride, offset and kernel, composed with the input's field. Exact for a translation-equivariant op whose
    output depends on every input of its window (a positive input keeps ReLUs and poolings from hiding one)."""
    name = getattr(n.target, "__name__", n.target)
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"receptive_field: no rule for {n.op} {name!r}, and its output is not one feature map")
    nodes = [a for a in n.all_input_nodes if isinstance(fields.get(a), _Grid)]
    grid_of = {a: fields[a] for a in nodes}
    axes = grid_of[nodes[0]].axes
    if any(f.axes != axes for f in grid_of.values()) or value.dim() <= max(axes):
        raise ValueError(f"receptive_field: no rule for {n.op} {name!r}, and it moves the spatial axes")
    extent_out = tuple(value.shape[a] for a in axes)
    units_a = tuple(max(e // 2 - 1, 0) for e in extent_out)
    units_b = tuple(min(u + 1, e - 1) for u, e in zip(units_a, extent_out))
    generator = torch.Generator().manual_seed(0)
    replaced: dict[torch.fx.Node, torch.Tensor] = {}
    with torch.enable_grad():
        for node in nodes:
            real = env[node]
            replaced[node] = (torch.rand(real.shape, generator=generator, dtype=torch.float64) + 0.5).to(real).requires_grad_(True)
        new_args = torch.fx.node.map_arg(n.args, lambda a: replaced.get(a, env.get(a)))
        new_kwargs = torch.fx.node.map_arg(n.kwargs, lambda a: replaced.get(a, env.get(a)))
        out = call(new_args, new_kwargs)
        if not out.requires_grad:
            return None  # made anew (new_empty, zeros_like): no field
        inputs = list(replaced.values())
        results = []
        for units in (units_a, units_b):
            index = [slice(None)] * out.dim()
            for axis, u in zip(axes, units):
                index[axis] = u
            grads = torch.autograd.grad(out[tuple(index)].sum(), inputs, retain_graph=True, allow_unused=True)
            results.append(grads)
    composed = []
    for k, node in enumerate(replaced):
        ga, gb = results[0][k], results[1][k]
        if ga is None or gb is None:
            continue
        spans_a, spans_b = _support(ga, axes), _support(gb, axes)
        if spans_a is None or spans_b is None:
            continue
        extent_in = tuple(inputs[k].shape[a] for a in axes)
        local = _local_geometry(spans_a, spans_b, units_a, units_b, extent_in)
        if local is GLOBAL:
            return GLOBAL
        if local is None:
            raise ValueError(f"receptive_field: no rule for {n.op} {name!r}, and its field could not be measured "
                             f"on a {extent_in[0]}x{extent_in[1]} map (pass a larger input_size)")
        stride, offset, size = local
        grid = grid_of[node]
        composed.append(grid.but(stride=tuple(s * t for s, t in zip(grid.stride, stride)),
                                 offset=tuple(o + q * s for o, q, s in zip(grid.offset, offset, grid.stride)),
                                 size=tuple((k_ - 1) * s + r for k_, s, r in zip(size, grid.stride, grid.size))))
    return _union(composed) if composed else None


def _layer_node(graph: torch.fx.GraphModule, model: nn.Module, layer: str) -> torch.fx.Node:
    module_name, call = split_call(layer)
    if module_name not in dict(model.named_modules()) or module_name == "":
        raise ValueError(unknown_layer_message(model, layer, "layer"))
    calls = [n for n in graph.graph.nodes if n.op == "call_module" and n.target == module_name]
    if not calls:  # a container: its output is the last node run inside it
        calls = [n for n in graph.graph.nodes if module_name in (n.meta.get("nn_module_stack") or {})]
        calls = calls[-1:]
    if not calls:
        raise ValueError(f"layer {layer!r} does not run in the traced forward of {type(model).__name__}")
    if call is None:
        if len(calls) > 1 and calls[0].op == "call_module" and calls[0].target == module_name:
            raise ValueError(f"layer {layer!r} runs {len(calls)} times per forward; name one call: "
                             + ", ".join(f"{module_name}#{k + 1}" for k in range(len(calls))))
        return calls[-1]
    if call >= len(calls):
        raise ValueError(f"layer {layer!r}: {module_name} runs {len(calls)} time(s) per forward")
    return calls[call]


NO_GRID = ("layer {layer!r} has no spatial grid of its own: every unit sees the whole image (after global pooling "
           "or flattening)")


def _sample_input(model: nn.Module, input_size: tuple[int, int] | None, dtype: torch.dtype | None = None) -> torch.Tensor:
    if input_size is not None and (len(input_size) != 2 or any(int(side) < 1 for side in input_size)):
        raise ValueError(f"input_size must be (H, W) with positive sides; got {input_size!r}")
    convs = [m for m in model.modules() if is_conv(m)]
    channels = convs[0].in_channels if convs else 3
    reference = next(model.parameters(), torch.zeros(()))
    size = tuple(int(side) for side in input_size) if input_size is not None else (224, 224)
    generator = torch.Generator().manual_seed(0)
    return torch.rand(1, channels, *size, generator=generator, dtype=torch.float64).to(
        device=reference.device, dtype=dtype or (reference.dtype if reference.is_floating_point() else torch.float32))


def _traced_fields(model: nn.Module, graph: torch.fx.GraphModule, stop: torch.fx.Node | None,
                   input_size: tuple[int, int] | None) -> dict:
    """Each node's field, up to ``stop`` (every node when None), from one run of the graph in eval mode."""
    interpreter = _FieldInterpreter(graph, stop)
    x = _sample_input(model, input_size)
    with preserved_state(model), torch.no_grad():
        model.eval()
        try:
            interpreter.run(x)
        except _Stop:
            pass
        except ValueError:
            raise
        except Exception as exc:  # noqa: BLE001 -- a forward that fails past the layer still gave its field
            if stop is None or stop not in interpreter.fields:
                raise ValueError(f"receptive_field: the forward of {type(model).__name__} failed on a "
                                 f"{tuple(x.shape)} input ({type(exc).__name__}: {exc}); pass input_size") from exc
    return interpreter.fields


def _nearest_grid(graph: torch.fx.GraphModule, fields: dict, target: torch.fx.Node) -> str | None:
    """The last module run before ``target`` whose output still has a grid."""
    nearest = None
    for node in graph.graph.nodes:
        if node is target:
            break
        if node.op == "call_module" and isinstance(fields.get(node), _Grid):
            nearest = node.target
    return nearest


def _refusal(layer: str, nearest: str | None) -> ValueError:
    hint = f"; the nearest layer before it that has one is {nearest!r}" if nearest else ""
    return ValueError(NO_GRID.format(layer=layer) + hint)


def _trace(model: nn.Module) -> torch.fx.GraphModule | None:
    """The graph of ``model``'s forward in eval mode (a ``self.training`` branch, timm's drop path, traced as
    inference runs it); None when torch.fx cannot trace it."""
    training = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        return torch.fx.symbolic_trace(model)
    except Exception:  # noqa: BLE001 -- data-dependent control flow: the field is measured instead
        return None
    finally:
        for module, mode in training:
            module.training = mode


def receptive_field(model: nn.Module, layer: str, input_size: tuple[int, int] | None = None) -> ReceptiveField:
    """The field of each unit of ``layer`` (a module name, ``name#k`` for the k-th call of a reused module,
    or a container such as ``layer3``), by the rules above, on a sample input of ``input_size`` (H, W; default
    224x224). A forward ``torch.fx`` cannot trace gets :func:`measured_field`. The model is left as found.

    Example::

        field = receptive_field(torchvision.models.resnet18(), "layer2")
        field.box(3, 4)  # (top, left, bottom, right) in input pixels
    """
    graph = _trace(model)
    if graph is None:
        return measured_field(model, layer, input_size)
    target = _layer_node(graph, model, layer)
    fields = _traced_fields(model, graph, target, input_size)
    field = fields.get(target)
    if not isinstance(field, _Grid):
        raise _refusal(layer, _nearest_grid(graph, fields, target))
    return ReceptiveField(field.stride, field.offset, field.size, field.gates)


def _positive_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in float64 and eval mode in which every unit passes gradient to all it sees: positive
    weights a little below 1 / fan-in (so that activations stay positive and small: no ReLU off, no ReLU6 or
    hard sigmoid saturated), positive biases, unit norm statistics, average pools for max pools, no hooks."""
    probe = copy.deepcopy(model).double().eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in probe.modules():
            module._forward_hooks.clear()
            module._forward_pre_hooks.clear()
            module._backward_hooks.clear()
            for name, child in list(module.named_children()):
                if isinstance(child, nn.MaxPool2d) and _pair(child.dilation) == (1, 1):
                    setattr(module, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode))
        for name, param in probe.named_parameters():
            if param.dim() > 1:
                fan_in = max(param[0].numel(), 1)
                param.copy_((torch.rand(param.shape, generator=generator, dtype=torch.float64) * 0.25 + 0.25) / fan_in)
            else:
                param.fill_(0.01 if name.endswith("bias") else 1.0)
        for name, buffer in probe.named_buffers():
            if name.endswith("running_mean"):
                buffer.zero_()
            elif name.endswith("running_var"):
                buffer.fill_(1.0)
    return probe


def measured_field(model: nn.Module, layer: str, input_size: tuple[int, int] | None = None) -> ReceptiveField:
    """The field of ``layer``'s units measured from the input, for any forward (also one ``torch.fx`` cannot
    trace): on :func:`_positive_copy` of the model and a positive input, two units one step apart in the
    middle of the map are backpropagated to the input; the bounding boxes of the non-zero gradient give the
    stride, the offset and the size. The input grows (from ``input_size``, default 64x64, to 512) until
    neither box touches the image's edge. Assumes the layer is translation-equivariant (a conv net). Global
    pooling modules are cut from the gradient (gates are not fields); a gate built with a functional mean is
    not, and makes the measured field the whole image. The model itself is not touched."""
    module_name, call = split_call(layer)
    modules = dict(model.named_modules())
    if module_name not in modules or not module_name:
        raise ValueError(unknown_layer_message(model, layer, "layer"))
    probe = _positive_copy(model)
    side = max(input_size) if input_size is not None else 64
    while True:
        x = _sample_input(model, input_size if input_size is not None and side == max(input_size) else (side, side),
                          torch.float64)
        geometry = _measure_from_input(probe, module_name, call, layer, x)
        if isinstance(geometry, tuple):
            return ReceptiveField(*geometry)
        if side >= 512:
            if geometry is GLOBAL:
                raise _refusal(layer, None)
            raise ValueError(f"receptive_field: the field of {layer!r} could not be measured on inputs up to "
                             f"{side}x{side}")
        side *= 2


def _measure_from_input(probe: nn.Module, module_name: str, call: int | None, layer: str, x: torch.Tensor):  # noqa: ANN202
    outputs: list[torch.Tensor] = []

    def keep(_module: nn.Module, _inputs: object, output: object) -> None:
        outputs.append(output)
        if call is None or len(outputs) > call:
            raise _Stop()

    def cut(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        return output.detach()

    handles = [probe.get_submodule(module_name).register_forward_hook(keep)]
    handles += [m.register_forward_hook(cut) for m in probe.modules() if isinstance(m, _GLOBAL_MODULES[:2])]
    x = x.clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            try:
                probe(x)
            except _Stop:
                pass
    finally:
        for handle in handles:
            handle.remove()
    if not outputs or (call is not None and len(outputs) <= call):
        raise ValueError(f"layer {layer!r} does not run in the forward of {type(probe).__name__}")
    out = outputs[call if call is not None else -1]
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        raise ValueError(NO_GRID.format(layer=layer))
    extent = tuple(out.shape[2:])
    units_a = tuple(max(e // 2 - 1, 0) for e in extent)
    units_b = tuple(min(u + 1, e - 1) for u, e in zip(units_a, extent))
    spans = []
    for units in (units_a, units_b):
        (grad,) = torch.autograd.grad(out[:, :, units[0], units[1]].sum(), x, retain_graph=True, allow_unused=True)
        support = _support(grad, (2, 3)) if grad is not None else None
        if support is None:
            return GLOBAL  # no gradient reaches the input: the map hangs on a cut global pooling
        spans.append(support)
    if units_a == units_b:
        return GLOBAL if spans[0] == [(0, extent_in) for extent_in in x.shape[2:]] else None
    return _local_geometry(spans[0], spans[1], units_a, units_b, tuple(x.shape[2:]))


def spatial_layers(model: nn.Module, input_size: tuple[int, int] | None = None) -> list[str]:
    """The convolutions whose units have a grid (a field short of the whole image: not the convs of a
    squeeze-and-excitation gate), each run once per forward, in the order the forward runs them."""
    graph = _trace(model)
    if graph is None:
        return [name for name, module in model.named_modules() if is_conv(module)]
    fields = _traced_fields(model, graph, None, input_size)
    calls: dict[str, int] = {}
    for node in graph.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    modules = dict(model.named_modules())
    return [node.target for node in graph.graph.nodes if node.op == "call_module" and is_conv(modules[node.target])
            and calls[node.target] == 1 and isinstance(fields.get(node), _Grid)]


def default_layer(model: nn.Module, input_size: tuple[int, int] | None = None) -> str:
    """The layer top patches, correspondences and ``analyze`` use when none is given: of the convolutions whose
    units have a grid (:func:`spatial_layers`), the middle one in the order the forward runs them (index
    ``len // 2``: neither the edges the first layers see nor the whole-image fields of the last)."""
    names = spatial_layers(model, input_size)
    middle = len(names) // 2
    for name in sorted(names, key=lambda n: abs(names.index(n) - middle)):  # untraceable: the nearest with a grid
        try:
            receptive_field(model, name, input_size)
        except ValueError:
            continue
        return name
    raise ValueError(f"{type(model).__name__} has no convolution whose units have a spatial grid: pass a layer")


def feeding_conv(model: nn.Module, layer: str) -> str | None:
    """The ``nn.Conv2d`` whose filters make ``layer``'s channels: the layer itself, or the conv reached by
    following first inputs back through element-wise layers (ReLU, batch norm, pooling). None when a
    channel-mixing op (an add, a concatenation) comes first: then no single filter explains a channel."""
    graph = _trace(model)
    if graph is None:
        return layer if is_conv(dict(model.named_modules()).get(split_call(layer)[0], nn.Identity())) else None
    node = _layer_node(graph, model, layer)
    modules = dict(graph.named_modules())
    while node is not None:
        if node.op == "call_module":
            module = modules[node.target]
            if isinstance(module, nn.Conv2d):
                return node.target
            if not isinstance(module, _SAME + (nn.MaxPool2d, nn.AvgPool2d)):
                return None
        elif node.op == "call_function" and node.target not in _SAME_FUNCTIONS:
            return None
        elif node.op == "call_method" and node.target not in _SAME_METHODS:
            return None
        elif node.op == "placeholder":
            return None
        node = node.all_input_nodes[0] if node.all_input_nodes else None
    return None
