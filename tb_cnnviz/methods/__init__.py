"""Pure torch methods: functions over a model and tensors, no TensorBoard, no I/O, no global state.

Every function that runs the model leaves it as found: hooks removed, modes, ``requires_grad``,
gradients, buffers and RNG state restored, also when it raises.
"""

from ._hooks import conv_layers, default_layers, preserved_state, relu_layers
from .activation_maximization import Visualization, channel_visualization, class_model
from .accuracy_stats import accuracy_by, calibration, class_metrics, confusion_matrix, pr_curve_counts, wilson_interval
from .activations import ActivationSnapshot, layer_activations, snapshot
from .correspondence import Correspondence, correspondence
from .dead_filters import DEFAULT_THRESHOLD, DeadFilterMonitor, DeadReport, dead_maps
from .embedding import Codes, collect_codes, embed, grid_layout
from .evaluation import Evaluation, WrongExample, evaluate
from .filters import NOISE_THRESHOLD, high_frequency_share, noise_score
from .grad_cam import GradCam, grad_cam, guided_grad_cam, last_conv_name
from .gradients import deconvnet, guided_backprop, input_gradient, saliency, smoothgrad
from .image_attributes import image_attributes, saliency_concentration
from .inversion import Inversion, invert
from .occlusion import occlusion, occlusion_grid
from .receptive_field import ReceptiveField, feeding_conv, receptive_field
from .top_activations import TopActivations, merge_top, random_directions, top_activations

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
    "noise_score",
    "occlusion",
    "occlusion_grid",
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
