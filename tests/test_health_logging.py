"""Health flushes in the event file and through TensorBoard: dead and dormant layers told apart (in the
payload, the scalars and the plugin's replies), sparsity and filter-noise scalars against references worked
by hand, and dead-filter data written before dormant existed still read as dead."""

import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from helpers import get_json, health_events, tensorboard_client
from test_filters import fine_grid_share

from tb_cnnviz import CNNViz, metadata, summary


class Mixed(nn.Module):
    """conv-BN-SiLU (dormant channels) then conv-ReLU (dead channels), as efficientnet next to resnet."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.act1 = nn.SiLU()
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.act2 = nn.ReLU()

    def forward(self, x):
        return self.act2(self.conv2(self.act1(self.bn1(self.conv1(x))))).mean(dim=(2, 3))


def logged(tmp_path):
    torch.manual_seed(0)
    net = Mixed().eval()
    with torch.no_grad():
        net.bn1.bias[2] = -1e4  # SiLU channel 2: never positive -> dormant
        net.conv2.bias[4] = -1e4  # ReLU channel 4: all zero -> dead
    viz = CNNViz(net, tmp_path, raise_errors=True)
    viz.watch_dead_filters(every=2)
    pre_silu, relu_out = [], []
    net.act1.register_forward_pre_hook(lambda m, a: pre_silu.append(a[0].detach().clone()))
    net.act2.register_forward_hook(lambda m, a, o: relu_out.append(o.detach().clone()))
    torch.manual_seed(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(2):
            net(torch.randn(3, 1, 5, 5))
            viz.step(step)
    viz.close()
    return net, caught, pre_silu, relu_out


def share_off(first_images):
    values = [v for t in first_images for v in t[0].flatten().tolist()]
    return sum(v <= 0 for v in values) / len(values)


def test_dead_and_dormant_layers_are_written_apart_with_their_sparsity(tmp_path):
    _, caught, pre_silu, relu_out = logged(tmp_path)
    dead, scalars = health_events(tmp_path)
    assert dead["act1"][0].health == "dormant" and dead["act2"][0].health == "dead"
    assert (dead["act1"][1][-1][1] >= 0.99).nonzero()[0].tolist() == [2]
    assert (dead["act2"][1][-1][1] >= 0.99).nonzero()[0].tolist() == [4]
    assert scalars["cnnviz/dormant_fraction/act1"] == [(1, pytest.approx(1 / 4))]
    assert scalars["cnnviz/dead_fraction/act2"] == [(1, pytest.approx(1 / 6))]
    assert "cnnviz/dead_fraction/act1" not in scalars and "cnnviz/dormant_fraction/act2" not in scalars
    assert scalars["cnnviz/sparsity/act1"][0][1] == pytest.approx(share_off(pre_silu), abs=1e-6)
    assert scalars["cnnviz/sparsity/act2"][0][1] == pytest.approx(share_off(relu_out), abs=1e-6)
    assert not [w for w in caught if "tb_cnnviz" in str(w.message)]  # 2 steps: no evidence yet (test_health_warnings)


def test_filter_noise_is_each_conv_s_mean_noise_score_by_a_fine_spectral_grid(tmp_path):
    net = Mixed()
    with torch.no_grad():
        net.conv1.weight.fill_(0.0)  # all-zero kernels score 0
    viz = CNNViz(net, tmp_path, raise_errors=True, max_filters=2)  # the scalar covers every filter, not the shown
    viz.log_filters(5)
    viz.close()
    _, scalars = health_events(tmp_path)
    assert scalars["cnnviz/filter_noise/conv1"] == [(5, 0.0)]
    expected = fine_grid_share(net.conv2.weight.detach()).mean().item()
    assert scalars["cnnviz/filter_noise/conv2"][0][1] == pytest.approx(expected, abs=2e-3)


@pytest.mark.parametrize("load_fast", ["false", "true"])
def test_the_plugin_lists_dormant_apart_and_reads_older_files_as_dead(tmp_path, load_fast):
    logged(tmp_path / "new")
    writer = SummaryWriter(str(tmp_path / "old"))  # as tb_cnnviz wrote it before "health" existed
    old = metadata.PluginContent(kind=metadata.DEAD, layer="relu1", threshold=0.99)
    rates = np.array([0.0, 1.0, 0.5], dtype=np.float32)
    writer._get_file_writer().add_summary(summary.summary_pb2.Summary(
        value=[summary.float_tensor_value(metadata.tag(metadata.DEAD, "relu1"), old, rates)]), 10)
    writer.close()
    payload = json.loads(metadata.create_summary_metadata(old).plugin_data.content)
    assert "health" not in payload
    client = tensorboard_client(tmp_path, load_fast)
    status, reply = get_json(client, "dead_summary", run="new")
    assert status == 200
    assert reply["layers"]["act1"]["health"] == "dormant" and reply["layers"]["act1"]["dormant"] == [2]
    assert reply["layers"]["act1"]["dead"] == []
    assert reply["layers"]["act2"]["health"] == "dead" and reply["layers"]["act2"]["dead"] == [4]
    status, reply = get_json(client, "dead_summary", run="old")
    assert status == 200 and reply["layers"]["relu1"]["health"] == "dead" and reply["layers"]["relu1"]["dead"] == [1]
    status, reply = get_json(client, "dead", run="new", layer="act1")
    assert status == 200 and reply["health"] == "dormant"


def test_the_demo_s_two_runs_differ_in_sparsity_in_the_scalars_tab(demo_logdir):
    """The too-high learning rate kills channels: its layers end sparser than the healthy run's."""
    healthy = health_events(demo_logdir / "healthy_lr0.05")[1]
    too_high = health_events(demo_logdir / "too_high_lr0.9")[1]
    for scalars in (healthy, too_high):
        assert {"cnnviz/sparsity/relu1", "cnnviz/sparsity/relu3", "cnnviz/filter_noise/conv1"} <= set(scalars)
        assert all(0 <= value <= 1 for _, value in scalars["cnnviz/sparsity/relu3"])
    assert too_high["cnnviz/sparsity/relu3"][-1][1] > healthy["cnnviz/sparsity/relu3"][-1][1]


