"""Finding layers, hooking them safely, and leaving the model exactly as it was found.

Every method that runs the model goes through here, so that the guarantees "hooks removed, modes,
``requires_grad``, gradients, buffers and RNG state restored, also on error" live in one place.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Callable

import torch
from torch import nn

#: Activation modules whose output is exactly zero where a unit is off: "dead" is well defined for them.
#: LeakyReLU, GELU, SiLU and the other smooth activations never output exact zeros: the health monitor watches
#: them as well, for *dormant* channels (never positive; ``activations/activation_sites.py``).
RELU_LIKE: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6)

CALL_SEPARATOR = "#"


def is_relu_like(module: nn.Module) -> bool:
    return isinstance(module, RELU_LIKE) or (isinstance(module, nn.Hardtanh) and module.min_val == 0)


def is_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.conv._ConvNd)


def conv_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every convolution of ``model`` by qualified name, in registration order."""
    return {name or "(model)": m for name, m in model.named_modules() if is_conv(m)}


def relu_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every ReLU-like module of ``model`` by qualified name."""
    return {name or "(model)": m for name, m in model.named_modules() if is_relu_like(m)}


#: A net with more conv and ReLU-like modules than this is "deep": its default layers are its blocks.
DEEP_NET_LAYERS = 40
#: Plain containers: their elements are what a user calls the net's blocks (their subclasses with a
#: ``forward`` of their own, torchvision's ``_DenseBlock`` or ``Conv2dNormActivation``, are blocks themselves).
CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def every_conv_and_relu(model: nn.Module) -> dict[str, nn.Module]:
    """Every conv and ReLU-like module, in registration order."""
    return {name or "(model)": m for name, m in model.named_modules() if is_conv(m) or is_relu_like(m)}


def blocks(model: nn.Module) -> dict[str, nn.Module]:
    """The outermost modules holding a convolution that are neither convolutions nor plain containers,
    found by descending through the model and its plain containers: torchvision resnet's 16 bottlenecks
    (``layer1.0`` ... ``layer4.2``), densenet's dense blocks and transitions, mobilenet's inverted residuals."""
    found: dict[str, nn.Module] = {}

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            path = f"{prefix}{name}"
            if type(child) in CONTAINERS:
                visit(f"{path}.", child)
            elif not is_conv(child) and any(is_conv(m) for m in child.modules()):
                found[path] = child

    visit("", model)
    return found


def default_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The layers a user would pick when naming none. A net of at most :data:`DEEP_NET_LAYERS` conv and
    ReLU-like modules: every one of them. A deeper net: its first conv and each block's output
    (:func:`blocks`; resnet50: 17 layers instead of 102 calls), so a call stays a few MB; a deep net without
    blocks (a long plain stack) keeps every conv and ReLU."""
    everything = every_conv_and_relu(model)
    found = blocks(model) if len(everything) > DEEP_NET_LAYERS else {}
    if len(found) < 2:
        return everything
    first_conv = next(((n, m) for n, m in everything.items() if is_conv(m)), None)
    return {**({first_conv[0]: first_conv[1]} if first_conv else {}), **found}


def split_call(layer: str) -> tuple[str, int | None]:
    """``"layer1.0.relu#2"`` -> ``("layer1.0.relu", 1)`` (0-based call); a plain name -> ``(name, None)``."""
    module, sep, call = layer.rpartition(CALL_SEPARATOR)
    if sep and call.isdigit() and int(call) >= 1:
        return module, int(call) - 1
    return layer, None


def call_name(module_name: str, call: int, calls_per_forward: int) -> str:
    """The layer name shown to users: the module name, with ``#k`` (1-based) when it runs several times."""
    return module_name if calls_per_forward <= 1 else f"{module_name}{CALL_SEPARATOR}{call + 1}"


