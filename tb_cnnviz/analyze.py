"""``tb-cnnviz analyze``: every view for a trained model, from a checkpoint and a folder of images.

The model comes from a factory (``pkg.module:function``, called with no arguments) plus a state dict, or from
a whole pickled module (``--whole-module``, which runs pickled code: only for files you trust). Images come
from a torchvision ``ImageFolder`` layout (one subfolder per class: labels known) or a flat folder (no
labels); files that cannot be read are named and skipped. Images are resized, converted to tensors and
normalised (ImageNet statistics by default, as torchvision's pretrained models expect).
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from .logger import CNNViz
from .methods._hooks import conv_layers, model_device, preserved_state
from .methods.dataset.embedding import code_layer
from .methods.dataset.receptive_field import default_layer
from .methods.targets import check_scores
from .views import registry

_DECLARED = [view for view in registry.declarations() if view.analyze is not None]
#: What ``--views`` names: each view's stem, and the former names that still work (``top``, ``saliency``, ...).
VIEW_NAMES = {name: view for view in _DECLARED for name in (view.stem, *view.analyze_names)}
DEFAULT_VIEWS = tuple(view.stem for view in _DECLARED if not view.opt_in)
#: Image-synthesis views: opt-in (``--views ...`` or ``--views all``), as each optimises inputs for a while.
OPT_IN_VIEWS = tuple(view.stem for view in _DECLARED if view.opt_in)
VIEWS = DEFAULT_VIEWS + OPT_IN_VIEWS
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class AnalyzeError(ValueError):
    """A bad model, checkpoint or image folder: the message says what and what would be right."""


def load_factory(spec: str) -> Callable[[], nn.Module]:
    """``pkg.module:function`` -> the function."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise AnalyzeError(f"--model must be 'package.module:factory' (a function returning the model); got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise AnalyzeError(f"--model: cannot import {module_name!r} ({type(exc).__name__}: {exc}); is it on PYTHONPATH?") from exc
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise AnalyzeError(f"--model: {module_name!r} has no callable {attribute!r}")
    return factory


def load_model(spec: str | None, checkpoint: str | Path, whole_module: bool = False) -> nn.Module:
    """The model in eval mode: ``factory()`` with the checkpoint's state dict, or the pickled module."""
    path = Path(checkpoint)
    if not path.is_file():
        raise AnalyzeError(f"--checkpoint {str(path)!r} is not a file")
    if whole_module:
        model = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(model, nn.Module):
            raise AnalyzeError(f"--whole-module: {str(path)!r} holds a {type(model).__name__}, not an nn.Module")
        return model.eval()
    if spec is None:
        raise AnalyzeError("--model is required (or --whole-module for a pickled nn.Module)")
    model = load_factory(spec)()
    if not isinstance(model, nn.Module):
        raise AnalyzeError(f"--model: the factory returned a {type(model).__name__}, not an nn.Module")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # the common {"state_dict": ..., "epoch": ...} checkpoint
    if not isinstance(state, dict):
        raise AnalyzeError(f"--checkpoint holds a {type(state).__name__}; expected a state dict (or use --whole-module)")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(k for k in set(expected) & set(state) if hasattr(state[k], "shape") and state[k].shape != expected[k].shape)
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing from the checkpoint: {', '.join(missing[:8])}" + (" ..." if len(missing) > 8 else ""))
        if unexpected:
            parts.append(f"not in the model: {', '.join(unexpected[:8])}" + (" ..." if len(unexpected) > 8 else ""))
        if shapes:
            parts.append("shape differs: " + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in shapes[:8]))
        raise AnalyzeError("--checkpoint does not fit the model: " + "; ".join(parts))
    model.load_state_dict(state)
    return model.eval()


