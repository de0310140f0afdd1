"""The map checks beside each map of "Where it looks" (``checks=True``): the numbers of
:func:`tb_cnnviz.methods.checks.check_map` as JSON in the map's own meta (per image, in probe order), and the
mean of each as an ordinary scalar, ``cnnviz/checks/<map>/<number>``, for the Scalars tab. A helper of the
attribution view (``attribution.py``), not a view of its own.
"""

from __future__ import annotations

import torch
from .. import summary
from ..methods.checks import SANITY_THRESHOLD, MapChecks
from ..methods.checks.deletion import DeletionCurve

CHECK_STEPS = 32  #: deletion / insertion steps of each curve
CHECK_LAYERS = 8  #: layers whose re-drawing the randomisation compares, at most (spread over a deeper net)


def check_masks(masks: object, images: torch.Tensor, checks: bool) -> torch.Tensor | None:
    """``masks`` (N, H, W) of the objects in ``images``, only with ``checks=True``; None without masks."""
    if masks is None:
        return None
    if not checks:
        raise ValueError("masks are scored against the maps by the checks: pass checks=True with masks")
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"masks must be a torch.Tensor (N, H, W) of object masks; got {type(masks).__name__}")
    expected = (images.shape[0], *images.shape[2:])
    if tuple(masks.shape) != expected:
        raise ValueError(f"masks must be (N, H, W) = {expected}, one per image; got {tuple(masks.shape)}")
    return masks.to(images.device)


def _curve(found: DeletionCurve) -> dict:
    return {"auc": found.auc.tolist(), "probability": found.probability.T.tolist()}


def checks_meta(checks: MapChecks) -> dict:
    """JSON for the tab: per image (the outer index of every list), in probe order."""
    return {
        "sanity_threshold": SANITY_THRESHOLD,
        "layers": checks.randomization.layers,
        "similarity": checks.randomization.similarity.T.cpu().tolist(),  # per image: one value per re-drawn layer
        "fractions": checks.deletion.fractions.cpu().tolist(),
        "deletion": _curve(checks.deletion),
        "insertion": _curve(checks.insertion),
        "random_deletion": _curve(checks.random_deletion),
        "random_insertion": _curve(checks.random_insertion),
        "pointing": None if checks.pointing is None else checks.pointing.cpu().tolist(),
        "mass": None if checks.mass is None else checks.mass.cpu().tolist(),
        "sane": checks.sane.cpu().tolist(),
        "beats_random": checks.beats_random.cpu().tolist(),
    }


def checks_scalars(name: str, checks: MapChecks) -> list[summary.Scalar]:
    """Each check's mean over the images, as ordinary scalars."""
    numbers = {
        "sanity_similarity": checks.randomization.similarity.mean(),
        "deletion_auc": checks.deletion.auc.mean(),
        "insertion_auc": checks.insertion.auc.mean(),
        "random_deletion_auc": checks.random_deletion.auc.mean(),
        "random_insertion_auc": checks.random_insertion.auc.mean(),
    }
    if checks.pointing is not None:
        numbers["pointing_game"] = checks.pointing.float().mean()
        numbers["mass_in_mask"] = checks.mass.mean()
    return [summary.Scalar(f"checks/{name}/{key}", value.item()) for key, value in numbers.items()]
