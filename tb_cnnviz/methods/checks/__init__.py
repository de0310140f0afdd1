"""Can a map be trusted: Adebayo et al.'s model-randomisation sanity check, Petsiuk et al.'s deletion and
insertion curves, the pointing game and mass in mask against object masks, and the rank correlation that
says how stable a map is over training."""

from .deletion import DeletionCurve, deletion_curve, random_maps
from .importance import occlusion_importance, pixel_importance
from .localization import mass_in_mask, pointing_game
from .randomization import RandomizationCheck, randomizable_layers, randomization_check, spearman
from .rank_correlation import rank_correlation
from .report import SANITY_THRESHOLD, MapChecks, check_map

__all__ = [
    "SANITY_THRESHOLD", "DeletionCurve", "MapChecks", "RandomizationCheck", "check_map", "deletion_curve",
    "mass_in_mask", "occlusion_importance", "pixel_importance", "pointing_game", "random_maps",
    "randomizable_layers", "randomization_check", "rank_correlation", "spearman",
]
