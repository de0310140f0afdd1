"""Occlusion sensitivity (Zeiler & Fergus): the target class's probability as a square occluder slides over
the image. A low value where the occluder sits means the network relied on what it hid.

The occluded copies of an image go through the model in batches of ``batch_size`` (no gradient, inference
mode); a progress bar appears when the work takes longer than a couple of seconds.
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from ._hooks import preserved_state
from .streaming import PROGRESS_DELAY_S
from .targets import check_inputs, check_scores, resolve_targets

def occlusion_grid(height: int, width: int, window: int, stride: int) -> tuple[int, int]:
    """(nh, nw): how many occluder positions fit, top-left corners at multiples of ``stride``."""
    for name, value in (("window", window), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int (pixels); got {value!r}")
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
) -> torch.Tensor:
    """(N, nh, nw): softmax probability of ``target`` (default: the predicted class of the unoccluded
    image) with a ``fill`` square of side ``window`` at top-left corner ``(i * stride, j * stride)``.

    ``progress``: None shows a bar only when the work takes over two seconds; False never; True always.
    """
    images = check_inputs(model, images)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
    if isinstance(fill, bool) or not isinstance(fill, (int, float)):
        raise TypeError(f"fill must be a number (the occluder's value in every channel); got {type(fill).__name__}")
    count, _, height, width = images.shape
    nh, nw = occlusion_grid(height, width, window, stride)
    positions = nh * nw
    fill_value = torch.tensor(float(fill), dtype=images.dtype, device=images.device)
    result = torch.empty(count, positions, dtype=images.dtype, device=images.device)
    with torch.inference_mode(), preserved_state(model):
        model.eval()
        targets = resolve_targets(target, check_scores(model(images), count))
        bar = tqdm(total=count * positions, desc="occlusion", unit="map", delay=0 if progress else PROGRESS_DELAY_S,
                   disable=progress is False, leave=False)
        with bar:
            for start in range(0, count * positions, batch_size):
                index = torch.arange(start, min(start + batch_size, count * positions), device=images.device)
                image, position = index // positions, index % positions  # batches may span images
                mask = occluder_masks(position, nw, height, width, window, stride)
                occluded = torch.where(mask, fill_value, images[image])
                scores = check_scores(model(occluded), len(index))
                result.view(-1)[index] = scores.softmax(dim=1).gather(1, targets[image, None])[:, 0]
                bar.update(len(index))
    return result.view(count, nh, nw)
