// The kernel profiler of the host emulation: the instrumentation callbacks and the
// per-warp-instruction analysis (see profile.h).  Compiled without instrumentation.
#include "profile.h"

#include <link.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <unordered_map>

#include "cuda_emu.h"

namespace minidl_emu::profile {
namespace {

enum Kind : std::uint8_t { GLOBAL_LOAD = 0, GLOBAL_STORE = 1, SHARED_LOAD = 2, SHARED_STORE = 3 };

struct Access {
    std::uint32_t warp, lane, occurrence;
    Kind kind;
    std::uint32_t size;
    std::uintptr_t pc, addr;
};

struct SiteKey {  // the occurrence-th execution of call site pc by a warp
    std::uintptr_t pc;
    std::uint32_t warp, occurrence;
    bool operator==(const SiteKey& o) const { return pc == o.pc && warp == o.warp && occurrence == o.occurrence; }
};
struct SiteHash {
    std::size_t operator()(const SiteKey& k) const {
        return std::hash<std::uintptr_t>()(k.pc) ^ (std::size_t(k.warp) << 40) ^ (std::size_t(k.occurrence) * 0x9e3779b97f4a7c15ull);
    }
};

struct Interval {
    std::uintptr_t lo, hi;
    bool operator<(const Interval& o) const { return lo < o.lo; }
};

std::atomic<bool> g_on{false};
bool g_in_launch = false;
std::vector<LaunchProfile> g_done;
LaunchProfile g_cur;
int g_nthreads = 0;
int g_thread = 0;                 // the CUDA thread now running
Range g_stack, g_dyn_smem;
std::vector<Range> g_static_smem;  // the writable segments of this module
std::vector<Range> g_not_kernel;
std::vector<std::uintptr_t> g_bases;  // the kernel's pointer arguments, sorted
std::vector<std::unordered_map<std::uintptr_t, std::uint32_t>> g_occurrences;  // per thread: pc -> count
std::vector<Access> g_accesses;                                                 // this block
std::unordered_map<SiteKey, std::uint32_t, SiteHash> g_block_lanes;             // basic block -> lane mask
std::vector<Interval> g_loaded, g_stored;                                       // this launch, global

template <class T> bool is_var(std::uintptr_t a, const T& v) {
    auto p = reinterpret_cast<std::uintptr_t>(&v);
    return a >= p && a < p + sizeof(T);
}

int add_module_segments(dl_phdr_info* info, std::size_t, void*) {
    const auto here = reinterpret_cast<std::uintptr_t>(&g_on);
    std::vector<Range> writable;
    bool ours = false;
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_LOAD) continue;
        const Range r{info->dlpi_addr + ph.p_vaddr, info->dlpi_addr + ph.p_vaddr + ph.p_memsz};
        ours = ours || r.has(here);
        if (ph.p_flags & PF_W) writable.push_back(r);
    }
    if (ours) g_static_smem = writable;
    return ours;  // stops the walk
}

bool is_shared(std::uintptr_t a) {
    if (g_dyn_smem.has(a)) return true;
    for (const Range& r : g_static_smem)
        if (r.has(a)) return true;
    return false;
}

bool not_kernel_memory(std::uintptr_t a) {
    if (g_stack.has(a) || is_var(a, threadIdx) || is_var(a, blockIdx) || is_var(a, blockDim) ||
        is_var(a, gridDim) || is_var(a, self))
        return true;
    for (const Range& r : g_not_kernel)
        if (r.has(a)) return true;
    return false;
}

// a global address as (index of its allocation) << 40 | offset, its allocation
// taken to start at the nearest pointer argument at or below it
std::uintptr_t rebased(std::uintptr_t a) {
    auto it = std::upper_bound(g_bases.begin(), g_bases.end(), a);
    if (it == g_bases.begin()) return a;
    --it;
    return (std::uintptr_t(it - g_bases.begin() + 1) << 40) | (a - *it);
}

std::uint32_t next_occurrence(std::uintptr_t pc) { return ++g_occurrences[g_thread][pc]; }

void record(std::uintptr_t addr, std::size_t size, bool store, std::uintptr_t pc) {
    if (!g_in_launch || self == nullptr || not_kernel_memory(addr)) return;
    const bool shared = is_shared(addr);
    const Kind kind = Kind((shared ? 2 : 0) + (store ? 1 : 0));
    if (!shared) addr = rebased(addr);
    g_accesses.push_back(Access{std::uint32_t(g_thread / 32), std::uint32_t(g_thread % 32), next_occurrence(pc),
                                kind, std::uint32_t(size), pc, addr});
}

