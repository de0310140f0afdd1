"""Grad-CAM (Selvaraju et al.) and Guided Grad-CAM: where in a conv layer's grid the class evidence sits.

``cam = relu(sum_k w_k * A_k)`` with ``w_k`` the spatial mean of ``d score[target] / d A_k``, ``A`` the
layer's output for the image. The layer defaults to the last ``nn.Conv2d`` the forward runs (in execution
order, not registration order); its output is taken *before* whatever follows it, as Captum's
``LayerGradCam`` takes it, so an in-place ReLU after it does not change the map. Guided Grad-CAM multiplies
the guided-backprop map by the Grad-CAM map upsampled bilinearly to the image size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._hooks import preserved_state, run_order, split_call, unknown_layer_message
from .gradients import guided_backprop
from ..targets import Output, check_inputs, check_scores, resolve_targets


class GradCam(tuple):
    """``(cam, upsampled)``: unpacks as a pair; also says which classes (``targets``) and which layer call
    (``layer``, ``name#k`` for the k-th call of a reused module) the maps explain.

    ``cam`` is (N, h, w) on the layer's grid, >= 0; ``upsampled`` is (N, H, W), bilinear to the image size.
    """

    def __new__(cls, cam: torch.Tensor, upsampled: torch.Tensor, targets: torch.Tensor, layer: str) -> GradCam:
        pair = super().__new__(cls, (cam, upsampled))
        pair.targets = targets
        pair.layer = layer
        return pair

    @property
    def cam(self) -> torch.Tensor:
        return self[0]

    @property
    def upsampled(self) -> torch.Tensor:
        return self[1]


def last_conv_name(model: nn.Module, images: torch.Tensor) -> str:
    """The ``nn.Conv2d`` the forward runs last, found by one forward of the first image."""
    names = {module: name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)}
    if not names:
        raise ValueError(f"grad_cam: {type(model).__name__} has no nn.Conv2d layer; pass layer= a module with a (N, C, h, w) output")
    order = run_order(model, images, names)
    if not order:
        raise ValueError(f"grad_cam: no nn.Conv2d of {type(model).__name__} runs in its forward; pass layer=")
    return names[order[-1]]


def _layer_module(model: nn.Module, layer: str) -> tuple[nn.Module, int | None]:
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a module name (str) such as 'layer4'; got {type(layer).__name__}")
    module_name, call = split_call(layer)
    modules = dict(model.named_modules())
    if module_name not in modules or module_name == "":
        raise ValueError(unknown_layer_message(model, layer, "layer"))
    return modules[module_name], call


def grad_cam(
    model: nn.Module, images: torch.Tensor, target: int | torch.Tensor | None = None, layer: str | None = None,
    output: Output = None,
) -> GradCam:
    """Grad-CAM of ``target`` (default: the predicted class) at ``layer`` (default: the last conv run);
    ``output``: where the scores are in a model's output that is not a tensor (see ``methods.targets``)."""
    images = check_inputs(model, images)
    layer = last_conv_name(model, images) if layer is None else layer
    module, wanted_call = _layer_module(model, layer)
    captured: list[torch.Tensor] = []
    calls = [0]

    def capture(_module: nn.Module, _inputs: object, output: object) -> torch.Tensor | None:
        call = calls[0]
        calls[0] += 1
        if wanted_call is not None and call != wanted_call:
            return None
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise ValueError(f"grad_cam: layer {layer!r} must output a (N, C, h, w) feature map; got {shape}")
        feature = output.detach().requires_grad_(True)
        captured[:] = [feature]  # the last call wins when no call is named
        return feature.clone()  # what runs next (an in-place ReLU) must not change the captured map

    with preserved_state(model):
        model.eval()
        for param in model.parameters():
            param.requires_grad_(False)  # only the layer's gradient is wanted
        handle = module.register_forward_hook(capture)
        try:
            with torch.enable_grad():
                scores = check_scores(model(images.detach()), len(images), output)
                targets = resolve_targets(target, scores)
                if not captured:
                    raise ValueError(f"grad_cam: layer {layer!r} did not run in the forward (it ran {calls[0]} time(s))")
                (feature,) = captured
                chosen = scores.gather(1, targets[:, None]).sum()
                (gradient,) = torch.autograd.grad(chosen, feature, allow_unused=True)
        finally:
            handle.remove()
    if gradient is None:
        gradient = torch.zeros_like(feature)  # the score does not depend on this call of the layer
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    cam = (weights * feature.detach()).sum(dim=1).clamp_min(0)
    upsampled = F.interpolate(cam[:, None], size=images.shape[2:], mode="bilinear", align_corners=False)[:, 0]
    if wanted_call is None and calls[0] > 1:
        layer = f"{layer}#{calls[0]}"
    return GradCam(cam, upsampled, targets, layer)


def guided_grad_cam(
    model: nn.Module, images: torch.Tensor, target: int | torch.Tensor | None = None, layer: str | None = None,
    output: Output = None,
) -> torch.Tensor:
    """Guided backprop times upsampled Grad-CAM (Selvaraju et al.), shape of ``images``."""
    cam = grad_cam(model, images, target, layer, output)
    return guided_backprop(model, images, cam.targets, output) * cam.upsampled[:, None]
