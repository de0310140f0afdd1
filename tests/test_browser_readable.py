"""Every label readable at 1024 px with four runs side by side, and every empty picture explained, in real
Chromium over a real `tensorboard`: the demo's two runs twice (copies of their event files) and a run that was
never watched for dead filters, whose Grad-CAM is all zero, and whose classes have names."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import tensorboard_process
from playwright.sync_api import expect
from test_browser import browser, open_tab  # noqa: F401 (browser is a fixture)
from torch import nn

from tb_cnnviz import CNNViz

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DEMO_RUNS = ["healthy_lr0.05", "too_high_lr0.9"]
RUNS = [*DEMO_RUNS, *(f"{run}_again" for run in DEMO_RUNS)]
QUIET = "unwatched"
NAMES = ["circle", "square", "triangle"]
#: The text boxes of an element, for overlap checks (SVG <text> and HTML elements alike).
BOXES = """els => els.map((e) => {
    const r = e.getBoundingClientRect();
    return [r.left, r.top, r.right, r.bottom, e.textContent];
})"""


def dead_cam_net() -> nn.Module:
    """conv -> ReLU -> conv whose bias keeps every output negative -> ReLU -> linear: the last conv's ReLU is
    dead, so no class gradient reaches that layer and Grad-CAM is all zero, for every class."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        net[2].bias.fill_(-100.0)
    return net


