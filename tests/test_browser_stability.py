"""Map stability and the method ranking in real Chromium on awkward runs side by side: methods logged at
different steps, NaN maps, a run logged once, maps logged without checks. Each column says what it has (a
curve, or why there is none yet) and the tab raises no error. The shapes run's curve and ranking against the
logged numbers are in test_browser_checks.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from helpers import tensorboard_process
from playwright.sync_api import expect
from test_browser import browser, open_tab  # noqa: F401 (the module-scoped Chromium fixture)
from test_map_stability import Net
from torch import nn

from tb_cnnviz import CNNViz

pytestmark = [pytest.mark.browser, pytest.mark.slow]




def nudge(model: nn.Module) -> None:
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.3)


@pytest.fixture(scope="module")
def awkward_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logdir = tmp_path_factory.mktemp("stability_logdir")
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    model = Net(classes=3)
    with CNNViz(model, logdir / "mixed", probe_images=x, probe_labels=[0, 1], raise_errors=True) as viz:
        for step in (0, 10, 20):
            viz.log_saliency(step, method="saliency")
            if step:  # first logged later: one point, at step 20
                viz.log_saliency(step, method="grad_cam", checks=True)
            nudge(model)
    model = Net(classes=3)
    with CNNViz(model, logdir / "nan_maps", probe_images=x, probe_labels=[0, 1], raise_errors=True) as viz:
        with torch.no_grad():
            model.conv1.weight[0, 0, 0, 0] = float("nan")
        for step in (0, 10):
            viz.log_saliency(step, method="saliency")
    with CNNViz(Net(classes=3), logdir / "once", probe_images=x, raise_errors=True) as viz:
        viz.log_saliency(5, method="guided_backprop", checks=True)
    with tensorboard_process(logdir, ready=b"once") as url:
        yield url


def test_each_column_draws_what_it_has_and_says_why_not(browser, awkward_url):  # noqa: F811
    problems: list[str] = []
    ready = "button.view-button[data-view='attribution']"  # no activations logged: no layer list to wait for
    page, frame = open_tab(browser, awkward_url, problems, ready=ready)
    frame.locator("button.view-button[data-view='attribution']").click()
    for run in ("mixed", "nan_maps", "once"):  # every run side by side
        expect(frame.locator(f".run-column[data-run='{run}'] .attribution-row").first).to_be_visible()

    mixed = frame.locator(".run-column[data-run='mixed']")
    chart = mixed.locator(".map-stability svg.stability-chart")
    expect(chart).to_be_visible()
    saliency = chart.locator("circle.stability-dot[data-method='saliency']")
    assert saliency.evaluate_all("ds => ds.map((d) => Number(d.dataset.step))") == [10, 20]
    assert chart.locator("circle.stability-dot[data-method='grad_cam']").evaluate_all(
        "ds => ds.map((d) => Number(d.dataset.step))") == [20]
    assert "step 20 vs step 10" in saliency.last.locator("title").text_content()
    ranking = mixed.locator(".method-ranking")
    expect(ranking.locator("tbody tr")).to_have_count(1)  # grad_cam alone was checked
    expect(ranking.locator(".ranking-unchecked")).to_contain_text("Saliency")
    expect(ranking.locator("th[data-metric='pointing']")).to_have_count(0)  # no masks: no pointing game

    for run in ("nan_maps", "once"):  # NaN maps, or a single logged step: no curve yet, and a note saying so
        column = frame.locator(f".run-column[data-run='{run}']")
        expect(column.locator(".map-stability .stability-none")).to_contain_text("No stability point yet")
        expect(column.locator("svg.stability-chart")).to_have_count(0)
    reasons = {"nan_maps": "NaN in the map", "once": "no earlier map"}  # the logged reason, in the note
    for run, words in reasons.items():
        expect(frame.locator(f".run-column[data-run='{run}'] .stability-reason")).to_contain_text(words)
    expect(frame.locator(".run-column[data-run='once'] .method-ranking tbody tr")).to_have_count(1)
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()
