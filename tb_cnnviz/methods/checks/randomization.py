"""Model-randomisation sanity check (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

A map that explains the *model* must change when the model's weights are re-drawn at random. The cascading
check re-draws the layers one after another from the logits down, cumulatively, and records after each how
similar (Spearman rank correlation of |map|) the map still is to the trained model's; the independent check
re-draws one layer at a time. Guided backprop famously stays similar (it recovers edges whatever the
weights); the plain gradient falls to about 0.

Everything runs on a deep copy of the model, re-drawn from its own seeded generator, so the user's model
and the global RNG are untouched; the maps come from the same entry point the logger uses
(:func:`~tb_cnnviz.methods.attribution.registry.attribution_map`), or from any ``method(model, images, targets)``.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import nn

from .._hooks import check_positive_int, is_conv, resolve_layers, run_order
from ..attribution.registry import attribution_map, check_method
from ..targets import Output, class_probabilities, check_inputs, resolve_targets
from .importance import pixel_importance
from .rank_correlation import correlation_of_ranks, standardized_ranks

MapFunction = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


class RandomizationCheck(NamedTuple):
    """``layers``: the re-drawn layers in the order they were re-drawn (logits first); ``similarity`` (L, N):
    Spearman rank correlation between each image's |map| from the trained model and from the model with
    ``layers[:i + 1]`` (cascading) or ``layers[i]`` alone (independent) re-drawn."""

    layers: list[str]
    similarity: torch.Tensor


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each row of ``a`` and ``b`` (N, ...), ties given their average rank (as
    ``scipy.stats.spearmanr``); 0 where either row is constant: for the sanity check a map that went flat has
    moved away from the trained one (:func:`.rank_correlation` answers NaN there instead). A NaN ranks above
    every number, so one broken pixel does not make a map read as "changed" (0)."""
    return _correlation(_standard_ranks(a), _standard_ranks(b))


def _standard_ranks(values: torch.Tensor) -> torch.Tensor:
    """:func:`.standardized_ranks` with NaN ranked above every number and a row that cannot be ranked
    (constant) all zero, so it correlates 0 with any."""
    values = values.detach().float()
    inf = float("inf")
    return standardized_ranks(values.nan_to_num(nan=inf, posinf=inf, neginf=-inf)).nan_to_num(0.0)


def _correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return correlation_of_ranks(a, b).float()


def randomizable_layers(model: nn.Module, images: torch.Tensor) -> list[str]:
    """Every conv and linear layer with parameters that runs in the forward, from the logits down (reverse
    order of first execution, found by one forward of the first image)."""
    names = {m: n for n, m in model.named_modules() if (is_conv(m) or isinstance(m, nn.Linear)) and any(True for _ in m.parameters())}
    ran = dict.fromkeys(run_order(model, images, names))  # each module once, at its first call
    if not ran:
        raise ValueError(f"{type(model).__name__} runs no conv or linear layer with parameters: pass layers=[...] to re-draw")
    return [names[module] for module in reversed(list(ran))]


def redraw(module: nn.Module, generator: torch.Generator) -> None:
    """Re-draw every parameter of ``module`` in place as PyTorch initialises conv and linear layers,
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from ``generator``; fan_in from its first parameter of 2 or more
    dimensions (1 where there is none, e.g. a norm layer's scale and shift)."""
    params = list(module.parameters())
    weight = next((p for p in params if p.dim() >= 2), None)
    bound = 1.0 / math.sqrt(weight[0].numel()) if weight is not None and weight[0].numel() else 1.0
    with torch.no_grad():
        for param in params:
            noise = torch.rand(param.shape, generator=generator, device=generator.device, dtype=torch.float32)
            param.copy_((noise * 2 - 1) * bound)


def _map_function(method: str | MapFunction, options: dict) -> MapFunction:
    if callable(method):
        if options:
            raise TypeError(f"options {sorted(options)} go to a named method; bind them into the callable instead")
        return method
    check_method(method)
    return functools.partial(_named_map, method, options)


def _named_map(method: str, options: dict, model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return attribution_map(method, model, images, targets, **options)


def randomization_check(
    model: nn.Module,
    images: torch.Tensor,
    target: int | torch.Tensor | None,
    method: str | MapFunction,
    layers: Sequence[str] | None = None,
    seed: int = 0,
    cascading: bool = True,
    maps: torch.Tensor | None = None,
    output: Output = None,
    at_most: int | None = None,
    **options: object,
) -> RandomizationCheck:
    """Adebayo et al.'s model-randomisation check of ``method`` (a name: saliency, deconvnet, guided_backprop,
    grad_cam, guided_grad_cam, with ``options`` for :func:`attribution_map` such as ``smooth=True``; or a
    callable ``method(model, images, targets)`` returning (N, ...) maps) for ``target`` (default: the predicted
    class, kept for every re-drawn model). ``layers`` default to :func:`randomizable_layers` (logits first);
    ``maps``: the trained model's maps if already made (saves one map). ``output``: where the scores are in a
    model's output that is not a tensor (see ``methods.targets``), for a named method too. ``at_most``: on a
    deep net, compare maps at only this many of the layers, spread evenly from the logits to the first
    (both kept); the cascade still re-draws every layer above each, in order, on one copy.

        check = randomization_check(model, x, y, "guided_backprop")
        check.similarity[0]   # after the logits layer alone: near 1 for guided backprop, lower for saliency
    """
    images = check_inputs(model, images)
    function = _map_function(method, {**options, "output": output} if isinstance(method, str) else options)
    # the trained model's prediction, kept for every re-drawn model; a given target is checked by the method
    targets = resolve_targets(None, class_probabilities(model, images, output)) if target is None else target
    if layers is None:
        names = randomizable_layers(model, images)
    else:
        names = list(resolve_layers(model, layers))
        empty = [name for name in names if not any(True for _ in dict(model.named_modules())[name].parameters())]
        if empty:
            raise ValueError(f"layers {empty} have no parameters to re-draw")
    reference = _standard_ranks(_absolute(function(model, images, targets) if maps is None else maps))
    try:
        randomized = copy.deepcopy(model)
    except Exception as exc:  # a model holding an uncopyable object (an open file, a lock)
        raise TypeError(f"randomization_check re-draws weights on a deep copy, and {type(model).__name__} cannot be copied: {exc}") from exc
    modules = dict(randomized.named_modules())
    generator = torch.Generator(device=images.device).manual_seed(seed)
    if at_most is not None and len(names) > check_positive_int(at_most, "at_most", "layers compared"):
        compared = {round(i * (len(names) - 1) / max(1, at_most - 1)) for i in range(at_most)}
    else:
        compared = set(range(len(names)))
    similarity = []
    for index, name in enumerate(names):
        if not cascading and index not in compared:
            continue
        module = modules[name]
        trained = [param.detach().clone() for param in module.parameters()] if not cascading else []
        redraw(module, generator)
        if index in compared:
            similarity.append(_correlation(reference, _standard_ranks(_absolute(function(randomized, images, targets)))))
        with torch.no_grad():
            for param, saved in zip(module.parameters(), trained):
                param.copy_(saved)
    return RandomizationCheck([names[i] for i in sorted(compared)], torch.stack(similarity))


def _absolute(maps: torch.Tensor) -> torch.Tensor:
    """|map| per pixel: max |.| over channels of an (N, C, H, W) map; |.| of an (N, H, W) one."""
    return pixel_importance(maps).abs()
