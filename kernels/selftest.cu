// selftest.cu: two small kernels that prove a backend works (`splat-lion info` runs them).
//
// Math:    selftest_saxpy:     y[i] = a * x[i] + y[i]
//          selftest_block_sum: out[0] += sum_i x[i]
// Mapping: saxpy: one thread per element. block_sum: each block sums a grid-stride slice
//          in registers, then across its threads through shared memory and warp shuffles,
//          and adds its total to out[0] with one atomic.
// Layout:  x, y: [n] float32; out: [1] float32.
#include "common.cuh"

extern "C" __global__ void selftest_saxpy(const float* __restrict__ x, float* __restrict__ y,
                                          float a, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}

// blockDim.x must be a multiple of 32, at most 1024.
extern "C" __global__ void selftest_block_sum(const float* __restrict__ x, float* __restrict__ out,
                                              long long n) {
    __shared__ float warp_totals[32];  // [blockDim.x / 32]
    const unsigned lane = threadIdx.x & 31u;
    const unsigned warp = threadIdx.x >> 5;
    const unsigned num_warps = blockDim.x >> 5;

    // 1. this thread's grid-stride partial sum
    float v = 0.0f;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        v += x[i];

    // 2. sum within each warp, then across the warps' totals
    v = warp_sum(v);
    if (lane == 0) warp_totals[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < num_warps ? warp_totals[lane] : 0.0f;
        v = warp_sum(v);
        if (lane == 0) atomicAdd(out, v);
    }
}
