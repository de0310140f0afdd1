"""Backward rules for ReLUs: the DeconvNet and guided-backpropagation variants of the gradient.

Both papers change only what a ReLU passes backward:

* DeconvNet (Zeiler & Fergus): ``relu(grad_out)``, whatever the ReLU's input was;
* guided backpropagation (Springenberg et al.): ``relu(grad_out) * (input > 0)``.

Which calls are ReLUs: every call of ``nn.ReLU`` modules *and* of ``F.relu`` / ``torch.relu`` / ``Tensor.relu``
(and their in-place forms) made during the forward, caught by a ``TorchFunctionMode`` rather than by module
hooks. So a module reused several times per forward (torchvision resnet's ``relu``), in-place ReLUs, and a bare
``F.relu`` in ``forward`` (torchvision densenet's last one) all get the rule. Captum hooks ``nn.ReLU`` modules
only; on models whose every ReLU is a module the two agree, on densenet its last ReLU passes the plain gradient
under Captum. ReLU6, hardswish and the other activations keep their own gradient, as in Captum.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

DECONVNET = "deconvnet"
GUIDED = "guided"
RULES = (DECONVNET, GUIDED)


class _RectifierWithRule(torch.autograd.Function):
    """``max(x, 0)`` forward; backward by ``rule``. ``inplace`` rectifies ``x`` itself (``mark_dirty``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, rule: str, inplace: bool) -> torch.Tensor:  # noqa: ANN001
        if inplace:
            out = x.clamp_min_(0)
            ctx.mark_dirty(out)
        else:
            out = x.clamp_min(0)
        ctx.rule = rule
        ctx.save_for_backward(out)  # out > 0 exactly where the input was > 0
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: ANN001
        (out,) = ctx.saved_tensors
        if ctx.rule == GUIDED:  # ReLU's own backward (one fused kernel), then only the positive part
            return torch.ops.aten.threshold_backward(grad, out, 0).clamp_min_(0), None, None
        return grad.clamp_min(0), None, None


_OUT_OF_PLACE = {F.relu, torch.relu, torch.Tensor.relu}
_IN_PLACE = {F.relu_, torch.relu_, torch.Tensor.relu_}


class _RectifierMode(TorchFunctionMode):
    def __init__(self, rule: str):
        super().__init__()
        self.rule = rule

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if func in _OUT_OF_PLACE or func in _IN_PLACE:
            x = args[0] if args else kwargs["input"]
            inplace = func in _IN_PLACE or bool(kwargs.get("inplace", args[1] if len(args) > 1 else False))
            if isinstance(x, torch.Tensor) and x.requires_grad:
                return _RectifierWithRule.apply(x, self.rule, inplace)
        return func(*args, **kwargs)


@contextmanager
def rectifier_rule(rule: str) -> Iterator[None]:
    """Within this block, every ReLU the forward calls passes gradients backward by ``rule``."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}; got {rule!r}")
    with _RectifierMode(rule):
        yield
