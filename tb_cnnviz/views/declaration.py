"""How a view module declares itself, and what a logging call gets from the run it logs in.

Every ``tb_cnnviz/views/<stem>.py`` ends with one ``VIEW = View(...)``: its stem (the kind it writes, the
line of ``views/registry.py``), its logging functions -- each ``log_<...>(run, *, step, ...)`` with keyword-only
parameters, mirrored by a documented :class:`~tb_cnnviz.CNNViz` method of the same name and signature (a test
holds them equal) -- and how ``tb-cnnviz analyze`` logs it. The facade, ``analyze`` and the tests take what
they need from that declaration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..methods._hooks import check_images
from ..methods.attribution.grad_cam import last_conv_name
from ..methods.synthesis.activation_maximization import check_size
from ..methods.streaming import split_batch
from ..methods.targets import Output
from ..sink import Sink
from .map_stability import MapHistory


@dataclass(frozen=True)
class Scheduled:
    """A logging call ``autolog`` makes by itself: its name (``cnnviz/cost/<name>``), the call on a run at a step
    (with the data set, for the views that read one), and its cost before one is measured, in forward passes
    of the probe batch (a backward counts two), so that its first call waits until its share of the budget
    covers it."""

    name: str
    log: Callable[["LoggingRun", int, Any], Any]
    passes: Callable[["LoggingRun", Any], float]
    needs_data: bool = False
    collective: bool = False  #: every DDP rank must make the call (autolog, on rank 0 alone, leaves it out there)


@dataclass(frozen=True)
class View:
    """One view, as the Python side knows it."""

    stem: str
    calls: tuple[Callable[..., Any], ...] = ()  #: its logging functions; CNNViz has a method of each one's name
    analyze: Callable[[Any], None] | None = None  #: logs it in ``tb-cnnviz analyze`` (given the Analysis)
    opt_in: bool = False  #: analyze logs it only when asked (``--views <stem>`` or ``all``): slow
    analyze_names: tuple[str, ...] = ()  #: its former ``--views`` names, still accepted
    folder_classes: bool = False  #: analyze reads the image folder's subfolder i as the model's class i
    autolog: tuple[Scheduled, ...] = ()  #: what ``CNNViz.autolog`` logs of it, and at what estimated cost


def data_images(data: Any, default: int = 1000) -> int:
    """How many images ``data`` holds, without reading it (a generator would be used up): a loader's data
    set length, or a list of batches' length times its first batch's; ``default`` when it cannot be told."""
    dataset = getattr(data, "dataset", None)
    try:
        if dataset is not None:
            return len(dataset)
        return len(data) * len(split_batch(data[0])[0])
    except (TypeError, IndexError, KeyError):
        return default


@dataclass
class LoggingRun:
    """What a logging call gets from the :class:`~tb_cnnviz.CNNViz` it runs in: where to write, the model and
    the probe images with their labels, and the bounds of each picture."""

    sink: Sink
    model: nn.Module
    probe_images: torch.Tensor | None = None
    probe_labels: list[int] | None = None
    layers: list[str] | None = None
    max_channels: int = 64
    max_size: int = 56
    max_filters: int = 64
    max_inputs: int = 16
    output: Output = None  #: where the class scores are in the model's output (see ``methods.targets``)
    _cam_layer: str | None = field(default=None, repr=False)
    #: each map's previous call, for its stability (map_stability.py); autolog's worker run shares it
    map_history: MapHistory = field(default_factory=MapHistory, repr=False)

    def probe_count(self) -> int:
        """How many probe images a picture view shows (its cost scales with it); 1 without probes."""
        return len(self.probe_images) if self.probe_images is not None else 1

    def images(self, images: torch.Tensor | None) -> torch.Tensor:
        """``images``, checked; the probe images when None."""
        if images is None:
            if self.probe_images is None:
                raise ValueError("no images to show: pass images=... or give CNNViz probe_images=...")
            return self.probe_images
        return check_images(images)

    def labels_of(self, images: torch.Tensor) -> list[int] | None:
        """The probe labels when ``images`` are the probe images; other images come without labels."""
        return self.probe_labels if images is self.probe_images else None

    def input_size(self, size: Sequence[int] | None) -> tuple[int, int, int]:
        """``size`` (C, H, W), checked; the probe images' size when None."""
        if size is not None:
            return check_size(size)
        if self.probe_images is None:
            raise ValueError("no input size: pass size=(channels, height, width) or give CNNViz probe_images=...")
        return tuple(self.probe_images.shape[1:])

    def cam_layer(self, images: torch.Tensor) -> str:
        """Grad-CAM's layer, the last conv the forward runs: found once (one forward of one image), then kept."""
        if self._cam_layer is None:
            self._cam_layer = last_conv_name(self.model, images)
        return self._cam_layer
