"""Pure torch methods: functions over a model and tensors, no TensorBoard, no I/O, no global state.

One sub-package per family: ``activations`` (snapshots, health, filters), ``attribution`` (gradient maps,
Grad-CAM, occlusion), ``dataset`` (top patches, receptive fields, embedding), ``synthesis`` (inversion, class
models, channel images, correspondence) and ``evaluation``; shared hook and input helpers live at this level.

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
from .dataset import (
    Codes, ReceptiveField, TopActivations, collect_codes, embed, feeding_conv, grid_layout, merge_top,
    nearest_neighbours, neighbour_preservation, random_directions, receptive_field, top_activations,
)
from .evaluation import (
    Evaluation, WrongExample, accuracy_by, calibration, class_metrics, confused_pairs, confusion_matrix, evaluate,
    image_attributes, micro_histograms, pr_curve_classes, pr_curve_counts, saliency_concentration, wilson_interval,
)
from .synthesis import Correspondence, Inversion, Visualization, channel_visualization, class_model, correspondence, invert

__all__ = [
    "ActivationSnapshot",
    "Codes",
    "Correspondence",
    "DEFAULT_THRESHOLD",
    "DeadFilterMonitor",
    "DeadReport",
    "Evaluation",
    "GradCam",
    "Inversion",
    "NOISE_THRESHOLD",
    "ReceptiveField",
    "TopActivations",
    "Visualization",
    "WrongExample",
    "accuracy_by",
    "calibration",
    "channel_visualization",
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
    "last_conv_name",
    "layer_activations",
    "merge_top",
    "micro_histograms",
    "nearest_neighbours",
    "neighbour_preservation",
    "noise_score",
    "occlusion",
    "occlusion_grid",
    "pr_curve_classes",
    "pr_curve_counts",
    "preserved_state",
    "random_directions",
    "receptive_field",
    "relu_layers",
    "saliency",
    "saliency_concentration",
    "smoothgrad",
    "snapshot",
    "top_activations",
    "wilson_interval",
]
