"""The CNNVIZ TensorBoard plugin: reads CNNVIZ summaries through ``context.data_provider`` and serves JSON
and PNG to the tab. It computes nothing heavy: every picture was made on the logging side.

Reading only through the data provider makes it work with both of TensorBoard's loaders (the Python
multiplexer, ``--load_fast=false``, and the Rust data server). Routes are thin: they parse parameters and
call a ``*_impl`` method returning plain data; see ``http_api.md`` beside this file.
"""

from __future__ import annotations

import hashlib
import json
import math
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tensorboard import errors, plugin_util
from tensorboard.backend import http_util
from tensorboard.data import provider
from tensorboard.plugins import base_plugin
import numpy as np
from werkzeug import wrappers

from . import http_params as params
from . import metadata, thinning
from .series import one_per_step


#: Read every sample the loader holds: how many it holds is set by :class:`CNNVizLoader` (TensorBoard's own
#: default for a plugin it does not know is 10 per tag) and a user's ``--samples_per_plugin``.
_ALL = 10**9
_IMAGE_MAX_AGE_S = 24 * 3600
_STATIC_ROUTE = f"/plugin/{metadata.PLUGIN_NAME}/static/"
_VERSION_LENGTH = 12  # hex digits naming a version of the frontend
_STATIC_MAX_AGE_S = 365 * 24 * 3600
_MODULES_LIST = "modules.json"  #: the static file listing the tab's modules, made from the folder
#: Columns of the dead-filter timeline (640 px at 2 px each): a longer series is answered in this many buckets,
#: so 100,000 flushes cost the tab what 320 do.
DEAD_MAX_STEPS = 320
_DEAD_MAX_STEPS_LIMIT = 100_000


def _frontend_dir() -> Path:
    """``tb_cnnviz/frontend`` in an installed wheel, the top-level ``frontend/`` in a source checkout."""
    packaged = Path(__file__).with_name("frontend")
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "frontend"




