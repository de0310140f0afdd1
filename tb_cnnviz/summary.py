"""What a view hands the sink (records), and their encoding as TensorBoard protos, without TensorFlow.

A view returns records: :class:`Pictures` (one step of a picture view: meta JSON and PNGs), :class:`Rates`
(a tensor view's values), :class:`Scalar` and :class:`PRCurve` (for TensorBoard's own tabs). The sink
(:mod:`.sink`) knows what a view does not -- the model's name, the thinning slot, the call's index in its
series -- and encodes each record once with :func:`encode`, tagged and described by :mod:`.metadata`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np
from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

from . import metadata


def _rounded(values: object) -> object:
    """Nested lists of floats rounded to 4 significant digits, non-finite as None: small, valid JSON."""
    if isinstance(values, dict):
        return {k: _rounded(v) for k, v in values.items()}
    if isinstance(values, list):
        if len(values) >= _VECTOR_MIN or (values and isinstance(values[0], list)):
            fast = _rounded_by_numpy(values)
            if fast is not None:
                return fast
        return [_round_float(v) if type(v) is float else _rounded(v) for v in values]  # the common case inline
    if isinstance(values, float):
        return _round_float(values)
    return values


_VECTOR_MIN = 8  # a list at least this long (or of lists) is tried as one numeric array
_EXACT_POWERS = 22  # 10**k is exact in float64 for k <= 22


def _rounded_by_numpy(values: list) -> list | None:
    """:func:`_rounded` of a (nested) list that is one numeric array, vectorised: a logging call's JSON
    holds some 30,000 floats, 10x faster than one by one. ``k / 10**d`` with an exact power of ten is the
    float nearest the decimal, so the JSON stays as short. None (the caller goes element by element) for
    anything else: ragged, mixed, non-finite, or a 4th digit beyond 10**-22 or 10**22."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError):  # ragged
        return None
    if array.dtype.kind in "iub":
        return values  # integers and booleans: nothing to round
    if array.dtype.kind != "f":
        return None
    array = array.astype(np.float64, copy=False)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        digits = 3 - np.floor(np.log10(np.abs(array)))
        zero = array == 0
        if not (zero | (np.abs(digits) <= _EXACT_POWERS)).all():
            return None  # NaN, infinities, extreme magnitudes
        digits = np.where(zero, 0, digits)
        scale = 10.0 ** np.abs(digits)
        rounded = np.where(digits >= 0, np.round(array * scale) / scale, np.round(array / scale) * scale)
    return rounded.tolist()


def _round_float(value: float) -> float | None:
    """4 significant digits. ``round`` to the digit that is the 4th (exact, and 1.6x faster than formatting
    with ``.4g`` and parsing back, which the JSON of a logging call does some 10,000 times)."""
    if value == 0 or not math.isfinite(value):
        return value if value == 0 else None
    digits = 3 - math.floor(math.log10(abs(value)))
    return round(value, digits) if -290 < digits < 290 else float(f"{value:.4g}")


@dataclass(frozen=True)
class Pictures:
    """One step of a picture view: the tab's meta JSON and PNGs (in the order ``meta`` lists them) of one layer,
    or of one name where the view is not per layer, written as ``cnnviz/<kind>/<name>``."""

    kind: str
    name: str
    meta: dict
    pictures: Sequence[bytes]
    order: int = 0  #: position of the layer in the model's forward pass (the tab's list order)


@dataclass(frozen=True)
class Rates:
    """One step of a tensor view: float values of one layer (the dead kind's off rate per channel, the
    distribution kind's value counts and bin edges)."""

    kind: str
    name: str
    values: np.ndarray
    order: int = 0
    threshold: float | None = None  #: rate at or above which a channel is off
    health: str | None = None  #: what an off channel is: "dead" or "dormant"
    role: str | None = None  #: "gate": the squeeze path of a squeeze-and-excitation block; None: feature channels


