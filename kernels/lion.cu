// lion.cu: fused Lion step over a flat parameter buffer, every attribute in one launch.
//
// Math:    c = b1*m + (1-b1)*g;  u = sign(c);  p -= lr_s * (u + wd_s * p);  m = b2*m + (1-b2)*g
//          with sign(+-0) = +0 (as NumPy's), sign(NaN) = NaN; lr_s, wd_s: the segment's
//          learning rate (base lr x lr_scale) and weight decay, from the segment table (a
//          kernel parameter), so changing them never recompiles.
// Cautious: the _cautious kernels ("Cautious Optimizers", Liang et al. 2024, without their
//          rescaling) update only where the step agrees with the gradient: u = u*g > 0 ? u : 0
//          (no update where sign(c) != sign(g), or g = 0; a NaN c or g gives u = 0, and the
//          non-finite record below still reports the step). One compare and a select a value.
// Mapping: a block works on one segment (common.cuh, OptimTable); each thread on OPTIM_CHUNKS
//          chunks of 4 consecutive floats (16-byte loads), BLOCK chunks apart (unrolled).
// Paths:   the hot path takes a full chunk of ordinary values; lion_cold_chunk, element by
//          element and as plainly as the reference, takes the rest: a segment's partial last
//          chunk (a lone tensor's tail), and a chunk where c, g or the new p is not finite.
//          Then the hot path needs no NaN case: its sign may take c for a number, and its
//          bfloat16 rounding m for one (m is NaN only if c or g is not finite). The hot path
//          tests a whole chunk with one number, from g*p + c of each element (infinite or NaN
//          if a term is; a false alarm on overflow only costs the cold path).
// Masking: the _masked kernels read the visibility of the chunk's splats FIRST (1 to 4 bytes,
//          one division per chunk): a chunk of invisible splats reads and writes nothing else.
//          Elements of invisible splats keep p and m bit for bit ("selective Lion"), and so
//          do padding elements (past a segment's end) always: they are never touched.
// Non-finite values: a gradient or an updated parameter that is infinite or NaN, among the
//          elements the step updates, makes the kernel write min(*nonfinite, step) (atomicMin;
//          step OPTIM_NO_STEP records nothing).
// Layout:  p, g: [total] float32; m: [total] float32 (lion_step*) or bfloat16 words
//          (lion_step_bf16*); visible: [N] uint8, 4-byte aligned (unread by the unmasked
//          kernels); nonfinite: [1] int32. Gradients are g here, grads in Python.
#include "common.cuh"

// The betas and their complements (1 - beta, in float32 as the reference computes them).
struct LionBetas {
    float b1, c1, b2, c2;
};
__device__ __forceinline__ LionBetas lion_betas(float beta1, float beta2) {
    return {beta1, 1.0f - beta1, beta2, 1.0f - beta2};
}

// The new momentum b2*m + (1-b2)*g. On the GPU one FFMA on (1-b2)*g, as NVRTC contracts the
// sum anyway, written out so that ptxas predicates it on the visibility (a select less per
// value in the bfloat16 kernels); on the CPU as written (no FMA: NumPy's rounding).
__device__ __forceinline__ float lion_momentum(const LionBetas& b, float m, float g) {
#ifdef __CUDA_ARCH__
    return fmaf(b.b2, m, b.c2 * g);
#else
    return b.b2 * m + b.c2 * g;
#endif
}

// The update's direction u from sign(c) (cautious: kept only where u*g > 0, see Cautious).
template <bool CAUTIOUS>
__device__ __forceinline__ float lion_direction(float sign_c, float g) {
    return CAUTIOUS ? (sign_c * g > 0.0f ? sign_c : 0.0f) : sign_c;
}

// One element's update in place, exactly (the cold path).
template <bool CAUTIOUS>
__device__ __forceinline__ void lion_element(float& p, float& m, float g, float lr, float wd,
                                             const LionBetas& b) {
    const float c = b.b1 * m + b.c1 * g;
    p = p - lr * (lion_direction<CAUTIOUS>(sign_or_nan(c), g) + wd * p);
    m = b.b2 * m + b.c2 * g;
}

