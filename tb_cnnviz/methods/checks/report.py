"""All the checks of one map at once, as the logger shows them beside it: the cascading randomisation, the
deletion and insertion curves of the map and of a random order, and, where object masks are known, the pointing
game and mass in mask; with a verdict per image.

The verdicts: a map *passes the sanity check* when it moves away from the trained model's as the layers are
re-drawn: its Spearman rank correlation with it, averaged over the cascade (the area under Adebayo et al.'s
curve), is below :data:`SANITY_THRESHOLD`. On the demo's shapes net the gradient averages about 0.4, Grad-CAM
about 0, guided backprop about 0.6 (it stays near 0.9 after the logits layer: Adebayo et al.'s finding). A
heuristic, not a test of significance: the numbers go beside the badge. A map *beats the random order* when
deleting its top pixels lowers the probability faster (lower deletion AUC) and revealing them raises it faster
(higher insertion AUC) than a random order of the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .deletion import DeletionCurve, shared_curves
from .localization import mass_in_mask, pointing_game
from ..targets import Output
from .randomization import MapFunction, RandomizationCheck, randomization_check

#: a map whose similarity, averaged over the cascade, stays at or above this has not passed the sanity check
SANITY_THRESHOLD = 0.5


@dataclass(frozen=True)
class MapChecks:
    randomization: RandomizationCheck
    deletion: DeletionCurve
    insertion: DeletionCurve
    random_deletion: DeletionCurve
    random_insertion: DeletionCurve
    pointing: torch.Tensor | None = None  #: (N,) bool hits, when masks were given
    mass: torch.Tensor | None = None  #: (N,) share of the map's mass on the object, when masks were given

    @property
    def sane(self) -> torch.Tensor:
        """(N,) bool: the map moved away from the trained model's as the layers were re-drawn."""
        return self.randomization.similarity.mean(dim=0) < SANITY_THRESHOLD

    @property
    def beats_random(self) -> torch.Tensor:
        """(N,) bool: lower deletion AUC and higher insertion AUC than the random order."""
        return (self.deletion.auc < self.random_deletion.auc) & (self.insertion.auc > self.random_insertion.auc)


def check_map(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    method: str | MapFunction,
    maps: torch.Tensor,
    importance: torch.Tensor | None = None,
    masks: torch.Tensor | None = None,
    steps: int = 32,
    baseline: float = 0.0,
    seed: int = 0,
    output: Output = None,
    at_most: int | None = None,
    **options: object,
) -> MapChecks:
    """Every check of ``maps`` (what ``method`` gave for ``targets``): ``importance`` (N, H, W) is the per-pixel
    order for the curves and the masks when it is not ``maps`` itself (occlusion's grid of probabilities);
    ``options`` go to :func:`randomization_check`; ``output``: where the scores are in a model's output that is not
    a tensor (see ``methods.targets``); ``at_most``: layers compared by the randomisation (see there). The four
    curves share their forwards (:func:`shared_curves`)."""
    order = maps if importance is None else importance
    randomization = randomization_check(model, images, targets, method, seed=seed, maps=maps, output=output,
                                        at_most=at_most, **options)
    curves = shared_curves(model, images, targets, order, steps=steps, baseline=baseline, seed=seed, output=output)
    located = {}
    if masks is not None:
        located = {"pointing": pointing_game(order, masks), "mass": mass_in_mask(order, masks)}
    return MapChecks(randomization, curves[0], curves[1], curves[2], curves[3], **located)
