// sort.cu: stable LSD radix sort of 32-bit keys carrying int32 values, one digit per pass.
//
// Math:    a pass orders n (key, value) pairs stably by the digit d = (key >> shift) & (R - 1),
//          R = 2^bits <= RADIX: pair i goes to #{j : d_j < d_i} + #{j < i : d_j = d_i}.
//          Passes from the lowest digit up sort by the whole key (each pass is stable).
// Mapping: thread t of g = ceil(n / items) owns pairs [t*items, min(n, (t+1)*items)) and walks
//          them in order, alone: no barrier and no warp collective inside the walk, so the
//          CPU runtime runs it at plain C speed. Blocks of SORT_THREADS threads, gb of them.
//          radix_count: counts[d][t] = pairs of digit d thread t owns, block_counts[d][b] =
//          their sum over block b; the block that finishes last makes block_counts into
//          bases, an exclusive prefix sum in digit-major order: bases[d][b] = pairs of
//          smaller digits + pairs of digit d in blocks before b.
//          radix_scatter: thread t of block b starts digit d at bases[d][b] + the counts of
//          digit d of the threads before t in b (per-thread positions in shared memory) and
//          writes its pairs of digit d from there on, in order: stable.
//          (Counting in the scatter for the next pass, with atomics where the pairs land,
//          would save a launch per pass but ran 3-5x slower on the CPU runtime.)
//          On a GPU each lane streams its own range (each 32-byte sector serves 8 of its
//          steps from L1) and its writes land apart from its neighbours': the bytes are a
//          pass's minimum, the access pattern is not coalesced.
// Layout:  keys, values: [n]; counts: [R * g] int32 (entry d * g + t); block_counts:
//          [R * gb + 1] int32 (entry d * gb + b; after the scan the last entry holds the
//          total); done: [1] int32, blocks finished (zero between launches). n < 2^31.
#include "common.cuh"

// Threads per block of every kernel here, and the widest digit (R <= RADIX); one home:
// splat_lion/sort.py passes both (these defaults let NVRTC checks compile the file alone).
#ifndef SORT_THREADS
#define SORT_THREADS 32
#endif
#ifndef RADIX_BITS
#define RADIX_BITS 8
#endif
#define RADIX (1 << RADIX_BITS)
// Row stride of the per-thread counters in shared memory: one more than the lanes, so lanes
// reading one column each and lanes reading one row each both hit distinct banks.
#define SORT_STRIDE (SORT_THREADS + 1)

__device__ __forceinline__ int radix_digit(unsigned key, int shift, int bits) {
    return (int)((key >> shift) & ((1u << bits) - 1u));
}

// After every block has written its part of block_counts [entries]: the block that finishes
// last turns them into exclusive prefix sums in place, writes the total at [entries] and
// resets *done. Called by all threads of every block (it has barriers).
__device__ void scan_if_last(int* block_counts, long long entries, int* done) {
    __shared__ int last;
    __shared__ int part[SORT_THREADS];
    const int lane = threadIdx.x;
    __threadfence();  // this block's additions are visible before it counts itself done
    __syncthreads();
    if (lane == 0) last = atomicAdd(done, 1) == (int)gridDim.x - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    // each lane sums a contiguous chunk, lane 0 scans the sums, each lane rewrites its chunk
    const long long chunk = (entries + SORT_THREADS - 1) / SORT_THREADS;
    const long long begin = min(entries, lane * chunk), end = min(entries, begin + chunk);
    int sum = 0;
    for (long long i = begin; i < end; i++) sum += __ldcg(block_counts + i);
    part[lane] = sum;
    __syncthreads();
    if (lane == 0) {
        int run = 0;
        for (int l = 0; l < SORT_THREADS; l++) {
            const int c = part[l];
            part[l] = run;
            run += c;
        }
        block_counts[entries] = run;
        *done = 0;
    }
    __syncthreads();
    int run = part[lane];
    for (long long i = begin; i < end; i++) {
        const int c = __ldcg(block_counts + i);
        block_counts[i] = run;
        run += c;
    }
}

// radix_count: the counters of a pass, from the keys in their order before it.
extern "C" __global__ void radix_count(const unsigned* __restrict__ keys, long long n,
                                       long long items, long long g, long long gb, int shift,
                                       int bits, int* __restrict__ counts,
                                       int* __restrict__ block_counts, int* __restrict__ done) {
    __shared__ int cnt[RADIX * SORT_STRIDE];  // [R][SORT_THREADS] (+1 padding per row)
    const int lane = threadIdx.x, radix = 1 << bits;
    const long long t = (long long)blockIdx.x * SORT_THREADS + lane;
    for (int d = 0; d < radix; d++) cnt[d * SORT_STRIDE + lane] = 0;
    if (t < g) {
        const long long end = min(n, (t + 1) * items);
        for (long long i = t * items; i < end; i++) cnt[radix_digit(keys[i], shift, bits) * SORT_STRIDE + lane]++;
        for (int d = 0; d < radix; d++) counts[d * g + t] = cnt[d * SORT_STRIDE + lane];
    }
    __syncthreads();
    // block sums: lane l sums the rows d = l, l + SORT_THREADS, ...
    for (int d = lane; d < radix; d += SORT_THREADS) {
        int sum = 0;
        for (int l = 0; l < SORT_THREADS; l++) sum += cnt[d * SORT_STRIDE + l];
        block_counts[d * gb + blockIdx.x] = sum;
    }
    scan_if_last(block_counts, radix * gb, done);
}

// radix_scatter: one pass. keys_in/vals_in [n] -> keys_out/vals_out [n] (vals_in absent:
// has_vals == 0, the values are the indices 0..n-1). has_gather: also
// gather_dst[position] = gather_src[value] (e.g. each splat's tile count, in depth order).
extern "C" __global__ void radix_scatter(
    const unsigned* __restrict__ keys_in, const int* __restrict__ vals_in, int has_vals,
    long long n, long long items, long long g, long long gb, int shift, int bits,
    const int* __restrict__ counts, const int* __restrict__ bases, unsigned* __restrict__ keys_out,
    int* __restrict__ vals_out, const int* __restrict__ gather_src, int* __restrict__ gather_dst,
    int has_gather) {
    __shared__ int pos[RADIX * SORT_STRIDE];  // [R][SORT_THREADS]: next position per digit
    const int lane = threadIdx.x, radix = 1 << bits;
    const long long t = (long long)blockIdx.x * SORT_THREADS + lane;
    // 1. this thread's counts
    for (int d = 0; d < radix; d++) pos[d * SORT_STRIDE + lane] = t < g ? counts[d * g + t] : 0;
    __syncthreads();
    // 2. row d: the block's base for digit d, then the exclusive prefix over the lanes
    for (int d = lane; d < radix; d += SORT_THREADS) {
        int run = bases[d * gb + blockIdx.x];
        for (int l = 0; l < SORT_THREADS; l++) {
            const int c = pos[d * SORT_STRIDE + l];
            pos[d * SORT_STRIDE + l] = run;
            run += c;
        }
    }
    __syncthreads();
    // 3. the walk, in order
    if (t < g) {
        const long long end = min(n, (t + 1) * items);
        for (long long i = t * items; i < end; i++) {
            const unsigned key = keys_in[i];
            const int value = has_vals ? vals_in[i] : (int)i;
            const int p = pos[radix_digit(key, shift, bits) * SORT_STRIDE + lane]++;
            keys_out[p] = key;
            vals_out[p] = value;
            if (has_gather) gather_dst[p] = gather_src[value];
        }
    }
}
