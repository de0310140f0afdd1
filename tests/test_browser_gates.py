"""Squeeze-and-excitation gates are shown apart in the tab, in real Chromium over a real `tensorboard`: a fresh
regnety_002 trained 20 steps with one feature channel killed (test_health_warnings.py's run). Its gates' off
channels get a grey "gate off" badge, never a dead-filter badge, and stay out of the alert; the killed channel's
layer is the one flagged dead."""

from __future__ import annotations

import re

import pytest
import torch
from playwright.sync_api import expect

from helpers import get_json, tensorboard_client, tensorboard_process
from test_browser import browser, open_tab  # noqa: F401 (browser is a fixture)
from test_health_warnings import KILLED_LAYER, trained_se_net  # noqa: F401 (a fixture)

from tb_cnnviz import CNNViz

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_gate_layers_get_their_own_badge_and_stay_out_of_the_alert(browser, trained_se_net):  # noqa: F811
    logdir, model, _ = trained_se_net
    _, summary = get_json(tensorboard_client(logdir, "false"), "dead_summary", run="run")
    off_gates = [layer for layer, info in summary["layers"].items() if info["role"] == "gate" and info["dead"]]
    flagged = [layer for layer, info in summary["layers"].items() if info["role"] != "gate" and info["dead"]]
    assert off_gates and flagged == [KILLED_LAYER]  # the premise: gates off at random initialisation
    batches = [torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    layer = "s2.b1.conv3.conv"  # a conv fed by maps its block's squeeze-and-excitation gate has scaled
    with CNNViz(model, logdir / "top", raise_errors=True) as viz:
        viz.log_top_activations(batches, layer, 0, k=2, channels=[0, 1])
    _, top = get_json(tensorboard_client(logdir, "false"), "sample", run="top", kind="top_activations", layer=layer, step=0)
    gates = top["meta"]["gates"]
    assert "s2.b1.se" in gates, gates  # the block's own gate, named by the field rules
    with tensorboard_process(logdir, ready=b"run") as url:
        problems: list[str] = []
        page, frame = open_tab(browser, url, problems, ready="button.view-button[data-view='dead']")
        frame.locator("button.view-button[data-view='dead']").click()
        frame.locator(".layer-filter").fill(off_gates[0])  # the list is a tree: the filter opens its block
        gate = frame.locator(f".layer-item[data-layer='{off_gates[0]}']")
        expect(gate.locator(".gate-badge")).to_contain_text(f"{len(summary['layers'][off_gates[0]]['dead'])} gate off")
        expect(gate.locator(".gate-badge")).to_have_attribute("title", re.compile("squeeze-and-excitation gate"))
        expect(gate.locator(".dead-badge")).to_have_count(0)
        expect(frame.locator(".dead-alert .alert-text")).to_have_text("run: 1 layer with dead filters")
        frame.locator("button.view-button[data-view='top_activations']").click()
        expect(frame.locator(".gates-note").first).to_contain_text(f"whole-image gate{'s' if len(gates) > 1 else ''} "
                                                                   f"({', '.join(gates)})")
        assert [p for p in problems if "cnnviz" in p or "page error" in p] == [], problems
        page.close()