@dataclass(frozen=True)
class Scalar:
    """An ordinary scalar for TensorBoard's Scalars tab, tagged ``cnnviz/<name>`` (``cnnviz.<model>/<name>``)."""

    name: str
    value: float


@dataclass(frozen=True)
class PRCurve:
    """One class's PR curve for TensorBoard's PR Curves tab (rows tp, fp, tn, fn, precision, recall)."""

    name: str
    counts: Sequence[np.ndarray]
    display_name: str


Record = Union[Pictures, Rates, Scalar, PRCurve]


def encode(record: Record, model: str = "", tag: str | None = None, plugin_name: str = metadata.PLUGIN_NAME,
           series_index: int | None = None) -> summary_pb2.Summary.Value:
    """One record as a summary value of ``model`` (``""``: the unnamed one). A picture series thinned by the
    sink passes its slot ``tag``, ``plugin_name`` and the call's ``series_index`` (stamped in the meta JSON:
    a thinned series' latest sample then says how many calls were written)."""
    prefix = metadata.tag_prefix(model)
    if isinstance(record, Scalar):
        return summary_pb2.Summary.Value(tag=f"{prefix}/{record.name}", simple_value=float(record.value))
    if isinstance(record, PRCurve):
        return pr_curve_value(f"{prefix}/{record.name}", record.counts, record.display_name)
    if isinstance(record, Rates):
        content = metadata.PluginContent(kind=record.kind, layer=record.name, order=record.order, model=model,
                                         threshold=record.threshold, health=record.health, role=record.role)
        return summary_pb2.Summary.Value(tag=tag or metadata.tag(record.kind, record.name, model),
                                         metadata=metadata.create_summary_metadata(content),
                                         tensor=_float_tensor(record.values))
    if isinstance(record, Pictures):
        content = metadata.PluginContent(kind=record.kind, layer=record.name, order=record.order, model=model)
        stamp = {} if series_index is None else {"series_index": int(series_index)}
        blobs = [json_blob({"kind": record.kind, "layer": record.name, **record.meta, **stamp}), *record.pictures]
        summary_metadata = metadata.create_summary_metadata(content)
        summary_metadata.plugin_data.plugin_name = plugin_name
        return summary_pb2.Summary.Value(tag=tag or metadata.tag(record.kind, record.name, model),
                                         metadata=summary_metadata, tensor=_string_tensor(blobs))
    raise TypeError(f"a view returns summary records (Pictures, Rates, Scalar, PRCurve); got {type(record).__name__}")


def _string_tensor(blobs: Sequence[bytes]) -> tensor_pb2.TensorProto:
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(blobs))]),
        string_val=list(blobs),
    )


def _float_tensor(values: np.ndarray) -> tensor_pb2.TensorProto:
    values = np.ascontiguousarray(values, dtype=np.float32)
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in values.shape])
    return tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape, tensor_content=values.tobytes())


def float_tensor_value(tag: str, content: metadata.PluginContent, values: np.ndarray) -> summary_pb2.Summary.Value:
    """A tensor value with its content as given (tests write files as older versions did with it)."""
    return summary_pb2.Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(content), tensor=_float_tensor(values))


def json_blob(payload: dict) -> bytes:
    return json.dumps(_rounded(payload), separators=(",", ":"), allow_nan=False).encode("utf-8")


def pr_curve_value(tag: str, counts: Sequence[np.ndarray], display_name: str) -> summary_pb2.Summary.Value:
    """One class's PR curve in the PR Curves plugin's own format (rows tp, fp, tn, fn, precision, recall),
    built without TensorFlow (``pr_curve.summary.raw_data_pb`` imports it)."""
    from tensorboard.plugins.pr_curve import metadata as pr_metadata

    values = np.stack([np.asarray(row, dtype=np.float32) for row in counts])
    summary_metadata = pr_metadata.create_summary_metadata(display_name=display_name, description="", num_thresholds=values.shape[1])
    return summary_pb2.Summary.Value(tag=f"{tag}/pr_curves", metadata=summary_metadata, tensor=_float_tensor(values))
