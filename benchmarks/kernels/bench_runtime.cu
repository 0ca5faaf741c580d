// bench_runtime.cu: three small kernels that time the runtime itself (benchmarks/bench_runtime.py).
//
// Math:    bench_axpy:      out[i] = a * x[i] + y[i]
//          bench_tree_sum:  block_sums[b] = sum of x[i] over block b's BLOCK elements
//          bench_warp_sum:  warp_sums[w]  = sum of x[i] over warp w's 32 elements
// Mapping: one thread per element everywhere (so "ns per CUDA thread" is time / (grid * block)).
//          axpy: sync-free, the runtime's fast path.
//          tree_sum: shared-memory tree, halving the active threads each level, one
//          __syncthreads per level (log2(BLOCK) + 1 barriers per thread): barrier-heavy.
//          warp_sum: five __shfl_xor_sync steps (common.cuh warp_sum), no shared memory.
//          Threads past n contribute 0 and still take part in every barrier and shuffle.
// Layout:  x, y, out: [n] float32; block_sums: [ceil(n / BLOCK)] float32;
//          warp_sums: [ceil(n / 32)] float32. blockDim.x must be BLOCK for tree_sum
//          (a power of two, at most 1024) and a multiple of 32 for warp_sum.
#include "common.cuh"

extern "C" __global__ void bench_axpy(const float* __restrict__ x, const float* __restrict__ y,
                                      float* __restrict__ out, float a, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a * x[i] + y[i];
}

extern "C" __global__ void bench_tree_sum(const float* __restrict__ x,
                                          float* __restrict__ block_sums, long long n) {
    __shared__ float partial[BLOCK];  // [BLOCK]
    const unsigned t = threadIdx.x;
    const long long i = (long long)blockIdx.x * blockDim.x + t;

    // 1. one element per thread into shared memory
    partial[t] = i < n ? x[i] : 0.0f;
    __syncthreads();

    // 2. tree: the lower half adds the upper half, a barrier between levels
    for (unsigned stride = BLOCK / 2; stride > 0; stride >>= 1) {
        if (t < stride) partial[t] += partial[t + stride];
        __syncthreads();
    }

    // 3. thread 0 writes the block's total
    if (t == 0) block_sums[blockIdx.x] = partial[0];
}

extern "C" __global__ void bench_warp_sum(const float* __restrict__ x,
                                          float* __restrict__ warp_sums, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;

    // 1. one element per thread, summed across the warp with shuffles
    const float v = warp_sum(i < n ? x[i] : 0.0f);

    // 2. lane 0 of each warp that holds at least one element writes the total
    const long long first = i - (long long)lane_id();  // index of this warp's lane 0
    if (lane_id() == 0 && first < n) warp_sums[first >> 5] = v;
}
