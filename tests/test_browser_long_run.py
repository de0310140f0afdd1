"""The tab on a long run of a deep net (issue 16): resnet50's 102 conv and ReLU calls over 30 logged steps, in
real Chromium against a real `tensorboard`: the layer list is a tree of module-path blocks, with a filter box and
dead-filter badges rolled up to the blocks. Only what is shown is asserted, never a time: the figures are in
benchmarks/long_run.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
import torch
import torchvision

from helpers import fetch, replicate_steps, tensorboard_process
from playwright.sync_api import expect
from test_browser import DOCS, VIEW_DRAWN, browser, open_tab  # noqa: F401  (the module-scoped Chromium fixture)
from tb_cnnviz import CNNViz, metadata
from tb_cnnviz.methods._hooks import every_conv_and_relu

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STEPS = [500 * call for call in range(30)]
#: forced dead: channel 0 of the first ReLU call of layer2's second bottleneck (its BN's bias far below zero)
DEAD_LAYER = "layer2.1.relu#1"


@pytest.fixture(scope="module")
def long_run_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """One call over every conv and ReLU call of resnet50 (one 64x64 probe) and one dead-filter flush, in which
    DEAD_LAYER's channel 0 is dead, and one saliency map, written at 30 steps (the pictures thinned to 17 of
    them, as a real run's would be; the flushes kept whole)."""
    root = tmp_path_factory.mktemp("long_run")
    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=1000)  # training mode: BN by batch statistics, no other channel off
    with torch.no_grad():
        model.layer2[1].bn1.bias[0] = -1e4
    with CNNViz(model, str(root / "one_call"), probe_images=torch.randn(1, 3, 64, 64),
                layers=list(every_conv_and_relu(model)), raise_errors=True) as viz:
        viz.watch_dead_filters(every=1000)
        with torch.no_grad():
            model(torch.randn(2, 3, 64, 64))
        viz.flush_dead_filters(0)  # one forward is no evidence for a warning; the rates are written all the same
        layers = viz.log_activations(0)
        viz.log_saliency(0, method="saliency")
        log_every_other_view(viz, model)
    replicate_steps(root / "one_call", root / "logs" / "resnet50", STEPS)
    with tensorboard_process(root / "logs", ready=b"resnet50") as url:
        yield url, layers


def log_every_other_view(viz: CNNViz, model: torch.nn.Module) -> None:
    """The views a long run logs beside activations, dead filters and saliency, each once, small (what is
    checked is that the tab draws a thinned series of each, not what it shows)."""
    generator = torch.Generator().manual_seed(0)
    data = [(torch.randn(8, 3, 64, 64, generator=generator), torch.randint(0, 1000, (8,), generator=generator))
            for _ in range(2)]
    model.eval()
    viz.log_filters(0)
    viz.log_performance(data, 0)  # 1000 classes
    viz.log_top_activations(data, "layer3", 0, k=4, channels=[0, 1, 2])
    viz.log_embedding(data, "avgpool", 0, n=16, projector=False)
    viz.log_inversion(0, steps=2)
    viz.log_class_models(0, classes=[1, 2], steps=2)
    viz.log_channel_visualizations(0, "layer3", channels=[0, 1], steps=2)
    viz.log_correspondence(0, data[0][0][0], data[0][0][1], "layer3", k=8)
    viz.autolog(budget=0.05, views=["class_models"])  # no training follows: close() lists it as never fit


def test_every_view_of_a_long_run_draws_its_latest_step(browser, long_run_url):  # noqa: F811
    """Each view, thinned to 17 of 30 steps, draws the latest step without an error (its first paint is timed
    by benchmarks/long_run.py)."""
    url, _ = long_run_url
    runs = json.loads(fetch(url, "runs", {}))["runs"]
    problems: list[str] = []
    requests: list[str] = []
    page, frame = open_tab(browser, url, problems, on_request=requests.append)
    frame.wait_for_function(VIEW_DRAWN, arg="activations", timeout=30_000)
    # The tab opens on the latest step, which /steps answered with: no second request before the first paint.
    assert any("/cnnviz/steps?" in request for request in requests), requests
    assert not any("/cnnviz/sample?" in request for request in requests), requests
    # The runs were asked for once: index.js's preload is the request model.js makes (else a console warning).
    assert sum(request.endswith("/cnnviz/runs") for request in requests) == 1, requests
    views = frame.eval_on_selector_all("button.view-button", "els => els.map(e => e.dataset.view)")
    logged = [view for view in views if runs[0].get(view)]
    assert sorted(logged) == sorted(views), set(views) - set(logged)  # the fixture logs every view
    for view in views:
        frame.locator(f"button.view-button[data-view='{view}']").click()
        frame.wait_for_function(VIEW_DRAWN, arg=view, timeout=30_000)
        expect(frame.locator("#cnnviz-root")).to_have_attribute("data-pending", "0")  # every request answered
        expect(frame.locator(".run-columns .state-box")).to_have_count(0)  # no error, no "nothing logged"
        if view not in metadata.TENSOR_KINDS:  # a picture series: the latest of 30 steps, thinned
            expect(frame.locator("#step-label")).to_contain_text(str(STEPS[-1]))
            expect(frame.locator(".step-info").first).to_contain_text(f"of {len(STEPS)} logged steps")
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()


