"""Even thinning of a long run's pictures, decided when they are written. No torch here.

TensorBoard bounds its memory by keeping a few samples per tag (``--samples_per_plugin``), chosen at random by
reservoir sampling; only the latest is sure to stay. For a view over training steps we want the first and the
latest step and the rest spread evenly over the run. So the writer spreads each series (one kind of one layer)
over ``keep`` *slot* tags plus a ``latest`` one, and TensorBoard keeps one sample per tag -- the last written
to it. Which slot a call goes to is a pure function of its index in the series:

* calls whose index is a multiple of the stride ``s`` (1 at first) are kept, each in a slot of its own;
* when every slot holds a kept call and one more is due, ``s`` doubles: the slots holding odd multiples of the
  old stride are free again (what they hold stays visible until overwritten);
* every other call goes to the ``latest`` slot, so the newest call is always there.

TensorBoard then holds at most ``keep + 1`` calls of a series however long the run is: call 0, a grid of
stride ``s`` over the run, and the latest. The plugin merges the slots back into one series (see
:func:`base_tag`).
"""

from __future__ import annotations

#: Slots per series by default: TensorBoard then holds 17 steps of each view, between 9 and 17 of them on an
#: even grid. Its own images plugin keeps 10 random samples per tag.
DEFAULT_KEEP = 16
LATEST = "latest"
SEPARATOR = "@"  #: ``<tag>@<slot>``; layer names never contain it (module paths and ``#k`` call suffixes)


def check_keep(keep: object) -> int:
    """Slots per series: an int of at least 2 (one for call 0, one for the grid)."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 2:
        raise ValueError(f"keep must be an int >= 2 (slots per series); got {keep!r}")
    return keep


class SeriesThinning:
    """Which slot each call of one series goes to, one call after another."""

    def __init__(self, keep: int = DEFAULT_KEEP):
        self.keep = check_keep(keep)
        self.calls = 0  #: calls placed so far
        self._stride = 1
        self._slots: list[int | None] = [None] * keep  # the call index each slot holds

    def place(self) -> str:
        """The slot of the next call: ``"0"`` .. ``str(keep - 1)`` or :data:`LATEST`."""
        index, self.calls = self.calls, self.calls + 1
        if index % self._stride:
            return LATEST
        free = self._free_slot()
        if free is None:  # every slot holds a call on the grid: coarsen it
            self._stride *= 2
            if index % self._stride:
                return LATEST
            free = self._free_slot()
        self._slots[free] = index
        return str(free)

    def _free_slot(self) -> int | None:
        for slot, held in enumerate(self._slots):
            if held is None or held % self._stride:
                return slot
        return None


def slot_tag(tag: str, slot: str, session: str = "") -> str:
    """``cnnviz/activations/conv1`` -> ``cnnviz/activations/conv1@3`` (``@r500.3`` in a run resumed at step 500:
    each resumed session thins its calls apart, so it never overwrites what the sessions before kept)."""
    return f"{tag}{SEPARATOR}{session}{slot}"


def session_of(tag: str) -> str:
    """The writing session a slot tag belongs to: ``""`` for a run's first, ``"r500."`` for one resumed at 500."""
    slot = tag.rsplit(SEPARATOR, 1)[1] if SEPARATOR in tag else ""
    return slot.rsplit(".", 1)[0] + "." if "." in slot else ""


def base_tag(tag: str) -> str:
    """The series a slot tag belongs to (a tag without a slot is its own series)."""
    return tag.rsplit(SEPARATOR, 1)[0]
