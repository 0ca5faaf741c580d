// common.cuh: device helpers shared by every kernel family.
//
// splat_lion/kernels.py pastes this file into each kernel source in place of
// `#include "common.cuh"` (CuPy's disk cache keys on the source text only), so it is
// compiled by NVRTC on the GPU and by the host compiler through cuda_cpu.h on the CPU.
// Logic here is the same on both, with one sanctioned exception, marked below.
#ifndef SPLAT_LION_COMMON_CUH
#define SPLAT_LION_COMMON_CUH

#define FULL_WARP_MASK 0xffffffffu

// TILE (tile side in pixels, for projection, binning and rasterisation) and BLOCK (threads
// per block of the 1-D kernels) come from splat_lion/kernels.py as -D options: one home.
#if !defined(TILE) || !defined(BLOCK)
#error "TILE and BLOCK are -D options from splat_lion/kernels.py (compile through it)"
#endif

// Linear id of this thread in its block: x + blockDim.x * (y + blockDim.y * z).
__device__ __forceinline__ unsigned linear_thread_id() {
    return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}

// Lane of this thread in its warp (warps are made of consecutive linear ids).
__device__ __forceinline__ unsigned lane_id() { return linear_thread_id() & 31u; }

// Sum of v over all 32 lanes of a full warp; every lane gets the total.
__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(FULL_WARP_MASK, v, offset);
    return v;
}

// Add v from every active lane into *dst; every active lane of the warp passes the same dst.
// GPU: a full warp sums with shuffles first and issues one atomic; a partial warp adds
// directly. CPU (the one sanctioned difference, DESIGN §3): a shuffle costs a fiber switch
// per lane there, so every lane adds directly. Define SPLAT_LION_WARP_SUM_ON_CPU to run the
// GPU variant on the CPU runtime (tests do, to check it through the shuffle emulation).
__device__ __forceinline__ void warp_sum_atomic_add(float* dst, float v) {
#if defined(__CUDACPU__) && !defined(SPLAT_LION_WARP_SUM_ON_CPU)
    atomicAdd(dst, v);
#else
    const unsigned active = __activemask();
    if (active == FULL_WARP_MASK) {
        v = warp_sum(v);
        if (lane_id() == 0) atomicAdd(dst, v);
    } else {
        atomicAdd(dst, v);
    }
#endif
}

// Add v from all 32 lanes into *dst, in a loop that every lane of a full warp runs in
// lockstep: each lane calls it on every iteration with the same dst, passing 0 when it has
// nothing to add. (warp_sum_atomic_add's __activemask could group lanes that reached the
// call from different loop iterations; a full-mask shuffle cannot.) GPU: one warp sum and
// one atomic; CPU (the sanctioned difference above): each non-zero v added directly.
__device__ __forceinline__ void warp_sum_atomic_add_full(float* dst, float v) {
#if defined(__CUDACPU__) && !defined(SPLAT_LION_WARP_SUM_ON_CPU)
    if (v != 0.0f) atomicAdd(dst, v);
#else
    v = warp_sum(v);
    if (lane_id() == 0 && v != 0.0f) atomicAdd(dst, v);
#endif
}

// Whether the lanes of a full warp in lockstep must make the warp_sum_atomic_add_full calls
// that follow, `has_values` telling whether this lane has anything to add. Guard only calls
// that a lane without values would make with v = 0 (and work whose results only they use):
// the skip must not change what is added. GPU: whether any lane of the warp has values
// (__any_sync: the same answer on every lane, so the warp skips or goes on as one and no lane
// leaves a collective). CPU (the sanctioned difference above): this lane's own has_values:
// every lane adds directly there, so a lane with nothing to add skips alone, with no fiber
// switch per call; what is added, and in which order, is the same as without the skip.
__device__ __forceinline__ bool warp_sums_needed(bool has_values) {
#if defined(__CUDACPU__) && !defined(SPLAT_LION_WARP_SUM_ON_CPU)
    return has_values;
#else
    return __any_sync(FULL_WARP_MASK, has_values);
#endif
}

// bfloat16 as raw 16-bit words (no cuda_bf16.h: the CPU runtime has none).
// The top half of a float32; rounding to it is round-to-nearest-even, NaN stays NaN.
__device__ __forceinline__ float bf16_to_float(unsigned short h) {
    return __uint_as_float((unsigned)h << 16);
}
__device__ __forceinline__ unsigned short float_to_bf16(float f) {
    const unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x0040u);
    return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// sign(x) with sign(+-0) = +0 (as NumPy's sign) and sign(NaN) = NaN (so a NaN is never
// silently dropped). On bits, so compilers emit selects, not branches (random signs defeat a
// predictor).
__device__ __forceinline__ float sign_or_nan(float x) {
    const unsigned u = __float_as_uint(x);
    const unsigned magnitude = u & 0x7fffffffu;
    const unsigned one = (u & 0x80000000u) | 0x3f800000u;  // +-1.0f
    return __uint_as_float(magnitude > 0x7f800000u ? u : magnitude != 0u ? one : 0u);
}

