"""Where a CNN's activations are, for health monitoring with no arguments.

Three styles, each measured where a hook can see it:

- ReLU-family modules (``nn.ReLU``, ``nn.ReLU6``, ``Hardtanh(0, x)``): their output, which is exactly zero
  where a unit is off. A channel whose map is all zero is *dead*: no gradient flows through it.
- Functional ReLUs in ``forward`` (``F.relu``, ``torch.relu``, ``Tensor.relu``, in place or not), found once
  in the ``torch.fx`` graph: the output of the module producing the ReLU's input, where a map with max <= 0 is
  exactly the ReLU's all-zero map. A ReLU of something no module produces (``relu(out + identity)``) is named
  in one warning; a model fx cannot trace is said so once, and its modules are watched.
- Smooth and leaky activations (SiLU, GELU, Mish, Hardswish, ELU, CELU, SELU, LeakyReLU, PReLU, Softplus, as
  modules or functions): their input, the pre-activation. A channel that never turns positive is *dormant*:
  its output is <= 0 (or, for Softplus, small) but its gradient still flows, so it can recover.

The channel axis comes from the module producing the activation's input, never from the shape alone: after a
``Linear`` or ``LayerNorm`` (ConvNeXt's GELU runs on (N, H, W, C)) it is the last axis, otherwise axis 1.

An activation in the squeeze path of a squeeze-and-excitation block (torchvision's ``SqueezeExcitation``,
timm's ``SqueezeExcite`` and ``SEModule``: a module with a sigmoid-like gate and a conv or linear layer as
children) has the role ``"gate"``: its channels compute one number an image from pooled features, which then
scales a feature map through the gate. They are not feature channels, and many are off at random
initialisation (a pooled input varies little from image to image).
"""

from __future__ import annotations

import operator
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._hooks import is_relu_like

DEAD = "dead"  #: exact zeros where a unit is off: no gradient flows
DORMANT = "dormant"  #: never positive over the window, yet the gradient flows: may recover
FEATURE = "feature"  #: an activation of the feature path
GATE = "gate"  #: an activation in the squeeze path of a squeeze-and-excitation block

#: Smooth and leaky activations: output <= 0 exactly where the input is <= 0 (Softplus: output small there),
#: so they are measured on their input. Class names too, for libraries' own copies (timm's GELU, Swish, ...).
SMOOTH_MODULES: tuple[type[nn.Module], ...] = (
    nn.SiLU, nn.GELU, nn.Mish, nn.Hardswish, nn.ELU, nn.CELU, nn.SELU, nn.LeakyReLU, nn.PReLU, nn.Softplus,
)
_SMOOTH_NAMES = frozenset({
    "silu", "swish", "swishme", "gelu", "gelutanh", "quickgelu", "mish", "mishme", "hardswish", "hardswishme",
    "elu", "celu", "selu", "leakyrelu", "prelu", "softplus",
})

_RELU_FUNCTIONS = {F.relu, F.relu_, torch.relu, torch.relu_, F.relu6}
_RELU_METHODS = {"relu", "relu_"}
_SMOOTH_FUNCTIONS = {F.silu, F.gelu, F.mish, F.hardswish, F.elu, F.elu_, F.celu, F.selu, F.leaky_relu,
                     F.leaky_relu_, F.softplus, torch.selu, torch.celu, F.prelu}
_SMOOTH_FUNCTIONS = {f for f in _SMOOTH_FUNCTIONS if f is not None}

#: Producers whose output has its channels on the last axis.
_CHANNELS_LAST_PRODUCERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.LayerNorm, nn.Bilinear)
#: Modules and functions that keep the channel axis of their input: look through them to the producer.
_PASS_THROUGH_MODULES: tuple[type[nn.Module], ...] = (nn.Dropout, nn.Identity, nn.modules.dropout._DropoutNd)
_PASS_THROUGH_FUNCTIONS = {operator.add, operator.mul, operator.iadd, torch.add, torch.mul, F.dropout}


