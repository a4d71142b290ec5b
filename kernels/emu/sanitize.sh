#!/usr/bin/env bash
# Run the emu kernel tests under a sanitizer (not part of CI):
#   kernels/emu/sanitize.sh thread|address [extra pytest args]
# Builds an instrumented _emu into build-sanitize-<kind>/ (thread mode is then the
# default emulation mode: sanitizers do not follow ucontext switches) and runs
# tests/kernels/ with the sanitizer runtime preloaded into Python.
set -euo pipefail
kind="${1:?usage: sanitize.sh thread|address [pytest args]}"; shift
root="$(cd "$(dirname "$0")/../.." && pwd)"
bdir="$root/build-sanitize-$kind"
out="$bdir/pkg"
cmake -S "$root" -B "$bdir" -DMINIDL_CUDA=OFF -DMINIDL_EMU_SANITIZE="$kind" -DMINIDL_OUTPUT_DIR="$out/minidl" \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$bdir" -j"${MINIDL_BUILD_JOBS:-2}" --target _emu
lib=$(g++ -print-file-name=lib$( [ "$kind" = thread ] && echo tsan || echo asan ).so)
# the instrumented module shadows the regular one: copy the package beside it
rm -rf "$out/minidl.tmp"; cp -r "$root/minidl" "$out/minidl.tmp"
rm -f "$out/minidl.tmp"/_emu*.so "$out/minidl.tmp"/_cuda*.so
cp "$out"/minidl/_emu*.so "$out/minidl.tmp"/ && rm -rf "$out/minidl" && mv "$out/minidl.tmp" "$out/minidl"
export MINIDL_EMU_MODE=thread
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 report_signal_unsafe=0}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
cd "$root"
PYTHONPATH="$out" LD_PRELOAD="$lib" python -m pytest -q -p no:cacheprovider tests/kernels "$@"
