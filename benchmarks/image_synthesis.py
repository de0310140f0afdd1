"""Images made by the network: time per inversion, class model and channel visualisation on the demo's
DigitsNet (32x32) and on resnet18 at 224x224 (random weights), on the CPU.

The peer, measured in the same run, is the bare optimisation: the same number of Adam steps of a plain
forward + backward to the input (the full model, no hooks, no regulariser). The ratio shows what our
machinery adds or saves (an inversion of an early layer stops the forward at that layer, so it can be < 1).

Then the default number of steps against the objective it reaches: the demo's ShapesNet trained 300 steps,
each kind of image at 25 ... 400 steps, the objective of the final image measured without jitter (class
models: score - L2 penalty; channel images: the channel's mean activation; inversion: the relative code
error, lower is better) as a share of the former default's (200 steps; 256 for channel images).

    python benchmarks/image_synthesis.py [--steps 200] [--resnet-steps 20] [--no-curve]
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision

from tb_cnnviz.demo import DigitsNet, load_digits
from tb_cnnviz.methods import channel_visualization, class_model, invert


def bare_steps(model: torch.nn.Module, shape: tuple[int, ...], steps: int) -> float:
    """Seconds for ``steps`` Adam steps on an input, maximising the first output: the peer."""
    for param in model.parameters():
        param.requires_grad_(False)
    x = torch.zeros(shape, requires_grad=True)
    optimizer = torch.optim.Adam([x], lr=0.05)
    start = time.perf_counter()
    for _ in range(steps):
        (gradient,) = torch.autograd.grad(model(x)[:, 0].sum(), x)
        x.grad = gradient
        optimizer.step()
    seconds = time.perf_counter() - start
    for param in model.parameters():
        param.requires_grad_(True)
    return seconds


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def report(name: str, seconds: float, peer: float, steps: int) -> None:
    print(f"{name:<46} {seconds:8.2f} s  {1000 * seconds / steps:7.1f} ms/step  peer {peer:7.2f} s  ratio {seconds / peer:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--resnet-steps", type=int, default=20, help="steps on resnet18 at 224 (per-step cost x 200 = a full run)")
    parser.add_argument("--no-curve", action="store_true", help="skip the objective-vs-steps curve on ShapesNet")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")

    digits = DigitsNet().eval()
    image = load_digits()[0][:1]
    steps = args.steps
    peer = bare_steps(digits, (1, 1, 32, 32), steps)
    for layer in ("conv1", "conv3", "fc"):
        report(f"DigitsNet invert {layer}, {steps} steps", timed(lambda: invert(digits, image, layer, steps=steps, progress=False)), peer, steps)
    peer10 = bare_steps(digits, (10, 1, 32, 32), steps)
    report(f"DigitsNet class_model x10, {steps} steps", timed(lambda: class_model(digits, list(range(10)), (1, 32, 32), steps=steps, progress=False)), peer10, steps)
    peer8 = bare_steps(digits, (8, 1, 32, 32), steps)
    report(f"DigitsNet channel_vis relu2 x8, {steps} steps", timed(lambda: channel_visualization(digits, "relu2", list(range(8)), (1, 32, 32), steps=steps, progress=False)), peer8, steps)

    resnet = torchvision.models.resnet18(weights=None).eval()
    photo = torch.randn(1, 3, 224, 224)
    steps = args.resnet_steps
    peer = bare_steps(resnet, (1, 3, 224, 224), steps)
    for layer in ("layer1", "layer3", "fc"):
        report(f"resnet18@224 invert {layer}, {steps} steps", timed(lambda: invert(resnet, photo, layer, steps=steps, progress=False)), peer, steps)
    report(f"resnet18@224 class_model x1, {steps} steps", timed(lambda: class_model(resnet, 1, (3, 224, 224), steps=steps, progress=False)), peer, steps)
    report(f"resnet18@224 channel_vis layer3 x1, {steps} steps", timed(lambda: channel_visualization(resnet, "layer3", 0, (3, 224, 224), steps=steps, progress=False)), peer, steps)
    if not args.no_curve:
        objective_curve()


def objective_curve() -> None:
    """Objective of the final image against the steps taken, on the trained ShapesNet."""
    from tb_cnnviz.datasets import shapes
    from tb_cnnviz.demo_shapes import ShapesNet, normalise, train
    from tb_cnnviz.methods._hooks import layer_output
    from tb_cnnviz.methods.synthesis.inversion import default_inversion_layers

    torch.manual_seed(0)
    data = shapes(1000, size=48, seed=0)
    x = normalise(data.images)
    net = ShapesNet()
    train(net, x, data.labels, 300)
    net.eval()
    span = (float(x.min()), float(x.max()))

    def class_objective(steps: int) -> torch.Tensor:
        made = class_model(net, list(range(5)), (3, 48, 48), steps=steps, jitter_pixels=2, blur=1.0, progress=False)
        with torch.no_grad():
            return net(made.images)[torch.arange(5), torch.arange(5)] - 10.0 * made.images.square().flatten(1).mean(1)

    def channel_objective(steps: int) -> torch.Tensor:
        made = channel_visualization(net, "relu2", list(range(12)), (3, 48, 48), steps=steps, input_range=span, progress=False)
        with torch.no_grad():
            return layer_output(net, "relu2", made.images)[torch.arange(12), torch.arange(12)].flatten(1).mean(1)

    def inversion_objective(steps: int) -> torch.Tensor:
        return torch.cat([invert(net, x[:1], layer, steps=steps, progress=False).final_code_error
                          for layer in default_inversion_layers(net)])

    print("objective of the final image as a share of the former default's (ShapesNet trained 300 steps; "
          "mean over classes / channels / layers, the worst in brackets; inversion: code error, lower is better)")
    for name, objective, former, better in (("class models (5)", class_objective, 200, max),
                                            ("channel images relu2 (12)", channel_objective, 256, max),
                                            ("inversion (5 layers)", inversion_objective, 200, min)):
        start = time.perf_counter()
        reference = objective(former)
        seconds = time.perf_counter() - start
        cells = []
        for steps in (25, 50, 100, 200, 400):
            start = time.perf_counter()
            share = objective(steps) / reference
            cells.append(f"{steps}: {share.mean():.3f} ({(share.min() if better is max else share.max()):.3f}) "
                         f"{(time.perf_counter() - start) / seconds:.2f}x time")
        print(f"  {name:<26} " + "; ".join(cells))


if __name__ == "__main__":
    main()
