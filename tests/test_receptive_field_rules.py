"""Receptive fields for any graph (issue 23): each rule, the gate rule, the measured fallback and the default
layer, against an independent reference: the gradient support of a unit, found by backpropagating from the
unit to the input of a copy of the net whose weights, biases and inputs are all positive (so no ReLU is off
and no gradient cancels), and taking the bounding box of the non-zero gradient."""

from __future__ import annotations

import copy

import pytest
import timm.layers
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from tb_cnnviz.methods import receptive_field
from tb_cnnviz.methods.dataset.receptive_field import default_layer, measured_field, spatial_layers

SIZE = 40


def positive(model: nn.Module) -> nn.Module:
    model = copy.deepcopy(model).double().eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.rand(param.shape, generator=generator, dtype=torch.float64) + 0.1)
    return model


def support(model: nn.Module, layer: str, unit: tuple[int, int], size: int = SIZE) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the input pixels the gradient of ``unit`` (summed over channels) reaches."""
    model = positive(model)
    outputs = []
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: outputs.append(o))
    x = (torch.rand(1, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + 0.1).requires_grad_(True)
    try:
        model(x)
    finally:
        handle.remove()
    outputs[-1][0, :, unit[0], unit[1]].sum().backward()
    rows, cols = torch.nonzero(x.grad[0].abs().sum(dim=0) > 0, as_tuple=True)
    return rows.min().item(), cols.min().item(), rows.max().item() + 1, cols.max().item() + 1


def clipped(box: tuple[int, int, int, int], size: int = SIZE) -> tuple[int, int, int, int]:
    top, left, bottom, right = box
    return max(top, 0), max(left, 0), min(bottom, size), min(right, size)


def assert_field_is_support(model: nn.Module, layer: str, units=((0, 0), (2, 3), (4, 4))):
    field = receptive_field(model, layer, (SIZE, SIZE))
    for unit in units:
        assert support(model, layer, unit) == clipped(field.box(*unit)), (layer, unit, field)
    return field


class Stem(nn.Module):
    """A strided conv stem (stride 2, so that fields of neighbouring units overlap but differ), then ``body``,
    then a 3x3 conv named ``out`` whose field is checked."""

    def __init__(self, body: nn.Module, channels: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, stride=2, padding=1)
        self.body = body
        self.out = nn.Conv2d(channels, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(self.stem(x)))


class ChannelsLast(nn.Module):
    """ConvNeXt's block: depthwise conv, permute to (N, H, W, C), layer norm and Linear over channels,
    permute back, layer scale, stochastic depth, residual add."""

    def __init__(self, c: int = 8, functional_norm: bool = False) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 5, padding=2, groups=c)
        self.norm = nn.LayerNorm(c)
        self.fc = nn.Linear(c, c)
        self.scale = nn.Parameter(torch.ones(c, 1, 1))
        self.depth = torchvision.ops.StochasticDepth(0.5, "row")
        self.functional_norm = functional_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(x).permute(0, 2, 3, 1)
        y = F.layer_norm(y, (y.shape[-1],), self.norm.weight, self.norm.bias) if self.functional_norm else self.norm(y)
        y = F.gelu(self.fc(y)).permute(0, 3, 1, 2)
        return x + self.depth(self.scale * y)


class Shuffle(nn.Module):
    """ShuffleNet v2's unit: split channels, a 3x3 branch, concatenate, channel shuffle (size, floordiv,
    view, transpose, contiguous, view)."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.branch = nn.Sequential(nn.Conv2d(c // 2, c // 2, 3, padding=1), nn.BatchNorm2d(c // 2), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        x = torch.cat((a, self.branch(b)), dim=1)
        n, c, h, w = x.size()
        x = x.view(n, 2, c // 2, h, w)
        return torch.transpose(x, 1, 2).contiguous().view(n, -1, h, w)


class SliceAndSplitAttention(nn.Module):
    """RexNet's channel slice and ResNeSt's radix sum: x[:, :c] added to a conv, a reshape to (N, radix,
    C, H, W) summed over the radix; timm's drop path."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, 2 * c, 3, padding=2, dilation=2)
        self.drop = timm.layers.DropPath(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        n, c2, h, w = y.shape
        y = y.reshape((n, 2, c2 // 2, h, w)).sum(dim=1)
        return self.drop(y) + x[:, : y.shape[1]]


class PadPool(nn.Module):
    """Functional padding and pooling (timm's 'same' padding), a zero pad and an average pool module."""

    def __init__(self) -> None:
        super().__init__()
        self.pad = nn.ZeroPad2d((1, 2, 0, 3))
        self.pool = nn.AvgPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(F.pad(x, (2, 1, 2, 1)), 3, stride=1)
        return self.pool(self.pad(x))


class SqueezeExcite(nn.Module):
    """A 3x3 conv whose output is scaled per channel by a squeeze-and-excitation gate (``gate=False``: not)."""

    def __init__(self, c: int = 8, gate: bool = True, functional: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.se = torchvision.ops.SqueezeExcitation(c, 4) if not functional else timm.layers.SqueezeExcite(c, 0.5)
        self.gate = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x))
        return self.se(y) if self.gate else y


@pytest.mark.parametrize("body", [
    ChannelsLast(), ChannelsLast(functional_norm=True), Shuffle(), SliceAndSplitAttention(), PadPool(),
    nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(32, 8, 1)),  # no rule: measured
    nn.Sequential(nn.BatchNorm2d(8), nn.Hardswish(), nn.Dropout2d(), nn.AvgPool2d(3, 1, 1)),
], ids=["channels-last layer norm", "functional layer norm", "channel shuffle", "slice, radix sum, drop path",
        "pad and pool", "pixel unshuffle (no rule)", "element-wise"])
