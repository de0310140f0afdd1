"""The map checks in the tab, in real Chromium against a real `tensorboard` over a short shapes run: a badge per
map whose verdicts are the logged ones, the curves on hover, the trend per method; refreshes
docs/screenshot-checks.png."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from helpers import fetch, tensorboard_process
from test_browser import DOCS, browser, open_tab  # noqa: F401 (the module-scoped Chromium fixture)

from tb_cnnviz.demo_shapes import RUN_NAME, shapes_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: a short run: enough logged steps for a trend, a net that has started to learn
STEPS, LOG_EVERY = 120, 40


@pytest.fixture(scope="module")
def checks_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logdir = tmp_path_factory.mktemp("checks_logdir")
    shapes_run(logdir, steps=STEPS, log_every=LOG_EVERY, synthesis=False)
    with tensorboard_process(logdir, ready=RUN_NAME.encode()) as url:
        yield url


def test_badges_curves_on_hover_and_the_trend(browser, checks_url):  # noqa: F811
    problems: list[str] = []
    page, frame = open_tab(browser, checks_url, problems)
    frame.locator("button.view-button[data-view='attribution']").click()
    column = frame.locator(f".run-column[data-run='{RUN_NAME}']")
    expect(column.locator(".attribution-row")).to_have_count(5)  # one probe image per class
    methods = ["saliency", "guided_backprop", "grad_cam", "occlusion"]
    for method in methods:
        meta = json.loads(fetch(checks_url, "sample", {"run": RUN_NAME, "kind": "attribution", "layer": method, "step": STEPS}))["meta"]
        checks = meta["checks"]
        badges = column.locator(f".attribution-cell[data-method='{method}'] .checks-badge")
        expect(badges).to_have_count(5)
        for index in range(5):
            badge = badges.nth(index)
            expect(badge.locator(".check-verdict").nth(0)).to_have_class(
                f"check-verdict {'check-pass' if checks['sane'][index] else 'check-fail'}")
            expect(badge.locator(".check-verdict").nth(1)).to_have_class(
                f"check-verdict {'check-pass' if checks['beats_random'][index] else 'check-fail'}")
            expect(badge.locator(".check-verdict").nth(2)).to_contain_text("on object")
            expect(badge.locator(".check-verdict").nth(2)).to_have_class(
                f"check-verdict {'check-pass' if checks['pointing'][index] else 'check-fail'}")

    badge = column.locator(".attribution-cell[data-method='grad_cam'] .checks-badge").first
    detail = badge.locator(".checks-detail")
    expect(detail).to_be_hidden()
    badge.hover()
    expect(detail).to_be_visible()
    expect(detail.locator("svg.checks-curve")).to_have_count(2)
    expect(detail.locator(".similarity-row")).to_have_count(5)  # fc and the four convs, logits first
    points = detail.locator("svg[data-curve='deletion'] polyline.curve-map").get_attribute("points").split()
    assert len(points) == 33  # 32 deletion steps and the whole image

    trend = column.locator(".checks-trend")
    expect(trend).to_be_visible()
    expect(trend.locator("polyline.trend-line[data-method='grad_cam']").first).to_be_visible()
    logged = STEPS // LOG_EVERY + 1
    assert len(trend.locator("polyline.trend-line[data-method='grad_cam']").first.get_attribute("points").split()) == logged
    page.set_viewport_size({"width": 1440, "height": 2150})  # every probe image and the trend below them
    badge.hover()
    expect(detail).to_be_visible()
    page.screenshot(path=str(DOCS / "screenshot-checks.png"))
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()
