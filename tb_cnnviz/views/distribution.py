"""The Distribution view: each watched layer's activation values over training, as counts on one fixed signed
log-spaced bin set (fastai's "colorful dimension", with the negatives of SiLU / GELU / LeakyReLU binned and
NaN and infinities counted apart), written at every dead-filter flush from the counts the health monitor keeps
in the same pass (:mod:`..methods.activations.dead_filters`).

Kind ``distribution``, a float32 tensor (2, B + 3): row 0, the flush window's counts of sampled values in
slots -Inf, the B bins, +Inf, NaN; row 1, the B + 1 bin edges, NaN-padded (the edges are fixed, so steps
compare; they travel with the counts so that a file says what it binned). The content's ``health`` and
``role`` are the layer's, as for the ``dead`` kind. Where a smooth activation is watched at its input, the
values are its pre-activations (the monitor's site, see ``activation_sites``).
"""

from __future__ import annotations

import numpy as np

from .. import summary
from ..methods.activations.activation_sites import GATE
from ..methods.activations.dead_filters import DeadReport
from .declaration import View

KIND = "distribution"


def distribution_record(report: DeadReport, order: int = 0) -> summary.Rates | None:
    """One layer's value counts of one flush window; None when the monitor kept no histogram."""
    if report.histogram is None or report.edges is None:
        return None
    counts = report.histogram.numpy().astype(np.float32)
    edges = np.full(len(counts), np.nan, dtype=np.float32)
    edges[: len(report.edges)] = report.edges.numpy()
    return summary.Rates(KIND, report.layer, np.stack([counts, edges]), order, health=report.health,
                         role=GATE if report.role == GATE else None)


#: Kept by the health monitor (``CNNViz.watch_dead_filters``), written at each flush with the dead rates: no
#: logging call of its own, and nothing for ``analyze``, which sees no training.
VIEW = View(KIND)
