// warp.cu: warp collectives for the runtime tests.
//
// Math:    per thread, the value each shuffle form returns for the given arguments, the
//          ballot/all/any of a predicate, and the active mask after some lanes have left.
// Mapping: one thread per element, blocks of whole warps.
// Layout:  in: [n] int32; out_*: [n] int32 (ballots: uint32).
extern "C" __global__ void shuffles(const int* __restrict__ in, int* out_idx, int* out_up,
                                    int* out_down, int* out_xor, int src_lane, int delta,
                                    int lane_mask, int width) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int v = in[i];
    out_idx[i] = __shfl_sync(0xffffffffu, v, src_lane, width);
    out_up[i] = __shfl_up_sync(0xffffffffu, v, (unsigned)delta, width);
    out_down[i] = __shfl_down_sync(0xffffffffu, v, (unsigned)delta, width);
    out_xor[i] = __shfl_xor_sync(0xffffffffu, v, lane_mask, width);
}

extern "C" __global__ void shuffle_wide(const double* __restrict__ in, double* out, long long* out_ll) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    out[i] = __shfl_xor_sync(0xffffffffu, in[i], 1);
    out_ll[i] = __shfl_down_sync(0xffffffffu, (long long)i << 33, 1);
}

extern "C" __global__ void votes(const int* __restrict__ in, unsigned* out_ballot, int* out_all,
                                 int* out_any) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int p = in[i] & 1;
    out_ballot[i] = __ballot_sync(0xffffffffu, p);
    out_all[i] = __all_sync(0xffffffffu, p);
    out_any[i] = __any_sync(0xffffffffu, p);
    __syncwarp();
}

// Lanes whose in is a multiple of 3 return at once; the rest report __activemask().
extern "C" __global__ void active_after_exit(const int* __restrict__ in, unsigned* out_mask) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    out_mask[i] = 0u;
    if (in[i] % 3 == 0) return;
    out_mask[i] = __activemask();
}

// Block barriers with results: count/and/or of (threadIdx.x % k == 0) per block.
extern "C" __global__ void block_votes(int k, int* out) {
    const int p = threadIdx.x % k == 0;
    const int count = __syncthreads_count(p);
    const int all = __syncthreads_and(p);
    const int any = __syncthreads_or(p);
    if (threadIdx.x == 0) {
        out[3 * blockIdx.x + 0] = count;
        out[3 * blockIdx.x + 1] = all;
        out[3 * blockIdx.x + 2] = any;
    }
}
