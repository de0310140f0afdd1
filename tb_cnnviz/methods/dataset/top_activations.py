"""What a channel responds to across a data set: the k images that activate it most, where, and the input
patch its receptive field covers there (CS231n; Zeiler & Fergus). Also along random directions of the
layer's channel space, Szegedy et al.'s control showing that the unit axes are not special.

One streamed pass, each forward stopped right after the layer (nothing later is needed: resnet18's
``layer2`` costs half a forward); memory O(units x k) (values, image indices, positions and patch thumbnails), never the
data set. Everything stays on the model's device with no host synchronisation per batch: the running top k
is merged with each batch's candidates by ``topk``; on an accelerator patches are cut for every kept slot
with ``roi_align`` and kept only where the slot changed (``torch.where``), so no data-dependent count is
needed, while on the CPU (where waiting costs nothing) only the slots a batch won are cut.

``rank="relevance"`` ranks by what a channel contributes to the class score instead of how strongly it fires
(after zennit-crp's RelMax, Achtibat et al. 2023, with Grad x Input in place of LRP: Captum's
``LayerGradientXActivation``): relevance of channel c in image n is ``sum_hw A[n,c,h,w] * dS/dA[n,c,h,w]``, S
the score (logit) of the image's class, and its patch sits where that product is largest. Still one pass: each
batch one forward and one backward, which stops at the layer (the parameters do not require gradients
meanwhile, so nothing before the layer is recorded and no weight gradient is computed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.ops import roi_align

from .._hooks import ForwardStopped, check_images, check_positive_int, forward_hooks, model_device, preserved_state, split_call, unknown_layer_message
from .receptive_field import ReceptiveField, receptive_field
from ..streaming import progress as streamed
from ..streaming import LayoutForward, split_batch, thumbnails
from ..targets import Output, check_output, check_scores, resolve_targets

MAX_PATCH_PX = 64  #: patches larger than this are averaged down to it
MAX_SAMPLES = 4  #: roi_align samples per output pixel and axis, at most (bounds the cost of huge fields)
RANKS = ("activation", "relevance")  #: what a channel's images are ranked by
TARGETS = ("label", "predicted")  #: whose class score relevance explains (None: the label where given)


@dataclass
class TopActivations:
    """Per unit (a channel, or a direction), its ``k`` strongest images, strongest first."""

    layer: str
    values: torch.Tensor  #: (U, k); -inf in slots not filled (fewer than k images seen)
    image: torch.Tensor  #: (U, k) data set index; -1 in empty slots
    position: torch.Tensor  #: (U, k, 2) (row, column) of the strongest unit on the layer's grid
    patches: torch.Tensor  #: (U, k, C, t, t) uint8: the receptive field's input patch, zero-padded
    field: ReceptiveField
    directions: torch.Tensor | None  #: (D, channels) unit vectors, or None for the channel axes
    wholes: torch.Tensor | None = None  #: (U, k, C, T, T) uint8 whole images, when asked for
    input_size: tuple[int, int] | None = None  #: (H, W) of the images, to scale boxes onto ``wholes``
    rank: str = "activation"  #: what ``values`` are: the strongest activation, or the channel's relevance
    classes: torch.Tensor | None = None  #: (U, k) the class each kept image's relevance explains; -1 empty
    target: str | None = None  #: whose class: "label", "predicted", or "label, else predicted" (mixed data)

    def box(self, unit: int, slot: int) -> tuple[int, int, int, int]:
        """The input box (top, left, bottom, right) of one kept activation."""
        row, col = self.position[unit, slot].tolist()
        return self.field.box(row, col)


def random_directions(channels: int, n: int, seed: int = 0) -> torch.Tensor:
    """(n, channels) random unit vectors (isotropic: normalised Gaussians), from their own generator."""
    if channels < 1 or n < 1:
        raise ValueError(f"channels and n must be positive; got channels={channels}, n={n}")
    vectors = torch.randn(n, channels, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (vectors / vectors.norm(dim=1, keepdim=True)).float()


def patch_geometry(field: ReceptiveField, patch_size: int | None) -> tuple[int, int]:
    """(thumbnail side t, roi_align samples per pixel and axis): the field itself up to 64 px, else
    averaged down to ``patch_size`` (default 64)."""
    size = max(field.size)
    side = patch_size or min(size, MAX_PATCH_PX)
    return side, max(1, min(MAX_SAMPLES, math.ceil(size / side)))


def top_activations(
    model: nn.Module,
    data: Iterable,
    layer: str,
    k: int = 9,
    directions: torch.Tensor | None = None,
    patch_size: int | None = None,
    to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool | None = None,
    cut_every_slot: bool | None = None,
    whole_size: int | None = None,
    rank: str = "activation",
    target: str | None = None,
    output: Output = None,
) -> TopActivations:
    """Stream ``data`` once (batches of images, (images, labels) or (images, labels, index)) and keep, per
    channel of ``layer`` (or per row of ``directions``, (D, channels)), the ``k`` images whose strongest
    position activates it most, with that position and the patch of ``to_pixels(images)`` it sees.

    ``rank="relevance"``: the ``k`` images where the channel contributes most to the class score (see the
    module's docstring), of each image's label (``target="label"``), of the predicted class (``"predicted"``),
    or by default of the label where the batch has labels (zennit-crp's choice) and the prediction elsewhere;
    ``output`` says where the scores are in a model's output that is not a tensor.

    Example::

        fires = top_activations(model, loader, "layer3", k=9)
        matters = top_activations(model, loader, "layer3", k=9, rank="relevance")
    """
    check_positive_int(k, "k")
    check_rank(rank, target, directions)
    output = check_output(output)
    relevance = rank == "relevance"
    field = receptive_field(model, layer)
    module_name, call = split_call(layer)
    modules = dict(model.named_modules())
    if module_name not in modules:
        raise ValueError(unknown_layer_message(model, layer, "layer"))
    device = model_device(model)
    if cut_every_slot is None:
        cut_every_slot = device.type != "cpu"
    side, samples = patch_geometry(field, patch_size)
    state: dict[str, torch.Tensor] = {}
    seen = 0
    captured: list[torch.Tensor] = []
    explained: set[str] = set()  # "label" and/or "predicted": whose scores the relevance explained

    def capture(_name: str, index: int, tensor: torch.Tensor) -> torch.Tensor | None:
        if call is not None and index != call:
            return None
        if tensor.dim() != 4:
            captured[:] = [tensor]  # refused after the forward
        elif relevance:
            feature = tensor.detach().requires_grad_(True)  # the backward stops here
            captured[:] = [feature]
            return feature.clone()  # what runs next (an in-place ReLU) must not change the captured map
        else:  # reduced at once: a later in-place op (a residual `out += identity` into a batch norm's
            # output, an in-place ReLU) changes the map before the forward returns
            captured[:] = [tensor, *_strongest(tensor, directions, layer)]
            raise ForwardStopped  # nothing after the layer is needed (a module that runs several times is named
            # with its call: receptive_field refuses it otherwise)
        return None

    with ExitStack() as stack:
        if relevance:  # a graph from the layer on only: no parameter requires a gradient meanwhile
            stack.enter_context(torch.inference_mode(False))
            stack.enter_context(torch.enable_grad())
        else:
            stack.enter_context(torch.inference_mode())
        stack.enter_context(preserved_state(model))
        stack.enter_context(forward_hooks(model, {module_name: modules[module_name]}, capture))
        model.eval()
        if relevance:
            for param in model.parameters():
                param.requires_grad_(False)
        description = f"top {'relevance' if relevance else 'activations'} of {layer}"
        forward = LayoutForward(model)
        for batch in streamed(data, description, progress):
            images, labels, index = split_batch(batch)
            images = check_images(images, "the data's images").to(device, non_blocking=True)
            count = len(images)
            index = (torch.arange(seen, seen + count, device=device) if index is None
                     else torch.as_tensor(index).to(device, torch.long).flatten())
            seen += count
            captured.clear()
            try:
                raw = forward(images, captured.clear)
            except ForwardStopped:
                pass
            if not captured or captured[0].dim() != 4:
                raise ValueError(f"layer {layer!r} must output (N, C, h, w) maps in the forward")
            classes = None
            if relevance:
                scores = check_scores(raw, count, output)
                classes, whose = _explained_classes(target, labels, scores)
                explained.add(whose)
                maps = _relevance(scores, classes, captured[0])
                best, where = maps.flatten(2).sum(dim=2), maps.flatten(2).argmax(dim=2)
            else:
                maps, best, where = captured
            width = maps.shape[3]
            pixels = (to_pixels(images) if to_pixels is not None else images).detach()
            _merge(state, best.T, where.T, index, width, k, field, pixels, side, samples, cut_every_slot,
                   whole_size, classes)
            input_size = tuple(images.shape[2:])
    if not state:
        raise ValueError("data yielded no batches: nothing to rank")
    whose = None if not relevance else explained.pop() if len(explained) == 1 else "label, else predicted"
    return TopActivations(layer, state["values"].cpu(), state["image"].cpu(), state["position"].cpu(),
                          state["patches"].cpu(), field, directions.cpu() if directions is not None else None,
                          state["wholes"].cpu() if "wholes" in state else None, input_size, rank,
                          state["classes"].cpu() if "classes" in state else None, whose)


def _strongest(maps: torch.Tensor, directions: torch.Tensor | None,
               layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, U) each image's strongest value per channel (or along each of ``directions``), and where."""
    maps = maps.float()
    if directions is not None:
        if directions.dim() != 2 or directions.shape[1] != maps.shape[1]:
            raise ValueError(f"directions must be (D, {maps.shape[1]}) for layer {layer!r}; "
                             f"got {tuple(directions.shape)}")
        maps = torch.einsum("bchw,dc->bdhw", maps, directions.to(maps.device, maps.dtype))
    return maps.flatten(2).max(dim=2)


def check_rank(rank: object, target: object, directions: object = None) -> None:
    """``rank`` and ``target`` as :func:`top_activations` takes them; the error says what is allowed."""
    if rank not in RANKS:
        raise ValueError(f"rank must be 'activation' (the images where a channel fires most) or 'relevance' "
                         f"(where it contributes most to the class score); got {rank!r}")
    if target is not None and target not in TARGETS:
        raise ValueError(f"target must be 'label' (each image's label), 'predicted' (the model's class) or "
                         f"None (the label where the data has labels, else the predicted class); "
                         f"got {target!r}")
    if rank != "relevance" and target is not None:
        raise ValueError(f"target={target!r} says whose class score relevance explains: "
                         "it needs rank='relevance'")
    if rank == "relevance" and directions is not None:
        raise ValueError("directions are a control of the activation ranking (Szegedy et al.); with "
                         "rank='relevance' leave directions=None")


def _explained_classes(target: str | None, labels: object, scores: torch.Tensor) -> tuple[torch.Tensor, str]:
    """The class whose score each image's relevance explains, and whose it is ("label" or "predicted")."""
    if target == "label" and labels is None:
        raise ValueError("target='label' needs (images, labels) batches; these have no labels: pass "
                         "target='predicted' to explain the predicted class")
    if labels is None or target == "predicted":
        return resolve_targets(None, scores), "predicted"
    labels = torch.as_tensor(labels).to(scores.device).flatten()
    return resolve_targets(labels, scores), "label"


def _relevance(scores: torch.Tensor, classes: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) activation x gradient of each image's class score at the captured layer (Grad x Input)."""
    chosen = scores.gather(1, classes[:, None]).sum()  # image n's score depends on image n alone (eval mode)
    (gradient,) = torch.autograd.grad(chosen, feature, allow_unused=True)
    if gradient is None:  # the score does not depend on this call of the layer
        return torch.zeros_like(feature, dtype=torch.float32)
    return (feature.detach() * gradient).float()


def merge_top(parts: Sequence[TopActivations]) -> TopActivations:
    """The top k over several streams (the shards of a data set on DDP ranks) from each one's own top k.

    Exact: a unit's k best over the union are among the k best of each part. Ties keep the earlier part first
    (a stable sort), and slots no part filled stay empty (-inf, image -1). The parts are of one ranking."""
    if not parts:
        raise ValueError("merge_top needs at least one TopActivations")
    first = parts[0]
    if any(p.rank != first.rank for p in parts):
        raise ValueError(f"merge_top: the parts mix rankings {sorted({p.rank for p in parts})}; "
                         "merge one at a time")
    k = first.values.shape[1]
    values = torch.cat([p.values for p in parts], dim=1)
    values, order = values.sort(dim=1, descending=True, stable=True)
    values, order = values[:, :k], order[:, :k]
    rows = torch.arange(values.shape[0])[:, None]

    def pick(field: str) -> torch.Tensor:
        return torch.cat([getattr(p, field) for p in parts], dim=1)[rows, order]

    return TopActivations(first.layer, values, pick("image"), pick("position"), pick("patches"), first.field,
                          first.directions, pick("wholes") if first.wholes is not None else None,
                          first.input_size, first.rank,
                          pick("classes") if first.classes is not None else None, first.target)


def _merge(state: dict, best: torch.Tensor, where: torch.Tensor, index: torch.Tensor, width: int, k: int,
           field: ReceptiveField, pixels: torch.Tensor, side: int, samples: int, cut_every_slot: bool,
           whole_size: int | None = None, classes: torch.Tensor | None = None) -> None:
    """Merge one batch's candidates (U, B) into the running top k, without a host synchronisation; ``classes``
    (B,): the class each image's relevance explains, kept beside its slots."""
    units, count = best.shape
    device = best.device
    if not state:
        state["values"] = torch.full((units, k), -math.inf, device=device)
        state["image"] = torch.full((units, k), -1, dtype=torch.long, device=device)
        state["position"] = torch.zeros((units, k, 2), dtype=torch.long, device=device)
        state["patches"] = torch.zeros((units, k, pixels.shape[1], side, side), dtype=torch.uint8, device=device)
        if whole_size:
            state["wholes"] = torch.zeros((units, k, pixels.shape[1], whole_size, whole_size), dtype=torch.uint8, device=device)
        if classes is not None:
            state["classes"] = torch.full((units, k), -1, dtype=torch.long, device=device)
    values, order = torch.cat([state["values"], best], dim=1).topk(k, dim=1)  # (U, k)
    from_batch = order >= k
    member = (order - k).clamp_min(0)  # the batch image of each slot, where it comes from the batch
    kept = order.clamp_max(k - 1)
    flat_position = where.gather(1, member)
    position = torch.stack([flat_position // width, flat_position % width], dim=2)
    state["image"] = torch.where(from_batch, index[member], state["image"].gather(1, kept))
    if classes is not None:
        state["classes"] = torch.where(from_batch, classes[member], state["classes"].gather(1, kept))
    state["position"] = torch.where(from_batch[..., None], position, state["position"].gather(1, kept[..., None].expand(-1, -1, 2)))
    rows = torch.arange(units, device=device)[:, None]
    cutters = {"patches": lambda m, p: _patches(pixels, m, p, field, side, samples)}
    if "wholes" in state:
        cutters["wholes"] = lambda m, p: thumbnails(pixels[m], state["wholes"].shape[-1])
    for name, cut in cutters.items():
        pictures = state[name][rows, kept]
        if not cut_every_slot:  # on the CPU waiting costs nothing: cut only the slots this batch won
            unit, slot = torch.nonzero(from_batch, as_tuple=True)
            pictures[unit, slot] = cut(member[unit, slot], position[unit, slot])
        else:  # on an accelerator, cut every slot and keep the won ones: no data-dependent count, no sync
            fresh = cut(member.flatten(), position.flatten(0, 1)).view_as(pictures)
            pictures = torch.where(from_batch[..., None, None, None], fresh, pictures)
        state[name] = pictures
    state["values"] = values


def _patches(pixels: torch.Tensor, member: torch.Tensor, position: torch.Tensor, field: ReceptiveField,
             side: int, samples: int) -> torch.Tensor:
    """(E, C, t, t) uint8 crops of the field at each (image, position), zero outside the image: the pixels
    get a one-pixel zero border so that roi_align's edge clamping reads zeros there."""
    padded = torch.nn.functional.pad(pixels.float(), (1, 1, 1, 1))
    top = position[:, 0] * field.stride[0] + field.offset[0] + 1
    left = position[:, 1] * field.stride[1] + field.offset[1] + 1
    boxes = torch.stack([member.to(padded.dtype), left, top, left + field.size[1], top + field.size[0]], dim=1).to(padded.dtype)
    crops = roi_align(padded, boxes, output_size=(side, side), sampling_ratio=samples, aligned=True)
    return (crops.clamp(0, 1) * 255).round().to(torch.uint8)

