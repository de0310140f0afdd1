"""Spearman rank correlation of maps, row by row: how alike two maps order the pixels, whatever their scale.

Used for a map's stability over training (each probe image's map against its map at the previous logged
step) and, through :func:`standardized_ranks`, by the sanity check (randomization.py). Ties get their average rank,
as ``scipy.stats.spearmanr`` gives them; a row that cannot be ranked (constant, holding NaN, fewer than two
values) gets NaN, as scipy does, so that "no answer" never reads as "no correlation".
"""

from __future__ import annotations

import torch


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Row-wise ranks 0..P-1 of (N, P), each run of equal values given the mean of its positions."""
    width = values.shape[1]
    ordered, order = values.sort(dim=1)  # ties are averaged: their order among themselves does not matter
    position = torch.arange(width, device=values.device).expand_as(order)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, position, 0).cummax(dim=1).values  # where each run of ties starts ...
    last = torch.where(ends, position, width).flip(1).cummin(dim=1).values.flip(1)  # ... and ends
    mean_rank = (first + last).to(values.dtype) / 2
    return torch.empty_like(mean_rank).scatter_(1, order, mean_rank)


def standardized_ranks(values: torch.Tensor) -> torch.Tensor:
    """(N, P) float64: each row of ``values`` (N, ...) flattened, as average ranks centred and scaled to unit
    norm, so that the dot product of two such rows is their Spearman correlation (keep them to compare a map
    with several others at the cost of one ranking). A row that cannot be ranked (constant, holding a NaN,
    fewer than two values) is all NaN."""
    rows = values.detach().reshape(len(values), -1)
    if rows.dtype not in (torch.float32, torch.float64):
        rows = rows.to(torch.float64)
    if rows.shape[1] < 2:
        return torch.full(rows.shape, float("nan"), dtype=torch.float64, device=rows.device)
    unusable = rows.isnan().any(dim=1)
    ranks = average_ranks(rows.nan_to_num(0.0)).to(torch.float64)
    ranks = ranks - ranks.mean(dim=1, keepdim=True)
    norm = ranks.norm(dim=1)
    unusable |= norm == 0  # every value tied: no order to compare
    return torch.where(unusable[:, None], float("nan"), ranks / norm.clamp_min(1e-300)[:, None])


def correlation_of_ranks(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) float64: the Spearman correlation of rows of :func:`standardized_ranks`; NaN where one is."""
    return (a.to(torch.float64) * b.to(torch.float64)).sum(dim=1).clamp(-1.0, 1.0)


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) float64: the Spearman rank correlation of each row of ``a`` and ``b`` (N, ...), compared
    flattened, ties given their average rank (``scipy.stats.spearmanr``'s answer within 1e-9). NaN where
    either row is constant, holds a NaN, or has fewer than two values; +-inf rank as the largest / smallest
    values.

        r = rank_correlation(saliency(model, x, y).abs().amax(1), earlier)   # 1: same order of pixels
    """
    for name, value in (("a", a), ("b", b)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor (N, ...) of maps; got {type(value).__name__}")
        if value.dim() < 1 or value.is_complex() or value.dtype == torch.bool:
            raise ValueError(f"{name} must be real numbers with a leading image axis (N, ...); got "
                             f"{value.dtype} of shape {tuple(value.shape)}")
    if a.shape != b.shape:
        raise ValueError(f"a and b must be the same shape, one value of b per value of a; got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    return correlation_of_ranks(standardized_ranks(a), standardized_ranks(b))
