"""Correspondence by nearest neighbours in a conv layer's features (Long, Zhang & Darrell, "Do ConvNets
learn correspondence?", NIPS 2014, https://arxiv.org/abs/1411.1091).

Keypoints of ``image_a`` (every ``grid``-th cell of the layer's map, or given pixels) are matched to the
cell of ``image_b`` whose feature vector is most similar, and both cells are mapped back to input pixels
through the centres of their receptive fields. Features are L2-normalised per cell, so similarity is the
cosine; all keypoints are matched in one matrix product per chunk (no loop over points), on the model's
device, under ``torch.inference_mode``. A match is *mutual* when the keypoint's cell is in turn the nearest
neighbour, among all cells of ``image_a``, of the cell it matched (the usual cross-check that drops matches
into featureless regions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._hooks import check_positive_int, layer_output, model_device, preserved_state
from ..dataset.receptive_field import ReceptiveField, receptive_field

#: Similarity entries computed per chunk at most: bounds memory for fine maps (112x112 cells and more).
CHUNK_ELEMENTS = 1 << 24


@dataclass
class Correspondence:
    """Matches from ``image_a`` to ``image_b``, best first: mutual matches first, each group by score. Pixels are (row, column), in the images' own
    pixel coordinates (the centre of the top-left pixel is (0, 0)); cells are (row, column) on the map."""

    layer: str
    points_a: torch.Tensor  #: (M, 2) float: the receptive-field centre of each keypoint's cell in image_a
    points_b: torch.Tensor  #: (M, 2) float: the receptive-field centre of its match in image_b
    cells_a: torch.Tensor  #: (M, 2) long
    cells_b: torch.Tensor  #: (M, 2) long
    scores: torch.Tensor  #: (M,) cosine similarity of the two cells' features, in [-1, 1]; 1 is identical
    mutual: torch.Tensor  #: (M,) bool: the match is also image_b's cell's nearest neighbour in image_a
    field: ReceptiveField
    map_size: tuple[int, int]  #: (h, w) of the layer's map
    image_size: tuple[int, int]  #: (H, W) of the images

    def __len__(self) -> int:
        return len(self.scores)


def cell_centres(field: ReceptiveField, cells: torch.Tensor) -> torch.Tensor:
    """(M, 2) long cells -> (M, 2) float pixel centres of their receptive fields."""
    stride = torch.tensor(field.stride, dtype=torch.float32, device=cells.device)
    start = torch.tensor(field.offset, dtype=torch.float32, device=cells.device)
    half = (torch.tensor(field.size, dtype=torch.float32, device=cells.device) - 1) / 2
    return cells.float() * stride + start + half


def nearest_cells(field: ReceptiveField, points: torch.Tensor, map_size: tuple[int, int]) -> torch.Tensor:
    """(M, 2) pixel (row, column) points -> (M, 2) the cells whose receptive-field centre is nearest."""
    stride = torch.tensor(field.stride, dtype=torch.float32, device=points.device)
    first = cell_centres(field, torch.zeros(1, 2, dtype=torch.long, device=points.device))[0]
    cells = ((points.float() - first) / stride).round().long()
    limit = torch.tensor(map_size, device=points.device) - 1
    return torch.minimum(cells.clamp_min(0), limit)


def _check_pair(image_a: object, image_b: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image (C, H, W) or (1, C, H, W), floating point, both of one shape; returned as (1, C, H, W)."""
    pair = []
    for name, image in (("image_a", image_a), ("image_b", image_b)):
        if not isinstance(image, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor (C, H, W) or (1, C, H, W); got {type(image).__name__}")
        if image.dim() == 3:
            image = image[None]
        if image.dim() != 4 or image.shape[0] != 1:
            raise ValueError(f"{name} must be one image, (C, H, W) or (1, C, H, W); got shape {tuple(image.shape)}")
        if not image.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor (as the model takes it); got {image.dtype}")
        pair.append(image)
    if pair[0].shape != pair[1].shape:
        raise ValueError(f"image_a and image_b must have the same shape (channels and size), so that one forward "
                         f"takes both; got {tuple(pair[0].shape[1:])} and {tuple(pair[1].shape[1:])}")
    return pair[0], pair[1]


def _check_points(points: object, height: int, width: int) -> torch.Tensor:
    if not isinstance(points, torch.Tensor):
        try:
            points = torch.as_tensor(points, dtype=torch.float32)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"points must be (M, 2) pixel (row, column) coordinates; got {type(points).__name__}") from exc
    if points.dim() != 2 or points.shape[1] != 2 or len(points) == 0:
        raise ValueError(f"points must be (M, 2) pixel (row, column) coordinates, M >= 1; got shape {tuple(points.shape)}")
    points = points.float()
    inside = (points[:, 0] >= 0) & (points[:, 0] <= height - 1) & (points[:, 1] >= 0) & (points[:, 1] <= width - 1)
    if not bool(inside.all()):
        bad = points[~inside][:3].tolist()
        raise ValueError(f"points must lie inside image_a (rows 0..{height - 1}, columns 0..{width - 1}); "
                         f"{int((~inside).sum())} do not, e.g. {bad}")
    return points


