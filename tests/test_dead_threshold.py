"""The dead-filter threshold at its boundary (issue 27): a channel whose off rate *equals* the threshold is flagged.

Every other test kills channels outright (rate 1.0), which clears a 0.99 threshold under ``>=`` and ``>`` alike;
here the rates sit exactly on the threshold: 0.5 with 2 of 4 inputs off, and 1.0 (the highest threshold allowed)
with a channel off for every input. Checked where the rule lives: the monitor's report and the logging call
(Python), ``/dead_summary`` (the plugin, both of TensorBoard's loaders); the tab is checked in real Chromium by
test_browser_thresholds.py over the same log directory (:func:`write_threshold_runs`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import get_json, health_events, tensorboard_client
from tb_cnnviz import CNNViz
from tb_cnnviz.views.dead import MIN_EVIDENCE_INPUTS, MIN_EVIDENCE_STEPS, DeadFilterWarning
from tb_cnnviz.methods import DeadFilterMonitor

#: Four constant images, one value each: two negative, two positive.
VALUES = (-2.0, -1.0, 1.0, 2.0)
#: conv(1 -> 5, 1x1) then ReLU; channel c computes WEIGHTS[c] * x + BIASES[c] at every pixel.
WEIGHTS = (1.0, -1.0, 0.0, 0.0, 1.0)
BIASES = (0.0, 0.0, -1.0, 1.0, 1.5)
#: Worked by hand from the two lines above: channel 0 (x) is off for the 2 negative images, channel 1 (-x) for
#: the 2 positive ones, channel 2 (-1) for all 4, channel 3 (+1) for none, channel 4 (x + 1.5) for x = -2 alone.
RATES = [0.5, 0.5, 1.0, 0.0, 0.25]
FLAGGED = {0.5: [0, 1, 2], 1.0: [2]}  #: threshold -> channels off for at least that share of the inputs
RUNS = {"half": 0.5, "always": 1.0}  #: run name -> threshold it was watched with
LAYER = "relu"
CHANNELS = len(WEIGHTS)


def gate_net() -> nn.Sequential:
    net = nn.Sequential()
    net.add_module("conv", nn.Conv2d(1, CHANNELS, 1))
    net.add_module(LAYER, nn.ReLU())
    net.add_module("pool", nn.AdaptiveAvgPool2d(1))
    net.add_module("flat", nn.Flatten())
    with torch.no_grad():
        net.conv.weight.copy_(torch.tensor(WEIGHTS).reshape(CHANNELS, 1, 1, 1))
        net.conv.bias.copy_(torch.tensor(BIASES))
    return net


def images() -> torch.Tensor:
    return torch.tensor(VALUES).reshape(-1, 1, 1, 1).expand(-1, 1, 5, 5).contiguous()


def naive_rates() -> list[float]:
    """Per channel, the share of the inputs whose whole map is <= 0 after the ReLU, one image at a time."""
    rates = []
    for w, b in zip(WEIGHTS, BIASES):
        off = [bool((torch.relu(w * image + b) <= 0).all()) for image in images()]
        rates.append(sum(off) / len(off))
    return rates


def write_threshold_runs(logdir: Path) -> dict[str, dict[str, list[int]]]:
    """One run per threshold of :data:`RUNS`, one flush each (step 0) of the four images; returns what each
    ``flush_dead_filters`` call returned (layer -> channels off)."""
    returned = {}
    for run, threshold in RUNS.items():
        net = gate_net()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeadFilterWarning)
            with CNNViz(net, str(logdir / run), raise_errors=True) as viz:
                viz.watch_dead_filters(every=1000, threshold=threshold)
                with torch.no_grad():
                    net(images())
                returned[run] = viz.flush_dead_filters(0)
    return returned


def test_the_hand_worked_rates_are_what_a_naive_loop_counts():
    assert naive_rates() == RATES


@pytest.mark.parametrize("threshold", sorted(FLAGGED))
def test_the_monitor_flags_a_rate_equal_to_the_threshold(threshold):
    net = gate_net()
    with DeadFilterMonitor(net, threshold=threshold) as monitor:
        with torch.no_grad():
            net(images()[:2])  # two batches: the window adds them up
            net(images()[2:])
        report = monitor.report()[LAYER]
    assert report.inputs == len(VALUES)
    assert report.rates.tolist() == RATES
    assert report.flagged == report.dead == FLAGGED[threshold]
    assert report.dead_fraction == pytest.approx(len(FLAGGED[threshold]) / CHANNELS)


def test_the_smooth_activation_s_dormant_channels_follow_the_same_rule():
    net = gate_net()
    net[1] = nn.SiLU()  # off = never positive: the same rates as the ReLU's
    with DeadFilterMonitor(net, threshold=0.5) as monitor:
        with torch.no_grad():
            net(images())
        (report,) = monitor.report().values()
    assert report.health == "dormant" and report.rates.tolist() == RATES
    assert report.dormant == FLAGGED[0.5] and report.dead == []


@pytest.fixture(scope="module")
def threshold_logdir(tmp_path_factory) -> tuple[Path, dict]:
    logdir = tmp_path_factory.mktemp("thresholds")
    return logdir, write_threshold_runs(logdir)


def test_the_logging_call_returns_warns_and_writes_the_channels_at_the_threshold(tmp_path, threshold_logdir):
    _, returned = threshold_logdir
    assert returned == {run: {LAYER: FLAGGED[threshold]} for run, threshold in RUNS.items()}
    for run, threshold in RUNS.items():
        dead, scalars = health_events(threshold_logdir[0] / run)
        content, series = dead[LAYER]
        assert content.threshold == threshold and series[0][1].tolist() == RATES
        ((_, fraction),) = scalars[f"cnnviz/dead_fraction/{LAYER}"]
        assert fraction == pytest.approx(len(FLAGGED[threshold]) / CHANNELS)
    net = gate_net()  # the warning waits for evidence: off at every flush over enough steps and inputs
    batch = images().repeat(MIN_EVIDENCE_INPUTS // (MIN_EVIDENCE_STEPS * len(images())), 1, 1, 1)
    with CNNViz(net, str(tmp_path), raise_errors=True) as viz:
        viz.watch_dead_filters(every=MIN_EVIDENCE_STEPS, threshold=1.0)
        with pytest.warns(DeadFilterWarning, match=r"1 of 5 channels of layer 'relu' are dead .*: channels 2\."):
            for step in range(MIN_EVIDENCE_STEPS):
                with torch.no_grad():
                    net(batch)
                viz.step(step)


@pytest.mark.parametrize("load_fast", ["false", "true"], ids=["python_loader", "rust_data_server"])
def test_dead_summary_flags_the_channels_at_the_threshold(threshold_logdir, load_fast):
    client = tensorboard_client(threshold_logdir[0], load_fast)
    for run, threshold in RUNS.items():
        status, summary = get_json(client, "dead_summary", run=run)
        assert status == 200, summary
        layer = summary["layers"][LAYER]
        assert layer["threshold"] == threshold and layer["channels"] == CHANNELS
        assert layer["dead"] == FLAGGED[threshold] and layer["dormant"] == [], (run, layer)
        status, series = get_json(client, "dead", run=run, layer=LAYER)  # what the timeline colours
        assert status == 200 and series["threshold"] == threshold and series["rates"] == [RATES]
