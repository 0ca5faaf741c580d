// common.cuh: device helpers shared by every kernel family.
//
// splat_lion/kernels.py pastes this file into each kernel source in place of
// `#include "common.cuh"` (CuPy's disk cache keys on the source text only), so it is
// compiled by NVRTC on the GPU and by the host compiler through cuda_cpu.h on the CPU.
// Logic here is the same on both, with one sanctioned exception, marked below.
#ifndef SPLAT_LION_COMMON_CUH
#define SPLAT_LION_COMMON_CUH

#define FULL_WARP_MASK 0xffffffffu

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

#endif  // SPLAT_LION_COMMON_CUH
