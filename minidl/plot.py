"""``python -m minidl.plot``: the minidl-plot command (minidl/tools/plot.py)."""
import sys

from minidl.tools.plot import main

if __name__ == "__main__":
    sys.exit(main())
