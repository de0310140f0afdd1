"""Pure torch methods: functions over a model and tensors, no TensorBoard, no I/O, no global state.

Every function that runs the model leaves it as found: hooks removed, modes, ``requires_grad``,
gradients, buffers and RNG state restored, also when it raises.
"""

from ._hooks import conv_layers, default_layers, preserved_state, relu_layers
from .activations import ActivationSnapshot, layer_activations, snapshot
from .dead_filters import DEFAULT_THRESHOLD, DeadFilterMonitor, DeadReport, dead_maps
from .filters import NOISE_THRESHOLD, high_frequency_share, noise_score
from .grad_cam import GradCam, grad_cam, guided_grad_cam, last_conv_name
from .gradients import deconvnet, guided_backprop, input_gradient, saliency, smoothgrad
from .occlusion import occlusion, occlusion_grid

__all__ = [
    "ActivationSnapshot",
    "DEFAULT_THRESHOLD",
    "DeadFilterMonitor",
    "DeadReport",
    "GradCam",
    "NOISE_THRESHOLD",
    "conv_layers",
    "dead_maps",
    "deconvnet",
    "default_layers",
    "grad_cam",
    "guided_backprop",
    "guided_grad_cam",
    "high_frequency_share",
    "input_gradient",
    "last_conv_name",
    "layer_activations",
    "noise_score",
    "occlusion",
    "occlusion_grid",
    "preserved_state",
    "relu_layers",
    "saliency",
    "smoothgrad",
    "snapshot",
]
