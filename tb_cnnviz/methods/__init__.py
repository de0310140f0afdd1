"""Pure torch methods: functions over a model and tensors, no TensorBoard, no I/O, no global state.

Every function that runs the model leaves it as found: hooks removed, modes, ``requires_grad``,
gradients, buffers and RNG state restored, also when it raises.
"""

from ._hooks import conv_layers, default_layers, preserved_state, relu_layers
from .activations import ActivationSnapshot, layer_activations, snapshot
from .dead_filters import DEFAULT_THRESHOLD, DeadFilterMonitor, DeadReport, dead_maps
from .filters import NOISE_THRESHOLD, high_frequency_share, noise_score

__all__ = [
    "ActivationSnapshot",
    "DEFAULT_THRESHOLD",
    "DeadFilterMonitor",
    "DeadReport",
    "NOISE_THRESHOLD",
    "conv_layers",
    "dead_maps",
    "default_layers",
    "high_frequency_share",
    "layer_activations",
    "noise_score",
    "preserved_state",
    "relu_layers",
    "snapshot",
]
