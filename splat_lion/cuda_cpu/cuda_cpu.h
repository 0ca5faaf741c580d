// cuda_cpu.h: the CUDA-on-CPU prelude. Force-included (g++ -include) before every kernel
// source, so that the same .cu text compiles with the host C++ compiler.
//
// Model:   the grid's blocks run in parallel on OS threads (OpenMP); the threads of one
//          block run as cooperative fibers on one OS thread. Fibers start lazily: one fiber
//          runs thread after thread as plain calls until a thread parks at a barrier or a
//          warp collective; only then is another fiber started for the next thread.
// Shared:  `__shared__` is `thread_local` (a block runs start to finish on one OS thread);
//          `extern __shared__ T x[];` is rewritten by builder.py to a pointer into per-thread
//          storage sized by the launch, followed by poisoned guard bytes checked after the block.
// Sync:    __syncthreads(_count/_and/_or), __syncwarp, __shfl*_sync, __ballot_sync,
//          __all_sync, __any_sync, __activemask park the fiber until every live participant
//          has arrived (threads that exited count as arrived); a wait nobody can end is
//          reported as a deadlock naming the kernel and the waiting threads.
// Atomics: real atomics (blocks run on several OS threads).
// Floats:  subnormals flush to zero during a launch, as CuPy's -ftz=true makes them on the GPU
//          (FtzScope, before run_grid).
//
// Nothing here may change a kernel's logic: it only supplies what nvcc/NVRTC supply.
#pragma once
#define __CUDACPU__ 1

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cassert>
#include <math.h>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>
#include <sys/mman.h>
#include <unistd.h>
#include <omp.h>
#include <pthread.h>
#if !defined(__x86_64__) || defined(CUDACPU_USE_UCONTEXT)
#define CUDACPU_UCONTEXT 1
#include <ucontext.h>
#endif
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

// ---------------------------------------------------------------------------------------
// Qualifiers
// ---------------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __shared__ thread_local
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#define __grid_constant__
#define __CUDA_ARCH_CPU__ 1

// ---------------------------------------------------------------------------------------
// Vector types (CUDA's sizes and alignments) and make_*
// ---------------------------------------------------------------------------------------
#define CUDACPU_VEC(T, N)                                                                  \
    struct __attribute__((aligned(sizeof(T) * 1))) N##1 { T x; };                          \
    struct __attribute__((aligned(sizeof(T) * 2))) N##2 { T x, y; };                       \
    struct N##3 { T x, y, z; };                                                            \
    struct __attribute__((aligned(sizeof(T) * 4 > 16 ? 16 : sizeof(T) * 4))) N##4 {        \
        T x, y, z, w;                                                                      \
    };                                                                                     \
    static inline N##1 make_##N##1(T x) { return N##1{x}; }                                \
    static inline N##2 make_##N##2(T x, T y) { return N##2{x, y}; }                        \
    static inline N##3 make_##N##3(T x, T y, T z) { return N##3{x, y, z}; }                \
    static inline N##4 make_##N##4(T x, T y, T z, T w) { return N##4{x, y, z, w}; }

CUDACPU_VEC(signed char, char)
CUDACPU_VEC(unsigned char, uchar)
CUDACPU_VEC(short, short)
CUDACPU_VEC(unsigned short, ushort)
CUDACPU_VEC(int, int)
CUDACPU_VEC(unsigned int, uint)
CUDACPU_VEC(long, long)
CUDACPU_VEC(unsigned long, ulong)
CUDACPU_VEC(long long, longlong)
CUDACPU_VEC(unsigned long long, ulonglong)
CUDACPU_VEC(float, float)
CUDACPU_VEC(double, double)
#undef CUDACPU_VEC

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1)
        : x(x_), y(y_), z(z_) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

static_assert(sizeof(float4) == 16 && alignof(float4) == 16, "float4 layout");
static_assert(sizeof(float3) == 12 && alignof(float3) == 4, "float3 layout");
static_assert(sizeof(float2) == 8 && alignof(float2) == 8, "float2 layout");
static_assert(sizeof(double2) == 16 && alignof(double2) == 16, "double2 layout");

// ---------------------------------------------------------------------------------------
// Math: CUDA device functions and intrinsics the host libm lacks or names otherwise
// ---------------------------------------------------------------------------------------
using std::isfinite;
using std::isinf;
using std::isnan;
using std::signbit;

static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float rcbrtf(float x) { return 1.0f / cbrtf(x); }
static inline float sinpif(float x) { return sinf(float(M_PI) * x); }
static inline float cospif(float x) { return cosf(float(M_PI) * x); }
static inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }
// glibc declares (but does not export) these names, so they are macros here.
#define __expf expf
#define __exp10f(x) powf(10.0f, (x))
#define __logf logf
#define __log2f log2f
#define __log10f log10f
#define __sinf sinf
#define __cosf cosf
#define __tanf tanf
#define __sincosf sincosf
#define __powf powf
static inline float __fdividef(float x, float y) { return x / y; }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fsqrt_rn(float x) { return sqrtf(x); }
static inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
static inline float __fadd_rn(float x, float y) { return x + y; }
static inline float __fsub_rn(float x, float y) { return x - y; }
static inline float __fmul_rn(float x, float y) { return x * y; }
static inline float __fdiv_rn(float x, float y) { return x / y; }
static inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
static inline double __dadd_rn(double x, double y) { return x + y; }
static inline double __dmul_rn(double x, double y) { return x * y; }
static inline double __fma_rn(double x, double y, double z) { return fma(x, y, z); }

