"""Data sets made in memory, with no download: images whose ground truth is known."""

from .shapes import CLASSES, Shapes, shapes

__all__ = ["CLASSES", "Shapes", "shapes"]
