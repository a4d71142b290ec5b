"""The lecture's comparison table, counted by minidl itself.

    python -m minidl.models --table                 # every registered model
    python -m minidl.models --table --models "resnet*"
    python -m minidl.models --plot zoo.png          # top-1 vs GMACs, bubble area ~ params

Each model is built with 1000 classes; the parameters its inference forward uses
are counted (train-only aux heads are not, as in the references) and its MACs
traced by ``minidl.summary`` at the model's reference input size (with
``shape_only``, so even the largest models take seconds).  The reference columns
are the published numbers registered beside each definition; a check mark means
the count equals the reference exactly (params) or lies within 0.5% (MACs).
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass

from minidl.tools.summary import summary

from . import list_models, model_info

MAC_TOLERANCE = 0.005   # relative; the bound for counted vs published MACs


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
    model = info.constructor(num_classes=1000)
    report = summary(model, info.input_size, print_table=False, shape_only=True)
    return ZooRow(name, info.year, info.input_size, info.top1, info.top5, report.used_params,
                  info.params, report.gmacs, info.gmacs)


def _natural(name):
    """resnet18 < resnet34 < resnet101: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


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


def plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        raise SystemExit("--plot needs matplotlib, an optional extra: pip install 'minidl[plot]' "
                         "(or pip install matplotlib)")
    rows = [r for r in rows if r.top1 is not None]
    if not rows:
        raise SystemExit("--plot: no selected model has a registered top-1 accuracy")
    fig, ax = plt.subplots(figsize=(11, 7))
    biggest = max(r.params for r in rows)
    sizes = [2000.0 * r.params / biggest for r in rows]   # marker area ~ parameters
    ax.scatter([r.gmacs for r in rows], [r.top1 for r in rows], s=sizes, alpha=0.45,
               edgecolors="black", linewidths=0.6)
    for r in rows:
        ax.annotate(r.name, (r.gmacs, r.top1), fontsize=7, ha="center", va="center")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("GMACs per image (counted by minidl, at each model's input size)")
    ax.set_ylabel("ImageNet top-1 accuracy (%)")
    ax.set_title("Accuracy vs. computation; bubble area proportional to parameters")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minidl.models",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", action="store_true", help="print the comparison table")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="draw top-1 against GMACs (needs matplotlib)")
    parser.add_argument("--models", default="*", metavar="PATTERN",
                        help="only the models matching this glob pattern (default: all)")
    args = parser.parse_args(argv)
    if not args.table and not args.plot:
        parser.error("expected --table and/or --plot FILE.png")
    names = list_models(args.models)
    if not names:
        parser.error(f"no registered model matches {args.models!r}; registered: {list_models()}")
    start = time.perf_counter()
    rows = sorted((count_model(n) for n in names), key=lambda r: (r.year or 0, _natural(r.name)))
    if args.table:
        print(format_table(rows))
        print(f"(counted in {time.perf_counter() - start:.1f} s)")
    if args.plot:
        plot(rows, args.plot)
        print(f"wrote {args.plot}")
    return 0 if all(r.params_ok and r.gmacs_ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
