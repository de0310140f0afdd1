"""From one :class:`~tb_cnnviz.methods.Evaluation` to what the "Where it fails" view reads: accuracy by class
and by attribute bin, the confusion matrix, calibration, and a sprite of the most confidently wrong examples.

Separate from the logger so that the numbers can be checked without writing anything.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from .. import render
from ..methods.evaluation.accuracy_stats import accuracy_by, calibration, class_metrics, confusion_matrix
from ..methods.evaluation.many_classes import confused_pairs
from ..methods.evaluation.predictions import Evaluation

#: Above this many classes the confusion matrix is left out of the JSON (per-class figures stay).
MAX_CONFUSION_CLASSES = 100
#: The most confused (true, predicted) pairs listed, most examples first: what the tab shows when the matrix is
#: too big to draw (Russakovsky et al.'s ILSVRC analysis).
CONFUSED_PAIRS = 50
WORST_BIN_EXAMPLES = 8


def read_attribute_csv(path: str | Path, index_column: str = "index") -> dict[str, dict[int, object]]:
    """A CSV with an ``index`` column (the data set index) and one column per attribute. A column whose
    every non-empty cell parses as a number is numeric (empty cells are NaN), else categorical."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or index_column not in rows[0]:
        raise ValueError(f"attributes CSV {str(path)!r} needs a column {index_column!r} (the data set index) and one column per attribute")
    columns: dict[str, dict[int, object]] = {}
    for name in rows[0]:
        if name == index_column:
            continue
        cells = {int(row[index_column]): (row[name] or "").strip() for row in rows}
        try:
            columns[name] = {i: float(v) if v else math.nan for i, v in cells.items()}
        except ValueError:
            columns[name] = cells
    return columns


def align_attributes(attributes: Mapping[str, object] | str | Path | None, index: torch.Tensor) -> dict[str, list]:
    """The user's attributes, one value per evaluated example (looked up by data set index). A sequence
    must have one value per example of the data; a mapping (from a CSV) is looked up by index."""
    if attributes is None:
        return {}
    if isinstance(attributes, (str, Path)):
        attributes = read_attribute_csv(attributes)
    if not isinstance(attributes, Mapping):
        raise TypeError(f"attributes must be a dict name -> sequence (one value per example) or a CSV path; got {type(attributes).__name__}")
    positions = index.tolist()
    aligned = {}
    for name, values in attributes.items():
        if isinstance(values, Mapping):
            missing = [i for i in positions if i not in values]
            if missing:
                raise ValueError(f"attribute {name!r} has no value for data set index {missing[0]} ({len(missing)} missing)")
            aligned[str(name)] = [values[i] for i in positions]
            continue
        values = values.tolist() if isinstance(values, (torch.Tensor, np.ndarray)) else list(values)
        if len(values) != len(positions) or (positions and max(positions) >= len(values)):
            raise ValueError(f"attribute {name!r} has {len(values)} values but the data has {len(positions)} examples; "
                             "give one value per example, in data set order")
        aligned[str(name)] = [values[i] for i in positions]
    return aligned