def resolve_layers(model: nn.Module, layers: Sequence[str] | None, argument: str = "layers") -> dict[str, nn.Module]:
    """Map user-given layer names (optionally ``name#k``) to modules; default: :func:`default_layers`.

    A name that is not a module raises ``ValueError`` listing the closest names and every layer there is.
    """
    if layers is None:
        return default_layers(model)
    if isinstance(layers, str):
        layers = [layers]
    modules = dict(model.named_modules())
    resolved: dict[str, nn.Module] = {}
    for layer in layers:
        if not isinstance(layer, str):
            raise TypeError(f"{argument} must be module names (str); got {type(layer).__name__} {layer!r}")
        module_name, _ = split_call(layer)
        if module_name not in modules or module_name == "":
            raise ValueError(unknown_layer_message(model, layer, argument))
        resolved[module_name] = modules[module_name]
    return resolved


def unknown_layer_message(model: nn.Module, layer: str, argument: str = "layer") -> str:
    names = [name for name, _ in model.named_modules() if name]
    close = difflib.get_close_matches(layer, names, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listing = ", ".join(names) if len(names) <= 200 else ", ".join(names[:200]) + f", ... ({len(names)} in all)"
    return f"{argument}: {type(model).__name__} has no layer {layer!r}.{hint} Its layers are: {listing}"


Callback = Callable[[str, int, torch.Tensor], 'torch.Tensor | None']


@contextmanager
def forward_hooks(
    model: nn.Module, modules: Mapping[str, nn.Module], callback: Callback, before: Collection[str] = ()
) -> Iterator[None]:
    """Call ``callback(module_name, call_index, output)`` for every call of each module during forwards of
    ``model``. ``call_index`` counts calls of that module within one forward of ``model`` (0-based), so a
    module reused in one forward (torchvision resnet's ``relu``) is told apart per call. Modules named in
    ``before`` pass their (first) input instead of their output, before they run. What ``callback`` returns
    for an output, when not None, replaces it (a forward hook's rule): a gradient taken at a layer holds its
    own copy that a later in-place op cannot change.

    Hooks are removed and the handle list cleared on exit, also on error.
    """
    calls: dict[str, int] = {}

    def new_forward(_module: nn.Module, _inputs: object) -> None:
        calls.clear()

    handles = [model.register_forward_pre_hook(new_forward)]
    try:
        for name, module in modules.items():

            def hook(_module: nn.Module, _inputs: object, output: object, name: str = name) -> object:
                call = calls.get(name, 0)
                calls[name] = call + 1
                return callback(name, call, output) if isinstance(output, torch.Tensor) else None

            if name in before:

                def observe(module: nn.Module, inputs: tuple, hook: Callable = hook) -> None:
                    hook(module, inputs, inputs[0] if inputs else None)  # observed, never replaced

                handles.append(module.register_forward_pre_hook(observe))
            else:
                handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
        handles.clear()


def run_order(model: nn.Module, images: torch.Tensor, modules: Collection[nn.Module]) -> list[nn.Module]:
    """Which of ``modules`` run, in the order of their calls (a module called twice appears twice), found by
    one forward of the first image in eval mode; the model is left as found."""
    order: list[nn.Module] = []
    handles = [module.register_forward_hook(lambda m, i, o: order.append(m)) for module in modules]
    try:
        with torch.inference_mode(), preserved_state(model):
            model.eval()
            model(images[:1])
    finally:
        for handle in handles:
            handle.remove()
    return order


_thread = threading.local()


@contextmanager
def global_rng_untouched() -> Iterator[None]:
    """In this thread, :func:`preserved_state` neither saves nor restores the global RNG: for a worker thread
    running views beside training, where restoring would rewind what the training thread drew meanwhile.
    Why that is safe: the views draw only from generators of their own (``seeded_generator``)."""
    before = getattr(_thread, "rng_untouched", False)
    _thread.rng_untouched = True
    try:
        yield
    finally:
        _thread.rng_untouched = before


@contextmanager
def preserved_state(model: nn.Module) -> Iterator[None]:
    """Restore on exit, also on error: every module's ``training`` flag, every parameter's ``requires_grad``
    and ``.grad`` (the same tensor object), every buffer's value (BatchNorm running statistics), and the
    torch RNG states (CPU and initialised CUDA devices).

    Why: a visualisation called from a training loop must not change what the loop computes next.
    """
    training = [(m, m.training) for m in model.modules()]
    params = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    own_rng = not getattr(_thread, "rng_untouched", False)
    cpu_rng = torch.get_rng_state() if own_rng else None
    cuda_rng = (torch.cuda.get_rng_state_all()
                if own_rng and torch.cuda.is_available() and torch.cuda.is_initialized() else None)
    try:
        yield
    finally:
        for module, mode in training:
            module.training = mode
        with torch.no_grad():
            for param, requires_grad, grad in params:
                param.requires_grad_(requires_grad)
                param.grad = grad
            for buffer, saved in buffers:
                if buffer.shape == saved.shape:
                    buffer.copy_(saved)
        if cpu_rng is not None:
            torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module that holds the layers: inside ``DataParallel`` / ``DistributedDataParallel`` (``.module``)
    and ``torch.compile`` (``._orig_mod``), so layer names carry no ``module.`` prefix and hooks go on the
    modules the wrapper runs."""
    wrappers = (nn.DataParallel, nn.parallel.DistributedDataParallel)
    for _ in range(8):  # wrappers of wrappers: compile(DDP(model))
        if isinstance(model, wrappers):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            break
    return model


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def check_positive_int(value: object, argument: str, meaning: str = "") -> int:
    """``value`` must be an int >= 1 (not a bool); the error names ``argument`` and, in brackets, ``meaning``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{argument} must be a positive int{f' ({meaning})' if meaning else ''}; got {value!r}")
    return value


def check_images(images: object, argument: str = "images") -> torch.Tensor:
    """Images must be a float tensor (N, C, H, W); say what was wrong otherwise."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{argument} must be a torch.Tensor of shape (N, C, H, W); got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(
            f"{argument} must be a 4-D tensor (N, C, H, W) of images; got shape {tuple(images.shape)}"
            + (" (add a batch dimension with images.unsqueeze(0))" if images.dim() == 3 else "")
        )
    if images.shape[0] == 0:
        raise ValueError(f"{argument} is empty: it needs at least one image, got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{argument} must be a floating-point tensor (as the model takes it); got {images.dtype}")
    return images


class ForwardStopped(Exception):
    """Raised from a hook to end a forward pass once what the caller needs has run (the wanted layer's
    output): nothing later is computed. The caller catches it; :class:`.LayoutForward` lets it through."""


def layer_output(model: nn.Module, layer: str, inputs: torch.Tensor, before: bool = False) -> torch.Tensor:
    """The output of ``layer`` (``name``, or ``name#k`` for the k-th call of a reused module) for ``inputs``,
    with its autograd graph; ``before=True`` gives the layer's input instead (a ReLU's pre-activation).
    The forward stops right there: nothing later is computed, and no later in-place op can overwrite the
    captured tensor."""
    module_name, call = split_call(layer)
    modules = dict(model.named_modules())
    if module_name not in modules or module_name == "":
        raise ValueError(unknown_layer_message(model, layer))
    module, wanted = modules[module_name], 0 if call is None else call
    captured: list[torch.Tensor] = []

    def keep(tensor: object) -> None:
        if len(captured) == wanted and isinstance(tensor, torch.Tensor):
            captured.append(tensor)
            raise ForwardStopped
        captured.append(None)  # an earlier call of a reused module: count it

    if before:
        handle = module.register_forward_pre_hook(lambda _m, args: keep(args[0] if args else None))
    else:
        handle = module.register_forward_hook(lambda _m, _args, output: keep(output))
    try:
        model(inputs)
    except ForwardStopped:
        return captured[wanted]
    finally:
        handle.remove()
    raise ValueError(
        f"layer {layer!r} ran {len(captured)} time(s) in a forward pass of {type(model).__name__}; "
        + ("it is defined but never called" if not captured else f"use a call number from 1 to {len(captured)}")
    )