@dataclass
class ActivationSite:
    """One place health monitoring hooks: a module, its input or output, and which of its calls."""

    module: str  #: qualified module name (the layer name shown)
    health: str  #: :data:`DEAD` or :data:`DORMANT`
    before: bool  #: measure the module's input (a smooth activation's pre-activation), else its output
    nonnegative: bool  #: the measured tensor is a ReLU's output (>= 0): a map's sum is its cheapest test
    channel_axis: int = 1  #: 1, or -1 for channels-last producers (Linear, LayerNorm)
    calls: set[int] | None = None  #: which calls of the module within one forward (0-based); None: all
    found_as: str = ""  #: how it was found, for messages: "ReLU", "F.relu", "SiLU", ...
    role: str = FEATURE  #: :data:`FEATURE`, or :data:`GATE` in a squeeze-and-excitation block's squeeze path


def is_smooth_activation(module: nn.Module) -> bool:
    return isinstance(module, SMOOTH_MODULES) or type(module).__name__.lower() in _SMOOTH_NAMES


def output_channel_axis(module: nn.Module | None) -> int:
    """Where a module's output keeps its channels: last for Linear / LayerNorm, else axis 1."""
    return -1 if isinstance(module, _CHANNELS_LAST_PRODUCERS) else 1


def module_site(name: str, module: nn.Module, channel_axis: int = 1) -> ActivationSite:
    """The site of a user-named module: a ReLU's output, a smooth activation's input, else the output (dead
    where a map is all <= 0)."""
    if is_relu_like(module):
        return ActivationSite(name, DEAD, before=False, nonnegative=True, channel_axis=channel_axis,
                              found_as=type(module).__name__)
    if is_smooth_activation(module):
        return ActivationSite(name, DORMANT, before=True, nonnegative=False, channel_axis=channel_axis,
                              found_as=type(module).__name__)
    return ActivationSite(name, DEAD, before=False, nonnegative=False, channel_axis=output_channel_axis(module),
                          found_as=type(module).__name__)


def find_activation_sites(model: nn.Module) -> dict[str, ActivationSite]:
    """Every activation of ``model`` health monitoring can watch, by module name, in registration order.

    Raises ``ValueError`` naming the activation types there are when none is known here.
    """
    modules = {name: m for name, m in model.named_modules() if name}
    graph = _trace(model)
    sites: dict[str, ActivationSite] = {}
    for name, module in modules.items():
        if is_relu_like(module) or is_smooth_activation(module):
            axis = _module_input_axis(graph, name, modules) if graph is not None else 1
            sites[name] = module_site(name, module, axis)
    if graph is not None:
        for name, site in _functional_sites(graph, modules).items():
            if name in sites:
                continue
            sites[name] = site
    if not sites:
        raise ValueError(_no_activation_message(model, graph))
    order = {name: index for index, name in enumerate(modules)}
    return dict(sorted(sites.items(), key=lambda kv: order[kv[0]]))


def _trace(model: nn.Module) -> torch.fx.Graph | None:
    """The model's fx graph (leaf modules as calls), or None with one warning when fx cannot trace it."""
    try:
        return _ActivationLeafTracer().trace(model)
    except Exception as exc:  # noqa: BLE001 -- any failure means "no graph": say so and watch the modules
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        warnings.warn(
            f"tb_cnnviz: torch.fx could not trace {type(model).__name__} ({reason}); health monitoring watches "
            "its activation modules only, not functional activations (F.relu, ...) in forward",
            stacklevel=4,
        )
        return None


class _ActivationLeafTracer(torch.fx.Tracer):
    """Activation modules stay calls in the graph, also libraries' own (timm's GELU calls F.gelu inside):
    their insides must not be found a second time as functional activations."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return is_relu_like(module) or is_smooth_activation(module) or super().is_leaf_module(module, qualified_name)


def _module_input_axis(graph: torch.fx.Graph, name: str, modules: dict[str, nn.Module]) -> int:
    for node in graph.nodes:
        if node.op == "call_module" and node.target == name and node.args:
            return _producer_axis(node.args[0], modules)
    return 1


def _producer_axis(node: object, modules: dict[str, nn.Module], depth: int = 0) -> int:
    """The channel axis of a node's value, from the module that made it (looking through dropout, adds)."""
    if not isinstance(node, torch.fx.Node) or depth > 8:
        return 1
    if node.op == "call_module":
        module = modules.get(node.target)
        if isinstance(module, _PASS_THROUGH_MODULES) or is_relu_like(module) or is_smooth_activation(module):
            return _producer_axis(node.args[0] if node.args else None, modules, depth + 1)
        return output_channel_axis(module)
    if node.op == "call_function" and node.target in _PASS_THROUGH_FUNCTIONS | _RELU_FUNCTIONS | _SMOOTH_FUNCTIONS:
        return _producer_axis(node.args[0] if node.args else None, modules, depth + 1)
    return 1