def layer_maps(model: nn.Module, images: torch.Tensor, layer: str) -> torch.Tensor:
    """``layer``'s output (N, C, h, w) for ``images``, stopping the forward right after it (inference mode,
    eval mode, the model left as found)."""
    with torch.inference_mode(), preserved_state(model):
        model.eval()
        maps = layer_output(model, layer, images.to(model_device(model)))
    if maps.dim() != 4:
        raise ValueError(f"layer {layer!r} must output (N, C, h, w) maps; got shape {tuple(maps.shape)}")
    return maps


def _nearest(queries: torch.Tensor, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of ``queries`` (M, C), the most similar row of ``keys`` (N, C) and that similarity,
    in chunks of rows so that at most :data:`CHUNK_ELEMENTS` similarities exist at once."""
    rows = max(1, CHUNK_ELEMENTS // max(1, len(keys)))
    best, where = [], []
    for start in range(0, len(queries), rows):
        value, index = (queries[start : start + rows] @ keys.T).max(dim=1)
        best.append(value)
        where.append(index)
    return torch.cat(best), torch.cat(where)


def correspondence(
    model: nn.Module,
    image_a: torch.Tensor,
    image_b: torch.Tensor,
    layer: str,
    k: int | None = None,
    points: torch.Tensor | Sequence[Sequence[float]] | None = None,
    grid: int = 1,
    mutual: bool = True,
) -> Correspondence:
    """Match keypoints of ``image_a`` to ``image_b`` by nearest neighbours in ``layer``'s features.

    Keypoints are every ``grid``-th cell of the layer's map (in both directions), or ``points`` ((M, 2)
    pixel (row, column) in ``image_a``, each taken to the cell whose receptive-field centre is nearest).
    ``k`` keeps the ``k`` best matches (all by default): mutual ones first, each group by score, so that a
    featureless region (whose cells all score 1 against each other but are rarely mutual) does not crowd
    out the informative matches; ``mutual=False`` skips the cross-check (every
    match is then flagged False).

    The score is the cosine similarity of the two cells' features: it is what the nearest neighbour
    maximised, so ranking by it ranks by how the match was found, and it means the same at every layer.
    Lowe's ratio to the second-best match is not used: on dense conv maps the runner-up is nearly always
    the adjacent cell, whose receptive field overlaps the best one's, so the ratio measures the stride
    rather than ambiguity; the mutual check is the ambiguity filter.

    Example::

        found = correspondence(model, x[0], x[0].flip(-1), "layer3", k=50)
        found.points_a[found.mutual], found.points_b[found.mutual]
    """
    a, b = _check_pair(image_a, image_b)
    check_positive_int(grid, "grid", "keypoint spacing in cells of the layer's map")
    if k is not None:
        check_positive_int(k, "k", "how many of the best matches to keep, or None")
    height, width = a.shape[2:]
    wanted = _check_points(points, height, width) if points is not None else None
    field = receptive_field(model, layer, (height, width))
    maps = layer_maps(model, torch.cat([a, b]), layer).float()
    _, _, h, w = maps.shape
    features = F.normalize(maps.flatten(2).transpose(1, 2), dim=2)  # (2, h*w, C), unit rows (zero rows stay 0)
    device = features.device
    if wanted is None:
        rows, cols = torch.meshgrid(torch.arange(0, h, grid, device=device), torch.arange(0, w, grid, device=device),
                                    indexing="ij")
        cells_a = torch.stack([rows.flatten(), cols.flatten()], dim=1)
    else:
        cells_a = nearest_cells(field, wanted.to(device), (h, w))
    flat_a = cells_a[:, 0] * w + cells_a[:, 1]
    scores, flat_b = _nearest(features[0][flat_a], features[1])
    if mutual:
        _, back = _nearest(features[1][flat_b], features[0])
        is_mutual = back == flat_a
    else:
        is_mutual = torch.zeros_like(flat_a, dtype=torch.bool)
    order = (scores + 4 * is_mutual).argsort(descending=True, stable=True)[:k]  # mutual first, then by score
    cells_b = torch.stack([flat_b // w, flat_b % w], dim=1)
    cells_a, cells_b = cells_a[order], cells_b[order]
    return Correspondence(
        layer=layer,
        points_a=cell_centres(field, cells_a).cpu(),
        points_b=cell_centres(field, cells_b).cpu(),
        cells_a=cells_a.cpu(),
        cells_b=cells_b.cpu(),
        scores=scores[order].clamp(-1, 1).cpu(),
        mutual=is_mutual[order].cpu(),
        field=field,
        map_size=(h, w),
        image_size=(height, width),
    )
