"""Dead-filter counting against a naive loop, on channels made dead by a large negative bias."""

import warnings

import pytest
import torch
from torch import nn

from tb_cnnviz import CNNViz, DeadFilterWarning
from tb_cnnviz.views.dead import MIN_EVIDENCE_INPUTS, MIN_EVIDENCE_STEPS
from tb_cnnviz.methods import DeadFilterMonitor, dead_maps


def naive_dead(output):
    n, c = output.shape[:2]
    return torch.tensor([[bool((output[i, j] <= 0).all()) for j in range(c)] for i in range(n)])


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 9])  # matrix-vector sums up to 4x4, reductions above
@pytest.mark.parametrize("nonnegative", [False, True])
def test_dead_maps_matches_a_naive_loop(size, nonnegative):
    torch.manual_seed(5)
    out = torch.relu(torch.randn(6, 5, size, size) - 1.5)
    out[0, 0] = 0.0
    out[1, 1, 0, 0] = 1e-45  # the smallest subnormal: alive
    out[2, 2, 0, 0] = float("nan")  # NaN maps are not dead
    assert torch.equal(dead_maps(out, nonnegative), naive_dead(out))
    assert torch.equal(dead_maps(out[:, :, 0, 0], nonnegative), naive_dead(out[:, :, 0, 0]))
    channels_last = out.contiguous(memory_format=torch.channels_last)
    assert torch.equal(dead_maps(channels_last, nonnegative), naive_dead(out))
    if not nonnegative:
        assert torch.equal(dead_maps(out - 1), naive_dead(out - 1))  # below zero counts as dead


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
    with pytest.raises(ValueError, match="no activation health monitoring knows.*found: Tanh.*layers="):
        DeadFilterMonitor(nn.Sequential(nn.Conv2d(1, 1, 1), nn.Tanh()))


def test_cnnviz_warns_once_when_channels_die_and_writes_each_window(tiny_net, tmp_path):
    with torch.no_grad():
        tiny_net.conv1.bias[1] = -100.0
    viz = CNNViz(tiny_net, tmp_path, raise_errors=True)
    viz.watch_dead_filters(every=2)
    batch = 16
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(40):
            tiny_net(torch.rand(batch, 1, 6, 6))
            viz.step(step)
    died = [w for w in caught if issubclass(w.category, DeadFilterWarning) and "'relu1'" in str(w.message)]
    # the first flush (every 2 steps) at which the channel has been dead over the evidence a warning waits for
    flushes = max(-(-MIN_EVIDENCE_STEPS // 2), -(-MIN_EVIDENCE_INPUTS // (2 * batch)))
    assert len(died) == 1 and "channels 1" in str(died[0].message)
    assert f"at step {2 * flushes - 1} " in str(died[0].message)
    viz.close()


class Branchy(nn.Module):
    """A forward whose watched calls change from batch to batch, and which can fail half way."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.extra = nn.ReLU()

    def forward(self, x, branch=False, fail=False):
        h = self.relu(self.conv(x) - 0.3)
        if fail:
            raise RuntimeError("half way")
        if branch:
            h = self.extra(h - 0.2)
        return self.relu(h - 0.1)


def test_counts_stay_exact_when_the_watched_calls_change_between_forwards():
    torch.manual_seed(8)
    net = Branchy()
    captured: dict[str, list[torch.Tensor]] = {}
    calls = {"relu": 0}

    def keep(name):
        def hook(module, inputs, output):
            key = name
            if name == "relu":
                calls["relu"] += 1
                key = f"relu#{calls['relu']}"
            captured.setdefault(key, []).append(output.detach().clone())
        return hook

    handles = [net.relu.register_forward_hook(keep("relu")), net.extra.register_forward_hook(keep("extra"))]
    plan = [(4, False, False), (3, True, False), (5, False, False), (2, False, True), (6, True, False)]
    with DeadFilterMonitor(net) as monitor:
        for n, branch, fail in plan:
            calls["relu"] = 0
            try:
                net(torch.rand(n, 1, 5, 5), branch=branch, fail=fail)
            except RuntimeError:
                pass
        report = monitor.report()
    for handle in handles:
        handle.remove()
    # The failed forward's first relu call did see its 2 inputs: they count.
    assert {name: r.inputs for name, r in report.items()} == {"relu#1": 20, "relu#2": 18, "extra": 9}
    for name, outputs in captured.items():
        expected = torch.cat([naive_dead(o) for o in outputs]).float().mean(dim=0)
        torch.testing.assert_close(report[name].rates, expected, msg=name)
