"""Long runs of big models: bytes per call, TensorBoard's memory, its start-up, measured as issue 16 states them.

1. Bytes: ``log_activations`` on resnet50 (1000 classes, random weights) with default arguments, 4 probe images at
   224 (crops of scikit-learn's photographs, normalised as for ImageNet; also 4 of Gaussian noise, the worst case
   for PNG): event bytes per call (goal <= 3 MB). Each mosaic against TensorBoard's own image summary of the same
   picture (``SummaryWriter.add_image``, and a one-channel image with Pillow's PNG): goal ratio <= 1.
2. Memory: 120 calls over every conv and every ReLU call of resnet50, with every other view of the tab logged
   beside them (the summaries of one call written at 120 steps: the same bytes as 120 calls, without 120
   forwards) served by the stock ``tensorboard`` (Rust data server): resident memory of TensorBoard and the
   data server together once the latest step is served (goal <= 1 GB, not growing with the run: also measured
   at half the calls), with the plugin's default flags (the run thinned to 17 steps a view) and with
   ``--samples_per_plugin=cnnviz=0`` (every step held, as before thinning); and each view's first paint in a
   fresh Chromium there (goal <= 2 s): the tab opened on activations from the page's navigation start, every
   other view from the click on its button, until its pictures are drawn.
3. Start-up: seconds until TensorBoard answers its first request, with and without the plugin (goal <= 0.3 s
   more), and whether the TensorBoard process imported torch.

    python benchmarks/long_run.py [--calls 120] [--skip-memory]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

import torch
import torchvision
from PIL import Image

from performance_views import crops  # the same photographs as the other benchmarks
from storage import mosaics_and_bytes, write_image_summaries  # the images plugin's bytes for the same mosaics
from helpers import free_port, replicate_steps  # noqa: I001  (tests/helpers.py, put on the path by storage)
from tb_cnnviz import CNNViz
from tb_cnnviz.methods._hooks import every_conv_and_relu
from tb_cnnviz.views.dead import DeadFilterWarning

ROOT = Path(__file__).resolve().parent.parent
IMAGENET_MEAN, IMAGENET_STD = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])


def probe_photos() -> torch.Tensor:
    images = next(crops(4, 224, 4))[0]
    return (images - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]


def event_bytes(run_dir: Path) -> int:
    return sum(path.stat().st_size for path in run_dir.glob("events.out.tfevents.*"))


def one_call(run_dir: Path, probes: torch.Tensor, layers: list[str] | None = None) -> tuple[int, int, float]:
    """(event bytes, layers written, seconds) of one ``log_activations`` call on a fresh resnet50."""
    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=1000)
    with CNNViz(model, str(run_dir), probe_images=probes, layers=layers, raise_errors=True) as viz:
        before = event_bytes(run_dir)
        start = time.perf_counter()
        written = viz.log_activations(0)
        seconds = time.perf_counter() - start
    return event_bytes(run_dir) - before, len(written), seconds


def smallest_png(png: bytes) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).save(buffer, format="PNG", optimize=True, compress_level=9)
    return buffer.getvalue()


def bytes_per_call(workdir: Path) -> None:
    print("1. bytes: log_activations on resnet50 (1000 classes), 4 probe images at 224, default arguments")
    for name, probes in (("photographs", probe_photos()), ("Gaussian noise", torch.randn(4, 3, 224, 224))):
        run = workdir / f"bytes_{name.split()[0]}"
        size, layers, seconds = one_call(run, probes)
        print(f"   probes: {name:15s} {layers:3d} layers  {size / 1e6:6.2f} MB a call (goal <= 3)  {seconds:5.1f} s")
    mosaics, ours, meta = mosaics_and_bytes(workdir / "bytes_photographs")
    rgb = write_image_summaries(workdir / "images_rgb", mosaics, grey=False)
    grey = write_image_summaries(workdir / "images_grey", mosaics, grey=True)
    pngs = sum(len(png) for _, _, png in mosaics)
    smallest = sum(len(smallest_png(png)) for _, _, png in mosaics)
    print(f"   PNG bytes {pngs / 1e6:.2f} MB; the same pictures at zlib's best effort (Pillow optimize=True, level 9): "
          f"{smallest / 1e6:.2f} MB -> ratio {pngs / smallest:.3f}")
    print(f"   the same {len(mosaics)} mosaics as TensorBoard image summaries: CNNVIZ {ours / 1e6:.2f} MB (JSON {meta / 1e6:.2f}), "
          f"add_image (RGB) {rgb / 1e6:.2f} MB -> ratio {ours / rgb:.3f}; one grey channel {grey / 1e6:.2f} MB -> "
          f"ratio {ours / grey:.3f}  (goal <= 1)")


def other_views(run_dir: Path, probes: torch.Tensor) -> dict[str, float]:
    """Every other view of the tab, logged once on resnet50 (1000 classes) as a long run would, beside the
    activations: filters, a dead-filter flush, two attribution methods, accuracy on 64 images of 1000 classes,
    the top patches and the embedding of one layer, and the image-synthesis views and a correspondence with
    few optimisation steps (what the tab draws costs the same whatever the steps). Returns seconds per view."""
    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=1000)
    labels = torch.Generator().manual_seed(1)

    def data(count: int):  # photographs, labelled over the 1000 classes
        for images, _ in crops(count, 224, 16, seed=2):
            normalised = (images - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]
            yield normalised, torch.randint(0, 1000, (len(images),), generator=labels)

    def pixels(images: torch.Tensor) -> torch.Tensor:
        return (images * IMAGENET_STD[:, None, None] + IMAGENET_MEAN[:, None, None]).clamp(0, 1)

    seconds = {}
    with CNNViz(model, str(run_dir), probe_images=probes, probe_labels=[1, 2, 3, 4], raise_errors=True) as viz:
        calls = {
            "filters": lambda: viz.log_filters(0),
            "dead": lambda: (viz.watch_dead_filters(every=1000), model.eval(),
                             [model(images) for images, _ in data(16)], viz.flush_dead_filters(0)),
            "attribution": lambda: (viz.log_saliency(0, method="grad_cam"), viz.log_saliency(0, method="saliency")),
            "performance": lambda: viz.log_performance(data(64), 0, to_pixels=pixels),
            "top_activations": lambda: viz.log_top_activations(data(32), "layer3", 0, to_pixels=pixels),
            "embedding": lambda: viz.log_embedding(data(200), "avgpool", 0, n=200, to_pixels=pixels, projector=False),
            "inversion": lambda: viz.log_inversion(0, steps=3),
            "class_models": lambda: viz.log_class_models(0, classes=[1, 2, 3], steps=3),
            "channel_images": lambda: viz.log_channel_images(0, "layer3", channels=[0, 1, 2, 3], steps=3),
            "correspondence": lambda: viz.log_correspondence(0, probes[0], probes[1], "layer3", k=64),
        }
        for kind, call in calls.items():
            start = time.perf_counter()
            with torch.no_grad() if kind == "dead" else contextlib.nullcontext(), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeadFilterWarning)  # a random resnet50 has many: not news here
                call()
            seconds[kind] = time.perf_counter() - start
    return seconds


def long_run_logdir(workdir: Path, calls: int) -> Path:
    """``calls`` calls over every conv and every ReLU call of resnet50, logged every 500 steps, with every other
    view logged at the same steps: one call's summaries written at ``calls`` steps (TensorBoard holds bytes,
    whatever they show)."""
    logdir = workdir / "long_run"
    if not (workdir / "one_call").exists():
        model = torchvision.models.resnet50(num_classes=1000)
        one_call(workdir / "one_call", probe_photos(), layers=list(every_conv_and_relu(model)))
        other_views(workdir / "one_call", probe_photos())
    replicate_steps(workdir / "one_call", logdir / "resnet50", [call * 500 for call in range(calls)])
    return logdir


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (TensorBoard and its data server)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        stack += children.get(current, [])
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as reply:
            return reply.status, reply.read()
    except OSError:
        return 0, b""


LAUNCH = {  # how each TensorBoard is started: stock, and stock with entry-point plugins hidden
    "with the plugin": "from tensorboard.main import run_main; run_main()",
    "without the plugin": "import tensorboard.default as d; d.get_dynamic_plugins = lambda: []; "
                          "from tensorboard.main import run_main; run_main()",
}


def start_tensorboard(logdir: Path, port: int, launch: str, flags: tuple[str, ...] = ()) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH[launch], f"--logdir={logdir}", f"--port={port}", "--host=127.0.0.1",
         "--load_fast=true", *flags], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def memory(logdir: Path, calls: int, flag_sets: tuple[tuple[str, ...], ...]) -> None:
    print(f"2. memory: {calls} calls over every conv and ReLU call of resnet50, "
          f"{sum(p.stat().st_size for p in logdir.rglob('events*')) / 1e9:.2f} GB on disk, stock tensorboard "
          "(Rust data server)")
    latest = (calls - 1) * 500
    for flags in flag_sets:
        port = free_port()
        process = start_tensorboard(logdir, port, "with the plugin", flags)
        try:
            query = "/data/plugin/cnnviz/steps?run=resnet50&kind=activations&layer=layer4.2.relu%233"
            deadline, reply, previous, rss = time.monotonic() + 900, {}, -1, 0
            while time.monotonic() < deadline:
                status, body = get(port, query, timeout=60)
                reply = json.loads(body) if status == 200 else {}
                rss = tree_rss(process.pid)
                if reply.get("steps") and reply["steps"][-1]["step"] == latest and rss == previous:
                    break  # the last step is in and the memory has settled
                previous = rss
                time.sleep(5)
            status, _ = get(port, query.replace("/steps", "/sample") + f"&step={latest}", timeout=60)
            print(f"   {' '.join(flags) or 'default flags':32s} resident {rss / 1e9:5.2f} GB (goal <= 1)  "
                  f"{len(reply.get('steps', []))} of {reply.get('written')} steps held, latest step served: {status == 200}")
            opened, views = first_paints(port)
            print(f"   {'':32s} first paint in a fresh Chromium (goal <= 2 s each): the tab opened on activations "
                  f"{', '.join(f'{total:.2f}' for total, _ in opened)} s (of which TensorBoard's page until it made our "
                  f"iframe {', '.join(f'{page:.2f}' for _, page in opened)}); each other view from its click:")
            print(f"   {'':32s}   " + ", ".join(f"{view} {seconds:.2f}" for view, seconds in views.items()))
        finally:
            stop(process)


def first_paints(port: int, openings: int = 5) -> tuple[list[tuple[float, float]], dict[str, float]]:
    """Each view's first paint in a fresh Chromium (an empty cache), in seconds: the tab opened on its first
    view (activations), ``openings`` times, from the page's navigation start (TensorBoard's own page included)
    until its pictures are drawn, each with the part before TensorBoard's page made our iframe; then every
    other view with data, from the click on its button until the same. Timed inside the page (the frame after
    the last picture), so the browser's own start is not counted."""
    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM_ARGS, chromium_path

    runs = json.loads(get(port, "/data/plugin/cnnviz/runs")[1])["runs"]
    opened, views = [], {}
    with sync_playwright() as playwright:
        for opening in range(openings):
            browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                page.goto(f"http://127.0.0.1:{port}/#cnnviz", wait_until="commit")
                deadline = time.monotonic() + 60
                while (frame := next((f for f in page.frames if "plugin_entry.html?name=cnnviz" in f.url), None)) is None:
                    assert time.monotonic() < deadline, "the CNNVIZ iframe never loaded"
                    page.wait_for_timeout(10)
                painted = drawn_at(frame, "activations")
                top_origin = page.evaluate("performance.timeOrigin")
                tab_origin = frame.evaluate("performance.timeOrigin")  # when TensorBoard's page made our iframe
                opened.append(((tab_origin + painted - top_origin) / 1000, (tab_origin - top_origin) / 1000))
                if opening:
                    continue
                for view in frame.eval_on_selector_all("button.view-button", "els => els.map(e => e.dataset.view)"):
                    if view == "activations" or not any(entry.get(view) for entry in runs):
                        continue
                    start = frame.evaluate("view => { const t = performance.now(); document.querySelector("
                                           "`button.view-button[data-view='${view}']`).click(); return t; }", view)
                    views[view] = (drawn_at(frame, view) - start) / 1000
            finally:
                browser.close()
    return opened, views


