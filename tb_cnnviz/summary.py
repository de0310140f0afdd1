"""Build CNNVIZ summaries and write them to TensorBoard event files, without TensorFlow.

Writing goes through the ``torch.utils.tensorboard.SummaryWriter`` the user already has (same event file as
their loss curves) or a log directory of our own.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import functools
import json
import math
import os
import struct
import time
import warnings
import weakref
from collections.abc import Callable, Sequence

import numpy as np
import torch
from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

from . import event_checksums, metadata, render
from .methods.activations.maps import ActivationSnapshot
from .methods.activations.dead_filters import DeadReport
from .methods.activations.filters import NOISE_THRESHOLD, noise_score
from .methods.dataset.top_activations import TopActivations


def _rounded(values: object) -> object:
    """Nested lists of floats rounded to 4 significant digits, non-finite as None: small, valid JSON."""
    if isinstance(values, dict):
        return {k: _rounded(v) for k, v in values.items()}
    if isinstance(values, list):
        return [_round_float(v) if type(v) is float else _rounded(v) for v in values]  # the common case inline
    if isinstance(values, float):
        return _round_float(values)
    return values


def _round_float(value: float) -> float | None:
    return float(f"{value:.4g}") if math.isfinite(value) else None


def blob_sequence_value(tag: str, content: metadata.PluginContent, blobs: Sequence[bytes]) -> summary_pb2.Summary.Value:
    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(blobs))]),
        string_val=list(blobs),
    )
    return summary_pb2.Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(content), tensor=tensor)


def _float_tensor(values: np.ndarray) -> tensor_pb2.TensorProto:
    values = np.ascontiguousarray(values, dtype=np.float32)
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in values.shape])
    return tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape, tensor_content=values.tobytes())


def float_tensor_value(tag: str, content: metadata.PluginContent, values: np.ndarray) -> summary_pb2.Summary.Value:
    return summary_pb2.Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(content), tensor=_float_tensor(values))


def scalar_value(tag: str, value: float) -> summary_pb2.Summary.Value:
    """An ordinary scalar, read by TensorBoard's own Scalars tab."""
    return summary_pb2.Summary.Value(tag=tag, simple_value=float(value))


def _json_blob(payload: dict) -> bytes:
    return json.dumps(_rounded(payload), separators=(",", ":"), allow_nan=False).encode("utf-8")


def activation_summary(
    layer: str,
    snap: ActivationSnapshot,
    order: int = 0,
    module: str | None = None,
    call: int = 1,
    module_type: str = "",
    labels: Sequence[int | None] | None = None,
) -> summary_pb2.Summary:
    """One layer's activations for the probe images: meta JSON and one PNG mosaic per image."""
    pictures, tile, scale = render.activation_pictures(snap.maps)
    tile.update(source_height=snap.source_size[0], source_width=snap.source_size[1])
    n = snap.maps.shape[0]
    meta = {
        "kind": metadata.ACTIVATIONS,
        "layer": layer,
        "module": module or layer,
        "call": call,
        "module_type": module_type,
        "shape": list(snap.shape),
        "channels": snap.channels,
        "channels_total": snap.channels_total,
        "tile": tile,
        "scale": scale,
        "stats": {"max": snap.max.tolist(), "mean": snap.mean.tolist(), "zero_fraction": snap.zero_fraction.tolist()},
        "dead": snap.dead,
        "nonfinite": snap.nonfinite,
        "labels": list(labels)[:n] if labels is not None else [None] * n,
        "omitted": {"channels": snap.channels_total - len(snap.channels), "downsampled": snap.downsampled},
    }
    content = metadata.PluginContent(kind=metadata.ACTIVATIONS, layer=layer, order=order)
    value = blob_sequence_value(metadata.tag(metadata.ACTIVATIONS, layer), content, [_json_blob(meta), *pictures])
    return summary_pb2.Summary(value=[value])


