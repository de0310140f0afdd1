"""The on-disk contract between the writer and the plugin: the only module both import.

A summary's ``SummaryMetadata.plugin_data`` holds ``plugin_name = "cnnviz"`` and a JSON object with the
format ``version``, the ``kind`` of data and the ``layer`` it belongs to. TensorBoard keeps the metadata of a
tag's *first* event only, so anything that changes per step lives in the data itself (blob 0 of a blob
sequence is that step's JSON). Picture series of a long run are written thinned (:mod:`.thinning`): under
the plugin name ``cnnviz_pictures``, tags ``<tag>@<slot>``, each meta JSON with its ``series_index``.
``data_class`` is always set: TensorBoard infers it only for its own plugins, and without it a third-party
plugin's data silently does not show.

Kinds: each view's stem (``views/registry.py`` lists them, with how each is stored); what a kind's blobs or
tensor hold is said in the docstring of its view module, ``tb_cnnviz/views/<stem>.py``. Views also write
ordinary scalars (``cnnviz/dead_fraction/<layer>``, ``cnnviz/filter_noise/<layer>``, ...) and PR curves in
TensorBoard's own formats, for its own tabs. A view's records are encoded once, by :mod:`.summary`, when the
sink knows the model, the thinning slot and the call's index in its series.

Several models in one run (a GAN's generator and discriminator): each ``CNNViz(..., name=...)`` writes its tags
under ``cnnviz.<name>/`` instead of ``cnnviz/`` (so the Scalars tab groups each model's scalars) and its
plugin content says ``"model": name``, in format version 2 so that a reader of version 1 skips it with a
warning rather than mixing the models up. Data without a model (format 1, every file written before) belongs
to the unnamed model ``""``.
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass

from tensorboard.compat.proto import summary_pb2

from .views import registry

PLUGIN_NAME = "cnnviz"
#: The pictures of a thinned series (see :mod:`.thinning`) go under a plugin name of their own, whose samples
#: TensorBoard keeps one per tag; everything under :data:`PLUGIN_NAME` (dead-filter flushes, files written
#: before thinning) is kept whole. Both are ours: the plugin reads both.
PICTURES_PLUGIN_NAME = "cnnviz_pictures"
FORMAT_VERSION = 2  #: 2 adds the model's name; unnamed data is still written as 1

_DATA_CLASSES = {registry.PICTURES: summary_pb2.DATA_CLASS_BLOB_SEQUENCE, registry.TENSOR: summary_pb2.DATA_CLASS_TENSOR}
#: Every kind this reader knows (a view's stem, see ``views/registry.py``) -> its ``data_class``.
DATA_CLASS = {view.stem: _DATA_CLASSES[view.stored_as] for view in registry.VIEWS}
BLOB_KINDS = tuple(view.stem for view in registry.VIEWS if view.stored_as == registry.PICTURES)
TENSOR_KINDS = tuple(view.stem for view in registry.VIEWS if view.stored_as == registry.TENSOR)
#: A kind older files wrote -> the view's stem it is read as.
FORMER_KINDS = {old: view.stem for view in registry.VIEWS for old in view.formerly}


def __getattr__(name: str) -> str:
    """``metadata.ACTIVATIONS`` and the like: a view's kind by its upper-cased stem (or a former kind's name,
    ``metadata.TOP``), so that no kind is spelled here beside the registry."""
    kind = FORMER_KINDS.get(name.lower(), name.lower())
    if name.isupper() and kind in DATA_CLASS:
        return kind
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def canonical_kind(kind: str) -> str:
    """The stem a kind is read as: itself, or the view that a former kind became."""
    return FORMER_KINDS.get(kind, kind)


TAG_PREFIX = "cnnviz"
HEALTH_STATES = ("dead", "dormant")  #: what an off channel of a ``dead``-kind layer is
#: A ``dead``-kind layer's role: "gate" for the squeeze path of a squeeze-and-excitation block (its channels set
#: a per-image gate, they are not feature channels); files without it (all others) hold feature channels.
HEALTH_ROLES = ("gate",)


@dataclass(frozen=True)
class PluginContent:
    """What ``plugin_data.content`` says about a tag."""

    kind: str
    layer: str
    order: int = 0  #: position of the layer in the model's forward pass
    threshold: float | None = None  #: dead kind: rate at or above which a channel is dead
    version: int = FORMAT_VERSION
    health: str | None = None  #: dead kind: "dead" or "dormant" (None, in older files: "dead")
    model: str = ""  #: the name of the CNNViz instance that wrote it ("" unnamed)
    role: str | None = None  #: dead kind: "gate" (a squeeze-and-excitation block's squeeze path), else None


def tag_prefix(model: str = "") -> str:
    """``cnnviz`` for the unnamed model, ``cnnviz.<model>`` for a named one."""
    return f"{TAG_PREFIX}.{model}" if model else TAG_PREFIX


def tag(kind: str, layer: str, model: str = "") -> str:
    return f"{tag_prefix(model)}/{kind}/{layer}"


def check_model_name(name: object) -> str:
    """A model name goes into tags: text, not empty, without ``/`` (it would split the Scalars tab's groups)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str naming the model (e.g. 'discriminator'); got {type(name).__name__}")
    if not name or "/" in name or not name.isprintable():
        raise ValueError(f"name must be non-empty printable text without '/' (e.g. 'discriminator'); got {name!r}")
    return name


def create_summary_metadata(content: PluginContent) -> summary_pb2.SummaryMetadata:
    if content.kind not in DATA_CLASS:
        raise ValueError(f"unknown kind {content.kind!r}; kinds are {sorted(DATA_CLASS)}")
    payload = {"version": FORMAT_VERSION if content.model else 1, "kind": content.kind, "layer": content.layer,
               "order": content.order}
    if content.model:
        payload["model"] = content.model
    if content.threshold is not None:
        payload["threshold"] = content.threshold
    if content.health is not None:
        if content.health not in HEALTH_STATES:
            raise ValueError(f"health must be one of {HEALTH_STATES}; got {content.health!r}")
        payload["health"] = content.health
    if content.role is not None:
        if content.role not in HEALTH_ROLES:
            raise ValueError(f"role must be one of {HEALTH_ROLES} or None (a feature layer); got {content.role!r}")
        payload["role"] = content.role
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=json.dumps(payload).encode("utf-8")
        ),
        data_class=DATA_CLASS[content.kind],
    )


