"""The dead-filter view's routes: one layer's flushes over training (``/dead``, bucketed where there are more
flushes than the timeline has columns) and every watched layer's latest flush of a run (``/dead_summary``: the
channels off, dead or dormant, for the tab's badges and alert). See ``http_api.md``. No torch here.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from tensorboard import plugin_util
from werkzeug import wrappers

from . import http_params as params
from .series import SeriesReader

KIND = "dead"
#: Columns of the dead-filter timeline (640 px at 2 px each): a longer series is answered in this many buckets,
#: so 100,000 flushes cost the tab what 320 do.
DEAD_MAX_STEPS = 320
_DEAD_MAX_STEPS_LIMIT = 100_000


class DeadRoutes:
    """``/dead`` and ``/dead_summary``, reading through the plugin's :class:`SeriesReader`. ``flush_limit``: the
    flushes TensorBoard keeps per layer when a user's ``--samples_per_plugin cnnviz=N`` bounds them (0: all)."""

    def __init__(self, reader: SeriesReader, flush_limit: int = 0):
        self._reader, self._flush_limit = reader, flush_limit

    def routes(self) -> dict[str, Callable]:
        return {"/dead": self._serve_dead, "/dead_summary": self._serve_dead_summary}

    @params.json_route
    def _serve_dead(self, request: wrappers.Request) -> dict:
        max_steps = params.optional_integer(request, "max_steps", DEAD_MAX_STEPS, 2, _DEAD_MAX_STEPS_LIMIT)
        return self.dead_impl(_ctx(request), _eid(request), params.text(request, "run"), params.text(request, "layer"),
                              max_steps, model=params.model(request))

    @params.json_route
    def _serve_dead_summary(self, request: wrappers.Request) -> dict:
        return self.dead_summary_impl(_ctx(request), _eid(request), params.text(request, "run"), model=params.model(request))

    def dead_impl(self, ctx: Any, eid: str, run: str, layer: str, max_steps: int = DEAD_MAX_STEPS, model: str = "") -> dict:
        """The series of one layer; over ``max_steps`` flushes, in ``max_steps`` buckets (see :func:`dead_buckets`)."""
        found = self._reader.series(ctx, eid, run, KIND, layer, model)
        content = found.content
        series = self._reader.tensor_series(ctx, eid, run, found)
        steps = [d.step for d in series]
        rows = [d.numpy.reshape(-1) for d in series]
        reply = {"run": run, "model": model, "layer": layer, "channels": len(rows[-1]) if rows else 0,
                 "threshold": content.threshold, "health": content.health or "dead",
                 "role": content.role or "feature",
                 # TensorBoard held as many flushes as the user's flag allows: more may have been written
                 "held_limit": self._flush_limit if 0 < self._flush_limit <= len(rows) else None}
        if len(rows) <= max_steps:
            return {**reply, "steps": steps, "rates": [_json_rates(row) for row in rows], "downsampled": None}
        width = max(len(row) for row in rows)
        rates = np.full((len(rows), width), np.nan, dtype=np.float32)  # a layer that changed width: NaN pads
        for i, row in enumerate(rows):
            rates[i, : len(row)] = row
        first, last, highest, lowest = dead_buckets(np.asarray(steps), rates, max_steps)
        return {**reply, "steps": last, "rates": [_json_rates(row) for row in highest],
                "downsampled": {"flushes": len(rows), "first_steps": first,
                                "min_rates": [_json_rates(row) for row in lowest]}}

    def dead_summary_impl(self, ctx: Any, eid: str, run: str, model: str = "") -> dict:
        listing = self._reader.listing(ctx, eid, run, ("tensors",))  # the flushes are tensors: one listing, not three
        if (run, model) not in listing:  # no tensors: a run of pictures only has no layer watched, not no data
            listing = self._reader.listing(ctx, eid, run)
        kinds = self._reader.source(listing, run, model)
        layers = {}
        watched = sorted(kinds.get(KIND, {}).items(), key=lambda kv: kv[1].content.order)
        read = self._reader.tensor_serieses(ctx, eid, run, [found for _, found in watched])
        for (layer, found), series in zip(watched, read):
            content = found.content
            if not series:
                continue
            rates = series[-1].numpy.reshape(-1)
            threshold = content.threshold if content.threshold is not None else 1.0
            off = [int(i) for i in (rates >= threshold).nonzero()[0]]
            health = content.health or "dead"  # older files: every watched layer was a ReLU's
            layers[layer] = {"step": series[-1].step, "channels": int(rates.size), "threshold": threshold,
                             "health": health, "role": content.role or "feature",
                             "dead": off if health == "dead" else [],
                             "dormant": off if health == "dormant" else []}
        return {"run": run, "model": model, "layers": layers}


def dead_buckets(steps: np.ndarray, rates: np.ndarray, columns: int) -> tuple[list[int], list[int], np.ndarray, np.ndarray]:
    """(F,) steps and (F, C) rates of F > ``columns`` flushes -> per column its first and last step and, per
    channel, the highest and lowest rate in it. The latest flush keeps a column of its own (the tab reads the
    current dead channels there); the others share ``columns - 1`` runs of consecutive flushes. The highest
    rate is what the timeline draws, so a channel dead for one flush never disappears into its neighbours."""
    count = len(steps) - 1
    starts, ends = column_runs(count, columns - 1)
    highest = np.vstack([np.fmax.reduceat(rates[:count], starts, axis=0), rates[-1:]])
    lowest = np.vstack([np.fmin.reduceat(rates[:count], starts, axis=0), rates[-1:]])
    first = [*steps[starts].tolist(), int(steps[-1])]
    last = [*steps[ends].tolist(), int(steps[-1])]
    return first, last, highest, lowest


def column_runs(count: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """The first and last index of each of ``columns`` runs of consecutive items that share ``count`` items
    evenly (``count > columns``)."""
    starts = np.arange(columns) * count // columns
    return starts, np.append(starts[1:], count) - 1


def _json_rates(row: np.ndarray) -> list[float | None]:
    """Rates rounded to 4 places; a channel without a rate (NaN) as null."""
    values = row.astype(float).round(4).tolist()
    return [None if math.isnan(v) else v for v in values] if np.isnan(row).any() else values


def _ctx(request: wrappers.Request) -> Any:
    return plugin_util.context(request.environ)


def _eid(request: wrappers.Request) -> str:
    return plugin_util.experiment_id(request.environ)
