"""The exact input box a unit of a conv layer can see, from the model's own geometry.

The model is traced with ``torch.fx``; every tensor in the graph gets, per axis, ``(stride, offset, size)``:
unit ``i`` of that tensor sees input pixels ``[i * stride + offset, i * stride + offset + size)``. A
convolution or pooling with kernel ``k``, stride ``t``, padding ``p`` and dilation ``d`` maps ``(s, o, r)`` to
``(s * t, o - p * s, r + d * (k - 1) * s)``; element-wise layers keep it; a residual add or a concatenation
takes the union of its inputs' boxes; anything that mixes all positions (global pooling, flatten,
squeeze-and-excitation scaling, group norm) makes the field the whole image. Offsets may be negative and
boxes may pass the image's far edge: that is padding, and patches are padded there.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from .._hooks import split_call, unknown_layer_message


@dataclass(frozen=True)
class ReceptiveField:
    """Per axis (rows, columns): unit ``(i, j)`` sees rows ``[i*stride[0] + offset[0], ... + size[0])``."""

    stride: tuple[int, int]
    offset: tuple[int, int]
    size: tuple[int, int]

    def box(self, i: int, j: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right), bottom and right exclusive, in input pixels (may leave the image)."""
        top = i * self.stride[0] + self.offset[0]
        left = j * self.stride[1] + self.offset[1]
        return top, left, top + self.size[0], left + self.size[1]


class _Global:
    """The field of a tensor every position of which depends on the whole input."""


GLOBAL = _Global()
_SAME = (nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU, nn.Hardswish,
         nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Mish, nn.Dropout, nn.Dropout2d, nn.Identity,
         nn.InstanceNorm2d)
_MIXING = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Linear, nn.GroupNorm, nn.LayerNorm)
_SAME_FUNCTIONS = {F.relu, torch.relu, F.relu6, F.hardswish, F.hardsigmoid, F.silu, F.gelu, torch.sigmoid,
                   torch.tanh, F.dropout, F.leaky_relu, F.batch_norm}
_SAME_METHODS = {"relu", "relu_", "sigmoid", "tanh", "contiguous", "clone", "float", "to", "clamp", "clamp_min"}
_UNION_FUNCTIONS = {operator.add, operator.iadd, torch.add, operator.mul, torch.mul, operator.sub, torch.cat}


def _pair(value: object) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)  # type: ignore[return-value]


def _through_window(field, kernel, stride, padding, dilation):  # noqa: ANN001, ANN202
    if field is GLOBAL:
        return GLOBAL
    kernel, stride, dilation = _pair(kernel), _pair(stride if stride is not None else kernel), _pair(dilation)
    if padding == "valid":
        padding = 0
    if padding == "same":
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    padding = _pair(padding)
    (s, o, r) = field
    return (
        tuple(a * b for a, b in zip(s, stride)),
        tuple(a - p * b for a, p, b in zip(o, padding, s)),
        tuple(a + d * (k - 1) * b for a, d, k, b in zip(r, dilation, kernel, s)),
    )


def _union(fields: list):  # noqa: ANN202
    fields = [f for f in fields if f is not None]
    if not fields:
        return None
    if any(f is GLOBAL for f in fields):
        return GLOBAL
    strides = {f[0] for f in fields}
    if len(strides) > 1:
        return GLOBAL  # grids that do not line up: no single box per unit is exact
    start = tuple(min(f[1][a] for f in fields) for a in range(2))
    end = tuple(max(f[1][a] + f[2][a] for f in fields) for a in range(2))
    return (fields[0][0], start, tuple(e - s for s, e in zip(start, end)))


def _field_of(node: torch.fx.Node, fields: dict, modules: dict[str, nn.Module]):  # noqa: ANN202
    tensor_args = [fields.get(a) for a in node.all_input_nodes]
    first = tensor_args[0] if tensor_args else None
    if node.op == "placeholder":
        return ((1, 1), (0, 0), (1, 1))
    if node.op == "get_attr":
        return None
    if node.op == "call_module":
        module = modules[node.target]
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            dilation = getattr(module, "dilation", 1)
            return _through_window(first, module.kernel_size, module.stride, module.padding, dilation)
        if isinstance(module, _SAME):
            return first
        if isinstance(module, _MIXING):
            return GLOBAL if first is not None else None
        raise ValueError(f"receptive_field: no rule for module {node.target!r} ({type(module).__name__})")
    if node.op == "call_function":
        target = node.target
        if target in (F.max_pool2d, F.avg_pool2d):
            args = list(node.args) + [None] * 5
            kwargs = node.kwargs
            kernel = kwargs.get("kernel_size", args[1])
            stride = kwargs.get("stride", args[2]) or kernel
            padding = kwargs.get("padding", args[3] if args[3] is not None else 0)
            dilation = kwargs.get("dilation", args[4] if args[4] is not None and target is F.max_pool2d else 1)
            return _through_window(first, kernel, stride, padding, dilation)
        if target in _SAME_FUNCTIONS:
            return first
        if target in _UNION_FUNCTIONS:
            return _union(tensor_args)
        if target in (torch.flatten, F.adaptive_avg_pool2d, F.adaptive_max_pool2d, torch.mean):
            return GLOBAL if first is not None else None
        if target in (operator.getitem, getattr):
            return first if first is not None else None
        raise ValueError(f"receptive_field: no rule for function {getattr(target, '__name__', target)!r}")
    if node.op == "call_method":
        if node.target in _SAME_METHODS:
            return first
        if node.target in ("size", "dim"):
            return None
        return GLOBAL if first is not None else None  # view, reshape, mean, flatten, ...: assume mixing
    return first


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


def receptive_field(model: nn.Module, layer: str, input_size: tuple[int, int] | None = None) -> ReceptiveField:
    """The field of each unit of ``layer`` (a module name, ``name#k`` for the k-th call of a reused module,
    or a container such as ``layer3``). ``input_size`` (H, W) is only checked against the field."""
    try:
        graph = torch.fx.symbolic_trace(model)
    except Exception as exc:  # fx cannot trace data-dependent control flow
        raise ValueError(f"receptive_field: torch.fx cannot trace {type(model).__name__} ({type(exc).__name__}: {exc})") from exc
    target = _layer_node(graph, model, layer)
    modules = dict(graph.named_modules())
    fields: dict[torch.fx.Node, object] = {}
    for node in graph.graph.nodes:
        fields[node] = _field_of(node, fields, modules)
        if node is target:
            break
    field = fields[target]
    if field is GLOBAL or field is None:
        raise ValueError(f"layer {layer!r} has no spatial grid of its own: every unit sees the whole image "
                         "(after global pooling, flattening or squeeze-and-excitation)")
    if input_size is not None and any(size < 1 for size in input_size):
        raise ValueError(f"input_size must be (H, W) with positive sides; got {input_size!r}")
    return ReceptiveField(*field)


def feeding_conv(model: nn.Module, layer: str) -> str | None:
    """The ``nn.Conv2d`` whose filters make ``layer``'s channels: the layer itself, or the conv reached by
    following first inputs back through element-wise layers (ReLU, batch norm, pooling). None when a
    channel-mixing op (an add, a concatenation) comes first: then no single filter explains a channel."""
    graph = torch.fx.symbolic_trace(model)
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
