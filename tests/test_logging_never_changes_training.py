"""Logging never changes training, and a failing logging call never stops it."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import assert_same_training

from tb_cnnviz import CNNViz, LoggingFailedWarning


def make_net():
    torch.manual_seed(8)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    )


def train(steps, logdir=None):
    net = make_net()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    data = torch.Generator().manual_seed(9)
    viz = None
    if logdir is not None:
        probes = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(10))
        viz = CNNViz(net, logdir, probe_images=probes, raise_errors=True)
        viz.watch_dead_filters(every=2)
    for step in range(steps):
        x = torch.rand(4, 3, 12, 12, generator=data)
        y = torch.randint(0, 4, (4,), generator=data)
        net.train()
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        if viz is not None:  # between backward and step: gradients must be left alone
            viz.log_activations(step)
            viz.log_filters(step)
            viz.log_correspondence(step, probes[0], probes[1].flip(-1), "5")
            viz.log_top_activations([(x, y)], "4", step, k=2, rank="relevance")  # a backward of its own
            viz.step(step)
        optimizer.step()
    if viz is not None:
        viz.close()
    return net, optimizer


def test_training_with_logging_is_bit_identical(tmp_path):
    plain_net, plain_opt = train(6)
    logged_net, logged_opt = train(6, tmp_path)
    assert_same_training(plain_net, plain_opt, logged_net, logged_opt)
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in logged_net.modules()) == 0


def test_a_failing_logging_call_warns_once_and_training_goes_on(tmp_path):
    net = make_net()
    viz = CNNViz(net, tmp_path, probe_images=torch.rand(2, 3, 12, 12))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(3):
            assert viz.log_activations(step, images=torch.rand(2, 5, 12, 12)) is None  # wrong channel count
    failures = [w for w in caught if issubclass(w.category, LoggingFailedWarning)]
    assert len(failures) == 1 and "log_activations failed" in str(failures[0].message)
    assert failures[0].filename == __file__  # said at the user's call, not inside tb_cnnviz
    with warnings.catch_warnings(record=True) as caught:  # the former name, through another guarded method
        warnings.simplefilter("always")
        viz.log_channel_visualizations(0, "nope")
    assert [w.filename for w in caught if issubclass(w.category, LoggingFailedWarning)] == [__file__]
    assert viz.log_activations(3) is not None  # the next good call works
    assert sum(len(m._forward_hooks) for m in net.modules()) == 0 and net.training
    viz.close()


def test_raise_errors_raises_and_bad_arguments_say_what_is_right(tmp_path):
    net = make_net()
    viz = CNNViz(net, tmp_path, raise_errors=True)
    with pytest.raises(ValueError, match="pass images=... or give CNNViz probe_images"):
        viz.log_activations(0)
    with pytest.raises(ValueError, match="has no layer 'conv9'"):
        CNNViz(net, tmp_path, layers=["conv9"])
    with pytest.raises(ValueError, match="one label per image"):
        CNNViz(net, tmp_path, probe_images=torch.rand(2, 3, 8, 8), probe_labels=[1])
    with pytest.raises(TypeError, match="SummaryWriter or a log directory"):
        CNNViz(net, 42)
    viz.close()


def test_a_model_without_conv_layers_gets_a_clear_message(tmp_path):
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 2))
    viz = CNNViz(mlp, tmp_path, probe_images=torch.rand(2, 3, 2, 2), raise_errors=True)
    with pytest.raises(ValueError, match=r"no 2-D convolution \(nn.Conv2d\)"):
        viz.log_filters(0)
    assert viz.log_activations(0) == ["2"]  # the ReLU after the linear layer, as 1x1 maps
    viz.close()
