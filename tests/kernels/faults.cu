// faults.cu: kernels that break the rules on purpose, for the runtime's error tests.
// Never launch these on a GPU: they deadlock or write out of bounds there.
//
// Layout: x: [n] float32.

// Lane 3 of each warp waits at __syncthreads while its warp-mates wait at a shuffle that
// needs lane 3: nobody can proceed.
extern "C" __global__ void deadlock_shfl_vs_barrier(float* x) {
    const int lane = threadIdx.x % 32;
    if (lane == 3) {
        __syncthreads();
    } else {
        x[threadIdx.x] = __shfl_sync(0xffffffffu, x[threadIdx.x], 3);
    }
}

// Half the block waits at __syncthreads, the other half at __syncthreads_count.
extern "C" __global__ void mismatched_barriers(float* x) {
    if (threadIdx.x < blockDim.x / 2) {
        __syncthreads();
    } else {
        x[threadIdx.x] = (float)__syncthreads_count(1);
    }
}

// Writes one float past the dynamic shared memory of blockDim.x floats.
extern "C" __global__ void shared_overflow(float* x) {
    extern __shared__ float tile[];  // [blockDim.x]
    tile[threadIdx.x + 1] = x[threadIdx.x];
    __syncthreads();
    x[threadIdx.x] = tile[threadIdx.x];
}

// Writes x[n]: one element past the end of the array.
extern "C" __global__ void write_past_end(float* x, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) x[i] = 1.0f;  // the planted bug: <= instead of <
}
