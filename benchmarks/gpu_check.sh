#!/usr/bin/env bash
# One-command GPU check (<= 9 min on an H100):
#   bash benchmarks/gpu_check.sh OUT_DIR
# 1. builds minidl._cuda (and _emu) in place with nvcc (no network needed:
#    --no-build-isolation uses the installed pybind11/cmake/ninja);
# 2. runs on device cuda the kernel tests, the op tests and the end-to-end
#    training-step test (MINIDL_KERNEL_DEVICES=cuda, -k cuda);
# 3. runs benchmarks/kernels.py --device cuda, the whole-step benchmark against PyTorch
#    (benchmarks/train_step.py: resnet50 and mobilenet_v2 at batch 64, fp32 and AMP), and a
#    1-rank NCCL smoke test where mpi4py exists;
# 4. writes build.log, tests.log, kernels_cuda.{md,json}, train_step.{md,json} and
#    summary.md into OUT_DIR.
set -uo pipefail
OUT="${1:?usage: gpu_check.sh OUT_DIR}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
cd "$(dirname "$0")/.."
export CMAKE_CUDA_ARCHITECTURES="${CMAKE_CUDA_ARCHITECTURES:-90}"   # the card at hand; CI builds 80-real;90
export MINIDL_BUILD_JOBS="${MINIDL_BUILD_JOBS:-16}"
summary="$OUT/summary.md"
echo "# minidl GPU check $(date -u +%FT%TZ)" > "$summary"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >> "$summary" 2>&1 || true

t0=$(date +%s)
if python3 -m pip install -e . --no-build-isolation --no-deps > "$OUT/build.log" 2>&1; then
    echo "- build: ok in $(( $(date +%s) - t0 )) s (CMAKE_CUDA_ARCHITECTURES=$CMAKE_CUDA_ARCHITECTURES)" >> "$summary"
else
    echo "- build: FAILED (see build.log)" >> "$summary"; tail -50 "$OUT/build.log"; exit 1
fi
python3 -c "import minidl, minidl._cuda; print('cuda available:', minidl.cuda.is_available())" >> "$summary" 2>&1

t0=$(date +%s)
# kernel tests, the foundation's op tests and the end-to-end training steps, cuda only
tests="$(ls tests/kernels/test_*.py) tests/test_device_end_to_end.py tests/test_conv.py tests/test_pool.py
       tests/test_lrn.py tests/test_batchnorm.py tests/test_activation.py tests/test_softmax.py
       tests/test_tensor_ops.py tests/test_half_precision.py"
MINIDL_KERNEL_DEVICES=cuda timeout 240 python3 -m pytest -q -rs -p no:cacheprovider -k cuda $tests \
    > "$OUT/tests.log" 2>&1
rc=$?
echo "- tests on cuda: rc=$rc, $(tail -1 "$OUT/tests.log") ($(( $(date +%s) - t0 )) s)" >> "$summary"

t0=$(date +%s)
timeout 300 python3 benchmarks/kernels.py --device cuda --out "$OUT" > "$OUT/bench.log" 2>&1
brc=$?
echo "- benchmarks/kernels.py: rc=$brc ($(( $(date +%s) - t0 )) s)" >> "$summary"
[ -f "$OUT/kernels_cuda.md" ] && cat "$OUT/kernels_cuda.md" >> "$summary"

t0=$(date +%s)
timeout 200 python3 benchmarks/train_step.py --device cuda --models resnet50,mobilenet_v2 --warmup 3 \
    --steps 5 --rounds 2 --out-dir "$OUT" > "$OUT/train_step.log" 2>&1
echo "- benchmarks/train_step.py (fp32): rc=$? ($(( $(date +%s) - t0 )) s)" >> "$summary"
[ -f "$OUT/train_step.md" ] && cat "$OUT/train_step.md" >> "$summary"
t0=$(date +%s)
mkdir -p "$OUT/amp"
timeout 120 python3 benchmarks/train_step.py --device cuda --models resnet50 --amp bf16 --torch-modes amp \
    --warmup 3 --steps 5 --rounds 2 --out-dir "$OUT/amp" > "$OUT/train_step_amp.log" 2>&1
echo "- benchmarks/train_step.py (--amp bf16 vs PyTorch AMP): rc=$? ($(( $(date +%s) - t0 )) s)" >> "$summary"
[ -f "$OUT/amp/train_step.md" ] && cat "$OUT/amp/train_step.md" >> "$summary"

# 1-rank NCCL smoke test (all-reduce and two DDP steps); needs mpi4py for the bootstrap
if python3 -c "import mpi4py" 2>/dev/null; then
    mpiexec="$(dirname "$(command -v python3)")/mpiexec"; [ -x "$mpiexec" ] || mpiexec=mpiexec
    timeout 120 "$mpiexec" -n 1 python3 benchmarks/nccl_smoke.py > "$OUT/nccl_smoke.log" 2>&1
    echo "- NCCL smoke: rc=$? $(tail -1 "$OUT/nccl_smoke.log")" >> "$summary"
else
    echo "- NCCL smoke: skipped, mpi4py is not installed (pip install -e '.[distributed]')" >> "$summary"
fi
cat "$summary"
[ "$rc" -eq 0 ] && [ "$brc" -eq 0 ]
