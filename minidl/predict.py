"""``python -m minidl.predict``: the minidl-predict command (minidl/tools/predict.py)."""
import sys

from minidl.tools.predict import main

if __name__ == "__main__":
    sys.exit(main())
