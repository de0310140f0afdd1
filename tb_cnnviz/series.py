"""How the plugin reads a series (one kind of one layer of a run) through TensorBoard's data provider: where its
tags are, its data one datum per step (a thinned series' slots merged back), its pictures and meta JSON. Shared
by the plugin's generic routes (``plugin.py``) and the dead-filter routes (``dead_routes.py``). No torch here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tensorboard import errors
from tensorboard.data import provider

from . import metadata, thinning

#: Read every sample the loader holds: how many it holds is set by ``plugin.CNNVizLoader`` (TensorBoard's own
#: default for a plugin it does not know is 10 per tag) and a user's ``--samples_per_plugin``.
_ALL = 10**9


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


@dataclass
class Series:
    """One kind of one layer of a run: its tags under each of our plugin names. A thinned series has several
    (its slot tags, under ``metadata.PICTURES_PLUGIN_NAME``; see :mod:`.thinning`)."""

    content: metadata.PluginContent
    tags: dict[str, list[str]] = field(default_factory=dict)  #: plugin name -> tags

    @property
    def thinned(self) -> bool:
        return metadata.PICTURES_PLUGIN_NAME in self.tags


class SeriesReader:
    """Reads CNNVIZ series through a data provider (either of TensorBoard's loaders)."""

    def __init__(self, data_provider: provider.DataProvider):
        self._provider = data_provider

    def listing(
        self, ctx: Any, eid: str, run: str | None = None,
        families: tuple[str, ...] = ("pictures", "old pictures", "tensors"),
    ) -> dict[tuple[str, str], dict[str, dict[str, Series]]]:
        """(run, model) -> kind -> layer -> :class:`Series`, for every CNNVIZ tag this reader understands (of
        the ``families`` asked for: each is one request to the data server). Each model of a run (a CNNViz
        instance given a ``name``) is listed apart, like a run of its own."""
        run_filter = provider.RunTagFilter(runs=[run]) if run is not None else None
        lists = {"pictures": (self._provider.list_blob_sequences, metadata.PICTURES_PLUGIN_NAME),
                 "old pictures": (self._provider.list_blob_sequences, metadata.PLUGIN_NAME),  # before thinning
                 "tensors": (self._provider.list_tensors, metadata.PLUGIN_NAME)}
        found: dict[tuple[str, str], dict[str, dict[str, Series]]] = {}
        for lister, plugin_name in (lists[family] for family in families):
            by_run = lister(ctx, experiment_id=eid, plugin_name=plugin_name, run_tag_filter=run_filter)
            for run_name, tags in by_run.items():
                for tag, time_series in tags.items():
                    content = metadata.parse_plugin_content(time_series.plugin_content)
                    if content is None:
                        continue
                    layers = found.setdefault((run_name, content.model), {}).setdefault(content.kind, {})
                    series = layers.setdefault(content.layer, Series(content))
                    series.tags.setdefault(plugin_name, []).append(tag)
        return found

    def series(self, ctx: Any, eid: str, run: str, kind: str, layer: str, model: str = "") -> Series:
        """Where one layer's series of one kind is. A tensor series has one tag named by model, kind and layer,
        so one filtered listing finds it; picture series are listed by run (their slot tags, see
        :mod:`.thinning`). A miss names the layers there are (from the run's whole listing)."""
        if kind in metadata.TENSOR_KINDS:
            tag = metadata.tag(kind, layer, model)
            found = self._provider.list_tensors(ctx, experiment_id=eid, plugin_name=metadata.PLUGIN_NAME,
                                                run_tag_filter=provider.RunTagFilter(runs=[run], tags=[tag]))
            time_series = found.get(run, {}).get(tag)
            content = metadata.parse_plugin_content(time_series.plugin_content) if time_series is not None else None
            if content is not None and (content.kind, content.layer, content.model) == (kind, layer, model):
                return Series(content, {metadata.PLUGIN_NAME: [tag]})
        else:  # one listing for a run written thinned, a second for files from before
            for family in ("pictures", "old pictures"):
                series = self.listing(ctx, eid, run, (family,)).get((run, model), {}).get(kind, {}).get(layer)
                if series is not None:
                    return series
        layers = self.source(self.listing(ctx, eid, run), run, model).get(kind, {})
        if layer not in layers:
            known = ", ".join(sorted(layers, key=lambda name: layers[name].content.order)) or "(none)"
            raise errors.NotFoundError(
                f"unknown layer {layer!r} in run {run!r}{_of_model(model)} (kind {kind!r}); layers are: {known}"
            )
        return layers[layer]

    @staticmethod
    def source(listing: dict, run: str, model: str) -> dict[str, dict[str, Series]]:
        """One model's kinds in the listing of a run; a miss names the models the run has."""
        if (run, model) in listing:
            return listing[(run, model)]
        models = sorted(m for r, m in listing if r == run)
        if not models:
            raise errors.NotFoundError(f"no CNNVIZ data for run {run!r}")
        named = ", ".join(repr(m) for m in models)
        raise errors.NotFoundError(f"run {run!r} has no CNNVIZ data{_of_model(model)}; its models are: {named}")

    def blob_series(self, ctx: Any, eid: str, run: str, series: Series) -> list[provider.BlobSequenceDatum]:
        """One datum per step of a picture series; a thinned one's slots merged back in the order written."""
        return [datum for datum, _ in self.merged_slots(ctx, eid, run, series)]

    def merged_slots(self, ctx: Any, eid: str, run: str, series: Series) -> list[tuple[provider.BlobSequenceDatum, str]]:
        """:meth:`_blob_series`, each datum with the session that wrote it (see ``thinning.session_of``)."""
        read = []
        for plugin_name, tags in series.tags.items():
            found = self._provider.read_blob_sequences(
                ctx, experiment_id=eid, plugin_name=plugin_name, downsample=_ALL,
                run_tag_filter=provider.RunTagFilter(runs=[run], tags=tags),
            ).get(run, {})
            read += [(datum, thinning.session_of(tag)) for tag in tags for datum in found.get(tag, [])]
        if series.thinned:  # one_per_step wants the order of writing: the wall time, as each slot holds its last
            read.sort(key=lambda pair: (pair[0].wall_time, pair[0].step))
        session = {id(datum): name for datum, name in read}
        return [(datum, session[id(datum)]) for datum in one_per_step([datum for datum, _ in read])]

    def tensor_series(self, ctx: Any, eid: str, run: str, series: Series) -> list[provider.TensorDatum]:
        return self.tensor_serieses(ctx, eid, run, [series])[0]

    def tensor_serieses(self, ctx: Any, eid: str, run: str, serieses: list[Series]) -> list[list[provider.TensorDatum]]:
        """Several tensor series of a run in one read (one request to the data server, not one per layer)."""
        if not serieses:
            return []
        tags = [tag for series in serieses for tag in series.tags[metadata.PLUGIN_NAME]]
        data = self._provider.read_tensors(
            ctx, experiment_id=eid, plugin_name=metadata.PLUGIN_NAME, downsample=_ALL,
            run_tag_filter=provider.RunTagFilter(runs=[run], tags=tags),
        ).get(run, {})
        return [one_per_step(data.get(series.tags[metadata.PLUGIN_NAME][0], [])) for series in serieses]

    def meta(self, ctx: Any, run: str, datum: provider.BlobSequenceDatum) -> dict | None:
        """A picture datum's meta JSON (its first blob), or None where it has none or it is not a JSON object.
        What the loader fails to read raises, with its own message (see :meth:`_read_blob`)."""
        if not datum.values:
            return None
        try:
            meta = json.loads(self.read_blob(ctx, run, datum.values[0].blob_key).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None
        return meta if isinstance(meta, dict) else None

    def meta_if_readable(self, ctx: Any, run: str, datum: provider.BlobSequenceDatum) -> dict | None:
        """:meth:`_meta`, None where the loader fails: what only adds to a reply must not fail it."""
        try:
            return self.meta(ctx, run, datum)
        except errors.PublicError:
            return None

    def read_blob(self, ctx: Any, run: str, blob_key: str) -> bytes:
        try:
            return self._provider.read_blob(ctx, blob_key=blob_key)
        except errors.InvalidArgumentError as exc:
            # TensorBoard's Rust data server (0.7) mints blob keys it cannot parse back when the run name needs
            # JSON escapes (quotes, backslashes, non-ASCII). Say so, and what works.
            raise errors.InvalidArgumentError(
                f"TensorBoard's data server could not read a picture of run {run!r} ({exc}); run names with "
                "quotes, backslashes or non-ASCII characters need `tensorboard --load_fast=false`"
            ) from exc


def _of_model(model: str) -> str:
    return f" (model {model!r})" if model else ""
