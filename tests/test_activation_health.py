"""Health monitoring for every activation style, found with no arguments: ReLU modules, functional ReLUs
(measured at the module producing their input), smooth activations (dormant, at their input), the channel axis
from the producing module, and each layer's sparsity; checked against naive loops over the activations."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from example_nets import MnistExampleNet

from tb_cnnviz.methods import DeadFilterMonitor
from tb_cnnviz.methods.activations.activation_sites import DEAD, DORMANT, find_activation_sites


def naive_off(maps, channel_axis=1):
    """(N, ...) -> (N, C) bool by a loop: a channel's map is off when every value is <= 0."""
    maps = maps.movedim(channel_axis, 1)
    return torch.tensor([[bool((maps[i, c] <= 0).all()) for c in range(maps.shape[1])] for i in range(maps.shape[0])])


def naive_sparsity(tensors):
    """Share of values <= 0 in the first input of each batch, by a loop over the values."""
    values = [v for t in tensors for v in t[0].flatten().tolist()]
    return sum(1 for v in values if v <= 0) / len(values)


def test_the_mnist_example_is_watched_at_the_modules_feeding_its_functional_relus():
    torch.manual_seed(0)
    net = MnistExampleNet()
    with torch.no_grad():
        net.conv1.bias[3] = -100.0  # channel 3 of the first F.relu: all zero for every input
    batches = [torch.randn(n, 1, 28, 28) for n in (3, 2)]
    relu_outputs = {"conv1": [], "conv2": [], "fc1": []}
    for x in batches:  # the reference: the ReLU outputs, recomputed by hand
        with torch.no_grad():
            a = F.relu(net.conv1(x)); b = F.relu(net.conv2(a)); c = F.relu(net.fc1(torch.flatten(F.max_pool2d(b, 2), 1)))
        for name, value in zip(relu_outputs, (a, b, c)):
            relu_outputs[name].append(value)
    net.eval()
    with DeadFilterMonitor(net) as monitor:
        for x in batches:
            net(x)
        report = monitor.report()
    assert {s.module: (s.health, s.found_as) for s in monitor.sites.values()} == {
        "conv1": (DEAD, "F.relu"), "conv2": (DEAD, "F.relu"), "fc1": (DEAD, "F.relu")}
    assert list(report) == ["conv1", "conv2", "fc1"]
    assert report["conv1"].dead == [3] and report["conv1"].inputs == 5
    for name, outputs in relu_outputs.items():
        expected = torch.cat([naive_off(o) for o in outputs]).float().mean(dim=0)
        torch.testing.assert_close(report[name].rates, expected, msg=name)
        assert report[name].sparsity == pytest.approx(naive_sparsity(outputs), abs=1e-12), name
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in net.modules()) == 0


class EveryFunctionalRelu(nn.Module):
    """torch.relu, Tensor.relu, Tensor.relu_, F.relu(inplace=True), a reused module, and a relu of a sum."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c, self.d = (nn.Conv2d(2, 2, 1) for _ in range(4))

    def forward(self, x):
        x = torch.relu(self.a(x))
        x = self.b(x).relu()
        y = self.c(x).relu_()
        z = F.relu(self.d(y), inplace=True)
        z = F.relu(self.d(z) + x)  # a reused module's second call feeds an add: no module produces the relu's input
        return z


def test_every_spelling_of_a_functional_relu_is_found_and_a_relu_of_a_sum_is_named_once():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sites = find_activation_sites(EveryFunctionalRelu())
    assert {n: (s.found_as, s.calls) for n, s in sites.items()} == {
        "a": ("torch.relu", {0}), "b": ("Tensor.relu", {0}), "c": ("Tensor.relu_", {0}), "d": ("F.relu", {0})}
    named = [str(w.message) for w in caught if "no module produces" in str(w.message)]
    assert len(named) == 1 and "F.relu(add)" in named[0]
    net = EveryFunctionalRelu()
    with torch.no_grad():
        net.d.bias[1] = -50.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monitor = DeadFilterMonitor(net).start()
    for _ in range(2):
        net(torch.rand(4, 2, 3, 3))
    report = monitor.report()
    monitor.close()
    assert list(report) == ["a", "b", "c", "d#1"]  # d runs twice a forward: its first call feeds the ReLU
    assert report["d#1"].dead == [1] and report["d#1"].inputs == 8


class ConvNeXtLikeBlock(nn.Module):
    """ConvNeXt's block: depthwise conv, then LayerNorm, Linear, GELU, Linear on (N, H, W, C)."""

    def __init__(self, channels=4, hidden=6):
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.pwconv1 = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(hidden, channels)

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