def _functional_sites(graph: torch.fx.Graph, modules: dict[str, nn.Module]) -> dict[str, ActivationSite]:
    """Functional activations measured at the module producing their input (the k-th call of it)."""
    calls: dict[str, int] = {}
    sites: dict[str, ActivationSite] = {}
    orphans: list[str] = []
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
            continue
        health = _functional_health(node)
        if health is None:
            continue
        source = node.args[0] if node.args else node.kwargs.get("input")
        label = _function_label(node)
        if not (isinstance(source, torch.fx.Node) and source.op == "call_module"):
            what = source.name if isinstance(source, torch.fx.Node) else repr(source)
            orphans.append(f"{label}({what})")
            continue
        call = calls[source.target] - 1  # the call whose output this node reads
        site = sites.get(source.target)
        if site is None or site.health != health:
            sites[source.target] = ActivationSite(
                source.target, health, before=False, nonnegative=False,
                channel_axis=_producer_axis(source, modules), calls={call}, found_as=label)
        else:
            site.calls.add(call)
    if orphans:
        shown = ", ".join(orphans[:8]) + (f", ... ({len(orphans)} in all)" if len(orphans) > 8 else "")
        warnings.warn(
            f"tb_cnnviz: {len(orphans)} functional activation(s) take a value no module produces, so health "
            f"monitoring cannot watch them: {shown}; wrap the value in a module (e.g. nn.Identity) to watch it",
            stacklevel=5,
        )
    return sites


def _functional_health(node: torch.fx.Node) -> str | None:
    if node.op == "call_function":
        if node.target in _RELU_FUNCTIONS:
            return DEAD
        if node.target in _SMOOTH_FUNCTIONS:
            return DORMANT
    if node.op == "call_method" and node.target in _RELU_METHODS:
        return DEAD
    return None


def _function_label(node: torch.fx.Node) -> str:
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    name = getattr(node.target, "__name__", str(node.target))
    return f"F.{name}" if getattr(F, name, None) is node.target else f"torch.{name}"


def _no_activation_message(model: nn.Module, graph: torch.fx.Graph | None) -> str:
    found = sorted({type(m).__name__ for m in model.modules()
                    if type(m).__module__.startswith("torch.nn.modules.activation")})
    if graph is not None:
        found += sorted({_function_label(n) for n in graph.nodes if n.op == "call_function"
                         and getattr(n.target, "__name__", "") in _OTHER_ACTIVATION_FUNCTIONS})
    return (
        f"{type(model).__name__} has no activation health monitoring knows (ReLU, ReLU6, F.relu, SiLU, GELU, "
        f"Mish, Hardswish, ELU, LeakyReLU, PReLU, Softplus, ...); activation types found: "
        f"{', '.join(found) if found else 'none'}. Pass layers=[...] naming the modules to watch "
        "(a channel counts as dead where its output map is all <= 0)"
    )


_OTHER_ACTIVATION_FUNCTIONS = {"tanh", "sigmoid", "softmax", "log_softmax", "hardsigmoid", "hardtanh", "softsign",
                               "tanhshrink", "threshold", "glu", "logsigmoid", "rrelu"}


def _is_gate_block(module: nn.Module) -> bool:
    """A squeeze-and-excitation block: a sigmoid-like gate (``Sigmoid``, ``Hardsigmoid``, timm's own) and a conv
    or linear layer among its children."""
    children = list(module.children())
    return (any("sigmoid" in type(child).__name__.lower() for child in children)
            and any(isinstance(child, (nn.Conv2d, nn.Linear)) for child in children))


def mark_gates(model: nn.Module, sites: dict[str, ActivationSite]) -> dict[str, ActivationSite]:
    """Give the role :data:`GATE` to every site inside a squeeze-and-excitation block (the model itself is not
    one: a classifier ending in a sigmoid keeps its feature layers); returns ``sites``."""
    blocks = [name + "." for name, module in model.named_modules() if name and _is_gate_block(module)]
    for name, site in sites.items():
        if any(name.startswith(block) for block in blocks):
            site.role = GATE
    return sites
