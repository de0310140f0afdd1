"""Views off the training loop: a copy of the weights, and one worker thread that logs views on it.

Why: an expensive view (class models, top patches over a data set) run inline stalls the training step that
calls it. In the background the step waits only for :meth:`WeightSnapshot.refresh` (a copy of every parameter
and buffer, on the device, no host sync), and a worker thread logs the view on the copy while training goes on.

On the CPU the worker competes with training for the same cores, so it runs one intra-op thread at a lower
scheduling priority, chosen so that it takes about the budget's share of the CPU while training is busy
(Linux's CFS weights; elsewhere the priority is left as is). On CUDA it runs on a stream of its own.
"""

from __future__ import annotations

import copy
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .methods._hooks import global_rng_untouched

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")

#: Linux's CFS weight of each nice value from 0 to 19 (kernel/sched/core.c, sched_prio_to_weight)
_NICE_WEIGHTS = (1024, 820, 655, 526, 423, 335, 272, 215, 172, 137, 110, 87, 70, 56, 45, 36, 29, 23, 18, 15)


def _ours(hook: Any) -> bool:
    """A hook tb_cnnviz put on the model (the dead-filter monitor's): not copied to the snapshot."""
    target = getattr(hook, "func", hook)  # functools.partial
    target = getattr(target, "__self__", target)  # a bound method: its object
    module = getattr(target, "__module__", None) or type(target).__module__
    return str(module).startswith("tb_cnnviz")


class WeightSnapshot:
    """A copy of ``model`` made once (without tb_cnnviz's own hooks and without gradients), whose weights
    :meth:`refresh` brings up to date. The worker reads only the copy, so training never waits on it."""

    def __init__(self, model: nn.Module):
        memo: dict[int, Any] = {}
        for module in model.modules():  # hooks are shared, never deep-copied (a monitor holds counts)
            for attribute in _HOOK_DICTS:
                for hook in getattr(module, attribute, {}).values():
                    memo[id(hook)] = hook
        self.model = copy.deepcopy(model, memo)
        for module in self.model.modules():
            for attribute in _HOOK_DICTS:
                hooks = getattr(module, attribute, None)
                if hooks:
                    for key in [key for key, hook in hooks.items() if _ours(hook)]:
                        del hooks[key]
        for param in self.model.parameters():
            param.grad = None
            param.requires_grad_(False)  # views switch it on where they need it, and restore it
        self._sources = [*model.parameters(), *model.buffers()]
        self._copies = [*self.model.parameters(), *self.model.buffers()]
        self._modules = list(zip(model.modules(), self.model.modules()))
        self.ready: torch.cuda.Event | None = None  #: recorded after the copy on CUDA; the worker waits on it

    def refresh(self) -> None:
        """Copy every parameter and buffer (and each module's training flag) into the snapshot, on the device."""
        with torch.no_grad():
            if hasattr(torch, "_foreach_copy_"):  # one fused call where torch has it
                torch._foreach_copy_(self._copies, [source.detach() for source in self._sources])
            else:
                for copy_, source in zip(self._copies, self._sources):
                    copy_.copy_(source.detach())
        for source, target in self._modules:
            target.training = source.training
        if self._sources and self._sources[0].is_cuda:
            self.ready = torch.cuda.Event()
            self.ready.record()


def worker_nice(budget: float, training_threads: int) -> int:
    """The nice value at which one worker thread gets about ``budget`` of the CPU beside ``training_threads``
    busy training threads at nice 0: the weight closest to budget / (1 - budget) of theirs."""
    wanted = budget / (1 - budget) * 1024 * max(1, training_threads)
    return min(range(len(_NICE_WEIGHTS)), key=lambda nice: abs(_NICE_WEIGHTS[nice] - wanted))


@dataclass
class Done:
    """A job the worker finished: its name, step and measured seconds (CPU seconds of the worker thread on
    the CPU, wall seconds on CUDA), and the error it raised, if any."""

    name: str
    step: int
    seconds: float
    error: BaseException | None = None


class Worker:
    """One thread running one job at a time; :meth:`finished` hands back what it did."""

    def __init__(self, nice: int, device: torch.device):
        self._jobs: queue.Queue = queue.Queue()
        self._done: list[Done] = []
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._nice = nice
        self._cuda = device.type == "cuda"
        self._thread = threading.Thread(target=self._run, name="tb_cnnviz-autolog", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    def submit(self, name: str, step: int, job: Callable[[], Any], ready: Any = None) -> None:
        self._idle.clear()
        self._jobs.put((name, step, job, ready))

    def finished(self) -> list[Done]:
        with self._lock:
            done, self._done = self._done, []
        return done

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the job in flight is done; False if ``timeout`` passed first."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        self.wait()
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        torch.set_num_threads(1)  # per thread under OpenMP: training keeps its threads
        if self._nice and hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
            try:  # Linux: a thread's nice value is its own
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._nice)
            except OSError:
                pass
        stream = torch.cuda.Stream() if self._cuda else None
        with global_rng_untouched():
            while True:
                item = self._jobs.get()
                if item is None:
                    return
                name, step, job, ready = item
                error = None
                start_cpu, start_wall = time.thread_time(), time.perf_counter()
                try:
                    if stream is not None:
                        with torch.cuda.stream(stream):
                            if ready is not None:
                                stream.wait_event(ready)
                            job()
                        stream.synchronize()  # this thread's stream only: training's is not waited on
                    else:
                        job()
                except Exception as exc:  # never kills training: reported by the scheduler
                    error = exc
                seconds = (time.perf_counter() - start_wall) if stream is not None else (time.thread_time() - start_cpu)
                with self._lock:
                    self._done.append(Done(name, step, seconds, error))
                self._idle.set()
