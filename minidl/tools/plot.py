"""minidl-plot (``python -m minidl.plot``): (re)draw a run's curves from its logs.

    minidl-plot runs/fmnist                  # writes runs/fmnist/curves.png
    minidl-plot runs/fmnist --output fm.png

Panels: train and validation loss, train top-1 with validation top-1/top-5, and the
learning rate, per epoch (log.jsonl, written by minidl-train).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from minidl.install import extra_hint
from minidl.tools.cli import show_defaults
from minidl.tools.run_folder import plot_curves


def main(argv=None):
    p = argparse.ArgumentParser(prog="minidl-plot", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN_DIR", help="a run folder of minidl-train (holding log.jsonl)")
    p.add_argument("--output", metavar="FILE.png", help="where to draw (default: RUN_DIR/curves.png)")
    show_defaults(p)
    args = p.parse_args(argv)
    log = os.path.join(args.run, "log.jsonl")
    if not os.path.isfile(log):
        p.error(f"{args.run!r} holds no log.jsonl: expected a run folder of minidl-train")
    if importlib.util.find_spec("matplotlib") is None:
        p.error(f"drawing needs matplotlib, an optional extra: {extra_hint('plot')}")
    output = args.output or os.path.join(args.run, "curves.png")
    if plot_curves(log, output) is None:
        p.error(f"{log} holds no complete epoch record yet")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
