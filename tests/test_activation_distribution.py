"""The activation distribution over training: the health monitor's value counts against numpy's histogram of
the values an independent hook saw, NaN and infinities in their own slots, the flush's records in the event
file, and the ``/distribution`` route through the real TensorBoard (off fraction beside the counts, long runs
bucketed, bad parameters answered 4xx)."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from helpers import get_json, health_events, reference_histogram, tensorboard_client

from tb_cnnviz import CNNViz
from tb_cnnviz.methods.activations.dead_filters import DeadFilterMonitor
from tb_cnnviz.methods.activations.histograms import symmetric_log_edges


class Signed(nn.Module):
    """conv-LeakyReLU (negative outputs), conv-SiLU (watched at its input), conv-ReLU (a dead channel)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.act1 = nn.Conv2d(1, 4, 3, padding=1), nn.LeakyReLU(0.1)
        self.conv2, self.act2 = nn.Conv2d(4, 6, 3, padding=1), nn.SiLU()
        self.conv3, self.act3 = nn.Conv2d(6, 5, 3, padding=1), nn.ReLU()

    def forward(self, x):
        return self.act3(self.conv3(self.act2(self.conv2(self.act1(self.conv1(x)))))).mean(dim=(2, 3))


def watched_values(net: Signed) -> dict[str, list[torch.Tensor]]:
    """Each watched site's tensor for the first image of every forward, as the monitor's sites see it: the
    inputs of the LeakyReLU and the SiLU (their pre-activations), the ReLU's output."""
    seen = {"act1": [], "act2": [], "act3": []}
    net.act1.register_forward_pre_hook(lambda m, a: seen["act1"].append(a[0][0].detach().clone()))
    net.act2.register_forward_pre_hook(lambda m, a: seen["act2"].append(a[0][0].detach().clone()))
    net.act3.register_forward_hook(lambda m, a, o: seen["act3"].append(o[0].detach().clone()))
    return seen


def test_each_layer_s_counts_equal_numpy_histogram_of_the_first_images_it_saw():
    torch.manual_seed(0)
    net = Signed()
    seen = watched_values(net)
    with DeadFilterMonitor(net) as monitor:
        for _ in range(3):
            net(torch.randn(4, 1, 8, 8) * 3)
        reports = monitor.report()
    assert set(reports) == set(seen)
    for layer, report in reports.items():
        np.testing.assert_array_equal(report.histogram.numpy(), reference_histogram(seen[layer]), err_msg=layer)
        assert report.histogram.sum().item() == 3 * seen[layer][0].numel()  # the first image of each batch
    assert reports["act1"].histogram[1:35].sum() > 0  # negative values are binned, not dropped


def test_a_large_map_is_sampled_evenly_down_to_at_most_1024_values_per_forward():
    torch.manual_seed(0)
    net = Signed()
    seen = watched_values(net)
    with DeadFilterMonitor(net, layers=["act3"]) as monitor:
        net(torch.randn(2, 1, 40, 40))  # 5 x 40 x 40 = 8000 values per image: every eighth one
        histogram = monitor.report()["act3"].histogram
    every_eighth = seen["act3"][0].flatten()[::8]
    np.testing.assert_array_equal(histogram.numpy(), reference_histogram([every_eighth]))
    assert histogram.sum().item() == 1000


def test_nan_and_infinities_are_counted_in_their_own_slots_and_the_rest_still_binned():
    torch.manual_seed(0)
    net = Signed()
    with torch.no_grad():
        net.conv3.bias[1] = float("nan")
        net.conv3.bias[2] = float("inf")
    seen = watched_values(net)
    with DeadFilterMonitor(net) as monitor:
        net(torch.randn(2, 1, 6, 6))
        report = monitor.report()["act3"]
    expected = reference_histogram(seen["act3"])
    np.testing.assert_array_equal(report.histogram.numpy(), expected)
    assert report.histogram[-1] == 36 and report.histogram[-2] == 36  # one 6x6 map of NaN, one of +Inf


def test_histograms_can_be_left_off_and_the_window_resets():
    net = Signed()
    with DeadFilterMonitor(net, histograms=False) as monitor:
        net(torch.randn(2, 1, 6, 6))
        assert all(report.histogram is None for report in monitor.report().values())
    with DeadFilterMonitor(net) as monitor:
        net(torch.randn(2, 1, 6, 6))
        monitor.report(reset=True)
        net(torch.randn(2, 1, 6, 6))
        assert monitor.report()["act1"].histogram.sum().item() == 4 * 36


