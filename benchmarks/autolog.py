"""Every view left on: a training run with ``autolog(budget=0.05)`` against the same run without tb_cnnviz.

resnet18 (10 classes) at 64x64, batch 32, 300 SGD steps on fixed random batches; autolog with every view (the
data-set views over 8 batches of 32), inline and with ``background=True``. The bare loop runs first and last
(its mean is the reference), so drift hits all runs alike. Printed: each run's wall time of the 300 steps
(autolog's set-up included, ``close()`` apart), the ratio to the bare loop (goal <= 1.07), the share of
training time tb_cnnviz measured for itself, the views logged (at which steps) and those that never fit; for
the background run the longest training step against the bare loop's median step (goal <= 1.5).

    python benchmarks/autolog.py [--steps 300] [--budget 0.05] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

import torch
import torch.nn.functional as F
import torchvision

from tb_cnnviz import CNNViz


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run(steps: int, device: str, budget: float | None, background: bool = False) -> dict:
    """One training run; ``budget`` None: no tb_cnnviz at all."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(1)
    batches = [(torch.randn(32, 3, 64, 64, generator=generator).to(device),
                torch.randint(0, 10, (32,), generator=generator).to(device)) for _ in range(4)]
    data = [(torch.randn(32, 3, 64, 64, generator=generator), torch.randint(0, 10, (32,), generator=generator))
            for _ in range(8)]
    viz = auto = None
    step_seconds = []
    _sync(device)
    start = time.perf_counter()
    if budget is not None:
        viz = CNNViz(model, tempfile.mkdtemp(prefix="autolog_"), probe_images=batches[0][0][:8],
                     probe_labels=batches[0][1][:8])
        auto = viz.autolog(budget=budget, data=data, background=background)
    for step in range(steps):
        begin = time.perf_counter()
        x, y = batches[step % len(batches)]
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if viz is not None:
            viz.step(step)
        _sync(device)
        step_seconds.append(time.perf_counter() - begin)
    total = time.perf_counter() - start
    closing = 0.0
    never = ""
    if viz is not None:
        begin = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            viz.close()
        closing = time.perf_counter() - begin
        never = "; ".join(str(w.message) for w in caught if "never logged" in str(w.message))
    return {"total": total, "steps": step_seconds, "report": auto.report() if auto else None, "close": closing,
            "never": never}


def describe(name: str, result: dict, bare: float, bare_median_step: float) -> None:
    report = result["report"]
    print(f"{name}: {result['total']:.1f} s for the steps, ratio {result['total'] / bare:.3f} (goal <= 1.07); "
          f"tb_cnnviz measured {report['logging_seconds']:.1f} s against {report['training_seconds']:.1f} s of "
          f"training: share {report['share']:.3f} (budget {report['budget']}); close() {result['close']:.1f} s")
    steps = result["steps"][1:]  # the first step of every run pays for allocation (the bare loop's too)
    longest = max(range(len(steps)), key=steps.__getitem__)
    print(f"  longest step (after the first) {steps[longest]:.3f} s, step {longest + 1} = "
          f"{steps[longest] / bare_median_step:.2f}x the bare median step {bare_median_step:.3f} s (goal <= 1.5 in "
          f"the background); its median step {statistics.median(steps):.3f} s")
    for view, entry in report["views"].items():
        if entry["steps"]:
            print(f"  {view:16s} logged {len(entry['steps']):3d}x at steps {entry['steps'][:8]}"
                  f"{' ...' if len(entry['steps']) > 8 else ''}, {statistics.median(entry['seconds']):.3f} s a call")
    if result["never"]:
        print(f"  never fit: {result['never']}")
    if report["skipped"]:
        print(f"  left out: {report['skipped']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    first = run(args.steps, args.device, None)
    inline = run(args.steps, args.device, args.budget)
    background = run(args.steps, args.device, args.budget, background=True)
    last = run(args.steps, args.device, None)
    bare = (first["total"] + last["total"]) / 2
    bare_median_step = statistics.median(first["steps"] + last["steps"])
    print(f"resnet18, batch 32, 64x64, {args.steps} SGD steps on {args.device}; bare loop {first['total']:.1f} s "
          f"and {last['total']:.1f} s (mean {bare:.1f} s, median step {bare_median_step:.3f} s, longest after the "
          f"first {max(first['steps'][1:] + last['steps'][1:]):.3f} s)")
    describe(f"autolog(budget={args.budget})", inline, bare, bare_median_step)
    describe(f"autolog(budget={args.budget}, background=True)", background, bare, bare_median_step)


if __name__ == "__main__":
    main()
