// The block scheduler of the host emulation (see cuda_emu.h).  Compiled only into
// minidl._emu.
#include "cuda_emu.h"

#include <pthread.h>
#include <ucontext.h>

#include <cstdio>

#ifndef MINIDL_EMU_SANITIZE
#include "profile.h"
#define MINIDL_EMU_PROFILER 1
#else
#define MINIDL_EMU_PROFILER 0  // the sanitizer runtime owns the instrumentation callbacks
#endif

thread_local dim3 threadIdx;
thread_local dim3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace minidl_emu {

thread_local ThreadState* self = nullptr;

namespace {

std::mutex g_launch_mutex;
std::vector<ThreadState> g_threads;
std::vector<Warp> g_warps;
std::vector<unsigned char> g_smem;
bool g_fiber = true;

// thread mode
std::unique_ptr<std::barrier<>> g_block_bar;

// fiber mode
std::vector<std::unique_ptr<char[]>> g_stacks;
std::size_t g_stack_bytes = 0;
Body g_body = nullptr;
void* g_body_ctx = nullptr;

enum { RUN = 0, WAIT_BLOCK = 1, WAIT_WARP = 2, DONE = 3 };

// Fiber switching.  glibc's swapcontext saves and restores the signal mask with a
// system call on every switch, which made switching most of the emulation's time
// (every __syncthreads and warp round switches each thread); on x86-64 a switch is
// instead the few instructions below: the callee-saved registers, MXCSR and the x87
// control word are pushed on the old stack, the stack pointer swapped, and popped
// from the new one.  Elsewhere ucontext remains.
#if defined(__x86_64__)
extern "C" void minidl_emu_switch(void** save_sp, void* load_sp);
asm(R"(
    .text
    .p2align 4
    .globl minidl_emu_switch
    .hidden minidl_emu_switch
    .type minidl_emu_switch, @function
minidl_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size minidl_emu_switch, .-minidl_emu_switch
)");

struct FiberContext {
    void* sp = nullptr;
};
FiberContext g_sched;

void fiber_switch(FiberContext& from, FiberContext& to) { minidl_emu_switch(&from.sp, to.sp); }

// A stack laid out as minidl_emu_switch leaves a suspended one, returning into entry.
void fiber_make(FiberContext& c, char* stack, std::size_t bytes, void (*entry)()) {
    auto top = reinterpret_cast<std::uintptr_t>(stack + bytes) & ~std::uintptr_t(15);
    void** sp = reinterpret_cast<void**>(top);
    *--sp = nullptr;                          // entry's return address (it never returns)
    *--sp = reinterpret_cast<void*>(entry);   // popped by `ret`: rsp = 8 mod 16, as after a call
    for (int r = 0; r < 6; ++r) *--sp = nullptr;  // rbp rbx r12 r13 r14 r15
    --sp;
    std::uint32_t csr[2];
    asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(csr[0]), "=m"(csr[1]));
    std::memcpy(sp, csr, 8);
    c.sp = sp;
}
#else
struct FiberContext {
    ucontext_t uc;
};
FiberContext g_sched;

void fiber_switch(FiberContext& from, FiberContext& to) { swapcontext(&from.uc, &to.uc); }

void fiber_make(FiberContext& c, char* stack, std::size_t bytes, void (*entry)()) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = bytes;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, entry, 0);
}
#endif
std::vector<FiberContext> g_ctx;

void fiber_yield(int state) {
    ThreadState* s = self;
    s->state = state;
    fiber_switch(*static_cast<FiberContext*>(s->fiber), g_sched);
}

void fiber_entry() {
    ThreadState* s = self;
    g_body(g_body_ctx);
    g_warps[s->warp].live.fetch_and(~(1u << s->lane));
    fiber_yield(DONE);  // never resumed
}

std::string dim_str(dim3 d) {
    return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
}

void reset_warps(int nthreads) {
    int nwarps = (nthreads + 31) / 32;
    for (int w = 0; w < nwarps; ++w) {
        int lanes = std::min(32, nthreads - 32 * w);
        g_warps[w].live.store(lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1u));
        std::memset(g_warps[w].gen, 0, sizeof(g_warps[w].gen));
        if (!g_fiber) g_warps[w].bar = std::make_unique<std::barrier<>>(lanes);
    }
}

bool env_fiber_mode() {
    const char* m = std::getenv("MINIDL_EMU_MODE");
#ifdef MINIDL_EMU_SANITIZE
    const bool dflt = false;  // sanitizers do not follow ucontext switches
#else
    const bool dflt = true;
#endif
    if (!m || !*m) return dflt;
    std::string s(m);
    if (s == "fiber") return true;
    if (s == "thread") return false;
    throw std::runtime_error("MINIDL_EMU_MODE: expected 'fiber' or 'thread', got '" + s + "'");
}

