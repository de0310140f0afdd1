"""Views over a data set, streamed: each channel's top patches (with their receptive fields) and the t-SNE
embedding of CNN codes."""

from .embedding import Codes, code_layer, collect_codes, embed, grid_layout, nearest_neighbours, neighbour_preservation
from .receptive_field import (
    ReceptiveField,
    default_layer,
    feeding_conv,
    measured_field,
    receptive_field,
    spatial_layers,
)
from .top_activations import TopActivations, merge_top, random_directions, top_activations

__all__ = [
    "Codes", "ReceptiveField", "TopActivations", "code_layer", "collect_codes", "default_layer", "embed", "feeding_conv", "grid_layout",
    "measured_field", "spatial_layers",
    "merge_top", "nearest_neighbours", "neighbour_preservation", "random_directions", "receptive_field", "top_activations",
]