void basic_block(std::uintptr_t pc) {
    if (!g_in_launch || self == nullptr) return;
    SiteKey key{pc, std::uint32_t(g_thread / 32), next_occurrence(pc)};
    g_block_lanes[key] |= 1u << (g_thread % 32);
}

// sorted, with overlapping and touching intervals joined
std::vector<Interval> merged(std::vector<Interval> v) {
    std::sort(v.begin(), v.end());
    std::vector<Interval> out;
    for (const Interval& iv : v) {
        if (!out.empty() && iv.lo <= out.back().hi) out.back().hi = std::max(out.back().hi, iv.hi);
        else out.push_back(iv);
    }
    return out;
}

// the union of [addr, addr + size) over a run of accesses
std::vector<Interval> union_of(const Access* a, std::size_t n) {
    std::vector<Interval> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = Interval{a[i].addr, a[i].addr + a[i].size};
    return merged(std::move(v));
}

std::uint64_t total_bytes(const std::vector<Interval>& v) {
    std::uint64_t n = 0;
    for (const Interval& iv : v) n += iv.hi - iv.lo;
    return n;
}

// one global warp instruction: distinct bytes and distinct 32-byte sectors
void global_instruction(const std::vector<Interval>& bytes, bool store) {
    std::uint64_t sectors = 0;
    std::uintptr_t last = ~std::uintptr_t(0);
    for (const Interval& iv : bytes)
        for (std::uintptr_t s = iv.lo >> 5; s <= (iv.hi - 1) >> 5; ++s)
            if (s != last) { ++sectors; last = s; }
    auto& out = store ? g_stored : g_loaded;
    out.insert(out.end(), bytes.begin(), bytes.end());
    if (store) { ++g_cur.store_instructions; g_cur.store_bytes += total_bytes(bytes); g_cur.store_sectors += sectors; }
    else { ++g_cur.load_instructions; g_cur.load_bytes += total_bytes(bytes); g_cur.load_sectors += sectors; }
}

// one shared warp instruction: the busiest bank's distinct 4-byte words are the
// wavefronts it needs (lanes reading one word share it: a broadcast)
void shared_instruction(const std::vector<Interval>& bytes) {
    std::uint32_t per_bank[32] = {0};
    std::uintptr_t last = ~std::uintptr_t(0);
    for (const Interval& iv : bytes)
        for (std::uintptr_t w = iv.lo >> 2; w <= (iv.hi - 1) >> 2; ++w)
            if (w != last) { ++per_bank[w & 31]; last = w; }
    const std::uint64_t wavefronts = *std::max_element(per_bank, per_bank + 32);
    const std::uint64_t ideal = std::max<std::uint64_t>(1, (total_bytes(bytes) + 127) / 128);
    ++g_cur.shared_instructions;
    g_cur.shared_wavefronts += wavefronts;
    g_cur.shared_ideal_wavefronts += ideal;
    g_cur.shared_max_conflict = std::max(g_cur.shared_max_conflict, (wavefronts + ideal - 1) / ideal);
}

}  // namespace

bool active() { return g_on.load(std::memory_order_relaxed); }

void start() {
    if (g_static_smem.empty()) dl_iterate_phdr(add_module_segments, nullptr);
    if (g_static_smem.empty()) throw std::runtime_error("emu profiler: cannot find the module's static storage");
    g_done.clear();
    g_on.store(true);
}

std::vector<LaunchProfile> stop() {
    g_on.store(false);
    return std::move(g_done);
}

void launch_begin(const char* name, unsigned grid[3], unsigned block[3], std::size_t smem, int nthreads,
                  Range dynamic_smem, std::vector<Range> not_kernel, std::vector<std::uintptr_t> pointer_args) {
    g_cur = LaunchProfile{};
    g_cur.name = name;
    std::copy(grid, grid + 3, g_cur.grid);
    std::copy(block, block + 3, g_cur.block);
    g_cur.dynamic_smem = smem;
    g_nthreads = nthreads;
    g_dyn_smem = dynamic_smem;
    g_not_kernel = std::move(not_kernel);
    g_bases = std::move(pointer_args);
    std::sort(g_bases.begin(), g_bases.end());
    g_bases.erase(std::unique(g_bases.begin(), g_bases.end()), g_bases.end());
    g_occurrences.assign(nthreads, {});
    g_accesses.clear();
    g_block_lanes.clear();
    g_loaded.clear();
    g_stored.clear();
    g_in_launch = true;
}

