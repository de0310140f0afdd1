"""The arithmetic of ``autolog``: which views to log at a step so that logging stays within a share of training.

Why a module of its own, with no torch and no clock: the policy is exact arithmetic over measured seconds, tested
with a fake clock; :mod:`.autolog` measures and calls. The policy is a fair share: every view earns
``budget / n`` of each second of training as credit, and is due when its credit covers its cost (an estimate
until it has run once, then the last measured cost). A cheap view is due often, an expensive one rarely, and
the time spent never runs ahead of ``budget`` x the training time by more than one view's misestimate. A view
that cannot use its credit (logged at every step it may be) passes the excess to the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class Entry:
    """One view's account: credit earned and not spent, its cost (estimated, then measured), where it ran."""

    cost: float
    measured: bool = False
    credit: float = 0.0
    steps: list[int] = field(default_factory=list)  #: the steps it was logged at
    costs: list[float] = field(default_factory=list)  #: the measured seconds of each of those calls
    last_step: int | None = None


class Schedule:
    """A fair share of ``budget`` x training time among views, each logged when its share covers its cost.

    ``estimates``: each view's cost in seconds before it is measured; ``min_every``: at most one call of a
    view per this many steps (a cheap view is not written at every step).
    """

    def __init__(self, estimates: Mapping[str, float], budget: float, min_every: int = 1):
        if not 0 < budget < 1:
            raise ValueError(f"budget must be a share of training time in (0, 1), e.g. 0.05; got {budget!r}")
        if min_every < 1:
            raise ValueError(f"min_every must be >= 1; got {min_every!r}")
        self.budget = float(budget)
        self.min_every = int(min_every)
        self.entries = {name: Entry(cost=max(float(cost), 0.0)) for name, cost in estimates.items()}
        self.training = 0.0  #: seconds of training seen (between steps, tb_cnnviz's own time excluded)
        self.spent = 0.0  #: seconds spent logging (every charge)

    def earn(self, training_seconds: float) -> None:
        """``training_seconds`` more of training: each view earns its share; a view whose credit is above what
        it can spend (twice its cost) passes the excess to the views still saving."""
        if training_seconds <= 0 or not self.entries:
            return
        self.training += training_seconds
        pool = self.budget * training_seconds
        saving = list(self.entries.values())
        while pool > 1e-15 and saving:
            share, pool = pool / len(saving), 0.0
            still = []
            for entry in saving:
                entry.credit += share
                cap = 2 * entry.cost
                if entry.measured and entry.credit > cap:  # an unmeasured view saves until it has run once
                    pool += entry.credit - cap
                    entry.credit = cap
                else:
                    still.append(entry)
            saving = still

    def due(self, step: int) -> list[str]:
        """The views to log at ``step``, the most overdue (credit over cost) first."""
        ready = [(entry.credit / entry.cost if entry.cost > 0 else float("inf"), name)
                 for name, entry in self.entries.items()
                 if entry.credit >= entry.cost
                 and (entry.last_step is None or step - entry.last_step >= self.min_every)]
        return [name for _, name in sorted(ready, key=lambda pair: -pair[0])]

    def charge(self, name: str, step: int, seconds: float) -> None:
        """``name`` was logged at ``step`` and took ``seconds``: spend its credit, remember the cost."""
        entry = self.entries[name]
        entry.credit -= seconds
        entry.cost, entry.measured = max(seconds, 1e-9), True
        entry.steps.append(int(step))
        entry.costs.append(float(seconds))
        entry.last_step = int(step)
        self.spent += seconds

    def charge_shared(self, seconds: float) -> None:
        """Time spent for no one view (the dead-filter flush, a snapshot): taken from every view's credit."""
        if self.entries:
            for entry in self.entries.values():
                entry.credit -= seconds / len(self.entries)
        self.spent += seconds

    def drop(self, name: str) -> None:
        """A view that failed is not scheduled again."""
        self.entries.pop(name, None)

    def never_logged(self) -> dict[str, float]:
        """Views not logged yet, with their cost (estimated)."""
        return {name: entry.cost for name, entry in self.entries.items() if not entry.steps}

    def share(self) -> float:
        """Time spent logging over training time so far."""
        return self.spent / self.training if self.training > 0 else 0.0
