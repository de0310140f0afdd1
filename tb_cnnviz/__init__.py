"""tb_cnnviz: see what a PyTorch CNN learns, in TensorBoard's CNNVIZ tab.

    viz = tb_cnnviz.CNNViz(model, writer, probe_images=x, probe_labels=y)
    viz.watch_dead_filters(every=100)
    ...; viz.step(step); viz.log_activations(step); viz.log_filters(step)
    viz.log_saliency(step, method="grad_cam"); viz.log_occlusion(step); viz.log_performance(val_loader, step)

The techniques are also plain functions over a model and tensors in :mod:`tb_cnnviz.methods`.
"""

from . import methods
from .logger import CNNViz, DeadFilterWarning, LoggingFailedWarning
from .methods import DeadFilterMonitor
from .summary import StorageFailedWarning

__version__ = "0.1.0"

__all__ = ["CNNViz", "DeadFilterMonitor", "DeadFilterWarning", "LoggingFailedWarning", "StorageFailedWarning", "methods", "__version__"]
