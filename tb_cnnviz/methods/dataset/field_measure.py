"""Fields measured from gradients, where no rule gives them: one op of a traced graph (:func:`_measured_op`)
or a whole forward ``torch.fx`` cannot trace (:func:`measured_field`). The gradient support of a unit -- the
bounding box of the input positions its gradient reaches -- is its field when nothing cancels: inputs and
weights positive, so that no ReLU is off and no max pool hides a position."""

from __future__ import annotations

import copy

import torch
import torch.fx
from torch import nn

from .._hooks import is_conv, split_call, unknown_layer_message
from .field_rules import (
    _GLOBAL_MODULES,
    GLOBAL,
    NO_GRID,
    ReceptiveField,
    _Grid,
    _pair,
    _refusal,
    _Stop,
    _union,
)


def _sample_input(model: nn.Module, input_size: tuple[int, int] | None, dtype: torch.dtype | None = None) -> torch.Tensor:
    if input_size is not None and (len(input_size) != 2 or any(int(side) < 1 for side in input_size)):
        raise ValueError(f"input_size must be (H, W) with positive sides; got {input_size!r}")
    convs = [m for m in model.modules() if is_conv(m)]
    channels = convs[0].in_channels if convs else 3
    reference = next(model.parameters(), torch.zeros(()))
    size = tuple(int(side) for side in input_size) if input_size is not None else (128, 128)
    generator = torch.Generator().manual_seed(0)
    return torch.rand(1, channels, *size, generator=generator, dtype=torch.float64).to(
        device=reference.device, dtype=dtype or (reference.dtype if reference.is_floating_point() else torch.float32))



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


