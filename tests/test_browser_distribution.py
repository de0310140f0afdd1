"""The Distribution view in real Chromium over a real `tensorboard` on the demo's two runs: the step x value heat
map of each run, its cells' shares as /distribution counts them, the dead fraction at the slider's step, a click
on a step opening that step's activations; and the README's screenshot of it."""

from __future__ import annotations

import json

import pytest

from helpers import fetch
from test_browser import DOCS, browser, open_tab, tensorboard_url  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAYER = "relu3"
TOO_HIGH = "too_high_lr0.9"


def test_the_heat_map_shows_each_step_s_values_and_opens_its_activations(browser, tensorboard_url):  # noqa: F811
    reply = json.loads(fetch(tensorboard_url, "distribution", {"run": TOO_HIGH, "layer": LAYER}))
    problems: list[str] = []
    page, frame = open_tab(browser, tensorboard_url, problems)
    frame.locator("button.view-button[data-view='distribution']").click()
    frame.locator(f".layer-item[data-layer='{LAYER}']").click()
    column = f".run-column[data-run='{TOO_HIGH}']"
    frame.wait_for_selector(f"{column} canvas.distribution-map")
    frame.wait_for_function("!document.querySelector('.run-body.stale')")
    assert frame.locator(".run-column canvas.distribution-map").count() == 2  # both runs side by side

    # the last step's most-populated bin: its tooltip gives the count /distribution has for it
    canvas = frame.locator(f"{column} canvas.distribution-map")
    layout = json.loads(canvas.get_attribute("data-layout"))
    last = reply["counts"][-1]
    slot = max(range(1, len(reply["edges"])), key=lambda s: last[s])
    total = sum(last)
    x = layout["left"] + (len(reply["steps"]) - 1) * layout["cellW"] + layout["cellW"] / 2
    y = layout["binsTop"] + layout["bins"].index(slot) * layout["cellH"] + layout["cellH"] / 2
    canvas.hover(position={"x": x, "y": y})
    tooltip = frame.locator(".cnnviz-tooltip")
    assert f"({last[slot]} of {total})" in tooltip.inner_text()
    assert f"step {reply['steps'][-1]}" in tooltip.inner_text()

    # at the latest step, the dead fraction said under the map is the route's
    off = reply["off_fraction"][-1]
    assert f"dead channels {100 * off:.1f}%" in frame.locator(f"{column} .distribution-at-step").inner_text()
    page.mouse.move(0, 0)  # the README's picture without the tooltip
    page.screenshot(path=str(DOCS / "screenshot-distribution.png"))

    # a click on an earlier step opens the activations of the layer at that step
    step = reply["steps"][1]
    canvas.click(position={"x": layout["left"] + layout["cellW"] + layout["cellW"] / 2, "y": y})
    frame.wait_for_selector("button.view-button.active[data-view='activations']")
    frame.wait_for_function(f"document.getElementById('step-label').textContent === 'step {step}'")
    assert frame.locator(".layer-item.selected").get_attribute("data-layer") == LAYER
    frame.wait_for_selector(".run-column img.mosaic")  # the layer's activations, at that step
    ours = [p for p in problems if "cnnviz" in p or "page error" in p]
    assert ours == [], problems
    page.close()
