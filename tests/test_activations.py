"""Layer activations on nets with hand-set weights; bounded pictures; bad input; the model left as found."""

import pytest
import torch
from torch import nn

from helpers import assert_same_state, model_state

from tb_cnnviz.methods import default_layers, layer_activations, snapshot
from tb_cnnviz.methods._hooks import check_images


def test_activations_match_hand_computed_maps(hand_net):
    tiny_net = hand_net
    torch.manual_seed(3)
    x = torch.rand(2, 1, 8, 8)
    acts = layer_activations(tiny_net, x)

    assert list(acts) == ["conv1", "relu1", "conv2", "relu2"]  # execution order
    conv1, relu1 = acts["conv1"], acts["relu1"]
    torch.testing.assert_close(conv1.maps[:, 0], x[:, 0])
    # conv1's output was captured before the in-place ReLU overwrote it: channel 1 is still negative.
    torch.testing.assert_close(conv1.maps[:, 1], -x[:, 0] - 1)
    torch.testing.assert_close(conv1.max[:, 1], (-x - 1).amax(dim=(1, 2, 3)))
    torch.testing.assert_close(relu1.mean[:, 0], x.mean(dim=(1, 2, 3)))
    assert relu1.dead == [1] and conv1.dead == []
    assert relu1.zero_fraction[:, 1].tolist() == [1.0, 1.0]
    assert relu1.shape == (2, 3, 8, 8) and not relu1.downsampled


def test_a_reused_module_gives_one_entry_per_call():
    class Reuse(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 1)
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.conv(self.relu(x)) - 5)

    acts = layer_activations(Reuse(), torch.randn(1, 1, 4, 4))
    assert list(acts) == ["relu#1", "conv", "relu#2"]
    assert acts["relu#2"].dead == [0, 1]  # conv output minus 5 is below zero everywhere for small inputs
    only = layer_activations(Reuse(), torch.randn(1, 1, 4, 4), layers=["relu#2"])
    assert list(only) == ["relu#2"]


@pytest.mark.slow
def test_deep_nets_default_to_their_first_conv_and_each_block_output_and_named_layers_are_kept():
    import torchvision

    resnet50 = torchvision.models.resnet50(num_classes=1000).eval()
    bottlenecks = [f"layer{stage}.{block}" for stage, count in zip(range(1, 5), (3, 4, 6, 3)) for block in range(count)]
    assert list(default_layers(resnet50)) == ["conv1", *bottlenecks]
    x = torch.randn(1, 3, 64, 64)
    acts = layer_activations(resnet50, x)
    assert list(acts) == ["conv1", *bottlenecks]
    with torch.no_grad():  # a block's output is the stage's running value after that block
        after_first = resnet50.layer1[0](resnet50.maxpool(resnet50.relu(resnet50.bn1(resnet50.conv1(x)))))
    torch.testing.assert_close(acts["layer1.0"].maps, after_first[:, :64])
    named = layer_activations(resnet50, x, layers=["layer1.0.relu", "layer4.2.conv3"])
    assert list(named) == ["layer1.0.relu#1", "layer1.0.relu#2", "layer1.0.relu#3", "layer4.2.conv3"]
    densenet = torchvision.models.densenet121(weights=None)
    assert list(default_layers(densenet)) == ["features.conv0"] + [
        f"features.{part}{i}" for i in range(1, 5) for part in ("denseblock", "transition") if (part, i) != ("transition", 4)]
    shallow = torchvision.models.resnet18(weights=None)  # 29 convs and ReLUs: not deep, every one of them
    assert list(default_layers(shallow)) == [n for n, m in shallow.named_modules() if isinstance(m, (nn.Conv2d, nn.ReLU))]


def test_big_layers_stay_bounded_and_say_what_was_left_out():
    out = torch.randn(2, 1024, 128, 128)
    snap = snapshot(out, max_channels=64, max_size=56)
    assert snap.maps.shape == (2, 64, 56, 56)
    assert snap.channels == list(range(64)) and snap.channels_total == 1024
    assert snap.downsampled and snap.source_size == (128, 128)
    torch.testing.assert_close(snap.max, out[:, :64].amax(dim=(2, 3)))  # stats of the full-size maps


def test_nan_and_inf_are_flagged_not_fatal():
    out = torch.rand(2, 3, 4, 4)
    out[1, 2, 0, 0] = float("nan")
    out[0, 0, 1, 1] = float("inf")
    snap = snapshot(out)
    assert snap.nonfinite == [0, 2]
    assert torch.isfinite(snap.maps).all() and torch.isfinite(snap.max).all()


def test_vectors_and_sequences_become_maps():
    assert snapshot(torch.rand(3, 10)).maps.shape == (3, 10, 1, 1)
    assert snapshot(torch.rand(3, 10, 7)).maps.shape == (3, 10, 1, 7)


def test_bad_input_gets_a_clear_error(tiny_net):
    with pytest.raises(ValueError, match=r"4-D tensor \(N, C, H, W\)"):
        check_images(torch.rand(1, 8, 8), "probe_images")
    with pytest.raises(ValueError, match="has no layer 'conv3'.*Did you mean 'conv2', 'conv1'.*Its layers are: conv1, relu1"):
        layer_activations(tiny_net, torch.rand(1, 1, 8, 8), layers=["conv3"])


def batchnorm_net():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5), nn.Conv2d(4, 2, 1))
    net.train()
    net[3].eval()  # a mixed mode must come back mixed
    net[0].weight.requires_grad_(False)
    net(torch.randn(2, 3, 6, 6)).sum().backward()
    return net


def test_the_model_is_left_exactly_as_found():
    net = batchnorm_net()
    x = torch.randn(2, 3, 6, 6)
    before = model_state(net)
    layer_activations(net, x)
    assert_same_state(before, model_state(net))


def test_the_model_is_left_exactly_as_found_when_the_forward_raises():
    net = batchnorm_net()
    x = torch.randn(2, 5, 6, 6)
    before = model_state(net)
    with pytest.raises(RuntimeError):
        layer_activations(net, x)  # wrong channel count: conv raises mid-call
    assert_same_state(before, model_state(net))