class CNNVizPlugin(base_plugin.TBPlugin):
    """Serves the CNNVIZ tab: activations, filters and dead filters over training steps, several runs."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext):
        self._provider = context.data_provider
        samples = getattr(context.flags, "samples_per_plugin", None)
        #: flushes TensorBoard keeps per layer, when a user's ``--samples_per_plugin cnnviz=N`` bounds them
        self._flush_limit = samples.get(metadata.PLUGIN_NAME, 0) if isinstance(samples, dict) else 0
        self._static_dir = _frontend_dir()
        # A whitelist of the relative paths ("index.js", "views/top.js") of the scripts and stylesheets in the folder.
        self._static_files = {
            path.relative_to(self._static_dir).as_posix()
            for path in self._static_dir.rglob("*")
            if path.suffix in (".js", ".css") and path.is_file() and path.resolve().is_relative_to(self._static_dir.resolve())
        }

    def get_plugin_apps(self) -> dict[str, Callable]:
        return {
            "/static/*": self._serve_static,
            "/static": self._serve_static,  # TensorBoard drops the trailing slash of ".../static/": a JSON 404 too
            "/runs": self._serve_runs,
            "/steps": self._serve_steps,
            "/sample": self._serve_sample,
            "/image": self._serve_image,
            "/blob": self._serve_blob,
            "/dead": self._serve_dead,
            "/dead_summary": self._serve_dead_summary,
        }

    def is_active(self) -> bool:
        return False  # activity comes from data_plugin_names(), through the data provider

    def data_plugin_names(self) -> tuple[str, ...]:
        return (metadata.PLUGIN_NAME, metadata.PICTURES_PLUGIN_NAME)

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        # Under a folder named by the frontend's version, so every module's URL carries it (imports are relative).
        return base_plugin.FrontendMetadata(es_module_path=f"/static/{self._frontend_version()}/index.js", tab_name="CNNVIZ")

    def _frontend_version(self) -> str:
        """Names the frontend's files as they are now (names, sizes, modification times): a new version of the
        tab is a new URL, so the browser may keep a version's modules (see :meth:`_serve_static`)."""
        digest = hashlib.sha256()
        for name in sorted(self._static_files):
            stat = (self._static_dir / name).stat()
            digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        return digest.hexdigest()[:_VERSION_LENGTH]

    # -- routes: parse, call *_impl, respond ---------------------------------------------------------------

    @params.json_route
    def _serve_static(self, request: wrappers.Request) -> wrappers.Response:
        """A file of the frontend, by its path (``views/top.js``) or under a version folder
        (``<version>/views/top.js``, the URLs the tab uses). The browser keeps the current version's files (they
        never change under that URL) and asks again for anything else: an older version's URL gets today's file."""
        name = request.path.split(_STATIC_ROUTE, 1)[-1]
        version, _, versioned = name.partition("/")
        max_age = 0
        if len(version) == _VERSION_LENGTH and (versioned in self._static_files or versioned == _MODULES_LIST):
            name, max_age = versioned, (_STATIC_MAX_AGE_S if version == self._frontend_version() else 0)
        if name == _MODULES_LIST:
            return http_util.Respond(request, self._modules(), "application/json", expires=max_age)
        if name not in self._static_files:  # a whitelist: no path, however spelled, escapes the folder
            raise errors.NotFoundError(f"no static file {name[:80]!r}")
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if name.endswith(".js"):
            content_type = "text/javascript"
        return http_util.Respond(request, (self._static_dir / name).read_bytes(), content_type, expires=max_age)

    def _modules(self) -> dict:
        """What the tab's entry preloads: every module but itself, and the stylesheets (the folder is the list)."""
        files = sorted(self._static_files)
        return {"modules": [name for name in files if name.endswith(".js") and name != "index.js"],
                "stylesheets": [name for name in files if name.endswith(".css")]}

    @params.json_route
    def _serve_runs(self, request: wrappers.Request) -> dict:
        return self.runs_impl(_ctx(request), _eid(request))

    @params.json_route
    def _serve_steps(self, request: wrappers.Request) -> dict:
        kind = params.kind(request, metadata.BLOB_KINDS + metadata.TENSOR_KINDS, metadata.FORMER_KINDS)
        return self.steps_impl(_ctx(request), _eid(request), params.text(request, "run"), kind, params.text(request, "layer"),
                               model=params.model(request))

    @params.json_route
    def _serve_sample(self, request: wrappers.Request) -> dict:
        kind = params.kind(request, metadata.BLOB_KINDS, metadata.FORMER_KINDS)
        return self.sample_impl(
            _ctx(request), _eid(request), params.text(request, "run"), kind, params.text(request, "layer"), params.integer(request, "step"),
            model=params.model(request),
        )

    @params.json_route
    def _serve_image(self, request: wrappers.Request) -> wrappers.Response:
        kind = params.kind(request, metadata.BLOB_KINDS, metadata.FORMER_KINDS)
        png = self.image_impl(
            _ctx(request), _eid(request), params.text(request, "run"), kind, params.text(request, "layer"),
            params.integer(request, "step"), params.integer(request, "index", minimum=0), model=params.model(request),
        )
        return http_util.Respond(request, png, "image/png", expires=_IMAGE_MAX_AGE_S)

    @params.json_route
    def _serve_blob(self, request: wrappers.Request) -> wrappers.Response:
        key = params.text(request, "key")
        try:  # the key comes from the client: the loaders fail on a bad one in their own ways
            png = self._read_blob(_ctx(request), params.text(request, "run"), key)
        except (ValueError, TypeError) as exc:
            raise errors.InvalidArgumentError(f"malformed blob key {key[:40]!r}: take keys from /sample") from exc
        except (KeyError, IndexError) as exc:
            raise errors.NotFoundError(f"no picture with blob key {key[:40]!r}") from exc
        if not png.startswith(_PNG_SIGNATURE):
            raise errors.NotFoundError("that blob is not a CNNVIZ picture")
        return http_util.Respond(request, png, "image/png", expires=_IMAGE_MAX_AGE_S)

    @params.json_route
    def _serve_dead(self, request: wrappers.Request) -> dict:
        max_steps = params.optional_integer(request, "max_steps", DEAD_MAX_STEPS, 2, _DEAD_MAX_STEPS_LIMIT)
        return self.dead_impl(_ctx(request), _eid(request), params.text(request, "run"), params.text(request, "layer"), max_steps,
                              model=params.model(request))

    @params.json_route
    def _serve_dead_summary(self, request: wrappers.Request) -> dict:
        return self.dead_summary_impl(_ctx(request), _eid(request), params.text(request, "run"), model=params.model(request))

    # -- implementations: plain data in, plain data out ------------------------------------------------------

    def _listing(
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

    def _series(self, ctx: Any, eid: str, run: str, kind: str, layer: str, model: str = "") -> Series:
        """Where one layer's series of one kind is. A tensor series has one tag named by model, kind and layer,
        so one filtered listing finds it; picture series are listed by run (their slot tags, see
        :mod:`.thinning`). A miss names the layers there are (from the run's whole listing)."""
        if kind in metadata.TENSOR_KINDS:
            tag = metadata.tag(kind, layer, model)
            found = self._provider.list_tensors(ctx, experiment_id=eid, plugin_name=self.plugin_name,
                                                run_tag_filter=provider.RunTagFilter(runs=[run], tags=[tag]))
            time_series = found.get(run, {}).get(tag)
            content = metadata.parse_plugin_content(time_series.plugin_content) if time_series is not None else None
            if content is not None and (content.kind, content.layer, content.model) == (kind, layer, model):
                return Series(content, {self.plugin_name: [tag]})
        else:  # one listing for a run written thinned, a second for files from before
            for family in ("pictures", "old pictures"):
                series = self._listing(ctx, eid, run, (family,)).get((run, model), {}).get(kind, {}).get(layer)
                if series is not None:
                    return series
        layers = self._source(self._listing(ctx, eid, run), run, model).get(kind, {})
        if layer not in layers:
            known = ", ".join(sorted(layers, key=lambda name: layers[name].content.order)) or "(none)"
            raise errors.NotFoundError(
                f"unknown layer {layer!r} in run {run!r}{_of_model(model)} (kind {kind!r}); layers are: {known}"
            )
        return layers[layer]

    @staticmethod
    def _source(listing: dict, run: str, model: str) -> dict[str, dict[str, Series]]:
        """One model's kinds in the listing of a run; a miss names the models the run has."""
        if (run, model) in listing:
            return listing[(run, model)]
        models = sorted(m for r, m in listing if r == run)
        if not models:
            raise errors.NotFoundError(f"no CNNVIZ data for run {run!r}")
        named = ", ".join(repr(m) for m in models)
        raise errors.NotFoundError(f"run {run!r} has no CNNVIZ data{_of_model(model)}; its models are: {named}")

    def runs_impl(self, ctx: Any, eid: str) -> dict:
        runs = []
        for (run, model), kinds in sorted(self._listing(ctx, eid).items()):
            entry = {"run": run, "model": model}
            for kind in metadata.BLOB_KINDS + metadata.TENSOR_KINDS:
                layers = kinds.get(kind, {})
                entry[kind] = sorted(layers, key=lambda name, layers=layers: (layers[name].content.order, name))
            runs.append(entry)
        return {"runs": runs}

    def _blob_series(self, ctx: Any, eid: str, run: str, series: Series) -> list[provider.BlobSequenceDatum]:
        """One datum per step of a picture series; a thinned one's slots merged back in the order written."""
        return [datum for datum, _ in self._merged_slots(ctx, eid, run, series)]

    def _merged_slots(self, ctx: Any, eid: str, run: str, series: Series) -> list[tuple[provider.BlobSequenceDatum, str]]:
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

    def _tensor_series(self, ctx: Any, eid: str, run: str, series: Series) -> list[provider.TensorDatum]:
        return self._tensor_serieses(ctx, eid, run, [series])[0]

    def _tensor_serieses(self, ctx: Any, eid: str, run: str, serieses: list[Series]) -> list[list[provider.TensorDatum]]:
        """Several tensor series of a run in one read (one request to the data server, not one per layer)."""
        if not serieses:
            return []
        tags = [tag for series in serieses for tag in series.tags[self.plugin_name]]
        data = self._provider.read_tensors(
            ctx, experiment_id=eid, plugin_name=self.plugin_name, downsample=_ALL,
            run_tag_filter=provider.RunTagFilter(runs=[run], tags=tags),
        ).get(run, {})
        return [one_per_step(data.get(series.tags[self.plugin_name][0], [])) for series in serieses]

    def steps_impl(self, ctx: Any, eid: str, run: str, kind: str, layer: str, model: str = "") -> dict:
        """The steps held of one series; ``written``: how many calls wrote it, where TensorBoard holds fewer
        (a thinned series, see :mod:`.thinning`, or a user's ``--samples_per_plugin``). A picture series also
        answers ``latest``, its latest step's :meth:`sample_impl` reply: the tab opens on the latest step, and
        this spares it a second request (and the server a second lookup) before the first paint."""
        series = self._series(ctx, eid, run, kind, layer, model)
        reply: dict = {"run": run, "model": model, "kind": kind, "layer": layer}
        if kind in metadata.TENSOR_KINDS:
            data, written = self._tensor_series(ctx, eid, run, series), 0
        else:
            merged = self._merged_slots(ctx, eid, run, series)
            data = [datum for datum, _ in merged]
            latest_meta = self._meta_if_readable(ctx, run, data[-1]) if data else None
            if latest_meta is not None:
                reply["latest"] = self._sample_reply(run, model, kind, layer, data[-1], latest_meta)
            written = self._calls_written(ctx, run, merged, latest_meta) if series.thinned else 0
        steps = [{"step": d.step, "wall_time": d.wall_time} for d in data]
        return {**reply, "steps": steps, "written": max(written, len(steps))}

    def _calls_written(self, ctx: Any, run: str, merged: list[tuple[provider.BlobSequenceDatum, str]],
                       latest_meta: dict | None) -> int:
        """Calls written to a thinned series, as far as the data held tell: each writing session's last datum
        held carries its index in that session (``series_index``, see ``metadata.stamp_call``); a run resumed
        from a checkpoint adds its sessions up (what a resume hid is not counted). ``latest_meta``: the meta of
        the last datum of ``merged``, already read."""
        last = {name: datum for datum, name in merged}  # per session, its latest datum held
        latest = merged[-1][0] if merged else None
        metas = (latest_meta if datum is latest else self._meta_if_readable(ctx, run, datum) for datum in last.values())
        return sum(_series_index(meta) + 1 for meta in metas)

    def _meta(self, ctx: Any, run: str, datum: provider.BlobSequenceDatum) -> dict | None:
        """A picture datum's meta JSON (its first blob), or None where it has none or it is not a JSON object.
        What the loader fails to read raises, with its own message (see :meth:`_read_blob`)."""
        if not datum.values:
            return None
        try:
            meta = json.loads(self._read_blob(ctx, run, datum.values[0].blob_key).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None
        return meta if isinstance(meta, dict) else None

    def _meta_if_readable(self, ctx: Any, run: str, datum: provider.BlobSequenceDatum) -> dict | None:
        """:meth:`_meta`, None where the loader fails: what only adds to a reply must not fail it."""
        try:
            return self._meta(ctx, run, datum)
        except errors.PublicError:
            return None

    def _datum(self, ctx: Any, eid: str, run: str, kind: str, layer: str, step: int, model: str = "") -> provider.BlobSequenceDatum:
        series = self._series(ctx, eid, run, kind, layer, model)
        for datum in self._blob_series(ctx, eid, run, series):
            if datum.step == step:
                return datum
        raise errors.NotFoundError(f"layer {layer!r} of run {run!r} has no {kind} at step {step}")

    def sample_impl(self, ctx: Any, eid: str, run: str, kind: str, layer: str, step: int, model: str = "") -> dict:
        datum = self._datum(ctx, eid, run, kind, layer, step, model)
        if not datum.values:
            raise errors.NotFoundError(f"the {kind} of {layer!r} at step {step} in run {run!r} hold no data")
        meta = self._meta(ctx, run, datum)
        if meta is None:
            raise errors.NotFoundError(f"the {kind} of {layer!r} at step {step} in run {run!r} are unreadable")
        return self._sample_reply(run, model, kind, layer, datum, meta)

    @staticmethod
    def _sample_reply(run: str, model: str, kind: str, layer: str, datum: provider.BlobSequenceDatum, meta: dict) -> dict:
        return {"run": run, "model": model, "kind": kind, "layer": layer, "step": datum.step, "wall_time": datum.wall_time,
                "images": len(datum.values) - 1, "blobs": [v.blob_key for v in datum.values[1:]], "meta": meta}

    def image_impl(self, ctx: Any, eid: str, run: str, kind: str, layer: str, step: int, index: int, model: str = "") -> bytes:
        datum = self._datum(ctx, eid, run, kind, layer, step, model)
        if index >= len(datum.values) - 1:
            raise errors.NotFoundError(
                f"image index {index} out of range: the {kind} of {layer!r} at step {step} hold "
                f"{max(0, len(datum.values) - 1)} image(s)"
            )
        return self._read_blob(ctx, run, datum.values[index + 1].blob_key)

    def _read_blob(self, ctx: Any, run: str, blob_key: str) -> bytes:
        try:
            return self._provider.read_blob(ctx, blob_key=blob_key)
        except errors.InvalidArgumentError as exc:
            # TensorBoard's Rust data server (0.7) mints blob keys it cannot parse back when the run name needs
            # JSON escapes (quotes, backslashes, non-ASCII). Say so, and what works.
            raise errors.InvalidArgumentError(
                f"TensorBoard's data server could not read a picture of run {run!r} ({exc}); run names with "
                "quotes, backslashes or non-ASCII characters need `tensorboard --load_fast=false`"
            ) from exc

    def dead_impl(self, ctx: Any, eid: str, run: str, layer: str, max_steps: int = DEAD_MAX_STEPS, model: str = "") -> dict:
        """The series of one layer; over ``max_steps`` flushes, in ``max_steps`` buckets (see :func:`dead_buckets`)."""
        found = self._series(ctx, eid, run, metadata.DEAD, layer, model)
        content = found.content
        series = self._tensor_series(ctx, eid, run, found)
        steps = [d.step for d in series]
        rows = [d.numpy.reshape(-1) for d in series]
        reply = {"run": run, "model": model, "layer": layer, "channels": len(rows[-1]) if rows else 0,
                 "threshold": content.threshold, "health": content.health or "dead",
                 # TensorBoard held as many flushes as the user's flag allows: more may have been written
                 "held_limit": self._flush_limit if 0 < self._flush_limit <= len(rows) else None}
        if len(rows) <= max_steps:
            return {**reply, "steps": steps, "rates": [_json_rates(row) for row in rows], "downsampled": None}
        width = max(len(row) for row in rows)
        rates = np.full((len(rows), width), np.nan, dtype=np.float32)  # a layer that changed width: NaN pads
        for i, row in enumerate(rows):
            rates[i, : len(row)] = row
        first, last, highest, lowest = dead_buckets(np.asarray(steps), rates, max_steps)
        return {**reply, "steps": last, "rates": [_json_rates(row) for row in highest],
                "downsampled": {"flushes": len(rows), "first_steps": first,
                                "min_rates": [_json_rates(row) for row in lowest]}}

    def dead_summary_impl(self, ctx: Any, eid: str, run: str, model: str = "") -> dict:
        listing = self._listing(ctx, eid, run, ("tensors",))  # the flushes are tensors: one listing, not three
        if (run, model) not in listing:  # no tensors: a run of pictures only has no layer watched, not no data
            listing = self._listing(ctx, eid, run)
        kinds = self._source(listing, run, model)
        layers = {}
        watched = sorted(kinds.get(metadata.DEAD, {}).items(), key=lambda kv: kv[1].content.order)
        read = self._tensor_serieses(ctx, eid, run, [found for _, found in watched])
        for (layer, found), series in zip(watched, read):
            content = found.content
            if not series:
                continue
            rates = series[-1].numpy.reshape(-1)
            threshold = content.threshold if content.threshold is not None else 1.0
            off = [int(i) for i in (rates >= threshold).nonzero()[0]]
            health = content.health or "dead"  # older files: every watched layer was a ReLU's
            layers[layer] = {"step": series[-1].step, "channels": int(rates.size), "threshold": threshold,
                             "health": health, "dead": off if health == "dead" else [],
                             "dormant": off if health == "dormant" else []}
        return {"run": run, "model": model, "layers": layers}


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Series:
    """One kind of one layer of a run: its tags under each of our plugin names. A thinned series has several
    (its slot tags, under ``metadata.PICTURES_PLUGIN_NAME``; see :mod:`.thinning`)."""

    content: metadata.PluginContent
    tags: dict[str, list[str]] = field(default_factory=dict)  #: plugin name -> tags

    @property
    def thinned(self) -> bool:
        return metadata.PICTURES_PLUGIN_NAME in self.tags


def dead_buckets(steps: np.ndarray, rates: np.ndarray, columns: int) -> tuple[list[int], list[int], np.ndarray, np.ndarray]:
    """(F,) steps and (F, C) rates of F > ``columns`` flushes -> per column its first and last step and, per
    channel, the highest and lowest rate in it. The latest flush keeps a column of its own (the tab reads the
    current dead channels there); the others share ``columns - 1`` runs of consecutive flushes. The highest
    rate is what the timeline draws, so a channel dead for one flush never disappears into its neighbours."""
    count = len(steps) - 1
    starts = np.arange(columns - 1) * count // (columns - 1)
    ends = np.append(starts[1:], count) - 1
    highest = np.vstack([np.fmax.reduceat(rates[:count], starts, axis=0), rates[-1:]])
    lowest = np.vstack([np.fmin.reduceat(rates[:count], starts, axis=0), rates[-1:]])
    first = [*steps[starts].tolist(), int(steps[-1])]
    last = [*steps[ends].tolist(), int(steps[-1])]
    return first, last, highest, lowest


def _series_index(meta: dict | None) -> int:
    """The ``series_index`` in a picture's meta; -1 where there is none."""
    index = meta.get("series_index") if meta is not None else None
    return index if isinstance(index, int) and not isinstance(index, bool) and index >= 0 else -1


def _of_model(model: str) -> str:
    return f" (model {model!r})" if model else ""


def _json_rates(row: np.ndarray) -> list[float | None]:
    """Rates rounded to 4 places; a channel without a rate (NaN) as null."""
    values = row.astype(float).round(4).tolist()
    return [None if math.isnan(v) else v for v in values] if np.isnan(row).any() else values


def _ctx(request: wrappers.Request) -> Any:
    return plugin_util.context(request.environ)


def _eid(request: wrappers.Request) -> str:
    return plugin_util.experiment_id(request.environ)


class CNNVizLoader(base_plugin.TBLoader):
    """Loads the plugin and sets how many samples TensorBoard keeps of our data (both loaders read the flag).

    Unless the user says otherwise with ``--samples_per_plugin``: every dead-filter flush (``cnnviz``: all;
    they are small and the timeline needs them) and one sample per slot tag of a thinned picture series
    (``cnnviz_pictures``: 1, the last written to it; see :mod:`.thinning`), so memory does not grow with the
    run. A user's ``cnnviz=N`` also applies to the picture slots, where ``cnnviz_pictures`` is not given:
    ``cnnviz=0`` (TensorBoard's "all") keeps every step of every view."""

    def fix_flags(self, flags: Any) -> None:
        samples = getattr(flags, "samples_per_plugin", None)
        if not isinstance(samples, dict):
            return
        user = samples.get(metadata.PLUGIN_NAME)
        samples.setdefault(metadata.PICTURES_PLUGIN_NAME, 1 if user is None else user)
        samples.setdefault(metadata.PLUGIN_NAME, 0)  # 0: keep all (the data server's "all")

    def load(self, context: base_plugin.TBContext) -> CNNVizPlugin:
        return CNNVizPlugin(context)