def test_each_rule_is_the_gradient_support(body):
    assert_field_is_support(Stem(body), "out")


def test_an_op_without_a_rule_gets_the_gradient_support_it_measures():
    """PixelUnshuffle has no rule: its field is measured (stride 2, size 2 on the stem's grid)."""
    field = assert_field_is_support(Stem(nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(32, 8, 1))), "out")
    assert field.stride == (4, 4)


@pytest.mark.parametrize("functional", [False, True], ids=["torchvision SE (pooling module)", "timm SE (x.mean)"])
def test_a_gate_is_not_a_field(functional):
    gated = Stem(nn.Sequential(SqueezeExcite(functional=functional), SqueezeExcite(functional=functional)))
    plain = copy.deepcopy(gated)
    for block in plain.body:
        block.gate = False
    field = receptive_field(gated, "out", (SIZE, SIZE))
    assert (field.stride, field.offset, field.size) == (lambda f: (f.stride, f.offset, f.size))(assert_field_is_support(plain, "out"))
    assert field.gates == ("body.0.se", "body.1.se") and receptive_field(plain, "out").gates == ()


def test_group_norm_statistics_scale_a_map_like_a_gate():
    normed = Stem(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.ReLU()))
    plain = copy.deepcopy(normed)
    plain.body[1] = nn.Identity()
    field, expected = receptive_field(normed, "out", (SIZE, SIZE)), assert_field_is_support(plain, "out")
    assert (field.stride, field.offset, field.size) == (expected.stride, expected.offset, expected.size)
    assert field.gates == ("body.1",)


def test_no_grid_after_global_pooling_names_the_nearest_layer_that_has_one():
    model = torchvision.models.resnet18(weights=None)
    with pytest.raises(ValueError, match=r"layer 'fc' has no spatial grid of its own: every unit sees the whole "
                       r"image \(after global pooling or flattening\); the nearest layer before it that has one is 'layer4.1.relu'"):
        receptive_field(model, "fc")


