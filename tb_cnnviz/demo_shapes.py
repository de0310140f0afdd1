"""The demo's third run: a small CNN trained on :func:`tb_cnnviz.datasets.shapes`, colour shapes whose object
masks are known, so its maps are scored against the truth (pointing game, mass in mask) beside the sanity check
and the deletion / insertion curves, and its class models and channel images show shapes, edges and colours.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .datasets import CLASSES

#: the shapes are drawn in [0, 1]; the net sees them centred and scaled
MEAN, STD = 0.5, 0.25


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
    """``steps`` of Adam on random batches of (normalised) ``images`` from a seeded generator, the learning rate
    annealed to 0 on a cosine (the last steps settle instead of jumping about); ``after_step(step, loss)``
    runs after each, with the model in train mode. Returns the last loss."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    loss = 0.0
    for step in range(steps):
        batch = torch.randint(0, len(images), (batch_size,), generator=generator)
        model.train()
        output = F.cross_entropy(model(images[batch]), labels[batch])
        optimizer.zero_grad()
        output.backward()
        optimizer.step()
        schedule.step()
        loss = output.item()
        if after_step is not None:
            after_step(step, loss)
    return loss
