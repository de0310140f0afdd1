"""Build CNNVIZ summaries as TensorBoard protos, without TensorFlow: the shapes every view writes.

A view's summary is one blob sequence (meta JSON first, then its PNGs) or one float tensor, tagged and
described by :mod:`.metadata`; the views in :mod:`.views` fill them, :mod:`.sink` writes them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

from . import metadata


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


def json_blob(payload: dict) -> bytes:
    return json.dumps(_rounded(payload), separators=(",", ":"), allow_nan=False).encode("utf-8")


def pictures_summary(kind: str, name: str, meta: dict, pictures: Sequence[bytes], order: int = 0) -> summary_pb2.Summary:
    """The shape of every picture view: one blob sequence of meta JSON (with its ``kind`` and ``layer``), then
    the view's PNGs in the order ``meta`` lists them, tagged ``cnnviz/<kind>/<name>``."""
    content = metadata.PluginContent(kind=kind, layer=name, order=order)
    blobs = [json_blob({"kind": kind, "layer": name, **meta}), *pictures]
    return summary_pb2.Summary(value=[blob_sequence_value(metadata.tag(kind, name), content, blobs)])


def pr_curve_value(tag: str, counts: Sequence[np.ndarray], display_name: str) -> summary_pb2.Summary.Value:
    """One class's PR curve in the PR Curves plugin's own format (rows tp, fp, tn, fn, precision, recall),
    built without TensorFlow (``pr_curve.summary.raw_data_pb`` imports it)."""
    from tensorboard.plugins.pr_curve import metadata as pr_metadata

    values = np.stack([np.asarray(row, dtype=np.float32) for row in counts])
    summary_metadata = pr_metadata.create_summary_metadata(display_name=display_name, description="", num_thresholds=values.shape[1])
    return summary_pb2.Summary.Value(tag=f"{tag}/pr_curves", metadata=summary_metadata, tensor=_float_tensor(values))
