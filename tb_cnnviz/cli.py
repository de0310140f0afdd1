"""The ``tb-cnnviz`` command line."""

from __future__ import annotations

import argparse
import sys

from .analyze import DEFAULT_VIEWS, IMAGENET_MEAN, IMAGENET_STD, OPT_IN_VIEWS, VIEWS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tb-cnnviz", description="See what a CNN learns, in TensorBoard.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train small CNNs on scikit-learn's digits and on colour shapes, and log every view")
    demo.add_argument("--logdir", default="runs/demo", help="where to write the runs (default: runs/demo)")
    demo.add_argument("--steps", type=int, default=800, help="training steps of each digits run (default: 800)")
    demo.add_argument("--log-every", type=int, default=100, help="steps between activation/filter logs")
    demo.add_argument("--dead-every", type=int, default=50, help="steps between dead-filter flushes")
    demo.add_argument("--shapes-steps", type=int, default=800, help="training steps of the shapes run (default: 800; 0: none)")
    demo.add_argument("--quick", action="store_true", help="a short run for tests: 240 steps, no shapes run")
    demo.add_argument("--served-at", metavar="URL",
                      help="TensorBoard is started next by the caller (make demo) at URL: the last line says so")
    analyze = commands.add_parser("analyze", help="log every view for a trained model: a checkpoint and a folder of images")
    analyze.add_argument("--model", help="package.module:factory, a function returning the (untrained) model")
    analyze.add_argument("--checkpoint", required=True, help="a state dict saved with torch.save (or a pickled module)")
    analyze.add_argument("--whole-module", action="store_true", help="the checkpoint is a pickled nn.Module (runs pickled code)")
    analyze.add_argument("--images", required=True, help="a folder: one subfolder per class (labels known) or images directly")
    analyze.add_argument("--logdir", required=True, help="where to write the run")
    analyze.add_argument("--layers", help="comma-separated layer names (default: every conv and ReLU; deep nets: each block)")
    analyze.add_argument("--views", default=",".join(DEFAULT_VIEWS),
                         help=f"comma-separated subset of {','.join(VIEWS)}, or all (default: {','.join(DEFAULT_VIEWS)}; "
                              f"{','.join(OPT_IN_VIEWS)} are opt-in, as they optimise images for a while)")
    analyze.add_argument("--image-size", type=int, default=224, help="images are resized to this square (default 224)")
    analyze.add_argument("--mean", default=",".join(map(str, IMAGENET_MEAN)), help="per-channel normalisation mean")
    analyze.add_argument("--std", default=",".join(map(str, IMAGENET_STD)), help="per-channel normalisation std")
    args = parser.parse_args(argv)

    if args.command == "analyze":
        from .analyze import AnalyzeError, analyze as run_analyze, image_folder, load_model

        try:
            model = load_model(args.model, args.checkpoint, args.whole_module)
            data = image_folder(args.images, args.image_size, _floats(args.mean, "--mean"), _floats(args.std, "--std"))
            layers = [name.strip() for name in args.layers.split(",") if name.strip()] if args.layers else None
            views = [name.strip() for name in args.views.split(",") if name.strip()]
            written = run_analyze(model, data, args.logdir, layers=layers, views=views)
        except AnalyzeError as exc:
            print(f"tb-cnnviz analyze: {exc}", file=sys.stderr)
            return 2
        print(f"Wrote {', '.join(written)} to {args.logdir}. Now run: tensorboard --logdir {args.logdir}")
        return 0

    if args.command == "demo":
        from .demo import run_demo

        steps, log_every, dead_every = (240, 20, 20) if args.quick else (args.steps, args.log_every, args.dead_every)
        for name, value in (("--steps", steps), ("--log-every", log_every), ("--dead-every", dead_every)):
            if value < 1:
                parser.error(f"{name} must be a positive integer; got {value}")
        if args.shapes_steps < 0:
            parser.error(f"--shapes-steps must be 0 (no shapes run) or more; got {args.shapes_steps}")
        run_demo(args.logdir, steps=steps, log_every=log_every, dead_every=dead_every,
                 shapes_steps=0 if args.quick else args.shapes_steps)
        print(demo_last_line(args.logdir, args.served_at))
    return 0


def demo_last_line(logdir: str, served_at: str | None) -> str:
    """What the demo says last: how to see its runs, or, when its caller starts TensorBoard (make demo), where."""
    if served_at:
        return f"Starting TensorBoard on {served_at} : open it, then the CNNVIZ tab (Ctrl-C stops it)"
    return f"Now run: tensorboard --logdir {logdir}  and open the CNNVIZ tab"


def _floats(text: str, name: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise SystemExit(f"tb-cnnviz analyze: {name} must be comma-separated numbers, one per channel; got {text!r}") from None
    return values


if __name__ == "__main__":
    sys.exit(main())
