"""Event-file checksums in C instead of pure Python.

Without TensorFlow, TensorBoard's event writer (which ``torch.utils.tensorboard.SummaryWriter`` uses) computes
the CRC-32C of every record byte by byte in Python, about 120 ns per byte on this machine: for a 1.3 MB
activation step of resnet18 that is 0.16 s of GIL time taken from the training loop. google-crc32c computes
the same checksum in C. :func:`install` swaps it into TensorBoard's record writer, once, after checking on a
test vector that it gives the same masked checksum, so the bytes on disk are unchanged.
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_installed = False


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C of ``data``: rotate right by 15 bits and add a constant."""
    import google_crc32c

    crc = google_crc32c.value(bytes(data))
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def install() -> bool:
    """Use :func:`masked_crc32c` in TensorBoard's record writer; returns whether the fast path is on.

    Does nothing where google-crc32c has only its pure-Python fallback, or where it disagrees with
    TensorBoard's own checksum.
    """
    global _installed
    with _lock:
        if _installed:
            return True
        try:
            import google_crc32c
            from tensorboard.compat.tensorflow_stub import pywrap_tensorflow
            from tensorboard.summary.writer import record_writer
        except ImportError:
            return False
        sample = os.urandom(257)
        if google_crc32c.implementation != "c" or masked_crc32c(sample) != pywrap_tensorflow.masked_crc32c(sample):
            return False
        record_writer.masked_crc32c = masked_crc32c
        _installed = True
        return True
