// The kernel profiler of the host emulation (minidl._emu only; see profile.cpp).
//
// The kernel sources are compiled with GCC's AddressSanitizer instrumentation in
// callback mode (every load and store calls __asan_{load,store}N_noabort) and with
// -fsanitize-coverage=trace-pc (every basic block calls __sanitizer_cov_trace_pc), but
// linked without the sanitizer runtime: profile.cpp defines those callbacks.  While
// profiling is off they return after one flag test; while it is on they record, per
// CUDA thread, the access (address, size, call site) and its occurrence number at
// that call site.  The k-th execution of one call site by the lanes of one warp is
// one warp instruction, as in lock-step SIMT execution.
//
// Memory spaces are told apart by address: shared memory is the module's own static
// storage (where every `static` __shared__ array lives) plus the launch's dynamic
// buffer; the fiber
// stacks (locals), the launching thread's stack (kernel arguments), the thread-local
// built-ins and the scheduler's own state are not memory of the kernel; everything
// else is global memory.  Profiling needs fiber mode (one OS thread runs the block).
//
// Sectors are counted as if every pointer argument of the kernel started an
// allocation aligned to 256 bytes, as cudaMalloc's are (the emu backend's NumPy
// arrays are only 16-byte aligned): a global address is rebased on the nearest
// pointer argument at or below it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace minidl_emu::profile {

// Totals over one kernel launch.  A "sector" is an aligned 32-byte segment; a shared
// "wavefront" is one pass through the 32 four-byte banks.
struct LaunchProfile {
    std::string name;
    unsigned grid[3], block[3];
    std::size_t dynamic_smem = 0;
    std::uint64_t threads = 0, blocks = 0;
    std::uint64_t load_instructions = 0, store_instructions = 0;     // global, per warp
    std::uint64_t load_bytes = 0, store_bytes = 0;                   // distinct bytes per instruction, summed
    std::uint64_t load_sectors = 0, store_sectors = 0;               // distinct sectors per instruction, summed
    std::uint64_t ideal_load_bytes = 0, ideal_store_bytes = 0;       // distinct bytes over the launch
    std::uint64_t shared_instructions = 0;
    std::uint64_t shared_wavefronts = 0, shared_ideal_wavefronts = 0;
    std::uint64_t shared_max_conflict = 0;                           // worst wavefronts / ideal
    std::uint64_t warp_blocks = 0;      // basic blocks executed, per warp
    std::uint64_t divergent_blocks = 0; // of those, executed by only part of the warp's lanes
};

struct Range {
    std::uintptr_t lo = 0, hi = 0;  // [lo, hi)
    bool has(std::uintptr_t a) const { return a >= lo && a < hi; }
};

bool active();                   // profiling is on
void start();                    // clears the records and turns profiling on
std::vector<LaunchProfile> stop();  // turns it off and returns one record per launch

// Called by the scheduler (cuda_emu.cpp) around a profiled launch.  `not_kernel`
// are address ranges that belong to the emulator (scheduler state, the launching
// thread's stack); `dynamic_smem` is the launch's dynamic shared memory;
// `pointer_args` the kernel's pointer arguments.
void launch_begin(const char* name, unsigned grid[3], unsigned block[3], std::size_t smem, int nthreads,
                  Range dynamic_smem, std::vector<Range> not_kernel, std::vector<std::uintptr_t> pointer_args);
void fiber_begin(int thread, Range stack);  // the scheduler switches to CUDA thread `thread`
void block_end();
void launch_end();

}  // namespace minidl_emu::profile
