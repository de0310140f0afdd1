"""The CNNVIZ TensorBoard plugin: reads CNNVIZ summaries through ``context.data_provider`` and serves JSON
and PNG to the tab. It computes nothing heavy: every picture was made on the logging side.

Reading only through the data provider makes it work with both of TensorBoard's loaders (the Python
multiplexer, ``--load_fast=false``, and the Rust data server). Routes are thin: they parse parameters and
call a ``*_impl`` method returning plain data; see ``http_api.md`` beside this file. The routes here are generic
over kinds (every view's series, listed by ``views/registry.py``); reading is :mod:`.series`'s; a view that
needs routes of its own has a module of them (the dead-filter timeline: :mod:`.dead_routes`).
"""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path
from typing import Any, Callable

from tensorboard import errors, plugin_util
from tensorboard.backend import http_util
from tensorboard.data import provider
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from . import http_params as params
from . import metadata
from .dead_routes import DeadRoutes
from .distribution_routes import DistributionRoutes
from .schedule_routes import ScheduleRoutes
from .series import SeriesReader

_IMAGE_MAX_AGE_S = 24 * 3600
_STATIC_ROUTE = f"/plugin/{metadata.PLUGIN_NAME}/static/"
_VERSION_LENGTH = 12  # hex digits naming a version of the frontend
_STATIC_MAX_AGE_S = 365 * 24 * 3600
_MODULES_LIST = "modules.json"  #: the static file listing the tab's modules, made from the folder


def _frontend_dir() -> Path:
    """``tb_cnnviz/frontend`` in an installed wheel, the top-level ``frontend/`` in a source checkout."""
    packaged = Path(__file__).with_name("frontend")
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "frontend"


class CNNVizPlugin(base_plugin.TBPlugin):
    """Serves the CNNVIZ tab: every view's series over training steps, several runs side by side."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext):
        self._reader = SeriesReader(context.data_provider)
        samples = getattr(context.flags, "samples_per_plugin", None)
        #: flushes TensorBoard keeps per layer, when a user's ``--samples_per_plugin cnnviz=N`` bounds them
        flush_limit = samples.get(metadata.PLUGIN_NAME, 0) if isinstance(samples, dict) else 0
        self._dead = DeadRoutes(self._reader, flush_limit)
        self._distribution = DistributionRoutes(self._reader, flush_limit)
        self._schedule = ScheduleRoutes(self._reader)
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
            **self._dead.routes(),
            **self._distribution.routes(),
            **self._schedule.routes(),
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
            png = self._reader.read_blob(_ctx(request), params.text(request, "run"), key)
        except (ValueError, TypeError) as exc:
            raise errors.InvalidArgumentError(f"malformed blob key {key[:40]!r}: take keys from /sample") from exc
        except (KeyError, IndexError) as exc:
            raise errors.NotFoundError(f"no picture with blob key {key[:40]!r}") from exc
        if not png.startswith(_PNG_SIGNATURE):
            raise errors.NotFoundError("that blob is not a CNNVIZ picture")
        return http_util.Respond(request, png, "image/png", expires=_IMAGE_MAX_AGE_S)

    # -- implementations: plain data in, plain data out ------------------------------------------------------

    def runs_impl(self, ctx: Any, eid: str) -> dict:
        runs = []
        for (run, model), kinds in sorted(self._reader.listing(ctx, eid).items()):
            entry = {"run": run, "model": model}
            for kind in metadata.BLOB_KINDS + metadata.TENSOR_KINDS:
                layers = kinds.get(kind, {})
                entry[kind] = sorted(layers, key=lambda name, layers=layers: (layers[name].content.order, name))
            runs.append(entry)
        return {"runs": runs}

    def steps_impl(self, ctx: Any, eid: str, run: str, kind: str, layer: str, model: str = "") -> dict:
        """The steps held of one series; ``written``: how many calls wrote it, where TensorBoard holds fewer
        (a thinned series, see :mod:`.thinning`, or a user's ``--samples_per_plugin``). A picture series also
        answers ``latest``, its latest step's :meth:`sample_impl` reply: the tab opens on the latest step, and
        this spares it a second request (and the server a second lookup) before the first paint."""
        series = self._reader.series(ctx, eid, run, kind, layer, model)
        reply: dict = {"run": run, "model": model, "kind": kind, "layer": layer}
        if kind in metadata.TENSOR_KINDS:
            data, written = self._reader.tensor_series(ctx, eid, run, series), 0
        else:
            merged = self._reader.merged_slots(ctx, eid, run, series)
            data = [datum for datum, _ in merged]
            latest_meta = self._reader.meta_if_readable(ctx, run, data[-1]) if data else None
            if latest_meta is not None:
                reply["latest"] = self._sample_reply(run, model, kind, layer, data[-1], latest_meta)
            written = self._calls_written(ctx, run, merged, latest_meta) if series.thinned else 0
        steps = [{"step": d.step, "wall_time": d.wall_time} for d in data]
        return {**reply, "steps": steps, "written": max(written, len(steps))}

    def _calls_written(self, ctx: Any, run: str, merged: list[tuple[provider.BlobSequenceDatum, str]],
                       latest_meta: dict | None) -> int:
        """Calls written to a thinned series, as far as the data held tell: each writing session's last datum
        held carries its index in that session (``series_index``, see ``summary.encode``); a run resumed
        from a checkpoint adds its sessions up (what a resume hid is not counted). ``latest_meta``: the meta of
        the last datum of ``merged``, already read."""
        last = {name: datum for datum, name in merged}  # per session, its latest datum held
        latest = merged[-1][0] if merged else None
        metas = (latest_meta if datum is latest else self._reader.meta_if_readable(ctx, run, datum) for datum in last.values())
        return sum(_series_index(meta) + 1 for meta in metas)

    def _datum(self, ctx: Any, eid: str, run: str, kind: str, layer: str, step: int, model: str = "") -> provider.BlobSequenceDatum:
        series = self._reader.series(ctx, eid, run, kind, layer, model)
        for datum in self._reader.blob_series(ctx, eid, run, series):
            if datum.step == step:
                return datum
        raise errors.NotFoundError(f"layer {layer!r} of run {run!r} has no {kind} at step {step}")

    def sample_impl(self, ctx: Any, eid: str, run: str, kind: str, layer: str, step: int, model: str = "") -> dict:
        datum = self._datum(ctx, eid, run, kind, layer, step, model)
        if not datum.values:
            raise errors.NotFoundError(f"the {kind} of {layer!r} at step {step} in run {run!r} hold no data")
        meta = self._reader.meta(ctx, run, datum)
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
        return self._reader.read_blob(ctx, run, datum.values[index + 1].blob_key)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _series_index(meta: dict | None) -> int:
    """The ``series_index`` in a picture's meta; -1 where there is none."""
    index = meta.get("series_index") if meta is not None else None
    return index if isinstance(index, int) and not isinstance(index, bool) and index >= 0 else -1


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
