"""The Distribution view's route: one layer's activation value counts at every flush (``/distribution``),
with the layer's off (dead or dormant) fraction at the same flushes, bucketed where there are more flushes
than the heat map has columns. See ``http_api.md``. No torch here.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from tensorboard import errors, plugin_util
from werkzeug import wrappers

from . import http_params as params
from .dead_routes import DEAD_MAX_STEPS, column_runs
from .series import SeriesReader

KIND = "distribution"
_MAX_STEPS_LIMIT = 100_000


class DistributionRoutes:
    """``/distribution``, reading through the plugin's :class:`SeriesReader`; ``flush_limit`` as for
    :class:`~.dead_routes.DeadRoutes`."""

    def __init__(self, reader: SeriesReader, flush_limit: int = 0):
        self._reader, self._flush_limit = reader, flush_limit

    def routes(self) -> dict[str, Callable]:
        return {"/distribution": self._serve_distribution}

    @params.json_route
    def _serve_distribution(self, request: wrappers.Request) -> dict:
        max_steps = params.optional_integer(request, "max_steps", DEAD_MAX_STEPS, 2, _MAX_STEPS_LIMIT)
        ctx, eid = plugin_util.context(request.environ), plugin_util.experiment_id(request.environ)
        return self.distribution_impl(ctx, eid, params.text(request, "run"),
                                      params.text(request, "layer"), max_steps, model=params.model(request))

    def distribution_impl(self, ctx: Any, eid: str, run: str, layer: str, max_steps: int = DEAD_MAX_STEPS,
                          model: str = "") -> dict:
        found = self._reader.series(ctx, eid, run, KIND, layer, model)
        series = self._reader.tensor_series(ctx, eid, run, found)
        tables = [d.numpy.reshape(2, -1) if d.numpy.size % 2 == 0 else None for d in series]
        kept = [(d.step, table) for d, table in zip(series, tables) if table is not None]
        width = len(kept[-1][1][0]) if kept else 0
        kept = [(step, table) for step, table in kept if len(table[0]) == width]  # one bin set per reply
        steps = [step for step, _ in kept]
        counts = np.array([table[0] for _, table in kept], dtype=np.float64).reshape(len(kept), width)
        edges = kept[-1][1][1][: max(0, width - 2)] if kept else np.zeros(0)
        off = self._off_fractions(ctx, eid, run, layer, model, steps)
        reply = {"run": run, "model": model, "layer": layer, "health": found.content.health or "dead",
                 "role": found.content.role or "feature", "edges": [float(e) for e in edges],
                 "slots": ["-inf", *(["bin"] * max(0, width - 3)), "+inf", "nan"] if width else [],
                 "held_limit": self._flush_limit if 0 < self._flush_limit <= len(series) else None}
        if len(steps) <= max_steps:
            return {**reply, "steps": steps, "counts": _json_counts(counts), "off_fraction": _json_nullable(off),
                    "downsampled": None}
        count = len(steps) - 1  # the latest flush keeps a column of its own, as in /dead
        starts, ends = column_runs(count, max_steps - 1)
        summed = np.vstack([np.add.reduceat(counts[:count], starts, axis=0), counts[-1:]])
        highest = np.append(np.fmax.reduceat(off[:count], starts), off[-1])
        return {**reply, "steps": [*np.asarray(steps)[ends].tolist(), steps[-1]], "counts": _json_counts(summed),
                "off_fraction": _json_nullable(highest),
                "downsampled": {"flushes": len(steps), "first_steps": [*np.asarray(steps)[starts].tolist(), steps[-1]]}}

    def _off_fractions(self, ctx: Any, eid: str, run: str, layer: str, model: str, steps: list[int]) -> np.ndarray:
        """The layer's share of off channels at each of ``steps``, from its dead-kind flushes (NaN where none)."""
        off = np.full(len(steps), np.nan)
        try:
            found = self._reader.series(ctx, eid, run, "dead", layer, model)
        except errors.NotFoundError:  # a layer without rates still has its distribution
            return off
        threshold = found.content.threshold if found.content.threshold is not None else 1.0
        fractions = {d.step: float(np.mean(d.numpy.reshape(-1) >= threshold)) if d.numpy.size else math.nan
                     for d in self._reader.tensor_series(ctx, eid, run, found)}
        return np.array([fractions.get(step, np.nan) for step in steps])


def _json_counts(counts: np.ndarray) -> list[list[int]]:
    return np.nan_to_num(counts, nan=0.0).round().astype(np.int64).tolist()


def _json_nullable(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else round(float(v), 4) for v in values]
