"""Procedural colour shapes on textured, cluttered backgrounds, with each object's mask.

A data set where the answer to "where should the map look" is known pixel for pixel (the object's mask), big
enough (64 px by default) for class models and channel images to show something a person recognises, and made
in memory in a fraction of a second: every image is drawn at once with numpy from one seeded generator.

Each image holds one object of a class from :data:`CLASSES` at a random position, scale, rotation (up to 30
degrees) and saturated colour, over a muted two-colour texture of random stripes, with three thin lines of
clutter under it and a little pixel noise. The class is the shape alone: colour, position and size say nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

CLASSES = ("circle", "square", "triangle", "cross", "ring")

_CHUNK = 512  # images drawn at once: bounds the memory of the per-pixel arrays


@dataclass(frozen=True)
class Shapes:
    """``images`` (n, 3, size, size) float32 in [0, 1]; ``labels`` (n,) int64 indexing ``classes``; ``masks``
    (n, size, size) bool, True on the object. Indexing gives ``(image, label)``, as torchvision data sets do, so
    it goes straight into a ``DataLoader``; the masks stay here, in the same order."""

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    classes: tuple[str, ...] = CLASSES

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


def shapes(n: int, size: int = 64, seed: int = 0) -> Shapes:
    """``n`` images of ``size`` x ``size`` pixels, the classes in equal shares (in a shuffled order), the same for
    the same ``seed`` (its own generator: numpy's and torch's global RNGs are untouched).

        data = shapes(2000, seed=0)
        loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True)
    """
    for value, name, least in ((n, "n", 1), (size, "size", 16)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{name} must be an int >= {least}; got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0; got {seed!r}")
    rng = np.random.default_rng(int(seed))
    labels = rng.permutation(np.arange(n) % len(CLASSES))
    images = np.empty((n, 3, size, size), np.float32)
    masks = np.empty((n, size, size), bool)
    for start in range(0, n, _CHUNK):
        part = slice(start, min(start + _CHUNK, n))
        drawn, masks[part] = _draw(labels[part], size, rng)
        images[part] = drawn.transpose(0, 3, 1, 2)
    return Shapes(torch.from_numpy(images), torch.from_numpy(labels).long(), torch.from_numpy(masks))


def _draw(labels: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    count = len(labels)
    ys, xs = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5)[:, None]  # pixel centres, (1, H, W)
    image = _background(count, size, xs, ys, rng)
    for _ in range(3):
        image = _clutter_line(image, size, xs, ys, rng)
    radius = rng.uniform(0.17, 0.3, count).astype(np.float32) * size
    margin = 1.15 * radius + 1  # the farthest corner (a square's, a triangle's) is 1.13 radii out
    cx = rng.uniform(margin, size - margin).astype(np.float32)
    cy = rng.uniform(margin, size - margin).astype(np.float32)
    angle = rng.uniform(-np.pi / 6, np.pi / 6, count).astype(np.float32)
    dx, dy = xs - cx[:, None, None], ys - cy[:, None, None]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    a = (dx * cos + dy * sin) / radius[:, None, None]  # the object's own axes, in units of its radius
    b = (dy * cos - dx * sin) / radius[:, None, None]
    mask = _inside(labels, a, b)
    colour = _hsv_to_rgb(rng.uniform(0, 1, count), rng.uniform(0.65, 1, count), rng.uniform(0.75, 1, count))
    shade = 0.88 + 0.12 * np.clip(-b, -1, 1)[..., None]  # lit from above: a hint of volume, no class cue
    image = np.where(mask[..., None], colour[:, None, None, :] * shade, image)
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(0.03)
    return np.clip(image, 0, 1, out=image), mask


def _inside(labels: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each object's mask in its own coordinates: a circle, square, triangle, cross and ring of radius ~1."""
    shape_of = {
        "circle": lambda a, b: a * a + b * b <= 1.0,
        "square": lambda a, b: np.maximum(np.abs(a), np.abs(b)) <= 0.8,
        "triangle": lambda a, b: (b <= 0.6) & (np.abs(a) <= 0.95 * (b + 1.0) / 1.6),
        "cross": lambda a, b: ((np.abs(a) <= 0.3) & (np.abs(b) <= 0.9)) | ((np.abs(b) <= 0.3) & (np.abs(a) <= 0.9)),
        "ring": lambda a, b: (a * a + b * b <= 1.0) & (a * a + b * b >= 0.55**2),
    }
    mask = np.empty(a.shape, bool)
    for index, name in enumerate(CLASSES):
        chosen = labels == index
        mask[chosen] = shape_of[name](a[chosen], b[chosen])
    return mask


def _background(count: int, size: int, xs: np.ndarray, ys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two muted colours mixed by a texture of three random stripe patterns."""
    texture = np.zeros((count, size, size), np.float32)
    for _ in range(3):
        frequency = rng.uniform(1.5, 6, count).astype(np.float32) * 2 * np.pi / size
        direction = rng.uniform(0, np.pi, count).astype(np.float32)
        phase = rng.uniform(0, 2 * np.pi, count).astype(np.float32)
        along = xs * np.cos(direction)[:, None, None] + ys * np.sin(direction)[:, None, None]
        texture += np.sin(along * frequency[:, None, None] + phase[:, None, None])
    mix = (np.float32(0.5) + texture / np.float32(6))[..., None]
    first = _hsv_to_rgb(rng.uniform(0, 1, count), rng.uniform(0, 0.35, count), rng.uniform(0.2, 0.6, count))
    second = _hsv_to_rgb(rng.uniform(0, 1, count), rng.uniform(0, 0.35, count), rng.uniform(0.2, 0.6, count))
    return first[:, None, None, :] * (1 - mix) + second[:, None, None, :] * mix


def _clutter_line(image: np.ndarray, size: int, xs: np.ndarray, ys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A thin straight segment of a random colour across part of each image."""
    count = len(image)
    start = rng.uniform(0, size, (count, 2)).astype(np.float32)
    end = rng.uniform(0, size, (count, 2)).astype(np.float32)
    direction = end - start
    length2 = np.maximum((direction**2).sum(1), 1e-6)[:, None, None]
    px, py = xs - start[:, 0, None, None], ys - start[:, 1, None, None]
    t = np.clip((px * direction[:, 0, None, None] + py * direction[:, 1, None, None]) / length2, 0, 1)
    distance2 = (px - t * direction[:, 0, None, None]) ** 2 + (py - t * direction[:, 1, None, None]) ** 2
    colour = _hsv_to_rgb(rng.uniform(0, 1, count), rng.uniform(0, 0.8, count), rng.uniform(0.3, 0.9, count))
    on_line = (distance2 <= (0.6 + size / 128) ** 2)[..., None]
    return np.where(on_line, colour[:, None, None, :], image)


def _hsv_to_rgb(hue: np.ndarray, saturation: np.ndarray, value: np.ndarray) -> np.ndarray:
    """(count,) HSV in [0, 1] to (count, 3) RGB float32 (the standard hexcone conversion, vectorised)."""
    k = (np.array([5.0, 3.0, 1.0]) + hue[:, None] * 6) % 6
    rgb = value[:, None] - value[:, None] * saturation[:, None] * np.clip(np.minimum(k, 4 - k), 0, 1)
    return rgb.astype(np.float32)
