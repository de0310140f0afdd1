"""Latency of the plugin's routes under 8 browser clients at once, against TensorBoard's own images plugin.

One real `tensorboard` process serves the demo's log directory, to which this script adds the demo's four
probe images as ordinary image summaries (``SummaryWriter.add_image``) at the same steps as the CNNVIZ
activations, so TensorBoard's Images dashboard has equivalent data. Then, in each round, 8 Chromium pages
(one browser, a fresh context each: no shared cache) open the CNNVIZ tab at once and walk it (activations of
conv2, filters of conv2, dead filters of relu2), and then 8 pages open the Images dashboard at once and wait
for its pictures. Latencies come from Chromium's own network timing of each request (request start to the
last byte). Printed: p50/p90/p99 per route and per route family, and each CNNVIZ family's ratio to the images
plugin's matching family (JSON listings, pictures) measured in the same run.

    python benchmarks/concurrency.py [--rounds 3] [--clients 8] [--logdir DIR] [--full] [--load_fast auto]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import QUICK_DEMO, tensorboard_process  # noqa: E402 (the tests' real-process launcher)

from tb_cnnviz.demo import RUNS, load_digits, run_demo  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PROBES = 4
#: Which images-plugin family each CNNVIZ family is compared with.
PEERS = {"cnnviz json": "images json", "cnnviz pictures": "images pictures"}
FAMILIES = {
    "runs": "cnnviz json", "steps": "cnnviz json", "sample": "cnnviz json", "dead": "cnnviz json",
    "dead_summary": "cnnviz json", "image": "cnnviz pictures", "blob": "cnnviz pictures",
    "tags": "images json", "images": "images json", "individualImage": "images pictures",
}


def add_probe_images(logdir: Path, steps: int, log_every: int) -> int:
    """The demo's probe images (the first test image of classes 0..3) as image summaries at the logged steps."""
    images, labels = load_digits()
    test_x, test_y = images[-297:], labels[-297:]
    probes = [test_x[torch.nonzero(test_y == c)[0, 0]] * 0.5 + 0.5 for c in range(PROBES)]
    logged = sorted(set(range(0, steps, log_every)) | {steps - 1})
    for run in RUNS:
        with SummaryWriter(str(logdir / run.name), filename_suffix=".probe_images") as writer:
            for step in logged:
                for c, image in enumerate(probes):
                    writer.add_image(f"probe/{c}", image, step)
    return len(logged)


def percentiles(values: list[float]) -> tuple[float, float, float]:
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return float(p50), float(p90), float(p99)


class Recorder:
    """Per-route latencies (ms) of every finished plugin request, from Chromium's network timing."""

    def __init__(self) -> None:
        self.by_route: dict[str, list[float]] = defaultdict(list)
        self.failed: list[str] = []

    def attach(self, page) -> None:
        page.on("requestfinished", self._finished)
        page.on("requestfailed", lambda request: self.failed.append(request.url))

    async def _finished(self, request) -> None:
        path = urlparse(request.url).path
        if not path.startswith(("/data/plugin/cnnviz/", "/data/plugin/images/")):
            return
        response = await request.response()
        if response is not None and response.status >= 400:
            self.failed.append(f"{response.status} {request.url}")
        end = request.timing.get("responseEnd", -1)
        if end >= 0:
            route = path.split("/")[3] + "/" + ("static" if "/static/" in path else path.split("/")[4])
            self.by_route[route].append(end)


async def cnnviz_client(browser, url: str, recorder: Recorder) -> None:
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    recorder.attach(page)
    await page.goto(url + "/#cnnviz")
    frame = None
    while frame is None:
        frame = next((f for f in page.frames if "plugin_entry.html?name=cnnviz" in f.url), None)
        await page.wait_for_timeout(50)
    await frame.wait_for_selector(".layer-item", timeout=60_000)
    await frame.locator(".layer-item[data-layer='conv2']").click()
    await frame.wait_for_function("(n) => { const m = [...document.querySelectorAll('img.mosaic')];"
                                  " return m.length >= n && m.every(i => i.complete && i.naturalWidth > 0); }",
                                  arg=PROBES * len(RUNS), timeout=60_000)
    await frame.locator("button.view-button[data-view='filters']").click()
    await frame.locator(".layer-item[data-layer='conv2']").click()
    await frame.wait_for_function("document.querySelectorAll('.filter-tile').length >= 64", timeout=60_000)
    await frame.locator("button.view-button[data-view='dead']").click()
    await frame.locator(".layer-item[data-layer='relu2']").click()
    await frame.wait_for_function(f"document.querySelectorAll('canvas.dead-timeline').length >= {len(RUNS)}", timeout=60_000)
    await context.close()


