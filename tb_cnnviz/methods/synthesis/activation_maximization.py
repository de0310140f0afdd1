"""Inputs optimised to excite one output of the network: class models (Simonyan et al., "Deep Inside
Convolutional Networks", 2014: maximise the unnormalised class score with L2 regularisation) and channel
visualisations (maximise a channel's mean activation, with Lucid's decorrelated Fourier parameterisation
and jitter, or pixels with periodic blur as in Yosinski et al., 2015).

They show what a class or a channel responds to with no data set at all, and how that changes as the
network trains: at initialisation they are texture noise, after training they carry strokes and parts.

Example::

    models = class_model(model, target=[0, 1, 2], size=(3, 224, 224), seed=0)
    views = channel_visualization(model, "layer3", channel=[0, 5], size=(3, 128, 128), seed=0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .._hooks import is_relu_like, layer_output, split_call
from .image_parameterization import ImageParameterization, composite, random_background, random_transform
from .image_priors import gaussian_blur, jitter
from .input_optimization import (check_non_negative, check_positive, check_steps, check_tolerance, frozen,
                                 optimize, seeded_generator)
from ..targets import Output, check_scores

PARAMETERIZATIONS = ("fourier", "pixel")
REDIRECT_STEPS = 16  #: first steps whose ReLU gradient goes to the pre-activation (Lucid's redirected ReLU)
BLUR_EVERY = 4  #: steps between two blurs of a pixel-parameterised image
#: class models' default steps (a maximum), from two measured curves: the objective (benchmarks/
#: image_synthesis.py: the class logit passes the former default's by 50 steps, 1.6x it; 100 steps 2.5x) and
#: recognisability (benchmarks/recognisability.py: the second net recognises 1-2 of 5 at 50 steps, 2-3 at 100,
#: 1-4 at 200; the net itself 3 of 5 at 50, 5 of 5 from 100)
CLASS_MODEL_STEPS = 100
#: channel images' default steps and step size, from the same curve: with lr 0.1, 100 steps reach the mean
#: activation of the former default's 256 (1.00x; lr 0.05: 0.88x at 100, 1.02x at 200)
CHANNEL_STEPS = 100
CHANNEL_LR = 0.1
FOURIER_LR = 0.05  #: Adam's step on the decorrelated spectrum for class models (Lucid's)
TOLERANCE = 0.01  #: early stopping (``input_optimization.stopped_improving``)
SCORES = ("log_softmax", "logit")
#: Class models' default: the class's log-softmax of a transparent image (Mordvintsev et al. 2018) seen over
#: random backgrounds, mean opacity weighed by this. Measured by a second ShapesNet's verdict on the 5 class
#: models of the first (benchmarks/recognisability.py's nets, 20 seeds of the optimisation; recognised of 5,
#: mean): opaque with the logit 2.95 (3 of 20 seeds >= 4); opaque with the log-softmax 1.45; transparent with
#: the logit 3.15; transparent with the log-softmax 4.45 at weight 2 (all 20 seeds >= 4), 4.4 at 1, 4.05 at 3,
#: 3.55 at 5, 2.9 at 0 (random backgrounds, no penalty).
OPACITY_WEIGHT = 2.0


@dataclass(frozen=True)
class Visualization:
    images: torch.Tensor  #: (N, C, H, W) in the model's input space
    objective: torch.Tensor  #: (steps, N) before each step: a channel's mean activation, a class's logit
    units: list[int]  #: the class or channel of each image
    layer: str | None  #: None for class models (the model's output)
    #: drawn with an opacity channel over random backgrounds, then laid over grey (class models' default)
    transparent: bool = False


def check_size(size: object) -> tuple[int, int, int]:
    if (not isinstance(size, (tuple, list)) or len(size) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise ValueError(f"size must be (channels, height, width) of the model's input, positive ints; got {size!r}")
    return tuple(size)  # type: ignore[return-value]


def _check_units(units: object, argument: str, count: int | None) -> list[int]:
    """A single index or a sequence of them, each in range when ``count`` is known."""
    values = units.tolist() if isinstance(units, torch.Tensor) else units
    values = [values] if isinstance(values, int) else values
    if (not isinstance(values, (list, tuple)) or not values
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)):
        raise TypeError(f"{argument} must be an int or a non-empty sequence of ints; got {units!r}")
    if count is not None and not all(0 <= v < count for v in values):
        raise ValueError(f"{argument} must be in [0, {count}); got {list(values)}")
    return list(values)


def channel_count(model: nn.Module, layer: str, size: tuple[int, int, int]) -> int:
    """How many channels ``layer`` has for inputs of ``size`` (one forward of a blank image)."""
    with frozen(model) as device, torch.no_grad():
        return layer_output(model, layer, torch.zeros((1, *check_size(size)), device=device)).shape[1]


def _check_range(input_range: object) -> tuple[float, float]:
    if (not isinstance(input_range, (tuple, list)) or len(input_range) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in input_range)
            or not input_range[0] < input_range[1]):
        raise ValueError(f"input_range must be (low, high) with low < high, the values the model's inputs take; got {input_range!r}")
    return float(input_range[0]), float(input_range[1])


def _maximize(
    model: nn.Module,
    count: int,
    size: tuple[int, int, int],
    value_of: Callable[[torch.Tensor, int], torch.Tensor],
    *,
    steps: int,
    lr: float,
    parameterization: str,
    input_range: tuple[float, float] | None,
    l2_weight: float,
    jitter_pixels: int,
    blur: float,
    colour: object,
    transforms: bool,
    tolerance: float | None,
    seed: int | None,
    progress: bool | None,
    description: str,
    transparency: bool = False,
    opacity_weight: float = 0.0,
    background: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximise ``value_of(images, step)`` (N,) - ``l2_weight`` * mean(images^2) (- ``opacity_weight`` * mean
    opacity with ``transparency``); returns (images, history). ``value_of`` may return (the value to maximise,
    the value to record)."""
    steps = check_steps(steps)
    tolerance = check_tolerance(tolerance)
    check_positive(lr=lr)
    check_non_negative(l2_weight=l2_weight, jitter_pixels=jitter_pixels, blur=blur,
                       opacity_weight=opacity_weight)
    if transparency and parameterization != "fourier":
        raise ValueError("transparency applies to parameterization='fourier'; set transparency=False")
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}; got {parameterization!r}")
    if blur > 0 and parameterization != "pixel":
        raise ValueError("blur applies to parameterization='pixel' (the Fourier one is already smooth); set blur=0")
    if input_range is None and parameterization != "pixel":
        raise ValueError("input_range=None (unbounded pixels) applies to parameterization='pixel' only")
    with frozen(model) as device:
        generator = seeded_generator(seed, device)
        shape = (count, *size)
        if parameterization == "fourier":
            param = ImageParameterization(shape, generator, colour=colour, input_range=input_range).to(device)
            variables, image = [param.variables], param
            if transparency:  # an opacity channel of its own, in [0, 1] (Mordvintsev et al. 2018)
                alpha = ImageParameterization((count, 1, *size[1:]), generator, colour=None).to(device)
                variables.append(alpha.variables)
        else:
            pixels = (0.01 * torch.randn(shape, generator=generator, device=device)).requires_grad_(True)
            variables = [pixels]
            low, high = input_range if input_range is not None else (0.0, 1.0)

            def image() -> torch.Tensor:
                return pixels if input_range is None else low + (high - low) * torch.sigmoid(pixels)

        def objective(step: int) -> tuple[torch.Tensor, torch.Tensor]:
            if blur > 0 and step % BLUR_EVERY == BLUR_EVERY - 1:
                with torch.no_grad():
                    variables[0].copy_(gaussian_blur(variables[0], blur))
            current = image()
            penalty = l2_weight * current.square().flatten(1).mean(dim=1)
            if transparency:
                opacity = alpha()
                behind = random_background(shape, generator, input_range, background)
                current = composite(current, opacity, behind)
                penalty = penalty + opacity_weight * opacity.flatten(1).mean(dim=1)
            seen = jitter(current, int(jitter_pixels), generator)
            if transforms:
                seen = random_transform(seen, generator)
            value = value_of(seen, step)
            value, record = value if isinstance(value, tuple) else (value, value)
            return (penalty - value).sum(), record

        history = optimize(variables, objective, steps, lr, description, progress, tolerance)
        with torch.no_grad():
            final = image()
            if transparency:  # over the backgrounds' mean grey
                low, high = input_range
                final = composite(final, alpha(), torch.full_like(final, low + (high - low) * background))
            return final.detach(), history


