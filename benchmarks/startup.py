"""TensorBoard's start-up with the CNNVIZ plugin: time to the first answer of ``/data/plugins_listing`` and the
TensorBoard process's resident memory, in three set-ups measured in turn in one run:

- without the plugin (TensorBoard's own plugins only): the peer;
- with the plugin, as installed (it imports no torch);
- with the plugin and torch + torchvision imported in the TensorBoard process, as the plugin did before the
  package resolved its names lazily.

Each is a fresh ``python`` process running TensorBoard's own ``program.TensorBoard`` over a small log
directory (``--load_fast=false``, so the figure is the TensorBoard process alone, no data server). The
median of ``--repeat`` starts is printed.

    python benchmarks/startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

LAUNCH = """
import sys
{preload}
from tensorboard import default, program
plugins = {plugins}
tb = program.TensorBoard(plugins=plugins)
tb.configure(argv=["tensorboard", "--logdir", sys.argv[1], "--port", sys.argv[2], "--host", "127.0.0.1",
                   "--load_fast=false"])
tb.main()
"""

#: name -> (what the process imports first, the plugins it loads: TensorBoard's own, or with the entry points')
SETUPS = {
    # not installed: TensorBoard still scans the entry points, and finds no CNNVIZ there
    "without the plugin": ("", "[*default.get_static_plugins(), *(e.load() for e in "
                               "default._iter_entry_points('tensorboard_plugins') if e.name != 'cnnviz')]"),
    "with the plugin (no torch)": ("", "default.get_plugins()"),
    "with the plugin, torch imported": ("import torch, torchvision", "default.get_plugins()"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_once(logdir: Path, preload: str, plugins: str) -> tuple[float, float, bool]:
    """(seconds to the first plugins_listing answer, resident MiB then, whether CNNVIZ was listed)."""
    port = free_port()
    code = LAUNCH.format(preload=preload, plugins=plugins)
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code, str(logdir), str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugins_listing", timeout=5) as reply:
                    listing = json.loads(reply.read())
                break
            except OSError:
                if process.poll() is not None or time.perf_counter() - started > 120:
                    raise RuntimeError("tensorboard did not start") from None
                time.sleep(0.02)
        seconds = time.perf_counter() - started
        return seconds, resident_mib(process.pid), "cnnviz" in listing
    finally:
        process.terminate()
        process.wait(timeout=20)


def write_small_run(logdir: Path) -> None:
    """A few steps of activations, filters and dead-filter rates: start-up does not depend on the data."""
    import torch

    from tb_cnnviz import CNNViz
    from tb_cnnviz.demo import DigitsNet

    torch.manual_seed(0)
    net = DigitsNet()
    with CNNViz(net, str(logdir), probe_images=torch.randn(4, 1, 32, 32), raise_errors=True) as viz:
        viz.watch_dead_filters(every=1)
        for step in range(3):
            net(torch.randn(8, 1, 32, 32))
            viz.step(step)
            viz.log_activations(step)
            viz.log_filters(step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        logdir = Path(tmp)
        write_small_run(logdir / "run")
        results = {name: [] for name in SETUPS}
        for _ in range(args.repeat):  # interleaved, so that machine noise falls on every set-up alike
            for name, (preload, plugins) in SETUPS.items():
                results[name].append(start_once(logdir, preload, plugins))
    peer = statistics.median(r[0] for r in results["without the plugin"])
    print(f"{'set-up':36s} {'first listing (s)':>18s} {'vs without':>11s} {'RSS (MiB)':>10s}  CNNVIZ listed")
    for name, rows in results.items():
        seconds = statistics.median(r[0] for r in rows)
        rss = statistics.median(r[1] for r in rows)
        print(f"{name:36s} {seconds:18.2f} {seconds - peer:+10.2f}s {rss:10.0f}  {all(r[2] for r in rows)}")


if __name__ == "__main__":
    main()
