"""Maps against ground-truth object masks: does the map point at the object, and how much of it lies there.

The pointing game (Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016) counts a hit when
a map's maximum falls on the object (within ``tolerance`` pixels); mass in mask (the "energy-based pointing
game" of Wang et al., Score-CAM, CVPR-W 2020) is the share of the map's positive mass inside the mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .importance import pixel_importance


def _check_masks(masks: object, importance: torch.Tensor) -> torch.Tensor:
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"masks must be a torch.Tensor (N, H, W) of object masks; got {type(masks).__name__}")
    if masks.dim() == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if tuple(masks.shape) != tuple(importance.shape):
        raise ValueError(f"masks must be (N, H, W) = {tuple(importance.shape)}, one per map; got {tuple(masks.shape)}")
    return (masks != 0).to(importance.device)


def pointing_game(maps: torch.Tensor, masks: torch.Tensor, tolerance: int = 0) -> torch.Tensor:
    """(N,) bool: whether each map's highest pixel (the first in row-major order on ties) lies within
    ``tolerance`` pixels (Chebyshev distance) of its object mask. ``maps`` (N, H, W) or (N, C, H, W) (max |.|
    over channels); ``masks`` (N, H, W), nonzero on the object. ``hits.float().mean()`` is the game's accuracy.

        hits = pointing_game(grad_cam(model, x, y).upsampled, data.masks[:len(x)])
    """
    importance = pixel_importance(maps)
    masks = _check_masks(masks, importance)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"tolerance must be an int >= 0 (pixels); got {tolerance!r}")
    if tolerance:
        masks = F.max_pool2d(masks[:, None].float(), 2 * tolerance + 1, stride=1, padding=tolerance)[:, 0] > 0
    peak = importance.flatten(1).argmax(dim=1)  # the first maximum
    return masks.flatten(1).gather(1, peak[:, None])[:, 0]


def mass_in_mask(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(N,) float: the share of each map's positive mass (values clamped at 0) on its object mask; 0 for a map
    with no positive value. ``maps`` and ``masks`` as for :func:`pointing_game`."""
    importance = pixel_importance(maps).clamp_min(0).nan_to_num(posinf=0.0)
    masks = _check_masks(masks, importance)
    total = importance.flatten(1).sum(dim=1)
    inside = (importance * masks).flatten(1).sum(dim=1)
    return torch.where(total > 0, inside / total.clamp_min(1e-30), torch.zeros_like(total))
