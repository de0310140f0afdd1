"""Occlusion with incremental inference against Captum's batched ``Occlusion``, measured in the same run on
the CPU: one 224x224 image, window 32, resnet18 (stride 16), vgg16 (stride 32), mobilenet_v2 (stride 16),
random weights in eval mode, the same number of occluded copies per forward on both sides.

The two sides alternate, round after round, and the best round of each is compared (the machine may be
shared). Printed per model: seconds for ours, Captum and our plain batched forward (``incremental=False``,
channels-last like ours), the speed-ups Captum / ours and plain / ours, the multiply-add limit of
incremental inference for that model (full work over the work on the changed regions) and both speed-ups
over it (part of the gain over Captum is the channels-last layout, which the plain forward shares),
the largest difference from the plain batched forward and from Captum, and, for the approximate mode
(``--tau``), its speed-up and largest error against the exact map.

    python benchmarks/occlusion.py [--rounds 3] [--batch 64] [--size 224] [--tau 0.5] [--models resnet18,vgg16]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
import torchvision
from captum.attr import Occlusion

from tb_cnnviz.methods.attribution.occlusion import occlusion, occlusion_plan

STRIDES = {"resnet18": 16, "vgg16": 32, "mobilenet_v2": 16}


def best_of(functions: list, rounds: int) -> list[float]:
    """Best wall time of each function, the functions alternating within every round."""
    best = [float("inf")] * len(functions)
    for _ in range(rounds):
        for k, function in enumerate(functions):
            start = time.perf_counter()
            function()
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--tau", type=float, default=0.5, help="Krypton's threshold for the approximate mode")
    parser.add_argument("--models", default=",".join(STRIDES))
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # Captum's notes about hooks and requires_grad
    window = args.window
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.size}x{args.size}, window {window}, "
          f"{args.batch} per forward, best of {args.rounds} alternating rounds")
    print(f"{'model':<13}{'stride':>7}{'ours s':>8}{'Captum s':>9}{'plain s':>8}{'xCaptum':>8}{'xplain':>7}{'limit':>7}"
          f"{'Capt/lim':>9}{'plain/lim':>10}{'err plain':>10}{'err Capt':>9}{'approx x':>9}{'approx err':>11}")
    for name in args.models.split(","):
        stride = STRIDES.get(name, 16)
        torch.manual_seed(0)
        model = getattr(torchvision.models, name)(weights=None).eval()
        image = torch.randn(1, 3, args.size, args.size)
        target = int(model(image).argmax())
        captum = Occlusion(model)

        def ours() -> torch.Tensor:
            return occlusion(model, image, target, window=window, stride=stride, batch_size=args.batch, progress=False)

        def theirs() -> torch.Tensor:
            return captum.attribute(image, target=target, sliding_window_shapes=(3, window, window),
                                    strides=(3, stride, stride), baselines=0.0, perturbations_per_eval=args.batch)

        def plain_forward() -> torch.Tensor:
            return occlusion(model, image, target, window=window, stride=stride, batch_size=args.batch, progress=False,
                             incremental=False)

        def approximate() -> torch.Tensor:
            return occlusion(model, image, target, window=window, stride=stride, batch_size=args.batch,
                             progress=False, approximate=args.tau)

        exact = ours()
        plain = plain_forward()
        # Captum's attribution at a pixel averages score(image) - score(occluded) over the windows covering
        # it: where windows tile without overlap, a window's top-left pixel gives its own occluded probability.
        captum_error = float("nan")
        if stride >= window:
            probability = torch.nn.Sequential(model, torch.nn.Softmax(dim=1))
            attribution = Occlusion(probability).attribute(image, target=target, sliding_window_shapes=(3, window, window),
                                                           strides=(3, stride, stride), baselines=0.0,
                                                           perturbations_per_eval=args.batch)
            corners = attribution[0, 0, ::stride, ::stride][: exact.shape[1], : exact.shape[2]]
            unoccluded = torch.softmax(model(image), dim=1)[0, target]
            captum_error = float((unoccluded - corners - exact[0]).abs().max())
        seconds_ours, seconds_captum, seconds_plain, seconds_approx = best_of([ours, theirs, plain_forward, approximate],
                                                                              args.rounds)
        approx_error = float((approximate() - exact).abs().max())
        limit = occlusion_plan(model, image, window, stride).speedup_limit
        speedup, over_plain = seconds_captum / seconds_ours, seconds_plain / seconds_ours
        print(f"{name:<13}{stride:>7}{seconds_ours:>8.2f}{seconds_captum:>9.2f}{seconds_plain:>8.2f}{speedup:>7.2f}x"
              f"{over_plain:>6.2f}x{limit:>6.2f}x{speedup / limit:>9.0%}{over_plain / limit:>10.0%}"
              f"{float((exact - plain).abs().max()):>10.1e}{captum_error:>9.1e}{seconds_captum / seconds_approx:>8.2f}x"
              f"{approx_error:>11.1e}", flush=True)


if __name__ == "__main__":
    with torch.inference_mode():
        main()
