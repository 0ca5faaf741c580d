// adam.cu: fused Adam step over a flat parameter buffer (the baseline Lion is measured against).
//
// Math:    torch.optim.Adam with its bias correction, per segment s (lr_s, wd_s):
//          g' = g + wd_s * p;  m = b1*m + (1-b1)*g';  v = b2*v + (1-b2)*g'^2;
//          p -= (lr_s / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),  bc_k = 1 - b_k^t.
//          The host passes inv_bc1 = 1/bc1 and inv_sqrt_bc2 = 1/sqrt(bc2).
// Mapping: as lion.cu: a block per segment (common.cuh, OptimTable), OPTIM_CHUNKS chunks of 4
//          floats per thread, a hot path for full chunks of finite values and adam_cold_chunk,
//          element by element, for a partial last chunk and for a chunk where g or the new p
//          is not finite (tested with one number per chunk, the sum of g*p).
// Masking: as lion.cu: the _masked kernel reads the chunk's visibility first and nothing else
//          for invisible splats, which keep p, m and v bit for bit, as padding does.
// Non-finite values: as lion.cu (atomicMin of step into *nonfinite).
// Layout:  p, g, m, v: [total] float32; visible: [N] uint8, 4-byte aligned (unread by
//          adam_step); nonfinite: [1] int32. Gradients are g here, grads in Python.
#include "common.cuh"

struct AdamHyper {
    float beta1, beta2, eps, inv_bc1, inv_sqrt_bc2;
};

// One element's update in place (hot and cold path alike).
__device__ __forceinline__ void adam_element(float& p, float& m, float& v, float g, float lr,
                                             float wd, const AdamHyper& h) {
    const float grad = g + wd * p;
    m = h.beta1 * m + (1.0f - h.beta1) * grad;
    v = h.beta2 * v + (1.0f - h.beta2) * grad * grad;
    const float denom = sqrtf(v) * h.inv_sqrt_bc2 + h.eps;
    p = p - (lr * h.inv_bc1) * m / denom;
}

// The cold path: elements off .. off + n - 1 of one segment (pointers from its first element),
// one by one; vis: the segment's mask from its first splat, or null for all visible.
__device__ __noinline__ void adam_cold_chunk(float* p, const float* g, float* m, float* v,
                                             const unsigned char* vis, const OptimSegment& s,
                                             unsigned off, unsigned n, AdamHyper h,
                                             int* nonfinite, int step) {
    bool bad = false;
    for (unsigned e = off; e < off + n; e++) {
        if (vis && !vis[optim_splat(s, e)]) continue;  // invisible: p, m and v untouched
        float pv = p[e], mv = m[e], vv = v[e];
        const float gv = g[e];
        adam_element(pv, mv, vv, gv, s.lr, s.wd, h);
        bad |= !optim_finite(gv) || !optim_finite(pv);
        p[e] = pv;
        m[e] = mv;
        v[e] = vv;
    }
    if (bad && step != OPTIM_NO_STEP) atomicMin(nonfinite, step);
}

template <bool MASKED>
__device__ __forceinline__ void adam_step_impl(const OptimTable& t, float* __restrict__ p,
                                               const float* __restrict__ g, float* __restrict__ m,
                                               float* __restrict__ v,
                                               const unsigned char* __restrict__ visible,
                                               const AdamHyper& h, int* nonfinite, int step) {
    // this block's segment: every value below but off is the same across the block
    const OptimSegment& s = t.seg[optim_block_segment(t)];
    float* __restrict__ ps = p + s.begin;
    const float* __restrict__ gs = g + s.begin;
    float* __restrict__ ms = m + s.begin;
    float* __restrict__ vs = v + s.begin;
    const unsigned char* __restrict__ vis = visible + s.splat0;
    const float lr = s.lr, wd = s.wd;
    const unsigned len = s.len, full = len & ~3u;  // [0, full): full chunks
    // this thread's first chunk; the k-th is 4 * BLOCK * k elements further
    const unsigned first =
        4u * ((unsigned)((int)blockIdx.x - s.first_block) * (OPTIM_CHUNKS * BLOCK) + threadIdx.x);
    float* __restrict__ pt = ps + first;
    const float* __restrict__ gt = gs + first;
    float* __restrict__ mt = ms + first;
    float* __restrict__ vt = vs + first;
    #pragma unroll
    for (int k = 0; k < OPTIM_CHUNKS; k++) {
        const unsigned off = first + 4u * BLOCK * k;
        if (off >= full) {
            if (off < len)  // the segment's partial last chunk
                adam_cold_chunk(ps, gs, ms, vs, MASKED ? vis : nullptr, s, off, len - off, h,
                                nonfinite, step);
            break;
        }
        unsigned shown = 0xffffffffu;  // byte e: element off + e is visible
        if (MASKED) {
            shown = optim_chunk_visibility(s, vis, off);
            if (shown == 0u) continue;  // nothing else read or written
        }
        float pv[4], gv[4], mv[4], vv[4];
        load4(pt + 4 * BLOCK * k, pv);
        load4(gt + 4 * BLOCK * k, gv);
        load4(mt + 4 * BLOCK * k, mv);
        load4(vt + 4 * BLOCK * k, vv);
        float check = 0.0f;  // infinite or NaN if a g or p is (or a product overflows)
        #pragma unroll
        for (int e = 0; e < 4; e++) {
            float pn = pv[e], mn = mv[e], vn = vv[e];
            adam_element(pn, mn, vn, gv[e], lr, wd, h);
            const bool shows = (shown & (0xffu << (8 * e))) != 0u;
            pv[e] = shows ? pn : pv[e];  // invisible: the bits loaded, stored back
            mv[e] = shows ? mn : mv[e];
            vv[e] = shows ? vn : vv[e];
            check = gv[e] * pv[e] + check;
        }
        if (!optim_finite(check)) {  // redone one by one and recorded
            adam_cold_chunk(ps, gs, ms, vs, MASKED ? vis : nullptr, s, off, 4u, h, nonfinite,
                            step);
            continue;
        }
        store4(pt + 4 * BLOCK * k, pv);
        store4(mt + 4 * BLOCK * k, mv);
        store4(vt + 4 * BLOCK * k, vv);
    }
}

// The kernels: all splats, or the visible ones.
extern "C" __global__ void __launch_bounds__(BLOCK) adam_step(
    const __grid_constant__ OptimTable t, float* __restrict__ p, const float* __restrict__ g,
    float* __restrict__ m, float* __restrict__ v, const unsigned char* __restrict__ visible,
    float beta1, float beta2, float eps, float inv_bc1, float inv_sqrt_bc2,
    int* __restrict__ nonfinite, int step) {
    adam_step_impl<false>(t, p, g, m, v, visible, {beta1, beta2, eps, inv_bc1, inv_sqrt_bc2},
                            nonfinite, step);
}

extern "C" __global__ void __launch_bounds__(BLOCK) adam_step_masked(
    const __grid_constant__ OptimTable t, float* __restrict__ p, const float* __restrict__ g,
    float* __restrict__ m, float* __restrict__ v, const unsigned char* __restrict__ visible,
    float beta1, float beta2, float eps, float inv_bc1, float inv_sqrt_bc2,
    int* __restrict__ nonfinite, int step) {
    adam_step_impl<true>(t, p, g, m, v, visible, {beta1, beta2, eps, inv_bc1, inv_sqrt_bc2},
                            nonfinite, step);
}
