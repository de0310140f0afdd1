"""Shared fixtures: tiny hand-weighted nets, the demo's log directory, and TensorBoard's real WSGI app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn
from werkzeug.test import Client

from helpers import QUICK_DEMO, tensorboard_client

from tb_cnnviz.demo import run_demo



class TinyNet(nn.Module):
    """conv(1->3) -> ReLU -> conv(3->4) -> ReLU -> pool -> linear: small enough to check on paper."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.fc(x.mean(dim=(2, 3)))


@pytest.fixture
def tiny_net() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet()


@pytest.fixture
def hand_net(tiny_net: TinyNet) -> TinyNet:
    """conv1 by hand: channel 0 copies the input, channel 1 is -x-1 (dead after the ReLU for x >= 0),
    channel 2 is a 3x3 mean (positive for positive input)."""
    with torch.no_grad():
        tiny_net.conv1.weight.zero_()
        tiny_net.conv1.bias.zero_()
        tiny_net.conv1.weight[0, 0, 1, 1] = 1.0
        tiny_net.conv1.weight[1, 0, 1, 1] = -1.0
        tiny_net.conv1.bias[1] = -1.0
        tiny_net.conv1.weight[2, 0] = 1.0 / 9
    return tiny_net


@pytest.fixture(scope="session")
def demo_logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quick demo's two runs (healthy and too-high learning rate), written once per test session."""
    logdir = tmp_path_factory.mktemp("demo")
    run_demo(logdir, **QUICK_DEMO)
    return logdir


@pytest.fixture(scope="session", params=["false", "true"], ids=["python_loader", "rust_data_server"])
def demo_client(request: pytest.FixtureRequest, demo_logdir: Path) -> Iterator[Client]:
    yield tensorboard_client(demo_logdir, request.param)
