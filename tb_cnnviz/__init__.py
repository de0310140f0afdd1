"""tb_cnnviz: see what a PyTorch CNN learns, in TensorBoard's CNNVIZ tab.

    viz = tb_cnnviz.CNNViz(model, writer, probe_images=x, probe_labels=y)
    viz.watch_dead_filters(every=100)
    ...; viz.step(step); viz.log_activations(step); viz.log_filters(step)
    viz.log_saliency(step, method="grad_cam"); viz.log_occlusion(step); viz.log_performance(val_loader, step)

The techniques are also plain functions over a model and tensors in :mod:`tb_cnnviz.methods`.

Names resolve lazily (PEP 562): TensorBoard imports ``tb_cnnviz.plugin`` at start-up, and that must not pay
for torch and torchvision (seconds and hundreds of MB) in a process that only serves what was logged.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_LAZY = {
    "CNNViz": ".logger",
    "DeadFilterWarning": ".views.dead",
    "LoggingFailedWarning": ".guard",
    "StorageFailedWarning": ".sink",
    "DeadFilterMonitor": ".methods.activations.dead_filters",
}

__all__ = [
    "CNNViz", "DeadFilterMonitor", "DeadFilterWarning", "LoggingFailedWarning", "StorageFailedWarning", "datasets", "methods",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    elif name in ("methods", "datasets"):
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
