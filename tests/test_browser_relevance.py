"""Top patches ranked both ways in the tab, in real Chromium over a real `tensorboard`: a ShapesNet trained as
the demo's shapes run trains it (shorter), its relu3 logged by activation and by relevance as that run logs
it. Each channel shows what it fires on beside what it matters for, named by class; a click on either opens
that ranking; the relevance ranking alone says what it is. Refreshes docs/screenshot-top-relevance.png.

Run from a worktree with PYTHONPATH=<worktree>: the `tensorboard` process imports the installed tb_cnnviz."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import torch
from playwright.sync_api import expect

from helpers import fetch, tensorboard_process
from test_browser import DOCS, browser, open_tab  # noqa: F401 (the module-scoped Chromium fixture)

from tb_cnnviz import CNNViz
from tb_cnnviz.datasets import CLASSES, shapes
from tb_cnnviz.demo_shapes import RUN_NAME, TOP_CHANNELS, TOP_LAYER, ShapesNet, normalise, to_pixels, train

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STEPS = 150


@pytest.fixture(scope="module")
def relevance_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logdir = tmp_path_factory.mktemp("relevance_logdir")
    torch.manual_seed(0)
    train_data, test_data = shapes(1000, size=48, seed=0), shapes(300, size=48, seed=1)
    model = ShapesNet()
    train(model, normalise(train_data.images), train_data.labels, STEPS)
    test_x = normalise(test_data.images)
    batches = [(test_x[i : i + 100], test_data.labels[i : i + 100]) for i in range(0, len(test_x), 100)]
    with CNNViz(model, logdir / RUN_NAME, raise_errors=True) as viz:  # as demo_shapes.shapes_run logs them
        for rank in ("activation", "relevance"):
            names = list(CLASSES) if rank == "relevance" else None
            viz.log_top_activations(batches, TOP_LAYER, STEPS, k=6, to_pixels=to_pixels,
                                    channels=TOP_CHANNELS, rank=rank, class_names=names)
    with tensorboard_process(logdir, ready=RUN_NAME.encode()) as url:
        yield url


def sample(url: str, layer: str) -> dict:
    return json.loads(fetch(url, "sample", {"run": RUN_NAME, "kind": "top_activations", "layer": layer,
                                            "step": STEPS}))["meta"]


def test_each_channel_shows_what_it_fires_on_beside_what_it_matters_for(browser, relevance_url):  # noqa: F811
    problems: list[str] = []
    view = "button.view-button[data-view='top_activations']"
    page, frame = open_tab(browser, relevance_url, problems, ready=view)
    frame.locator(view).click()
    layers = frame.locator(".layer-item").evaluate_all("els => els.map(e => e.dataset.layer)")
    assert layers == [TOP_LAYER, f"{TOP_LAYER} (relevance)"], layers
    fires, matters = sample(relevance_url, TOP_LAYER), sample(relevance_url, f"{TOP_LAYER} (relevance)")
    assert fires["rank"] == "activation" and matters["rank"] == "relevance" and matters["target"] == "label"
    column = frame.locator(f".run-column[data-run='{RUN_NAME}']")
    expect(column.locator(".top-view[data-paired='true']")).to_have_count(1)
    expect(column.locator(".top-relevance-note")).to_contain_text("matters most for the class")
    expect(column.locator(".top-unit")).to_have_count(len(TOP_CHANNELS))
    for unit in matters["units"]:
        row = column.locator(f".top-unit[data-unit='{unit['unit']}']")
        activation = row.locator(".top-ranking[data-rank='activation']")
        relevance = row.locator(".top-ranking[data-rank='relevance']")
        expect(activation.locator(".top-rank-label")).to_have_text("fires on")
        named = f"matters for {CLASSES[unit['top_class']]}" if unit["images"] else "matters for no image"
        expect(relevance.locator(".top-rank-label")).to_have_text(named)
        expect(relevance.locator(".top-patch[data-drawn='true']")).to_have_count(len(unit["images"]))
        fired = next(u for u in fires["units"] if u["unit"] == unit["unit"])
        expect(activation.locator(".top-patch[data-drawn='true']")).to_have_count(len(fired["images"]))
    differ = [u["unit"] for u in matters["units"]
              if u["images"] != next(f for f in fires["units"] if f["unit"] == u["unit"])["images"]]
    assert differ, "the two rankings should not be the same images on a trained net"
    page.screenshot(path=str(DOCS / "screenshot-top-relevance.png"))

    unit = next(u for u in matters["units"] if u["images"])
    row = column.locator(f".top-unit[data-unit='{unit['unit']}']")
    row.locator(".top-ranking[data-rank='relevance'] .top-patch").first.click()
    detail = column.locator(".top-detail")
    expect(detail).to_contain_text("images where it matters most for the class")
    expect(detail.locator("figure")).to_have_count(len(unit["images"]))
    expect(detail.locator("figure").first).to_contain_text(
        f"image {unit['images'][0]}, relevance")
    expect(detail.locator("figure").first).to_contain_text(f"for {CLASSES[unit['classes'][0]]}")
    expect(detail.locator("canvas.top-whole[data-box='true']")).to_have_count(len(unit["images"]))
    row.locator(".top-ranking[data-rank='activation'] .top-patch").first.click()
    expect(detail).to_contain_text("strongest images")

    frame.locator(f".layer-item[data-layer='{TOP_LAYER} (relevance)']").click()
    expect(column.locator(".top-view[data-rank='relevance'][data-paired='false']")).to_have_count(1)
    expect(column.locator(".top-relevance-note")).to_contain_text("Ranked by relevance, not activation")
    expect(column.locator(".top-ranking[data-rank='activation']")).to_have_count(0)
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == [], problems
    page.close()
