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

// sign(x) with sign(0) = 0 and sign(NaN) = NaN (so a NaN is never silently dropped).
// On bits, so compilers emit selects, not branches (random signs defeat a predictor).
__device__ __forceinline__ float sign_or_nan(float x) {
    const unsigned u = __float_as_uint(x);
    const unsigned magnitude = u & 0x7fffffffu;
    const unsigned one = magnitude != 0u ? 0x3f800000u : 0u;  // 1.0f, or 0 for +-0
    return __uint_as_float(magnitude > 0x7f800000u ? u : (u & 0x80000000u) | one);
}

// One thread's share of a fused optimizer step: 4 consecutive floats of a flat buffer and
// the segment (attribute) they lie in. segments: [S, 3] int64 (begin, end, width), sorted,
// the first beginning at 0, each at a multiple of 4; hyper: [S, 2] float32 (lr, wd).
struct Chunk {
    long long i;               // first element
    int n;                     // elements in the chunk (< 4 only at the tail of a lone tensor)
    long long begin, end;      // the segment's elements; e >= end is padding
    long long width;           // floats per splat in the segment
    float lr, wd;              // the segment's learning rate and weight decay
};

__device__ __forceinline__ Chunk chunk_at(long long c, long long total, const long long* segments,
                                          const float* hyper, int num_segments) {
    Chunk k;
    k.i = 4 * c;
    k.n = total - k.i < 4 ? (int)(total - k.i) : 4;
    int s = 0;
    while (s + 1 < num_segments && k.i >= segments[3 * (s + 1)]) s++;
    k.begin = segments[3 * s];
    k.end = segments[3 * s + 1];
    k.width = segments[3 * s + 2];
    k.lr = hyper[2 * s];
    k.wd = hyper[2 * s + 1];
    return k;
}

// Whether element e of the chunk is updated: not padding, and (with a mask) of a visible
// splat; element e belongs to splat (e - begin) / width.
__device__ __forceinline__ bool element_active(const Chunk& k, long long e,
                                               const unsigned char* visible, int has_visible) {
    return e < k.end && (!has_visible || visible[(e - k.begin) / k.width]);
}

// Up to 4 consecutive values from x + i as floats, with one 16-byte (float) or 8-byte
// (bfloat16 words) access when n == 4; x + i must then be aligned to that size. n < 4 only
// at the tail of a buffer whose size is no multiple of 4.
__device__ __forceinline__ void load4(const float* x, long long i, int n, float v[4]) {
    if (n == 4) {
        const float4 q = *reinterpret_cast<const float4*>(x + i);
        v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
    } else {
        #pragma unroll
        for (int k = 0; k < 4; k++) v[k] = k < n ? x[i + k] : 0.0f;
    }
}
__device__ __forceinline__ void store4(float* x, long long i, int n, const float v[4]) {
    if (n == 4) {
        *reinterpret_cast<float4*>(x + i) = make_float4(v[0], v[1], v[2], v[3]);
    } else {
        #pragma unroll
        for (int k = 0; k < 4; k++)
            if (k < n) x[i + k] = v[k];
    }
}
__device__ __forceinline__ void load4(const unsigned short* x, long long i, int n, float v[4]) {
    if (n == 4) {
        const uint2 q = *reinterpret_cast<const uint2*>(x + i);
        v[0] = bf16_to_float((unsigned short)(q.x & 0xffffu));
        v[1] = bf16_to_float((unsigned short)(q.x >> 16));
        v[2] = bf16_to_float((unsigned short)(q.y & 0xffffu));
        v[3] = bf16_to_float((unsigned short)(q.y >> 16));
    } else {
        #pragma unroll
        for (int k = 0; k < 4; k++) v[k] = k < n ? bf16_to_float(x[i + k]) : 0.0f;
    }
}
__device__ __forceinline__ void store4(unsigned short* x, long long i, int n, const float v[4]) {
    unsigned short h[4];
    #pragma unroll
    for (int k = 0; k < 4; k++) h[k] = float_to_bf16(v[k]);
    if (n == 4) {
        *reinterpret_cast<uint2*>(x + i) = make_uint2((unsigned)h[0] | ((unsigned)h[1] << 16),
                                                      (unsigned)h[2] | ((unsigned)h[3] << 16));
    } else {
        #pragma unroll
        for (int k = 0; k < 4; k++)
            if (k < n) x[i + k] = h[k];
    }
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