def test_a_gelu_after_a_linear_has_its_channels_on_the_last_axis_and_a_never_positive_channel_is_dormant():
    torch.manual_seed(1)
    net = ConvNeXtLikeBlock()
    with torch.no_grad():
        net.pwconv1.bias[4] = -100.0
    site = find_activation_sites(net)["act"]
    assert (site.health, site.before, site.channel_axis) == (DORMANT, True, -1)
    pre = []
    handle = net.act.register_forward_pre_hook(lambda m, args: pre.append(args[0].detach().clone()))
    with DeadFilterMonitor(net) as monitor:
        for n in (3, 4):
            net(torch.randn(n, 4, 5, 3))  # H=5, W=3: no axis has the channel count by chance
        report = monitor.report()["act"]
    handle.remove()
    assert report.health == DORMANT and report.dormant == [4] and report.dead == []
    assert report.rates.shape == (6,)
    expected = torch.cat([naive_off(p, channel_axis=3) for p in pre]).float().mean(dim=0)
    torch.testing.assert_close(report.rates, expected)
    assert report.sparsity == pytest.approx(naive_sparsity(pre), abs=1e-12)


@pytest.mark.parametrize("activation", [nn.SiLU(), nn.GELU(), nn.Mish(), nn.Hardswish(), nn.ELU(), nn.CELU(),
                                        nn.SELU(), nn.LeakyReLU(), nn.PReLU(3), nn.Softplus()])
def test_each_smooth_activation_is_dormant_exactly_where_its_pre_activation_never_turns_positive(activation):
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), activation)
    with torch.no_grad():
        net[1].bias[0] = -100.0
    with DeadFilterMonitor(net) as monitor:
        net(torch.randn(4, 1, 6, 6))
        report = monitor.report()["2"]
    assert (report.health, report.dormant, report.found_as) == (DORMANT, [0], type(activation).__name__)


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        self.relu = nn.ReLU()

    def forward(self, x):
        if x.sum() > 0:  # fx cannot trace this
            x = -x
        return F.relu(self.relu(self.conv(x)))


def test_a_model_fx_cannot_trace_is_said_so_once_and_its_modules_are_watched():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sites = find_activation_sites(DataDependent())
    said = [w for w in caught if "could not trace" in str(w.message)]
    assert len(said) == 1 and "DataDependent" in str(said[0].message)
    assert list(sites) == ["relu"]


def test_a_model_with_no_known_activation_is_refused_in_one_line_naming_what_it_has():
    class TanhNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 1)
            self.gate = nn.Sigmoid()

        def forward(self, x):
            return self.gate(torch.tanh(self.conv(x)))

    with pytest.raises(ValueError) as raised:
        DeadFilterMonitor(TanhNet())
    message = str(raised.value)
    assert "\n" not in message and "Sigmoid" in message and "torch.tanh" in message and "layers=[" in message


def test_an_activation_given_a_tensor_that_is_not_n_c_is_skipped_with_one_warning_naming_it():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 1)
            self.relu = nn.ReLU()
            self.scalar_relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.conv(x)).mean() + self.scalar_relu(x.flatten()[:3]).sum()

    net = Odd()
    monitor = DeadFilterMonitor(net).start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            net(torch.rand(2, 1, 4, 4))
    report = monitor.report()
    monitor.close()
    skipped = [str(w.message) for w in caught if "skips it" in str(w.message)]
    assert len(skipped) == 1 and "'scalar_relu'" in skipped[0] and "(3,)" in skipped[0]
    assert list(report) == ["relu"] and report["relu"].inputs == 6


def test_a_library_s_own_activation_module_is_found_once_not_again_for_the_function_inside():
    class GELU(nn.Module):  # as timm.layers.GELU: a module of its own that calls F.gelu
        def forward(self, x):
            return F.gelu(x)

    net = nn.Sequential(nn.Conv2d(1, 2, 1), GELU(), nn.Conv2d(2, 2, 1))
    sites = find_activation_sites(net)
    assert {n: (s.health, s.before, s.found_as) for n, s in sites.items()} == {"1": (DORMANT, True, "GELU")}
