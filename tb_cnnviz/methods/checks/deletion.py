"""Deletion and insertion curves (Petsiuk et al., "RISE", BMVC 2018): how fast the class probability falls as
the pixels a map ranks highest are deleted, or rises as they are revealed on a blank image. A faithful map
gives a low deletion AUC and a high insertion AUC; a random order is the baseline to beat.

All the steps of all the images go through the model as batches of masked copies, under
``torch.inference_mode()``: the cost is that of the (steps + 1) x N forward passes plus one comparison per pixel.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .._hooks import check_positive_int, preserved_state
from ..targets import Output, check_inputs, check_scores, resolve_targets
from .importance import pixel_importance

MODES = ("deletion", "insertion")


class DeletionCurve(NamedTuple):
    """``fractions`` (S+1,): share of pixels deleted (or revealed) at each step, 0 ... 1; ``probability``
    (S+1, N): softmax probability of each image's target after that step; ``auc`` (N,): trapezoid area under
    ``probability`` over ``fractions``."""

    fractions: torch.Tensor
    probability: torch.Tensor
    auc: torch.Tensor


def pixel_ranks(importance: torch.Tensor) -> torch.Tensor:
    """(N, H*W): each pixel's place in descending order of ``importance`` (N, H, W), 0 = first; ties go to the
    lower flat index first (a stable sort)."""
    order = importance.flatten(1).sort(dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return ranks


def random_maps(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A uniformly random map (N, H, W) from its own generator (global RNG untouched): the order a map must beat."""
    generator = torch.Generator(device=images.device).manual_seed(seed)
    return torch.rand((images.shape[0], *images.shape[2:]), generator=generator, device=images.device)


def _check_baseline(baseline: object, images: torch.Tensor) -> torch.Tensor:
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float, torch.Tensor)):
        raise TypeError(f"baseline must be a number or a tensor broadcastable to the images; got {type(baseline).__name__}")
    value = torch.as_tensor(baseline, dtype=images.dtype, device=images.device)
    try:
        torch.broadcast_shapes(value.shape, images.shape)
    except RuntimeError as exc:
        raise ValueError(f"baseline of shape {tuple(value.shape)} does not broadcast to the images {tuple(images.shape)}") from exc
    return value.expand_as(images)