@pytest.fixture(scope="module")
def readable_url(demo_logdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logdir = tmp_path_factory.mktemp("readable_logdir")
    for run in DEMO_RUNS:
        shutil.copytree(demo_logdir / run, logdir / run)
        shutil.copytree(demo_logdir / run, logdir / f"{run}_again")
    images, labels = torch.rand(6, 1, 12, 12), torch.arange(6) % 3
    with CNNViz(dead_cam_net(), str(logdir / QUIET), probe_images=images[:3], probe_labels=labels[:3],
                raise_errors=True) as viz:
        viz.log_activations(0)
        viz.log_saliency(0, method="grad_cam")
        viz.log_occlusion(0, window=4, stride=2)  # the dead layer: no input changes the output
        viz.log_inversion(0, steps=2)  # the first probe image, label 0
        viz.log_class_models(0, classes=[1, 2], steps=2)  # no class_names of its own: the run's
        viz.log_performance([(images, labels)], 0, class_names=NAMES, name="held_out")
    with tensorboard_process(logdir, ready=QUIET.encode()) as url:
        yield url


def overlapping(boxes: list[list]) -> list[tuple[str, str]]:
    """The pairs of boxes (left, top, right, bottom, text) that overlap by more than half a pixel."""
    pairs = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if min(a[2], b[2]) - max(a[0], b[0]) > 0.5 and min(a[3], b[3]) - max(a[1], b[1]) > 0.5:
                pairs.append((a[4], b[4]))
    return pairs


def inside(box: list, frame: list) -> bool:
    return (box[0] >= frame[0] - 0.5 and box[2] <= frame[2] + 0.5
            and box[1] >= frame[1] - 0.5 and box[3] <= frame[3] + 0.5)


def test_four_runs_at_1024_px_keep_every_label(browser, readable_url):
    problems: list[str] = []
    page, frame = open_tab(browser, readable_url, problems)
    page.set_viewport_size({"width": 1024, "height": 768})
    frame.locator(f"input.run-toggle[data-run='{QUIET}']").uncheck()

    # The dead-filter heat maps: each scrolls or fits, and shows its latest step, in a column on screen.
    frame.locator("button.view-button[data-view='dead']").click()
    frame.locator(".layer-item[data-layer='relu2']").click()
    expect(frame.locator("canvas.dead-timeline")).to_have_count(4)
    frame.wait_for_function("!document.querySelector('.run-body.stale')"
                            " && document.getElementById('cnnviz-root').dataset.drawn === 'dead'")
    frame.wait_for_timeout(100)  # the frames scroll to their end once laid out
    frames = frame.locator(".timeline-frame").evaluate_all("""els => els.map((f) => {
        const column = f.closest('.run-column').getBoundingClientRect();
        const box = f.getBoundingClientRect();
        return {run: f.closest('.run-column').dataset.run,
                end: f.scrollLeft + f.clientWidth >= f.scrollWidth - 1,
                inColumn: box.right <= column.right + 0.5, onScreen: column.right <= window.innerWidth + 0.5};
    })""")
    assert [item["run"] for item in frames] == sorted(RUNS)
    assert all(item["end"] and item["inColumn"] and item["onScreen"] for item in frames), frames

    # Where it fails: the attribute charts and the reliability diagram keep every tick value, none
    # overlapping, none cut by its chart.
    frame.locator("button.view-button[data-view='performance']").click()
    expect(frame.locator("svg.reliability-chart")).to_have_count(4)
    charts = frame.locator("svg.attribute-chart, svg.reliability-chart")
    assert charts.count() > 4
    for index in range(charts.count()):
        chart = charts.nth(index)
        chart.scroll_into_view_if_needed()
        box = chart.evaluate("c => { const r = c.getBoundingClientRect(); "
                             "return [r.left, r.top, r.right, r.bottom]; }")
        texts = chart.locator("text").evaluate_all(BOXES)
        assert not overlapping(texts), overlapping(texts)
        assert all(inside(text, box) for text in texts), [t for t in texts if not inside(t, box)]
        if "attribute-chart" in chart.get_attribute("class"):
            assert chart.locator("text.bin-value").count() >= 1  # the bins' values, not only their counts
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()


def test_empty_pictures_say_why(browser, readable_url):
    problems: list[str] = []
    page, frame = open_tab(browser, readable_url, problems)
    for run in RUNS:
        frame.locator(f"input.run-toggle[data-run='{run}']").uncheck()
    column = frame.locator(f".run-column[data-run='{QUIET}']")

    # Class names where the run has them (its log_performance class_names).
    frame.locator("button.view-button[data-view='activations']").click()
    expect(column.locator(".probe-label").first).to_have_text(" · label circle")

    # Views the run never logged: greyed, and their button names the call that logs them.
    embedding = frame.locator("button.view-button[data-view='embedding']")
    expect(embedding).to_have_class("view-button not-logged")
    expect(embedding).to_have_attribute("title", "The selected run never logged embeddings: "
                                        "viz.log_embedding(data, layer, step) does.")
    expect(frame.locator("button.view-button[data-view='activations']")).not_to_have_class("not-logged")

    # Never watched for dead filters: said as such, not as "none found".
    frame.locator("button.view-button[data-view='dead']").click()
    expect(frame.locator(".run-columns")).to_contain_text("never watched for dead filters")
    expect(frame.locator(".run-columns")).to_contain_text("viz.watch_dead_filters(every=100)")

    # An all-zero Grad-CAM gets a note, not a blank picture.
    frame.locator("button.view-button[data-view='attribution']").click()
    notes = column.locator(".attribution-cell[data-method='grad_cam'] .flat-map")
    expect(notes).to_have_count(3)
    expect(notes.first).to_contain_text("all-zero map")
    occlusion = column.locator(".attribution-cell[data-method='occlusion'] .flat-map")
    expect(occlusion).to_have_count(3)
    expect(occlusion.first).to_contain_text("constant map: occluding any part leaves the probability at")
    expect(column.locator(".explained-class").first).to_contain_text("map of class ")
    caption = column.locator(".explained-class").first.inner_text()
    assert caption.split("map of class ")[1].split(" (")[0] in NAMES, caption

    # The run's class names in the views that logged none of their own.
    frame.locator("button.view-button[data-view='inversion']").click()
    expect(column.locator(".synth-view figcaption").first).to_contain_text("label circle")
    frame.locator("button.view-button[data-view='class_models']").click()
    expect(column.locator(".synth-grid figcaption").first).to_contain_text("square")
    expect(column.locator(".synth-grid figcaption").nth(1)).to_contain_text("triangle")
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()
