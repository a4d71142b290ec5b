"""``python -m minidl.evaluate``: the minidl-eval command (minidl/tools/evaluate.py)."""
import sys

from minidl.tools.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