void run_fibers(const char* name, dim3 grid, int nthreads) {
    if (g_stack_bytes == 0) {
        const char* kb = std::getenv("MINIDL_EMU_STACK_KB");
        g_stack_bytes = std::size_t(kb ? std::max(16, std::atoi(kb)) : 256) * 1024;
    }
    g_ctx.resize(nthreads);
    while ((int)g_stacks.size() < nthreads) g_stacks.emplace_back(new char[g_stack_bytes]);
    int nwarps = (nthreads + 31) / 32;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                blockIdx = dim3(bx, by, bz);
                reset_warps(nthreads);
                for (int t = 0; t < nthreads; ++t) {
                    FiberContext& c = g_ctx[t];
                    fiber_make(c, g_stacks[t].get(), g_stack_bytes, fiber_entry);
                    g_threads[t].state = RUN;
                    g_threads[t].nshfl = 0;
                    g_threads[t].async_pending.clear();
                    g_threads[t].async_groups.clear();
                    g_threads[t].fiber = &c;
                }
                for (;;) {
                    for (int t = 0; t < nthreads; ++t) {
                        ThreadState& s = g_threads[t];
                        if (s.state != RUN) continue;
                        self = &s;
                        threadIdx = s.tid;
#if MINIDL_EMU_PROFILER
                        if (profile::active()) {
                            auto lo = reinterpret_cast<std::uintptr_t>(g_stacks[t].get());
                            profile::fiber_begin(t, profile::Range{lo, lo + g_stack_bytes});
                        }
#endif
                        fiber_switch(g_sched, *static_cast<FiberContext*>(s.fiber));
                    }
                    self = nullptr;
                    // release the barriers that every live participant has reached
                    bool released = false, any_live = false;
                    for (int w = 0; w < nwarps; ++w) {
                        int lo = 32 * w, hi = std::min(nthreads, lo + 32);
                        bool all = true, live = false;
                        for (int t = lo; t < hi; ++t) {
                            int st = g_threads[t].state;
                            if (st == DONE) continue;
                            live = true;
                            if (st != WAIT_WARP) all = false;
                        }
                        if (live && all) {
                            for (int t = lo; t < hi; ++t)
                                if (g_threads[t].state == WAIT_WARP) g_threads[t].state = RUN;
                            released = true;
                        }
                    }
                    bool all_block = true;
                    for (int t = 0; t < nthreads; ++t) {
                        int st = g_threads[t].state;
                        if (st == DONE) continue;
                        any_live = true;
                        if (st != WAIT_BLOCK) all_block = false;
                    }
                    if (!any_live) break;
                    if (!released && all_block) {
                        for (int t = 0; t < nthreads; ++t)
                            if (g_threads[t].state == WAIT_BLOCK) g_threads[t].state = RUN;
                        released = true;
                    }
                    if (!released)
                        throw std::runtime_error(
                            std::string(name) + ": barrier deadlock in block " + dim_str(blockIdx) +
                            " (emulation): not every live thread reached the same __syncthreads "
                            "or warp collective (divergent barrier or partial-mask shuffle)");
                }
#if MINIDL_EMU_PROFILER
                if (profile::active()) profile::block_end();
#endif
            }
}

void run_threads(dim3 grid, dim3 block, int nthreads) {
    g_block_bar = std::make_unique<std::barrier<>>(nthreads);
    reset_warps(nthreads);
    struct Completion {
        int n;
        void operator()() noexcept {
            g_block_bar = std::make_unique<std::barrier<>>(n);
            reset_warps(n);
        }
    };
    std::barrier<Completion> end_bar(nthreads, Completion{nthreads});
    std::vector<std::thread> workers;
    workers.reserve(nthreads);
    Body body = g_body;
    void* ctx = g_body_ctx;
    for (int t = 0; t < nthreads; ++t) {
        workers.emplace_back([&, t] {
            ThreadState& s = g_threads[t];
            self = &s;
            threadIdx = s.tid;
            blockDim = block;
            gridDim = grid;
            for (unsigned bz = 0; bz < grid.z; ++bz)
                for (unsigned by = 0; by < grid.y; ++by)
                    for (unsigned bx = 0; bx < grid.x; ++bx) {
                        blockIdx = dim3(bx, by, bz);
                        s.nshfl = 0;
                        s.async_pending.clear();
                        s.async_groups.clear();
                        body(ctx);
                        Warp& w = g_warps[s.warp];
                        w.live.fetch_and(~(1u << s.lane));
                        w.bar->arrive_and_drop();
                        g_block_bar->arrive_and_drop();
                        end_bar.arrive_and_wait();
                    }
        });
    }
    for (auto& th : workers) th.join();
    g_block_bar.reset();
}

