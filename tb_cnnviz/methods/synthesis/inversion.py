"""Representation inversion (Mahendran & Vedaldi, "Understanding Deep Image Representations by Inverting
Them", CVPR 2015): the image whose code at a layer matches a given image's code, found by gradient descent
on the input with total-variation and alpha-norm regularisers.

What is lost on the way from pixels to a layer shows in the reconstruction: early layers give the image
back almost exactly, deep ones keep what the network needs (shape, parts) and drop the rest.

Example::

    result = invert(model, image[None], "layer2", steps=200)
    result.images      # (1, C, H, W) the reconstruction, in the model's input space
    result.code_error  # (steps taken, 1) ||phi(x) - phi0|| / ||phi0|| at each step
    series = invert_layers(model, image[None], ["conv1", "layer2", "fc"])  # one batched optimisation
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .._hooks import check_images, conv_layers, forward_hooks, layer_output, split_call
from .image_priors import alpha_norm, jitter, total_variation
from .input_optimization import (check_non_negative, check_positive, check_steps, check_tolerance, frozen,
                                 optimize, seeded_generator)

INVERSION_STEPS = 200
#: early stopping is off by default here: at the class models' tolerance (0.01) the demo's ShapesNet
#: inversions stopped at 90 of 200 steps with 1.34x the code error (benchmarks/image_synthesis.py);
#: pass ``tolerance=`` to have it
TOLERANCE = None


@dataclass(frozen=True)
class Inversion:
    layer: str
    images: torch.Tensor  #: (N, C, H, W) reconstructions, in the model's input space
    code_error: torch.Tensor  #: (steps, N) relative code error before each step
    final_code_error: torch.Tensor  #: (N,) relative code error of ``images``


def default_inversion_layers(model: nn.Module, convs: int = 4) -> list[str]:
    """Up to ``convs`` conv layers spread from the first to the last, then the last linear layer (the
    logits): the series from shallow to deep that shows what each stage keeps of the image."""
    names = list(conv_layers(model))
    if len(names) > convs:
        names = [names[round(i * (len(names) - 1) / (convs - 1))] for i in range(convs)]
    linear = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    return names + linear[-1:]


def normalised_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) Pearson correlation of each image pair over all its pixels: 1 for a reconstruction that is the
    original up to brightness and contrast, about 0 for an unrelated one."""
    a = a.flatten(1) - a.flatten(1).mean(dim=1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


def _relative_code_error(code: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N,) ||code - target|| / ||target|| per image."""
    difference = (code - target).flatten(1).norm(dim=1)
    return difference / target.flatten(1).norm(dim=1).clamp_min(1e-12)


def invert(
    model: nn.Module,
    image: torch.Tensor,
    layer: str,
    steps: int = INVERSION_STEPS,
    lr: float = 0.05,
    tv_weight: float = 0.05,
    norm_weight: float = 1e-3,
    jitter_pixels: int = 0,
    alpha: float = 6.0,
    beta: float = 2.0,
    seed: int | None = 0,
    progress: bool | None = None,
    tolerance: float | None = TOLERANCE,
) -> Inversion:
    """Reconstruct ``image`` (N, C, H, W) from its code at ``layer``.

    Minimises ``||phi(x) - phi0||^2 / ||phi0||^2 + norm_weight * mean|x/B|^alpha + tv_weight * TV_beta(x/B)``
    where ``B`` is each image's largest absolute pixel value, so the weights mean the same for any input
    normalisation. Starts from seeded noise; Adam with step ``lr`` in units of ``B``. ``jitter_pixels`` > 0
    rolls ``x`` by a random shift each step (Mahendran & Vedaldi, 2016), which favours natural pre-images.
    With ``tolerance`` it stops early when the loss stopped improving (off by default: see ``TOLERANCE``).
    """
    images = check_images(image, "image")
    steps = check_steps(steps)
    tolerance = check_tolerance(tolerance)
    check_positive(lr=lr, alpha=alpha, beta=beta)
    check_non_negative(tv_weight=tv_weight, norm_weight=norm_weight, jitter_pixels=jitter_pixels)
    with frozen(model) as device:
        images = images.detach().to(device)
        with torch.no_grad():
            target = layer_output(model, layer, images).detach().clone()
        bound = images.flatten(1).abs().amax(dim=1).clamp_min(1e-12)[:, None, None, None]
        generator = seeded_generator(seed, device)
        normalised = (0.1 * torch.randn(images.shape, generator=generator, device=device, dtype=images.dtype)).requires_grad_(True)

        def objective(_step: int) -> tuple[torch.Tensor, torch.Tensor]:
            shifted = jitter(normalised, int(jitter_pixels), generator)
            error = _relative_code_error(layer_output(model, layer, shifted * bound), target)
            prior = norm_weight * alpha_norm(normalised, alpha) + tv_weight * total_variation(normalised, beta)
            return (error.square() + prior).sum(), error

        history = optimize([normalised], objective, steps, lr, f"inverting {layer}", progress, tolerance)
        with torch.no_grad():
            reconstruction = normalised.detach() * bound
            final = _relative_code_error(layer_output(model, layer, reconstruction), target)
    return Inversion(layer=layer, images=reconstruction, code_error=history, final_code_error=final)


class _AllCaptured(Exception):
    """Raised from a hook once every wanted layer has run: nothing after it is computed."""


def _layer_codes(model: nn.Module, layers: Sequence[str], inputs: torch.Tensor) -> list[torch.Tensor]:
    """The output of each of ``layers`` for the whole batch, in one forward that stops after the last of them.
    Each is cloned as it is made, so a later in-place op (a ReLU after a conv) cannot overwrite it."""
    wanted = {split_call(layer)[0] for layer in layers}
    modules = {name: module for name, module in model.named_modules() if name in wanted}
    keys = [(split_call(layer)[0], split_call(layer)[1] or 0) for layer in layers]
    captured: dict[tuple[str, int], torch.Tensor] = {}

    def keep(name: str, call: int, output: torch.Tensor) -> None:
        if (name, call) in keys:
            captured[(name, call)] = output.clone()
            if len(captured) == len(set(keys)):
                raise _AllCaptured

    try:
        with forward_hooks(model, modules, keep):
            model(inputs)
    except _AllCaptured:
        pass
    return [captured[key] for key in keys]


def invert_layers(
    model: nn.Module,
    image: torch.Tensor,
    layers: Sequence[str],
    steps: int = INVERSION_STEPS,
    lr: float = 0.05,
    tv_weight: float = 0.05,
    norm_weight: float = 1e-3,
    alpha: float = 6.0,
    beta: float = 2.0,
    seed: int | None = 0,
    progress: bool | None = None,
    tolerance: float | None = TOLERANCE,
) -> list[Inversion]:
    """:func:`invert` of ``image`` (N, C, H, W) at each of ``layers``, as one batched optimisation: every
    reconstruction is a row of one batch whose loss takes its own layer's code, all from one forward per
    step (cheaper than one optimisation per layer on a small net, where a step's cost is mostly per call).
    Each row starts from :func:`invert`'s noise and has its loss, so with Adam (per-element steps) each row
    follows the path it would alone; only early stopping is shared (the batch stops when its summed loss
    does)."""
    images = check_images(image, "image")
    layers = list(layers)
    if not layers:
        raise ValueError("layers must name at least one layer")
    steps = check_steps(steps)
    tolerance = check_tolerance(tolerance)
    check_positive(lr=lr, alpha=alpha, beta=beta)
    check_non_negative(tv_weight=tv_weight, norm_weight=norm_weight)
    count = len(images)
    with frozen(model) as device:
        images = images.detach().to(device)
        with torch.no_grad():
            # checks each name, with layer_output's messages
            targets = [layer_output(model, layer, images).detach().clone() for layer in layers]
        bound = images.flatten(1).abs().amax(dim=1).clamp_min(1e-12)[:, None, None, None]
        bound = bound.repeat(len(layers), 1, 1, 1)
        generator = seeded_generator(seed, device)
        state = generator.get_state()  # every row starts from the noise invert() starts from with this seed

        def noise() -> torch.Tensor:
            generator.set_state(state)
            return 0.1 * torch.randn(images.shape, generator=generator, device=device, dtype=images.dtype)

        normalised = torch.cat([noise() for _ in layers]).requires_grad_(True)

        def errors(reconstructions: torch.Tensor) -> torch.Tensor:
            codes = _layer_codes(model, layers, reconstructions)
            return torch.cat([_relative_code_error(code[i * count:(i + 1) * count], target)
                              for i, (code, target) in enumerate(zip(codes, targets))])

        def objective(_step: int) -> tuple[torch.Tensor, torch.Tensor]:
            error = errors(normalised * bound)
            prior = (norm_weight * alpha_norm(normalised, alpha)
                     + tv_weight * total_variation(normalised, beta))
            return (error.square() + prior).sum(), error

        history = optimize([normalised], objective, steps, lr, f"inverting {len(layers)} layers", progress,
                           tolerance)
        with torch.no_grad():
            reconstruction = normalised.detach() * bound
            final = errors(reconstruction)
    rows = [slice(i * count, (i + 1) * count) for i in range(len(layers))]
    return [Inversion(layer=layer, images=reconstruction[row], code_error=history[:, row],
                      final_code_error=final[row]) for layer, row in zip(layers, rows)]
