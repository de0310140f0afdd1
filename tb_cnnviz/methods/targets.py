"""Checks shared by the attribution methods: the model's output and which class each map explains.

A model whose forward returns more than class scores (logits with features, auxiliary heads: a tuple, a list
or a dict) is read through ``output``: an index or key of its output, or a callable from the output to the
scores; ``None`` finds them where that is unambiguous (a tuple or list whose first element is the (N, classes)
scores; a dict with ``logits``, or with one (N, classes) tensor).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Union

import torch
from torch import nn

#: Where a model's class scores are in its output: an index, a key, a callable, or None (found, see above).
Output = Union[int, str, Callable[[Any], torch.Tensor], None]

from ._hooks import check_images, model_device, preserved_state


def check_inputs(model: nn.Module, images: object) -> torch.Tensor:
    """Images (N, C, H, W) on the model's device, with the channel count its first conv expects."""
    images = check_images(images)
    device = model_device(model)
    if images.device != device:
        raise ValueError(f"images are on {images.device} but the model is on {device}: move them with images.to({str(device)!r})")
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first_conv is not None and images.shape[1] != first_conv.in_channels:
        hint = " (repeat a grey channel with images.expand(-1, 3, -1, -1))" if images.shape[1] == 1 else ""
        raise ValueError(
            f"images have {images.shape[1]} channel(s) but the model's first conv takes {first_conv.in_channels}{hint}"
        )
    return images


def check_output(output: object) -> Output:
    """``output`` as a user gave it: an int, a str, a callable or None."""
    if output is None or callable(output) or isinstance(output, str) or (isinstance(output, int) and not isinstance(output, bool)):
        return output  # type: ignore[return-value]
    raise TypeError("output must be an index or key of the model's output (e.g. 0 or 'logits'), or a callable from "
                    f"the output to the (N, classes) scores; got {type(output).__name__}")


def check_scores(raw: object, batch: int, output: Output = None) -> torch.Tensor:
    """The (N, classes) class scores in what the model returned for N images (see the module's docstring)."""
    if output is not None:
        try:
            scores = output(raw) if callable(output) else raw[output]  # type: ignore[index]
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"output={output!r} does not pick anything out of the model's output "
                             f"({_describe(raw, batch)}): {type(exc).__name__}: {exc}") from exc
        return _scores_shape(scores, batch, f"output={output!r} picked")
    found = raw if _is_scores(raw, batch) else _found_scores(raw, batch)
    if found is not None:
        return found
    if isinstance(raw, torch.Tensor):
        raise ValueError(f"the model's output must be class scores of shape (N={batch}, classes); got {tuple(raw.shape)}")
    raise ValueError(f"the model's output must be class scores of shape (N={batch}, classes); got {_describe(raw, batch)}. "
                     "Say where the scores are with output=... (an index or key, e.g. output=0 or output='logits', "
                     "or a callable from the output to the scores)")


def _found_scores(raw: object, batch: int) -> torch.Tensor | None:
    """The scores in a tuple, list or dict, where unambiguous; None otherwise (a tensor too)."""
    if isinstance(raw, (tuple, list)) and raw and _is_scores(raw[0], batch):
        return raw[0]
    if isinstance(raw, Mapping):
        if _is_scores(raw.get("logits"), batch):
            return raw["logits"]
        candidates = [value for value in raw.values() if _is_scores(value, batch)]
        if len(candidates) == 1:
            return candidates[0]
    return None


def _is_scores(value: object, batch: int) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[0] == batch


def _scores_shape(scores: object, batch: int, what: str) -> torch.Tensor:
    if not _is_scores(scores, batch):
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(f"{what} not class scores of shape (N={batch}, classes): got {shape}")
    return scores  # type: ignore[return-value]


def _describe(raw: object, batch: int) -> str:
    """What a model returned, for an error message: shapes by index or key."""
    if isinstance(raw, torch.Tensor):
        return f"a tensor of shape {tuple(raw.shape)}"
    if isinstance(raw, (tuple, list)):
        parts = [f"[{i}] {_short(v)}" for i, v in enumerate(raw[:8])]
        return f"a {type(raw).__name__} of {len(raw)}: " + ", ".join(parts)
    if isinstance(raw, Mapping):
        parts = [f"{k!r}: {_short(v)}" for k, v in list(raw.items())[:8]]
        return "a dict: {" + ", ".join(parts) + "}"
    return type(raw).__name__


def _short(value: object) -> str:
    return f"tensor {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__


def resolve_targets(target: int | torch.Tensor | None, scores: torch.Tensor) -> torch.Tensor:
    """``target`` as a LongTensor (N,) on the scores' device; ``None`` means the predicted class."""
    batch, classes = scores.shape
    if target is None:
        return scores.detach().argmax(dim=1)
    if isinstance(target, bool) or not isinstance(target, (int, torch.Tensor)):
        raise TypeError(f"target must be an int or a LongTensor of shape (N,); got {type(target).__name__}")
    targets = torch.as_tensor(target, device=scores.device)
    if targets.is_floating_point() or targets.dim() > 1:
        raise ValueError(f"target must be an int or an integer tensor of shape (N={batch},); got {targets.dtype} {tuple(targets.shape)}")
    targets = targets.long().expand(batch) if targets.dim() == 0 else targets.long()
    if targets.shape[0] != batch:
        raise ValueError(f"target has {targets.shape[0]} entries for {batch} images; give one class per image")
    bad = (targets < 0) | (targets >= classes)
    if bad.any():
        raise ValueError(f"target {targets[bad][0].item()} is out of range: the model has {classes} classes (0..{classes - 1})")
    return targets


def class_probabilities(model: nn.Module, images: torch.Tensor, output: Output = None) -> torch.Tensor:
    """Softmax of the model's scores (N, classes), in eval mode, the model left as found."""
    images = check_inputs(model, images)
    with torch.inference_mode(), preserved_state(model):
        model.eval()
        return check_scores(model(images), len(images), output).float().softmax(dim=1)