#if MINIDL_EMU_PROFILER
// the launching OS thread's stack: where MINIDL_LAUNCH keeps the kernel arguments
profile::Range own_stack() {
    pthread_attr_t attr;
    void* base = nullptr;
    std::size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &base, &size);
        pthread_attr_destroy(&attr);
    }
    auto lo = reinterpret_cast<std::uintptr_t>(base);
    return profile::Range{lo, lo + size};
}

template <class T> profile::Range range_of(const std::vector<T>& v) {
    auto lo = reinterpret_cast<std::uintptr_t>(v.data());
    return profile::Range{lo, lo + v.size() * sizeof(T)};
}
#endif

}  // namespace

void syncthreads() {
    if (g_fiber) fiber_yield(WAIT_BLOCK);
    else g_block_bar->arrive_and_wait();
}

void syncwarp() {
    if (g_fiber) fiber_yield(WAIT_WARP);
    else g_warps[self->warp].bar->arrive_and_wait();
}

Warp& my_warp() { return g_warps[self->warp]; }

void async_issue(void* dst, const void* src, unsigned bytes) {
    self->async_pending.push_back(AsyncCopy{dst, src, bytes});
}

void async_commit() {
    self->async_groups.push_back(std::move(self->async_pending));
    self->async_pending.clear();
}

bool async_next_landed(std::size_t keep, AsyncCopy& out) {
    auto& groups = self->async_groups;
    while (groups.size() > keep && groups.front().empty()) groups.erase(groups.begin());
    if (groups.size() <= keep) return false;
    out = groups.front().front();
    groups.front().erase(groups.front().begin());
    return true;
}

unsigned char* dynamic_smem() { return g_smem.data(); }

bool profiling() {
#if MINIDL_EMU_PROFILER
    return profile::active();
#else
    return false;
#endif
}

void run(const char* name, dim3 grid, dim3 block, std::size_t smem, Body body, void* ctx,
         std::vector<std::uintptr_t> pointer_args) {
    long long nthreads = (long long)block.x * block.y * block.z;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || nthreads == 0) return;  // empty launch
    if (nthreads > 1024 || block.z > 64 || grid.y > 65535 || grid.z > 65535)
        throw std::runtime_error(std::string(name) + ": invalid launch configuration: grid " +
                                 dim_str(grid) + ", block " + dim_str(block));
    if (smem > 227 * 1024)
        throw std::runtime_error(std::string(name) + ": " + std::to_string(smem) +
                                 " bytes of dynamic shared memory exceed the 227 KB limit");
    std::lock_guard<std::mutex> lock(g_launch_mutex);
    g_fiber = env_fiber_mode();
    g_threads.assign(nthreads, ThreadState{});
    g_warps = std::vector<Warp>((nthreads + 31) / 32);
    for (int t = 0; t < nthreads; ++t) {
        ThreadState& s = g_threads[t];
        s.tid = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
        s.lane = t % 32;
        s.warp = t / 32;
    }
    // dynamic shared memory starts as NaN bytes, so reads before writes show up
    g_smem.assign(std::max<std::size_t>(smem, 16) + 64, 0xff);
    g_body = body;
    g_body_ctx = ctx;
#if MINIDL_EMU_PROFILER
    const bool profiled = profile::active();
    if (profiled) {
        if (!g_fiber)
            throw std::runtime_error(std::string(name) +
                                     ": the kernel profiler needs MINIDL_EMU_MODE=fiber, got 'thread'");
        unsigned g[3] = {grid.x, grid.y, grid.z}, b[3] = {block.x, block.y, block.z};
        profile::launch_begin(name, g, b, smem, (int)nthreads, range_of(g_smem),
                              {range_of(g_threads), range_of(g_warps), own_stack()}, std::move(pointer_args));
    }
#endif
    dim3 saved_grid = gridDim, saved_block = blockDim, saved_tid = threadIdx, saved_bid = blockIdx;
    gridDim = grid;
    blockDim = block;
    try {
        if (g_fiber) run_fibers(name, grid, (int)nthreads);
        else run_threads(grid, block, (int)nthreads);
#if MINIDL_EMU_PROFILER
        if (profiled) profile::launch_end();
#endif
    } catch (...) {
#if MINIDL_EMU_PROFILER
        if (profiled) profile::launch_end();
#endif
        self = nullptr;
        gridDim = saved_grid; blockDim = saved_block; threadIdx = saved_tid; blockIdx = saved_bid;
        throw;
    }
    self = nullptr;
    gridDim = saved_grid; blockDim = saved_block; threadIdx = saved_tid; blockIdx = saved_bid;
}

}  // namespace minidl_emu