def filter_summary(
    layer: str, weight: torch.Tensor, order: int = 0, max_filters: int = 64, max_inputs: int = 16, rgb: bool = False
) -> summary_pb2.Summary:
    """One conv layer's filters: meta JSON (with each filter's noise score) and one PNG mosaic; ``rgb`` draws
    each filter as a colour tile (for a first layer on RGB images)."""
    if weight.dim() != 4:
        raise ValueError(f"filters of {layer!r}: expected a 2-D conv weight (out, in, kH, kW); got {tuple(weight.shape)}")
    weight = weight.detach()
    shown = weight[:max_filters]
    noise = noise_score(shown).cpu()
    picture, layout = render.filter_picture(shown, max_inputs=max_inputs, rgb=rgb)
    meta = {
        "kind": metadata.FILTERS,
        "layer": layer,
        "shape": list(weight.shape),
        "mode": layout["mode"],
        "filters": list(range(shown.shape[0])),
        "filters_total": weight.shape[0],
        "inputs": layout["inputs"],
        "inputs_total": weight.shape[1],
        "tile": layout["tile"],
        "scale": layout["scale"],
        "noise": noise.tolist(),
        "noise_threshold": NOISE_THRESHOLD,
        "noisy": torch.nonzero(noise > NOISE_THRESHOLD).flatten().tolist(),
        "omitted": {"filters": weight.shape[0] - shown.shape[0], "inputs": weight.shape[1] - len(layout["inputs"])},
    }
    if "sub" in layout:
        sub = layout["sub"]
        meta["sub"] = {"rows": sub["rows"], "cols": sub["cols"], "kernel_h": sub["height"],
                       "kernel_w": sub["width"], "gap": sub["gap"]}
    content = metadata.PluginContent(kind=metadata.FILTERS, layer=layer, order=order)
    value = blob_sequence_value(metadata.tag(metadata.FILTERS, layer), content, [_json_blob(meta), picture])
    return summary_pb2.Summary(value=[value])


def attribution_summary(name: str, meta: dict, inputs: Sequence[bytes], maps: Sequence[bytes], order: int = 0) -> summary_pb2.Summary:
    """One method's maps for the probe images: meta JSON, the input pictures, then the map pictures."""
    content = metadata.PluginContent(kind=metadata.ATTRIBUTION, layer=name, order=order)
    meta = {"kind": metadata.ATTRIBUTION, "layer": name, **meta}
    blobs = [_json_blob(meta), *inputs, *maps]
    return summary_pb2.Summary(value=[blob_sequence_value(metadata.tag(metadata.ATTRIBUTION, name), content, blobs)])


def performance_summary(name: str, meta: dict, sprites: Sequence[bytes]) -> summary_pb2.Summary:
    """Accuracy views of one data set: meta JSON, then the sprites of wrong examples (thumbnails, saliency)."""
    content = metadata.PluginContent(kind=metadata.PERFORMANCE, layer=name)
    blobs = [_json_blob({"kind": metadata.PERFORMANCE, "layer": name, **meta}), *sprites]
    return summary_pb2.Summary(value=[blob_sequence_value(metadata.tag(metadata.PERFORMANCE, name), content, blobs)])


def pictures_summary(kind: str, name: str, meta: dict, pictures: Sequence[bytes], order: int = 0) -> summary_pb2.Summary:
    """Pictures with their numbers (inversions, class models, channel visualisations, the two images of a
    correspondence): meta JSON, then one PNG per picture, in the order ``meta`` lists them."""
    content = metadata.PluginContent(kind=kind, layer=name, order=order)
    blobs = [_json_blob({"kind": kind, "layer": name, **meta}), *pictures]
    return summary_pb2.Summary(value=[blob_sequence_value(metadata.tag(kind, name), content, blobs)])


def _unit_sprite(pictures: torch.Tensor, k: int) -> tuple[bytes, dict]:
    """(U, k, C, t, t) uint8 -> a PNG with a row of k tiles per unit, and its layout."""
    tiles = pictures.flatten(0, 1).permute(0, 2, 3, 1).numpy() if pictures.shape[2] == 3 else pictures.flatten(0, 1)[:, 0].numpy()
    picture, layout = render.mosaic(np.ascontiguousarray(tiles), columns=k)
    return render.png_bytes(picture), layout


def top_summary(name: str, result: TopActivations, units: Sequence[int], order: int = 0,
                filter_layer: str | None = None) -> summary_pb2.Summary:
    """Top activations of ``units`` (indices into ``result``): meta JSON, one sprite with a row of k patches
    per unit (empty slots stay background), and the same for the whole images when ``result`` has them."""
    k = result.values.shape[1]
    picture, layout = _unit_sprite(result.patches[list(units)], k)
    sprites = [picture]
    whole_layout = None
    if result.wholes is not None:
        whole, whole_layout = _unit_sprite(result.wholes[list(units)], k)
        sprites.append(whole)
    entries = []
    for unit in units:
        filled = int((result.image[unit] >= 0).sum())
        entries.append({
            "unit": unit,
            "values": result.values[unit, :filled].tolist(),
            "images": result.image[unit, :filled].tolist(),
            "positions": result.position[unit, :filled].tolist(),
            "boxes": [list(result.box(unit, slot)) for slot in range(filled)],
        })
    field = result.field
    meta = {
        "kind": metadata.TOP, "layer": name, "source_layer": result.layer, "k": k,
        "axes": "directions" if result.directions is not None else "channels",
        "units_total": int(result.values.shape[0]), "units": entries,
        "field": {"stride": list(field.stride), "offset": list(field.offset), "size": list(field.size)},
        "tile": layout, "whole_tile": whole_layout, "input_size": list(result.input_size or []),
        "filter_layer": filter_layer,
    }
    content = metadata.PluginContent(kind=metadata.TOP, layer=name, order=order)
    return summary_pb2.Summary(value=[blob_sequence_value(metadata.tag(metadata.TOP, name), content, [_json_blob(meta), *sprites])])


