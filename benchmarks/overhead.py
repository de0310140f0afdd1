"""Training overhead of tb_cnnviz: the same loop with and without logging, measured in one run.

Logging = dead-filter watching on every ReLU (flushed every 100 steps) plus log_activations and log_filters
every 100 steps. Two identical models train in alternating blocks of 100 steps, one plain and one logged
(the order swapped every round), so machine noise and drift hit both alike; each logged block holds one
logging round. Printed: the ratio of the median block times (goal: at most 1.02), and where the time goes.
CPU by default; pass --device cuda on a GPU machine.

    python benchmarks/overhead.py [--rounds 6] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
import torchvision

from tb_cnnviz import CNNViz

EVERY = 100


class Trainer:
    """resnet18 (batch 32, 64x64) with SGD; optionally logging to a fresh log directory."""

    def __init__(self, device: str, log: bool):
        torch.manual_seed(0)
        self.model = torchvision.models.resnet18(num_classes=10).to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.x = torch.randn(32, 3, 64, 64, device=device)
        self.y = torch.randint(0, 10, (32,), device=device)
        self.device = device
        self.step_index = 0
        self.logging_s = 0.0  # time spent inside tb_cnnviz calls
        self.viz = None
        if log:
            self.viz = CNNViz(self.model, tempfile.mkdtemp(prefix="overhead_"), probe_images=self.x[:4], raise_errors=True)
            self.viz.watch_dead_filters(every=EVERY)

    def block(self, steps: int = EVERY) -> float:
        """Seconds for ``steps`` training steps (with one logging round at the end if logging)."""
        _sync(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            loss = F.cross_entropy(self.model(self.x), self.y)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            if self.viz is not None:
                t = time.perf_counter()
                self.viz.step(self.step_index)
                if self.step_index % EVERY == EVERY - 1:
                    self.viz.log_activations(self.step_index)
                    self.viz.log_filters(self.step_index)
                self.logging_s += time.perf_counter() - t
            self.step_index += 1
        _sync(self.device)
        return time.perf_counter() - start


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    plain, logged = Trainer(args.device, log=False), Trainer(args.device, log=True)
    plain.block(10), logged.block(10)  # warm up both
    logged.step_index, logged.logging_s = 0, 0.0
    plain_s, logged_s = [], []
    for round_index in range(args.rounds):
        order = (plain, logged) if round_index % 2 == 0 else (logged, plain)
        for trainer in order:
            (plain_s if trainer is plain else logged_s).append(trainer.block())
    logged.viz.close()
    p, lg = statistics.median(plain_s), statistics.median(logged_s)
    print(f"resnet18, batch 32, 64x64 on {args.device}: {args.rounds} rounds of {EVERY} steps plain and logged")
    print(f"  without logging : {p:6.2f} s per {EVERY} steps ({1000 * p / EVERY:.1f} ms/step)")
    print(f"  with logging    : {lg:6.2f} s per {EVERY} steps, of which {logged.logging_s / args.rounds:.2f} s "
          "inside tb_cnnviz calls (the rest: dead-filter hooks)")
    print(f"  ratio           : {lg / p:.3f}  (goal <= 1.02)")


if __name__ == "__main__":
    main()
