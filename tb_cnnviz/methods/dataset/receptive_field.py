"""The exact input box a unit of a conv layer can see, from the model's own geometry, for any graph.

The model is traced with ``torch.fx`` and run once on a random input (``input_size``, default 128x128), so
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

import torch
import torch.fx
from torch import nn

from .._hooks import is_conv, preserved_state, split_call, unknown_layer_message
from ..tracing import eval_trace
from .field_measure import _sample_input, measured_field
from .field_rules import (
    _SAME,
    _SAME_FUNCTIONS,
    _SAME_METHODS,
    GLOBAL,
    NO_GRID,
    ReceptiveField,
    _FieldInterpreter,
    _Grid,
    _refusal,
    _Stop,
)

__all__ = ["GLOBAL", "NO_GRID", "ReceptiveField", "default_layer", "feeding_conv", "measured_field", "receptive_field",
           "spatial_layers"]


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
        except Exception as exc:  # noqa: BLE001 -- a forward that fails past the layer (a Linear sized for
            # other inputs) still gave the layers before it their fields
            if stop is not None and stop not in interpreter.fields:
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



def _trace(model: nn.Module) -> torch.fx.GraphModule | None:
    """The graph of ``model``'s forward in eval mode (a ``self.training`` branch, timm's drop path, traced as
    inference runs it); None when torch.fx cannot trace it."""
    try:
        return eval_trace(model)
    except Exception:  # noqa: BLE001 -- data-dependent control flow: the field is measured instead
        return None



def receptive_field(model: nn.Module, layer: str, input_size: tuple[int, int] | None = None) -> ReceptiveField:
    """The field of each unit of ``layer`` (a module name, ``name#k`` for the k-th call of a reused module,
    or a container such as ``layer3``), by the rules above, on a sample input of ``input_size`` (H, W; default
    128x128). A forward ``torch.fx`` cannot trace gets :func:`measured_field`. The model is left as found.

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
