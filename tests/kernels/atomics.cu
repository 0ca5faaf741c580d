// atomics.cu: atomics under contention across blocks, for the runtime tests.
//
// Mapping: one thread per element; many blocks hit a few counters at once.
// Layout:  values: [n] int32 in [0, 1000); ints: [num_bins] int32; floats: [num_bins] float32
//          (sums of v & 7: integer-valued, exact); ulls: [1] uint64; extremes: [2] int32 (max, min);
//          cas_counter: [1] int32.
extern "C" __global__ void contend(const int* __restrict__ values, int n, int num_bins, int* ints,
                                   float* floats, unsigned long long* ulls, int* extremes,
                                   int* cas_counter) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int v = values[i];
    const int bin = v % num_bins;
    atomicAdd(ints + bin, 1);
    atomicAdd(floats + bin, (float)(v & 7));  // small: sums stay exact in float32
    atomicAdd(ulls, (unsigned long long)v << 20);
    atomicMax(extremes + 0, v);
    atomicMin(extremes + 1, v);
    int old = *cas_counter;
    for (;;) {
        const int seen = atomicCAS(cas_counter, old, old + 1);
        if (seen == old) break;
        old = seen;
    }
}
