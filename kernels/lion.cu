// lion.cu: fused Lion step over a flat parameter buffer, every attribute in one launch.
//
// Math:    c = b1*m + (1-b1)*g;  p -= lr_s * (sign(c) + wd_s * p);  m = b2*m + (1-b2)*g
//          with sign(0) = 0, sign(NaN) = NaN; lr_s, wd_s: the segment's learning rate (base
//          lr x lr_scale) and weight decay, read from a small table, so changing them never
//          recompiles.
// Mapping: grid-stride loop, one thread per chunk of 4 consecutive floats (16-byte loads).
//          Segments start at multiples of 4 floats, so a chunk never straddles attributes;
//          chunk_at() gives the chunk's attribute, hence its lr_s and wd_s. A chunk past
//          `total` (only for a lone tensor whose size is no multiple of 4) is partial.
// Masking: element e of segment s belongs to splat (e - begin_s) / width_s. With has_visible,
//          elements of invisible splats keep p and m bit for bit ("selective Lion"), and so
//          do padding elements (e >= end_s) always.
// Layout:  p, g: [total] float32; m: [total] float32 (lion_step) or bfloat16 words
//          (lion_step_bf16); segments: [S, 3] int64 (begin, end, width); hyper: [S, 2]
//          float32 (lr_s, wd_s); visible: [N] uint8 (a dummy [1] when has_visible == 0).
#include "common.cuh"


// M: float (fp32 momentum) or unsigned short (bfloat16 momentum).
template <class M>
__device__ __forceinline__ void lion_step_impl(float* __restrict__ p, const float* __restrict__ g,
                                               M* __restrict__ m, const long long* segments,
                                               const float* hyper, int num_segments,
                                               const unsigned char* visible, int has_visible,
                                               float beta1, float beta2, long long total) {
    const long long chunks = (total + 3) / 4;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x; c < chunks; c += stride) {
        const Chunk ch = chunk_at(c, total, segments, hyper, num_segments);
        const long long i = ch.i;
        const int n = ch.n;
        const float lr = ch.lr, wd = ch.wd;

        float pv[4], gv[4], mv[4];
        load4(p, i, n, pv);
        load4(g, i, n, gv);
        load4(m, i, n, mv);
        #pragma unroll
        for (int k = 0; k < 4; k++) {
            // inactive: p and m are written back unchanged
            if (!element_active(ch, i + k, visible, has_visible)) continue;
            const float update = beta1 * mv[k] + (1.0f - beta1) * gv[k];
            pv[k] = pv[k] - lr * (sign_or_nan(update) + wd * pv[k]);
            mv[k] = beta2 * mv[k] + (1.0f - beta2) * gv[k];
        }
        store4(p, i, n, pv);
        store4(m, i, n, mv);
    }
}

extern "C" __global__ void __launch_bounds__(BLOCK)
lion_step(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
          const long long* __restrict__ segments, const float* __restrict__ hyper, int num_segments,
          const unsigned char* __restrict__ visible, int has_visible, float beta1, float beta2,
          long long total) {
    lion_step_impl(p, g, m, segments, hyper, num_segments, visible, has_visible, beta1, beta2, total);
}

extern "C" __global__ void __launch_bounds__(BLOCK)
lion_step_bf16(float* __restrict__ p, const float* __restrict__ g, unsigned short* __restrict__ m,
               const long long* __restrict__ segments, const float* __restrict__ hyper,
               int num_segments, const unsigned char* __restrict__ visible, int has_visible,
               float beta1, float beta2, long long total) {
    lion_step_impl(p, g, m, segments, hyper, num_segments, visible, has_visible, beta1, beta2, total);
}
