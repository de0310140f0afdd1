"""``torch.fx.symbolic_trace``, with graphs kept for models traced ahead of time.

Why: symbolic tracing patches ``nn.Module.__call__`` for the whole process while it runs, so a trace in a
worker thread breaks the training thread's forward. A model whose views run in a worker (autolog's weight
snapshot) is traced once in the training thread (:func:`keep_trace`); the views then find its graph here.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

_KEPT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def symbolic_trace(model: nn.Module) -> torch.fx.GraphModule:
    """``model``'s graph (kept, or traced now); raises what ``torch.fx`` raises when it cannot trace."""
    kept = _KEPT.get(model)
    if kept is None:
        return torch.fx.symbolic_trace(model)
    if isinstance(kept, Exception):
        raise kept
    return kept


def eval_trace(model: nn.Module) -> torch.fx.GraphModule:
    """:func:`symbolic_trace` of ``model`` in eval mode (a ``self.training`` branch, timm's drop path, traced as
    inference runs it); every module's mode restored after."""
    training = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        return symbolic_trace(model)
    finally:
        for module, mode in training:
            module.training = mode


def keep_trace(model: nn.Module) -> None:
    """Trace ``model`` now, in eval mode (as the views trace it), and keep the graph (or fx's error) for it."""
    _KEPT.pop(model, None)
    try:
        _KEPT[model] = eval_trace(model)
    except Exception as exc:  # noqa: BLE001 -- kept, raised where the graph is asked for
        _KEPT[model] = exc
