// tile_loop.cu: the rasterizer's loop shape, for the runtime tests.
//
// Math:    each thread ("pixel" p) walks items in order, sum += items[j] * (1 + p % 3),
//          and stops once sum >= threshold; out_sum[p], out_count[p] (items taken).
// Mapping: 2D blocks (a tile of pixels); the block fetches items in batches of one per
//          thread into dynamic shared memory and leaves the loop early once
//          __syncthreads_count says every thread is done; batches_used[block] records
//          how many batches the block loaded.
// Layout:  items: [num_items] float32; out_sum: [P] float32; out_count: [P] int32;
//          batches_used: [num_blocks] int32, P = num_blocks * threads per block.
extern "C" __global__ void batched_accumulate(const float* __restrict__ items, int num_items,
                                              float threshold, float* __restrict__ out_sum,
                                              int* __restrict__ out_count,
                                              int* __restrict__ batches_used) {
    extern __shared__ float batch[];  // [threads per block]
    const int block_id = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const int threads = blockDim.x * blockDim.y * blockDim.z;
    const int t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const int pixel = block_id * threads + t;
    const float scale = 1.0f + (float)(pixel % 3);
    const int num_batches = (num_items + threads - 1) / threads;
    float sum = 0.0f;
    int count = 0;
    bool done = false;
    int b = 0;
    for (; b < num_batches; b++) {
        if (__syncthreads_count(done) == threads) break;
        const int idx = b * threads + t;
        if (idx < num_items) batch[t] = items[idx];
        __syncthreads();
        const int in_batch = min(threads, num_items - b * threads);
        for (int j = 0; !done && j < in_batch; j++) {
            sum += batch[j] * scale;
            count++;
            done = sum >= threshold;
        }
    }
    out_sum[pixel] = sum;
    out_count[pixel] = count;
    if (t == 0) batches_used[block_id] = b;
}
