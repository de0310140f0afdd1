"""The demo's third run: a small CNN trained on :func:`tb_cnnviz.datasets.shapes`, colour shapes whose object
masks are known, so its maps are scored against the truth (pointing game, mass in mask) beside the sanity check
and the deletion / insertion curves, and its class models and channel images show shapes, edges and colours.
Its top patches are ranked both ways, by activation and by relevance to each image's class: with classes a
person can name, "fires on" and "matters for circle" can be told apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .datasets import CLASSES, shapes

RUN_NAME = "shapes"

#: the shapes are drawn in [0, 1]; the net sees them centred and scaled
MEAN, STD = 0.5, 0.25
#: the layer whose top patches are ranked both ways: a 20 px field, parts and whole shapes on 48 px images
TOP_LAYER = "relu3"
TOP_CHANNELS = list(range(12))


class ShapesNet(nn.Module):
    """Four conv blocks (conv, BatchNorm, ReLU; a 2x2 max-pool after the first two), the global average and a
    linear classifier: trains on a laptop CPU in well under a minute, and its last conv keeps a grid of a
    quarter of the image's side (12x12 on 48 px) for Grad-CAM to point with (an 6x6 grid points at the
    object in only about half the images)."""

    def __init__(self, classes: int = len(CLASSES), width: int = 12):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 5, padding=2)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(2 * width, 4 * width, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(4 * width)
        self.relu3 = nn.ReLU(inplace=True)
        self.conv4 = nn.Conv2d(4 * width, 4 * width, 3, padding=1)
        self.bn4 = nn.BatchNorm2d(4 * width)
        self.relu4 = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool(self.relu2(self.bn2(self.conv2(x))))
        x = self.relu3(self.bn3(self.conv3(x)))
        x = self.relu4(self.bn4(self.conv4(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def normalise(images: torch.Tensor) -> torch.Tensor:
    return (images - MEAN) / STD


def to_pixels(inputs: torch.Tensor) -> torch.Tensor:
    return inputs * STD + MEAN


def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int, lr: float = 3e-3,
          batch_size: int = 32, seed: int = 0, after_step: Callable[[int, float], None] | None = None) -> float:
    """``steps`` of Adam on random batches of (normalised) ``images`` from a seeded generator, each image flipped
    at random (a shape's class does not change in a mirror: 4x the data for free), the learning rate
    annealed to 0 on a cosine (the last steps settle instead of jumping about); ``after_step(step, loss)``
    runs after each, with the model in train mode. Returns the last loss."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    loss = 0.0
    for step in range(steps):
        batch = torch.randint(0, len(images), (batch_size,), generator=generator)
        model.train()
        output = F.cross_entropy(model(_flipped(images[batch], generator)), labels[batch])
        optimizer.zero_grad()
        output.backward()
        optimizer.step()
        schedule.step()
        loss = output.item()
        if after_step is not None:
            after_step(step, loss)
    return loss


def _flipped(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image mirrored left-right and/or top-bottom, at random."""
    flips = torch.randint(0, 2, (2, len(images), 1, 1, 1), generator=generator).bool()
    images = torch.where(flips[0], images.flip(-1), images)
    return torch.where(flips[1], images.flip(-2), images)


def shapes_run(logdir: Path, steps: int = 800, log_every: int = 100, size: int = 48, seed: int = 0,
               synthesis: bool = True) -> dict[str, float]:
    """Train :class:`ShapesNet` on 2,500 shapes for ``steps`` steps and log into ``logdir / RUN_NAME``: the maps
    of one probe image per class with every check (sanity, deletion / insertion against a random order, pointing
    game and mass in mask against the masks), activations, filters and accuracy every ``log_every`` steps, class
    models and channel images at initialisation and trained, and the trained net's top patches of
    :data:`TOP_LAYER` by activation and by relevance. Returns the final loss, accuracy and wall time.
    ``log_every`` is 100 of 800 steps by default: 8 points of each map's stability over training."""
    from torch.utils.tensorboard import SummaryWriter

    from .logger import CNNViz

    torch.manual_seed(seed)
    train_data, test_data = shapes(2500, size=size, seed=seed), shapes(300, size=size, seed=seed + 1)
    train_x, test_x = normalise(train_data.images), normalise(test_data.images)
    probes = torch.stack([torch.nonzero(test_data.labels == c)[0, 0] for c in range(len(CLASSES))])
    probe_masks = test_data.masks[probes]
    test_batches = [(test_x[i : i + 100], test_data.labels[i : i + 100]) for i in range(0, len(test_x), 100)]
    names = list(CLASSES)
    model = ShapesNet()
    writer = SummaryWriter(str(Path(logdir) / RUN_NAME))
    start = time.perf_counter()
    with CNNViz(model, writer, probe_images=test_x[probes], probe_labels=test_data.labels[probes]) as viz:

        def log(step: int) -> None:
            viz.log_activations(step)
            viz.log_filters(step)
            for method in ("grad_cam", "guided_backprop", "saliency"):
                viz.log_saliency(step, method=method, checks=True, masks=probe_masks)
            viz.log_occlusion(step, window=size // 4, stride=size // 16, checks=True, masks=probe_masks)
            viz.log_performance(test_batches, step, class_names=names, examples=4, to_pixels=to_pixels, name="held_out")

        def synthesised(step: int) -> None:  # images made by the network: at initialisation, and trained
            if not synthesis:
                return
            # both in the net's input range, taken from the probe images (normalised shapes: [-2, 2])
            viz.log_class_models(step, classes=list(range(len(CLASSES))), class_names=names)
            viz.log_channel_images(step, "relu2", channels=list(range(12)))

        def after_step(step: int, loss: float) -> None:
            writer.add_scalar("loss", loss, step)
            if (step + 1) % log_every == 0 and step + 1 < steps:
                log(step + 1)

        log(0)
        synthesised(0)
        loss = train(model, train_x, train_data.labels, steps, seed=seed, after_step=after_step)
        model.eval()
        log(steps)
        synthesised(steps)
        for rank in ("activation", "relevance"):  # labelled data: relevance explains each image's label
            viz.log_top_activations(test_batches, TOP_LAYER, steps, k=6, to_pixels=to_pixels, channels=TOP_CHANNELS,
                                    rank=rank, class_names=names if rank == "relevance" else None)
        with torch.inference_mode():
            accuracy = (model(test_x).argmax(1) == test_data.labels).float().mean().item()
        writer.add_scalar("accuracy", accuracy, steps)
    writer.close()
    return {"loss": loss, "accuracy": accuracy, "seconds": time.perf_counter() - start}
