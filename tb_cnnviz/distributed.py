"""Logging under ``torch.distributed`` (DDP): rank 0 writes; whole-data statistics are reduced over ranks first.

Each rank sees only its shard of the data, so a dead-filter rate or a top-k list computed on one rank describes a
shard, not the data set. The few views that summarise the training data are therefore *collective*: every rank
calls them, in the same order, and they reduce over ranks before rank 0 writes (the per-channel dead counts by
one ``all_reduce`` of a single int64 vector, on the device; the top-k candidates by a ``gather`` to rank 0 and an
exact merge). Every other view looks at the model and fixed probe images only, does no collective, and is a no-op
on ranks other than 0, so rank 0 alone may call it without the others waiting.

Outside an initialised process group of more than one rank, everything here is the identity: a single-process
user's code and output do not change.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

from .methods.dataset.top_activations import TopActivations, merge_top

WRITER_RANK = 0


def world() -> tuple[int, int]:
    """(this process's rank, world size); (0, 1) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_distributed() -> bool:
    return world()[1] > 1


def _wire_device() -> torch.device:
    """Where a collective's tensors must live: NCCL moves CUDA tensors only; gloo (and MPI) CPU ones, and
    gloo's gather takes no CUDA tensor. The copy happens once per flush, not per step."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(vector: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``vector`` over ranks (same shape on every rank), on ``vector``'s device.

    Collective: every rank calls it. The identity in a single process."""
    if not is_distributed():
        return vector
    wire = vector.to(_wire_device(), copy=True)
    dist.all_reduce(wire, op=dist.ReduceOp.SUM)
    return wire.to(vector.device)


def gather_to_writer(tensors: Sequence[torch.Tensor]) -> list[list[torch.Tensor]] | None:
    """Each tensor of every rank (same shapes and dtypes on every rank), on rank 0 as ``[tensor][rank]`` on the
    CPU; ``None`` on the other ranks. Collective: every rank calls it with the same tensors' shapes."""
    rank, size = world()
    if size == 1:
        return [[t] for t in tensors]
    gathered = []
    for tensor in tensors:
        wire = tensor.to(_wire_device()).contiguous()
        slots = [torch.empty_like(wire) for _ in range(size)] if rank == WRITER_RANK else None
        dist.gather(wire, gather_list=slots, dst=WRITER_RANK)
        gathered.append([slot.cpu() for slot in slots] if slots is not None else [])
    return gathered if rank == WRITER_RANK else None


def gather_top(result: TopActivations) -> TopActivations | None:
    """Every rank's top k (over its shard) merged exactly on rank 0; ``None`` on the other ranks.

    Exact because a unit's k best over the union of the shards are among the k best of each shard. Image
    indices are the ones the data gave (pass (images, labels, index) batches with data set indices, as a
    ``DistributedSampler`` yields them through a dataset returning its index), so ranks' images do not collide.
    Collective: every rank calls it, with the same layer, k, image size and ranking (a relevance ranking's
    explained classes travel with it; the target recorded is rank 0's)."""
    if not is_distributed():
        return result
    optional = [name for name in ("wholes", "classes") if getattr(result, name) is not None]
    fields = [result.values, result.image, result.position, result.patches]
    fields += [getattr(result, name) for name in optional]
    gathered = gather_to_writer(fields)
    if gathered is None:
        return None
    values, image, position, patches = gathered[:4]
    extra = {name: gathered[4 + j] for j, name in enumerate(optional)}
    none = [None] * len(values)
    parts = [
        TopActivations(result.layer, v, i, p, c, result.field, result.directions, w, result.input_size,
                       result.rank, k, result.target)
        for v, i, p, c, w, k in zip(values, image, position, patches, extra.get("wholes", none),
                                    extra.get("classes", none))
    ]
    return merge_top(parts)
