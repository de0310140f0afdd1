"""Images made by the network: time per inversion, class model and channel visualisation on the demo's
DigitsNet (32x32) and on resnet18 at 224x224 (random weights), on the CPU.

The peer, measured in the same run, is the bare optimisation: the same number of Adam steps of a plain
forward + backward to the input (the full model, no hooks, no regulariser). The ratio shows what our
machinery adds or saves (an inversion of an early layer stops the forward at that layer, so it can be < 1).

Then issue 24's bar, per kind, on the demo's ShapesNet trained 300 steps: today's call (the code before the
image parameterisation, run from ``git archive`` of ``FORMER_REF``) against the new default at equal objective,
with the quality-vs-steps curve the default steps come from (see :func:`equal_objective`).

    python benchmarks/image_synthesis.py [--steps 200] [--resnet-steps 20] [--no-curve | --only-curve]
"""

from __future__ import annotations

import argparse
import sys
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
    parser.add_argument("--no-curve", action="store_true", help="skip the equal-objective comparison on ShapesNet")
    parser.add_argument("--only-curve", action="store_true", help="only the equal-objective comparison")
    parser.add_argument("--former-ref", default=FORMER_REF, help="git ref of today's code (default: %(default)s)")
    parser.add_argument("--kinds", default="class,channel,inversion", help="kinds of the equal-objective comparison")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    if args.only_curve:
        equal_objective(args.former_ref, tuple(args.kinds.split(",")))
        return

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
        equal_objective(args.former_ref, tuple(args.kinds.split(",")))


#: The code before the image parameterisation, early stopping and batched inversion: "today" in the speed
#: comparison (issue 24), run from ``git archive`` of this commit in a child process.
FORMER_REF = "9ef3a91"
#: Steps of the quality-vs-steps curve (a maximum: early stopping may end a run sooner).
CURVE_STEPS = (20, 30, 50, 100, 200)
FORMER_CALLS = r"""
import sys, time, torch
from tb_cnnviz.demo_shapes import ShapesNet
from tb_cnnviz.methods import channel_visualization, class_model, invert
from tb_cnnviz.methods.synthesis.inversion import default_inversion_layers
torch.set_num_threads(int(sys.argv[3]))
state = torch.load(sys.argv[1])
net = ShapesNet()
net.load_state_dict(state["net"])
net.eval()
x, span, out = state["image"], state["span"], {}
start = time.perf_counter()  # the demo's call (jitter 2, blur 1; 100 steps by default)
out["class"] = class_model(net, list(range(5)), (3, 48, 48), jitter_pixels=2, blur=1.0, progress=False).images
out["class_s"] = time.perf_counter() - start
start = time.perf_counter()
out["channel"] = channel_visualization(net, "relu2", list(range(12)), (3, 48, 48), input_range=span, progress=False).images
out["channel_s"] = time.perf_counter() - start
start = time.perf_counter()  # the view's loop: one optimisation per layer, 200 steps each
out["inversion"] = torch.cat([invert(net, x, layer, progress=False).images for layer in default_inversion_layers(net)])
out["inversion_s"] = time.perf_counter() - start
torch.save(out, sys.argv[2])
"""


