"""Dead / dormant warnings wait for evidence: a fresh squeeze-and-excitation net trained 20 steps warns about the
channel that really died and nothing else (its gates' squeeze path, often off at random initialisation, is
marked ``role: "gate"`` and never warned about), once per layer, at the user's line; the rates the tab reads
are written as before."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from helpers import get_json, health_events, tensorboard_client
from test_health_logging import Mixed  # conv-BN-SiLU (a dormant channel) then conv-ReLU (a dead one)

from tb_cnnviz import CNNViz, DeadFilterWarning
from tb_cnnviz.datasets.shapes import shapes
from tb_cnnviz.views.dead import MIN_EVIDENCE_INPUTS, MIN_EVIDENCE_STEPS

STEPS, EVERY, BATCH = 20, 5, 16
KILLED_LAYER, KILLED_CHANNEL = "s2.b1.conv1.bn.act", 3


@pytest.fixture(scope="module")
def trained_se_net(tmp_path_factory):
    """timm's regnety_002 (squeeze-and-excitation in every block), freshly initialised, one channel killed
    (its BN shift far below zero: its ReLU is all zero, no gradient reaches it), trained 20 steps on the
    shapes data set with the health of every activation watched."""
    import timm  # a test extra: a broken install fails here, never skips
    logdir = tmp_path_factory.mktemp("se_net")
    torch.manual_seed(0)
    data = shapes(STEPS * BATCH, size=64, seed=0)
    model = timm.create_model("regnety_002", pretrained=False, num_classes=len(data.classes))
    with torch.no_grad():
        model.s2.b1.conv1.bn.bias[KILLED_CHANNEL] = -1e4
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    viz = CNNViz(model, logdir / "run", raise_errors=True)
    viz.watch_dead_filters(every=EVERY)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(STEPS):
            x, y = data.images[step * BATCH : (step + 1) * BATCH], data.labels[step * BATCH : (step + 1) * BATCH]
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
            optimizer.zero_grad()
            viz.step(step)  # the flush, and its warning, come from here
    viz.close()
    return logdir, model, [w for w in caught if issubclass(w.category, DeadFilterWarning)]


@pytest.mark.slow  # trains regnety_002 for 20 steps (the module fixture)
def test_a_fresh_se_net_warns_only_about_the_killed_channel_at_the_users_line(trained_se_net):
    assert STEPS >= MIN_EVIDENCE_STEPS and STEPS * BATCH >= MIN_EVIDENCE_INPUTS  # enough for the real one
    _, _, died = trained_se_net
    assert len(died) == 1, [str(w.message) for w in died]
    (warning,) = died
    assert f"layer '{KILLED_LAYER}'" in str(warning.message) and f"channels {KILLED_CHANNEL}." in str(warning.message)
    assert warning.filename == __file__  # the viz.step(step) line above, not logger.py


@pytest.mark.slow
def test_gate_layers_are_measured_and_marked_apart(trained_se_net):
    """The squeeze paths' channels are off at random initialisation (what set off the warnings before): their
    rates are still written, with role "gate" in the content and in the plugin's replies."""
    logdir, model, _ = trained_se_net
    dead, _ = health_events(logdir / "run")
    gates = [name for name in dead if ".se." in name]
    blocks = [name for name, module in model.named_modules() if type(module).__name__ == "SEModule"]
    assert gates and len(gates) == len(blocks)
    client = tensorboard_client(logdir, "false")
    status, summary = get_json(client, "dead_summary", run="run")
    assert status == 200
    roles = {layer: entry["role"] for layer, entry in summary["layers"].items()}
    assert {layer for layer, role in roles.items() if role == "gate"} == set(gates)
    assert any(summary["layers"][layer]["dead"] for layer in gates)  # off, flagged in the tab, not warned about
    assert summary["layers"][KILLED_LAYER]["dead"] == [KILLED_CHANNEL] and roles[KILLED_LAYER] == "feature"
    status, series = get_json(client, "dead", run="run", layer=gates[0])
    assert status == 200 and series["role"] == "gate" and len(series["steps"]) == STEPS // EVERY


def test_dead_and_dormant_are_warned_once_each_after_the_evidence(tmp_path):
    torch.manual_seed(0)
    net = Mixed().eval()
    with torch.no_grad():
        net.bn1.bias[2] = -1e4
        net.conv2.bias[4] = -1e4
    viz = CNNViz(net, tmp_path, raise_errors=True)
    viz.watch_dead_filters(every=2)
    warned_at = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(3 * MIN_EVIDENCE_STEPS):
            net(torch.randn(BATCH, 1, 5, 5))
            viz.step(step)
            for w in caught[len(warned_at):]:
                warned_at[str(w.message)] = step
    viz.close()
    messages = [str(w.message) for w in caught if issubclass(w.category, DeadFilterWarning)]
    assert len(messages) == 2  # once per layer, though both stay off at every later flush
    dormant, dead = sorted(messages, key=lambda m: "'act2'" in m)
    assert "'act1'" in dormant and "are dormant" in dormant and "gradient still flows" in dormant
    assert "'act2'" in dead and "are dead" in dead and "channels 4." in dead
    first = max(MIN_EVIDENCE_STEPS, -(-MIN_EVIDENCE_INPUTS // BATCH))
    assert set(warned_at.values()) == {first - 1 + first % 2}  # the first flush (odd steps) with the evidence
    assert min(warned_at.values()) >= 15  # the stated rule: not before 16 training steps (and 256 inputs)
