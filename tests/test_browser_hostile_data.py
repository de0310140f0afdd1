"""The tab in real Chromium over hostile and damaged event files: names carrying markup and script are shown as
text and never run, and a run whose event file was cut mid-record still paints what it holds."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from playwright.sync_api import expect
from torch import nn

from helpers import tensorboard_process
from tb_cnnviz import CNNViz
from test_browser import browser, open_tab  # noqa: F401 (browser is a fixture)
from test_event_file_faults import records

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: Each payload sets window.__pwned if it is ever parsed as markup or run as script.
RUNS = ["<img src=x onerror=window.__pwned=1>", "'><svg onload=window.__pwned=2>"]
LAYERS = ["<script>window['__pwned']=3</script>", '"><svg onload=window[`__pwned`]=4>']  # no dots in module names
CLASS_NAME = "<img src=y onerror=window.__pwned=5>"
DATA_SET = "<svg onload=window.__pwned=6>"
ATTRIBUTE = "<img src=z onerror=window.__pwned=7>"
TRUNCATED = "truncated"


def hostile_net() -> nn.Module:
    """A classifier whose layers are named with markup (module names may hold anything but a dot)."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict([
        (LAYERS[0], nn.Conv2d(1, 3, 3)), (LAYERS[1], nn.ReLU()), ("pool", nn.AdaptiveAvgPool2d(1)),
        ("flat", nn.Flatten()),
    ]))


@pytest.fixture(scope="module")
def hostile_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logdir = tmp_path_factory.mktemp("hostile_logdir")
    images, labels = torch.rand(8, 1, 8, 8), torch.arange(8) % 3
    with CNNViz(hostile_net(), str(logdir / RUNS[0]), probe_images=images[:2], raise_errors=True) as viz:
        viz.log_activations(0)
        viz.log_filters(0)
        viz.log_performance([(images, labels)], 0, class_names=[CLASS_NAME, "fine", "also fine"], name=DATA_SET,
                            attributes={ATTRIBUTE: [float(i) for i in range(8)]})
    with CNNViz(hostile_net(), str(logdir / RUNS[1]), raise_errors=True) as viz:
        viz.log_filters(0)
    with CNNViz(hostile_net(), str(logdir / TRUNCATED), raise_errors=True) as viz:
        viz.log_filters(0)
        viz.log_filters(10)
    (path,) = (logdir / TRUNCATED).glob("events.out.tfevents.*")
    data = path.read_bytes()
    last = records(data)[-1]
    path.write_bytes(data[: last.data_start + 30])  # step 10's record cut short, as by a crash mid-write
    with tensorboard_process(logdir, ready=TRUNCATED.encode()) as url:
        yield url


def assert_nothing_ran(page, frame) -> None:
    assert page.evaluate("window.__pwned") is None and frame.evaluate("window.__pwned") is None
    assert frame.locator("[onerror], [onload], img[src='x'], img[src='y'], img[src='z']").count() == 0


def test_markup_in_runs_layers_classes_and_attributes_is_text_and_a_cut_file_still_paints(browser, hostile_url):  # noqa: F811
    problems: list[str] = []
    page, frame = open_tab(browser, hostile_url, problems)
    toggles = frame.locator("input.run-toggle").evaluate_all("els => els.map(e => e.dataset.run)")
    assert set(RUNS) <= set(toggles)  # the run list holds the names as data...
    for run in RUNS:  # ...and as text; every run is shown by default, its name in the column head as text
        expect(frame.locator(".run-label", has_text=run)).to_have_count(1)
        expect(frame.locator(".run-column .run-name", has_text=run)).to_have_count(1)
    layers = frame.locator(".layer-item").evaluate_all("els => els.map(e => e.dataset.layer)")
    assert layers[:2] == LAYERS
    for layer in LAYERS:
        expect(frame.locator(".layer-item", has_text=layer)).to_have_count(1)
    frame.locator(".layer-item").first.click()
    hostile_column = frame.locator(".run-column").filter(has=frame.locator(".run-name", has_text=RUNS[0]))
    expect(hostile_column.locator("img.mosaic")).to_have_count(2)
    frame.wait_for_function("[...document.querySelectorAll('img.mosaic')].every(i => i.complete && i.naturalWidth > 0)")
    assert_nothing_ran(page, frame)

    frame.locator("button.view-button[data-view='performance']").click()
    expect(frame.locator(".layer-item", has_text=DATA_SET)).to_have_count(1)
    expect(hostile_column.locator(".confusion-row-label").first).to_have_text(CLASS_NAME)
    expect(hostile_column.locator(".attribute-figure", has_text=ATTRIBUTE)).to_have_count(1)
    assert_nothing_ran(page, frame)

    # The cut file: step 0's filters, complete before the cut, still paint.
    frame.locator("button.view-button[data-view='filters']").click()
    frame.locator(".layer-item").first.click()
    expect(frame.locator(f".run-column[data-run='{TRUNCATED}'] .filter-tile")).to_have_count(3)
    assert_nothing_ran(page, frame)
    assert [p for p in problems if "page error" in p] == [], problems
    page.close()
