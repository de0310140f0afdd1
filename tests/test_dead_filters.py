"""Dead-filter counting against a naive loop, on channels made dead by a large negative bias."""

import warnings

import pytest
import torch
from torch import nn

from tb_cnnviz import CNNViz, DeadFilterWarning
from tb_cnnviz.methods import DeadFilterMonitor, dead_maps


def naive_dead(output):
    n, c = output.shape[:2]
    return torch.tensor([[bool((output[i, j] <= 0).all()) for j in range(c)] for i in range(n)])


def test_dead_maps_matches_a_naive_loop():
    torch.manual_seed(5)
    out = torch.relu(torch.randn(6, 5, 3, 3) - 1.5)
    assert torch.equal(dead_maps(out), naive_dead(out))
    assert torch.equal(dead_maps(out[:, :, 0, 0]), naive_dead(out[:, :, 0, 0]))


def test_channels_killed_by_a_negative_bias_are_dead_and_the_rest_match_a_naive_count(tiny_net):
    with torch.no_grad():
        tiny_net.conv1.bias[1] = -100.0
    captured = []
    handle = tiny_net.relu2.register_forward_hook(lambda m, i, o: captured.append(o.detach().clone()))
    torch.manual_seed(6)
    batches = [torch.rand(n, 1, 6, 6) for n in (4, 3, 5)]
    with DeadFilterMonitor(tiny_net) as monitor:
        for x in batches:
            tiny_net(x)
        report = monitor.report()
    handle.remove()

    relu1 = report["relu1"]
    assert relu1.inputs == 12
    assert relu1.rates[1].item() == 1.0 and relu1.dead == [1]
    expected = torch.cat([naive_dead(o) for o in captured]).float().mean(dim=0)
    torch.testing.assert_close(report["relu2"].rates, expected)
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in tiny_net.modules()) == 0


def test_windows_reset_and_paused_passes_do_not_count(tiny_net):
    monitor = DeadFilterMonitor(tiny_net).start()
    tiny_net(torch.rand(4, 1, 6, 6))
    assert monitor.report(reset=True)["relu1"].inputs == 4
    with monitor.paused():
        tiny_net(torch.rand(9, 1, 6, 6))
    tiny_net(torch.rand(2, 1, 6, 6))
    assert monitor.report()["relu1"].inputs == 2
    monitor.close()
    monitor.close()  # safe twice
    assert len(tiny_net.relu1._forward_hooks) == 0


def test_a_model_without_relus_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="no ReLU-like module.*layers="):
        DeadFilterMonitor(nn.Sequential(nn.Conv2d(1, 1, 1), nn.Tanh()))


def test_cnnviz_warns_once_when_channels_die_and_writes_each_window(tiny_net, tmp_path):
    with torch.no_grad():
        tiny_net.conv1.bias[1] = -100.0
    viz = CNNViz(tiny_net, tmp_path, raise_errors=True)
    viz.watch_dead_filters(every=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(6):
            tiny_net(torch.rand(3, 1, 6, 6))
            viz.step(step)
    died = [w for w in caught if issubclass(w.category, DeadFilterWarning) and "'relu1'" in str(w.message)]
    assert len(died) == 1 and "channels 1" in str(died[0].message) and "step 1" in str(died[0].message)
    viz.close()
