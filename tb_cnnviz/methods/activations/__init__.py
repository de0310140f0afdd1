"""What the layers hold: activation snapshots, dead-filter monitoring (activation health), filter weights,
value histograms."""

from .dead_filters import DEFAULT_THRESHOLD, DeadFilterMonitor, DeadReport, dead_maps
from .filters import NOISE_THRESHOLD, high_frequency_share, noise_score
from .histograms import Histogram, activation_histogram, symmetric_log_edges
from .maps import ActivationSnapshot, layer_activations, snapshot

__all__ = [
    "ActivationSnapshot", "DEFAULT_THRESHOLD", "DeadFilterMonitor", "DeadReport", "Histogram", "NOISE_THRESHOLD",
    "activation_histogram", "dead_maps", "high_frequency_share", "layer_activations", "noise_score", "snapshot",
    "symmetric_log_edges",
]
