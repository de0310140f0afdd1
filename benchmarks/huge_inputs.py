"""Huge inputs: what the writer and the tab cost on a 4096-channel layer, 1024x1024 probe images and a
dead-filter series of 100,000 flushes, each against its ordinary-sized peer measured in the same run.

Printed per case: the peak memory log_activations adds (Linux VmHWM, reset before each call) against the
forward's own peak, and the event bytes of one layer's record; for the dead series, event bytes and time per
flush (under tracemalloc, which slows Python: an upper bound) and the Python memory growth over the second
half; for serving, the time and reply bytes of ``/dead``
through TensorBoard's WSGI app (Python loader and Rust data server), in 320 columns (default) and whole.

    python benchmarks/huge_inputs.py [--flushes 100000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import peak_memory_growth, tensorboard_client, whole_records  # noqa: E402

from tb_cnnviz import CNNViz, metadata  # noqa: E402
from tb_cnnviz.thinning import base_tag  # noqa: E402


def activation_case(root: Path, name: str, channels: int, side: int, images: int = 4) -> dict:
    """Peak memory of the forward and of log_activations, and the bytes of the ReLU's record."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU())
    probe = torch.rand(images, 3, side, side)

    def forward() -> None:
        with torch.inference_mode():
            net(probe)

    forward()
    forward_peak = peak_memory_growth(forward)
    logdir = root / name
    with CNNViz(net, logdir, probe_images=probe, raise_errors=True) as viz:
        viz.log_activations(0)
        started = time.perf_counter()
        log_peak = peak_memory_growth(lambda: viz.log_activations(1))
        seconds = (time.perf_counter() - started) / 3  # peak_memory_growth runs it 3 times
    (path,) = logdir.glob("events.out.tfevents.*")
    record = max(len(e.SerializeToString()) for e in whole_records(path) if e.step == 1
                 for v in e.summary.value if base_tag(v.tag) == metadata.tag(metadata.ACTIVATIONS, "1"))
    return {"forward_mib": forward_peak / 2**20, "log_mib": log_peak / 2**20, "record_kib": record / 1024, "s": seconds}


def print_activation_pair(title: str, huge: dict, peer: dict) -> None:
    print(f"\n{title}")
    for label, case in (("huge", huge), ("peer", peer)):
        ratio = f"{case['log_mib'] / case['forward_mib']:5.2f}x" if case["forward_mib"] >= 1 else "  n/a"  # below resolution
        print(f"  {label}: forward peak {case['forward_mib']:8.1f} MiB, log_activations peak {case['log_mib']:8.1f} MiB "
              f"({ratio} the forward), record {case['record_kib']:6.1f} KiB, {case['s']:.2f} s per call")
    print(f"  record huge/peer: {huge['record_kib'] / peer['record_kib']:.2f}x")


def dead_series(logdir: Path, flushes: int, channels: int = 64) -> dict:
    """``flushes`` flushes (every=1) of a ``channels``-channel ReLU, against the same loop without CNNViz."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, channels, 1), nn.ReLU())
    batch = torch.rand(4, 3, 4, 4)
    with torch.no_grad():
        started = time.perf_counter()
        for _ in range(flushes):
            net(batch)
        bare = time.perf_counter() - started
        tracemalloc.start()
        with CNNViz(net, logdir, raise_errors=True) as viz:
            viz.watch_dead_filters(every=1)
            started = time.perf_counter()
            for step in range(flushes):
                net(batch)
                viz.step(step)
                if step + 1 == flushes // 2:
                    half = tracemalloc.get_traced_memory()[0]
            logged = time.perf_counter() - started
            full = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    (path,) = logdir.glob("events.out.tfevents.*")
    return {"bytes_per_flush": path.stat().st_size / flushes, "raw_rates": 4 * channels, "bare_us": 1e6 * bare / flushes,
            "logged_us": 1e6 * logged / flushes, "growth_kib": (full - half) / 1024}


def serve(logdir: Path, load_fast: str, flushes: int) -> None:
    started = time.perf_counter()
    client = tensorboard_client(logdir, load_fast)
    loaded = time.perf_counter() - started
    print(f"  load_fast={load_fast}: loaded in {loaded:.1f} s (incl. polling until stable)")
    for params in ({}, {"max_steps": flushes}):
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            reply = client.get("/data/plugin/cnnviz/dead", query_string={"run": ".", "layer": "1", **params})
            timings.append(time.perf_counter() - started)
        body = json.loads(reply.data)
        label = "default (320 columns)" if not params else f"max_steps={flushes} (whole)"
        print(f"    /dead {label:28s}: {len(body['steps']):6d} columns, {len(reply.data) / 1024:9.1f} KiB, "
              f"best of 3 {min(timings):.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flushes", type=int, default=100_000)
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny ops: threads only contend (the machine is shared); same for huge and peer
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print_activation_pair("log_activations, 4096-channel layer vs 64 channels (4 probe images of 32x32)",
                              activation_case(root, "c4096", 4096, 32), activation_case(root, "c64", 64, 32))
        print_activation_pair("log_activations, 1024x1024 probe images vs 64x64 (4 images, 16 channels)",
                              activation_case(root, "px1024", 16, 1024), activation_case(root, "px64", 16, 64))
        dead_dir = root / "dead"
        dead = dead_series(dead_dir, args.flushes)
        print(f"\n{args.flushes} dead-filter flushes of a 64-channel layer (every=1)")
        print(f"  {dead['bytes_per_flush']:.0f} event bytes per flush ({dead['bytes_per_flush'] / dead['raw_rates']:.2f}x the "
              f"{dead['raw_rates']} bytes of raw rates), {dead['logged_us']:.0f} us per logged step vs {dead['bare_us']:.0f} us "
              f"bare ({dead['logged_us'] / dead['bare_us']:.1f}x), Python memory growth over the second half "
              f"{dead['growth_kib']:.1f} KiB")
        print("\nserving that series")
        for load_fast in ("false", "true"):
            serve(dead_dir, load_fast, args.flushes)


if __name__ == "__main__":
    main()