async def images_client(browser, url: str, recorder: Recorder) -> None:
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    recorder.attach(page)
    await page.goto(url + "/#images")
    pictures = page.locator("img[src*='individualImage']")
    expected = PROBES * len(RUNS)
    while await pictures.evaluate_all("(els) => els.filter(i => i.complete && i.naturalWidth > 0).length") < expected:
        await page.wait_for_timeout(50)
    await context.close()


async def measure(url: str, clients: int, rounds: int) -> tuple[Recorder, Recorder, list[float], list[float]]:
    from playwright.async_api import async_playwright

    ours, theirs = Recorder(), Recorder()
    ours_wall, theirs_wall = [], []
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        loop = asyncio.get_running_loop()
        for _ in range(rounds):
            for client, recorder, walls in ((cnnviz_client, ours, ours_wall), (images_client, theirs, theirs_wall)):
                start = loop.time()
                await asyncio.gather(*(client(browser, url, recorder) for _ in range(clients)))
                walls.append(loop.time() - start)
        await browser.close()
    return ours, theirs, ours_wall, theirs_wall


def report(ours: Recorder, theirs: Recorder, clients: int) -> None:
    by_family: dict[str, list[float]] = defaultdict(list)
    print(f"{'route':<28}{'n':>6}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}")
    for recorder in (ours, theirs):
        for route, values in sorted(recorder.by_route.items()):
            print(f"{route:<28}{len(values):>6}" + "".join(f"{v:>10.1f}" for v in percentiles(values)))
            family = FAMILIES.get(route.split("/", 1)[1])
            if family:
                by_family[family].extend(values)
    print(f"\nper family, {clients} clients at once")
    for family, values in sorted(by_family.items()):
        print(f"{family:<28}{len(values):>6}" + "".join(f"{v:>10.1f}" for v in percentiles(values)))
    print("\nratio CNNVIZ / images plugin (p50, p90, p99)")
    for family, peer in PEERS.items():
        if by_family.get(family) and by_family.get(peer):
            ratios = [a / b for a, b in zip(percentiles(by_family[family]), percentiles(by_family[peer]))]
            print(f"{family + ' / ' + peer:<40}" + "".join(f"{r:>8.2f}" for r in ratios))
    for name, recorder in (("cnnviz", ours), ("images", theirs)):
        if recorder.failed:
            print(f"{name}: {len(recorder.failed)} failed request(s), e.g. {recorder.failed[:3]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logdir", type=Path, help="an existing demo log directory (copied; default: a new quick demo)")
    parser.add_argument("--full", action="store_true", help="the demo at its default size instead of the quick one")
    parser.add_argument("--load_fast", default="auto", choices=["auto", "true", "false"])
    args = parser.parse_args()
    config = {"steps": 1500, "log_every": 100, "dead_every": 50} if args.full else QUICK_DEMO

    with tempfile.TemporaryDirectory() as scratch:
        logdir = Path(scratch) / "logdir"
        if args.logdir:
            shutil.copytree(args.logdir, logdir)
        else:
            run_demo(logdir, **config)
        logged = add_probe_images(logdir, config["steps"], config["log_every"])
        print(f"logdir: {len(RUNS)} runs, {logged} logged steps, {PROBES} probe images per step as image summaries too")
        with tensorboard_process(logdir, ready=RUNS[-1].name.encode(), extra_flags=(f"--load_fast={args.load_fast}",)) as url:
            ours, theirs, ours_wall, theirs_wall = asyncio.run(measure(url, args.clients, args.rounds))
    print(f"{args.clients} clients x {args.rounds} rounds; whole-tab load, median over rounds: "
          f"CNNVIZ walk {statistics.median(ours_wall):.2f} s, Images dashboard {statistics.median(theirs_wall):.2f} s\n")
    report(ours, theirs, args.clients)


if __name__ == "__main__":
    main()
