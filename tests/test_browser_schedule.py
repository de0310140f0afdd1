"""The Schedule view in real Chromium over a real `tensorboard`: a short autolog run's calls drawn as one row
each with a dot at every step ``report()`` says it ran, the seconds in the table as measured, the view that
never fit listed with its estimate; and the README's screenshot of it."""

from __future__ import annotations

import pytest
import torch

from helpers import tensorboard_process
from test_autolog import make_net, step_until
from test_browser import DOCS, browser, open_tab  # noqa: F401 (a fixture)

from tb_cnnviz import CNNViz

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VIEWS = ["activations", "filters", "grad_cam", "guided_backprop", "class_models"]


def autolog_run(logdir):
    net = make_net()
    viz = CNNViz(net, logdir, probe_images=torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1)),
                 probe_labels=[0, 1, 2])
    auto = viz.autolog(budget=0.3, views=VIEWS, min_every=1)
    return step_until(net, viz, auto, "grad_cam", calls=2, at_least_steps=40, step_seconds=0.03)

def test_each_call_s_steps_and_seconds_are_drawn_as_autolog_reports_them(browser, tmp_path):  # noqa: F811
    report = autolog_run(tmp_path / "autolog_run")
    ran = {name: view for name, view in report["views"].items() if view["steps"]}
    assert "class_models" not in ran and len(ran) >= 2
    with tensorboard_process(tmp_path, ready=b"autolog_run") as url:
        problems: list[str] = []
        page, frame = open_tab(browser, url, problems, ready="button.view-button[data-view='schedule']")
        frame.locator("button.view-button[data-view='schedule']").click()
        frame.wait_for_selector("svg.schedule-chart")
        for name, view in ran.items():
            dots = frame.eval_on_selector_all(f"circle.schedule-dot[data-view='{name}']",
                                              "els => els.map(e => Number(e.dataset.step))")
            assert dots == view["steps"], name
            cells = frame.locator(f".schedule-table tr[data-view='{name}'] td").all_inner_texts()
            assert cells[1] == str(len(view["steps"])) and cells[4] == str(view["steps"][-1])
            assert float(cells[3]) == pytest.approx(sum(view["seconds"]), rel=0.01)
        never = frame.locator(".schedule-table tr[data-view='class_models']").inner_text()
        assert "never fit" in never
        share = frame.locator(".schedule-share").inner_text()
        assert "Budget 30.0%" in share
        page.screenshot(path=str(DOCS / "screenshot-schedule.png"))
        assert [p for p in problems if "cnnviz" in p or "page error" in p] == [], problems
        page.close()
