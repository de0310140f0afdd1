"""One reading of a map for the checks: a value per pixel, higher = more important.

A gradient map (N, C, H, W) counts a pixel by the largest |.| over its colour channels (Simonyan et al., as the
tab draws it); a map that is already one value per pixel (N, H, W) is taken as given, so a signed map ranks its
positive evidence first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pixel_importance(maps: object, size: tuple[int, int] | None = None, argument: str = "maps") -> torch.Tensor:
    """``maps`` (N, H, W) or (N, C, H, W) as float (N, H, W); ``size`` (H, W), when given, must match.
    NaN counts as the least important value (it cannot be ranked); +-inf keep their order."""
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"{argument} must be a torch.Tensor of shape (N, H, W) or (N, C, H, W); got {type(maps).__name__}")
    if maps.dim() not in (3, 4) or maps.shape[0] == 0:
        raise ValueError(f"{argument} must be (N, H, W) or (N, C, H, W) with N >= 1; got shape {tuple(maps.shape)}")
    if maps.is_complex() or maps.dtype == torch.bool:
        raise TypeError(f"{argument} must be real numbers; got {maps.dtype}")
    values = maps.detach().float()
    if values.dim() == 4:
        values = values.abs().amax(dim=1)
    if size is not None and tuple(values.shape[1:]) != tuple(size):
        raise ValueError(
            f"{argument} cover {tuple(values.shape[1:])} pixels but the images are {tuple(size)}: give one value per "
            "pixel (upsample a coarse map, e.g. Grad-CAM's .upsampled)"
        )
    return values.nan_to_num(nan=float("-inf"), posinf=float("inf"), neginf=float("-inf"))


def occlusion_importance(probabilities: torch.Tensor, height: int, width: int, window: int, stride: int) -> torch.Tensor:
    """An occlusion grid (N, nh, nw) of the target's probability as one value per pixel (N, H, W): minus the
    mean probability over the occluder positions that covered the pixel (a pixel whose hiding lowers the
    probability most ranks first); pixels no occluder covered rank last (-inf)."""
    count, rows, cols = probabilities.shape
    drop = -probabilities.detach().float().flatten(1)[:, None, :].expand(count, window * window, rows * cols)
    fold = dict(output_size=(height, width), kernel_size=window, stride=stride)
    total = F.fold(drop, **fold)[:, 0]
    covered = F.fold(torch.ones_like(drop[:1]), **fold)[:, 0]
    return torch.where(covered > 0, total / covered.clamp_min(1), torch.full_like(total, float("-inf")))