def test_every_layer_of_a_long_run_is_listed_and_the_latest_step_paints(browser, long_run_url):  # noqa: F811
    url, layers = long_run_url
    assert len(layers) == 102  # 53 convs and 49 ReLU calls
    problems: list[str] = []
    page, frame = open_tab(browser, url, problems)
    listed = frame.eval_on_selector_all(".layer-item", "els => els.map(e => e.dataset.layer)")
    assert listed == layers, listed
    for layer in (layers[0], layers[-1]):
        frame.locator("#layer-filter").fill(layer)  # the last one is inside collapsed blocks: find it by name
        frame.locator(f".layer-item[data-layer='{layer}']").click()
        expect(frame.locator("#step-label")).to_contain_text(str(STEPS[-1]))  # the latest step by default
        frame.wait_for_selector("img.mosaic")
        frame.wait_for_function("[...document.querySelectorAll('img.mosaic')].every(i => i.complete && i.naturalWidth > 0)")
        # 30 calls, thinned to the first, the latest and an even grid: the column says so.
        expect(frame.locator(".step-info").first).to_contain_text(f"of {len(STEPS)} logged steps")
    frame.locator("button.view-button[data-view='attribution']").click()  # a view that picks many: said once too
    frame.wait_for_selector(".attribution-cell")
    expect(frame.locator(".step-info").first).to_contain_text(f"showing 17 of {len(STEPS)} logged steps")
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()


def visible_layers(frame) -> list[str]:
    return frame.locator(".layer-item:visible").evaluate_all("els => els.map(e => e.dataset.layer)")


def test_a_long_layer_list_is_a_tree_of_module_blocks_that_open_and_close(browser, long_run_url):  # noqa: F811
    url, layers = long_run_url
    problems: list[str] = []
    page, frame = open_tab(browser, url, problems)
    # Top level: the layers outside any block, then one block per stage, in model order; every block closed but
    # the one holding the selected layer (the first, conv1, is outside any).
    top = frame.locator(".layer-list > li > .layer-block-toggle").evaluate_all("els => els.map(e => e.dataset.block)")
    assert top == ["layer1", "layer2", "layer3", "layer4"], top
    assert visible_layers(frame) == [layer for layer in layers if "." not in layer] == ["conv1", "relu"]
    expect(frame.locator(".layer-block-toggle[data-block='layer2']")).to_have_attribute("aria-expanded", "false")
    expect(frame.locator(".layer-block-toggle[data-block='layer2'] .block-size")).to_have_text(
        str(sum(layer.startswith("layer2.") for layer in layers)))

    frame.locator(".layer-block-toggle[data-block='layer2']").click()
    expect(frame.locator(".layer-block-toggle[data-block='layer2']")).to_have_attribute("aria-expanded", "true")
    assert frame.evaluate("document.activeElement.dataset.block") == "layer2"  # focus kept across the re-render
    bottlenecks = frame.locator(".layer-block[data-block='layer2'] > ul > li > .layer-block-toggle:visible")
    expect(bottlenecks).to_have_count(4)
    assert bottlenecks.evaluate_all("els => els.map(e => e.dataset.block)") == [f"layer2.{i}" for i in range(4)]
    assert visible_layers(frame) == ["conv1", "relu"]  # the bottlenecks are still closed

    frame.locator(".layer-block-toggle[data-block='layer2.1']").click()
    inside = [layer for layer in layers if layer.startswith("layer2.1.")]
    assert visible_layers(frame) == ["conv1", "relu", *inside]
    names = frame.locator(".layer-block[data-block='layer2.1'] .layer-item .layer-name").evaluate_all(
        "els => els.map(e => e.textContent)")
    assert names == [layer.removeprefix("layer2.1.") for layer in inside]  # named within their block
    page.keyboard.press("Enter")  # the focused toggle (layer2.1) closes from the keyboard
    expect(frame.locator(".layer-block-toggle[data-block='layer2.1']")).to_have_attribute("aria-expanded", "false")
    assert visible_layers(frame) == ["conv1", "relu"]

    # Clicking a layer selects it; closing its block hides it, and the heading still names it.
    frame.locator(".layer-block-toggle[data-block='layer2.1']").click()
    frame.locator(f".layer-item[data-layer='{inside[2]}']").click()
    expect(frame.locator(".heading-layer")).to_have_text(inside[2])
    frame.locator(".layer-block-toggle[data-block='layer2']").click()
    assert visible_layers(frame) == ["conv1", "relu"]
    # Every .layer-item is still in the list, in the order given.
    assert frame.eval_on_selector_all(".layer-item", "els => els.map(e => e.dataset.layer)") == layers
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()


