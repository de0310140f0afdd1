"""The tab on a long run of a deep net (issue 16): resnet50's 102 conv and ReLU calls over 30 logged steps, in
real Chromium against a real `tensorboard`. Only what is shown is asserted, never a time: the figures are in
benchmarks/long_run.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision

from helpers import replicate_steps, tensorboard_process
from playwright.sync_api import expect
from test_browser import browser, open_tab  # noqa: F401  (the module-scoped Chromium fixture)
from tb_cnnviz import CNNViz
from tb_cnnviz.methods._hooks import every_conv_and_relu

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STEPS = [500 * call for call in range(30)]


@pytest.fixture(scope="module")
def long_run_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """One call over every conv and ReLU call of resnet50 (one 64x64 probe), written at 30 steps (thinned to
17 of them, as a real run's would be)."""
    root = tmp_path_factory.mktemp("long_run")
    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=1000)
    with CNNViz(model, str(root / "one_call"), probe_images=torch.randn(1, 3, 64, 64),
                layers=list(every_conv_and_relu(model)), raise_errors=True) as viz:
        layers = viz.log_activations(0)
    replicate_steps(root / "one_call", root / "logs" / "resnet50", STEPS)
    with tensorboard_process(root / "logs", ready=b"resnet50") as url:
        yield url, layers


def test_every_layer_of_a_long_run_is_listed_and_the_latest_step_paints(browser, long_run_url):  # noqa: F811
    url, layers = long_run_url
    assert len(layers) == 102  # 53 convs and 49 ReLU calls
    problems: list[str] = []
    page, frame = open_tab(browser, url, problems)
    listed = frame.eval_on_selector_all(".layer-item", "els => els.map(e => e.dataset.layer)")
    assert listed == layers, listed
    for layer in (layers[0], layers[-1]):
        frame.locator(f".layer-item[data-layer='{layer}']").click()
        expect(frame.locator("#step-label")).to_contain_text(str(STEPS[-1]))  # the latest step by default
        frame.wait_for_selector("img.mosaic")
        frame.wait_for_function("[...document.querySelectorAll('img.mosaic')].every(i => i.complete && i.naturalWidth > 0)")
        # 30 calls, thinned to the first, the latest and an even grid: the column says so.
        expect(frame.locator(".step-info").first).to_contain_text(f"of {len(STEPS)} logged steps")
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()