// sign(c) for a c that is not NaN, as sign_or_nan gives it (a NaN gives +-1: the hot path
// sends it to the cold path), sign(+-0) = +0 as NumPy's. On bits: selects, no branch (random
// signs would defeat a CPU's branch predictor).
__device__ __forceinline__ float sign_of_number(float c) {
    const unsigned u = __float_as_uint(c);
    return __uint_as_float((u & 0x7fffffffu) ? (u & 0x80000000u) | 0x3f800000u : 0u);
}

// The momentum buffer's element type: float32 as is, or bfloat16 words.
template <class M> struct Momentum;
template <> struct Momentum<float> {
    typedef float4 Packed;  // a chunk's 4 values as stored
    static __device__ __forceinline__ float load(const float* m, unsigned e) { return m[e]; }
    static __device__ __forceinline__ void store(float* m, unsigned e, float v) { m[e] = v; }
    static __device__ __forceinline__ void load4(const float* m, float v[4]) { ::load4(m, v); }
    static __device__ __forceinline__ void pack4(const float v[4], Packed& out) {
        out = make_float4(v[0], v[1], v[2], v[3]);
    }
    static __device__ __forceinline__ void store4(float* m, const Packed& x) {
        *reinterpret_cast<float4*>(m) = x;
    }
};
template <> struct Momentum<unsigned short> {
    typedef uint2 Packed;
    static __device__ __forceinline__ float load(const unsigned short* m, unsigned e) {
        return bf16_to_float(m[e]);
    }
    static __device__ __forceinline__ void store(unsigned short* m, unsigned e, float v) {
        m[e] = float_to_bf16(v);
    }
    static __device__ __forceinline__ void load4(const unsigned short* m, float v[4]) {
        const uint2 q = *reinterpret_cast<const uint2*>(m);
        v[0] = __uint_as_float(q.x << 16);
        v[1] = __uint_as_float(q.x & 0xffff0000u);
        v[2] = __uint_as_float(q.y << 16);
        v[3] = __uint_as_float(q.y & 0xffff0000u);
    }
    // Rounded to nearest even as float_to_bf16 rounds, but for a NaN (the hot path holds none:
    // a NaN m needs a non-finite c or g, see Paths). sm_80 and later convert and pack two
    // values in one instruction (cvt.rn.bf16x2.f32: RNE, overflow to infinity, subnormals
    // kept, as float_to_bf16); elsewhere bits (u + 0x7fff + lsb) >> 16, packed.
    static __device__ __forceinline__ void pack4(const float v[4], Packed& out) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
        unsigned lo, hi;  // cvt's first source goes to the upper half
        asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(lo) : "f"(v[1]), "f"(v[0]));
        asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(hi) : "f"(v[3]), "f"(v[2]));
        out = make_uint2(lo, hi);
#else
        unsigned h[4];
        #pragma unroll
        for (int k = 0; k < 4; k++) {
            const unsigned u = __float_as_uint(v[k]);
            h[k] = u + 0x7fffu + ((u >> 16) & 1u);
        }
        out = make_uint2(__byte_perm(h[0], h[1], 0x7632), __byte_perm(h[2], h[3], 0x7632));
#endif
    }
    static __device__ __forceinline__ void store4(unsigned short* m, const Packed& x) {
        *reinterpret_cast<uint2*>(m) = x;
    }
};

