"""Top activating patches over a data set against plain inference over the same data, in the same run; and the
relevance ranking (``rank="relevance"``) against the activation ranking on the same data and model.

10,000 random 64x64 crops of scikit-learn's two photographs, resnet18 (random weights), batches of 250: the
time of ``top_activations`` (k = 9, every channel of ``layer2``, receptive-field patches) against the same
forwards without it; then the relevance ranking (each batch one forward and one backward, to the layer only),
and, to see where its time goes, the bare gradient pass it makes (the forward with the layer's map as a leaf,
the class scores' gradient there; no ranking). The peers run in the layout the pass uses on the CPU
(channels-last, see ``LayoutForward``), and plain inference as given is printed beside them. Every side
alternates; the median round of each is compared.
The data set is streamed from a list of batches made once, so no side pays for making it.

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
    layer = dict(model.named_modules())[args.layer]

    def plain(layout: torch.memory_format = torch.channels_last) -> None:
        with torch.inference_mode():
            for images, _ in batches:
                model(images.contiguous(memory_format=layout))

    def plain_as_given() -> None:
        plain(torch.contiguous_format)

    def ours() -> None:
        top_activations(model, batches, args.layer, k=9, progress=False)

    def relevance() -> None:
        top_activations(model, batches, args.layer, k=9, progress=False, rank="relevance")

    def gradient_only() -> None:
        """The forward and the backward to the layer that the relevance pass makes, and nothing else."""
        captured = []

        def leaf(_module, _inputs, output):
            captured[:] = [output.detach().requires_grad_(True)]
            return captured[0].clone()

        handle = layer.register_forward_hook(leaf)
        flags = [p.requires_grad for p in model.parameters()]
        try:
            for param in model.parameters():
                param.requires_grad_(False)
            with torch.enable_grad():
                for images, labels in batches:
                    scores = model(images.contiguous(memory_format=torch.channels_last))
                    torch.autograd.grad(scores.gather(1, labels[:, None]).sum(), captured[0])
        finally:
            handle.remove()
            for param, flag in zip(model.parameters(), flags):
                param.requires_grad_(flag)

    sides = {"plain": plain, "activation": ours, "relevance": relevance, "gradient": gradient_only,
             "as given": plain_as_given}
    plain()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, side in sides.items():
            start = time.perf_counter()
            side()
            times[name].append(time.perf_counter() - start)
    p, o, r, g, given = (statistics.median(times[name]) for name in sides)
    print(f"resnet18, {args.images} images 64x64, batches of 250, {torch.get_num_threads()} threads, "
          f"median of {args.rounds} rounds")
    print(f"plain inference, channels-last                    {p:8.2f} s   (as given, NCHW: {given:.2f} s)")
    print(f"top_activations({args.layer}, k=9, patches)          {o:8.2f} s   ratio {o / p:.3f} (goal <= 1.10)")
    print(f"  rank='relevance' (forward + backward to the layer) {r:8.2f} s   "
          f"ratio to the activation ranking {r / o:.3f} (goal <= 1.30)")
    print(f"  of it, the bare forward + backward to the layer     {g:8.2f} s   "
          f"({g / p:.3f}x plain inference; the ranking itself {r - g:.2f} s)")


if __name__ == "__main__":
    main()