static inline int __float2int_rn(float x) { return int(lrintf(x)); }
static inline int __float2int_rz(float x) { return int(x); }
static inline int __float2int_rd(float x) { return int(floorf(x)); }
static inline int __float2int_ru(float x) { return int(ceilf(x)); }
static inline unsigned __float2uint_rn(float x) { return unsigned(llrintf(x)); }
static inline unsigned __float2uint_rz(float x) { return unsigned(x); }
static inline long long __float2ll_rn(float x) { return llrintf(x); }
static inline long long __float2ll_rz(float x) { return (long long)x; }
static inline float __int2float_rn(int x) { return float(x); }
static inline float __uint2float_rn(unsigned x) { return float(x); }
static inline float __ll2float_rn(long long x) { return float(x); }
static inline float __double2float_rn(double x) { return float(x); }

template <class To, class From>
static inline To cudacpu_bit_cast(From v) {
    static_assert(sizeof(To) == sizeof(From), "bit cast between different sizes");
    To t;
    std::memcpy(&t, &v, sizeof(To));
    return t;
}
static inline float __int_as_float(int x) { return cudacpu_bit_cast<float>(x); }
static inline int __float_as_int(float x) { return cudacpu_bit_cast<int>(x); }
static inline float __uint_as_float(unsigned x) { return cudacpu_bit_cast<float>(x); }
static inline unsigned __float_as_uint(float x) { return cudacpu_bit_cast<unsigned>(x); }
static inline double __longlong_as_double(long long x) { return cudacpu_bit_cast<double>(x); }
static inline long long __double_as_longlong(double x) { return cudacpu_bit_cast<long long>(x); }
static inline int __double2hiint(double x) { return int(__double_as_longlong(x) >> 32); }
static inline int __double2loint(double x) { return int(__double_as_longlong(x)); }
static inline double __hiloint2double(int hi, int lo) {
    return __longlong_as_double((long long)(((unsigned long long)(unsigned)hi << 32) | (unsigned)lo));
}

static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
static inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline unsigned __brev(unsigned x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0F0F0F0Fu) | ((x & 0x0F0F0F0Fu) << 4);
    return __builtin_bswap32(x);
}
static inline unsigned long long __brevll(unsigned long long x) {
    return ((unsigned long long)__brev(unsigned(x)) << 32) | __brev(unsigned(x >> 32));
}
static inline int __mulhi(int x, int y) { return int(((long long)x * y) >> 32); }
static inline unsigned __umulhi(unsigned x, unsigned y) {
    return unsigned(((unsigned long long)x * y) >> 32);
}
static inline long long __mul64hi(long long x, long long y) {
    return (long long)(((__int128)x * y) >> 64);
}
static inline unsigned long long __umul64hi(unsigned long long x, unsigned long long y) {
    return (unsigned long long)(((unsigned __int128)x * y) >> 64);
}
static inline int __mul24(int x, int y) { return ((x << 8) >> 8) * ((y << 8) >> 8); }
static inline unsigned __umul24(unsigned x, unsigned y) { return (x & 0xFFFFFFu) * (y & 0xFFFFFFu); }
static inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned s) {
    s &= 31;
    return s ? (hi << s) | (lo >> (32 - s)) : hi;
}
static inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned s) {
    s &= 31;
    return s ? (lo >> s) | (hi << (32 - s)) : lo;
}
// Written out byte by byte (no loop): with a constant selector it folds to a few shifts and
// masks (the loop it replaces cost ~20 instructions a call at -O2).
static inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
    const unsigned long long v = ((unsigned long long)y << 32) | x;
    return unsigned((v >> (8 * (s & 7))) & 0xFF) |
           unsigned((v >> (8 * ((s >> 4) & 7))) & 0xFF) << 8 |
           unsigned((v >> (8 * ((s >> 8) & 7))) & 0xFF) << 16 |
           unsigned((v >> (8 * ((s >> 12) & 7))) & 0xFF) << 24;
}

// min/max as CUDA declares them for device code.
#define CUDACPU_MINMAX(T)                                                                  \
    static inline T min(T a, T b) { return a < b ? a : b; }                                \
    static inline T max(T a, T b) { return a > b ? a : b; }
CUDACPU_MINMAX(int)
CUDACPU_MINMAX(unsigned int)
CUDACPU_MINMAX(long)
CUDACPU_MINMAX(unsigned long)
CUDACPU_MINMAX(long long)
CUDACPU_MINMAX(unsigned long long)
#undef CUDACPU_MINMAX
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }
static inline unsigned min(int a, unsigned b) { return min(unsigned(a), b); }
static inline unsigned min(unsigned a, int b) { return min(a, unsigned(b)); }
static inline unsigned max(int a, unsigned b) { return max(unsigned(a), b); }
static inline unsigned max(unsigned a, int b) { return max(a, unsigned(b)); }

// Loads and stores with cache hints are plain on the CPU.
template <class T> static inline T __ldg(const T* p) { return *p; }
template <class T> static inline T __ldcs(const T* p) { return *p; }
template <class T> static inline T __ldcg(const T* p) { return *p; }
template <class T> static inline T __ldlu(const T* p) { return *p; }
template <class T> static inline void __stcs(T* p, T v) { *p = v; }
template <class T> static inline void __stcg(T* p, T v) { *p = v; }
template <class T> static inline void __stwt(T* p, T v) { *p = v; }

#define warpSize 32

// ---------------------------------------------------------------------------------------
// Atomics: real atomics, since blocks run on several OS threads
// ---------------------------------------------------------------------------------------
#define CUDACPU_ATOMIC_INT(T)                                                              \
    static inline T atomicAdd(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); } \
    static inline T atomicSub(T* p, T v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); } \
    static inline T atomicAnd(T* p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_RELAXED); } \
    static inline T atomicOr(T* p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_RELAXED); }   \
    static inline T atomicXor(T* p, T v) { return __atomic_fetch_xor(p, v, __ATOMIC_RELAXED); } \
    static inline T atomicExch(T* p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); } \
    static inline T atomicCAS(T* p, T expected, T desired) {                               \
        __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_RELAXED,        \
                                    __ATOMIC_RELAXED);                                     \
        return expected;                                                                   \
    }                                                                                      \
    static inline T atomicMax(T* p, T v) {                                                 \
        T old = __atomic_load_n(p, __ATOMIC_RELAXED);                                      \
        while (old < v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, \
                                                       __ATOMIC_RELAXED)) {}               \
        return old;                                                                        \
    }                                                                                      \
    static inline T atomicMin(T* p, T v) {                                                 \
        T old = __atomic_load_n(p, __ATOMIC_RELAXED);                                      \
        while (old > v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, \
                                                       __ATOMIC_RELAXED)) {}               \
        return old;                                                                        \
    }
