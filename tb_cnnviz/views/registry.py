"""Every view, in tab order: the one Python line a new view adds (the frontend's is ``frontend/registry.js``).

A view's *stem* names it everywhere: its kind on disk, ``tb_cnnviz/views/<stem>.py`` (which declares how it
is logged, see :mod:`.declaration`), ``frontend/views/<stem>.js``, its ``--views`` name in ``tb-cnnviz
analyze``. This line adds what the reader must know without importing torch (the plugin runs inside
TensorBoard): whether the kind is stored as a blob sequence (pictures and their meta JSON) or a float tensor,
and the kinds older files wrote for it, still read as this view.

No torch here: :mod:`tb_cnnviz.metadata` (and so the plugin) builds its kind tables from this list.
"""

from __future__ import annotations

from dataclasses import dataclass

PICTURES = "pictures"  #: a blob sequence: [meta JSON, PNG, ...]
TENSOR = "tensor"  #: a float32 tensor


@dataclass(frozen=True)
class Kind:
    """What the reader knows of one view's data."""

    stem: str
    stored_as: str = PICTURES
    formerly: tuple[str, ...] = ()  #: kinds that files written before the view's rename carry


VIEWS = (
    Kind("activations"),
    Kind("filters"),
    Kind("dead", TENSOR),
    Kind("distribution", TENSOR),
    Kind("attribution"),
    Kind("top_activations", formerly=("top",)),
    Kind("embedding"),
    Kind("performance"),
    Kind("inversion"),
    Kind("class_models", formerly=("class_model",)),
    Kind("channel_images", formerly=("channel_vis",)),
    Kind("correspondence"),
    Kind("schedule", TENSOR),
)

STEMS = tuple(view.stem for view in VIEWS)


def declarations() -> list:
    """Each view module's ``VIEW`` (see :mod:`.declaration`), in tab order. Imports the view modules, and so
    torch: for the logging side, never the plugin."""
    import importlib

    return [importlib.import_module(f"{__package__}.{stem}").VIEW for stem in STEMS]
