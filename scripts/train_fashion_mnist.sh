#!/usr/bin/env bash
# The README's main command: install minidl into the project environment (see
# scripts/python_env.sh) and Fashion-MNIST from Debian's dataset-fashion-mnist package,
# train the zoo's LeNet-5 (batch norm, width 2) on the CPU, then evaluate the final
# weights and print top-1 / top-5.
# Extra arguments go to minidl-train (e.g. --epochs 5; --max-steps 40 for a smoke run);
# OUT=DIR sets the run folder, FASHION_MNIST=DIR a folder that already holds the IDX files.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"
INSTALL="apt-get install -y dataset-fashion-mnist"
if [ ! -e "$DATA/train-images-idx3-ubyte.gz" ] && [ ! -e "$DATA/train-images-idx3-ubyte" ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update && $INSTALL
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo -n apt-get update && sudo -n $INSTALL
    else
        echo "minidl: Fashion-MNIST is not in $DATA; install it with: sudo $INSTALL (or set FASHION_MNIST=DIR to a folder with its IDX files)" >&2
        exit 1
    fi
fi
source scripts/python_env.sh
minidl_python_env "$PWD"
"$PYTHON" -m pip install -e .
OUT="${OUT:-runs/fashion-mnist}"
start=$(date +%s)
"$PYTHON" -m minidl.train --model lenet5_bn_w2 --dataset fashion-mnist --data "$DATA" --device cpu \
    --output "$OUT" "$@"
"$PYTHON" -m minidl.evaluate --weights "$OUT/last.json"
echo "train + evaluate: $(( $(date +%s) - start )) s"
