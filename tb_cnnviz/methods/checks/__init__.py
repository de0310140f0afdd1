"""Can a map be trusted: Adebayo et al.'s model-randomisation sanity check, Petsiuk et al.'s deletion and
insertion curves, and the pointing game and mass in mask against object masks."""

from .deletion import DeletionCurve, deletion_curve, random_maps
from .localization import mass_in_mask, pointing_game
from .randomization import RandomizationCheck, randomizable_layers, randomization_check, spearman

__all__ = [
    "DeletionCurve", "RandomizationCheck", "deletion_curve", "mass_in_mask", "pointing_game", "random_maps",
    "randomizable_layers", "randomization_check", "spearman",
]
