"""What the command lines share: argparse types that refuse numbers which cannot mean
anything (an argparse error names the flag, the expectation and the value given), and
how a metric that does not exist is printed."""
from __future__ import annotations

import argparse
import math


def _number(kind, convert, accept, expected):
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    parse.__name__ = kind
    return parse


def _int(text):
    return int(text, 10)


def _finite_float(text):
    value = float(text)
    return value if math.isfinite(value) else None


positive_int = _number("positive_int", _int, lambda v: v > 0, "a positive integer")
non_negative_int = _number("non_negative_int", _int, lambda v: v >= 0, "a non-negative integer")
positive_float = _number("positive_float", _finite_float, lambda v: v > 0, "a positive number")
non_negative_float = _number("non_negative_float", _finite_float, lambda v: v >= 0, "a non-negative number")
unit_fraction = _number("unit_fraction", _finite_float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def percent(fraction):
    """A fraction as a percentage; "n/a" for a metric that does not exist (top-5 of fewer
    than five classes)."""
    return "n/a" if fraction is None else f"{100 * fraction:.2f}%"