@pytest.mark.parametrize("every, measure_every, measured_steps", [
    (64, None, 16),  # a long window: one step in 4 (steps 0, 4, ..., 60 of it)
    (64, 1, 64),  # asked for every step
    (20, None, 20),  # a short window: every step
    (64, 3, 22),  # steps 0, 3, ..., 63
])
def test_a_long_window_is_measured_on_one_step_in_k_with_the_same_dead_channels(tmp_path, every, measure_every,
                                                                                 measured_steps):
    torch.manual_seed(0)
    net = Mixed().eval()
    with torch.no_grad():
        net.conv2.bias[4] = -1e4  # ReLU channel 4: dead on every input
    relu_calls = []
    net.act2.register_forward_hook(lambda m, a, o: relu_calls.append(o.shape[0]))
    viz = CNNViz(net, tmp_path, raise_errors=True)
    monitor = viz.watch_dead_filters(every=every, measure_every=measure_every)
    seen = []
    for step in range(every):
        for _ in range(2):  # two micro-batches of 3 per step (gradient accumulation): both measured or neither
            net(torch.randn(3, 1, 5, 5))
        seen.append(monitor.inputs_seen)
        viz.step(step)
    viz.close()
    assert sum(relu_calls) == 6 * every  # the model ran every forward
    assert seen[-1] == 6 * measured_steps
    stride = measure_every or (4 if every >= 64 else 1)
    assert seen == [6 * (step // stride + 1) for step in range(every)]  # counted on the steps 0, k, 2k, ...
    dead, _ = health_events(tmp_path)
    assert (dead["act2"][1][-1][1] >= 0.99).nonzero()[0].tolist() == [4]


def test_measure_every_must_be_a_positive_int(tmp_path):
    viz = CNNViz(Mixed(), tmp_path)
    with pytest.raises(ValueError, match="measure_every"):
        viz.watch_dead_filters(every=10, measure_every=0)
    viz.close()
