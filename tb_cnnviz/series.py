"""What the plugin makes of a tag's data as a loader hands them over: one datum per step. No torch here."""

from __future__ import annotations


def one_per_step(series: list) -> list:
    """A tag's data in the order the loader read them -> one datum per step, ascending, the latest written.

    A run resumed from a checkpoint logs its steps again. TensorBoard's Rust data server then drops every
    datum at or after the step a tag goes back to (its "preemption"), while the Python loader hands tensors
    over as written: ``[0, 1, 2, 3, 4, 2, 3, 6]``. Applying the data server's rule here gives both loaders the
    same ``[0, 1, 2, 3, 6]`` (the resumed run's 2 and 3; the orphaned 4 gone). Linear, and a no-op (no
    copy) for a series whose steps already increase."""
    if all(a.step < b.step for a, b in zip(series, series[1:])):
        return series
    kept: list = []
    for datum in series:
        while kept and kept[-1].step >= datum.step:
            kept.pop()
        kept.append(datum)
    return kept