class Untraceable(nn.Module):
    """A forward with data-dependent control flow, which torch.fx cannot trace."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 8, 5, padding=1), nn.ReLU())
        self.out = nn.Conv2d(8, 4, 3, padding=2, dilation=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if x.sum() > 0:
            x = x + 1
        return self.out(x)


def test_a_forward_fx_cannot_trace_gets_the_field_measured():
    model = Untraceable()
    with pytest.raises(Exception):
        torch.fx.symbolic_trace(model)
    traceable = nn.Sequential(model.features, model.out)
    expected = receptive_field(traceable, "1")  # the same geometry by the rules
    field = receptive_field(model, "out")
    assert (field.stride, field.offset, field.size) == (expected.stride, expected.offset, expected.size)
    for unit in [(0, 0), (1, 2)]:  # and the gradient support of the model itself (max pools as they are)
        got = clipped(field.box(*unit))
        supports = support(model, "out", unit)
        assert supports[0] >= got[0] and supports[2] <= got[2] and (field.size[0], field.stride[0]) == (expected.size[0], 4)


def test_the_model_is_left_as_found_also_on_error():
    model = Stem(nn.Sequential(SqueezeExcite(), nn.PixelUnshuffle(2), nn.Conv2d(32, 8, 1))).train()
    model.body[0].conv.weight.requires_grad_(False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    handle = model.stem.register_forward_hook(lambda m, i, o: None)
    for call in (lambda: receptive_field(model, "out"), lambda: measured_field(model, "out"),
                 lambda: receptive_field(model, "body.0.se.fc1"), lambda: measured_field(model, "nothing")):
        try:
            call()
        except ValueError:
            pass
        assert all(m.training for m in model.modules())
        assert not model.body[0].conv.weight.requires_grad and model.stem.weight.requires_grad
        assert all(p.grad is None for p in model.parameters())
        assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
        assert list(model.stem._forward_hooks) == [handle.id] and all(not m._forward_hooks for m in model.modules() if m is not model.stem)
    handle.remove()


@pytest.mark.parametrize("architecture", ["mobilenet_v3_small", "regnet_y_400mf"])
def test_the_default_layer_is_the_middle_conv_with_a_grid(architecture):
    model = getattr(torchvision.models, architecture)(weights=None)
    names = spatial_layers(model, (64, 64))
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    gate_convs = [name for name in convs if ".se." in name or ".block.2." in name and "fc" in name]
    assert gate_convs and not set(gate_convs) & set(names) and len(names) > len(convs) // 2
    layer = default_layer(model, (64, 64))
    assert layer == names[len(names) // 2]
    receptive_field(model, layer, (64, 64))  # it has a grid


def test_the_layers_of_the_issue_have_the_field_of_their_feature_path():
    """mobilenet_v3_large's depthwise conv and regnet_y_800mf's grouped conv in the middle of the net: the
    field of the feature path (the net with every gate removed, by its gradient support), not the whole image."""
    model = torchvision.models.mobilenet_v3_large(weights=None)
    field = receptive_field(model, "features.8.block.1.0", (96, 96))
    assert field.gates == ('features.4.block.2', 'features.5.block.2', 'features.6.block.2')
    plain = copy.deepcopy(model)
    for name, module in list(plain.named_modules()):
        if isinstance(module, torchvision.ops.SqueezeExcitation):
            parent, _, child = name.rpartition(".")
            setattr(plain.get_submodule(parent), child, nn.Identity())
    got = measured_field(plain, "features.8.block.1.0", (96, 96))
    assert (field.stride, field.offset, field.size) == (got.stride, got.offset, got.size)


def test_the_views_take_the_default_layer_and_say_which_gates_scale_it(tmp_path):
    """log_top_activations(layer=None) and log_correspondence() log the default layer; the meta read back through
    TensorBoard names the squeeze-and-excitation gates that scale it, and its field is the ungated net's."""
    from helpers import get_json, tensorboard_client

    from tb_cnnviz import CNNViz

    torch.manual_seed(0)
    model = Stem(nn.Sequential(SqueezeExcite(), nn.Conv2d(8, 8, 3, padding=1), SqueezeExcite(), nn.Conv2d(8, 8, 3)))
    layer = default_layer(model, (SIZE, SIZE))
    assert layer == "body.2.conv"  # stem, body.0.conv, body.1, [body.2.conv], body.3, out: the middle one
    data = [(torch.rand(4, 3, SIZE, SIZE), torch.zeros(4, dtype=torch.long))]
    with CNNViz(model, tmp_path / "run", raise_errors=True, max_channels=2) as viz:
        assert viz.log_top_activations(data, None, 1, k=2) == [layer]
        assert viz.log_correspondence(1, data[0][0][0], data[0][0][1], k=5) == 5
    client = tensorboard_client(tmp_path, "false")
    plain = copy.deepcopy(model)
    plain.body[0].gate = False
    expected = receptive_field(plain, layer, (SIZE, SIZE))
    for kind in ("top_activations", "correspondence"):
        _, sample = get_json(client, "sample", run="run", kind=kind, layer=layer, step=1)
        meta = sample["meta"]
        assert meta["gates"] == ["body.0.se"] and meta["source_layer"] == layer
        assert meta["field"] == {"stride": list(expected.stride), "offset": list(expected.offset), "size": list(expected.size)}
