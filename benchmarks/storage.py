"""Storage and serving: CNNVIZ activation mosaics against TensorBoard's own image summaries of the same pictures.

Run A is the demo's healthy run (a trained CNN, activations logged every 20 steps) plus resnet18 (random weights,
64x64 probes) logged with CNNViz. Runs B hold every mosaic of run A once more as an ordinary image summary
(``SummaryWriter.add_image``, the way PyTorch users log pictures, and a one-channel image summary). Printed: event bytes per mosaic in each, and
the time to list and fetch every picture through each plugin's routes in TensorBoard's WSGI app (CNNVIZ's
``/steps``, ``/sample`` and ``/blob`` against the images plugin's ``/tags``, ``/images`` and
``/individualImage``), with the Python loader and with the Rust data server.

    python benchmarks/storage.py
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.compat.proto import summary_pb2
from torch.utils.tensorboard import SummaryWriter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import tensorboard_client  # noqa: E402  (the tests' real-TensorBoard WSGI client)

from tb_cnnviz import CNNViz, metadata  # noqa: E402
from tb_cnnviz.demo import RUNS, train_run  # noqa: E402

RECORD_FRAMING = 8 + 4 + 4  # length, its checksum, the data's checksum


def record_bytes(event) -> int:
    return len(event.SerializeToString()) + RECORD_FRAMING


def log_run_a(logdir: Path) -> None:
    train_run(logdir, RUNS[0], steps=240, log_every=20, dead_every=20)
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    with CNNViz(net, str(logdir / "healthy_lr0.05"), probe_images=torch.randn(4, 3, 64, 64), raise_errors=True) as viz:
        for step in (1000, 1001, 1002):
            viz.log_activations(step)


def mosaics_and_bytes(run_dir: Path) -> tuple[list[tuple[str, int, bytes]], int, int]:
    """Every activation mosaic of a run as (tag, step, png), the event bytes its summaries take, and the bytes
    of their JSON blobs (layout, scales, statistics)."""
    mosaics, total, meta = [], 0, 0
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        for event in event_file_loader.EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag.startswith(f"{metadata.PLUGIN_NAME}/{metadata.ACTIVATIONS}/"):
                    single = type(event)(step=event.step, wall_time=event.wall_time)
                    single.summary.value.add().CopyFrom(value)
                    total += record_bytes(single)
                    blobs = value.tensor.string_val
                    meta += len(blobs[0])
                    mosaics += [(f"{value.tag}/{i}", event.step, png) for i, png in enumerate(blobs[1:])]
    return mosaics, total, meta


def write_image_summaries(run_dir: Path, mosaics: list[tuple[str, int, bytes]], grey: bool) -> int:
    """The same pictures as TensorBoard image summaries; returns their event bytes.

    ``grey=False``: ``SummaryWriter.add_image``, what PyTorch users write (it stores a grey picture as RGB).
    ``grey=True``: a one-channel image summary, as ``tf.summary.image`` writes a grey picture, PNG-encoded
    with Pillow's defaults.
    """
    writer = SummaryWriter(str(run_dir))
    for tag, step, png in mosaics:
        picture = np.asarray(Image.open(io.BytesIO(png)))
        if not grey:
            writer.add_image(tag, picture, step, dataformats="HW" if picture.ndim == 2 else "HWC")
            continue
        buffer = io.BytesIO()
        Image.fromarray(picture).save(buffer, format="PNG")
        image = summary_pb2.Summary.Image(height=picture.shape[0], width=picture.shape[1],
                                          colorspace=1 if picture.ndim == 2 else 3, encoded_image_string=buffer.getvalue())
        writer._get_file_writer().add_summary(summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, image=image)]), step)
    writer.close()
    total = 0
    for path in run_dir.glob("events.out.tfevents.*"):
        for event in event_file_loader.EventFileLoader(str(path)).Load():
            if event.HasField("summary"):
                total += record_bytes(event)
    return total


def fetch_all_cnnviz(client, run: str) -> int:
    pictures = 0
    layers = next(r for r in json.loads(client.get("/data/plugin/cnnviz/runs").data)["runs"] if r["run"] == run)
    for layer in layers["activations"]:
        query = {"run": run, "kind": "activations", "layer": layer}
        steps = json.loads(client.get("/data/plugin/cnnviz/steps", query_string=query).data)["steps"]
        for s in steps:
            sample = json.loads(client.get("/data/plugin/cnnviz/sample", query_string={**query, "step": s["step"]}).data)
            for key in sample["blobs"]:  # as the tab fetches them
                reply = client.get("/data/plugin/cnnviz/blob", query_string={"run": run, "key": key})
                assert reply.status_code == 200 and reply.data[:4] == b"\x89PNG"
                pictures += 1
    return pictures


def fetch_all_images_plugin(client, run: str) -> int:
    pictures = 0
    tags = json.loads(client.get("/data/plugin/images/tags").data)[run]
    for tag in tags:
        listing = json.loads(client.get("/data/plugin/images/images", query_string={"run": run, "tag": tag}).data)
        for entry in listing:
            reply = client.get("/data/plugin/images/individualImage?" + entry["query"])
            assert reply.status_code == 200 and reply.data[:4] == b"\x89PNG"
            pictures += 1
    return pictures


def timed(fetch, client, run: str, repeats: int = 3) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        count = fetch(client, run)
        best = min(best, time.perf_counter() - start)
    return best, count


def main() -> None:
    logdir = Path(tempfile.mkdtemp(prefix="storage_bench_"))
    log_run_a(logdir)
    mosaics, ours, meta = mosaics_and_bytes(logdir / "healthy_lr0.05")
    theirs = write_image_summaries(logdir / "image_summaries", mosaics, grey=False)
    theirs_grey = write_image_summaries(logdir / "grey_image_summaries", mosaics, grey=True)
    n = len(mosaics)
    print(f"{n} activation mosaics (the demo's CNN over training, 4 probes; resnet18 with random weights, 4 probes)")
    print(f"  CNNVIZ summaries (PNG + per-channel scale and stats) : {ours / n:9.0f} bytes per mosaic"
          f" (of which JSON {meta / n:.0f})")
    print(f"  image summaries, SummaryWriter.add_image (RGB)       : {theirs / n:9.0f} bytes per mosaic"
          f"  -> ratio {ours / theirs:.3f}  (goal <= 1)")
    print(f"  image summaries, one grey channel, Pillow's PNG      : {theirs_grey / n:9.0f} bytes per mosaic"
          f"  -> ratio {ours / theirs_grey:.3f}  (goal <= 1)")
    samples = ("--samples_per_plugin=images=100000",)  # let the images plugin keep every step, as CNNVIZ does
    for load_fast in ("false", "true"):
        client = tensorboard_client(logdir, load_fast, samples)
        deadline = time.monotonic() + 120
        while fetch_all_images_plugin(client, "image_summaries") < n and time.monotonic() < deadline:
            time.sleep(1)  # the loader is still reading the image run
        t_images, n_images = timed(fetch_all_images_plugin, client, "image_summaries")
        t_ours, n_ours = timed(fetch_all_cnnviz, client, "healthy_lr0.05")
        assert n_images == n_ours == n, (n_images, n_ours, n)
        print(f"  serving all {n} pictures, --load_fast={load_fast}: CNNVIZ {t_ours:.2f} s, images plugin "
              f"{t_images:.2f} s, ratio {t_ours / t_images:.2f}  (goal <= 1)")


if __name__ == "__main__":
    main()
