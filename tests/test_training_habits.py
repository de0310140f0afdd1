"""How people train, each kept working: torch.compile(model) while CNNViz holds the original, bf16 autocast on
the CPU, channels_last, and a DataParallel-wrapped model (layers named without the ``module.`` prefix).
The dead channels found are read back from the event file and must be exactly the one pushed off."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from example_nets import MnistExampleNet
from helpers import health_events

from tb_cnnviz import CNNViz


def make_net():
    torch.manual_seed(0)
    net = MnistExampleNet()
    with torch.no_grad():
        net.conv1.bias[5] = -100.0  # off for every input: dead after the F.relu
    return net


def train(step_model, params, steps=4, autocast=None, channels_last=False, viz=None):
    torch.manual_seed(1)
    optimizer = torch.optim.SGD(params, lr=1e-3)
    for step in range(steps):
        x = torch.randn(8, 1, 28, 28)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (8,))
        with torch.autocast("cpu", dtype=autocast) if autocast else torch.autocast("cpu", enabled=False):
            loss = F.nll_loss(step_model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if viz is not None:
            viz.step(step)


def logged_health(tmp_path, net, step_model, **train_args):
    viz = CNNViz(net, tmp_path, probe_images=torch.randn(2, 1, 28, 28), raise_errors=True)
    viz.watch_dead_filters(every=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DeadFilterWarning: expected, channel 5
        train(step_model, net.parameters(), viz=viz, **train_args)
    assert viz.log_activations(4)
    viz.close()
    return health_events(tmp_path)


def check_channel_5_dead(dead, scalars):
    content, series = dead["conv1"]
    assert content.health == "dead"
    assert [step for step, _ in series] == [1, 3]
    assert all((rates >= 0.99).nonzero()[0].tolist() == [5] for _, rates in series)
    assert {"cnnviz/dead_fraction/conv1", "cnnviz/sparsity/conv1", "cnnviz/sparsity/fc1"} <= set(scalars)
    assert scalars["cnnviz/dead_fraction/conv1"][-1][1] == pytest.approx(1 / 32)


def test_bf16_autocast_on_the_cpu(tmp_path):
    net = make_net()
    check_channel_5_dead(*logged_health(tmp_path, net, net, autocast=torch.bfloat16))


def test_channels_last_counts_match_a_naive_count_of_the_maps_it_made(tmp_path):
    net = make_net().to(memory_format=torch.channels_last)
    made = {"conv1": [], "conv2": []}
    for name in made:
        getattr(net, name).register_forward_hook(
            lambda m, i, out, name=name: made[name].append(out.detach().clone()) if m.training else None)
    dead, scalars = logged_health(tmp_path, net, net, channels_last=True)
    check_channel_5_dead(dead, scalars)
    assert made["conv2"][0].is_contiguous(memory_format=torch.channels_last)
    for name, outputs in made.items():
        for window, (step, rates) in enumerate(dead[name][1]):
            maps = torch.cat(outputs[2 * window:2 * window + 2])  # every=2: two batches a window
            expected = [sum(bool((maps[i, c] <= 0).all()) for i in range(len(maps))) / len(maps)
                        for c in range(maps.shape[1])]
            assert rates.tolist() == pytest.approx(expected), (name, step)


def test_a_dataparallel_model_shows_and_accepts_layers_without_the_module_prefix(tmp_path):
    net = make_net()
    wrapped = nn.DataParallel(net)  # on the CPU it calls the module itself: the same code path as one GPU
    viz = CNNViz(wrapped, tmp_path, probe_images=torch.randn(2, 1, 28, 28), layers=["conv1", "conv2"],
                 raise_errors=True)
    viz.watch_dead_filters(every=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(wrapped, wrapped.parameters(), viz=viz)
    assert viz.log_activations(4) == ["conv1", "conv2"]
    viz.close()
    check_channel_5_dead(*health_events(tmp_path))


@pytest.mark.slow
def test_training_through_torch_compile_while_cnnviz_holds_the_original(tmp_path):
    net = make_net()
    compiled = torch.compile(net, backend="aot_eager")  # dynamo + AOT autograd; no C++ build on the CPU
    check_channel_5_dead(*logged_health(tmp_path, net, compiled))


@pytest.mark.slow
def test_cnnviz_given_the_compiled_model_watches_the_original(tmp_path):
    net = make_net()
    compiled = torch.compile(net, backend="aot_eager")
    dead, scalars = logged_health(tmp_path, compiled, compiled)
    check_channel_5_dead(dead, scalars)
