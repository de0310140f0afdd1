"""Occlusion sensitivity (Zeiler & Fergus): the target class's probability as a square occluder slides over
the image. A low value where the occluder sits means the network relied on what it hid.

By default only what the occluder changes is recomputed (Krypton's incremental inference, see
incremental_inference.py): the same numbers as the plain batched forward for a fraction of the work. The
occluded positions go through the model in batches of ``batch_size`` (no gradient, inference mode); a
progress bar appears when the work takes longer than a couple of seconds.
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from .._hooks import check_positive_int, preserved_state
from .incremental_inference import IncrementalOcclusion, trace
from .incremental_plan import Plan
from ..streaming import bar_options
from ..targets import Output, check_inputs, check_scores, resolve_targets

def occlusion_grid(height: int, width: int, window: int, stride: int) -> tuple[int, int]:
    """(nh, nw): how many occluder positions fit, top-left corners at multiples of ``stride``."""
    check_positive_int(window, "window", "pixels")
    check_positive_int(stride, "stride", "pixels")
    if window > min(height, width):
        raise ValueError(f"window {window} is larger than the image ({height}x{width}); use window <= {min(height, width)}")
    return (height - window) // stride + 1, (width - window) // stride + 1


def occluder_masks(positions: torch.Tensor, nw: int, height: int, width: int, window: int, stride: int) -> torch.Tensor:
    """(len(positions), 1, H, W) booleans, True under the occluder; positions count row-major over the grid.
    Made per batch, so memory stays bounded however fine the stride."""
    tops = (positions // nw) * stride
    lefts = (positions % nw) * stride
    rows = torch.arange(height, device=positions.device)
    cols = torch.arange(width, device=positions.device)
    in_rows = (rows >= tops[:, None]) & (rows < tops[:, None] + window)  # (B, H)
    in_cols = (cols >= lefts[:, None]) & (cols < lefts[:, None] + window)  # (B, W)
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]


def occlusion(
    model: nn.Module,
    images: torch.Tensor,
    target: int | torch.Tensor | None = None,
    window: int = 32,
    stride: int = 16,
    fill: float = 0.0,
    batch_size: int = 64,
    progress: bool | None = None,
    incremental: bool = True,
    approximate: float | None = None,
    max_memory_mb: float | None = None,
    output: Output = None,
) -> torch.Tensor:
    """(N, nh, nw): softmax probability of ``target`` (default: the predicted class of the unoccluded
    image) with a ``fill`` square of side ``window`` at top-left corner ``(i * stride, j * stride)``.

    ``progress``: None shows a bar only when the work takes over two seconds; False never; True always.
    ``incremental`` (default) recomputes only the changed region of each feature map, exactly; False runs
    the plain batched forward. ``approximate`` (Krypton's tau in (0, 1], needs ``incremental``) caps each
    changed region at that fraction of its map: faster and no longer exact. ``max_memory_mb`` caps the
    memory of one batch (lowering ``batch_size`` as needed); the base activations of one image come on top.
    ``output``: where the scores are in a model's output that is not a tensor (see ``methods.targets``).
    """
    images = check_inputs(model, images)
    check_positive_int(batch_size, "batch_size")
    if isinstance(fill, bool) or not isinstance(fill, (int, float)):
        raise TypeError(f"fill must be a number (the occluder's value in every channel); got {type(fill).__name__}")
    if approximate is not None and (isinstance(approximate, bool) or not isinstance(approximate, (int, float))
                                    or not 0 < approximate <= 1 or not incremental):
        raise ValueError(f"approximate must be None (exact) or a fraction in (0, 1] with incremental=True; got {approximate!r}")
    if max_memory_mb is not None and (isinstance(max_memory_mb, bool) or not isinstance(max_memory_mb, (int, float))
                                      or max_memory_mb <= 0):
        raise ValueError(f"max_memory_mb must be None or a positive number of MiB; got {max_memory_mb!r}")
    count, _, height, width = images.shape
    nh, nw = occlusion_grid(height, width, window, stride)
    positions = nh * nw
    result = torch.empty(count, positions, dtype=images.dtype, device=images.device)
    with torch.inference_mode(), preserved_state(model):
        model.eval()
        targets = resolve_targets(target, check_scores(model(images), count, output))
        graph = trace(model) if incremental else None
        engine = IncrementalOcclusion(graph, window, stride, (nh, nw), approximate) if graph is not None else None
        bar = tqdm(total=count * positions, desc="occlusion", unit="map", **bar_options(progress))
        with bar:
            if engine is None:
                batch = _capped_batch(batch_size, max_memory_mb, images[0].numel() * 4, images.element_size())
                _plain_batches(model, images, targets, window, stride, fill, batch, result, bar, output)
            else:
                for n in range(count):
                    plan = engine.start(images[n : n + 1])
                    batch = _capped_batch(batch_size, max_memory_mb, plan.batch_elements(), images.element_size())
                    for start in range(0, positions, batch):
                        index = torch.arange(start, min(start + batch, positions), device=images.device)
                        scores = check_scores(engine.forward(index, fill), len(index), output)
                        result[n, index] = scores.softmax(dim=1)[:, targets[n]]
                        bar.update(len(index))
    return result.view(count, nh, nw)


def _capped_batch(batch_size: int, max_memory_mb: float | None, elements_per_position: int, element_size: int) -> int:
    """``batch_size``, lowered so that one batch's largest tensors (about ``elements_per_position`` each)
    stay under ``max_memory_mb``."""
    if max_memory_mb is None:
        return batch_size
    return max(1, min(batch_size, int(max_memory_mb * 2**20 // max(1, elements_per_position * element_size))))


def _plain_batches(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, window: int, stride: int,
                   fill: float, batch_size: int, result: torch.Tensor, bar: tqdm, output: Output = None) -> None:
    """Every occluded copy through the whole model, ``batch_size`` at a time (batches may span images)."""
    count, _, height, width = images.shape
    positions = result.shape[1]
    nw = (width - window) // stride + 1
    fill_value = torch.tensor(float(fill), dtype=images.dtype, device=images.device)
    for start in range(0, count * positions, batch_size):
        index = torch.arange(start, min(start + batch_size, count * positions), device=images.device)
        image, position = index // positions, index % positions
        mask = occluder_masks(position, nw, height, width, window, stride)
        occluded = torch.where(mask, fill_value, images[image]).contiguous(memory_format=torch.channels_last)
        scores = check_scores(model(occluded), len(index), output)  # channels-last: the CPU conv kernels' own layout
        result.view(-1)[index] = scores.softmax(dim=1).gather(1, targets[image, None])[:, 0]
        bar.update(len(index))


def occlusion_plan(model: nn.Module, image: torch.Tensor, window: int = 32, stride: int = 16,
                   approximate: float | None = None) -> Plan | None:
    """The incremental plan :func:`occlusion` runs for ``image`` (1, C, H, W): per node what is recomputed,
    and ``speedup_limit``, the multiply-add bound of the idea. None when fx cannot trace the model."""
    image = check_inputs(model, image)[:1]
    grid = occlusion_grid(image.shape[2], image.shape[3], window, stride)
    with torch.inference_mode(), preserved_state(model):
        model.eval()
        graph = trace(model)
        return None if graph is None else IncrementalOcclusion(graph, window, stride, grid, approximate).start(image)
