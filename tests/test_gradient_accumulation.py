"""Gradient accumulation: a dead-filter window counts the inputs the forward hooks saw, not optimiser steps.

With ``viz.step`` called once per optimiser step, four micro-batches of 8 between two steps must give the
rates of one batch of 32 through the same weights -- checked against a second CNNViz that sees the big batch
in one forward, and against a naive count of all-zero maps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.util import tensor_util

from tb_cnnviz import CNNViz, metadata

MICRO, ACCUMULATE, STEPS, EVERY = 8, 4, 4, 2


def _dead_rates(logdir: Path, layer: str) -> dict[int, np.ndarray]:
    """step -> the dead rates written for ``layer``, read back from the event files."""
    tag = metadata.tag(metadata.DEAD, layer)
    found = {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == tag:
                    found[event.step] = tensor_util.make_ndarray(value.tensor)
    return found


def _naive_dead_counts(net: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per ReLU of TinyNet, per channel, how many images' maps are all zero: the layers called by hand."""
    with torch.no_grad():
        h1 = torch.relu(net.conv1(x))
        h2 = torch.relu(net.conv2(h1))
    return {"relu1": (h1.flatten(2).amax(dim=2) <= 0).sum(dim=0), "relu2": (h2.flatten(2).amax(dim=2) <= 0).sum(dim=0)}


def test_accumulated_micro_batches_give_the_rates_of_one_big_batch(tiny_net, tmp_path):
    big_net = type(tiny_net)()  # sees each step's 32 images in one forward, with the trained net's weights
    accumulating = CNNViz(tiny_net, tmp_path / "accumulated", raise_errors=True)
    one_batch = CNNViz(big_net, tmp_path / "big_batch", raise_errors=True)
    for viz in (accumulating, one_batch):
        viz.watch_dead_filters(every=EVERY, threshold=0.5)
    with torch.no_grad():
        tiny_net.conv1.bias.sub_(0.3)  # channels dead for some images, alive for others
    optimizer = torch.optim.SGD(tiny_net.parameters(), lr=0.5)
    generator = torch.Generator().manual_seed(1)
    naive = {"relu1": torch.zeros(3, dtype=torch.int64), "relu2": torch.zeros(4, dtype=torch.int64)}
    expected: dict[int, dict[str, np.ndarray]] = {}
    for step in range(STEPS):
        batch = torch.randn(MICRO * ACCUMULATE, 1, 6, 6, generator=generator)
        big_net.load_state_dict(tiny_net.state_dict())
        with torch.no_grad():
            big_net(batch)
        for name, counts in _naive_dead_counts(tiny_net, batch).items():
            naive[name] += counts
        for micro in batch.split(MICRO):  # gradient accumulation: several forwards per optimiser step
            (tiny_net(micro).square().mean() / ACCUMULATE).backward()
        optimizer.step()
        optimizer.zero_grad()
        accumulating.step(step)
        one_batch.step(step)
        if (step + 1) % EVERY == 0:
            inputs = EVERY * MICRO * ACCUMULATE
            expected[step] = {name: (counts.double() / inputs).float().numpy() for name, counts in naive.items()}
            naive = {name: torch.zeros_like(counts) for name, counts in naive.items()}
    accumulating.close()
    one_batch.close()
    for layer in ("relu1", "relu2"):
        accumulated = _dead_rates(tmp_path / "accumulated", layer)
        big = _dead_rates(tmp_path / "big_batch", layer)
        assert sorted(accumulated) == sorted(big) == sorted(expected) == [1, 3]
        for step in expected:
            np.testing.assert_array_equal(accumulated[step], big[step])
            np.testing.assert_array_equal(accumulated[step], expected[step][layer])
    rates = np.concatenate([_dead_rates(tmp_path / "accumulated", "relu1")[s] for s in expected])
    assert ((rates > 0) & (rates < 1)).any()  # partial rates: a count per optimiser step would not give these
