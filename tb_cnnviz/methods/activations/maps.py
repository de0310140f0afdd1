"""Layer activations for a few probe images: bounded snapshots with per-channel statistics.

A snapshot keeps what the picture needs (at most ``max_channels`` channels, maps at most ``max_size``
pixels on a side) and the statistics of *every* channel, so a 4096-channel layer costs no more to log than
a 64-channel one and nothing is left out silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._hooks import call_name, forward_hooks, model_device, preserved_state, resolve_layers, split_call


@dataclass
class ActivationSnapshot:
    """One layer's output for a batch of probe images, reduced for display."""

    maps: torch.Tensor  #: (N, shown channels, h, w) float32, finite (NaN/Inf replaced by 0 for display)
    channels: list[int]  #: which channels ``maps`` holds, in order
    shape: tuple[int, ...]  #: the layer output's full shape
    source_size: tuple[int, int]  #: (H, W) of the maps before downsampling
    max: torch.Tensor  #: (N, shown) per image and channel
    mean: torch.Tensor  #: (N, shown)
    zero_fraction: torch.Tensor  #: (N, shown) share of exactly-zero values
    dead: list[int]  #: channels (of all) that are all zero for every probe image
    nonfinite: list[int]  #: channels (of all) holding NaN or Inf for some image

    @property
    def channels_total(self) -> int:
        return self.shape[1]

    @property
    def downsampled(self) -> bool:
        return tuple(self.maps.shape[-2:]) != tuple(self.source_size)


def as_maps(output: torch.Tensor) -> torch.Tensor:
    """View any (N, C, ...) output as (N, C, H, W): a vector is 1x1 maps, a sequence a 1-row map."""
    if output.dim() < 2:
        raise ValueError(f"a layer output needs a batch and a channel axis; got shape {tuple(output.shape)}")
    if output.dim() == 2:
        return output[:, :, None, None]
    if output.dim() == 3:
        return output[:, :, None, :]
    return output.flatten(3) if output.dim() > 4 else output


def snapshot(output: torch.Tensor, max_channels: int = 64, max_size: int = 56) -> ActivationSnapshot:
    """Reduce a layer output to an :class:`ActivationSnapshot` (statistics on its device, one copy to CPU).

    Memory: besides the output itself, (N, C) reductions and chunks of at most :data:`CHUNK_VALUES` values --
    no full-size temporary, so a 4096-channel layer or maps of 1024x1024 pixels cost a small fraction of their
    own size. Only shown channels holding NaN/Inf are copied.
    """
    if max_channels < 1 or max_size < 1:
        raise ValueError(f"max_channels and max_size must be >= 1; got {max_channels} and {max_size}")
    maps = as_maps(output.detach())
    maps = maps if maps.dtype == torch.float32 else maps.float()
    n, c, h, w = maps.shape
    hi, lo = maps.amax(dim=(2, 3)), maps.amin(dim=(2, 3))  # (N, C); NaN and +-Inf reach both or one of them
    finite_maps = torch.isfinite(hi) & torch.isfinite(lo)
    zero = ((hi == 0) & (lo == 0)).all(dim=0)
    nonfinite = (~finite_maps).any(dim=0)

    shown = list(range(min(c, max_channels)))
    picked = maps[:, : len(shown)]
    if not bool(finite_maps[:, : len(shown)].all()):  # rare: draw NaN/Inf as 0 (a copy of the shown maps)
        picked = torch.where(torch.isfinite(picked), picked, torch.zeros((), device=maps.device))
        hi = picked.amax(dim=(2, 3))
    zeros = _zero_counts(picked)
    stats = torch.stack([hi[:, : len(shown)], picked.mean(dim=(2, 3)), zeros.float() / (h * w)])
    scale = max_size / max(h, w)
    if scale < 1:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        picked = F.adaptive_avg_pool2d(picked, size)
    elif picked.device.type == "cpu":
        picked = picked.clone()  # the snapshot must not alias the layer's output (an in-place ReLU changes it);
        # on a GPU the .cpu() below is that copy already
    picked, stats, zero, nonfinite = (t.cpu() for t in (picked, stats, zero, nonfinite))
    return ActivationSnapshot(
        maps=picked,
        channels=shown,
        shape=tuple(output.shape),
        source_size=(h, w),
        max=stats[0],
        mean=stats[1],
        zero_fraction=stats[2],
        dead=torch.nonzero(zero).flatten().tolist(),
        nonfinite=torch.nonzero(nonfinite).flatten().tolist(),
    )


#: Values per chunk when counting zeros: a bool compare summed over a whole map is widened to int64 by torch
#: (9 bytes a value); in chunks of 2**20 values that stays at ~9 MiB, one channel at least.
CHUNK_VALUES = 2**20


def _zero_counts(maps: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) -> (N, C) int64: the exact zeros of each map, a few maps at a time."""
    n, c, h, w = maps.shape
    per_chunk = max(1, CHUNK_VALUES // max(1, h * w))
    rows = maps.reshape(n * c, h, w)  # a view for the contiguous outputs of convs
    return torch.cat([(part == 0).sum(dim=(1, 2)) for part in rows.split(per_chunk)]).view(n, c)


def layer_activations(
    model: nn.Module,
    images: torch.Tensor,
    layers: Sequence[str] | None = None,
    max_channels: int = 64,
    max_size: int = 56,
) -> dict[str, ActivationSnapshot]:
    """Run ``images`` through ``model`` in eval mode and snapshot each selected layer, in execution order.

    ``layers`` are module names (default: :func:`default_layers`: every conv and ReLU-like module, or for a
    deep net its first conv and each block's output); a module called several times
    in one forward gives one entry per call, named ``module#1``, ``module#2``, ... The model is left exactly
    as it was found.

    Example::

        acts = layer_activations(model, x[:4], layers=["conv1", "layer1.0.relu"])
        acts["conv1"].maps.shape  # (4, 64, 56, 56)
    """
    modules = resolve_layers(model, layers)
    only_calls = _requested_calls(layers)
    captured: list[tuple[str, int, ActivationSnapshot]] = []
    calls: dict[str, int] = {}

    def keep(name: str, call: int, output: torch.Tensor) -> None:
        calls[name] = max(calls.get(name, 0), call + 1)
        captured.append((name, call, snapshot(output, max_channels, max_size)))

    with preserved_state(model), forward_hooks(model, modules, keep), torch.inference_mode():
        model.eval()
        model(images.to(model_device(model)))
    return {
        call_name(name, call, calls[name]): snap
        for name, call, snap in captured
        if name not in only_calls or call in only_calls[name]
    }


def _requested_calls(layers: Sequence[str] | None) -> dict[str, set[int]]:
    """``["relu#2"]`` -> ``{"relu": {1}}``: the calls asked for by name; modules named plainly get all."""
    wanted: dict[str, set[int]] = {}
    plain: set[str] = set()
    for layer in [layers] if isinstance(layers, str) else layers or []:
        module, call = split_call(layer)
        if call is None:
            plain.add(module)
        else:
            wanted.setdefault(module, set()).add(call)
    return {module: calls for module, calls in wanted.items() if module not in plain}
