"""Attribution speed against Captum, measured in the same run: the gradient methods on a batch of 8 at 224x224
on resnet18 (random weights, eval mode), and occlusion (window 32, stride 16) against Captum's batched
``Occlusion`` with the same number of images per forward.

The two sides alternate, round after round, and the median round of each is compared, so that a noisy
neighbour on a shared machine hits both. Printed: seconds per call for each and the ratio ours / Captum
(below 1 is faster).

    python benchmarks/attribution.py [--rounds 5] [--batch 8] [--size 224]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
import torchvision
from captum.attr import Deconvolution, GuidedBackprop, GuidedGradCam, LayerGradCam, Occlusion, Saliency

from tb_cnnviz.methods import deconvnet, grad_cam, guided_backprop, guided_grad_cam, occlusion, saliency


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def compare(name: str, ours, theirs, rounds: int) -> tuple[str, float, float]:
    ours(), theirs()  # warm-up: first calls allocate
    mine, captums = [], []
    for _ in range(rounds):
        mine.append(timed(ours))
        captums.append(timed(theirs))
    return name, statistics.median(mine), statistics.median(captums)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--occlusion-images", type=int, default=1)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # Captum's notes about hooks and requires_grad

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    target = torch.arange(args.batch) % 1000
    layer = model.layer4[1].conv2  # what grad_cam picks by default: the last conv the forward runs

    rows = [
        compare("saliency", lambda: saliency(model, x, target),
                lambda: Saliency(model).attribute(x, target=target, abs=False), args.rounds),
        compare("deconvnet", lambda: deconvnet(model, x, target),
                lambda: Deconvolution(model).attribute(x, target=target), args.rounds),
        compare("guided backprop", lambda: guided_backprop(model, x, target),
                lambda: GuidedBackprop(model).attribute(x, target=target), args.rounds),
        compare("Grad-CAM, default layer found by a 1-image forward", lambda: grad_cam(model, x, target),
                lambda: LayerGradCam.interpolate(LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True),
                                                 x.shape[2:], "bilinear"), args.rounds),
        compare("Grad-CAM, layer given (as Captum is given it)", lambda: grad_cam(model, x, target, layer="layer4.1.conv2"),
                lambda: LayerGradCam.interpolate(LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True),
                                                 x.shape[2:], "bilinear"), args.rounds),
        compare("Guided Grad-CAM", lambda: guided_grad_cam(model, x, target),
                lambda: GuidedGradCam(model, layer).attribute(x, target=target, interpolate_mode="bilinear"), args.rounds),
    ]
    count = args.occlusion_images
    images = x[:count]
    per_eval = 64
    rows.append(compare(
        f"occlusion ({count} image(s), window 32, stride 16, {per_eval} per forward)",
        lambda: occlusion(model, images, target[:count], window=32, stride=16, batch_size=per_eval, progress=False),
        lambda: Occlusion(model).attribute(images, target=target[:count], sliding_window_shapes=(3, 32, 32),
                                           strides=(3, 16, 16), baselines=0.0, perturbations_per_eval=per_eval),
        max(1, args.rounds // 2),
    ))

    print(f"resnet18, batch {args.batch}, {args.size}x{args.size}, {torch.get_num_threads()} threads, "
          f"median of {args.rounds} alternating rounds")
    print(f"{'method':<62} {'ours s':>8} {'Captum s':>9} {'ratio':>6}")
    for name, mine, theirs in rows:
        print(f"{name:<62} {mine:8.3f} {theirs:9.3f} {mine / theirs:6.2f}")


if __name__ == "__main__":
    main()
