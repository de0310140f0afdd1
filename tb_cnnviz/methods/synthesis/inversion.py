"""Representation inversion (Mahendran & Vedaldi, "Understanding Deep Image Representations by Inverting
Them", CVPR 2015): the image whose code at a layer matches a given image's code, found by gradient descent
on the input with total-variation and alpha-norm regularisers.

What is lost on the way from pixels to a layer shows in the reconstruction: early layers give the image
back almost exactly, deep ones keep what the network needs (shape, parts) and drop the rest.

Example::

    result = invert(model, image[None], "layer2", steps=200)
    result.images      # (1, C, H, W) the reconstruction, in the model's input space
    result.code_error  # (evaluations, 1) ||phi(x) - phi0|| / ||phi0|| at each evaluation
    series = invert_layers(model, image[None], ["conv1", "layer2", "fc"])  # one batched L-BFGS for all three
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .._hooks import ForwardStopped, check_images, conv_layers, forward_hooks, layer_output, split_call
from .image_priors import alpha_norm, jitter, total_variation
from .input_optimization import (check_non_negative, check_positive, check_steps, check_tolerance, frozen,
                                 optimize, optimize_lbfgs, seeded_generator)

#: Evaluations of the batched L-BFGS (each one forward + backward of every image and layer of the call), read
#: off the quality-vs-evaluations curve on the demo's ShapesNet trained 300 steps, 5 layers: the fewest where
#: the code error (mean over the layers) is at most the former default's (Adam, lr 0.05, 200 steps, one
#: optimisation per layer) on average over other images. 100: 0.904x on the benchmark's image (shape 0), mean
#: 0.989x over shapes 1-19 (11 of 19 at or below); 90: 0.929x and 1.038x; 110: 0.886x and 0.944x. 100 take
#: 0.88-0.93 s against the former's 2.34-2.81 s (benchmarks/image_synthesis.py, 1 thread, shared machine,
#: 2026-12-05); Adam needs 140 steps at its best lr (0.1) for the same error
INVERSION_STEPS = 100
#: Adam's steps when it is the optimiser: the default before L-BFGS (lr 0.05)
ADAM_STEPS = 200
#: "lbfgs" unless ``jitter_pixels`` or ``tolerance`` is given: the objective has no randomness without jitter,
#: and L-BFGS's curvature steps beat Adam's per evaluation there (the first conv layer, held at its floor by the
#: total-variation prior, is flat after about 30). "adam" is needed for jitter and ``tolerance``, so a call with
#: either (which ran Adam before L-BFGS was the default) still gets Adam
OPTIMIZER = "lbfgs"
OPTIMIZERS = ("lbfgs", "adam")
#: early stopping is off by default here: at the class models' tolerance (0.01) the demo's ShapesNet
#: inversions stopped at 90 of 200 steps with 1.34x the code error (benchmarks/image_synthesis.py);
#: pass ``tolerance=`` to have it
TOLERANCE = None


@dataclass(frozen=True)
class Inversion:
    layer: str
    images: torch.Tensor  #: (N, C, H, W) reconstructions, in the model's input space
    code_error: torch.Tensor  #: (steps or evaluations, N) relative code error at each step or evaluation
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
    steps: int | None = None,
    lr: float = 0.05,
    tv_weight: float = 0.05,
    norm_weight: float = 1e-3,
    jitter_pixels: int = 0,
    alpha: float = 6.0,
    beta: float = 2.0,
    seed: int | None = 0,
    progress: bool | None = None,
    tolerance: float | None = TOLERANCE,
    optimizer: str | None = None,
) -> Inversion:
    """Reconstruct ``image`` (N, C, H, W) from its code at ``layer``.

    Minimises ``||phi(x) - phi0||^2 / ||phi0||^2 + norm_weight * mean|x/B|^alpha + tv_weight * TV_beta(x/B)``
    where ``B`` is each image's largest absolute pixel value, so the weights mean the same for any input
    normalisation. Starts from seeded noise. ``optimizer`` "lbfgs" (the default without jitter or tolerance,
    see ``OPTIMIZER``) solves each image on its own (its own history and line search,
    :func:`.optimize_lbfgs`), all images in one batch, for ``steps`` evaluations (default ``INVERSION_STEPS``;
    ``lr`` unused: the line search picks the step; ``code_error`` holds
    each image's error at its current iterate, which a failed trial step leaves unchanged); "adam" takes
    ``steps`` Adam steps (default ``ADAM_STEPS``) of ``lr`` in units of ``B``, and with it ``jitter_pixels`` > 0 rolls ``x`` by a random
    shift each step (Mahendran & Vedaldi, 2016), which favours natural pre-images, and ``tolerance`` stops
    early when the loss stopped improving (off by default: see ``TOLERANCE``).
    """
    images = check_images(image, "image")
    optimizer = _chosen_optimizer(optimizer, jitter_pixels=jitter_pixels, tolerance=tolerance)
    steps = check_steps(_default_steps(steps, optimizer))
    tolerance = check_tolerance(tolerance)
    check_positive(lr=lr, alpha=alpha, beta=beta)
    check_non_negative(tv_weight=tv_weight, norm_weight=norm_weight, jitter_pixels=jitter_pixels)
    if optimizer == "lbfgs":
        return invert_layers(model, images, [layer], steps=steps, tv_weight=tv_weight,
                             norm_weight=norm_weight, alpha=alpha, beta=beta, seed=seed, progress=progress)[0]
    with frozen(model) as device:
        images = images.detach().to(device)
        with torch.no_grad():
            target = layer_output(model, layer, images).detach().clone()
        bound = images.flatten(1).abs().amax(dim=1).clamp_min(1e-12)[:, None, None, None]
        generator = seeded_generator(seed, device)
        normalised = (0.1 * torch.randn(images.shape, generator=generator, device=device, dtype=images.dtype)).requires_grad_(True)

        def loss(_step: int) -> tuple[torch.Tensor, torch.Tensor]:
            shifted = jitter(normalised, int(jitter_pixels), generator)
            error = _relative_code_error(layer_output(model, layer, shifted * bound), target)
            prior = (norm_weight * alpha_norm(normalised, alpha)
                     + tv_weight * total_variation(normalised, beta))
            return (error.square() + prior).sum(), error

        history = optimize([normalised], loss, steps, lr, f"inverting {layer}", progress, tolerance)
        with torch.no_grad():
            reconstruction = normalised.detach() * bound
            final = _relative_code_error(layer_output(model, layer, reconstruction), target)
    return Inversion(layer=layer, images=reconstruction, code_error=history, final_code_error=final)


def _chosen_optimizer(optimizer: object, **adam_only: object) -> str:
    """``optimizer``, or by default "lbfgs" unless an Adam-only argument is given; a named "lbfgs" with one is
    refused, saying why."""
    if optimizer is not None and optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS} or None (L-BFGS unless jitter_pixels or "
                         f"tolerance asks for Adam); got {optimizer!r}")
    given = {name: value for name, value in adam_only.items() if value}
    if optimizer is None:
        return "adam" if given else OPTIMIZER
    if optimizer == "lbfgs" and given:
        name, value = next(iter(given.items()))
        raise ValueError(f"{name} needs optimizer='adam' (L-BFGS needs the same objective at every "
                         f"evaluation and stops by its own test); got {name}={value!r}")
    return optimizer


def _default_steps(steps: int | None, optimizer: str) -> int:
    if steps is not None:
        return steps
    return INVERSION_STEPS if optimizer == "lbfgs" else ADAM_STEPS


class _CannotShed(Exception):
    """The batch that reached a layer was not the rows still wanted, or the forward failed, after ``block``'s
    rows left it (a skip connection from before that layer brought them back): run again keeping them."""

    def __init__(self, block: int):
        super().__init__(block)
        self.block = block


def _block_codes(model: nn.Module, layers: Sequence[str], inputs: torch.Tensor,
                 shed: Collection[int] = ()) -> list[torch.Tensor]:
    """Block ``i`` of ``inputs`` (``len(layers)`` blocks of equal size) taken to ``layers[i]``: its code
    there, in one forward that stops after the last layer. The blocks named in ``shed`` leave the batch at
    their layer, so their rows cost no deeper work; the batch each later layer receives is checked, and when
    it is not the rows still wanted, or the forward fails after a block left, :class:`_CannotShed` names the
    block that left last. Each code is cloned as it is made, so a later in-place op (a ReLU after a conv)
    cannot overwrite it."""
    wanted = {split_call(layer)[0] for layer in layers}
    modules = {name: module for name, module in model.named_modules() if name in wanted}
    keys = [(split_call(layer)[0], split_call(layer)[1] or 0) for layer in layers]
    count = len(inputs) // len(layers)
    present = list(range(len(layers)))  # the blocks in the batch, in its order
    left: list[int] = []
    codes: dict[int, torch.Tensor] = {}

    def keep(name: str, call: int, output: torch.Tensor) -> torch.Tensor | None:
        here = [i for i in present if keys[i] == (name, call) and i not in codes]
        if not here:
            return None
        if output.shape[0] != len(present) * count:
            if not left:
                raise ValueError(f"{name} had {output.shape[0]} rows for {len(present) * count} input "
                                 f"images: inversion needs a model that keeps one row per image")
            raise _CannotShed(left[-1])
        for i in here:
            start = present.index(i) * count
            codes[i] = output[start:start + count].clone()
        if len(codes) == len(layers):
            raise ForwardStopped  # every wanted layer has run
        leaving = [i for i in here if i in shed]
        if not leaving:
            return None
        staying = [position for position, i in enumerate(present) if i not in leaving]
        present[:] = [present[position] for position in staying]
        left.extend(leaving)
        if staying == list(range(staying[0], staying[0] + len(staying))):
            return output[staying[0] * count:(staying[-1] + 1) * count]
        return torch.cat([output[position * count:(position + 1) * count] for position in staying])

    try:
        with forward_hooks(model, modules, keep):
            model(inputs)
    except ForwardStopped:
        pass
    except Exception as error:  # a shape check of the model's own (assert, ValueError) fails like a broadcast
        if not left or isinstance(error, _CannotShed):
            raise
        raise _CannotShed(left[-1]) from error
    return [codes[i] for i in range(len(layers))]


def invert_layers(
    model: nn.Module,
    image: torch.Tensor,
    layers: Sequence[str],
    steps: int | None = None,
    lr: float = 0.05,
    tv_weight: float = 0.05,
    norm_weight: float = 1e-3,
    alpha: float = 6.0,
    beta: float = 2.0,
    seed: int | None = 0,
    progress: bool | None = None,
    tolerance: float | None = TOLERANCE,
    optimizer: str | None = None,
) -> list[Inversion]:
    """:func:`invert` of ``image`` (N, C, H, W) at each of ``layers``, in one batched optimisation: every
    reconstruction is a row of one batch whose loss takes its own layer's code, all from one forward and
    backward per evaluation, in which each row leaves the batch at its layer (:func:`_block_codes`), except
    at a layer after which a skip connection would bring it back (there it runs on). Each row starts from
    :func:`invert`'s noise and has its own loss; with L-BFGS (the default) each row also has its own history
    and line search (one shared line search let the worst row set every row's step: 1.7x the code error),
    with Adam (per-element steps) each row follows the path it would alone by construction. So each row gives
    what :func:`invert` of its layer gives, up to rounding; only Adam's early stopping is shared (the batch
    stops when its summed loss does)."""
    images = check_images(image, "image")
    layers = list(layers)
    if not layers:
        raise ValueError("layers must name at least one layer")
    optimizer = _chosen_optimizer(optimizer, tolerance=tolerance)
    steps = check_steps(_default_steps(steps, optimizer))
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

        shed = set(range(len(layers)))  # the layers whose rows can leave the batch there

        def errors(reconstructions: torch.Tensor) -> torch.Tensor:
            while True:  # found at the first evaluation: each failure keeps one more layer's rows
                try:
                    codes = _block_codes(model, layers, reconstructions, shed)
                    break
                except _CannotShed as failed:
                    shed.discard(failed.block)
            return torch.cat([_relative_code_error(code, target) for code, target in zip(codes, targets)])

        def row_losses(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            error = errors(x * bound)
            prior = norm_weight * alpha_norm(x, alpha) + tv_weight * total_variation(x, beta)
            return error.square() + prior, error

        description = f"inverting {layers[0]}" if len(layers) == 1 else f"inverting {len(layers)} layers"
        if optimizer == "lbfgs":
            history = optimize_lbfgs(normalised, row_losses, steps, description, progress)
        else:
            history = optimize([normalised], lambda _step: _summed(row_losses(normalised)), steps, lr,
                               description, progress, tolerance)
        with torch.no_grad():
            reconstruction = normalised.detach() * bound
            final = errors(reconstruction)
    rows = [slice(i * count, (i + 1) * count) for i in range(len(layers))]
    return [Inversion(layer=layer, images=reconstruction[row], code_error=history[:, row],
                      final_code_error=final[row]) for layer, row in zip(layers, rows)]


def _summed(losses: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return losses[0].sum(), losses[1]
