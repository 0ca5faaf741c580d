// intrinsics.cu: CUDA math functions and intrinsics, for the runtime tests.
//
// Mapping: one thread per element.
// Layout:  x: [n] float32 (positive); u: [n] uint32; fout: [n, 12] float32; uout: [n, 8] uint32.
static __device__ __forceinline__ float clamp01(float v) { return __saturatef(v); }

extern "C" __global__ void math_ops(const float* __restrict__ x, const unsigned* __restrict__ u,
                                    float* __restrict__ fout, unsigned* __restrict__ uout, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float v = x[i];
    float s, c;
    sincosf(v, &s, &c);
    float* f = fout + 12 * i;
    f[0] = rsqrtf(v);
    f[1] = __expf(-v);
    f[2] = __logf(v);
    f[3] = clamp01(v - 1.0f);
    f[4] = __fdividef(1.0f, v);
    f[5] = s;
    f[6] = c;
    f[7] = fminf(v, 2.0f) + fmaxf(v, 3.0f);
    f[8] = min(v, 1.5f) + max(v, 0.5f);
    f[9] = __uint_as_float(__float_as_uint(v) ^ 0x80000000u);
    f[10] = copysignf(v, -1.0f) + sqrtf(v);
    f[11] = (float)(min(i, 7) + max((int)u[i] & 15, 3));
    unsigned* r = uout + 8 * i;
    const unsigned w = u[i];
    r[0] = __popc(w);
    r[1] = __brev(w);
    r[2] = __clz((int)w);
    r[3] = __ffs((int)w);
    r[4] = __float_as_uint(v);
    r[5] = (unsigned)__float_as_int(-v);
    r[6] = __umulhi(w, 0x9E3779B9u);
    const float inf = __int_as_float(0x7f800000);
    r[7] = (unsigned)isnan(v) + 2u * (unsigned)isinf(v * inf);
}