def test_the_filter_box_narrows_the_tree_and_the_selected_layer_s_blocks_open(browser, long_run_url):  # noqa: F811
    url, layers = long_run_url
    problems: list[str] = []
    page, frame = open_tab(browser, url, problems)
    box = frame.locator("#layer-filter")
    expect(box).to_be_visible()
    box.fill("CONV3")  # any case
    wanted = [layer for layer in layers if "conv3" in layer]
    assert len(wanted) == 16  # one per bottleneck
    expect(frame.locator(".layer-item:visible")).to_have_count(len(wanted))
    assert visible_layers(frame) == wanted
    assert frame.locator(".layer-item").count() == len(wanted)  # the others are not listed at all
    expect(frame.locator(".layer-filter-count")).to_have_text(f"{len(wanted)} of {len(layers)} match")

    box.fill("relu#3")
    wanted = [layer for layer in layers if "relu#3" in layer]
    expect(frame.locator(".layer-item:visible")).to_have_count(len(wanted))
    assert visible_layers(frame) == wanted
    box.fill("no such layer")
    expect(frame.locator(".layer-item")).to_have_count(0)
    expect(frame.locator(".layer-filter-count")).to_have_text("Nothing matches “no such layer”")

    box.fill("layer3.4.conv2")
    frame.locator(".layer-item[data-layer='layer3.4.conv2']").click()
    expect(frame.locator(".heading-layer")).to_have_text("layer3.4.conv2")
    box.fill("")  # the whole tree again: the selected layer's blocks open, the others closed
    expect(frame.locator(".layer-item:visible")).to_have_count(2 + sum(layer.startswith("layer3.4.") for layer in layers))
    expect(frame.locator(".layer-item.selected")).to_be_visible()
    for block, expanded in [("layer3", "true"), ("layer3.4", "true"), ("layer3.3", "false"), ("layer2", "false")]:
        expect(frame.locator(f".layer-block-toggle[data-block='{block}']")).to_have_attribute("aria-expanded", expanded)
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()


def test_a_block_rolls_up_the_dead_badges_of_its_layers(browser, long_run_url):  # noqa: F811
    url, layers = long_run_url
    summary = json.loads(fetch(url, "dead_summary", {"run": "resnet50"}))["layers"]
    flagged = [layer for layer, info in summary.items() if info["dead"]]
    assert 0 in summary[DEAD_LAYER]["dead"], summary[DEAD_LAYER]
    problems: list[str] = []
    page, frame = open_tab(browser, url, problems)
    badge = frame.locator(".layer-block-toggle[data-block='layer2'] .dead-badge.block-badge")
    in_layer2 = [layer for layer in flagged if layer.startswith("layer2.")]
    expect(badge).to_have_text(f"{len(in_layer2)} layer{'s' if len(in_layer2) > 1 else ''} dead")
    expect(badge).to_have_attribute("title", re.compile(re.escape(DEAD_LAYER)))
    for block in ["layer1", "layer2", "layer3", "layer4", "layer2.1"]:
        count = sum(layer.startswith(block + ".") for layer in flagged)
        block_badge = frame.locator(f".layer-block-toggle[data-block='{block}'] .dead-badge.block-badge")
        if count:
            expect(block_badge).to_have_attribute("data-layers", str(count))
        else:
            expect(block_badge).to_have_count(0)
    # The alert's Show opens the Dead filters view on the first dead layer: its blocks open to show it.
    frame.locator(".alert-show").click()
    first = next(layer for layer in layers if layer in flagged)
    expect(frame.locator(".layer-item.selected")).to_have_attribute("data-layer", first)
    expect(frame.locator(".layer-item.selected")).to_be_visible()
    expect(frame.locator(".layer-item.selected .dead-badge")).to_have_text(f"{len(summary[first]['dead'])} dead")
    frame.wait_for_selector("canvas.dead-timeline")
    page.screenshot(path=str(DOCS / "screenshot-layer-tree.png"))  # for the README
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()
