"""The cost of the accuracy views against plain inference over the same data, measured in the same run:
``evaluate`` with every computed image attribute and the PR-curve histograms (the bar: at most 1.05x), and
everything ``log_performance`` asks of it (plus the pool of most confidently wrong examples, 16 per class, with
their saliency maps).

Data: 10,000 random 64x64 crops of scikit-learn's two bundled photographs (RGB), streamed in batches of 250,
through resnet18 (random weights, 10 classes). Both sides alternate, round after round; the median round of
each is compared. Also printed: event bytes per ``log_performance`` call of the demo.

    python benchmarks/performance_views.py [--images 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from sklearn.datasets import load_sample_images

from tb_cnnviz import CNNViz
from tb_cnnviz.demo import DigitsNet, load_digits
from tb_cnnviz.methods import evaluate


def crops(count: int, size: int, batch: int, seed: int = 0):
    """Random crops as (images, labels) batches, made on the fly: the data set is never held whole."""
    photos = [torch.tensor(p).permute(2, 0, 1).float() / 255 for p in load_sample_images().images]
    generator = torch.Generator().manual_seed(seed)
    for start in range(0, count, batch):
        n = min(batch, count - start)
        which = torch.randint(0, len(photos), (n,), generator=generator)
        images = torch.empty(n, 3, size, size)
        for i, photo in enumerate(which.tolist()):
            top = int(torch.randint(0, photos[photo].shape[1] - size, (1,), generator=generator))
            left = int(torch.randint(0, photos[photo].shape[2] - size, (1,), generator=generator))
            images[i] = photos[photo][:, top : top + size, left : left + size]
        yield images, torch.randint(0, 10, (n,), generator=generator)


def plain_inference(model: torch.nn.Module, batches: list) -> None:
    """The peer, in the layout ``evaluate`` feeds the model on the CPU (channels-last: see ``LayoutForward``)."""
    with torch.inference_mode():
        for images, _ in batches:
            model(images.contiguous(memory_format=torch.channels_last)).softmax(dim=1).topk(5, dim=1)


def demo_event_bytes() -> int:
    images, labels = load_digits()
    held_out_x, held_out_y = images[-297:], labels[-297:]
    with tempfile.TemporaryDirectory() as logdir:
        with CNNViz(DigitsNet(), logdir, raise_errors=True) as viz:
            viz.log_performance([(held_out_x, held_out_y)], 0, class_names=[f"digit {c}" for c in range(10)],
                                examples=4, to_pixels=lambda x: x * 0.5 + 0.5, name="held_out")
        return sum(f.stat().st_size for f in Path(logdir).glob("events*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    batches = list(crops(args.images, 64, 250))  # made once, so that neither side pays for cropping
    plain_inference(model, batches[:2])  # warm-up
    plain, ours, full = [], [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        plain_inference(model, batches)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        evaluate(model, batches, attributes=True, pr_curves=True, progress=False)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        evaluate(model, batches, attributes=True, pr_curves=True, wrong_examples=16, progress=False)
        full.append(time.perf_counter() - start)
    p, o, f = statistics.median(plain), statistics.median(ours), statistics.median(full)
    print(f"resnet18, {args.images} images 64x64, batches of 250, {torch.get_num_threads()} threads, median of {args.rounds} rounds")
    print(f"plain inference (softmax + top-5)                        {f'{p:8.2f}'} s")
    print(f"evaluate + attributes + PR histograms                    {o:8.2f} s   ratio {o / p:.3f} (goal <= 1.05)")
    print(f"  + 16 wrong examples per class with their saliency      {f:8.2f} s   ratio {f / p:.3f}")
    print(f"event bytes per log_performance call (demo, 297 held-out digits, 10 classes): {demo_event_bytes():,}")


if __name__ == "__main__":
    main()
