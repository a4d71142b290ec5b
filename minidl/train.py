"""``python -m minidl.train``: the minidl-train command (minidl/tools/train.py)."""
import sys

from minidl.tools.train import main

if __name__ == "__main__":
    sys.exit(main())