def embedding_summary(layer: str, meta: dict, thumbnails: torch.Tensor) -> summary_pb2.Summary:
    """A layout of CNN codes: meta JSON, then the sprite of thumbnails (N, C, t, t) uint8 in the squarest grid."""
    tiles = thumbnails.permute(0, 2, 3, 1).numpy() if thumbnails.shape[1] == 3 else thumbnails[:, 0].numpy()
    picture, layout = render.mosaic(np.ascontiguousarray(tiles), gap=0)
    content = metadata.PluginContent(kind=metadata.EMBEDDING, layer=layer)
    blobs = [_json_blob({"kind": metadata.EMBEDDING, "layer": layer, **meta, "tile": layout}), render.png_bytes(picture)]
    return summary_pb2.Summary(value=[blob_sequence_value(metadata.tag(metadata.EMBEDDING, layer), content, blobs)])


def pr_curve_value(tag: str, counts: Sequence[np.ndarray], display_name: str) -> summary_pb2.Summary.Value:
    """One class's PR curve in the PR Curves plugin's own format (rows tp, fp, tn, fn, precision, recall),
    built without TensorFlow (``pr_curve.summary.raw_data_pb`` imports it)."""
    from tensorboard.plugins.pr_curve import metadata as pr_metadata

    values = np.stack([np.asarray(row, dtype=np.float32) for row in counts])
    summary_metadata = pr_metadata.create_summary_metadata(display_name=display_name, description="", num_thresholds=values.shape[1])
    return summary_pb2.Summary.Value(tag=f"{tag}/pr_curves", metadata=summary_metadata, tensor=_float_tensor(values))


def dead_summary(report: DeadReport, order: int = 0) -> summary_pb2.Summary:
    """Per-channel dead rates (tensor, for the tab) and the layer's dead fraction (scalar, for Scalars)."""
    content = metadata.PluginContent(kind=metadata.DEAD, layer=report.layer, order=order, threshold=report.threshold)
    return summary_pb2.Summary(
        value=[
            float_tensor_value(metadata.tag(metadata.DEAD, report.layer), content, report.rates.numpy()),
            scalar_value(metadata.dead_fraction_tag(report.layer), report.dead_fraction),
        ]
    )


class StorageFailedWarning(UserWarning):
    """The event file could not be written (log directory gone, disk full); training goes on."""


#: After a storage failure, try a fresh event file at most this often (a full disk is rarely freed at once).
REOPEN_EVERY_S = 30.0


