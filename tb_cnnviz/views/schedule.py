"""The Schedule view: what ``CNNViz.autolog`` logged, when, and at what measured cost, so that a user leaving
every view on sees where the budget goes, in the tab beside the views themselves.

Kind ``schedule``, a float32 tensor (4,) per autolog call, named by the call (``activations``,
``grad_cam``, ...): [seconds it took (NaN: it never ran, see the estimate), the share of training time spent
logging so far, the budget, the estimated seconds it was first scheduled at]. A call that never fit the budget
gets one record with NaN seconds at ``close()``. The same seconds go out as ``cnnviz/cost/<call>`` scalars.
"""

from __future__ import annotations

import math

import numpy as np

from .. import summary
from .declaration import View

KIND = "schedule"


def schedule_record(name: str, seconds: float, share: float, budget: float, estimated: float | None,
                    order: int = 0) -> summary.Rates:
    """One autolog call at its step: its cost, the share spent so far, the budget and its first estimate."""
    values = [seconds, share, budget, math.nan if estimated is None else estimated]
    return summary.Rates(KIND, name, np.array(values, dtype=np.float32), order)


#: Written by ``CNNViz.autolog`` as it runs the other views: no logging call of its own, nothing for ``analyze``.
VIEW = View(KIND)
