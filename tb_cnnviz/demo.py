"""`tb-cnnviz demo`: train a small CNN on scikit-learn's bundled 8x8 digits (upscaled to 32x32) and log every
view, in two runs: a healthy learning rate, and one too high whose dead filters the tab flags; then a third run
on procedural colour shapes with known masks, whose maps are checked (demo_shapes.py).

Everything it needs ships with the installed packages: no download, CPU only, well under a minute per run.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from .demo_shapes import RUN_NAME, shapes_run
from .logger import CNNViz, DeadFilterWarning


@dataclass(frozen=True)
class RunConfig:
    name: str
    lr: float


RUNS = (RunConfig("healthy_lr0.05", 0.05), RunConfig("too_high_lr0.9", 0.9))


class DigitsNet(nn.Module):
    """Three conv blocks and a linear classifier: small enough for a laptop CPU, deep enough to have layers."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.relu3 = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu1(self.conv1(x)))
        x = self.pool(self.relu2(self.conv2(x)))
        x = self.relu3(self.conv3(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(self.dropout(x))


def load_digits(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 handwritten digits, as (N, 1, size, size) floats standardised, and labels."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return (images - 0.5) / 0.5, torch.tensor(digits.target, dtype=torch.long)


def moved_copy(image: torch.Tensor, shift: tuple[int, int] = (2, 4), mirror: bool = False) -> torch.Tensor:
    """``image`` (C, H, W) moved by ``shift`` (rows, columns; the digits' blank border wraps round), and mirrored
    left-right if asked: a pair whose true correspondence is known, for the correspondence view. The demo
    shows the shift: a net trained on digits without flips is not mirror-invariant, and mirrored matches
    mostly fail (benchmarks/correspondence.py)."""
    moved = torch.roll(image, shifts=shift, dims=(-2, -1))
    return moved.flip(-1) if mirror else moved


def train_run(
    logdir: Path, config: RunConfig, steps: int, log_every: int, dead_every: int, seed: int = 0, batch_size: int = 64
) -> dict[str, float]:
    """Train one run with logging; returns its final loss, accuracy and wall time."""
    torch.manual_seed(seed)
    images, labels = load_digits()
    held_out = 297
    train_x, train_y = images[:-held_out], labels[:-held_out]
    test_x, test_y = images[-held_out:], labels[-held_out:]
    test_batches = [(test_x[i : i + 128], test_y[i : i + 128]) for i in range(0, len(test_x), 128)]
    probe_index = torch.stack([torch.nonzero(test_y == c)[0, 0] for c in range(4)])
    threes = torch.nonzero(test_y == 3)[:2, 0]
    pairs = {"shifted copy (relu2)": (test_x[threes[0]], moved_copy(test_x[threes[0]])),  # the truth is known
             "another 3 (relu2)": (test_x[threes[0]], test_x[threes[1]])}  # Long et al.'s within-class matching

    model = DigitsNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    writer = SummaryWriter(str(logdir / config.name))
    start = time.perf_counter()
    loss = torch.tensor(0.0)
    with CNNViz(model, writer, probe_images=test_x[probe_index], probe_labels=test_y[probe_index]) as viz:
        viz.watch_dead_filters(every=dead_every)
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(train_x), generator=generator)
        for step in range(steps):
            if step % log_every == 0 or step == steps - 1:
                viz.log_activations(step)
                viz.log_filters(step)
                for method in ("guided_backprop", "grad_cam", "saliency"):
                    viz.log_saliency(step, method=method)
                viz.log_occlusion(step, window=8, stride=4)
                viz.log_performance(test_batches, step, class_names=[f"digit {c}" for c in range(10)],
                                    examples=4, to_pixels=lambda x: x * 0.5 + 0.5, name="held_out")
                viz.log_top_activations(test_batches, "relu2", step, k=6, directions=8, to_pixels=lambda x: x * 0.5 + 0.5)
                for name, pair in pairs.items():
                    viz.log_correspondence(step, *pair, "relu2", k=64, to_pixels=lambda x: x * 0.5 + 0.5, name=name)
            if step in (0, steps - 1):  # images made by the network: at initialisation, and trained
                viz.log_inversion(step, steps=150)
                viz.log_class_models(step, classes=list(range(10)), class_names=[f"digit {c}" for c in range(10)])
                viz.log_channel_images(step, "relu2", channels=list(range(8)))
            start_index = (step * batch_size) % (len(order) - batch_size)
            batch = order[start_index : start_index + batch_size]
            model.train()
            loss = F.cross_entropy(model(train_x[batch]), train_y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            writer.add_scalar("loss", loss.item(), step)
            viz.step(step)
        viz.log_embedding(test_batches, "relu3", steps - 1, n=len(test_x), to_pixels=lambda x: x * 0.5 + 0.5,
                          class_names=[f"digit {c}" for c in range(10)])
        model.eval()
        with torch.inference_mode():
            accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
        writer.add_scalar("accuracy", accuracy, steps - 1)
    writer.close()
    return {"loss": float(loss), "accuracy": accuracy, "seconds": time.perf_counter() - start}


def run_demo(logdir: str | Path, steps: int = 800, log_every: int = 100, dead_every: int = 50,
             shapes_steps: int = 0, shapes_log_every: int = 100) -> dict[str, dict]:
    """Both digits runs into ``logdir``, and the shapes run when ``shapes_steps`` > 0 (`tb-cnnviz demo` asks for 800);
    prints one line per run."""
    logdir = Path(logdir)
    results = {}
    for config in RUNS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DeadFilterWarning)
            results[config.name] = train_run(logdir, config, steps, log_every, dead_every)
        died = sum(1 for w in caught if issubclass(w.category, DeadFilterWarning))
        r = results[config.name]
        print(
            f"{config.name}: loss {r['loss']:.3f}, test accuracy {r['accuracy']:.1%}, "
            f"{died} dead-filter warning(s), {r['seconds']:.0f} s -> {logdir / config.name}"
        )
    if shapes_steps > 0:
        results[RUN_NAME] = r = shapes_run(logdir, steps=shapes_steps, log_every=shapes_log_every)
        print(f"{RUN_NAME}: loss {r['loss']:.3f}, test accuracy {r['accuracy']:.1%}, {r['seconds']:.0f} s -> {logdir / RUN_NAME}")
    return results
