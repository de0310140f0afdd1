"""The rules of :mod:`receptive_field`: each tensor's field in a traced graph, run once on a sample input
(:class:`_FieldInterpreter`), and what a field is (:class:`ReceptiveField`, ``GLOBAL``)."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from dataclasses import field as dataclass_field

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn


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



NO_GRID = ("layer {layer!r} has no spatial grid of its own: every unit sees the whole image (after global pooling "
           "or flattening)")



def _refusal(layer: str, nearest: str | None) -> ValueError:
    hint = f"; the nearest layer before it that has one is {nearest!r}" if nearest else ""
    return ValueError(NO_GRID.format(layer=layer) + hint)



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

    def but(self, **changes) -> _Grid:  # noqa: ANN003
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
        from .field_measure import _measured_op  # the measuring needs these rules

        return _measured_op(n, lambda *a: getattr(self, n.op)(n.target, *a), value, self.fields, self.env)


class _Stop(Exception):
    pass


def _plain(module: nn.Module, kinds: tuple) -> bool:
    """``module`` is one of ``kinds`` with torch's own forward (timm's Conv2dSame pads in its own: measured)."""
    return any(isinstance(module, kind) and type(module).forward is kind.forward for kind in kinds)