// -- fused optimizer steps (lion.cu, adam.cu) ---------------------------------------------
//
// The segment table travels by value as ONE kernel parameter (an OptimTable: on the GPU the
// parameter space is a constant bank, so no device table and no dependent loads; the CPU
// runtime copies it). Each entry is an attribute of the flat layout, or a piece of one cut at
// a splat boundary, of at most 2^30 elements. A block works on ONE entry, chosen by its
// index alone (first_block), so every segment value is uniform across the block; each of its
// BLOCK threads takes OPTIM_CHUNKS chunks of 4 consecutive floats (16-byte loads), BLOCK
// chunks apart. splat_lion/optim/base.py builds the table and the grid, and passes its
// CHUNKS_PER_THREAD and MAX_SEGMENTS as OPTIM_CHUNKS and OPTIM_MAX_SEGMENTS (the defaults
// here are for tools that compile without them).
#ifndef OPTIM_CHUNKS
#define OPTIM_CHUNKS 4
#endif
#ifndef OPTIM_MAX_SEGMENTS
#define OPTIM_MAX_SEGMENTS 8
#endif
// The `step` argument that records nothing (INT_MAX: also what the optimizer's flag holds
// while no non-finite value has been seen).
#define OPTIM_NO_STEP 0x7fffffff

struct OptimSegment {
    long long begin;       // first element in the flat buffers (a multiple of 4)
    unsigned len;          // elements (at most 2^30); a last chunk of fewer than 4 is partial
    unsigned width;        // floats per splat
    unsigned magic;        // the splat of element offset e is (e * magic) >> shift (base.py)
    unsigned shift;
    unsigned splat0;       // index of the entry's first splat in the visibility mask
    int first_block;       // the entry's first block (unused entries: INT_MAX)
    float lr, wd;          // learning rate and weight decay
};

struct OptimTable {
    OptimSegment seg[OPTIM_MAX_SEGMENTS];
};

// This block's entry: the last whose first_block it has reached (unrolled: no loop, no
// dependent loads; the same on every thread of the block).
__device__ __forceinline__ int optim_block_segment(const OptimTable& t) {
    int s = 0;
    #pragma unroll
    for (int k = 1; k < OPTIM_MAX_SEGMENTS; k++) s += (int)blockIdx.x >= t.seg[k].first_block;
    return s;
}

// The splat of element offset e of entry s (relative to its splat0): e / width by one
// multiply and shift, exact for e < 2^30 (optim/base.py, division_magic). For width >= 2 the
// shift is >= 32, so the product's high word does: one IMAD.HI and one shift.
__device__ __forceinline__ unsigned optim_splat(const OptimSegment& s, unsigned e) {
    return (unsigned)(((unsigned long long)e * s.magic) >> s.shift);
}

// Visibility of the 4 elements of the full chunk at offset `off` (a multiple of 4) of entry
// s, as a word whose byte k is non-zero iff element off + k is visible; vis: the mask from the
// entry's first splat. Element off + k lies in splat q + d_k, where q = off / width (the
// chunk's one division) and d_k = (r + k) / width, r = off - q * width. Width 1: d_k = k, and
// the 4 bytes vis[q .. q + 3] are one aligned word (q = off; splat0 and the mask are
// 4-aligned). Width >= 2: d_k = (k >= t), t = width - r >= 1 (as r + 3 < 2 * width, r being 0
// for width 2), so bytes k < t come from vis[q], the others from vis[q + 1], read only when
// t < 4. Either way most chunks of wide attributes read 1 byte.
__device__ __forceinline__ unsigned optim_chunk_visibility(const OptimSegment& s,
                                                           const unsigned char* __restrict__ vis,
                                                           unsigned off) {
    const unsigned w = s.width;
    if (w == 1u) return *reinterpret_cast<const unsigned*>(vis + off);
    const unsigned q = __umulhi(off, s.magic) >> (s.shift - 32u);
    const unsigned t = w - (off - q * w);
    const unsigned here = vis[q];
    const unsigned next = t < 4u ? vis[q + 1] : 0u;
    // byte k: byte 0 of `here` (selector 0) for k < t, of `next` (selector 4) from k = t on
    const unsigned select = 0x4444u << (4u * (t < 4u ? t : 4u));
    return __byte_perm(here, next, select);
}

// Whether x is neither infinite nor NaN (one compare on the GPU).
__device__ __forceinline__ bool optim_finite(float x) {
    return fabsf(x) < __int_as_float(0x7f800000);
}

// The 4 floats of a full chunk: one 16-byte access; x must be aligned to it.
__device__ __forceinline__ void load4(const float* __restrict__ x, float v[4]) {
    const float4 q = *reinterpret_cast<const float4*>(x);
    v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
}
__device__ __forceinline__ void store4(float* __restrict__ x, const float v[4]) {
    *reinterpret_cast<float4*>(x) = make_float4(v[0], v[1], v[2], v[3]);
}

// Tiles a splat at mean2d with this radius touches: [x0, x1) x [y0, y1), clamped to the
// grid of TILE x TILE tiles over a width x height image (3DGS's getRect).
__device__ __forceinline__ void tile_rect(float mx, float my, float radius, int width, int height,
                                          int* x0, int* x1, int* y0, int* y1) {
    const int grid_x = (width + TILE - 1) / TILE, grid_y = (height + TILE - 1) / TILE;
    *x0 = (int)fminf(fmaxf(floorf((mx - radius) / TILE), 0.0f), (float)grid_x);
    *x1 = (int)fminf(fmaxf(ceilf((mx + radius) / TILE), 0.0f), (float)grid_x);
    *y0 = (int)fminf(fmaxf(floorf((my - radius) / TILE), 0.0f), (float)grid_y);
    *y1 = (int)fminf(fmaxf(ceilf((my + radius) / TILE), 0.0f), (float)grid_y);
}

#endif  // SPLAT_LION_COMMON_CUH
