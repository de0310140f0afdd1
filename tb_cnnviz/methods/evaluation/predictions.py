"""One streamed pass of a model over a data set, keeping per example only what the accuracy views need.

Memory is O(examples x k) plus fixed-size histograms and a bounded pool of thumbnails, never the images:
a data set larger than memory streams through. Work stays on the model's device; each batch has at most one
point where the host waits for it (reading back the few candidates for the "most confidently wrong" pool).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .._hooks import check_images, model_device, preserved_state
from ..attribution.gradients import input_gradient
from .image_attributes import image_attributes, saliency_concentration
from ..streaming import progress as streamed
from ..streaming import LayoutForward, split_batch, thumbnails
from ..targets import Output, check_scores

PR_THRESHOLDS = 127  #: TensorBoard's PR-curve default
WRONG_POOL_BYTES = 256 * 2**20  #: the most the pool may hold of model inputs, for the wrong examples' saliency
UNLABELLED = -1


@dataclass
class WrongExample:
    index: int
    label: int
    predicted: int
    confidence: float
    thumbnail: torch.Tensor  #: (C, t, t) uint8
    saliency: torch.Tensor | None = None  #: (t, t) uint8: max |d score[predicted] / d pixel|, scaled to its max
    image: torch.Tensor | None = None  #: the model input, kept until the pass ends to compute ``saliency``


@dataclass
class Evaluation:
    """What :func:`evaluate` kept, on the CPU. ``labels`` is -1 where the data gave none."""

    classes: int
    labels: torch.Tensor
    index: torch.Tensor
    topk_classes: torch.Tensor
    topk_probability: torch.Tensor
    true_probability: torch.Tensor
    attributes: dict[str, torch.Tensor] = field(default_factory=dict)
    positive_histogram: torch.Tensor | None = None  #: (classes, PR_THRESHOLDS) counts of positives' score buckets
    negative_histogram: torch.Tensor | None = None
    wrong: dict[int, list[WrongExample]] = field(default_factory=dict)  #: true class -> most confident first

    @property
    def labelled(self) -> torch.Tensor:
        return self.labels != UNLABELLED

    @property
    def predicted(self) -> torch.Tensor:
        return self.topk_classes[:, 0]

    @property
    def correct(self) -> torch.Tensor:
        """(N,) bool, False where unlabelled (select with ``labelled``)."""
        return self.labelled & (self.predicted == self.labels)

    def topk_accuracy(self, k: int) -> float:
        """Share of labelled examples whose label is among the top ``k`` predictions (NaN with no labels)."""
        labelled = self.labelled
        if not labelled.any():
            return float("nan")
        hits = (self.topk_classes[labelled, :k] == self.labels[labelled, None]).any(dim=1)
        return hits.double().mean().item()


class _WrongPool:
    """Per true class, the ``size`` wrong examples the model was most confident about (min-heaps)."""

    def __init__(self, classes: int, size: int, device: torch.device):
        self.size = size
        self.heaps: dict[int, list[tuple[float, int, WrongExample]]] = {}
        self.floor = torch.full((classes,), -1.0, device=device)  # confidence a candidate must beat
        self.counter = itertools.count()

    def offer(self, labels: torch.Tensor, predicted: torch.Tensor, confidence: torch.Tensor, index: torch.Tensor,
              thumbnails: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]) -> None:
        labelled = labels >= 0
        wrong = labelled & (predicted != labels) & (confidence > self.floor[labels.clamp_min(0)])
        packed = torch.stack([wrong.double(), labels.double(), predicted.double(), confidence.double(), index.double()], 1)
        rows = packed.cpu()  # the one wait per batch
        chosen = torch.nonzero(rows[:, 0] > 0).flatten()
        if not len(chosen):
            return
        pictures, inputs = thumbnails(chosen.to(labels.device))
        pictures = pictures.cpu()
        inputs = inputs.cpu() if inputs is not None else [None] * len(pictures)
        for picture, image, row in zip(pictures, inputs, rows[chosen].tolist()):
            _, label, predicted_class, confidence_value, example = row
            label = int(label)
            heap = self.heaps.setdefault(label, [])
            item = (confidence_value, next(self.counter),
                    WrongExample(int(example), label, int(predicted_class), confidence_value, picture, image=image))
            if len(heap) < self.size:
                heapq.heappush(heap, item)
            elif confidence_value > heap[0][0]:
                heapq.heapreplace(heap, item)
            if len(heap) == self.size:
                self.floor[label] = heap[0][0]

    def result(self) -> dict[int, list[WrongExample]]:
        return {label: [item[2] for item in sorted(heap, key=lambda item: -item[0])]
                for label, heap in sorted(self.heaps.items())}


def evaluate(
    model: nn.Module,
    data: Iterable,
    topk: tuple[int, ...] = (1, 5),
    attributes: bool = False,
    to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None,
    pr_curves: bool = False,
    wrong_examples: int = 0,
    thumbnail: int = 32,
    progress: bool | None = None,
    saliency: bool = False,
    wrong_saliency: bool = True,
    output: Output = None,
) -> Evaluation:
    """Stream ``data`` once through ``model`` (eval mode, inference mode, left as found).

    Keeps per example the label, the top ``max(topk)`` classes and probabilities, and the true class's
    probability; with ``attributes`` the :func:`image_attributes` of ``to_pixels(images)`` (pixels in [0, 1]);
    with ``pr_curves`` per-class histograms of scores for TensorBoard's PR curves; with ``wrong_examples`` a
    thumbnail pool of that many most-confidently-wrong examples per true class; with ``saliency`` the
    attribute ``saliency_concentration`` of each image's saliency map for its predicted class (one backward
    per batch). ``wrong_saliency`` gives each pooled wrong example the saliency map of the class it wrongly
    chose ("why did it say that?"), computed once the pass is over for the examples left in the pool (whose
    inputs the pool keeps meanwhile, when they fit in ``WRONG_POOL_BYTES``). ``output``: where the scores are
    in a model's output that is not a tensor (see ``methods.targets``).
    """
    if not topk or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in topk):
        raise ValueError(f"topk must be positive ints such as (1, 5); got {topk!r}")
    device = model_device(model)
    kept: dict[str, list[torch.Tensor]] = {"labels": [], "index": [], "classes": [], "probability": [], "true": []}
    attribute_parts: dict[str, list[torch.Tensor]] = {}
    bad_label = torch.zeros((), dtype=torch.bool, device=device)
    classes = None
    positive = negative = None
    pool = None
    seen = 0
    forward = LayoutForward(model)
    with torch.inference_mode(), preserved_state(model):
        model.eval()
        for batch in streamed(data, "evaluate", progress):
            images, labels, index = split_batch(batch)
            images = check_images(images, "the data's images").to(device, non_blocking=True)
            count = len(images)
            scores = check_scores(forward(images), count, output)
            probabilities = scores.float().softmax(dim=1)
            if classes is None:
                classes = scores.shape[1]
                pool = _WrongPool(classes, wrong_examples, device) if wrong_examples else None
                if pr_curves:
                    positive = torch.zeros(classes * PR_THRESHOLDS, dtype=torch.float64, device=device)
                    negative = torch.zeros_like(positive)
            elif scores.shape[1] != classes:
                raise ValueError(f"the model gave {scores.shape[1]} class scores for a batch after giving {classes}")
            if labels is None:
                labels = torch.full((count,), UNLABELLED, dtype=torch.long, device=device)
            else:
                labels = torch.as_tensor(labels).to(device, torch.long, non_blocking=True).flatten()
                if labels.numel() != count:
                    raise ValueError(f"a batch has {count} images but {labels.numel()} labels")
                bad_label |= ((labels < 0) | (labels >= classes)).any()
                labels = labels.clamp(0, classes - 1)  # reported after the pass; clamped so indexing stays valid
            index = (torch.arange(seen, seen + count, device=device) if index is None
                     else torch.as_tensor(index).to(device, torch.long).flatten())
            seen += count
            k = min(max(topk), classes)
            top = probabilities.topk(k, dim=1)
            labelled = labels >= 0
            true = probabilities.gather(1, labels.clamp_min(0)[:, None])[:, 0].masked_fill(~labelled, float("nan"))
            for name, value in (("labels", labels), ("index", index), ("classes", top.indices),
                                ("probability", top.values), ("true", true)):
                kept[name].append(value)
            pixels = None
            if attributes or pool is not None:
                pixels = to_pixels(images) if to_pixels is not None else images
            if attributes:
                for name, value in image_attributes(pixels).items():
                    attribute_parts.setdefault(name, []).append(value)
            if saliency:
                with torch.inference_mode(False):  # clones made here are ordinary tensors autograd can use
                    maps = input_gradient(model, images.clone(), top.indices[:, 0].clone(), output=output)
                attribute_parts.setdefault("saliency_concentration", []).append(saliency_concentration(maps))
            if positive is not None:
                bucket = (probabilities * (PR_THRESHOLDS - 1)).floor().long().clamp(0, PR_THRESHOLDS - 1)
                slot = (torch.arange(classes, device=device) * PR_THRESHOLDS + bucket).flatten()
                is_positive = (labels[:, None] == torch.arange(classes, device=device)) & labelled[:, None]
                weight = labelled[:, None].double().expand(-1, classes)
                positive += torch.bincount(slot, is_positive.double().flatten(), minlength=classes * PR_THRESHOLDS)
                negative += torch.bincount(slot, (weight - is_positive.double()).flatten(), minlength=classes * PR_THRESHOLDS)
            if pool is not None:
                keep_inputs = wrong_saliency and _pool_bytes(classes, wrong_examples, images) <= WRONG_POOL_BYTES
                pool.offer(labels, top.indices[:, 0], top.values[:, 0], index,
                           lambda rows, pixels=pixels, images=images, keep=keep_inputs: (
                               thumbnails(pixels[rows], thumbnail), images[rows] if keep else None))
        wrong = pool.result() if pool is not None else {}
        if wrong_saliency:
            _add_saliency(model, [example for kept in wrong.values() for example in kept], device, thumbnail, output)
    if classes is None:
        raise ValueError("data yielded no batches: nothing to evaluate")
    if bool(bad_label):
        raise ValueError(f"labels must be classes of the model, 0..{classes - 1}; the data has labels outside that range")
    cat = {name: torch.cat(parts).cpu() for name, parts in kept.items()}
    return Evaluation(
        classes=classes,
        labels=cat["labels"],
        index=cat["index"],
        topk_classes=cat["classes"],
        topk_probability=cat["probability"],
        true_probability=cat["true"],
        attributes={name: torch.cat(parts).cpu() for name, parts in attribute_parts.items()},
        positive_histogram=positive.view(classes, PR_THRESHOLDS).cpu() if positive is not None else None,
        negative_histogram=negative.view(classes, PR_THRESHOLDS).cpu() if negative is not None else None,
        wrong=wrong,
    )


def _pool_bytes(classes: int, size: int, images: torch.Tensor) -> int:
    return classes * size * images[0].numel() * images.element_size()


def _add_saliency(model: nn.Module, examples: list[WrongExample], device: torch.device, size: int,
                  output: Output = None, batch: int = 64) -> None:
    """Each example's saliency thumbnail for the class it chose, from its kept input; the input is dropped."""
    kept = [example for example in examples if example.image is not None]
    for start in range(0, len(kept), batch):
        chunk = kept[start : start + batch]
        images = torch.stack([example.image for example in chunk]).to(device)
        predicted = torch.tensor([example.predicted for example in chunk], device=device)
        for example, heat in zip(chunk, _saliency_thumbnails(model, images, predicted, size, output).cpu()):
            example.saliency = heat
    for example in examples:
        example.image = None


def _saliency_thumbnails(model: nn.Module, images: torch.Tensor, predicted: torch.Tensor, size: int,
                         output: Output = None) -> torch.Tensor:
    """(B, t, t) uint8 saliency heat maps of the predicted class, each scaled to its own maximum."""
    with torch.inference_mode(False):  # clones made here are ordinary tensors autograd can use
        maps = input_gradient(model, images.clone(), predicted.clone(), output=output)
    heat = maps.abs().amax(dim=1, keepdim=True)
    heat = F.interpolate(heat, size=(size, size), mode="area") if heat.shape[-1] != size else heat
    heat = heat / heat.flatten(1).amax(dim=1).clamp_min(torch.finfo(heat.dtype).tiny)[:, None, None, None]
    return (heat[:, 0].nan_to_num(0).clamp(0, 1) * 255).round().to(torch.uint8)