void fiber_begin(int thread, Range stack) {
    g_thread = thread;
    g_stack = stack;
}

void block_end() {
    if (!g_in_launch) return;  // profiling was switched on during this launch
    ++g_cur.blocks;
    g_cur.threads += g_nthreads;
    for (const auto& [key, lanes] : g_block_lanes) {
        const int n = std::min(32, g_nthreads - 32 * int(key.warp));
        const std::uint32_t full = n == 32 ? 0xffffffffu : ((1u << n) - 1u);
        ++g_cur.warp_blocks;
        if (lanes != full) ++g_cur.divergent_blocks;
    }
    std::sort(g_accesses.begin(), g_accesses.end(), [](const Access& a, const Access& b) {
        if (a.kind != b.kind) return a.kind < b.kind;
        if (a.warp != b.warp) return a.warp < b.warp;
        if (a.pc != b.pc) return a.pc < b.pc;
        return a.occurrence < b.occurrence;
    });
    for (std::size_t i = 0; i < g_accesses.size();) {
        const Access& a = g_accesses[i];
        std::size_t j = i + 1;
        while (j < g_accesses.size() && g_accesses[j].kind == a.kind && g_accesses[j].warp == a.warp &&
               g_accesses[j].pc == a.pc && g_accesses[j].occurrence == a.occurrence)
            ++j;
        const std::vector<Interval> bytes = union_of(&g_accesses[i], j - i);
        if (a.kind == SHARED_LOAD || a.kind == SHARED_STORE) shared_instruction(bytes);
        else global_instruction(bytes, a.kind == GLOBAL_STORE);
        i = j;
    }
    g_accesses.clear();
    g_block_lanes.clear();
    for (auto& m : g_occurrences) m.clear();
    // keep the launch-wide lists short: merge as we go
    g_loaded = merged(std::move(g_loaded));
    g_stored = merged(std::move(g_stored));
}

void launch_end() {
    if (!g_in_launch) return;
    g_in_launch = false;
    g_cur.ideal_load_bytes = total_bytes(merged(std::move(g_loaded)));
    g_cur.ideal_store_bytes = total_bytes(merged(std::move(g_stored)));
    g_loaded.clear();
    g_stored.clear();
    g_done.push_back(std::move(g_cur));
}

}  // namespace minidl_emu::profile

// ------------------------------------------------------------------ instrumentation callbacks
// The names and signatures GCC emits for -fsanitize=address with
// asan-instrumentation-with-call-threshold=0 and -fsanitize-recover=address, and for
// -fsanitize-coverage=trace-pc.
#define MINIDL_PROFILE_ACCESS(N)                                                                  \
    extern "C" void __asan_load##N##_noabort(std::uintptr_t a) {                                  \
        if (minidl_emu::profile::active())                                                        \
            minidl_emu::profile::record(a, N, false, (std::uintptr_t)__builtin_return_address(0)); \
    }                                                                                             \
    extern "C" void __asan_store##N##_noabort(std::uintptr_t a) {                                 \
        if (minidl_emu::profile::active())                                                        \
            minidl_emu::profile::record(a, N, true, (std::uintptr_t)__builtin_return_address(0));  \
    }
MINIDL_PROFILE_ACCESS(1)
MINIDL_PROFILE_ACCESS(2)
MINIDL_PROFILE_ACCESS(4)
MINIDL_PROFILE_ACCESS(8)
MINIDL_PROFILE_ACCESS(16)
#undef MINIDL_PROFILE_ACCESS

extern "C" void __asan_loadN_noabort(std::uintptr_t a, std::size_t n) {
    if (minidl_emu::profile::active())
        minidl_emu::profile::record(a, n, false, (std::uintptr_t)__builtin_return_address(0));
}
extern "C" void __asan_storeN_noabort(std::uintptr_t a, std::size_t n) {
    if (minidl_emu::profile::active())
        minidl_emu::profile::record(a, n, true, (std::uintptr_t)__builtin_return_address(0));
}
extern "C" void __sanitizer_cov_trace_pc() {
    if (minidl_emu::profile::active())
        minidl_emu::profile::basic_block((std::uintptr_t)__builtin_return_address(0));
}
// module constructor hooks of the instrumentation: nothing to set up
extern "C" void __asan_init() {}
extern "C" void __asan_version_mismatch_check_v8() {}
extern "C" void __asan_handle_no_return() {}