def performance_report(
    evaluation: Evaluation,
    attributes: Mapping[str, Sequence] | None = None,
    class_names: Sequence[str] | None = None,
    bins: int = 10,
) -> tuple[dict, list[bytes]]:
    """(meta for the tab, PNG sprites: the wrong examples' thumbnails, then their saliency maps; [] if none)."""
    classes = evaluation.classes
    if class_names is not None and len(class_names) != classes:
        raise ValueError(f"class_names has {len(class_names)} names but the model has {classes} classes")
    labelled = evaluation.labelled
    count_labelled = int(labelled.sum())
    predicted = evaluation.predicted
    meta: dict = {
        "examples": len(evaluation.labels),
        "labelled": count_labelled,
        "classes": classes,
        "class_names": [str(name) for name in class_names] if class_names is not None else None,
        "predicted_count": torch.bincount(predicted, minlength=classes).tolist(),
    }
    every_attribute = {name: values for name, values in evaluation.attributes.items()}
    every_attribute.update(attributes or {})
    if not count_labelled:
        meta["why_empty"] = "the data gave no labels: accuracy, confusion and calibration need them"
        meta["attributes"] = {name: accuracy_by(values, torch.zeros(len(evaluation.labels), dtype=torch.bool), bins)
                              for name, values in every_attribute.items()}
        return meta, []
    labels, hits = evaluation.labels[labelled], evaluation.correct[labelled]
    confusion = confusion_matrix(labels, predicted[labelled], classes)
    meta.update(
        top1=evaluation.topk_accuracy(1),
        topk={str(k): evaluation.topk_accuracy(k) for k in range(2, evaluation.topk_classes.shape[1] + 1)},
        per_class=class_metrics(confusion),
        confusion=confusion.tolist() if classes <= MAX_CONFUSION_CLASSES else None,
        confused_pairs=confused_pairs(confusion, CONFUSED_PAIRS),
        calibration=calibration(evaluation.topk_probability[labelled, 0], hits),
        attributes={},
    )
    for name, values in every_attribute.items():
        kept = values[labelled] if isinstance(values, torch.Tensor) else [v for v, keep in zip(values, labelled.tolist()) if keep]
        meta["attributes"][name] = accuracy_by(kept, hits)
    sprite, saliency_sprite, tiles = _wrong_sprites(evaluation)
    meta["wrong"] = tiles
    meta["worst_bins"] = _worst_bin_examples(meta["attributes"], every_attribute, evaluation, tiles)
    return meta, [picture for picture in (sprite, saliency_sprite) if picture is not None]


def _wrong_sprites(evaluation: Evaluation) -> tuple[bytes | None, bytes | None, dict]:
    """The thumbnails of the wrong examples as one sprite, and their saliency maps as a second one with the
    same layout (when computed)."""
    examples = [example for kept in evaluation.wrong.values() for example in kept]
    if not examples:
        return None, None, {"examples": [], "layout": None, "saliency": False}
    thumbnails = torch.stack([example.thumbnail for example in examples])  # (K, C, t, t) uint8
    if thumbnails.shape[1] == 3:
        tiles = thumbnails.permute(0, 2, 3, 1).numpy()
    else:
        tiles = thumbnails[:, 0].numpy()
    picture, layout = render.mosaic(np.ascontiguousarray(tiles))
    saliency = None
    if all(example.saliency is not None for example in examples):
        heat, _ = render.mosaic(np.ascontiguousarray(torch.stack([e.saliency for e in examples]).numpy()))
        saliency = render.png_bytes(heat)
    entries = [{"tile": i, "index": e.index, "label": e.label, "predicted": e.predicted, "confidence": e.confidence}
               for i, e in enumerate(examples)]
    return render.png_bytes(picture), saliency, {"examples": entries, "layout": layout, "saliency": saliency is not None}


def _worst_bin_examples(binned: dict, values: Mapping[str, Sequence], evaluation: Evaluation, tiles: dict) -> dict:
    """Per attribute, the bin with the lowest accuracy (of those with at least 5 examples) and the kept wrong
    examples that fall in it. The pool holds the most confidently wrong per class, so these are the most
    confidently wrong of that bin *among them*, not a fresh search."""
    row_of = {index: row for row, index in enumerate(evaluation.index.tolist())}
    worst = {}
    for name, result in binned.items():
        candidates = [(entry["accuracy"], i) for i, entry in enumerate(result["bins"]) if entry["count"] >= 5]
        if not candidates:
            continue
        _, which = min(candidates)
        entry = result["bins"][which]
        column = values[name]
        members = []
        for example in tiles["examples"]:
            value = column[row_of[example["index"]]]
            value = value.item() if isinstance(value, torch.Tensor) else value
            if result["kind"] == "categorical":
                inside = str(value) == entry["bin"]
            else:
                low, high = entry["bin"]
                last = which == len(result["bins"]) - 1
                inside = isinstance(value, (int, float)) and low <= value and (value < high or (last and value <= high))
            if inside:
                members.append(example["tile"])
        worst[name] = {"bin": which, "tiles": members[:WORST_BIN_EXAMPLES]}
    return worst