def logged_run(logdir, steps=6, every=2, poison_at=None):
    torch.manual_seed(0)
    net = Signed()
    with torch.no_grad():
        net.conv3.bias[4] = -1e4  # ReLU channel 4: dead on every input
    seen = watched_values(net)
    viz = CNNViz(net, logdir, raise_errors=True)
    viz.watch_dead_filters(every=every, measure_every=1)
    per_window, window = [], {name: [] for name in seen}
    for step in range(steps):
        if step == poison_at:
            with torch.no_grad():
                net.conv2.weight[0, 0, 0, 0] = float("nan")
        for name in seen:
            seen[name].clear()
        net(torch.randn(3, 1, 8, 8))
        for name in seen:
            window[name] += seen[name]
        viz.step(step)
        if (step + 1) % every == 0:
            per_window.append((step, window))
            window = {name: [] for name in seen}
    viz.close()
    return per_window


@pytest.mark.parametrize("load_fast", ["false", "true"])
def test_every_flush_s_counts_and_off_fraction_come_back_through_tensorboard(tmp_path, load_fast):
    windows = logged_run(tmp_path / "run")
    client = tensorboard_client(tmp_path, load_fast)
    status, runs = get_json(client, "runs")
    assert status == 200 and runs["runs"][0]["distribution"] == ["act1", "act2", "act3"]
    status, reply = get_json(client, "distribution", run="run", layer="act3")
    assert status == 200, reply
    assert reply["steps"] == [step for step, _ in windows] and reply["downsampled"] is None
    for counts, (_, window) in zip(reply["counts"], windows):
        np.testing.assert_array_equal(counts, reference_histogram(window["act3"]))
    np.testing.assert_allclose(reply["edges"], symmetric_log_edges().float().numpy(), rtol=1e-6)
    assert reply["slots"][0] == "-inf" and reply["slots"][-2:] == ["+inf", "nan"]
    assert len(reply["slots"]) == len(reply["edges"]) + 2 == len(reply["counts"][0])
    _, scalars = health_events(tmp_path / "run")
    assert reply["off_fraction"] == [pytest.approx(v, abs=1e-4) for _, v in scalars["cnnviz/dead_fraction/act3"]]
    assert reply["off_fraction"][-1] == pytest.approx(1 / 5) and reply["health"] == "dead"
    status, reply = get_json(client, "distribution", run="run", layer="act2")
    assert status == 200 and reply["health"] == "dormant"


def test_a_long_run_comes_in_columns_whose_counts_add_up(tmp_path):
    windows = logged_run(tmp_path / "run", steps=20, every=1)
    client = tensorboard_client(tmp_path, "false")
    status, reply = get_json(client, "distribution", run="run", layer="act1", max_steps=4)
    assert status == 200 and len(reply["steps"]) == 4 and reply["steps"][-1] == 19
    assert reply["downsampled"]["flushes"] == 20
    total = sum(reference_histogram(window["act1"]) for _, window in windows)
    np.testing.assert_array_equal(np.sum(reply["counts"], axis=0), total)
    np.testing.assert_array_equal(reply["counts"][-1], reference_histogram(windows[-1][1]["act1"]))


def test_a_layer_going_nan_mid_run_is_counted_never_a_crash(tmp_path):
    logged_run(tmp_path / "run", steps=6, every=2, poison_at=2)
    client = tensorboard_client(tmp_path, "false")
    status, reply = get_json(client, "distribution", run="run", layer="act3")
    assert status == 200
    nan_counts = [row[-1] for row in reply["counts"]]
    assert nan_counts[0] == 0 and all(count > 0 for count in nan_counts[1:])
    assert all(not math.isnan(v) for row in reply["counts"] for v in row)


def test_bad_parameters_get_4xx_saying_what_is_right(tmp_path):
    logged_run(tmp_path / "run", steps=2)
    client = tensorboard_client(tmp_path, "false")
    status, reply = get_json(client, "distribution", run="run", layer="conv9")
    assert status == 404 and "act1" in reply["error"]
    status, reply = get_json(client, "distribution", run="run", layer="act1", max_steps=1)
    assert status == 400 and "max_steps" in reply["error"]
    status, reply = get_json(client, "distribution", run="run")
    assert status == 400 and "layer" in reply["error"]


def test_forwards_in_and_out_of_inference_mode_with_other_batch_sizes_are_all_counted():
    """A monitor left on while other code runs the model under ``torch.inference_mode`` (another CNNViz, an
    evaluation loop) keeps counting when training resumes with another batch size: its counts are never
    inference tensors."""
    torch.manual_seed(0)
    net = Signed()
    seen = watched_values(net)
    with DeadFilterMonitor(net) as monitor:
        with torch.inference_mode():
            net(torch.randn(2, 1, 6, 6))
        net(torch.randn(3, 1, 6, 6)).sum().backward()
        with torch.inference_mode():
            net(torch.randn(3, 1, 6, 6))
        net(torch.randn(2, 1, 6, 6))
        report = monitor.report()["act3"]
    assert report.inputs == 10
    np.testing.assert_array_equal(report.histogram.numpy(), reference_histogram(seen["act3"]))