// The cold path: elements off .. off + n - 1 of one segment (pointers from its first element),
// one by one, exactly; vis: the segment's mask from its first splat, or null for all visible.
template <class M, bool CAUTIOUS>
__device__ __noinline__ void lion_cold_chunk(float* p, const float* g, M* m,
                                             const unsigned char* vis, const OptimSegment& s,
                                             unsigned off, unsigned n, float beta1, float beta2,
                                             int* nonfinite, int step) {
    const LionBetas b = lion_betas(beta1, beta2);
    bool bad = false;
    for (unsigned e = off; e < off + n; e++) {
        if (vis && !vis[optim_splat(s, e)]) continue;  // invisible: p and m untouched
        float pv = p[e], mv = Momentum<M>::load(m, e);
        const float gv = g[e];
        lion_element<CAUTIOUS>(pv, mv, gv, s.lr, s.wd, b);
        bad |= !optim_finite(gv) || !optim_finite(pv);
        p[e] = pv;
        Momentum<M>::store(m, e, mv);
    }
    if (bad && step != OPTIM_NO_STEP) atomicMin(nonfinite, step);
}

template <class M, bool CAUTIOUS, bool MASKED>
__device__ __forceinline__ void lion_step_impl(const OptimTable& t, float* __restrict__ p,
                                               const float* __restrict__ g, M* __restrict__ m,
                                               const unsigned char* __restrict__ visible,
                                               float beta1, float beta2, int* nonfinite,
                                               int step) {
    // this block's segment: every value below but off is the same across the block
    const OptimSegment& s = t.seg[optim_block_segment(t)];
    float* __restrict__ ps = p + s.begin;
    const float* __restrict__ gs = g + s.begin;
    M* __restrict__ ms = m + s.begin;
    const unsigned char* __restrict__ vis = visible + s.splat0;
    const float lr = s.lr, wd = s.wd;
    const unsigned len = s.len, full = len & ~3u;  // [0, full): full chunks
    const LionBetas b = lion_betas(beta1, beta2);
    // this thread's first chunk; the k-th is 4 * BLOCK * k elements further
    const unsigned first =
        4u * ((unsigned)((int)blockIdx.x - s.first_block) * (OPTIM_CHUNKS * BLOCK) + threadIdx.x);
    float* __restrict__ pt = ps + first;
    const float* __restrict__ gt = gs + first;
    M* __restrict__ mt = ms + first;
    #pragma unroll
    for (int k = 0; k < OPTIM_CHUNKS; k++) {
        const unsigned off = first + 4u * BLOCK * k;
        if (off >= full) {
            if (off < len)  // the segment's partial last chunk
                lion_cold_chunk<M, CAUTIOUS>(ps, gs, ms, MASKED ? vis : nullptr, s, off,
                                             len - off, beta1, beta2, nonfinite, step);
            break;
        }
        unsigned shown = 0xffffffffu;  // byte e: element off + e is visible
        if (MASKED) {
            shown = optim_chunk_visibility(s, vis, off);
            if (shown == 0u) continue;  // nothing else read or written
        }
        float pv[4], gv[4], mv[4], c[4];
        load4(pt + 4 * BLOCK * k, pv);
        load4(gt + 4 * BLOCK * k, gv);
        Momentum<M>::load4(mt + 4 * BLOCK * k, mv);
        #pragma unroll
        for (int e = 0; e < 4; e++) {
            c[e] = b.b1 * mv[e] + b.c1 * gv[e];
            const bool v = (shown & (0xffu << (8 * e))) != 0u;
            mv[e] = v ? lion_momentum(b, mv[e], gv[e]) : mv[e];  // invisible: bits kept
            const float u = lion_direction<CAUTIOUS>(sign_of_number(c[e]), gv[e]);
            const float pn = pv[e] - lr * (u + wd * pv[e]);
            pv[e] = v ? pn : pv[e];
        }
        // infinite or NaN if a g, p or c is (or on overflow: a false alarm), in 6 operations
        float check = gv[0] * pv[0] + c[0];
        check = gv[1] * pv[1] + check;
        check = c[1] * c[2] + check;
        check = gv[2] * pv[2] + check;
        check = gv[3] * pv[3] + check;
        check = check + c[3];
        if (!optim_finite(check)) {  // redone one by one, exactly, and recorded
            lion_cold_chunk<M, CAUTIOUS>(ps, gs, ms, MASKED ? vis : nullptr, s, off, 4u, beta1,
                                         beta2, nonfinite, step);
            continue;
        }
        typename Momentum<M>::Packed packed;
        Momentum<M>::pack4(mv, packed);
        store4(pt + 4 * BLOCK * k, pv);
        Momentum<M>::store4(mt + 4 * BLOCK * k, packed);
    }
}