def _checked(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, steps: int, batch_size: int,
             baseline: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The arguments of a curve, checked: the images, each one's pixel importance (N, H, W), the fill."""
    images = check_inputs(model, images)
    check_positive_int(steps, "steps", "deletion steps; the curve has steps + 1 points")
    check_positive_int(batch_size, "batch_size", "masked images per forward pass")
    importance = pixel_importance(maps, tuple(images.shape[2:])).to(images.device)
    if importance.shape[0] != images.shape[0]:
        raise ValueError(f"maps has {importance.shape[0]} maps for {images.shape[0]} images; give one per image")
    return images, importance, _check_baseline(baseline, images)


def deletion_curve(
    model: nn.Module,
    images: torch.Tensor,
    target: int | torch.Tensor | None,
    maps: torch.Tensor,
    steps: int = 32,
    mode: str = "deletion",
    baseline: float | torch.Tensor = 0.0,
    batch_size: int = 64,
    output: Output = None,
) -> DeletionCurve:
    """Delete (``mode="deletion"``: set to ``baseline``) or reveal (``"insertion"``: copy onto ``baseline``) the
    pixels of ``images`` (all channels at a location) in descending order of ``maps`` ((N, H, W), or (N, C, H, W)
    read as max |.| over channels), ``round(k * H * W / steps)`` of them at step k = 0..steps, and record the
    softmax probability of ``target`` (default: the class predicted for the whole image). ``output``: where the
    scores are in a model's output that is not a tensor (see ``methods.targets``).

        curve = deletion_curve(model, x, y, saliency(model, x, y).abs().amax(1))
        curve.auc   # lower is better for deletion, higher for insertion
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    images, importance, fill = _checked(model, images, maps, steps, batch_size, baseline)
    count, _, height, width = images.shape
    pixels = height * width
    ranks = pixel_ranks(importance).view(count, 1, height, width)
    removed = _removed(steps, pixels).to(images.device)
    which = torch.arange((steps + 1) * count, device=images.device)  # row j: step j // N, image j % N
    probabilities: list[torch.Tensor] = []
    with torch.inference_mode(), preserved_state(model):
        model.eval()
        for start in range(0, len(which), batch_size):
            rows = which[start : start + batch_size]
            step, image = rows // count, rows % count
            hidden = ranks[image] < removed[step].view(-1, 1, 1, 1)  # (B, 1, H, W): the pixels already ranked
            if mode == "deletion":
                batch = torch.where(hidden, fill[image], images[image])
            else:
                batch = torch.where(hidden, images[image], fill[image])
            probabilities.append(check_scores(model(batch), len(batch), output).float().softmax(dim=1))
    every = torch.cat(probabilities).view(steps + 1, count, -1)
    whole = every[0] if mode == "deletion" else every[-1]  # the untouched images
    targets = resolve_targets(target, whole)
    return _curve(every, targets, removed.float() / pixels)


class SharedCurves(NamedTuple):
    """The four curves of one map's check (:func:`shared_curves`)."""

    deletion: DeletionCurve
    insertion: DeletionCurve
    random_deletion: DeletionCurve
    random_insertion: DeletionCurve


def shared_curves(
    model: nn.Module,
    images: torch.Tensor,
    target: int | torch.Tensor | None,
    maps: torch.Tensor,
    steps: int = 32,
    baseline: float | torch.Tensor = 0.0,
    seed: int = 0,
    batch_size: int = 128,
    output: Output = None,
) -> SharedCurves:
    """Deletion and insertion along ``maps`` and along a random order, as :func:`deletion_curve` draws each,
    with every masked image that two curves share put through the model once: the whole image (deletion's
    first point, insertion's last) and the blank one, and the random order's insertion, which reveals the
    pixels in the reverse of the random deletion's order (a random order as well), so that revealing k pixels
    is deleting the other P - k: 3 S - 1 forwards an image instead of 4 (S + 1)."""
    images, importance, fill = _checked(model, images, maps, steps, batch_size, baseline)
    count, _, height, width = images.shape
    pixels = height * width
    removed = _removed(steps, pixels).tolist()
    ranked = {"map": pixel_ranks(importance).view(count, 1, height, width),
              "random": pixel_ranks(random_maps(images, seed)).view(count, 1, height, width)}

    def key(order: str, deleted: int) -> tuple:  # what the model sees: the top ``deleted`` of ``order`` blank
        return ("whole",) if deleted == 0 else ("blank",) if deleted == pixels else (order, deleted)

    def revealed(shown: int) -> tuple:  # insertion along the map: its own masks
        return ("whole",) if shown == pixels else ("blank",) if shown == 0 else ("reveal", shown)

    curves = {
        "deletion": [key("map", k) for k in removed],
        "insertion": [revealed(k) for k in removed],
        "random_deletion": [key("random", k) for k in removed],
        "random_insertion": [key("random", pixels - k) for k in removed],  # reversed order: reveal k = delete P - k
    }
    keys = list(dict.fromkeys(k for row in curves.values() for k in row))
    probabilities: list[torch.Tensor] = []
    rows = [(k, n) for k in keys for n in range(count)]
    with torch.inference_mode(), preserved_state(model):
        model.eval()
        for start in range(0, len(rows), batch_size):
            batch = torch.stack([_masked(images[n], fill[n], ranked, k, n) for k, n in rows[start : start + batch_size]])
            probabilities.append(check_scores(model(batch), len(batch), output).float().softmax(dim=1))
    every = torch.cat(probabilities).view(len(keys), count, -1)
    where = {k: i for i, k in enumerate(keys)}
    targets = resolve_targets(target, every[where[("whole",)]])
    fractions = torch.tensor(removed, dtype=torch.float32, device=images.device) / pixels

    return SharedCurves(*(_curve(every[[where[k] for k in row]], targets, fractions) for row in curves.values()))


def _removed(steps: int, pixels: int) -> torch.Tensor:
    """(S + 1,) int64: how many pixels are deleted (or revealed) at step k, round(k P / S), halves up."""
    return (torch.arange(steps + 1) * pixels * 2 + steps) // (2 * steps)


def _curve(every: torch.Tensor, targets: torch.Tensor, fractions: torch.Tensor) -> DeletionCurve:
    """The curve of ``every`` (S + 1, N, classes) softmax probabilities at each image's target."""
    probability = every.gather(2, targets.view(1, -1, 1).expand(len(every), -1, 1))[..., 0]
    return DeletionCurve(fractions, probability, torch.trapezoid(probability, fractions, dim=0))


def _masked(image: torch.Tensor, fill: torch.Tensor, ranked: dict, key: tuple, n: int) -> torch.Tensor:
    if key[0] == "whole":
        return image
    if key[0] == "blank":
        return fill
    if key[0] == "reveal":
        return torch.where(ranked["map"][n] < key[1], image, fill)
    return torch.where(ranked[key[0]][n] < key[1], fill, image)