def drawn_at(frame, view: str) -> float:
    """The frame's ``performance.now()`` when ``view`` was drawn (checked every animation frame)."""
    from test_browser import VIEW_DRAWN

    return frame.wait_for_function(VIEW_DRAWN, arg=view, timeout=60_000, polling="raf").json_value()


def start_up(workdir: Path, repeats: int = 3) -> None:
    print("3. start-up: seconds to TensorBoard's first answer (an empty log directory), best of", repeats)
    empty = workdir / "empty"
    empty.mkdir(exist_ok=True)
    best = {}
    for launch in LAUNCH:
        times = []
        for _ in range(repeats):
            port = free_port()
            start = time.perf_counter()
            process = start_tensorboard(empty, port, launch)
            try:
                while get(port, "/data/environment", timeout=1)[0] != 200:
                    time.sleep(0.02)
                times.append(time.perf_counter() - start)
                torch_loaded = "torch" in Path(f"/proc/{process.pid}/maps").read_text()
            finally:
                stop(process)
        best[launch] = min(times)
        print(f"   {launch:20s} {best[launch]:5.2f} s   torch in the TensorBoard process: {torch_loaded}")
    print(f"   the plugin adds {best['with the plugin'] - best['without the plugin']:+.2f} s (goal <= 0.3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=120)
    parser.add_argument("--skip-memory", action="store_true", help="skip the 2.5 GB log directory")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="long_run_bench_"))
    try:
        bytes_per_call(workdir)
        if not args.skip_memory:  # half the run and the whole: memory must not grow with the run
            for calls in (args.calls // 2, args.calls):
                flag_sets = ((), ("--samples_per_plugin=cnnviz=0",)) if calls == args.calls else ((),)
                memory(long_run_logdir(workdir, calls), calls, flag_sets)
                shutil.rmtree(workdir / "long_run")
        start_up(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