@dataclass
class ImageFolderData:
    """A re-iterable stream of (images, labels, index) batches read from disk, a batch at a time."""

    files: list[Path]
    labels: list[int] | None
    classes: list[str] | None
    size: int
    mean: Sequence[float]
    std: Sequence[float]
    batch_size: int = 32
    unreadable: set = field(default_factory=set)  #: files named once already: every pass meets them again

    def __iter__(self) -> Iterator[tuple]:
        for start in range(0, len(self.files), self.batch_size):
            chunk = self.files[start : start + self.batch_size]
            pictures, kept = [], []
            for offset, path in enumerate(chunk):
                try:
                    with Image.open(path) as image:
                        pictures.append(self._tensor(image.convert("RGB")))
                    kept.append(start + offset)
                except (OSError, UnidentifiedImageError) as exc:
                    if path not in self.unreadable:
                        self.unreadable.add(path)
                        warnings.warn(f"tb-cnnviz analyze: skipping unreadable image {path} ({exc})", stacklevel=2)
            if not pictures:
                continue
            index = torch.tensor(kept)
            labels = torch.tensor([self.labels[i] for i in kept]) if self.labels is not None else None
            yield (torch.stack(pictures), labels, index) if labels is not None else (torch.stack(pictures), None, index)

    def _tensor(self, image: Image.Image) -> torch.Tensor:
        image = image.resize((self.size, self.size), Image.BILINEAR)
        pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(self.size, self.size, 3)
        pixels = pixels.permute(2, 0, 1).float() / 255
        return (pixels - torch.tensor(self.mean)[:, None, None]) / torch.tensor(self.std)[:, None, None]

    def to_pixels(self, images: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, device=images.device)[:, None, None]
        std = torch.tensor(self.std, device=images.device)[:, None, None]
        return images * std + mean


