"""CNN codes laid out in 2-D (t-SNE, as in the CS231n notes for AlexNet's fc7 codes) and snapped to a grid.

``embed`` finds each code's neighbours in the codes themselves (exactly, in chunks, up to
``EXACT_NEIGHBOURS_LIMIT`` codes; openTSNE's Annoy index beyond), then runs openTSNE (FFT-accelerated early
exaggeration after Linderman et al., Barnes-Hut refinement). The usual PCA-to-50 step first was dropped: on
codes whose classes each lie on their own low-dimensional subspace, it merges the subspaces and the layout kept
each point's 10 nearest neighbours at 0.82-0.9x scikit-learn's rate. ``neighbour_preservation`` measures that
rate; ``benchmarks/embedding.py`` prints it and the speed-up over scikit-learn's ``TSNE``. ``grid_layout``
assigns points to grid cells by an optimal assignment (``scipy.optimize.linear_sum_assignment``), not greedily,
so the grid keeps the layout's neighbourhoods.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.decomposition import PCA
from torch import nn

from .._hooks import (check_images, forward_hooks, model_device, preserved_state, relu_layers, split_call,
                      unknown_layer_message)
from ..targets import Output, check_scores
from ..streaming import progress as streamed
from ..streaming import LayoutForward, split_batch, thumbnails

METHODS = ("tsne", "pca")
EXACT_NEIGHBOURS_LIMIT = 20_000  #: exact neighbours cost N^2 D multiply-adds: beyond this, Annoy's approximate ones
MAX_GRID_POINTS = 2500  #: the assignment is cubic in the number of cells: beyond this, pass a subset


def code_layer(model: nn.Module) -> str:
    """The layer whose outputs are the "CNN codes": the last module before the classifier, preferring a
    global pooling layer, else the last ReLU-like module."""
    names = [name for name, module in model.named_modules() if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))]
    if names:
        return names[-1]
    relus = list(relu_layers(model))
    if not relus:
        raise ValueError("embedding: the model has no global pooling or ReLU layer to take codes from; name a layer")
    return relus[-1]


def _as_array(codes: torch.Tensor | np.ndarray) -> np.ndarray:
    array = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    if array.ndim != 2 or len(array) < 2:
        raise ValueError(f"codes must be (N, D) with N >= 2 (one row per image); got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("codes contain NaN or Inf: lay out finite codes only (check the layer's activations)")
    return array.astype(np.float32, copy=False)


def embed(codes: torch.Tensor | np.ndarray, method: str = "tsne", seed: int = 0, perplexity: float = 30.0,
          n_jobs: int = -1) -> np.ndarray:
    """(N, 2) layout of (N, D) codes, scaled to [0, 1] on its longer side; the same seed gives the same layout.
    Identical codes (a layer whose every unit is dead) all land in the middle."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    array = _as_array(codes)
    if float(array.std(axis=0).max()) <= 1e-12:  # every image has the same code (a dead layer): no layout to find
        return np.full((len(array), 2), 0.5, dtype=np.float32)
    if method == "pca" or len(array) < 4:
        layout = _principal_components(array, seed)
    else:
        layout = _tsne(array, min(perplexity, (len(array) - 1) / 3), seed, n_jobs)  # openTSNE needs 3 * perplexity < N
    layout = layout - layout.min(axis=0)
    return (layout / max(float(layout.max()), 1e-12)).astype(np.float32)


def _principal_components(array: np.ndarray, seed: int) -> np.ndarray:
    if array.shape[1] <= 2:
        return np.pad(array, ((0, 0), (0, 2 - array.shape[1])))
    return PCA(n_components=2, random_state=seed).fit_transform(array)


