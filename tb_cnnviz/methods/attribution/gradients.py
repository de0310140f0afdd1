"""Gradient maps of a class score with respect to the input pixels: saliency, DeconvNet, guided backprop,
and SmoothGrad over any of them.

Each returns the raw map, the shape of ``images`` (N, C, H, W); :mod:`tb_cnnviz.render` reduces it for display.
The model runs in eval mode (dropout off, BatchNorm on its running statistics, as at inference) and is
left exactly as found; parameters' ``.grad`` are never touched (``torch.autograd.grad`` on the input only).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import nn

from .._hooks import check_positive_int, preserved_state
from .rectifiers import DECONVNET, GUIDED, rectifier_rule
from ..targets import Output, check_inputs, check_scores, resolve_targets

GradientMethod = Callable[[nn.Module, torch.Tensor, "int | torch.Tensor | None"], torch.Tensor]


def input_gradient(
    model: nn.Module, images: torch.Tensor, target: int | torch.Tensor | None = None, rule: str | None = None,
    output: Output = None,
) -> torch.Tensor:
    """d score[target] / d images, with ReLUs passing gradients by ``rule`` (None: the true gradient); ``output``
    says where the scores are in a model's output that is not a tensor (see ``methods.targets``)."""
    images = check_inputs(model, images)
    with preserved_state(model):
        model.eval()
        for param in model.parameters():
            param.requires_grad_(False)  # only the input's gradient is wanted: skip the weights' (restored on exit)
        x = images.detach().clone().requires_grad_(True)
        with torch.enable_grad(), rectifier_rule(rule) if rule else nullcontext():
            scores = check_scores(model(x), len(images), output)
            targets = resolve_targets(target, scores)
            chosen = scores.gather(1, targets[:, None]).sum()  # images are independent in eval mode
            (gradient,) = torch.autograd.grad(chosen, x)
    return gradient


def saliency(model: nn.Module, images: torch.Tensor, target: int | torch.Tensor | None = None,
             output: Output = None) -> torch.Tensor:
    """The data gradient (Simonyan et al.); shown as max |.| over colour channels."""
    return input_gradient(model, images, target, output=output)


def deconvnet(model: nn.Module, images: torch.Tensor, target: int | torch.Tensor | None = None,
              output: Output = None) -> torch.Tensor:
    """The gradient with every ReLU passing only positive gradient (Zeiler & Fergus)."""
    return input_gradient(model, images, target, rule=DECONVNET, output=output)


def guided_backprop(model: nn.Module, images: torch.Tensor, target: int | torch.Tensor | None = None,
                    output: Output = None) -> torch.Tensor:
    """The gradient with every ReLU passing only positive gradient at positive input (Springenberg et al.)."""
    return input_gradient(model, images, target, rule=GUIDED, output=output)


def smoothgrad(
    method: GradientMethod,
    model: nn.Module,
    images: torch.Tensor,
    target: int | torch.Tensor | None = None,
    n: int = 25,
    sigma: float = 0.15,
    seed: int = 0,
    batch_size: int = 64,
    output: Output = None,
) -> torch.Tensor:
    """The mean of ``method`` over ``n`` noisy copies of each image (Smilkov et al.): Gaussian noise with a
    standard deviation of ``sigma`` times the image's value range. The noise comes from its own generator
    (``seed``), so the maps are the same from one training step to the next and the global RNG is untouched.
    ``output``: where the scores are in the model's output, for ``method`` too (see ``methods.targets``).
    """
    images = check_inputs(model, images)
    check_positive_int(n, "n", "noisy copies per image")
    if not sigma >= 0:
        raise ValueError(f"sigma (noise level, a share of each image's value range) must be >= 0; got {sigma!r}")
    if target is None:
        with torch.inference_mode(), preserved_state(model):
            model.eval()
            target = check_scores(model(images), len(images), output).argmax(dim=1)  # explain the clean prediction
    targets = torch.as_tensor(target, device=images.device).long().expand(len(images))
    generator = torch.Generator(device=images.device).manual_seed(seed)
    spread = (images.flatten(1).amax(dim=1) - images.flatten(1).amin(dim=1)).view(-1, 1, 1, 1) * sigma
    total = torch.zeros_like(images)
    per_batch = max(1, batch_size // len(images))
    done = 0
    while done < n:
        copies = min(per_batch, n - done)
        noise = torch.randn((copies, *images.shape), generator=generator, device=images.device, dtype=images.dtype)
        noisy = (images + noise * spread).flatten(0, 1)
        maps = method(model, noisy, targets.repeat(copies), output=output)
        total += maps.view(copies, *images.shape).sum(dim=0)
        done += copies
    return total / n
