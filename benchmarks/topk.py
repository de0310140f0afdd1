"""Top activating patches over a data set against plain inference over the same data, in the same run.

10,000 random 64x64 crops of scikit-learn's two photographs, resnet18 (random weights), batches of 250: the
time of ``top_activations`` (k = 9, every channel of ``layer2``, receptive-field patches) against the same
forwards without it. Both sides alternate; the median round of each is compared. The data set is streamed
from a list of batches made once, so neither side pays for making it.

    python benchmarks/topk.py [--images 10000] [--rounds 3] [--layer layer2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

from performance_views import crops  # the same random crops as the accuracy-views benchmark
from tb_cnnviz.methods import top_activations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layer", default="layer2")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    batches = list(crops(args.images, 64, 250))

    def plain() -> None:
        with torch.inference_mode():
            for images, _ in batches:
                model(images)

    def ours() -> None:
        top_activations(model, batches, args.layer, k=9, progress=False)

    plain()
    plain_times, our_times = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        plain()
        plain_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        ours()
        our_times.append(time.perf_counter() - start)
    p, o = statistics.median(plain_times), statistics.median(our_times)
    print(f"resnet18, {args.images} images 64x64, batches of 250, {torch.get_num_threads()} threads, median of {args.rounds} rounds")
    print(f"plain inference                                   {p:8.2f} s")
    print(f"top_activations({args.layer}, k=9, patches)          {o:8.2f} s   ratio {o / p:.3f} (goal <= 1.10)")


if __name__ == "__main__":
    main()
