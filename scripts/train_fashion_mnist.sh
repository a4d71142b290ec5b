#!/usr/bin/env bash
# The README's main command: on a fresh machine, install minidl (and, as root, the Debian
# package with Fashion-MNIST), train the zoo's LeNet-5 (batch norm, width 2) on the CPU,
# then evaluate the final weights and print top-1 / top-5.
# Extra arguments go to minidl-train (e.g. --epochs 5); OUT=DIR sets the run folder.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=/usr/share/datasets/fashion-mnist
if [ ! -e "$DATA/train-images-idx3-ubyte.gz" ] && [ "$(id -u)" = 0 ]; then
    apt-get update && apt-get install -y dataset-fashion-mnist
fi
python3 -m pip install -e .
OUT="${OUT:-runs/fashion-mnist}"
start=$(date +%s)
python3 -m minidl.train --model lenet5_bn_w2 --dataset fashion-mnist --device cpu --output "$OUT" "$@"
python3 -m minidl.evaluate --weights "$OUT/last.json"
echo "train + evaluate: $(( $(date +%s) - start )) s"
