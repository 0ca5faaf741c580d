// reduce.cu: block reductions for the runtime tests, at any block size 1..1024.
//
// Math:    block_sums[b] = sum of x over block b's slice; *total += that sum.
// Mapping: one thread per element; tree_sum reduces through static shared memory with a
//          __syncthreads per level; shuffle_sum reduces each warp with __shfl_down_sync
//          (a partial last warp passes the mask of its existing lanes), then the warps'
//          totals through dynamic shared memory.
// Layout:  x: [n] float32; block_sums: [num_blocks] float32; total: [1] float32.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(1024)
tree_sum(const float* __restrict__ x, float* __restrict__ block_sums, float* total, int n) {
    __shared__ float buf[1024];
    const int t = threadIdx.x;
    const int i = blockIdx.x * blockDim.x + t;
    buf[t] = i < n ? x[i] : 0.0f;
    __syncthreads();
    int width = 1;
    while (width < (int)blockDim.x) width <<= 1;
    for (int s = width / 2; s > 0; s >>= 1) {
        if (t < s && t + s < (int)blockDim.x) buf[t] += buf[t + s];
        __syncthreads();
    }
    if (t == 0) {
        block_sums[blockIdx.x] = buf[0];
        atomicAdd(total, buf[0]);
    }
}

extern "C" __global__ void shuffle_sum(const float* __restrict__ x, float* __restrict__ block_sums,
                                       float* total, int n) {
    extern __shared__ float warp_totals[];  // [num_warps]
    const int t = threadIdx.x;
    const int i = blockIdx.x * blockDim.x + t;
    const int warp = t / 32, lane = t % 32;
    const int num_warps = (blockDim.x + 31) / 32;
    const int lanes_here = min(32, (int)blockDim.x - warp * 32);
    const unsigned mask = lanes_here == 32 ? FULL_WARP_MASK : ((1u << lanes_here) - 1u);
    float v = i < n ? x[i] : 0.0f;
    for (int offset = 16; offset > 0; offset >>= 1) {
        const float other = __shfl_down_sync(mask, v, offset);
        if (lane + offset < lanes_here) v += other;
    }
    if (lane == 0) warp_totals[warp] = v;
    __syncthreads();
    if (t == 0) {
        float sum = 0.0f;
        for (int w = 0; w < num_warps; w++) sum += warp_totals[w];
        block_sums[blockIdx.x] = sum;
        atomicAdd(total, sum);
    }
}

// out[k] += x[i] for every i with k = (i / 32) % num_bins (one bin per warp, as
// warp_sum_atomic_add requires), through warp_sum_atomic_add; threads whose x is negative
// leave early, so some warps arrive partial.
extern "C" __global__ void binned_sum(const float* __restrict__ x, float* out, int num_bins, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n || x[i] < 0.0f) return;
    warp_sum_atomic_add(out + (i / 32) % num_bins, x[i]);
}
