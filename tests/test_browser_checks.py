"""The map checks in the tab, in real Chromium against a real `tensorboard` over a short shapes run: a badge
per map whose verdicts are the logged ones, the curves on hover, the trend per method, the methods ranked with
each metric's pitfall on hover, the stability curve; refreshes docs/screenshot-checks.png and
screenshot-stability.png."""

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
    detail = column.locator(".attribution-row").first.locator(".checks-detail")  # in a strip across the row
    expect(detail).to_be_hidden()
    badge.hover()
    expect(detail).to_be_visible()
    expect(detail.locator("svg.checks-curve")).to_have_count(2)
    expect(detail.locator(".similarity-row")).to_have_count(5)  # fc and the four convs, logits first
    points = detail.locator("svg[data-curve='deletion'] polyline.curve-map").get_attribute("points").split()
    assert len(points) == 33  # 32 deletion steps and the whole image

    # The popup pushes the next row down instead of covering it, and stays inside the column.
    below = column.locator(".attribution-row").nth(1).bounding_box()
    shown, inside = detail.bounding_box(), column.bounding_box()
    assert shown["y"] + shown["height"] <= below["y"] + 0.5, (shown, below)
    assert shown["x"] >= inside["x"] - 0.5 and shown["x"] + shown["width"] <= inside["x"] + inside["width"] + 0.5
    # Signed correlations drawn signed: the number keeps its sign, a negative bar points the other way.
    meta = json.loads(fetch(checks_url, "sample", {"run": RUN_NAME, "kind": "attribution", "layer": "grad_cam",
                                                   "step": STEPS}))["meta"]
    similarity = meta["checks"]["similarity"][0]
    shown_values = detail.locator(".similarity-value").all_inner_texts()
    assert shown_values == [f"{'−' if r < 0 else '+'}{abs(r):.2f}" for r in similarity], (shown_values, similarity)
    sides = detail.locator(".similarity-bar").evaluate_all("bars => bars.map((b) => b.classList.contains('negative'))")
    assert sides == [r < 0 for r in similarity]
    # Class names where a class appears: the probe's true class and the map's class, not their numbers.
    names = json.loads(fetch(checks_url, "steps", {"run": RUN_NAME, "kind": "performance", "layer": "held_out"}))
    names = names["latest"]["meta"]["class_names"]
    first = column.locator(".attribution-row").first
    expect(first.locator(".true-label")).to_have_text(f" · true {names[meta['labels'][0]]}")
    expect(first.locator(".attribution-cell[data-method='grad_cam'] .explained-class")).to_contain_text(
        f"map of class {names[meta['targets'][0]]}")

    trend = column.locator(".checks-trend")
    expect(trend).to_be_visible()
    expect(trend.locator("polyline.trend-line[data-method='grad_cam']").first).to_be_visible()
    logged = STEPS // LOG_EVERY + 1
    assert len(trend.locator("polyline.trend-line[data-method='grad_cam']").first.get_attribute("points").split()) == logged
    page.set_viewport_size({"width": 1440, "height": 2700})  # the ranking, every probe image and the trend
    badge.hover()
    expect(detail).to_be_visible()
    page.screenshot(path=str(DOCS / "screenshot-checks.png"))
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()


def mean(values):
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def test_methods_ranked_with_pitfalls_on_hover_and_the_stability_curve(browser, checks_url):  # noqa: F811
    problems: list[str] = []
    page, frame = open_tab(browser, checks_url, problems)
    frame.locator("button.view-button[data-view='attribution']").click()
    column = frame.locator(f".run-column[data-run='{RUN_NAME}']")
    methods = ["saliency", "guided_backprop", "grad_cam", "occlusion"]

    def meta_of(method: str) -> dict:
        query = {"run": RUN_NAME, "kind": "attribution", "layer": method, "step": STEPS}
        return json.loads(fetch(checks_url, "sample", query))["meta"]

    metas = {method: meta_of(method) for method in methods}

    # The ranking: every checked method, each metric's mean over the probe images, ranked (1 = best).
    table = column.locator(".method-ranking table.ranking-table")
    expect(table).to_be_visible()
    expect(table.locator("tbody tr")).to_have_count(4)
    metrics = {
        "deletion": (lambda c: mean(c["deletion"]["auc"]), "lower"),
        "insertion": (lambda c: mean(c["insertion"]["auc"]), "higher"),
        "sanity": (lambda c: mean([mean(row) for row in c["similarity"]]), "lower"),
        "pointing": (lambda c: sum(c["pointing"]) / len(c["pointing"]), "higher"),
    }
    headers = table.locator("th.metric-pitfall")
    assert headers.evaluate_all("hs => hs.map((h) => h.dataset.metric)") == list(metrics)
    for method in methods:
        row = table.locator(f"tbody tr[data-method='{method}']")
        for key, (value_of, better) in metrics.items():
            values = {m: value_of(metas[m]["checks"]) for m in methods}
            mine = values[method]
            rank = 1 + sum((v < mine) if better == "lower" else (v > mine) for v in values.values())
            cell = row.locator(f"td[data-metric='{key}']")
            expect(cell).to_have_attribute("data-rank", str(rank))
            expect(cell).to_contain_text(f"{mine:.2f}")
    # Each metric's known pitfall is one hover away: the heading's title (and the heading is focusable).
    pitfalls = {"deletion": ["baseline", "ROAD", "normalised"], "insertion": ["leak", "smooth"],
                "sanity": ["similarity measure"], "pointing": ["blurry", "peak"]}
    for key, words in pitfalls.items():
        title = table.locator(f"th[data-metric='{key}']").get_attribute("title")
        assert all(word in title for word in words), (key, title)
        assert table.locator(f"th[data-metric='{key}']").get_attribute("tabindex") == "0"
    ranked = table.locator("tbody tr").evaluate_all("rs => rs.map((r) => Number(r.lastElementChild.textContent))")
    assert ranked == sorted(ranked)  # best mean rank first

    # The stability curve: per method, one point per logged step after the first, as the logged means.
    chart = column.locator(".map-stability svg.stability-chart")
    expect(chart).to_be_visible()
    assert "stable is not right" in column.locator(".map-stability h3").get_attribute("title")
    logged_steps = list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))
    for method in methods:
        dots = chart.locator(f"circle.stability-dot[data-method='{method}']")
        assert dots.evaluate_all("ds => ds.map((d) => Number(d.dataset.step))") == logged_steps
        stability = metas[method]["stability"]
        assert stability["previous_step"] == STEPS - LOG_EVERY
        expected = mean(stability["rank_correlation"])
        last = dots.last.locator("title").text_content()
        shown = f"{'−' if expected < 0 else '+'}{abs(expected):.2f}"
        assert f"step {STEPS} vs step {STEPS - LOG_EVERY}: mean {shown}" in last, (last, stability)
    expect(column.locator(".trend-key.trend-0").first).to_be_visible()

    summary = column.locator(".attribution-summary")
    summary.scroll_into_view_if_needed()
    summary.screenshot(path=str(DOCS / "screenshot-stability.png"))
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()