class SummarySink:
    """Where summaries go: the user's ``SummaryWriter`` (shared event file) or a log directory of our own.

    Storage failures never reach the training loop: the first one warns (:class:`StorageFailedWarning`), the
    event file is cut back to its last whole record, and writing resumes in a fresh event file (the directory
    made again if it vanished) as soon as one can be opened; until then records are dropped and counted in
    :attr:`dropped`. Records queued when the process exits -- also by an exception -- are written whole first.
    """

    def __init__(self, writer_or_logdir: object):
        event_checksums.install()  # our records are large: checksum them in C (same bytes on disk)
        if isinstance(writer_or_logdir, (str, os.PathLike)):
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(os.fspath(writer_or_logdir))
            self._owned = True
        elif hasattr(writer_or_logdir, "_get_file_writer"):
            self._writer = writer_or_logdir
            self._owned = False
        else:
            raise TypeError(
                "writer_or_logdir must be a torch.utils.tensorboard.SummaryWriter or a log directory path; "
                f"got {type(writer_or_logdir).__name__}"
            )
        self.dropped = 0  #: records lost to storage failures
        self._failed_at: float | None = None  # monotonic time of the last failure while no file is open
        self._warned = False
        self._closed = False
        self._at_exit = functools.partial(_flush_at_exit, weakref.ref(self))
        atexit.register(self._at_exit)

    @property
    def logdir(self) -> str:
        return self._writer.get_logdir()

    def add_projector_embedding(self, codes: torch.Tensor, labels: list, thumbnails: torch.Tensor, step: int, tag: str) -> None:
        """The codes for TensorBoard's own Projector, as ``SummaryWriter.add_embedding`` writes them."""
        self._guarded(lambda: self._writer.add_embedding(
            codes, metadata=labels, label_img=thumbnails.float() / 255, global_step=int(step), tag=tag))

    def write(self, summary: summary_pb2.Summary, step: int) -> None:
        self._guarded(lambda: self._writer._get_file_writer().add_summary(summary, global_step=int(step), walltime=time.time()))

    def flush(self) -> None:
        self._guarded(self._writer.flush)

    def close(self) -> None:
        """Flush; close the writer only if we opened it (the user's own writer stays theirs)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._at_exit)
        if self._failed_at is not None and self._owned:  # storage gone and not back: release the file anyway
            with contextlib.suppress(OSError):
                self._writer.close()
            return
        self._guarded(self._writer.close if self._owned else self._writer.flush, reopen=False)

    # -- storage failures --------------------------------------------------------------------------------------

    def _guarded(self, write: Callable[[], None], reopen: bool = True) -> None:
        """Run one write; on a storage failure warn once, salvage the file and carry on. A vanished directory
        is made again at once and the write tried once more, so no record after the loss is dropped."""
        if self._failed_at is not None and not (reopen and self._reopened()):
            self.dropped += 1
            return
        for attempt in range(2):
            try:
                if reopen and not os.path.isdir(self.logdir):  # a stat per record
                    raise FileNotFoundError(errno.ENOENT, "the log directory vanished", self.logdir)
                write()
                return
            except OSError as exc:  # the writer thread's failure, re-raised here, or "Writer is closed"
                self._failed(exc)
                if attempt or not (reopen and isinstance(exc, FileNotFoundError) and self._reopened(force=True)):
                    break
        self.dropped += 1

    def _failed(self, exc: OSError) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"tb_cnnviz: writing to {self.logdir} failed ({type(exc).__name__}: {exc}); training continues, "
                f"records are dropped until a new event file can be opened (retried every {REOPEN_EVERY_S:.0f} s)",
                StorageFailedWarning,
                stacklevel=4,
            )
        self._abandon_event_file()
        self._failed_at = time.monotonic()

    def _abandon_event_file(self) -> None:
        """Stop the broken file writer, cut a half-written record off its file, and let the writer open a
        fresh file on its next use (``SummaryWriter._get_file_writer`` does when ``file_writer`` is None)."""
        file_writer = getattr(self._writer, "file_writer", None)
        if file_writer is None:
            return
        path = getattr(getattr(file_writer, "event_writer", None), "_file_name", None)
        try:
            file_writer.close()
        except Exception:  # noqa: BLE001 - the writer is broken already; its file is salvaged below
            pass
        self._writer.file_writer = self._writer.all_writers = None
        if path:
            cut_partial_record(path)

    def _reopened(self, force: bool = False) -> bool:
        """Try a fresh event file, at most every :data:`REOPEN_EVERY_S`; whether one is open."""
        if not force and time.monotonic() - self._failed_at < REOPEN_EVERY_S:
            return False
        try:
            self._writer._get_file_writer()  # makes the directory and a new event file
        except OSError:
            self._failed_at = time.monotonic()
            self._writer.file_writer = self._writer.all_writers = None
            return False
        self._failed_at = None
        return True


def _flush_at_exit(sink_ref: weakref.ReferenceType) -> None:
    """Write what is queued, record by record, before the writer thread (a daemon) is stopped mid-record."""
    sink = sink_ref()
    if sink is not None and not sink._closed:
        sink.flush()


_HEADER = struct.Struct("<QI")  # a TFRecord: uint64 length, uint32 its CRC, data, uint32 data CRC


def cut_partial_record(path: str) -> int:
    """Truncate an event file after its last whole record (a full disk can stop a record half way, and a
    reader would stop there); returns the bytes cut. Walks the record headers only."""
    try:
        size = os.path.getsize(path)
        with open(path, "r+b") as file:
            end = 0
            while end + _HEADER.size <= size:
                file.seek(end)
                length, _ = _HEADER.unpack(file.read(_HEADER.size))
                if end + _HEADER.size + length + 4 > size:
                    break
                end += _HEADER.size + length + 4
            if end < size:
                file.truncate(end)
            return size - end
    except OSError:
        return 0


class DiscardingSink:
    """The sink of DDP ranks other than 0: they compute their share of collective views; rank 0 writes."""

    logdir = ""
    dropped = 0

    def add_projector_embedding(self, *args: object) -> None:
        pass

    def write(self, summary: summary_pb2.Summary, step: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
