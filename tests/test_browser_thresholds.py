"""The tab flags a channel whose dead rate equals the threshold (issue 27), in real Chromium over a real
`tensorboard`: the log directory of test_dead_threshold.py, a run watched with threshold 0.5 whose channels 0
and 1 are off for exactly 2 of 4 inputs (channel 2 for all 4), and a run watched with threshold 1.0 whose
channel 2 is off for every input. Checked by what the page shows, not how it computes it: the Dead filters
view's list of the channels dead at the latest flush, and the layer's badge and its tooltip.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from helpers import tensorboard_process
from test_browser import browser, open_tab  # noqa: F401 (browser is a fixture)
from test_dead_threshold import CHANNELS, FLAGGED, LAYER, RUNS, write_threshold_runs

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DEAD_VIEW = "dead"  #: the view kind of the Dead filters view (its button's data-view)


@pytest.fixture(scope="module")
def thresholds_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logdir = tmp_path_factory.mktemp("thresholds_logdir")
    write_threshold_runs(logdir)
    with tensorboard_process(logdir, ready=b"always") as url:
        yield url


def listed(channels: list[int]) -> str:
    """A regular expression for a line that names ``channels`` dead and ends with their list."""
    return rf"dead\b.*\b{', '.join(map(str, channels))}\s*$"


def test_the_tab_flags_channels_whose_rate_equals_the_threshold(browser, thresholds_url):  # noqa: F811
    problems: list[str] = []
    page, frame = open_tab(browser, thresholds_url, problems, ready=f"button.view-button[data-view='{DEAD_VIEW}']")
    frame.locator(f"button.view-button[data-view='{DEAD_VIEW}']").click()
    frame.locator(f".layer-item[data-layer='{LAYER}']").click()

    # The Dead filters view: each run's column lists the channels dead at its latest (only) flush.
    for run, threshold in RUNS.items():
        latest = frame.locator(f".run-column[data-run='{run}'] .dead-latest")
        expect(latest).to_have_text(re.compile(listed(FLAGGED[threshold]), re.IGNORECASE), timeout=15_000)
        expect(latest).not_to_contain_text("No dead")

    # The layer's badge: the worst run's count, every run's in its tooltip.
    badge = frame.locator(f".layer-item[data-layer='{LAYER}'] .dead-badge")
    expect(badge).to_contain_text(f"{len(FLAGGED[0.5])} dead")
    for run, threshold in RUNS.items():
        expect(badge).to_have_attribute("title", re.compile(
            rf"{run}: {len(FLAGGED[threshold])} of {CHANNELS} channels dead"))
    # With the 0.5 run hidden, the badge is the 1.0 run's alone: its always-off channel.
    frame.locator("input.run-toggle[data-run='half']").uncheck()
    expect(badge).to_contain_text(f"{len(FLAGGED[1.0])} dead")
    expect(frame.locator(".run-column[data-run='half']")).to_have_count(0)

    assert [p for p in problems if "cnnviz" in p or "page error" in p] == [], problems
    page.close()
