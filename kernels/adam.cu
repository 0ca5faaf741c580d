// adam.cu: fused Adam step over a flat parameter buffer (the baseline Lion is measured against).
//
// Math:    torch.optim.Adam with its bias correction, per segment s (lr_s, wd_s):
//          g' = g + wd_s * p;  m = b1*m + (1-b1)*g';  v = b2*v + (1-b2)*g'^2;
//          p -= (lr_s / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),  bc_k = 1 - b_k^t.
//          The host passes inv_bc1 = 1/bc1 and inv_sqrt_bc2 = 1/sqrt(bc2).
// Mapping: as lion.cu: grid-stride loop, one thread per 4 floats, segment table per chunk.
// Masking: as lion.cu: invisible splats and padding keep p, m and v bit for bit.
// Layout:  p, g, m, v: [total] float32; segments: [S, 3] int64 (begin, end, width);
//          hyper: [S, 2] float32 (lr_s, wd_s); visible: [N] uint8 (dummy [1] if unused).
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(BLOCK)
adam_step(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
          float* __restrict__ v, const long long* __restrict__ segments,
          const float* __restrict__ hyper, int num_segments, const unsigned char* __restrict__ visible,
          int has_visible, float beta1, float beta2, float eps, float inv_bc1, float inv_sqrt_bc2,
          long long total) {
    const long long chunks = (total + 3) / 4;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x; c < chunks; c += stride) {
        const Chunk ch = chunk_at(c, total, segments, hyper, num_segments);
        const long long i = ch.i;
        const int n = ch.n;
        const float lr = ch.lr, wd = ch.wd;

        float pv[4], gv[4], mv[4], vv[4];
        load4(p, i, n, pv);
        load4(g, i, n, gv);
        load4(m, i, n, mv);
        load4(v, i, n, vv);
        #pragma unroll
        for (int k = 0; k < 4; k++) {
            if (!element_active(ch, i + k, visible, has_visible)) continue;
            const float grad = gv[k] + wd * pv[k];
            mv[k] = beta1 * mv[k] + (1.0f - beta1) * grad;
            vv[k] = beta2 * vv[k] + (1.0f - beta2) * grad * grad;
            const float denom = sqrtf(vv[k]) * inv_sqrt_bc2 + eps;
            pv[k] = pv[k] - (lr * inv_bc1) * mv[k] / denom;
        }
        store4(p, i, n, pv);
        store4(m, i, n, mv);
        store4(v, i, n, vv);
    }
}
