"""What the layers hold: activation snapshots, dead-filter monitoring (activation health), filter weights."""

from .dead_filters import DEFAULT_THRESHOLD, DeadFilterMonitor, DeadReport, dead_maps
from .filters import NOISE_THRESHOLD, high_frequency_share, noise_score
from .maps import ActivationSnapshot, layer_activations, snapshot

__all__ = [
    "ActivationSnapshot", "DEFAULT_THRESHOLD", "DeadFilterMonitor", "DeadReport", "NOISE_THRESHOLD",
    "dead_maps", "high_frequency_share", "layer_activations", "noise_score", "snapshot",
]
