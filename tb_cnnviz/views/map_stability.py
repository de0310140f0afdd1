"""How stable each map of "Where it looks" is over training: each probe image's map against its map at the
previous logged step of the same method, as a Spearman rank correlation (a map that still jumps late in
training says the model, or the method, has not settled). A helper of the attribution view
(``attribution.py``), like map_checks.py, not a view of its own.

The previous maps live in memory, in the run's :class:`MapHistory` (per map name: its step, settings, images,
classes and the maps' ranks), so a run resumed in a new process, new images, another explained class or
other settings give no point rather than a wrong one; each image's reason goes beside its null. Written in
the map's meta as ``stability`` (per image, in probe order) and as the mean over images, the scalar
``cnnviz/map_stability/<map>``, for the Scalars tab.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass

import torch

from .. import summary
from ..methods.checks.rank_correlation import correlation_of_ranks, standardized_ranks

NO_EARLIER_MAP = "no earlier map of this method (the first logged step, or a resumed run: kept in memory)"
IMAGE_CHANGED = "another image than at the previous step"
CLASS_CHANGED = "explains another class than at the previous step"
STEP_NOT_AFTER = "the previous call was at this step or a later one (a step logged again, or a run gone back)"
NOT_RANKABLE = "NaN in the map, or every pixel equal, here or at the previous step: no order to compare"


@dataclass(frozen=True)
class _Seen:
    step: int
    settings: tuple
    images: tuple[bytes, ...]  #: a digest per image
    targets: tuple[int, ...]
    size: tuple[int, ...]  #: one map's shape
    ranks: torch.Tensor  #: (N, H * W) the maps' standardized ranks, float32 on the CPU (NaN: not rankable)


class MapHistory:
    """Each map's latest logging call, per map name (``grad_cam``, ``smoothgrad(saliency)``, ``occlusion``):
    what the next call of the same map is compared with. One per logging run; thread-safe, since autolog may
    log a map from its worker."""

    def __init__(self) -> None:
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()

    def compare(self, name: str, step: int, images: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor,
                settings: tuple = ()) -> dict:
        """The ``stability`` meta of ``maps`` (N, ...) of ``images`` explaining ``targets``, logged at
        ``step`` with ``settings`` (what else decides the map: Grad-CAM's layer, SmoothGrad's noise, the
        occluder), and remember them for the next call. A gradient map (N, C, H, W) is compared as the tab
        draws it, max |.| over the colour channels."""
        values = maps.detach()
        values = values.abs().amax(dim=1) if values.dim() == 4 else values
        ranks = standardized_ranks(values).to(device="cpu", dtype=torch.float32)  # ranked once, used twice
        classes = tuple(int(t) for t in targets.flatten().tolist())
        now = _Seen(int(step), tuple(settings), _digests(images), classes, tuple(values.shape[1:]), ranks)
        with self._lock:
            before = self._seen.get(name)
            self._seen[name] = now  # also after a step back (a resume from a checkpoint): a new timeline
        return _meta(before, now)


def _digests(images: torch.Tensor) -> tuple[bytes, ...]:
    pixels = images.detach().float().cpu().contiguous()
    return tuple(hashlib.blake2b(image.numpy().tobytes(), digest_size=16).digest() for image in pixels)


def _meta(before: _Seen | None, now: _Seen) -> dict:
    count = len(now.images)
    if before is None or before.step >= now.step or before.settings != now.settings \
            or before.size != now.size:
        why = (NO_EARLIER_MAP if before is None else STEP_NOT_AFTER if before.step >= now.step
               else "other settings or map size than at the previous step")
        return {"previous_step": None, "rank_correlation": [None] * count, "why": [why] * count}
    shared = min(count, len(before.images))
    correlation = [math.nan] * count
    if shared:
        correlation[:shared] = correlation_of_ranks(now.ranks[:shared], before.ranks[:shared]).tolist()
    values: list[float | None] = []
    why: list[str | None] = []
    for n in range(count):
        reason = (IMAGE_CHANGED if n >= shared or now.images[n] != before.images[n]
                  else NOT_RANKABLE if math.isnan(correlation[n])
                  else CLASS_CHANGED if now.targets[n] != before.targets[n] else None)
        values.append(None if reason else correlation[n])
        why.append(reason)
    return {"previous_step": before.step, "rank_correlation": values, "why": why}


def stability_scalars(name: str, stability: dict) -> list[summary.Scalar]:
    """The mean rank correlation over the images that have one, ``cnnviz/map_stability/<name>``; none
    without."""
    values = [value for value in stability["rank_correlation"] if value is not None]
    return [summary.Scalar(f"map_stability/{name}", sum(values) / len(values))] if values else []