// The kernels: momentum float32 or bfloat16, plain or cautious, all splats or the visible ones.
extern "C" __global__ void __launch_bounds__(BLOCK) lion_step(
    const __grid_constant__ OptimTable t, float* __restrict__ p, const float* __restrict__ g,
    float* __restrict__ m, const unsigned char* __restrict__ visible, float beta1, float beta2,
    int* __restrict__ nonfinite, int step) {
    lion_step_impl<float, false, false>(t, p, g, m, visible, beta1, beta2, nonfinite, step);
}

extern "C" __global__ void __launch_bounds__(BLOCK) lion_step_masked(
    const __grid_constant__ OptimTable t, float* __restrict__ p, const float* __restrict__ g,
    float* __restrict__ m, const unsigned char* __restrict__ visible, float beta1, float beta2,
    int* __restrict__ nonfinite, int step) {
    lion_step_impl<float, false, true>(t, p, g, m, visible, beta1, beta2, nonfinite, step);
}

extern "C" __global__ void __launch_bounds__(BLOCK) lion_step_cautious(
    const __grid_constant__ OptimTable t, float* __restrict__ p, const float* __restrict__ g,
    float* __restrict__ m, const unsigned char* __restrict__ visible, float beta1, float beta2,
    int* __restrict__ nonfinite, int step) {
    lion_step_impl<float, true, false>(t, p, g, m, visible, beta1, beta2, nonfinite, step);
}

extern "C" __global__ void __launch_bounds__(BLOCK) lion_step_cautious_masked(
    const __grid_constant__ OptimTable t, float* __restrict__ p, const float* __restrict__ g,
    float* __restrict__ m, const unsigned char* __restrict__ visible, float beta1, float beta2,
    int* __restrict__ nonfinite, int step) {
    lion_step_impl<float, true, true>(t, p, g, m, visible, beta1, beta2, nonfinite, step);
}

extern "C" __global__ void __launch_bounds__(BLOCK) lion_step_bf16(
    const __grid_constant__ OptimTable t, float* __restrict__ p, const float* __restrict__ g,
    unsigned short* __restrict__ m, const unsigned char* __restrict__ visible, float beta1,
    float beta2, int* __restrict__ nonfinite, int step) {
    lion_step_impl<unsigned short, false, false>(t, p, g, m, visible, beta1, beta2, nonfinite,
                                                 step);
}

extern "C" __global__ void __launch_bounds__(BLOCK) lion_step_bf16_masked(
    const __grid_constant__ OptimTable t, float* __restrict__ p, const float* __restrict__ g,
    unsigned short* __restrict__ m, const unsigned char* __restrict__ visible, float beta1,
    float beta2, int* __restrict__ nonfinite, int step) {
    lion_step_impl<unsigned short, false, true>(t, p, g, m, visible, beta1, beta2, nonfinite, step);
}

extern "C" __global__ void __launch_bounds__(BLOCK) lion_step_bf16_cautious(
    const __grid_constant__ OptimTable t, float* __restrict__ p, const float* __restrict__ g,
    unsigned short* __restrict__ m, const unsigned char* __restrict__ visible, float beta1,
    float beta2, int* __restrict__ nonfinite, int step) {
    lion_step_impl<unsigned short, true, false>(t, p, g, m, visible, beta1, beta2, nonfinite, step);
}

extern "C" __global__ void __launch_bounds__(BLOCK) lion_step_bf16_cautious_masked(
    const __grid_constant__ OptimTable t, float* __restrict__ p, const float* __restrict__ g,
    unsigned short* __restrict__ m, const unsigned char* __restrict__ visible, float beta1,
    float beta2, int* __restrict__ nonfinite, int step) {
    lion_step_impl<unsigned short, true, true>(t, p, g, m, visible, beta1, beta2, nonfinite, step);
}