def nearest_neighbours(codes: torch.Tensor | np.ndarray, k: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows by Euclidean distance, exactly: (N, k) indices and distances,
    nearest first. Computed in chunks of ``chunk`` rows (memory ``chunk * N``), as one matrix product each."""
    points = torch.as_tensor(_as_array(codes))
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < len(points):
        raise ValueError(f"k must be an int in [1, N - 1] = [1, {len(points) - 1}]; got {k!r}")
    with torch.inference_mode():
        points = points - points.mean(dim=0)  # centred: less cancellation in |a|^2 + |b|^2 - 2ab
        norms = (points * points).sum(dim=1)
        indices, distances = [], []
        for begin in range(0, len(points), chunk):
            block = points[begin : begin + chunk]
            squared = (norms[begin : begin + chunk, None] + norms[None, :]).addmm_(block, points.T, alpha=-2)
            rows = torch.arange(len(block))
            squared[rows, rows + begin] = float("inf")  # a point is not its own neighbour
            nearest = torch.topk(squared, k, dim=1, largest=False)
            indices.append(nearest.indices)
            distances.append(nearest.values.clamp_(min=0).sqrt_())
    return torch.cat(indices).numpy(), torch.cat(distances).numpy()


def neighbour_preservation(codes: torch.Tensor | np.ndarray, layout: torch.Tensor | np.ndarray, k: int = 10) -> float:
    """Mean share of each point's ``k`` nearest neighbours among the codes that are also among its ``k``
    nearest in the layout (1: every neighbourhood kept). Unlike trustworthiness, which only penalises false
    neighbours by rank, this drops as soon as a layout loses the codes' own neighbours."""
    in_codes, _ = nearest_neighbours(codes, k)
    in_layout, _ = nearest_neighbours(layout, k)
    if len(in_codes) != len(in_layout):
        raise ValueError(f"codes and layout must have one row per point; got {len(in_codes)} and {len(in_layout)}")
    shared = (in_codes[:, :, None] == in_layout[:, None, :]).any(axis=2).sum(axis=1)
    return float(shared.mean() / k)


def _tsne(points: np.ndarray, perplexity: float, seed: int, n_jobs: int) -> np.ndarray:
    """openTSNE, phase by phase: 250 iterations of early exaggeration with FFT gradients (where clusters
    form; the fastest method there), then 250 of refinement with Barnes-Hut gradients (faster than FFT at
    10,000 points on a few cores, as the layout spreads). scikit-learn's default runs 1,000; the benchmark
    reports both layouts' neighbour preservation. Neighbours come from the codes themselves, not from a
    PCA of them (see the module's docstring)."""
    from openTSNE import TSNEEmbedding, affinity, initialization
    from openTSNE.nearest_neighbors import PrecomputedNeighbors

    if len(points) <= EXACT_NEIGHBOURS_LIMIT:
        neighbours = PrecomputedNeighbors(*nearest_neighbours(points, min(len(points) - 1, int(3 * perplexity))))
        affinities = affinity.PerplexityBasedNN(perplexity=perplexity, knn_index=neighbours, n_jobs=n_jobs, verbose=False)
    else:
        affinities = affinity.PerplexityBasedNN(points, perplexity=perplexity, method="annoy", n_jobs=n_jobs,
                                                random_state=seed, verbose=False)
    start = initialization.pca(points, random_state=seed)
    layout = TSNEEmbedding(start, affinities, negative_gradient_method="fft", n_jobs=n_jobs, random_state=seed)
    layout = layout.optimize(250, exaggeration=12, momentum=0.5)
    layout = layout.optimize(250, momentum=0.8, negative_gradient_method="bh")
    return np.asarray(layout)


def grid_layout(xy: np.ndarray | torch.Tensor, rows: int | None = None, cols: int | None = None) -> np.ndarray:
    """(N,) the grid cell (row-major index) of each point, minimising the total squared distance between
    the points (scaled to the grid's box) and their cells' centres; the grid defaults to the squarest that
    holds N."""
    points = np.asarray(xy.detach().cpu() if isinstance(xy, torch.Tensor) else xy, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"xy must be (N, 2); got shape {points.shape}")
    count = len(points)
    if count > MAX_GRID_POINTS:
        raise ValueError(f"grid_layout takes at most {MAX_GRID_POINTS} points (the assignment is cubic); got {count}")
    if rows is None or cols is None:
        cols = math.ceil(math.sqrt(count))
        rows = math.ceil(count / cols)
    if rows * cols < count:
        raise ValueError(f"a {rows}x{cols} grid has {rows * cols} cells for {count} points")
    span = np.ptp(points, axis=0)
    unit = (points - points.min(axis=0)) / np.where(span > 0, span, 1)
    centres = np.stack(np.meshgrid((np.arange(cols) + 0.5) / cols, (np.arange(rows) + 0.5) / rows), axis=-1).reshape(-1, 2)
    cost = ((unit[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    point, cell = linear_sum_assignment(cost)
    assignment = np.empty(count, dtype=np.int64)
    assignment[point] = cell
    return assignment


@dataclass
class Codes:
    """What :func:`collect_codes` kept for the first ``n`` images, on the CPU."""

    codes: torch.Tensor  #: (n, D) the layer's output: a (C, H, W) map averaged to (C,) (see ``pooled_from``)
    labels: torch.Tensor  #: (n,) -1 where the data gave none
    predicted: torch.Tensor  #: (n,) the model's class, or -1 if its output is not (N, classes)
    index: torch.Tensor  #: (n,) data set index
    thumbnails: torch.Tensor  #: (n, C, t, t) uint8
    pooled_from: tuple[int, ...] | None = None  #: the shape of one image's map when it was pooled, else None


POOLS = ("avg", None)


def collect_codes(model: nn.Module, data: Iterable, layer: str, n: int = 2000,
                  to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None, thumbnail: int = 32,
                  pool: str | None = "avg", output: Output = None) -> Codes:
    """Stream ``data`` until ``n`` images and keep each one's code at ``layer``, its label, the model's
    prediction (where ``output`` finds class scores in what it returns, see ``methods.targets``;
    -1 where it has none) and a thumbnail of ``to_pixels(images)``.

    A code is a vector (take it after a ReLU, as the notes do with AlexNet's fc7). A layer that gives a map
    (N, C, H, W) -- a conv layer, or the last block of a net with no pooled module (SqueezeNet, MnasNet,
    ShuffleNet) -- is averaged over its positions to (N, C) with ``pool="avg"`` (the default: what a global
    average pool would hand the classifier); ``pool=None`` keeps every channel at every position, flattened
    (C x H x W numbers an image: 86,528 on SqueezeNet at 224 px)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2 (images to lay out); got {n!r}")
    if pool not in POOLS:
        raise ValueError(f"pool must be 'avg' (average a map over its positions) or None (flatten it); got {pool!r}")
    module_name, call = split_call(layer)
    modules = dict(model.named_modules())
    if module_name not in modules or module_name == "":
        raise ValueError(unknown_layer_message(model, layer, "layer"))
    device = model_device(model)
    parts: dict[str, list[torch.Tensor]] = {"codes": [], "labels": [], "predicted": [], "index": [], "thumbnails": []}
    captured: list[torch.Tensor] = []
    seen = 0
    pooled_from: tuple[int, ...] | None = None

    def capture(_name: str, index: int, output: torch.Tensor) -> None:
        if call is None or index == call:  # taken at once: a later in-place op (`out += identity`, an
            # in-place ReLU after a Linear) changes the layer's output before the forward returns
            captured[:] = [output.float().mean(dim=tuple(range(2, output.dim()))) if pool == "avg" and output.dim() > 2
                           else output.to(torch.float32, copy=True), tuple(output.shape[1:])]

    with torch.inference_mode(), preserved_state(model), forward_hooks(model, {module_name: modules[module_name]}, capture):
        model.eval()
        forward = LayoutForward(model)
        for batch in streamed(data, f"codes of {layer}"):
            images, labels, index = split_batch(batch)
            images = check_images(images, "the data's images")[: n - seen].to(device)
            count = len(images)
            captured.clear()
            raw = forward(images, captured.clear)
            if not captured:
                raise ValueError(f"layer {layer!r} did not run in the forward")
            code, shape = captured
            if pool == "avg" and len(shape) > 1:
                pooled_from = shape
            parts["codes"].append(code.flatten(1).cpu())
            parts["predicted"].append(_predictions(raw, count, output))
            parts["labels"].append(torch.as_tensor(labels).flatten()[:count].long().cpu() if labels is not None
                                   else torch.full((count,), -1))
            parts["index"].append(torch.as_tensor(index).flatten()[:count].long().cpu() if index is not None
                                  else torch.arange(seen, seen + count))
            pixels = to_pixels(images) if to_pixels is not None else images
            parts["thumbnails"].append(thumbnails(pixels, thumbnail).cpu())
            seen += count
            if seen >= n:
                break
    if seen < 2:
        raise ValueError(f"data gave {seen} image(s): an embedding needs at least 2")
    return Codes(**{name: torch.cat(values) for name, values in parts.items()}, pooled_from=pooled_from)


def _predictions(raw: object, count: int, output: Output) -> torch.Tensor:
    """The predicted class of each image, or -1 where the output holds no class scores (a backbone)."""
    try:
        return check_scores(raw, count, output).argmax(dim=1).cpu()
    except ValueError:
        return torch.full((count,), -1)
