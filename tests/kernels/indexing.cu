// indexing.cu: 3D thread and block indices, and vector types, for the runtime tests.
//
// Mapping: one thread per output record; records ordered by linear block id, then linear
//          thread id (x fastest).
// Layout:  out: [num_blocks * threads, 12] uint32: threadIdx, blockIdx, blockDim, gridDim.
extern "C" __global__ void where_am_i(unsigned* out) {
    const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
    const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    unsigned* r = out + 12ull * (block * threads + t);
    const uint3 ti = threadIdx;
    const dim3 bd = blockDim;
    r[0] = ti.x; r[1] = ti.y; r[2] = ti.z;
    r[3] = blockIdx.x; r[4] = blockIdx.y; r[5] = blockIdx.z;
    r[6] = bd.x; r[7] = bd.y; r[8] = bd.z;
    r[9] = gridDim.x; r[10] = gridDim.y; r[11] = gridDim.z;
}

// out[i] = (in[i].w, in[i].z + 1, in[i].y * 2, in[i].x - 3) with 16-byte vector accesses;
// out2[i] = make_float2(x + y, z * w).
extern "C" __global__ void swizzle4(const float4* __restrict__ in, float4* __restrict__ out,
                                    float2* __restrict__ out2, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float4 v = in[i];
    out[i] = make_float4(v.w, v.z + 1.0f, v.y * 2.0f, v.x - 3.0f);
    out2[i] = make_float2(v.x + v.y, v.z * v.w);
}
