"""Cost of the map checks against their own floor, measured in the same run (issue 13's bars):

- a deletion curve with 32 steps costs <= 1.2x its 33 batched forward passes (the same masked images, made
  beforehand, through the model in the same batches, under ``torch.inference_mode()``);
- a full randomisation check costs <= 1.2x (layers x one map), with the trained model's map given (as the
  logger does: it has drawn that map already) and, for the record, without it (one map more);
- ``log_saliency(checks=True)`` / ``log_occlusion(checks=True)`` against the same call without checks.

resnet18 (random weights, eval mode) at ``--size`` on ``--batch`` images, and the demo's shapes net on shapes.
Each pair alternates round after round and the median round of each side is compared, so a noisy neighbour on
a shared machine hits both. Printed: seconds per call and the ratio (the bar in brackets).

    python benchmarks/map_checks.py [--rounds 5] [--batch 4] [--size 112]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torchvision

from tb_cnnviz.methods import deletion_curve, guided_backprop, randomizable_layers, randomization_check, saliency


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def compare(ours, floor, rounds: int) -> tuple[float, float]:
    ours(), floor()  # warm-up: first calls allocate
    mine, floors = [], []
    for _ in range(rounds):
        mine.append(timed(ours))
        floors.append(timed(floor))
    return statistics.median(mine), statistics.median(floors)


def report(name: str, seconds: tuple[float, float], floor_name: str, bar: float | None) -> None:
    ours, floor = seconds
    verdict = "" if bar is None else (f" (bar <= {bar}: {'met' if ours / floor <= bar else 'MISSED'})")
    print(f"{name:<44} {ours:8.3f} s   {floor_name:<30} {floor:8.3f} s   ratio {ours / floor:5.2f}{verdict}")


def batched_forwards(model, images, maps, steps: int, batch_size: int):
    """The forward passes a deletion curve makes, and nothing else: its masked images, made beforehand."""
    count, _, height, width = images.shape
    order = maps.flatten(1).argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(height * width).expand_as(order)).view(count, 1, height, width)
    rows = []
    for k in range(steps + 1):
        hidden = ranks < round(k * height * width / steps)
        rows.append(torch.where(hidden, torch.zeros(()), images))
    everything = torch.cat(rows)
    batches = [everything[i : i + batch_size] for i in range(0, len(everything), batch_size)]

    def run() -> None:
        with torch.inference_mode():
            for batch in batches:
                model(batch).softmax(dim=1)

    return run


def map_checks_on_resnet(args) -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    x = torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    target = torch.arange(args.batch) % 10
    maps = saliency(model, x, target).abs().amax(dim=1)
    print(f"resnet18, {args.batch} images of {args.size}x{args.size}:")
    report("deletion_curve (32 steps, batches of 64)",
           compare(lambda: deletion_curve(model, x, target, maps, steps=32), batched_forwards(model, x, maps, 32, 64), args.rounds),
           "its 33 x N batched forwards", 1.2)
    layers = randomizable_layers(model, x)
    for method, function in (("guided_backprop", guided_backprop), ("saliency", saliency)):
        trained = function(model, x, target)

        def maps_alone(function=function) -> None:
            for _ in layers:
                function(model, x, target)

        report(f"randomization_check({method}), map given",
               compare(lambda method=method, trained=trained: randomization_check(model, x, target, method, maps=trained),
                       maps_alone, args.rounds),
               f"{len(layers)} layers x one map", 1.2)
        report(f"randomization_check({method}), map drawn",
               compare(lambda method=method: randomization_check(model, x, target, method), maps_alone, args.rounds),
               f"{len(layers)} layers x one map", None)


def checks_when_logging(args) -> None:
    """What ``checks=True`` adds to a logging call: the demo's shapes net (untrained: the cost is the same) on one
    probe image per class, 48 px, as the demo logs them."""
    from tb_cnnviz import CNNViz
    from tb_cnnviz.datasets import shapes
    from tb_cnnviz.demo_shapes import ShapesNet, normalise

    torch.manual_seed(0)
    model = ShapesNet().eval()
    data = shapes(5, size=48, seed=1)
    x = normalise(data.images)
    print(f"log_* with checks=True against the same call without (ShapesNet, {len(x)} images of 48x48, "
          "pointing game on the masks):")
    with tempfile.TemporaryDirectory() as logdir, CNNViz(model, logdir, probe_images=x, raise_errors=True) as viz:
        for method in ("grad_cam", "guided_backprop", "saliency"):
            report(f"log_saliency({method}, checks=True)",
                   compare(lambda method=method: viz.log_saliency(0, method=method, checks=True, masks=data.masks),
                           lambda method=method: viz.log_saliency(0, method=method), args.rounds),
                   "log_saliency alone", None)
        report("log_occlusion(window 12, stride 3, checks=True)",
               compare(lambda: viz.log_occlusion(0, window=12, stride=3, checks=True, masks=data.masks),
                       lambda: viz.log_occlusion(0, window=12, stride=3), args.rounds),
               "log_occlusion alone", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=112)
    args = parser.parse_args()
    map_checks_on_resnet(args)
    checks_when_logging(args)


if __name__ == "__main__":
    main()
