"""Leave it on: ``CNNViz.autolog(budget=0.05)`` logs every view by itself, within a share of training time.

Why: a user who logs every view every 500 steps pays more than the training (minutes a round on resnet50), and
one who logs them rarely misses what changed. Here each view declares its logging call and an estimated cost
(``View.autolog``); :mod:`.schedule` decides at each ``viz.step(step)`` which views are due, from the measured
training time between steps and each view's measured cost; with ``background=True`` the views run on a copy
of the weights in a worker thread (:mod:`.background`). Each call's cost goes out as the scalar
``cnnviz/cost/<view>``, and :meth:`Autolog.report` says where each view was logged.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from . import distributed, summary
from .background import WeightSnapshot, Worker, worker_nice
from .guard import LoggingFailedWarning, warn_at_user
from .methods._hooks import model_device, preserved_state
from .methods.streaming import split_batch
from .methods.tracing import keep_trace
from .schedule import Schedule
from .views import registry
from .views.declaration import LoggingRun, Scheduled
from .views.schedule import schedule_record


class AutologWarning(UserWarning):
    """What autolog could not do within its budget: a view that never fit."""


def scheduled_views() -> dict[str, tuple[str, Scheduled]]:
    """Every call autolog can make, by name, with the stem of its view."""
    return {job.name: (view.stem, job) for view in registry.declarations() for job in view.autolog}


def autolog_names() -> list[str]:
    """What ``views=`` may name: every view stem with calls to schedule, and each call."""
    return sorted({*scheduled_views(), *(stem for stem, _ in scheduled_views().values())})


def choose(views: Sequence[str] | None, data: Iterable | None, collective_ok: bool) -> tuple[list[Scheduled], dict[str, str]]:
    """The calls for ``views`` (stems or call names; None: all), and those left out with why."""
    known = scheduled_views()
    stems = {stem for stem, _ in known.values()}
    if views is not None:
        views = [views] if isinstance(views, str) else list(views)
        unknown = [view for view in views if view not in known and view not in stems]
        if unknown:
            raise ValueError(f"autolog views: unknown {unknown}; the views are {', '.join(sorted(stems))} "
                             f"(or one call of them: {', '.join(sorted(set(known) - stems))})")
    chosen, skipped = [], {}
    for name, (stem, job) in known.items():
        if views is not None and name not in views and stem not in views:
            continue
        if job.needs_data and data is None:
            if views is not None:
                raise ValueError(f"autolog: {name} reads a data set: pass data=... (a DataLoader or iterable)")
            skipped[name] = "needs data= (a DataLoader or iterable of batches)"
        elif job.collective and not collective_ok:
            skipped[name] = f"collective under DDP: call log_{stem} on every rank yourself"
        else:
            chosen.append(job)
    return chosen, skipped


class Autolog:
    """The schedule of one :class:`~tb_cnnviz.CNNViz`: made by ``viz.autolog(...)``, driven by ``viz.step``."""

    def __init__(self, viz: Any, budget: float, views: Sequence[str] | None, data: Iterable | None,
                 background: bool, min_every: int, clock: Callable[[], float] = time.perf_counter):
        self.viz, self.data, self.clock = viz, data, clock
        jobs, self.skipped = choose(views, data, collective_ok=not distributed.is_distributed())
        self.jobs = {job.name: job for job in jobs}
        run: LoggingRun = viz._run
        started = clock()
        with viz._health.paused():  # our forwards are not training inputs
            pass_seconds = self._time_one_pass(run)
        self.schedule = Schedule({job.name: job.passes(run, data) * pass_seconds for job in jobs}, budget, min_every)
        self.estimated = {name: entry.cost for name, entry in self.schedule.entries.items()}
        self.snapshot: WeightSnapshot | None = None
        self.worker: Worker | None = None
        self._background_run: LoggingRun | None = None
        if background:
            self.snapshot = WeightSnapshot(run.model)
            keep_trace(self.snapshot.model)  # here, in the training thread: tracing patches every module's call
            self._background_run = dataclasses.replace(run, model=self.snapshot.model, _cam_layer=None)
            self.worker = Worker(worker_nice(budget, torch.get_num_threads()), model_device(run.model))
        self.schedule.charge_shared(clock() - started)
        self._mark = clock()
        self._closed = False
        self._step = 0  #: the latest step seen: where close() writes the views that never fit

    def _time_one_pass(self, run: LoggingRun) -> float:
        """Seconds of one forward of the probe batch (else the first batch of the data): the unit of every
        view's estimated cost."""
        images = run.probe_images
        if images is None and self.data is not None:
            images = split_batch(next(iter(self.data)))[0]
        if images is None:
            raise ValueError("autolog needs probe images (CNNViz(probe_images=...)) or data=... to measure costs")
        model = run.model
        with preserved_state(model), torch.inference_mode():
            model.eval()
            images = images.to(model_device(model))
            model(images)  # the first call pays for lazy set-up; the second is timed
            start = self.clock()
            model(images)
            if images.is_cuda:
                torch.cuda.synchronize()
            return max(self.clock() - start, 1e-6)

    def step(self, step: int, flush: Callable[[], Any] | None = None) -> None:
        """At ``viz.step(step)``: count the training since the last step, run ``flush`` (the dead-filter flush,
        when due), then the views that are due (in the background: hand the most overdue one to the worker
        if it is free)."""
        start, self._step = self.clock(), step
        self.schedule.earn(start - self._mark)
        self._collect()
        if flush is not None:
            flush()
            self.schedule.charge_shared(self.clock() - start)
        for name in self.schedule.due(step):
            if self.worker is not None:
                if not self.worker.busy:
                    self._submit(name, step)
                break
            self._run_inline(name, step)
        self._mark = self.clock()

    def _run_inline(self, name: str, step: int) -> None:
        begin, error = self.clock(), None
        try:
            with self.viz._health.paused():
                self.jobs[name].log(self.viz._run, step, self.data)
        except Exception as exc:  # noqa: BLE001 -- one view failing never stops training (unless asked)
            error = exc
        self._done(name, step, self.clock() - begin, error)

    def _submit(self, name: str, step: int) -> None:
        begin = self.clock()
        self.snapshot.refresh()
        self.schedule.charge_shared(self.clock() - begin)
        job, run, data = self.jobs[name], self._background_run, self.data
        self.worker.submit(name, step, lambda: job.log(run, step, data), self.snapshot.ready)

    def _collect(self) -> None:
        """Charge what the worker finished."""
        if self.worker is not None:
            for done in self.worker.finished():
                self._done(done.name, done.step, done.seconds, done.error, " in the background")

    def _done(self, name: str, step: int, seconds: float, error: BaseException | None, where: str = "") -> None:
        """Charge a call's measured cost and write it; a call that failed is dropped from the schedule and
        warned about once, at the user's line (raised with ``raise_errors``)."""
        if error is None:
            self.schedule.charge(name, step, seconds)
            self._write_cost(name, step, seconds)
            return
        self.schedule.drop(name)
        self.schedule.spent += seconds
        if self.viz.raise_errors:
            raise error
        warn_at_user(f"tb_cnnviz: autolog's {name} failed{where} and is not scheduled again (training continues): "
                     f"{type(error).__name__}: {error}", LoggingFailedWarning)

    def _write_cost(self, name: str, step: int, seconds: float) -> None:
        """The cost scalar, and the Schedule view's record (with the share spent so far and the budget)."""
        self.viz._sink.write([summary.Scalar(f"cost/{name}", seconds),
                              schedule_record(name, seconds, self.schedule.share(), self.schedule.budget,
                                              self.estimated.get(name), self._order(name))], step)

    def _order(self, name: str) -> int:
        """A call's place in the tab's list: the order of the views, as autolog runs them."""
        return list(self.jobs).index(name) if name in self.jobs else len(self.jobs)

    def report(self) -> dict[str, Any]:
        """Where each view was logged and what each call cost; the views left out and why; the share of the
        training time spent logging."""
        views = {name: {"steps": list(entry.steps), "seconds": list(entry.costs),
                        "estimated_seconds": self.estimated.get(name)}
                 for name, entry in self.schedule.entries.items()}
        return {"budget": self.schedule.budget, "share": self.schedule.share(),
                "training_seconds": self.schedule.training, "logging_seconds": self.schedule.spent,
                "views": views, "skipped": dict(self.skipped)}

    def close(self) -> None:
        """Wait for the view in flight, charge it, and say once which views never fit the budget."""
        if self._closed:
            return
        self._closed = True
        if self.worker is not None:
            self.worker.close()
            self._collect()
        never = self.schedule.never_logged()
        for name, cost in never.items():  # the tab lists them too, with their cost
            self.viz._sink.write([schedule_record(name, math.nan, self.schedule.share(), self.schedule.budget, cost,
                                                  self._order(name))], self._step)
        if never and self.schedule.training > 0:  # no training seen: nothing to tell
            budget, trained = self.schedule.budget, self.schedule.training
            shares = len(self.schedule.entries)
            told = "; ".join(f"{name} ~{cost:.3g} s (needs ~{cost * shares / budget:.0f} s of training)"
                             for name, cost in sorted(never.items(), key=lambda pair: pair[1]))
            warn_at_user(f"tb_cnnviz: autolog(budget={budget:g}) never logged {', '.join(sorted(never))} in "
                         f"{trained:.0f} s of training: each costs more than its share so far. {told}. Raise "
                         "the budget, or log them yourself after training", AutologWarning)
