"""One entry point over the gradient-map methods, by name: what the logger and the CLI call.

Every method returns a map the shape of the images (Grad-CAM: its upsampled map as one channel), so
SmoothGrad can average any of them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from .grad_cam import grad_cam, guided_grad_cam
from ..targets import Output
from .gradients import deconvnet, guided_backprop, saliency, smoothgrad


def _grad_cam_map(
    model: nn.Module, images: torch.Tensor, target: int | torch.Tensor | None = None, layer: str | None = None,
    output: Output = None,
) -> torch.Tensor:
    return grad_cam(model, images, target, layer, output).upsampled[:, None]


#: name -> method(model, images, target, output=None) -> (N, C or 1, H, W); the Grad-CAM ones also take ``layer``
METHODS: dict[str, Callable[..., torch.Tensor]] = {
    "saliency": saliency,
    "deconvnet": deconvnet,
    "guided_backprop": guided_backprop,
    "grad_cam": _grad_cam_map,
    "guided_grad_cam": guided_grad_cam,
}


CAM_METHODS = ("grad_cam", "guided_grad_cam")


def check_method(method: object) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    return method  # type: ignore[return-value]


def attribution_map(
    method: str, model: nn.Module, images: torch.Tensor, targets: torch.Tensor, smooth: bool = False,
    n: int = 25, sigma: float = 0.15, layer: str | None = None, output: Output = None,
) -> torch.Tensor:
    """``METHODS[method]`` of ``targets`` (N,), averaged over ``n`` noisy copies when ``smooth``; ``layer`` is
    the Grad-CAM layer (default: the last conv the forward runs); ``output`` where the scores are in the
    model's output (see ``methods.targets``)."""
    function = METHODS[check_method(method)]
    if method in CAM_METHODS:
        function = functools.partial(function, layer=layer)
    if smooth:
        return smoothgrad(function, model, images, targets, n=n, sigma=sigma, output=output)
    return function(model, images, targets, output=output)
