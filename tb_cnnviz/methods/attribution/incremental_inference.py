"""Occluded copies of an image through a model, recomputing only what the occluder changes (Krypton).

The unoccluded image runs once and every node's output is kept (the *base*). A batch of occluder positions
then walks the fx graph with, per local node, one patch per position: a tensor ``(B, C, h, w)`` of the
same size for all positions, placed at a per-position corner given by the plan; outside it the value is the
base. A conv or pooling gathers its input crop from base and incoming patch in one ``index_select`` (the
padding cells read a padded copy of base) and runs with padding 0. Where the plan says ``full`` the patches
are pasted into whole maps the same way and the rest of the graph is the ordinary batched forward.

Patches are gathered channels-last (a row per cell), so a gather is one contiguous copy and the conv gets
a channels-last input, which the CPU kernels take without converting.
"""

from __future__ import annotations

import warnings

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from ..tracing import symbolic_trace
from .incremental_plan import Plan, Span, Step, make_plan


class Patch:
    """A local node's value for a batch: ``data`` (B, C, rows.size, cols.size), elsewhere equal to base."""

    __slots__ = ("data", "rows", "cols")

    def __init__(self, data: torch.Tensor, rows: Span, cols: Span) -> None:
        self.data, self.rows, self.cols = data, rows, cols


def trace(model: nn.Module) -> torch.fx.GraphModule | None:
    """The model's fx graph, or None (with a one-line warning) when fx cannot trace it."""
    try:
        graph = symbolic_trace(model)
    except Exception as exc:  # data-dependent control flow, unsupported Python
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        warnings.warn(f"occlusion: torch.fx cannot trace {type(model).__name__} ({reason[:120]}); "
                      "using the plain batched forward (same result, no incremental speed-up)", stacklevel=3)
        return None
    if sum(node.op == "placeholder" for node in graph.graph.nodes) != 1:
        warnings.warn(f"occlusion: {type(model).__name__}.forward takes more than the image; "
                      "using the plain batched forward", stacklevel=3)
        return None
    return graph


def run_node(graph: torch.fx.GraphModule, modules: dict[str, nn.Module], node: torch.fx.Node,
             args: tuple, kwargs: dict) -> object:
    """What the traced forward does at ``node``, with the given arguments."""
    if node.op == "call_module":
        return modules[node.target](*args, **kwargs)
    if node.op == "call_function":
        return node.target(*args, **kwargs)
    if node.op == "call_method":
        return getattr(args[0], node.target)(*args[1:], **kwargs)
    if node.op == "get_attr":
        value: object = graph
        for name in node.target.split("."):
            value = getattr(value, name)
        return value
    raise ValueError(f"unexpected fx node {node.op} {node.target}")


def crop_forward(module: nn.Module, crop: torch.Tensor) -> torch.Tensor:
    """A conv or pooling on a crop that already holds its padding."""
    if isinstance(module, nn.Conv2d):
        return F.conv2d(crop, module.weight, module.bias, module.stride, 0, module.dilation, module.groups)
    if isinstance(module, nn.MaxPool2d):
        return F.max_pool2d(crop, module.kernel_size, module.stride, 0, module.dilation)
    return F.avg_pool2d(crop, module.kernel_size, module.stride, 0, False, True, module.divisor_override)


