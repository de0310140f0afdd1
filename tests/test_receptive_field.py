"""Receptive fields from the traced geometry, against an analytic case and against the gradient support of
single units of torchvision models."""

import copy

import pytest
import torch
import torchvision
from torch import nn

from tb_cnnviz.methods import feeding_conv, receptive_field


def test_an_analytic_stack():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(2, 2, 3, stride=2, dilation=2))
    # conv 3x3 pad 1: size 3, offset -1; pool 2: stride 2, size 4, offset -1; conv k3 d2 s2: stride 4,
    # size 4 + 2*2*2 = 12, offset -1
    assert receptive_field(model, "0").size == (3, 3) and receptive_field(model, "0").offset == (-1, -1)
    field = receptive_field(model, "3")
    assert (field.stride, field.offset, field.size) == ((4, 4), (-1, -1), (12, 12))
    assert field.box(2, 1) == (7, 3, 19, 15)


def linearised(model: nn.Module) -> nn.Module:
    """The same geometry with every unit always on: ReLUs as identities, max pools as average pools, so
    that the gradient of a unit reaches every pixel it can see (its support is then exactly its field)."""
    model = copy.deepcopy(model).double().eval()
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, (nn.ReLU, nn.ReLU6)):
                setattr(module, child_name, nn.Identity())
            elif isinstance(child, nn.MaxPool2d):
                setattr(module, child_name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding, ceil_mode=child.ceil_mode))
    return model


def gradient_support(model: nn.Module, layer: str, size: int, unit: tuple[int, int]) -> tuple[int, int, int, int]:
    """Bounding box (top, left, bottom, right) of the input pixels the unit's gradient reaches."""
    module = model.get_submodule(layer.split("#")[0])
    call = int(layer.split("#")[1]) - 1 if "#" in layer else None
    outputs = []
    handle = module.register_forward_hook(lambda m, i, o: outputs.append(o))
    x = torch.rand(1, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    try:
        model(x)
    finally:
        handle.remove()
    output = outputs[call if call is not None else -1]
    output[0, :, unit[0], unit[1]].sum().backward()
    rows, cols = torch.nonzero(x.grad[0].abs().sum(dim=0) > 0, as_tuple=True)
    return rows.min().item(), cols.min().item(), rows.max().item() + 1, cols.max().item() + 1


@pytest.mark.parametrize("architecture,layer,units", [
    ("resnet18", "layer1.1.relu#2", [(0, 0), (7, 9)]),  # a reused ReLU, through residual adds
    ("resnet18", "layer3", [(0, 0), (2, 3)]),  # a container: its output
    ("vgg11", "features.10", [(0, 0), (3, 5)]),  # max pools
    ("squeezenet1_1", "features.6", [(0, 0), (3, 3)]),  # Fire modules: 1x1 and 3x3 branches concatenated
    ("mobilenet_v2", "features.5", [(0, 0), (4, 3)]),  # depthwise convs, ReLU6, inverted residuals
])
def test_the_field_is_the_gradient_support(architecture, layer, units):
    torch.manual_seed(0)
    model = getattr(torchvision.models, architecture)(weights=None)
    field = receptive_field(model, layer)
    size = 96
    for unit in units:
        top, left, bottom, right = field.box(*unit)
        expected = (max(top, 0), max(left, 0), min(bottom, size), min(right, size))
        assert gradient_support(linearised(model), layer, size, unit) == expected, (unit, field)


def test_bad_layers_get_a_clear_error():
    model = torchvision.models.resnet18(weights=None)
    with pytest.raises(ValueError, match="layer1.0.relu' runs 2 times per forward; name one call: layer1.0.relu#1, layer1.0.relu#2"):
        receptive_field(model, "layer1.0.relu")
    with pytest.raises(ValueError, match="no spatial grid of its own"):
        receptive_field(model, "fc")
    with pytest.raises(ValueError, match="has no layer 'layer9'"):
        receptive_field(model, "layer9")


def test_the_conv_that_makes_a_layers_channels():
    model = torchvision.models.resnet18(weights=None)
    assert feeding_conv(model, "layer1.0.relu#1") == "layer1.0.conv1"  # through bn1
    assert feeding_conv(model, "layer1.0.relu#2") is None  # after the residual add: no single filter
    assert feeding_conv(model, "layer2.0.conv1") == "layer2.0.conv1"
    assert feeding_conv(torchvision.models.vgg11(weights=None), "features.3") == "features.3"
