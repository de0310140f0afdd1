"""The tab left open beside a training run, in real Chromium over a real `tensorboard`: steps and runs written
while it is open are drawn without a click (at the tab's reload period), or at once on TensorBoard's own ⟳;
the user's place (selected layer, a pinned step) is kept, a drawn column is not rebuilt, and run colours are
TensorBoard's own, as its Scalars dashboard shows them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import fetch, tensorboard_process
from test_browser import browser, open_tab  # noqa: F401 (browser is a fixture)
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from tb_cnnviz import CNNViz

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: The tab's reload period in the first test (TensorBoard's default, 30 s, would make it wait that long).
PERIOD_S = 2
#: How long TensorBoard itself takes to see new event files (its --reload_interval below) plus the period.
WITHIN_S = 12
STEP_LABEL = "document.getElementById('step-label').textContent"


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Conv2d(3, 2, 3), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())


def log_run(logdir: Path, run: str, steps: list[int]) -> None:
    """Activations and a scalar ('loss', for TensorBoard's Scalars dashboard) at each step, in a new event
    file of the run."""
    writer = SummaryWriter(str(logdir / run))
    with CNNViz(tiny_net(), writer, probe_images=torch.rand(2, 1, 10, 10), raise_errors=True) as viz:
        for step in steps:
            writer.add_scalar("loss", 1.0 / (step + 1), step)
            viz.log_activations(step)
    writer.close()


def wait_for_server(url: str, text: bytes, route: str = "runs", params: dict | None = None) -> None:
    deadline = time.monotonic() + 30
    while text not in fetch(url, route, params or {}):
        assert time.monotonic() < deadline, f"tensorboard never served {text!r}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    logdir = tmp_path_factory.mktemp("live_logdir")
    log_run(logdir, "a_first", [0])
    with tensorboard_process(logdir, ready=b"a_first", extra_flags=("--reload_interval=1",)) as url:
        yield url, logdir


def test_new_steps_and_runs_appear_without_a_click(browser, live):
    url, logdir = live
    problems: list[str] = []
    page, frame = open_tab(browser, url, problems, fragment=f"cnnviz&p.cnnviz.reload={PERIOD_S}")
    frame.locator(".layer-item[data-layer='3']").click()  # not the first layer: the user's place
    frame.wait_for_function(f"{STEP_LABEL}.startsWith('step 0') && !document.querySelector('.run-body.stale')")
    # One logged step: no slider knob left at the far left of an empty range, the label says why.
    assert frame.evaluate(f"[document.getElementById('step-slider').hidden, {STEP_LABEL}]") == [
        True, "step 0 (the only step logged)"]
    frame.evaluate("document.querySelector(\".run-column[data-run='a_first']\").dataset.before = 'yes'")

    written = time.monotonic()
    log_run(logdir, "a_first", [5])
    log_run(logdir, "b_second", [3])
    frame.wait_for_function("""() => {
        const columns = [...document.querySelectorAll('.run-column')].map((c) => c.dataset.run);
        const label = document.getElementById('step-label').textContent;
        return columns.join() === 'a_first,b_second' && label === 'step 5'
          && document.querySelectorAll(".run-column[data-run='b_second'] img.mosaic").length > 0
          && document.querySelector(".run-column[data-run='a_first'] .step-info").textContent === 'step 5';
    }""", timeout=WITHIN_S * 1000)
    assert time.monotonic() - written < WITHIN_S
    selected = frame.eval_on_selector_all(".layer-item.selected", "els => els.map((e) => e.dataset.layer)")
    assert selected == ["3"]
    column = "document.querySelector(\".run-column[data-run='a_first']\")"
    assert frame.evaluate(f"{column}.dataset.before") == "yes"  # the column was redrawn in place

    # A step pinned by the user stays pinned when more steps come.
    frame.locator("#step-slider").press("ArrowLeft")
    frame.wait_for_function(f"{STEP_LABEL} === 'step 3'")
    log_run(logdir, "a_first", [9])
    wait_for_server(url, b'"step": 9', "steps", {"run": "a_first", "kind": "activations", "layer": "3"})
    time.sleep(PERIOD_S + 1.5)
    assert frame.evaluate(STEP_LABEL) == "step 3"
    assert frame.evaluate("Number(document.getElementById('step-slider').max)") == 9
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()


def test_tensorboards_reload_button_shows_new_runs_at_once(browser, live):
    url, logdir = live
    problems: list[str] = []
    page, frame = open_tab(browser, url, problems, fragment="cnnviz&p.cnnviz.reload=3600")  # no timer: only ⟳
    log_run(logdir, "c_third", [1])
    wait_for_server(url, b"c_third")
    time.sleep(1)
    assert frame.locator(".run-column[data-run='c_third']").count() == 0
    page.locator("button.reload-button").click()  # TensorBoard's own ⟳, in its page around the tab
    frame.wait_for_selector(".run-column[data-run='c_third'] img.mosaic", timeout=5000)

    # The colours are TensorBoard's: those of its Scalars dashboard's run selector, for the same runs.
    ours = frame.eval_on_selector_all(".run-row", """rows => rows.map((row) =>
        [row.querySelector('.run-label').textContent,
         getComputedStyle(row.querySelector('.run-swatch')).backgroundColor])""")
    in_columns = frame.eval_on_selector_all(".run-column", """cols => cols.map((col) =>
        [col.dataset.run, getComputedStyle(col.querySelector('.run-swatch')).backgroundColor])""")
    page.goto(f"{url}/#scalars")
    page.wait_for_selector(".name-row paper-icon-button.isolator")
    page.wait_for_function("document.querySelectorAll('tf-scalar-dashboard').length > 0")
    theirs = page.locator(".name-row").evaluate_all("""rows => rows.map((row) =>
        [row.querySelector('.item-label-container span').textContent.trim(),
         getComputedStyle(row.querySelector('paper-icon-button.isolator')).color])""")
    assert len(ours) == 3 and sorted(ours) == sorted(theirs), (ours, theirs)
    assert sorted(in_columns) == sorted(ours)
    assert len({color for _, color in ours}) == 3
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()