def class_model(
    model: nn.Module,
    target: int | Sequence[int] | torch.Tensor,
    size: tuple[int, int, int],
    steps: int = CLASS_MODEL_STEPS,
    lr: float | None = None,
    l2_weight: float | None = None,
    jitter_pixels: int = 0,
    blur: float = 0.0,
    seed: int | None = 0,
    progress: bool | None = None,
    output: Output = None,
    parameterization: str = "fourier",
    input_range: tuple[float, float] | None = (0.0, 1.0),
    colour: object = "imagenet",
    transforms: bool = True,
    tolerance: float | None = TOLERANCE,
    score: str | None = None,
    transparency: bool | None = None,
    opacity_weight: float = OPACITY_WEIGHT,
    background: float = 0.5,
) -> Visualization:
    """The image of ``size`` (C, H, W) that maximises the target class's ``score`` - ``l2_weight`` *
    mean(image^2), one per target class, all in one batched optimisation; ``objective`` records the class's
    unnormalised score (logit) whatever is maximised.

    By default (``parameterization="fourier"``) the image is a decorrelated-colour Fourier parameterisation
    squashed into ``input_range`` (pass the range your model's inputs take), with an opacity channel: it is
    seen laid over random noisy backgrounds with its mean opacity penalised (``opacity_weight``; Mordvintsev
    et al. 2018), through random shifts, scales and rotations (Olah et al. 2017;
    :mod:`.image_parameterization`), and the class's log-softmax is maximised; the result is laid over the
    ``background`` grey. The log-softmax alone can rise by lowering the other classes (Simonyan et al.
    maximise the logit for that reason), but on a transparent image it keeps only what tells the class apart:
    a second net recognised 4.45 of 5 such class models of the shapes, against 3.15 with the logit
    (``OPACITY_WEIGHT``). No L2 term (the range bounds it); stops early when the loss stopped improving
    (``tolerance``; None runs every step).

    ``score``: "log_softmax" or "logit" (None: log-softmax for the Fourier parameterisation, logit for
    pixels); ``transparency``: None is on for the Fourier parameterisation, off for pixels; ``background``:
    the grey the transparent image is seen over (and finally laid over), a share of ``input_range``, the
    middle by default (the shapes' backgrounds are at 0.37: a net trained from seed 1 made class models that
    the seed-0 net recognised 3.6 of 5 at 0.37, 2.95 at 0.5, 3.05 opaque; the benchmark's direction: 4.3 at
    0.37, 4.45 at 0.5). ``parameterization="pixel"``,
    ``input_range=None``, ``transforms=False``, ``l2_weight=10``, ``lr=0.1`` with ``jitter_pixels`` and
    ``blur`` is Simonyan et al.'s unbounded pixel ascent of the logit, this function's former default.
    ``output``: where the scores are in a model's output that is not a tensor (see ``methods.targets``)."""
    size = check_size(size)
    pixel = parameterization == "pixel"
    low_high = None if input_range is None and pixel else _check_range(input_range)
    score = score if score is not None else ("logit" if pixel else "log_softmax")
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES} or None; got {score!r}")
    transparency = (not pixel) if transparency is None else transparency
    if not isinstance(transparency, bool):
        raise TypeError(f"transparency must be a bool or None; got {transparency!r}")
    if isinstance(background, bool) or not isinstance(background, (int, float)) or not 0 <= background <= 1:
        raise ValueError(f"background must be a share of input_range in [0, 1]; got {background!r}")
    classes = None
    with frozen(model) as device, torch.no_grad():
        classes = check_scores(model(torch.zeros((1, *size), device=device)), 1, output).shape[1]
    targets = _check_units(target, "target", classes)
    index = torch.tensor(targets)

    def scores(images: torch.Tensor, _step: int) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = check_scores(model(images), len(images), output)
        chosen = index.to(images.device)[:, None]
        logit = outputs.gather(1, chosen)[:, 0]
        if score == "logit":
            return logit, logit
        return outputs.log_softmax(dim=1).gather(1, chosen)[:, 0], logit

    images, history = _maximize(
        model, len(targets), size, scores, steps=steps,
        lr=lr if lr is not None else (0.1 if pixel else FOURIER_LR),
        parameterization=parameterization, input_range=low_high,
        l2_weight=l2_weight if l2_weight is not None else (10.0 if pixel else 0.0),
        jitter_pixels=jitter_pixels,
        blur=blur, colour=colour, transforms=transforms, tolerance=tolerance, seed=seed, progress=progress,
        description="class models", transparency=transparency, opacity_weight=opacity_weight,
        background=float(background),
    )
    return Visualization(images=images, objective=history, units=targets, layer=None, transparent=transparency)