def image_folder(root: str | Path, size: int = 224, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, batch_size: int = 32) -> ImageFolderData:
    """An ImageFolder layout (subfolders = classes, sorted as torchvision sorts them) or a flat folder."""
    root = Path(root)
    if not root.is_dir():
        raise AnalyzeError(f"--images {str(root)!r} is not a folder")
    subfolders = sorted(p for p in root.iterdir() if p.is_dir())
    if subfolders:
        classes = [p.name for p in subfolders]
        pairs = [(f, label) for label, folder in enumerate(subfolders) for f in sorted(folder.rglob("*"))
                 if f.suffix.lower() in IMAGE_SUFFIXES]
        files, labels = [f for f, _ in pairs], [label for _, label in pairs]
    else:
        classes, labels = None, None
        files = sorted(f for f in root.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise AnalyzeError(f"--images {str(root)!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}), "
                           "directly or one subfolder per class")
    return ImageFolderData(files, labels, classes, size, mean, std, batch_size)


@dataclass
class Analysis:
    """What a view's ``analyze`` hook (``views/<stem>.py``) logs with: the CNNViz, the images, the step, and
    the spatial layers for the per-layer views (``--layers``, else a middle conv: neither edge of the net)."""

    viz: CNNViz
    model: nn.Module
    data: ImageFolderData
    spatial: list[str]
    step: int
    error: type[Exception] = AnalyzeError

    def code_layer(self) -> str:
        return _code_layer(self.model)

    def model_class_names(self) -> list[str] | None:
        return _model_class_names(self.model, self.viz.probe_images, self.data.classes)


def analyze(model: nn.Module, data: ImageFolderData, logdir: str | Path, layers: Sequence[str] | None = None,
            views: Sequence[str] = DEFAULT_VIEWS, probes: int = 8, step: int = 0) -> list[str]:
    """Log every requested view for ``model`` over ``data`` into ``logdir``; returns the views written, by the
    names asked for. ``views`` may be ``["all"]``: the default ones and the opt-in image-synthesis ones."""
    views = VIEWS if list(views) == ["all"] else views
    unknown = [v for v in views if v not in VIEW_NAMES]
    if unknown:
        raise AnalyzeError(f"--views: unknown {', '.join(unknown)}; the views are {', '.join(VIEWS)}")
    probe_images, labels = probe_batch(data, probes)
    _check_folder_classes(model, probe_images, data, views)
    spatial = list(layers or []) or _spatial_layer(model, data.size)
    written: list[str] = []
    failures: list[str] = []
    with CNNViz(model, str(logdir), probe_images=probe_images, probe_labels=labels, layers=layers, raise_errors=True) as viz:
        job = Analysis(viz, model, data, spatial, step)
        for view in views:
            print(f"tb-cnnviz analyze: {view}", file=sys.stderr)
            try:
                VIEW_NAMES[view].analyze(job)
            except Exception as exc:  # one failing view does not stop the others; the exit code says so
                failures.append(f"{view}: {type(exc).__name__}: {exc}")
                print(f"tb-cnnviz analyze: {view} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            written.append(view)
    if failures:
        raise AnalyzeError("some views failed (the others were written): " + "; ".join(failures))
    return written


def probe_batch(data: ImageFolderData, probes: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``probes`` images drawn across the folder's classes in turn (each class's first file, then each one's
    second, ...), so that every class is shown when there are at most ``probes``; a flat folder's spread evenly
    over its files. Unreadable files are skipped (and named once, as in every pass)."""
    count = len(data.files)
    if data.labels is not None:
        by_class: dict[int, list[int]] = {}
        for index, label in enumerate(data.labels):
            by_class.setdefault(label, []).append(index)
        queues = [by_class[label] for label in sorted(by_class)]
        order = [queue[rank] for rank in range(max(map(len, queues))) for queue in queues if rank < len(queue)]
    else:
        spread = sorted({round(i * (count - 1) / max(1, probes - 1)) for i in range(min(probes, count))})
        order = spread + [i for i in range(count) if i not in set(spread)]
    images: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    for start in range(0, count, probes):
        if len(images) >= probes:
            break
        chosen = order[start : start + probes]
        subset = ImageFolderData([data.files[i] for i in chosen],
                                 [data.labels[i] for i in chosen] if data.labels is not None else None,
                                 data.classes, data.size, data.mean, data.std, batch_size=probes,
                                 unreadable=data.unreadable)
        for batch, batch_labels, _ in subset:
            images.extend(batch)
            if batch_labels is not None:
                labels.extend(batch_labels)
    if not images:
        raise AnalyzeError("no image in --images could be read")
    return torch.stack(images[:probes]), torch.stack(labels[:probes]) if labels else None


def _check_folder_classes(model: nn.Module, probes: torch.Tensor, data: ImageFolderData, views: Sequence[str]) -> None:
    """Before any long pass: a folder whose classes are not the model's fails the views that read them as the
    model's (those declaring ``folder_classes``), so say so now, with what would work, rather than after the
    other views' passes."""
    needing = [view for view in views if VIEW_NAMES[view].folder_classes]
    if data.classes is None or not needing:
        return
    classes = _model_class_count(model, probes)
    if classes is None or classes == len(data.classes):
        return
    shown = ", ".join(data.classes[:5]) + (", ..." if len(data.classes) > 5 else "")
    others = [view for view in views if view not in needing]
    raise AnalyzeError(
        f"--images has {len(data.classes)} class subfolders ({shown}) but the model has {classes} classes; the "
        f"{' and '.join(needing)} view(s) read subfolder i (in sorted order) as the model's class i. Give one "
        "subfolder per class of the model, or leave those views out"
        + (f": --views {','.join(others)}" if others else ""))


def _model_class_count(model: nn.Module, probes: torch.Tensor) -> int | None:
    """How many classes the model scores (its output's last axis for one probe), None if it gives no (N, K)."""
    with preserved_state(model), torch.inference_mode():
        outputs = model(probes[:1].to(model_device(model)))
    try:
        return check_scores(outputs, 1).shape[-1]
    except ValueError:
        return None


def _spatial_layer(model: nn.Module, size: int) -> list[str]:
    """The per-layer views' layer when ``--layers`` names none: the middle convolution with a grid (the rule of
    :func:`~tb_cnnviz.methods.default_layer`); none when the model has no such conv (those views say why)."""
    try:
        return [default_layer(model, (size, size))]
    except ValueError:
        convs = list(conv_layers(model))
        return convs[len(convs) // 2 : len(convs) // 2 + 1]


def _model_class_names(model: nn.Module, probes: torch.Tensor, classes: list[str] | None) -> list[str] | None:
    """The folder's class names when they are the model's classes (as many as its outputs), else None: a
    10-class model shown a 2-class folder names its predictions by number."""
    if classes is None:
        return None
    return classes if _model_class_count(model, probes) == len(classes) else None


def _code_layer(model: nn.Module) -> str:
    try:
        return code_layer(model)
    except ValueError as exc:
        raise AnalyzeError(f"{exc} (--layers)") from None
