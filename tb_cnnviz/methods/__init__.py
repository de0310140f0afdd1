"""Pure torch methods: functions over a model and tensors, no TensorBoard, no I/O, no global state.

One sub-package per family: ``activations`` (snapshots, health, filters), ``attribution`` (gradient maps,
Grad-CAM, occlusion), ``dataset`` (top patches, receptive fields, embedding), ``synthesis`` (inversion, class
models, channel images, correspondence), ``evaluation`` and ``checks`` (can a map be trusted); shared hook
and input helpers live at this level.

Every function that runs the model leaves it as found: hooks removed, modes, ``requires_grad``,
gradients, buffers and RNG state restored, also when it raises.
"""

from ._hooks import conv_layers, default_layers, preserved_state, relu_layers
from .activations import (
    DEFAULT_THRESHOLD, NOISE_THRESHOLD, ActivationSnapshot, DeadFilterMonitor, DeadReport, dead_maps,
    high_frequency_share, layer_activations, noise_score, snapshot,
)
from .attribution import (
    GradCam, deconvnet, grad_cam, guided_backprop, guided_grad_cam, input_gradient, last_conv_name, occlusion,
    occlusion_grid, saliency, smoothgrad,
)
from .checks import (
    SANITY_THRESHOLD, DeletionCurve, MapChecks, RandomizationCheck, check_map, deletion_curve, mass_in_mask,
    occlusion_importance, pointing_game, random_maps, randomizable_layers, randomization_check,
    rank_correlation, spearman,
)
from .dataset import (
    Codes, ReceptiveField, TopActivations, collect_codes, embed, feeding_conv, grid_layout, merge_top,
    nearest_neighbours, neighbour_preservation, random_directions, receptive_field, top_activations,
)
from .evaluation import (
    Evaluation, WrongExample, accuracy_by, calibration, class_metrics, confused_pairs, confusion_matrix, evaluate,
    image_attributes, micro_histograms, pr_curve_classes, pr_curve_counts, saliency_concentration, wilson_interval,
)
from .synthesis import (Correspondence, ImageParameterization, Inversion, Visualization, channel_visualization,
                        class_model, colour_correlation_sqrt, composite, correspondence, invert,
                        invert_layers, random_background, random_transform)

__all__ = [
    "ActivationSnapshot",
    "Codes",
    "Correspondence",
    "DEFAULT_THRESHOLD",
    "DeadFilterMonitor",
    "DeadReport",
    "DeletionCurve",
    "MapChecks",
    "Evaluation",
    "GradCam",
    "Inversion",
    "NOISE_THRESHOLD",
    "RandomizationCheck",
    "ReceptiveField",
    "SANITY_THRESHOLD",
    "TopActivations",
    "Visualization",
    "WrongExample",
    "accuracy_by",
    "calibration",
    "channel_visualization",
    "check_map",
    "class_model",
    "class_metrics",
    "collect_codes",
    "confused_pairs",
    "confusion_matrix",
    "conv_layers",
    "correspondence",
    "dead_maps",
    "deconvnet",
    "default_layers",
    "deletion_curve",
    "embed",
    "evaluate",
    "feeding_conv",
    "grad_cam",
    "grid_layout",
    "guided_backprop",
    "guided_grad_cam",
    "high_frequency_share",
    "image_attributes",
    "input_gradient",
    "invert",
    "invert_layers",
    "ImageParameterization",
    "colour_correlation_sqrt",
    "random_transform",
    "random_background",
    "composite",
    "last_conv_name",
    "layer_activations",
    "mass_in_mask",
    "merge_top",
    "micro_histograms",
    "nearest_neighbours",
    "neighbour_preservation",
    "noise_score",
    "occlusion",
    "occlusion_grid",
    "occlusion_importance",
    "pointing_game",
    "pr_curve_classes",
    "pr_curve_counts",
    "preserved_state",
    "random_directions",
    "random_maps",
    "randomizable_layers",
    "randomization_check",
    "rank_correlation",
    "receptive_field",
    "relu_layers",
    "saliency",
    "saliency_concentration",
    "smoothgrad",
    "snapshot",
    "spearman",
    "top_activations",
    "wilson_interval",
]