def channel_visualization(
    model: nn.Module,
    layer: str,
    channel: int | Sequence[int] | torch.Tensor,
    size: tuple[int, int, int],
    steps: int = CHANNEL_STEPS,
    lr: float | None = None,
    parameterization: str = "fourier",
    input_range: tuple[float, float] = (0.0, 1.0),
    jitter_pixels: int = 0,
    blur: float = 0.0,
    seed: int | None = 0,
    progress: bool | None = None,
    colour: object = "imagenet",
    transforms: bool = True,
    tolerance: float | None = TOLERANCE,
) -> Visualization:
    """One image of ``size`` (C, H, W) per channel, maximising that channel's mean activation at ``layer``,
    all in one batched optimisation, with pixels kept inside ``input_range`` (a sigmoid: pass the range
    your model's inputs take). The image parameterisation, transforms and early stopping are
    :func:`class_model`'s; ``jitter_pixels`` adds a roll of up to that many pixels each step.

    At a ReLU, the first ``REDIRECT_STEPS`` steps send the gradient to its pre-activation (Lucid's
    redirected ReLU): a channel that is off for the starting image would otherwise get no gradient and
    never turn on. The recorded objective is always the mean activation after the ReLU."""
    size = check_size(size)
    low_high = _check_range(input_range)
    units = _check_units(channel, "channel", channel_count(model, layer, size))
    index = torch.tensor(units)
    at_relu = is_relu_like(dict(model.named_modules())[split_call(layer)[0]])

    def mean_activation(images: torch.Tensor, step: int) -> torch.Tensor:
        maps = layer_output(model, layer, images, before=at_relu)
        chosen = maps.gather(1, index.to(maps.device).view(-1, 1, *([1] * (maps.dim() - 2))).expand(-1, 1, *maps.shape[2:]))
        if not at_relu:
            return chosen.flatten(1).mean(dim=1)
        post = chosen.clamp_min(0).flatten(1).mean(dim=1)
        if step >= REDIRECT_STEPS:
            return post
        pre = chosen.flatten(1).mean(dim=1)
        return pre + (post - pre).detach()  # the pre-activation's gradient, the activation's value

    pixel = parameterization == "pixel"
    images, history = _maximize(
        model, len(units), size, mean_activation, steps=steps,
        lr=lr if lr is not None else (0.05 if pixel else CHANNEL_LR),
        parameterization=parameterization, input_range=low_high, l2_weight=0.0, jitter_pixels=jitter_pixels,
        blur=blur, colour=colour, transforms=transforms, tolerance=tolerance, seed=seed, progress=progress,
        description=f"visualising {layer}",
    )
    return Visualization(images=images, objective=history, units=units, layer=layer)
