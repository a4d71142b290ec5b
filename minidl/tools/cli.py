"""What the command lines share: argparse types that refuse numbers which cannot mean
anything and devices that are not there (an argparse error names the flag, the
expectation and the value given, on one line), the defaults shown in every flag's help,
and how a metric that does not exist is printed."""
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


DEVICES = ("cpu", "cuda", "emu")


def device(text):
    """--device: a device that works on this machine now; else a one-line argparse error
    with the reason and the fix (e.g. the command that installs CuPy)."""
    from minidl.backend import unavailable_reason
    if text not in DEVICES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(DEVICES)}, got {text!r}")
    why = unavailable_reason(text)
    if why is not None:
        raise argparse.ArgumentTypeError(why)
    return text


def show_defaults(parser, defaults=None, from_recipe=(), exclude=("help",)):
    """Append "(default: X)" to the help of every optional flag whose help does not state
    its default yet; ``defaults`` overrides the parser's own (for parsers that SUPPRESS them)
    and the keys in ``from_recipe`` say that the training recipe may set them instead."""
    defaults = defaults or {}
    for action in parser._actions:
        if (not action.option_strings or action.required or action.dest in exclude
                or "default" in (action.help or "")):
            continue
        value = defaults.get(action.dest, action.default)
        if value is argparse.SUPPRESS or value is None or value is False:
            shown = "off" if isinstance(action, (argparse._StoreTrueAction,
                                                 argparse._StoreConstAction)) else "none"
        else:
            shown = value
        if action.dest in from_recipe:
            shown = f"the recipe's, else {shown}"
        action.help = f"{action.help or ''} (default: {str(shown).replace('%', '%%')})".lstrip()


def percent(fraction):
    """A fraction as a percentage; "n/a" for a metric that does not exist (top-5 of fewer
    than five classes)."""
    return "n/a" if fraction is None else f"{100 * fraction:.2f}%"
