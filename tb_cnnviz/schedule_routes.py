"""The Schedule view's route: every call ``autolog`` made in a run, with its steps and measured costs
(``/schedule``), so the tab shows where the logging budget went. See ``http_api.md``. No torch here.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from tensorboard import plugin_util
from werkzeug import wrappers

from . import http_params as params
from .series import SeriesReader

KIND = "schedule"


class ScheduleRoutes:
    """``/schedule``, reading through the plugin's :class:`SeriesReader`."""

    def __init__(self, reader: SeriesReader):
        self._reader = reader

    def routes(self) -> dict[str, Callable]:
        return {"/schedule": self._serve_schedule}

    @params.json_route
    def _serve_schedule(self, request: wrappers.Request) -> dict:
        ctx, eid = plugin_util.context(request.environ), plugin_util.experiment_id(request.environ)
        return self.schedule_impl(ctx, eid, params.text(request, "run"), model=params.model(request))

    def schedule_impl(self, ctx: Any, eid: str, run: str, model: str = "") -> dict:
        listing = self._reader.listing(ctx, eid, run, ("tensors",))
        if (run, model) not in listing:
            listing = self._reader.listing(ctx, eid, run)  # raises with the runs there are
        calls = sorted(self._reader.source(listing, run, model).get(KIND, {}).items(),
                       key=lambda item: (item[1].content.order, item[0]))
        read = self._reader.tensor_serieses(ctx, eid, run, [found for _, found in calls])
        views, budget, share = [], None, []
        for (name, _), series in zip(calls, read):
            rows = [(d.step, d.numpy.reshape(-1)) for d in series if d.numpy.size >= 4]
            ran = [(step, row) for step, row in rows if not math.isnan(row[0])]
            estimated = next((float(row[3]) for _, row in rows if not math.isnan(row[3])), None)
            views.append({"name": name, "steps": [step for step, _ in ran],
                          "seconds": [round(float(row[0]), 6) for _, row in ran],
                          "estimated_seconds": estimated, "never_fit": not ran and bool(rows)})
            for step, row in rows:
                budget = float(row[2])
                share.append((step, float(row[1])))
        share.sort()
        return {"run": run, "model": model, "budget": budget, "views": views,
                "share": {"steps": [step for step, _ in share], "values": [round(v, 6) for _, v in share]}}
