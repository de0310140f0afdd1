"""Checks shared by the attribution methods: the model's output and which class each map explains."""

from __future__ import annotations

import torch
from torch import nn

from ._hooks import check_images, model_device, preserved_state


def check_inputs(model: nn.Module, images: object) -> torch.Tensor:
    """Images (N, C, H, W) on the model's device, with the channel count its first conv expects."""
    images = check_images(images)
    device = model_device(model)
    if images.device != device:
        raise ValueError(f"images are on {images.device} but the model is on {device}: move them with images.to({str(device)!r})")
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first_conv is not None and images.shape[1] != first_conv.in_channels:
        hint = " (repeat a grey channel with images.expand(-1, 3, -1, -1))" if images.shape[1] == 1 else ""
        raise ValueError(
            f"images have {images.shape[1]} channel(s) but the model's first conv takes {first_conv.in_channels}{hint}"
        )
    return images


def check_scores(output: object, batch: int) -> torch.Tensor:
    """The model must map N images to (N, classes) scores."""
    if not isinstance(output, torch.Tensor) or output.dim() != 2 or output.shape[0] != batch:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ValueError(f"the model's output must be class scores of shape (N={batch}, classes); got {shape}")
    return output


def resolve_targets(target: int | torch.Tensor | None, scores: torch.Tensor) -> torch.Tensor:
    """``target`` as a LongTensor (N,) on the scores' device; ``None`` means the predicted class."""
    batch, classes = scores.shape
    if target is None:
        return scores.detach().argmax(dim=1)
    if isinstance(target, bool) or not isinstance(target, (int, torch.Tensor)):
        raise TypeError(f"target must be an int or a LongTensor of shape (N,); got {type(target).__name__}")
    targets = torch.as_tensor(target, device=scores.device)
    if targets.is_floating_point() or targets.dim() > 1:
        raise ValueError(f"target must be an int or an integer tensor of shape (N={batch},); got {targets.dtype} {tuple(targets.shape)}")
    targets = targets.long().expand(batch) if targets.dim() == 0 else targets.long()
    if targets.shape[0] != batch:
        raise ValueError(f"target has {targets.shape[0]} entries for {batch} images; give one class per image")
    bad = (targets < 0) | (targets >= classes)
    if bad.any():
        raise ValueError(f"target {targets[bad][0].item()} is out of range: the model has {classes} classes (0..{classes - 1})")
    return targets


def class_probabilities(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Softmax of the model's scores (N, classes), in eval mode, the model left as found."""
    images = check_inputs(model, images)
    with torch.inference_mode(), preserved_state(model):
        model.eval()
        return check_scores(model(images), len(images)).float().softmax(dim=1)