def former_run(net: torch.nn.Module, image: torch.Tensor, span: tuple[float, float], ref: str) -> dict:
    """Today's three calls, timed in a child process on the code of ``ref`` (the same trained weights)."""
    import subprocess
    import tarfile
    import tempfile
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder) / "former.tar"
        subprocess.run(["git", "-C", str(root), "archive", "-o", str(archive), ref, "tb_cnnviz"], check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(Path(folder) / "tree", filter="data")
        torch.save({"net": net.state_dict(), "image": image, "span": span}, Path(folder) / "state.pt")
        env = {**__import__("os").environ, "PYTHONPATH": str(Path(folder) / "tree")}
        subprocess.run([sys.executable, "-c", FORMER_CALLS, str(Path(folder) / "state.pt"), str(Path(folder) / "out.pt"),
                        str(torch.get_num_threads())], check=True, env=env, cwd=folder)
        return torch.load(Path(folder) / "out.pt")


def equal_objective(ref: str, kinds: tuple[str, ...] = ("class", "channel", "inversion")) -> None:
    """Issue 24's bar: each kind's new default against today's, at equal objective, on a trained ShapesNet.

    The objective is measured on each call's final image, with no jitter or transform, the same way for both:
    class models the class's logit (and its probability, the default's own objective since issue 25: it
    maximises the log-softmax of a transparent image), channel images the channel's mean activation (both mean over the units,
    higher is better), inversion the relative code error (mean over the layers, lower is better). "Today" is
    the former default's call (``FORMER_REF``); the curve runs the new default at each of ``CURVE_STEPS``
    (early stopping on), and the time to reach today's objective is the time of the first run of the curve
    whose objective is at least as good."""
    from tb_cnnviz.datasets import shapes
    from tb_cnnviz.demo_shapes import ShapesNet, normalise, train
    from tb_cnnviz.methods._hooks import layer_output
    from tb_cnnviz.methods.synthesis.inversion import default_inversion_layers, invert_layers

    torch.manual_seed(0)
    data = shapes(1000, size=48, seed=0)
    x = normalise(data.images)
    net = ShapesNet()
    train(net, x, data.labels, 300)
    net.eval()
    span = (float(x.min()), float(x.max()))
    image = x[:1]
    layers = default_inversion_layers(net)
    units = torch.arange(12)

    def class_value(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(images)[torch.arange(5), torch.arange(5)]

    def class_probability(images: torch.Tensor) -> float:
        """The default's own objective since issue 25 (it maximises the log-softmax): the class's probability."""
        with torch.no_grad():
            return net(images).softmax(1)[torch.arange(5), torch.arange(5)].mean().item()

    def channel_value(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return layer_output(net, "relu2", images)[units, units].flatten(1).mean(1)

    def inversion_value(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.stack([((layer_output(net, layer, images[i:i + 1]) - layer_output(net, layer, image)).norm()
                                 / layer_output(net, layer, image).norm()) for i, layer in enumerate(layers)])

    def new(kind: str, steps: int | None) -> tuple[torch.Tensor, int]:
        limit = {} if steps is None else {"steps": steps}
        if kind == "class":
            made = class_model(net, list(range(5)), (3, 48, 48), input_range=span, progress=False, **limit)
            return made.images, len(made.objective)
        if kind == "channel":
            made = channel_visualization(net, "relu2", list(range(12)), (3, 48, 48), input_range=span, progress=False,
                                         **limit)
            return made.images, len(made.objective)
        made = invert_layers(net, image, layers, progress=False, **limit)
        return torch.cat([m.images for m in made]), len(made[0].code_error)

    former = former_run(net, image, span, ref)
    print(f"equal objective on the ShapesNet trained 300 steps; today = the code of {ref} (class models: the demo's "
          "call, jitter 2, blur 1, 100 steps; channel images: relu2 x12, 256 steps; inversion: 5 layers, 200 steps "
          "each, one optimisation per layer)")
    for kind, value, higher in (("class", class_value, True), ("channel", channel_value, True),
                                ("inversion", inversion_value, False)):
        if kind not in kinds:
            continue
        reference = value(former[kind]).mean().item()
        today = former[f"{kind}_s"]
        cells, reached = [], None
        for steps in (*CURVE_STEPS, None):
            start = time.perf_counter()
            images, taken = new(kind, steps)
            seconds = time.perf_counter() - start
            measured = value(images).mean().item()
            good = measured >= reference if higher else measured <= reference
            if good and reached is None and steps is not None:
                reached = (steps, seconds)
            label = "default" if steps is None else str(steps)
            probability = f", p {class_probability(images):.3f}" if kind == "class" else ""
            cells.append(f"{label}: {measured:.3g}{probability} in {seconds:.2f} s ({taken} steps{', reached' if good else ''})")
        verdict = (f"reaches today's objective at {reached[0]} steps in {reached[1]:.2f} s: {today / reached[1]:.1f}x faster"
                   if reached else "never reaches today's objective on this curve")
        probability = f", p {class_probability(former[kind]):.3f}" if kind == "class" else ""
        print(f"  {kind:<9} today {reference:.3g}{probability} in {today:.2f} s; new: " + "; ".join(cells))
        print(f"  {'':<9} {verdict}")


if __name__ == "__main__":
    main()
