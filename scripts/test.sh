#!/usr/bin/env bash
# The README's test command: install minidl with its test dependencies into the project
# environment (see scripts/python_env.sh) and run the whole test suite.
# Extra arguments go to pytest (e.g. -x, -k conv, -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python_env.sh
minidl_python_env "$PWD"
"$PYTHON" -m pip install -e ".[test]"
"$PYTHON" -m pytest -q tests "$@"
