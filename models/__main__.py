"""The model zoo from the command line: the list of models, and the comparison table
(models/README.md) counted by minidl itself.

    python -m minidl.models                         # list every registered model
    python -m minidl.models 'resnet*'               # those matching a pattern
    python -m minidl.models --table                 # count params and MACs of every model
    python -m minidl.models --table 'resnet*'
    python -m minidl.models --plot zoo.png          # top-1 vs GMACs and vs params

Each model is built with 1000 classes; the parameters its inference forward uses
are counted (train-only aux heads are not, as in the references) and its MACs
traced by ``minidl.summary`` at the model's reference input size (with
``shape_only``, so even the largest models take seconds).  The reference columns
are the published numbers registered beside each definition; a check mark means
the count equals the reference exactly (params) or lies within 0.5% (MACs).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass

from minidl.install import extra_hint
from minidl.nn import init
from minidl.tools.summary import summary

from . import list_models, model_info
from .registry import natural_key, suggest

MAC_TOLERANCE = 0.005   # relative bound for counted vs published MACs


@dataclass
class ZooRow:
    name: str
    year: int | None
    input_size: int
    top1: float | None
    top5: float | None
    params: int
    ref_params: int
    gmacs: float
    ref_gmacs: float

    @property
    def params_ok(self):
        return self.params == self.ref_params

    @property
    def gmacs_ok(self):
        return abs(self.gmacs - self.ref_gmacs) <= MAC_TOLERANCE * self.ref_gmacs


def count_model(name):
    """Build ``name`` at 1000 classes and count the parameters of its inference network
    (train-only aux heads are not counted, as in the references) and its GMACs."""
    info = model_info(name)
    with init.skip_init():   # the counts need shapes only: drawing the weights would dominate
        model = info.constructor(num_classes=1000)
    report = summary(model, info.input_size, print_table=False, shape_only=True)
    return ZooRow(name, info.year, info.input_size, info.top1, info.top5, report.used_params,
                  info.params, report.gmacs, info.gmacs)


def _gmacs(value):
    return f"{value:.3f}" if value >= 0.1 else f"{value:.3g}"


def _pct(value):
    return "-" if value is None else f"{value:.2f}"


def format_table(rows):
    head = ("model", "year", "input", "top-1", "top-5", "params (minidl)", "params (ref)", "",
            "GMACs (minidl)", "GMACs (ref)", "")
    body = [(r.name, str(r.year or "-"), str(r.input_size), _pct(r.top1), _pct(r.top5),
             f"{r.params:,}", f"{r.ref_params:,}", "✓" if r.params_ok else "✗",
             _gmacs(r.gmacs), _gmacs(r.ref_gmacs), "✓" if r.gmacs_ok else "✗") for r in rows]
    widths = [max(len(line[i]) for line in [head] + body) for i in range(len(head))]
    right = {1, 2, 3, 4, 5, 6, 8, 9}

    def fmt(line):
        return "  ".join(f"{c:>{w}}" if i in right else f"{c:<{w}}"
                         for i, (c, w) in enumerate(zip(line, widths))).rstrip()

    rule = "-" * len(fmt(head))
    lines = [fmt(head), rule] + [fmt(line) for line in body] + [rule]
    bad = [r.name for r in rows if not (r.params_ok and r.gmacs_ok)]
    lines.append(f"{len(rows)} models; params equal to the reference: "
                 f"{sum(r.params_ok for r in rows)}; GMACs within 0.5%: {sum(r.gmacs_ok for r in rows)}"
                 + (f"; off: {', '.join(bad)}" if bad else ""))
    return "\n".join(lines)


def _label_offsets(xs, ys, min_gap):
    """Vertical label positions (in axis units of y) for points at (xs, ys): labels whose
    points lie close in x are pushed apart in y until they are ``min_gap`` apart, so no
    two overlap; each label is joined to its point by a leader line."""
    order = sorted(range(len(xs)), key=lambda i: ys[i])
    placed = {}
    for i in order:
        y = ys[i]
        for j, yj in placed.items():
            if abs(xs[i] - xs[j]) < 0.35 and abs(y - yj) < min_gap:   # x in decades
                y = yj + min_gap
        placed[i] = y
    return [placed[i] for i in range(len(xs))]


def plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        raise SystemExit(f"--plot needs matplotlib, an optional extra: {extra_hint('plot')}")
    rows = [r for r in rows if r.top1 is not None]
    if not rows:
        raise SystemExit("--plot: no selected model has a registered top-1 accuracy")
    fig, axes = plt.subplots(1, 2, figsize=(16, 8), sharey=True)
    top1 = [r.top1 for r in rows]
    panels = (("GMACs per image (counted by minidl, at each model's input size)",
               [r.gmacs for r in rows], [r.params for r in rows], "parameters"),
              ("parameters (millions)", [r.params / 1e6 for r in rows], [r.gmacs for r in rows],
               "GMACs"))
    span = max(top1) - min(top1) or 1.0
    for ax, (xlabel, xs, bubble, bubble_name) in zip(axes, panels):
        biggest = max(bubble)
        ax.scatter(xs, top1, s=[1500.0 * b / biggest for b in bubble], alpha=0.4,
                   edgecolors="black", linewidths=0.6)
        label_ys = _label_offsets([math.log10(x) for x in xs], top1, min_gap=span / 40)
        for r, x, y, label_y in zip(rows, xs, top1, label_ys):
            ax.annotate(r.name, (x, y), xytext=(x * 1.25, label_y), fontsize=7, va="center",
                        arrowprops={"arrowstyle": "-", "linewidth": 0.5, "color": "0.4"})
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_title(f"bubble area proportional to {bubble_name}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ImageNet top-1 accuracy (%)")
    fig.suptitle("Accuracy against computation and against size")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def format_list(names):
    """One line per model: its registered input size, parameters, GMACs and top-1."""
    head = ("model", "input", "params", "GMACs", "top-1")
    body = []
    for name in names:
        info = model_info(name)
        body.append((name, str(info.input_size), f"{info.params / 1e6:.1f}M", _gmacs(info.gmacs),
                     _pct(info.top1)))
    widths = [max(len(line[i]) for line in [head] + body) for i in range(len(head))]
    return "\n".join("  ".join([line[0].ljust(widths[0])] + [c.rjust(w) for c, w in
                                                            zip(line[1:], widths[1:])]).rstrip()
                     for line in [head] + body)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minidl.models",
                                     description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pattern", nargs="?", default="*",
                        help="only the models matching this glob pattern, case-insensitive "
                             "(default: all)")
    parser.add_argument("--table", action="store_true",
                        help="count params and MACs and print the comparison table (default: "
                             "list the models with their registered numbers)")
    parser.add_argument("--plot", metavar="FILE.png", default=None,
                        help="draw top-1 against GMACs and against params (needs matplotlib; "
                             "default: no plot)")
    parser.add_argument("--models", default=None, metavar="PATTERN",
                        help="the same as the positional pattern (default: all)")
    args = parser.parse_args(argv)
    pattern = args.models or args.pattern
    names = list_models(pattern)
    if not names:
        parser.error(f"no registered model matches {pattern!r}{suggest(pattern)}")
    if not args.table and not args.plot:
        print(format_list(names))
        return 0
    start = time.perf_counter()
    rows = sorted((count_model(n) for n in names), key=lambda r: (r.year or 0, natural_key(r.name)))
    if args.table:
        print(format_table(rows))
        print(f"(counted in {time.perf_counter() - start:.1f} s)")
    if args.plot:
        plot(rows, args.plot)
        print(f"wrote {args.plot}")
    return 0 if all(r.params_ok and r.gmacs_ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
