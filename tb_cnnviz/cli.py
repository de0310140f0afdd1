"""The ``tb-cnnviz`` command line."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tb-cnnviz", description="See what a CNN learns, in TensorBoard.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train a small CNN on scikit-learn's digits and log every view")
    demo.add_argument("--logdir", default="runs/demo", help="where to write the two runs (default: runs/demo)")
    demo.add_argument("--steps", type=int, default=1500, help="training steps per run (default: 1500)")
    demo.add_argument("--log-every", type=int, default=100, help="steps between activation/filter logs")
    demo.add_argument("--dead-every", type=int, default=50, help="steps between dead-filter flushes")
    demo.add_argument("--quick", action="store_true", help="a short run for tests: 240 steps")
    args = parser.parse_args(argv)

    if args.command == "demo":
        from .demo import run_demo

        steps, log_every, dead_every = (240, 20, 20) if args.quick else (args.steps, args.log_every, args.dead_every)
        for name, value in (("--steps", steps), ("--log-every", log_every), ("--dead-every", dead_every)):
            if value < 1:
                parser.error(f"{name} must be a positive integer; got {value}")
        run_demo(args.logdir, steps=steps, log_every=log_every, dead_every=dead_every)
        print(f"Now run: tensorboard --logdir {args.logdir}  and open the CNNVIZ tab")
    return 0


if __name__ == "__main__":
    sys.exit(main())
