"""Long runs of big models: bytes per call, TensorBoard's memory, its start-up, measured as issue 16 states them.

1. Bytes: ``log_activations`` on resnet50 (1000 classes, random weights) with default arguments, 4 probe images at
   224 (crops of scikit-learn's photographs, normalised as for ImageNet; also 4 of Gaussian noise, the worst case
   for PNG): event bytes per call (goal <= 3 MB). Each mosaic against TensorBoard's own image summary of the same
   picture (``SummaryWriter.add_image``, and a one-channel image with Pillow's PNG): goal ratio <= 1.
2. Memory: 120 calls over every conv and every ReLU call of resnet50 (the summaries of one call written at 120
   steps: the same bytes as 120 calls, without 120 forwards) served by the stock ``tensorboard`` (Rust data
   server): resident memory of TensorBoard and the data server together once the latest step is served (goal
   <= 1 GB, not growing with the run: also measured at half the calls), with the plugin's default flags (the
   run thinned to 17 steps a view) and with ``--samples_per_plugin=cnnviz=0`` (every step held, as before
   thinning); and the first paint of the activations view in Chromium there (goal <= 2 s; the only view such
   a run has).
3. Start-up: seconds until TensorBoard answers its first request, with and without the plugin (goal <= 0.3 s
   more), and whether the TensorBoard process imported torch.

    python benchmarks/long_run.py [--calls 120] [--skip-memory]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import torch
import torchvision
from PIL import Image

from performance_views import crops  # the same photographs as the other benchmarks
from storage import mosaics_and_bytes, write_image_summaries  # the images plugin's bytes for the same mosaics
from helpers import free_port, replicate_steps  # noqa: I001  (tests/helpers.py, put on the path by storage)
from tb_cnnviz import CNNViz
from tb_cnnviz.methods._hooks import every_conv_and_relu

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


def long_run_logdir(workdir: Path, calls: int) -> Path:
    """``calls`` calls over every conv and every ReLU call of resnet50, logged every 500 steps: one call's
    summaries written at ``calls`` steps (TensorBoard holds bytes, whatever they show)."""
    logdir = workdir / "long_run"
    if not (workdir / "one_call").exists():
        model = torchvision.models.resnet50(num_classes=1000)
        one_call(workdir / "one_call", probe_photos(), layers=list(every_conv_and_relu(model)))
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
            print(f"   {'':32s} first paint of the activations view in Chromium: {first_paint(port):5.2f} s (goal <= 2)")
        finally:
            stop(process)


def first_paint(port: int) -> float:
    """Seconds from opening TensorBoard at the CNNVIZ tab until the first layer's mosaics are drawn."""
    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM_ARGS, chromium_path, open_tab

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            start = time.perf_counter()
            page, frame = open_tab(browser, f"http://127.0.0.1:{port}", [])
            frame.wait_for_selector("img.mosaic", timeout=60_000)
            frame.wait_for_function("[...document.querySelectorAll('img.mosaic')].every(i => i.complete && i.naturalWidth > 0)",
                                    timeout=60_000)
            return time.perf_counter() - start
        finally:
            browser.close()


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