CUDACPU_ATOMIC_INT(int)
CUDACPU_ATOMIC_INT(unsigned int)
CUDACPU_ATOMIC_INT(long long)
CUDACPU_ATOMIC_INT(unsigned long long)
#undef CUDACPU_ATOMIC_INT

static inline unsigned short atomicCAS(unsigned short* p, unsigned short e, unsigned short d) {
    __atomic_compare_exchange_n(p, &e, d, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return e;
}

// Floating-point read-modify-write through a compare-and-swap loop on the bits.
template <class F, class Op>
static inline F cudacpu_atomic_float(F* p, Op op) {
    using U = std::conditional_t<sizeof(F) == 4, unsigned int, unsigned long long>;
    U* q = reinterpret_cast<U*>(p);
    U old_bits = __atomic_load_n(q, __ATOMIC_RELAXED);
    for (;;) {
        F old = cudacpu_bit_cast<F>(old_bits);
        U new_bits = cudacpu_bit_cast<U>(op(old));
        if (__atomic_compare_exchange_n(q, &old_bits, new_bits, true, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            return old;
    }
}
static inline float atomicAdd(float* p, float v) {
    return cudacpu_atomic_float(p, [v](float o) { return o + v; });
}
static inline double atomicAdd(double* p, double v) {
    return cudacpu_atomic_float(p, [v](double o) { return o + v; });
}
static inline float atomicExch(float* p, float v) {
    return cudacpu_atomic_float(p, [v](float) { return v; });
}
static inline float atomicMax(float* p, float v) {
    return cudacpu_atomic_float(p, [v](float o) { return fmaxf(o, v); });
}
static inline float atomicMin(float* p, float v) {
    return cudacpu_atomic_float(p, [v](float o) { return fminf(o, v); });
}
static inline unsigned atomicInc(unsigned* p, unsigned limit) {
    unsigned old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(p, &old, old >= limit ? 0u : old + 1u, true,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
    return old;
}
static inline unsigned atomicDec(unsigned* p, unsigned limit) {
    unsigned old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(p, &old, (old == 0u || old > limit) ? limit : old - 1u,
                                        true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
    return old;
}
#define atomicAdd_block atomicAdd
#define atomicAdd_system atomicAdd

static inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
#if defined(__x86_64__)
static inline long long clock64() { return (long long)__builtin_ia32_rdtsc(); }
#else
static inline long long clock64() { return (long long)std::chrono::steady_clock::now().time_since_epoch().count(); }
#endif
static inline void __nanosleep(unsigned) {}
[[noreturn]] static inline void __trap() { std::abort(); }

// ---------------------------------------------------------------------------------------
// The runtime: per-OS-thread block context, fibers, barriers and warp collectives
// ---------------------------------------------------------------------------------------
namespace cudacpu {

enum : unsigned char { RUNNING = 1, WAITING, EXITED };  // a thread not yet started has no state
enum : unsigned char {
    W_NONE = 0, W_SYNC, W_SYNC_COUNT, W_SYNC_AND, W_SYNC_OR,  // block barriers
    W_SHFL, W_SHFL_UP, W_SHFL_DOWN, W_SHFL_XOR, W_BALLOT, W_SYNCWARP, W_ACTIVEMASK,  // warp
};
static const char* wait_name(unsigned char w) {
    switch (w) {
        case W_SYNC: return "__syncthreads";
        case W_SYNC_COUNT: return "__syncthreads_count";
        case W_SYNC_AND: return "__syncthreads_and";
        case W_SYNC_OR: return "__syncthreads_or";
        case W_SHFL: return "__shfl_sync";
        case W_SHFL_UP: return "__shfl_up_sync";
        case W_SHFL_DOWN: return "__shfl_down_sync";
        case W_SHFL_XOR: return "__shfl_xor_sync";
        case W_BALLOT: return "__ballot_sync/__all_sync/__any_sync";
        case W_SYNCWARP: return "__syncwarp";
        case W_ACTIVEMASK: return "__activemask";
        default: return "nothing";
    }
}
static inline bool is_block_barrier(unsigned char w) { return w >= W_SYNC && w <= W_SYNC_OR; }

struct Fiber {
    void* sp = nullptr;                 // saved stack pointer while suspended
    char* stack = nullptr;              // lowest usable byte of the stack
    size_t stack_size = 0;
#ifdef CUDACPU_UCONTEXT
    ucontext_t uc;
#endif
};

struct ThreadState {
    unsigned char status;               // RUNNING, WAITING, EXITED
    unsigned char wait;                 // W_* while WAITING
    Fiber* fiber;                       // fiber running this thread once started
    unsigned mask;                      // warp collectives: participating lanes
    int arg;                            // shfl: src lane / delta / lane mask
    int width;                          // shfl: segment width
    unsigned long long value;           // value or predicate brought to the collective
    unsigned long long result;          // what the collective hands back
};

struct Ctx;
using FiberMain = void (*)(Ctx*);

struct Ctx {
    // What kernel code reads through threadIdx, blockIdx, blockDim, gridDim.
    uint3 thread_idx;
    uint3 block_idx;
    dim3 block_dim;
    dim3 grid_dim;
    char* dyn_shared = nullptr;         // dynamic shared memory of the running block
    // Scheduling of the running block.
    int nthreads = 0;
    int next_unstarted = 0;
    int current = -1;                   // thread now running
    int exited = 0;
    std::vector<ThreadState> threads;   // valid for threads below next_unstarted
    std::vector<uint3> thread_idx_of;   // linear thread id -> threadIdx, for block_dim
    std::vector<int> runnable;          // parked threads released and ready to resume
    size_t runnable_head = 0;
    Fiber* running_fiber = nullptr;
    bool fiber_finished = false;        // set by a fiber that ran out of threads
    void* sched_sp = nullptr;           // scheduler's stack pointer while a fiber runs
#ifdef CUDACPU_UCONTEXT
    ucontext_t sched_uc;
#endif
#if defined(__SANITIZE_ADDRESS__)
    const void* sched_stack_bottom = nullptr;
    size_t sched_stack_size = 0;
#endif
    FiberMain fiber_main = nullptr;     // loop that runs threads, templated on the kernel
    void* body = nullptr;               // the kernel call for the current thread
    // Fibers of this OS thread, reused across blocks and launches (never unmapped).
    std::vector<Fiber*> free_fibers;
    std::vector<Fiber*> block_fibers;   // fibers taken for the running block
    // Dynamic shared memory storage of this OS thread.
    std::vector<char> shared_storage;
};

// One pointer per OS thread. (Not initial-exec: that would force the module's whole TLS
// block, __shared__ arrays included, into glibc's small static TLS area.)
static thread_local Ctx* g_ctx = nullptr;

static inline Ctx* ctx() {
    Ctx* c = g_ctx;
    if (__builtin_expect(c == nullptr, 0)) g_ctx = c = new Ctx();  // lives as long as the OS thread
    return c;
}

static const size_t kSharedGuard = 256;    // poisoned bytes after dynamic shared memory
static const unsigned char kPoison = 0xFF; // reads as NaN in float, -1 in int

static size_t fiber_stack_bytes() {
    static size_t bytes = [] {
        const char* e = getenv("SPLAT_LION_CPU_STACK_KB");
        size_t kb = e ? strtoull(e, nullptr, 10) : 0;
#if defined(__SANITIZE_ADDRESS__)
        if (kb == 0) kb = 1024;
#else
        if (kb == 0) kb = 256;
#endif
        return kb * 1024;
    }();
    return bytes;
}

// ---- context switching ----------------------------------------------------------------
#ifndef CUDACPU_UCONTEXT
extern "C" void cudacpu_switch_stack(void** save_sp, void* new_sp);
extern "C" void cudacpu_fiber_trampoline();
__asm__(
    ".text\n"
    ".globl cudacpu_switch_stack\n"
    ".hidden cudacpu_switch_stack\n"
    ".type cudacpu_switch_stack,@function\n"
    "cudacpu_switch_stack:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size cudacpu_switch_stack, .-cudacpu_switch_stack\n"
    ".globl cudacpu_fiber_trampoline\n"
    ".hidden cudacpu_fiber_trampoline\n"
    ".type cudacpu_fiber_trampoline,@function\n"
    "cudacpu_fiber_trampoline:\n"
    "  movq %r13, %rdi\n"
    "  callq *%r12\n"
    "  ud2\n"
    ".size cudacpu_fiber_trampoline, .-cudacpu_fiber_trampoline\n");
#endif

static void fiber_entry(Ctx* c);

static Fiber* make_fiber() {
    size_t bytes = fiber_stack_bytes();
    size_t page = size_t(sysconf(_SC_PAGESIZE));
    char* base = (char*)mmap(nullptr, bytes + page, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        fprintf(stderr, "cuda_cpu: cannot map a %zu-byte fiber stack\n", bytes);
        std::abort();
    }
    mprotect(base, page, PROT_NONE);  // guard page: a stack overflow faults, never corrupts
    Fiber* f = new Fiber();
    f->stack = base + page;
    f->stack_size = bytes;
    return f;
}

// Prepare f so that switching to it calls fiber_entry(c) on its own stack.
static void reset_fiber(Fiber* f, Ctx* c) {
#ifdef CUDACPU_UCONTEXT
    getcontext(&f->uc);
    f->uc.uc_stack.ss_sp = f->stack;
    f->uc.uc_stack.ss_size = f->stack_size;
    f->uc.uc_link = nullptr;
    // makecontext passes int arguments: split the pointer in two halves.
    uintptr_t p = uintptr_t(c);
    makecontext(&f->uc, (void (*)())+[](unsigned hi, unsigned lo) {
        fiber_entry((Ctx*)((uintptr_t(hi) << 32) | uintptr_t(lo)));
    }, 2, unsigned(p >> 32), unsigned(p & 0xFFFFFFFFu));
#else
    uintptr_t top = (uintptr_t(f->stack) + f->stack_size) & ~uintptr_t(15);
    void** sp = (void**)top;
    *--sp = (void*)&cudacpu_fiber_trampoline;  // ret target; rsp = top afterwards
    *--sp = nullptr;                           // rbp
    *--sp = nullptr;                           // rbx
    *--sp = (void*)&fiber_entry;               // r12: function to call
    *--sp = (void*)c;                          // r13: its argument
    *--sp = nullptr;                           // r14
    *--sp = nullptr;                           // r15
    f->sp = sp;
#endif
}

// Save the running context in `from` and continue `to`; nullptr stands for the scheduler
// (the OS thread's own stack).
static inline void switch_context(Ctx* c, Fiber* from, Fiber* to) {
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_start_switch_fiber(nullptr, to ? to->stack : c->sched_stack_bottom,
                                   to ? to->stack_size : c->sched_stack_size);
#endif
#ifdef CUDACPU_UCONTEXT
    swapcontext(from ? &from->uc : &c->sched_uc, to ? &to->uc : &c->sched_uc);
#else
    cudacpu_switch_stack(from ? &from->sp : &c->sched_sp, to ? to->sp : c->sched_sp);
#endif
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
}

static void fiber_entry(Ctx* c) {
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
    c->fiber_main(c);
    c->fiber_finished = true;  // the scheduler takes the fiber back
    switch_context(c, c->running_fiber, nullptr);
    __builtin_unreachable();
}

static Fiber* take_fiber(Ctx* c) {
    if (c->free_fibers.empty()) c->free_fibers.push_back(make_fiber());
    Fiber* f = c->free_fibers.back();
    c->free_fibers.pop_back();
    reset_fiber(f, c);
    c->block_fibers.push_back(f);
    return f;
}

// What runs next: a released thread's fiber, else a fresh fiber for the next unstarted
// thread, else nullptr (only the scheduler can go on: release collectives, or finish).
static inline Fiber* next_fiber(Ctx* c) {
    if (c->runnable_head < c->runnable.size()) {
        const int t = c->runnable[c->runnable_head++];
        c->current = t;
        c->thread_idx = c->thread_idx_of[t];
        return c->threads[t].fiber;
    }
    if (c->next_unstarted < c->nthreads) return take_fiber(c);
    return nullptr;
}

// The loop a fiber runs: start thread after thread until none is left unstarted.
template <class Body>
static void fiber_main(Ctx* c) {
    Body& body = *static_cast<Body*>(c->body);
    while (c->next_unstarted < c->nthreads) {
        int t = c->next_unstarted++;
        ThreadState& ts = c->threads[t];
        ts.status = RUNNING;
        ts.wait = W_NONE;
        ts.fiber = c->running_fiber;
        c->current = t;
        c->thread_idx = c->thread_idx_of[t];
        body();
        c->threads[t].status = EXITED;
        c->exited++;
    }
}

// Park the running thread until a collective releases it; returns the thread's result.
// Control passes straight to the next runnable fiber when there is one (one switch, not two).
static inline unsigned long long park(Ctx* c, unsigned char wait, unsigned mask, int arg,
                                      int width, unsigned long long value) {
    const int t = c->current;
    ThreadState& ts = c->threads[t];
    ts.status = WAITING;
    ts.wait = wait;
    ts.mask = mask;
    ts.arg = arg;
    ts.width = width;
    ts.value = value;
    Fiber* me = c->running_fiber;
    Fiber* next = next_fiber(c);
    if (next) c->running_fiber = next;
    switch_context(c, me, next);
    // Resumed by whoever released t: c->current, c->thread_idx and running_fiber are ours again.
    return c->threads[t].result;
}

static inline void release(Ctx* c, int t, unsigned long long result) {
    ThreadState& ts = c->threads[t];
    ts.result = result;
    ts.status = RUNNING;
    ts.wait = W_NONE;
    c->runnable.push_back(t);
}

// Lanes of warp w that exist in this block, as a bit mask.
static inline unsigned existing_lanes(const Ctx* c, int w) {
    int n = c->nthreads - 32 * w;
    return n >= 32 ? 0xFFFFFFFFu : ((1u << n) - 1u);
}

static unsigned long long shfl_result(const Ctx* c, int base, int lane, unsigned joined) {
    const ThreadState& me = c->threads[base + lane];
    int width = me.width;
    int seg_lo = lane & ~(width - 1);
    int seg_hi = seg_lo + width - 1;
    int src = lane;
    switch (me.wait) {
        case W_SHFL: src = seg_lo + (me.arg & (width - 1)); break;
        case W_SHFL_UP: src = (lane - seg_lo) >= me.arg ? lane - me.arg : lane; break;
        case W_SHFL_DOWN: src = lane + me.arg <= seg_hi ? lane + me.arg : lane; break;
        case W_SHFL_XOR: src = (lane ^ me.arg) <= seg_hi ? (lane ^ me.arg) : lane; break;
    }
    if (src < 0 || src > 31 || !((joined >> src) & 1u)) src = lane;  // undefined on a GPU
    return c->threads[base + src].value;
}

// Release whatever collectives are complete; false when nothing could be released.
static bool release_complete(Ctx* c, std::string* mismatch) {
    bool released = false;
    const int n = c->nthreads;
    // Block barrier: every thread has arrived or exited.
    int at_barrier = 0;
    for (int t = 0; t < n; t++)
        if (c->threads[t].status == WAITING && is_block_barrier(c->threads[t].wait)) at_barrier++;
    if (at_barrier > 0 && at_barrier + c->exited == n) {
        unsigned char kind = W_NONE;
        unsigned long long count = 0;
        for (int t = 0; t < n; t++) {
            const ThreadState& ts = c->threads[t];
            if (ts.status != WAITING) continue;
            if (kind == W_NONE) kind = ts.wait;
            if (ts.wait != kind) {
                *mismatch = std::string("threads of one block wait at different barriers (") +
                            wait_name(kind) + " and " + wait_name(ts.wait) + ")";
                return false;
            }
            count += ts.value != 0;
        }
        unsigned long long result = kind == W_SYNC_COUNT ? count
                                  : kind == W_SYNC_AND   ? (count == (unsigned long long)at_barrier)
                                  : kind == W_SYNC_OR    ? (count > 0)
                                                         : 0;
        for (int t = 0; t < n; t++)
            if (c->threads[t].status == WAITING) release(c, t, result);
        return true;
    }
    // Warp collectives, warp by warp.
    for (int w = 0; 32 * w < n; w++) {
        const int base = 32 * w;
        const unsigned lanes = existing_lanes(c, w);
        unsigned exited = 0, blocked = 0, at_activemask = 0;
        for (int l = 0; l < 32; l++) {
            if (!((lanes >> l) & 1u)) continue;
            const ThreadState& ts = c->threads[base + l];
            if (ts.status == EXITED) exited |= 1u << l;
            if (ts.status == WAITING) {
                blocked |= 1u << l;
                if (ts.wait == W_ACTIVEMASK) at_activemask |= 1u << l;
            }
        }
        // __activemask: every live lane has parked somewhere; the mask is who asked.
        if (at_activemask && (blocked | exited) == lanes) {
            for (int l = 0; l < 32; l++)
                if ((at_activemask >> l) & 1u) release(c, base + l, at_activemask);
            released = true;
            continue;
        }
        // Mask-based collectives: group the waiting lanes by the mask they passed.
        unsigned done = 0;
        for (int l = 0; l < 32; l++) {
            const ThreadState& first = c->threads[base + l];
            if (!((lanes >> l) & 1u) || ((done >> l) & 1u) || first.status != WAITING ||
                first.wait < W_SHFL || first.wait == W_ACTIVEMASK)
                continue;
            const unsigned mask = first.mask;
            unsigned joined = 0;
            bool same_op = true;
            for (int k = 0; k < 32; k++) {
                const ThreadState& ts = c->threads[base + k];
                if (!((lanes >> k) & 1u) || ts.status != WAITING || ts.wait < W_SHFL ||
                    ts.wait == W_ACTIVEMASK || ts.mask != mask)
                    continue;
                joined |= 1u << k;
                if (ts.wait != first.wait) same_op = false;
            }
            done |= joined;
            if ((mask & lanes & ~(joined | exited)) != 0) continue;  // someone still missing
            if (!same_op) {
                char buf[160];
                snprintf(buf, sizeof buf,
                         "lanes of warp %d called different warp collectives with mask 0x%08x", w,
                         mask);
                *mismatch = buf;
                return false;
            }
            unsigned long long ballot = 0;
            for (int k = 0; k < 32; k++)
                if (((joined >> k) & 1u) && c->threads[base + k].value) ballot |= 1ull << k;
            for (int k = 0; k < 32; k++) {
                if (!((joined >> k) & 1u)) continue;
                unsigned char wk = c->threads[base + k].wait;
                unsigned long long r = wk == W_BALLOT     ? ballot
                                     : wk == W_SYNCWARP   ? 0
                                                          : shfl_result(c, base, k, joined);
                release(c, base + k, r);
            }
            released = true;
        }
    }
    return released;
}

// "0-4, 6, 9-31" from a sorted list of thread ids.
static std::string ranges(const std::vector<int>& ids) {
    std::string s;
    for (size_t i = 0; i < ids.size();) {
        size_t j = i;
        while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) j++;
        if (!s.empty()) s += ", ";
        s += std::to_string(ids[i]);
        if (j > i) s += "-" + std::to_string(ids[j]);
        i = j + 1;
    }
    return s;
}

static std::string describe_block(const Ctx* c) {
    std::string s;
    for (unsigned char w = W_SYNC; w <= W_ACTIVEMASK; w++) {
        std::vector<int> ids;
        for (int t = 0; t < c->nthreads; t++)
            if (c->threads[t].status == WAITING && c->threads[t].wait == w) ids.push_back(t);
        if (!ids.empty()) s += std::string("; waiting at ") + wait_name(w) + ": threads " + ranges(ids);
    }
    std::vector<int> ids;
    for (int t = 0; t < c->nthreads; t++)
        if (c->threads[t].status == EXITED) ids.push_back(t);
    if (!ids.empty()) s += "; exited: threads " + ranges(ids);
    return s;
}

struct Launch {
    const char* kernel;
    dim3 grid, block;
    size_t shared_bytes;
    std::atomic<bool> failed{false};
    std::atomic<int> error_claimed{0};
    std::string error;

    void fail(const std::string& msg) {
        if (error_claimed.exchange(1) == 0) error = msg;
        failed = true;
    }
};

// Run block `b` of the launch on this OS thread.
static void run_block(Ctx* c, Launch& L, unsigned long long b) {
    const dim3 bd = L.block, gd = L.grid;
    c->block_dim = bd;
    c->grid_dim = gd;
    c->block_idx = uint3{unsigned(b % gd.x), unsigned((b / gd.x) % gd.y), unsigned(b / (gd.x * gd.y))};
    const int n = int(bd.x * bd.y * bd.z);
    c->nthreads = n;
    c->next_unstarted = 0;
    c->exited = 0;
    c->current = -1;
    c->runnable.clear();
    c->runnable_head = 0;
    if (int(c->thread_idx_of.size()) != n || c->thread_idx_of[n - 1].x != bd.x - 1 ||
        c->thread_idx_of[n - 1].y != bd.y - 1) {
        c->threads.resize(n);
        c->thread_idx_of.resize(n);
        for (int t = 0; t < n; t++)
            c->thread_idx_of[t] = uint3{unsigned(t % bd.x), unsigned((t / bd.x) % bd.y),
                                        unsigned(t / (bd.x * bd.y))};
    }
    if (L.shared_bytes) {
        std::memset(c->dyn_shared, kPoison, L.shared_bytes + kSharedGuard);
#if defined(__SANITIZE_ADDRESS__)
        ASAN_POISON_MEMORY_REGION(c->dyn_shared + L.shared_bytes, kSharedGuard);
#endif
    }
    c->block_fibers.clear();
    std::string mismatch;
    for (;;) {
        Fiber* f = next_fiber(c);
        if (f == nullptr) {
            if (c->exited == n) break;
            c->runnable.clear();
            c->runnable_head = 0;
            if (release_complete(c, &mismatch)) continue;
            char head[200];
            snprintf(head, sizeof head, "kernel '%s': %s in block (%u, %u, %u) of %d threads",
                     L.kernel, mismatch.empty() ? "deadlock" : mismatch.c_str(), c->block_idx.x,
                     c->block_idx.y, c->block_idx.z, n);
            L.fail(std::string(head) + describe_block(c) +
                   " (linear thread ids: x + blockDim.x * (y + blockDim.y * z))");
            break;
        }
        c->running_fiber = f;
        c->fiber_finished = false;
        switch_context(c, nullptr, f);
        // Back when a fiber ran out of threads, or parked with nothing else to run.
        if (c->fiber_finished) c->free_fibers.push_back(c->running_fiber);
    }
    // Fibers abandoned by a failed block are simply reused: their stacks hold nothing live.
    if (c->exited != n)
        for (Fiber* f : c->block_fibers)
            if (std::find(c->free_fibers.begin(), c->free_fibers.end(), f) == c->free_fibers.end())
                c->free_fibers.push_back(f);
    if (L.shared_bytes) {
#if defined(__SANITIZE_ADDRESS__)
        ASAN_UNPOISON_MEMORY_REGION(c->dyn_shared + L.shared_bytes, kSharedGuard);
#endif
        for (size_t i = 0; i < kSharedGuard; i++) {
            if ((unsigned char)c->dyn_shared[L.shared_bytes + i] != kPoison) {
                char msg[200];
                snprintf(msg, sizeof msg,
                         "kernel '%s' wrote past its %zu bytes of dynamic shared memory in block "
                         "(%u, %u, %u)",
                         L.kernel, L.shared_bytes, c->block_idx.x, c->block_idx.y, c->block_idx.z);
                L.fail(msg);
                break;
            }
        }
    }
}

// OS threads a launch may use: SPLAT_LION_CPU_THREADS, else OpenMP's default; a launch can
// ask for fewer (cudacpu_set_threads(1): blocks run in order 0, 1, ..., so float atomics from
// different blocks add up in the same order every run: bit-reproducible results).
static int g_threads_this_launch = 0;

extern "C" __attribute__((visibility("default"))) void cudacpu_set_threads(int n) {
    g_threads_this_launch = n;
}

static int cpu_threads() {
    static int n = [] {
        const char* e = getenv("SPLAT_LION_CPU_THREADS");
        int v = e ? atoi(e) : 0;
        return v > 0 ? v : omp_get_max_threads();
    }();
    return g_threads_this_launch > 0 && g_threads_this_launch < n ? g_threads_this_launch : n;
}

// ---- subnormals: flushed as CuPy's -ftz=true flushes them -------------------------------
// CuPy compiles every kernel with -ftz=true (cupy/cuda/compiler.py, _compile_with_cache_cuda):
// single-precision arithmetic on the GPU reads a subnormal input as a zero and writes a
// subnormal result as a zero of the same sign. A subnormal Lion momentum so has sign 0 there
// (parameter unchanged) and would have sign +-1 here without this.
// How: the FPU's own flush bits, set for the duration of a launch on every OS thread that runs
// the launch's blocks (the caller and the OpenMP workers: each enters run_grid's parallel
// region, which opens an FtzScope first) and restored when the region ends, so NumPy and the
// rest of the process never see them.
//   x86-64:  MXCSR FTZ (bit 15: subnormal results -> 0) and DAZ (bit 6: subnormal inputs -> 0).
//   AArch64: FPCR.FZ (bit 24: both).
//   others:  no flush; results differ from the GPU only where subnormals arise.
// Why not compiler flags: g++'s -ffast-math (and -mdaz-ftz) set the same bits only once, from
// a constructor (crtfastmath.o) when the program or library loads: in one thread, for the
// whole process (NumPy included), never in the OpenMP workers; -ffast-math also relaxes IEEE
// rules (NaN checks, reassociation) that the kernels rely on. No flag flushes per operation.
// Fibers share their OS thread's bits: the x86-64 switch leaves MXCSR alone, and the
// ucontext fallback saves and restores the FP control state, which getcontext captured
// inside the scope (reset_fiber runs per block). Known differences from the GPU: the bits
// flush double arithmetic too (-ftz=true concerns float only; no kernel here computes in
// double), and g++ does not contract a*b+c into an FMA as NVRTC does (--fmad=true is its
// default): results may differ in the last bit, as the tests' tolerances allow.
struct FtzScope {
#if defined(__x86_64__)
    unsigned saved;
    FtzScope() : saved(__builtin_ia32_stmxcsr()) { __builtin_ia32_ldmxcsr(saved | 0x8040u); }
    ~FtzScope() { __builtin_ia32_ldmxcsr(saved); }
#elif defined(__aarch64__)
    unsigned long long saved;
    FtzScope() {
        __asm__ __volatile__("mrs %0, fpcr" : "=r"(saved));
        const unsigned long long flush = saved | (1ull << 24);
        __asm__ __volatile__("msr fpcr, %0" : : "r"(flush));
    }
    ~FtzScope() { __asm__ __volatile__("msr fpcr, %0" : : "r"(saved)); }
#endif
    FtzScope(const FtzScope&) = delete;
    FtzScope& operator=(const FtzScope&) = delete;
};

template <class Body>
static int run_grid(const char* kernel, const unsigned* grid, const unsigned* block,
                    unsigned long long shared_bytes, Body& body, char* err, size_t errlen) {
    Launch L;
    L.kernel = kernel;
    L.grid = dim3(grid[0], grid[1], grid[2]);
    L.block = dim3(block[0], block[1], block[2]);
    L.shared_bytes = shared_bytes;
    const unsigned long long nblocks = (unsigned long long)grid[0] * grid[1] * grid[2];
    const int nthreads = int(nblocks < (unsigned long long)cpu_threads() ? nblocks : cpu_threads());
#pragma omp parallel num_threads(nthreads > 0 ? nthreads : 1)
    {
        const FtzScope ftz;  // flush subnormals on this OS thread until the region ends
        Ctx* c = ctx();
#if defined(__SANITIZE_ADDRESS__)
        if (c->sched_stack_bottom == nullptr) {  // ASan must be told which stack it returns to
            pthread_attr_t attr;
            void* bottom;
            pthread_getattr_np(pthread_self(), &attr);
            pthread_attr_getstack(&attr, &bottom, &c->sched_stack_size);
            pthread_attr_destroy(&attr);
            c->sched_stack_bottom = bottom;
        }
#endif
        c->fiber_main = &fiber_main<Body>;
        c->body = &body;
        if (shared_bytes) {
            if (c->shared_storage.size() < shared_bytes + kSharedGuard)
                c->shared_storage.resize(shared_bytes + kSharedGuard);
            c->dyn_shared = c->shared_storage.data();
        }
#pragma omp for schedule(dynamic, 16)
        for (unsigned long long b = 0; b < nblocks; b++) {
            if (L.failed.load(std::memory_order_relaxed)) continue;
            run_block(c, L, b);
        }
    }
    if (L.failed) {
        snprintf(err, errlen, "%s", L.error.c_str());
        return 1;
    }
    return 0;
}

// ---- the kernel's signature, for Python's argument checks -------------------------------
template <class T>
static std::string arg_code() {
    char k = std::is_pointer<T>::value         ? 'p'
           : std::is_floating_point<T>::value  ? 'f'
           : std::is_same<T, bool>::value      ? 'b'
           : std::is_integral<T>::value        ? (std::is_signed<T>::value ? 'i' : 'u')
           : std::is_enum<T>::value            ? 'i'
                                               : 's';  // a struct passed by value
    return k + std::to_string(sizeof(T));
}

template <class F> struct KernelTraits;
template <class... A> struct KernelTraits<void (*)(A...)> {
    using Args = std::tuple<std::decay_t<A>...>;
    static constexpr size_t arity = sizeof...(A);
    static std::string signature() {
        std::string s;
        ((s += (s.empty() ? "" : ","), s += arg_code<std::decay_t<A>>()), ...);
        return s;
    }
};

template <class Tuple, size_t... I>
static Tuple unpack_args(void** params, std::index_sequence<I...>) {
    return Tuple(*static_cast<std::tuple_element_t<I, Tuple>*>(params[I])...);
}

template <auto F>
static int launch(const char* name, const unsigned* grid, const unsigned* block,
                  unsigned long long shared_bytes, void** params, char* err, size_t errlen) {
    using Traits = KernelTraits<decltype(F)>;
    using Args = typename Traits::Args;
    Args args = unpack_args<Args>(params, std::make_index_sequence<Traits::arity>{});
    auto body = [&args]() { std::apply(F, args); };
    return run_grid(name, grid, block, shared_bytes, body, err, errlen);
}

}  // namespace cudacpu

// ---------------------------------------------------------------------------------------
// What kernel code sees
// ---------------------------------------------------------------------------------------
#define threadIdx (cudacpu::g_ctx->thread_idx)
#define blockIdx (cudacpu::g_ctx->block_idx)
#define blockDim (cudacpu::g_ctx->block_dim)
#define gridDim (cudacpu::g_ctx->grid_dim)

static inline char* cudacpu_dynamic_shared() { return cudacpu::g_ctx->dyn_shared; }

static inline void __syncthreads() {
    cudacpu::park(cudacpu::g_ctx, cudacpu::W_SYNC, 0, 0, 32, 0);
}
static inline int __syncthreads_count(int p) {
    return int(cudacpu::park(cudacpu::g_ctx, cudacpu::W_SYNC_COUNT, 0, 0, 32, p != 0));
}
static inline int __syncthreads_and(int p) {
    return int(cudacpu::park(cudacpu::g_ctx, cudacpu::W_SYNC_AND, 0, 0, 32, p != 0));
}
static inline int __syncthreads_or(int p) {
    return int(cudacpu::park(cudacpu::g_ctx, cudacpu::W_SYNC_OR, 0, 0, 32, p != 0));
}
static inline void __syncwarp(unsigned mask = 0xFFFFFFFFu) {
    cudacpu::park(cudacpu::g_ctx, cudacpu::W_SYNCWARP, mask, 0, 32, 0);
}
static inline unsigned __activemask() {
    return unsigned(cudacpu::park(cudacpu::g_ctx, cudacpu::W_ACTIVEMASK, 0, 0, 32, 0));
}
static inline unsigned __ballot_sync(unsigned mask, int p) {
    return unsigned(cudacpu::park(cudacpu::g_ctx, cudacpu::W_BALLOT, mask, 0, 32, p != 0));
}
static inline int __all_sync(unsigned mask, int p) { return __ballot_sync(mask, !p) == 0; }
static inline int __any_sync(unsigned mask, int p) { return __ballot_sync(mask, p) != 0; }

template <class T>
static inline T cudacpu_shfl(unsigned char op, unsigned mask, T var, int arg, int width) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "shuffles move 4- or 8-byte values");
    unsigned long long bits = 0;
    std::memcpy(&bits, &var, sizeof(T));
    bits = cudacpu::park(cudacpu::g_ctx, op, mask, arg, width, bits);
    T out;
    std::memcpy(&out, &bits, sizeof(T));
    return out;
}
template <class T>
static inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32) {
    return cudacpu_shfl(cudacpu::W_SHFL, mask, var, src_lane, width);
}
template <class T>
static inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
    return cudacpu_shfl(cudacpu::W_SHFL_UP, mask, var, int(delta), width);
}
template <class T>
static inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
    return cudacpu_shfl(cudacpu::W_SHFL_DOWN, mask, var, int(delta), width);
}
template <class T>
static inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
    return cudacpu_shfl(cudacpu::W_SHFL_XOR, mask, var, lane_mask, width);
}
