"""What every streamed pass over a data set shares: reading a batch as data loaders give it, the forward in
the fastest memory layout, the progress bar, and thumbnails of the images kept for display.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ._hooks import ForwardStopped

PROGRESS_DELAY_S = 2.0  #: a bar appears only when the work takes longer than this


def split_batch(batch: object) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """A batch as data loaders give them: images, (images, labels) or (images, labels, index)."""
    if isinstance(batch, torch.Tensor):
        return batch, None, None
    if isinstance(batch, (tuple, list)) and 1 <= len(batch) <= 3:
        parts = list(batch) + [None] * (3 - len(batch))
        return parts[0], parts[1], parts[2]
    raise TypeError(
        "data must yield image tensors, (images, labels) or (images, labels, index) batches; "
        f"got {type(batch).__name__}" + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
    )


#: Feed CPU models channels-last in the streamed passes (see :class:`LayoutForward`); set False for a model
#: that reads raw memory (``as_strided``, ``data_ptr`` in an extension), which the layout would change silently
CPU_CHANNELS_LAST = True


class LayoutForward:
    """``model(images)`` with the images channels-last on the CPU, where oneDNN's convolutions run fastest in
    that layout (resnet18 at 64 px: forward 1.4x faster, at 1 and 2 threads); as given on an accelerator, for
    inputs that are not (N, C, H, W), and with ``CPU_CHANNELS_LAST`` off. A model that cannot take it (a
    ``.view`` of a map, which needs contiguous memory; its own check of the layout) raises on its first batch:
    that batch is run again as given (its forward hooks see the batch twice), and so is every later one. The
    layout changes no value beyond float rounding for models that index tensors (every torch op does); one that
    reads raw memory needs ``CPU_CHANNELS_LAST = False``."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.channels_last: bool | None = None if CPU_CHANNELS_LAST else False  # None: not tried yet

    def __call__(self, images: torch.Tensor, before_retry=None) -> Any:
        """The forward; ``before_retry`` is called before a batch runs again as given (to forget what hooks
        saw of the failed forward). A hook's :class:`.ForwardStopped` is let through: the layout worked as
        far as the forward went."""
        if self.channels_last is False or images.dim() != 4 or images.device.type != "cpu":
            return self.model(images)
        try:
            output = self.model(images.contiguous(memory_format=torch.channels_last))
        except ForwardStopped:
            self.channels_last = True
            raise
        except Exception:
            if self.channels_last:
                raise  # it ran in this layout before: the error is the model's own
            self.channels_last = False
            if before_retry is not None:
                before_retry()
            return self.model(images)
        self.channels_last = True
        return output


def bar_options(show: bool | None) -> dict[str, Any]:
    """tqdm's keyword arguments for a bar: ``show=True`` always draws it, ``False`` never; ``None`` leaves it to
    tqdm's own rules -- ``TQDM_DISABLE`` (and any other ``TQDM_*`` variable) is honoured, and output that is not
    a terminal (CI, ``nohup``) gets no bar -- drawn only when the work takes over two seconds. An argument passed
    to tqdm beats its environment variable, so the ones the user set in the environment are not passed."""
    if show is False:
        return {"disable": True}
    if show is True:
        return {"disable": False, "delay": 0, "leave": False}
    defaults = {"disable": None, "delay": PROGRESS_DELAY_S, "leave": False}
    return {name: value for name, value in defaults.items() if f"TQDM_{name.upper()}" not in os.environ}


def progress(data: Iterable, description: str, show: bool | None = None) -> Iterator:
    """``data`` with a tqdm bar: None shows it when the pass takes over two seconds (on a terminal, unless
    ``TQDM_DISABLE`` is set), True always, False never (see :func:`bar_options`)."""
    return iter(tqdm(data, desc=description, unit="batch", **bar_options(show)))


def thumbnails(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) pixels in [0, 1] -> (B, C, size, size) uint8, area-averaged (no aliasing)."""
    small = F.interpolate(pixels.float(), size=(size, size), mode="area") if pixels.shape[-2:] != (size, size) else pixels.float()
    return (small.clamp(0, 1) * 255).round().to(torch.uint8)
