"""Training overhead of tb_cnnviz: the same loop with and without logging, measured in one run.

Logging = health watching on every activation found with no arguments (flushed every 100 steps; with the
value histograms of the Distribution view, binned in the same pass) plus
log_activations and log_filters every 100 steps. Two identical models train in alternating blocks of 100
steps, one plain and one logged (the order swapped every round), so machine noise and drift hit both alike;
each logged block holds one logging round. Printed per model: the ratio of the median block times (goal: at
most 1.02), and where the time goes. Models: torchvision resnet18 (ReLU modules), PyTorch's MNIST example net
(functional F.relu in forward, watched at the modules feeding them) and torchvision efficientnet_b0 (SiLU:
dormant channels, watched at their input). CPU by default; pass --device cuda on a GPU machine.

    python benchmarks/overhead.py [--models resnet18 mnist efficientnet_b0] [--rounds 6] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

from tb_cnnviz import CNNViz

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from example_nets import MnistExampleNet  # noqa: E402 -- the net as PyTorch's example publishes it

EVERY = 100


#: model name -> (factory, input shape of one batch, description)
MODELS = {
    "resnet18": (lambda: torchvision.models.resnet18(num_classes=10), (32, 3, 64, 64), "resnet18, batch 32, 64x64"),
    "mnist": (MnistExampleNet, (64, 1, 28, 28), "MNIST example net (F.relu), batch 64, 28x28"),
    "efficientnet_b0": (lambda: torchvision.models.efficientnet_b0(num_classes=10), (32, 3, 64, 64),
                        "efficientnet_b0 (SiLU), batch 32, 64x64"),
}


class Trainer:
    """One of MODELS with SGD; optionally logging to a fresh log directory."""

    def __init__(self, model: str, device: str, log: bool):
        torch.manual_seed(0)
        factory, shape, _ = MODELS[model]
        self.model = factory().to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.x = torch.randn(*shape, device=device)
        self.y = torch.randint(0, 10, (shape[0],), device=device)
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


def measure(model: str, device: str, rounds: int) -> None:
    plain, logged = Trainer(model, device, log=False), Trainer(model, device, log=True)
    plain.block(10), logged.block(10)  # warm up both
    logged.step_index, logged.logging_s = 0, 0.0
    plain_s, logged_s = [], []
    for round_index in range(rounds):
        order = (plain, logged) if round_index % 2 == 0 else (logged, plain)
        for trainer in order:
            (plain_s if trainer is plain else logged_s).append(trainer.block())
    logged.viz.close()
    p, lg = statistics.median(plain_s), statistics.median(logged_s)
    print(f"{MODELS[model][2]} on {device}: {rounds} rounds of {EVERY} steps plain and logged")
    print(f"  without logging : {p:6.2f} s per {EVERY} steps ({1000 * p / EVERY:.1f} ms/step)")
    print(f"  with logging    : {lg:6.2f} s per {EVERY} steps, of which {logged.logging_s / rounds:.2f} s "
          "inside tb_cnnviz calls (the rest: health hooks)")
    print(f"  ratio           : {lg / p:.3f}  (goal <= 1.02); of the fastest blocks: "
          f"{min(logged_s) / min(plain_s):.3f} (less sensitive to a loaded machine)", flush=True)
    binning, step = histogram_cost(model, device)
    print(f"  of which binning the values (Distribution view): {1000 * binning:.2f} ms per measured forward, "
          f"{binning / step:.2%} of a training step measured (a quarter of that at one step in 4)", flush=True)


def histogram_cost(model: str, device: str, repeats: int = 5) -> tuple[float, float]:
    """The monitor's value binning alone (the sample of every watched layer's output, one bucketize and one
    bincount), timed on the outputs of one real forward, beside one training step: best of ``repeats``."""
    from tb_cnnviz.methods.activations.dead_filters import DeadFilterMonitor
    from tb_cnnviz.methods.activations.histograms import sample_values

    trainer = Trainer(model, device, log=False)
    monitor = DeadFilterMonitor(trainer.model)
    outputs = []
    monitor._measure = lambda name, call, output: outputs.append(output.detach())  # keep what the hooks see
    with monitor, torch.no_grad():
        trainer.model(trainer.x)
    binning = step = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        for _ in range(20):
            monitor._binned_together([sample_values(output) for output in outputs])
        _sync(device)
        binning = min(binning, (time.perf_counter() - start) / 20)
        step = min(step, trainer.block(2) / 2)
    return binning, step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    for model in args.models:
        measure(model, args.device, args.rounds)


if __name__ == "__main__":
    main()