_warned_versions: set[int] = set()


@functools.lru_cache(maxsize=4096)  # a thinned series' slot tags share one content: parsed once, not 17 times
def parse_plugin_content(content: bytes) -> PluginContent | None:
    """Parse ``plugin_data.content``; ``None`` for data this reader cannot use (malformed, or written by a
    newer tb_cnnviz: skipped with one warning per version, never an error)."""
    try:
        payload = json.loads(content.decode("utf-8"))
        version = int(payload.get("version", 0))
        kind, layer = payload["kind"], payload["layer"]
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        return None
    if version > FORMAT_VERSION:
        if version not in _warned_versions:
            _warned_versions.add(version)
            warnings.warn(
                f"tb_cnnviz: skipping data in format version {version}; this reader knows up to "
                f"{FORMAT_VERSION}. Upgrade tb_cnnviz to see it.",
                stacklevel=2,
            )
        return None
    model = payload.get("model", "")
    kind = FORMER_KINDS.get(kind, kind) if isinstance(kind, str) else kind
    if kind not in DATA_CLASS or not isinstance(layer, str) or not isinstance(model, str):
        return None
    threshold = payload.get("threshold")
    return PluginContent(
        kind=kind,
        layer=layer,
        order=int(payload.get("order", 0)),
        threshold=float(threshold) if isinstance(threshold, (int, float)) else None,
        version=version,
        health=payload["health"] if payload.get("health") in HEALTH_STATES else None,
        model=model,
        role=payload["role"] if payload.get("role") in HEALTH_ROLES else None,
    )