class IncrementalOcclusion:
    """Scores of occluded copies of one image at a time, for occluders of side ``window`` on a grid."""

    def __init__(self, graph: torch.fx.GraphModule, window: int, stride: int, grid: tuple[int, int],
                 approximate: float | None = None) -> None:
        self.graph, self.window, self.stride, self.grid, self.approximate = graph, window, stride, grid, approximate
        self.modules = dict(graph.named_modules())
        self.nodes = list(graph.graph.nodes)
        self.plan: Plan | None = None
        self.base: dict[torch.fx.Node, object] = {}
        self.sources: dict[tuple, torch.Tensor] = {}
        self.last_use: dict[torch.fx.Node, torch.fx.Node] = {}
        self.grid_rows = self.grid_cols = torch.zeros(0, dtype=torch.long)  # the batch's grid row, column
        self.batch_rows: dict[Span, torch.Tensor] = {}  # per span: its patches' top rows in this batch
        self.batch_cols: dict[Span, torch.Tensor] = {}
        for node in self.nodes:
            for used in node.all_input_nodes:
                self.last_use[used] = node

    def start(self, image: torch.Tensor) -> Plan:
        """Run the unoccluded ``image`` (1, C, H, W) once, keeping every node's output; plan on the first."""
        env: dict[torch.fx.Node, object] = {}
        self.base, self.sources = {}, {}
        for node in self.nodes:
            if node.op == "placeholder":
                value: object = image
            elif node.op == "output":
                value = torch.fx.node.map_arg(node.args[0], env.__getitem__)
            else:
                args, kwargs = torch.fx.node.map_arg((node.args, node.kwargs), env.__getitem__)
                value = run_node(self.graph, self.modules, node, args, kwargs)
            env[node] = value
            self.base[node] = value.clone() if isinstance(value, torch.Tensor) else value  # in-place ops follow
        if self.plan is None:
            self.plan = make_plan(self.graph, self.base, self.window, self.stride, self.grid, self.approximate)
        return self.plan

    def _source(self, node: torch.fx.Node, pad: tuple[int, int, int, int], value: float,
                patch: torch.Tensor) -> torch.Tensor:
        """One row of channels per cell: the base of ``node`` padded by ``pad`` with ``value``, then the
        patch's cells. The padded base is written once per image, only the patch per batch."""
        count, channels, height, width = patch.shape
        key = (node, pad, value, count)
        if key not in self.sources:
            base = self.base[node]
            padded = F.pad(base, pad, value=value) if any(pad) else base
            cells = padded.shape[2] * padded.shape[3]
            source = torch.empty(cells + count * height * width, channels, dtype=base.dtype, device=base.device)
            source[:cells].view(padded.shape[2], padded.shape[3], channels).copy_(padded[0].permute(1, 2, 0))
            self.sources[key] = source
        source = self.sources[key]
        tail = source[source.shape[0] - count * height * width:]
        tail.view(count, height, width, channels).copy_(patch.permute(0, 2, 3, 1))
        return source

    def _gather(self, node: torch.fx.Node, patch: Patch, rows: tuple[torch.Tensor, int],
                cols: tuple[torch.Tensor, int], pad: tuple[int, int, int, int] = (0, 0, 0, 0),
                pad_value: float = 0.0) -> torch.Tensor:
        """(B, C, row size, col size) crops with top-left corners ``rows[0], cols[0]`` (per position, in the
        node's map, padding cells allowed): the patch where it lies, base elsewhere. Channels-last."""
        (row_start, row_size), (col_start, col_size) = rows, cols
        count, channels, patch_height, patch_width = patch.data.shape
        source = self._source(node, pad, pad_value, patch.data)
        padded_width = self.base[node].shape[3] + pad[0] + pad[1]
        base_cells = source.shape[0] - count * patch_height * patch_width
        y = row_start[:, None] + torch.arange(row_size)  # (B, rows) map coordinates
        x = col_start[:, None] + torch.arange(col_size)
        r = y - self._rows(patch.rows)[:, None]
        c = x - self._cols(patch.cols)[:, None]
        in_rows, in_cols = (r >= 0) & (r < patch_height), (c >= 0) & (c < patch_width)
        patch_row = base_cells + torch.arange(count)[:, None] * (patch_height * patch_width) + r * patch_width
        index = torch.where(in_rows[:, :, None] & in_cols[:, None, :], patch_row[:, :, None] + c[:, None, :],
                            ((y + pad[2]) * padded_width)[:, :, None] + (x + pad[0])[:, None, :])
        crop = source.index_select(0, index.view(-1).to(source.device))
        return crop.view(count, row_size, col_size, channels).permute(0, 3, 1, 2)

    def _rows(self, span: Span) -> torch.Tensor:
        """Top row of ``span``'s patch for each position of the batch."""
        if span not in self.batch_rows:
            self.batch_rows[span] = span.start[self.grid_rows]
        return self.batch_rows[span]

    def _cols(self, span: Span) -> torch.Tensor:
        if span not in self.batch_cols:
            self.batch_cols[span] = span.start[self.grid_cols]
        return self.batch_cols[span]

    def _whole(self, node: torch.fx.Node, patch: Patch) -> torch.Tensor:
        """The patches pasted into whole copies of the base map."""
        height, width = patch.rows.extent, patch.cols.extent
        if patch.rows.size == height and patch.cols.size == width:
            return patch.data
        zeros = torch.zeros(patch.data.shape[0], dtype=torch.long)  # index arithmetic stays on the CPU
        return self._gather(node, patch, (zeros, height), (zeros, width))

    def _aligned(self, node: torch.fx.Node, patch: Patch, rows: Span, cols: Span) -> torch.Tensor:
        """``patch`` re-cut to the patches of ``rows`` and ``cols`` (a residual add, a concatenation)."""
        if patch.rows.same_patches(rows) and patch.cols.same_patches(cols):
            return patch.data
        return self._gather(node, patch, (self._rows(rows), rows.size), (self._cols(cols), cols.size))

    def forward(self, positions: torch.Tensor, fill: float) -> object:
        """The model's output for occluders at grid ``positions`` (row-major indices) of the started image."""
        steps = self.plan.steps
        positions = positions.cpu()  # index arithmetic stays on the CPU
        self.grid_rows, self.grid_cols = positions // self.grid[1], positions % self.grid[1]
        self.batch_rows, self.batch_cols = {}, {}
        env: dict[torch.fx.Node, object] = {}
        whole: dict[torch.fx.Node, torch.Tensor] = {}

        def value_of(node: torch.fx.Node) -> object:  # a whole value, as the ordinary forward sees it
            kind = steps[node].kind
            if kind in ("plain", "full"):
                return self.base[node] if kind == "plain" else env[node]
            if node not in whole:
                whole[node] = self._whole(node, env[node])
            return whole[node]

        for node in self.nodes:
            step = steps[node]
            if step.kind == "plain":
                continue
            if node.op == "output":
                return torch.fx.node.map_arg(node.args[0], value_of)
            if step.kind == "input":
                image = self.base[node]
                shape = (len(positions), step.rows.size, step.cols.size, image.shape[1])
                patch = torch.full(shape, float(fill), dtype=image.dtype, device=image.device).permute(0, 3, 1, 2)
                env[node] = Patch(patch, step.rows, step.cols)
            elif step.kind == "window":
                source = next(n for n in node.all_input_nodes if steps[n].kind != "plain")
                row_start, row_size, col_start, col_size = step.crop
                crop = self._gather(source, env[source], (row_start[self.grid_rows], row_size),
                                    (col_start[self.grid_cols], col_size), step.pad, step.pad_value)
                env[node] = Patch(crop_forward(self.modules[node.target], crop), step.rows, step.cols)
            elif step.kind in ("pointwise", "union"):
                def patch_of(used: torch.fx.Node, step: Step = step) -> object:
                    if steps[used].kind in ("plain", "full"):
                        return value_of(used)
                    if step.kind == "pointwise":
                        return env[used].data
                    return self._aligned(used, env[used], step.rows, step.cols)

                args, kwargs = torch.fx.node.map_arg((node.args, node.kwargs), patch_of)
                env[node] = Patch(run_node(self.graph, self.modules, node, args, kwargs), step.rows, step.cols)
            else:
                args, kwargs = torch.fx.node.map_arg((node.args, node.kwargs), value_of)
                env[node] = run_node(self.graph, self.modules, node, args, kwargs)
            for used in node.all_input_nodes:
                if self.last_use.get(used) is node:
                    env.pop(used, None)
                    whole.pop(used, None)
        raise ValueError("the traced graph has no output")
