"""What a map's stability (issue 25) adds to a logging call: ``MapHistory.compare`` (rank the map, hash the
images, correlate with the previous call's ranks) against the ``log_saliency`` call that logs the map, which
runs it. resnet18 (random weights) on ``--batch`` images of ``--size`` px, guided backprop and Grad-CAM, and
the demo's ShapesNet on its 5 probe images of 48 px. Alternating rounds, median of each side: a noisy
neighbour on a shared machine hits both. Printed: seconds, and compare's share of the call.

    python benchmarks/map_stability.py [--rounds 5] [--batch 8] [--size 224]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torchvision

from tb_cnnviz import CNNViz
from tb_cnnviz.demo_shapes import ShapesNet
from tb_cnnviz.methods.attribution.registry import attribution_map
from tb_cnnviz.views.map_stability import MapHistory


def measure(model: torch.nn.Module, images: torch.Tensor, method: str, rounds: int) -> tuple[float, float]:
    """(median seconds of log_saliency, median seconds of compare alone on the same map)."""
    targets = torch.zeros(len(images), dtype=torch.long)
    with tempfile.TemporaryDirectory() as tmp, CNNViz(model, tmp, probe_images=images) as viz:
        layer = viz._run.cam_layer(images) if method == "grad_cam" else None
        maps = attribution_map(method, model, images, targets, layer=layer)
        history = MapHistory()
        calls, compares = [], []
        for step in range(rounds + 1):  # the first of each is a warm-up
            start = time.perf_counter()
            viz.log_saliency(step, method=method, targets=targets)
            calls.append(time.perf_counter() - start)
            start = time.perf_counter()
            history.compare(method, step, images, targets, maps)
            compares.append(time.perf_counter() - start)
    return statistics.median(calls[1:]), statistics.median(compares[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    torch.manual_seed(0)
    cases = [
        ("resnet18", torchvision.models.resnet18(weights=None).eval(),
         torch.randn(args.batch, 3, args.size, args.size)),
        ("ShapesNet", ShapesNet().eval(), torch.randn(5, 3, 48, 48)),
    ]
    print(f"{torch.get_num_threads()} threads, {args.rounds} rounds")
    for name, model, images in cases:
        for method in ("guided_backprop", "grad_cam"):
            call, compare = measure(model, images, method, args.rounds)
            print(f"{name:<10} {method:<16} {tuple(images.shape)}: log_saliency {call:7.3f} s, "
                  f"stability {compare:6.3f} s ({100 * compare / call:4.1f}% of the call, which includes it)")


if __name__ == "__main__":
    main()
