// ssim.cu: 3DGS's photometric loss, L = l1_weight·L1 + (1 − l1_weight)·(1 − SSIM), fused:
// SSIM's Gaussian windows, the L1 term, the loss value and dL/dimage.
//
// Math:    per channel, w = the 11-tap Gaussian (σ = 1.5, normalised; the 2-D window is
//          w wᵀ), "∗" its correlation with zero padding ("same" size). x = image, y' = the
//          target with its masked-out pixels replaced by x (held constant: no gradient flows
//          through y'); without a mask y' = target.
//            m_x = w∗x, e_xx = w∗x², e_xy = w∗(x y'), m_y = w∗y', e_yy = w∗y'²
//            s_x = e_xx − m_x², s_y = e_yy − m_y², s_xy = e_xy − m_x m_y
//            a1 = 2 m_x m_y + C1, a2 = 2 s_xy + C2, b1 = m_x² + m_y² + C1, b2 = s_x + s_y + C2
//            S = a1 a2 / (b1 b2),   C1 = 0.01², C2 = 0.03²
//          Each value (pixel p, channel c) weighs v_p = inv_count (valid) or 0 (masked out);
//          inv_count = 1 / (valid pixels · C). With λ = l1_weight:
//            L = (1 − λ) + Σ v_p (λ |x − y'| − (1 − λ) S)
//          Backward, with dL/dS = −(1 − λ) v_p and (loss.py's docstring derives these)
//            ∂S/∂m_x = 2 m_y (a2 − a1)/(b1 b2) + 2 m_x S (1/b2 − 1/b1)
//            ∂S/∂e_xx = −S / b2,   ∂S/∂e_xy = 2 a1 / (b1 b2):
//            dL/dx = w∗(dL/dm_x) + 2x·w∗(dL/de_xx) + y'·w∗(dL/de_xy) + λ v_p sign(x − y')
//          (the window is symmetric: correlation is its own adjoint).
// Kernels: ssim_stats  the target's m_y, e_yy (no mask: cached per target by loss.py)
//          ssim_fwd    dL/dm_x, dL/de_xx, dL/de_xy per value, and per block Σ v_p (...) of L
//          ssim_bwd    dL/dimage; block 0 also sums the fwd's partials into the value
//          One step: ssim_fwd + ssim_bwd (+ ssim_stats the first time a target is seen).
// Mapping: one block of BLOCK threads per SSIM_TILE x SSIM_TILE output tile and channel
//          (grid: tiles_x, tiles_y, C). Horizontal pass: a thread reads SSIM_RUN + 10
//          consecutive pixels of one row of the tile's halo (SSIM_RADIUS rows above and below,
//          zeros outside the image) straight from global memory and writes SSIM_RUN window
//          sums to shared memory; one barrier; vertical pass: a thread sums SSIM_RUN + 10
//          rows of one tile column into SSIM_RUN outputs, the tile's pixels, and finishes
//          them. The window is symmetric: 6 multiplies a sum. An odd row pitch keeps shared
//          accesses free of bank conflicts. With a mask the target's statistics depend on the
//          image, so ssim_fwd blurs y' and y'² itself (has_mask: a uniform branch).
// Layout:  image, target: [H, W, C]; mask: [H, W] uint8 (bool); stats: [H, W, C, 2]
//          (m_y, e_yy); v_stats: [3, H, W, C] (dL/dm_x, dL/de_xx, dL/de_xy); partials:
//          [tiles_y·tiles_x·C], block (bx, by, c) at (c·tiles_y + by)·tiles_x + bx;
//          value: [1]; v_image: [H, W, C]. Gradients are v_<x>. All float32 but the mask.
#include "common.cuh"

#define SSIM_RADIUS 5
// Output tile side. splat_lion/ssim.py passes its SSIM_TILE; this default (the same) is for
// compiling the file by itself (nvrtc_check).
#ifndef SSIM_TILE
#define SSIM_TILE (2 * TILE)
#endif
#define SSIM_HALO (SSIM_TILE + 2 * SSIM_RADIUS)     // rows of the tile with its halo
#define SSIM_RUN 4                                   // consecutive outputs per thread and pass
#define SSIM_SPAN (SSIM_RUN + 2 * SSIM_RADIUS)       // inputs of a run
#define SSIM_PITCH (SSIM_TILE + 1)                   // row pitch of the row sums (odd)
#define SSIM_ROWS_SIZE (SSIM_HALO * SSIM_PITCH)      // floats of one row-sums array
#define SSIM_H_RUNS (SSIM_HALO * (SSIM_TILE / SSIM_RUN))  // runs of the horizontal pass
#define SSIM_V_RUNS (SSIM_TILE * (SSIM_TILE / SSIM_RUN))  // runs of the vertical pass
#define SSIM_C1 1.0e-4f                              // 0.01²
#define SSIM_C2 9.0e-4f                              // 0.03²

#if BLOCK % 32 != 0 || BLOCK < 32
#error "ssim.cu: BLOCK must be a multiple of 32 (its warp 0 sums the block's partials)"
#endif
#if SSIM_TILE % SSIM_RUN != 0 || SSIM_TILE % 2 != 0
#error "ssim.cu: SSIM_TILE must be even and a multiple of SSIM_RUN"
#endif

// The normalised 11-tap Gaussian, σ = 1.5 (loss.gaussian_window() rounded to float32):
// w_5 at the centre, w_(5 ± d) = SSIM_W<5 - d>.
#define SSIM_W0 1.028380124e-03f
#define SSIM_W1 7.598758209e-03f
#define SSIM_W2 3.600077331e-02f
#define SSIM_W3 1.093606874e-01f
#define SSIM_W4 2.130055428e-01f
#define SSIM_W5 2.660117149e-01f

// Σ_k w_k f(k), k = 0..10; f(k) and f(10 − k) share a weight.
template <class F>
__device__ __forceinline__ float window(const F& f) {
    return SSIM_W5 * f(5) + SSIM_W4 * (f(4) + f(6)) + SSIM_W3 * (f(3) + f(7)) +
           SSIM_W2 * (f(2) + f(8)) + SSIM_W1 * (f(1) + f(9)) + SSIM_W0 * (f(0) + f(10));
}

// SSIM_RUN consecutive window sums v[j] = Σ_k w_k f(j + k) of the SSIM_SPAN values f(0..13).
// Written out: both compilers see each f(k) once.
struct Run {
    float v[SSIM_RUN];
};

template <class F>
__device__ __forceinline__ Run window_run(const F& f) {
    Run r;
    r.v[0] = window([&](int k) { return f(k); });
    r.v[1] = window([&](int k) { return f(k + 1); });
    r.v[2] = window([&](int k) { return f(k + 2); });
    r.v[3] = window([&](int k) { return f(k + 3); });
    return r;
}
#if SSIM_RUN != 4
#error "ssim.cu: window_run writes SSIM_RUN = 4 outputs"
#endif

// out[j] = r.v[j]: a run of row sums into shared memory.
__device__ __forceinline__ void store_run(const Run& r, float* out) {
#pragma unroll
    for (int j = 0; j < SSIM_RUN; j++) out[j] = r.v[j];
}

// A run of the horizontal pass: SSIM_SPAN pixels of one halo row, from image column gx0.
struct HRun {
    int gy, gx0;  // image row, first image column (SSIM_RADIUS left of its first output)
    int out;      // its first output in a row-sums array
    bool row_in;  // the row lies in the image
};

// Run i: consecutive i take consecutive column groups (SSIM_TILE / SSIM_RUN to a row), so a
// warp's shared stores hit distinct banks (odd pitch).
__device__ __forceinline__ HRun h_run(int i, int height) {
    const int groups = SSIM_TILE / SSIM_RUN;
    const int r = i / groups, g = i % groups;
    HRun h;
    h.gy = blockIdx.y * SSIM_TILE - SSIM_RADIUS + r;
    h.gx0 = blockIdx.x * SSIM_TILE - SSIM_RADIUS + SSIM_RUN * g;
    h.out = r * SSIM_PITCH + SSIM_RUN * g;
    h.row_in = h.gy >= 0 && h.gy < height;
    return h;
}

// Whether pixel k of run h lies in the image.
__device__ __forceinline__ bool h_inside(const HRun& h, int k, int width) {
    const int gx = h.gx0 + k;
    return h.row_in && gx >= 0 && gx < width;
}

// A run of the vertical pass: SSIM_RUN consecutive rows of one tile column.
struct VRun {
    int in;       // its first input in a row-sums array
    int gx, gy0;  // its column, its first row (image coordinates)
};

// Run i: consecutive i take consecutive columns (conflict-free loads, coalesced stores).
__device__ __forceinline__ VRun v_run(int i) {
    const int c = i % SSIM_TILE, g = i / SSIM_TILE;
    VRun v;
    v.in = SSIM_RUN * g * SSIM_PITCH + c;
    v.gx = blockIdx.x * SSIM_TILE + c;
    v.gy0 = blockIdx.y * SSIM_TILE + SSIM_RUN * g;
    return v;
}

// The window sums down a column of a row-sums array from `at`.
__device__ __forceinline__ Run column_run(const float* at) {
    return window_run([&](int k) { return at[k * SSIM_PITCH]; });
}

// Block sum of v (every thread calls it once); thread 0 gets it. Uses s_sum [BLOCK].
__device__ __forceinline__ float block_sum(float v, float* s_sum) {
    const int tid = threadIdx.x;
    s_sum[tid] = v;
    __syncthreads();
    float total = 0.0f;
    if (tid < 32) {
        for (int j = tid; j < BLOCK; j += 32) total += s_sum[j];
        total = warp_sum(total);
    }
    return total;
}

// The target's statistics m_y = w∗y, e_yy = w∗y² (stats [H, W, C, 2]).
extern "C" __global__ void __launch_bounds__(BLOCK)
ssim_stats(const float* __restrict__ target, int width, int height, int channels,
           float* __restrict__ stats) {
    __shared__ float s_h[2][SSIM_ROWS_SIZE];  // row sums of y, y²
    const int tid = threadIdx.x, c = blockIdx.z;

    // horizontal pass
    for (int i = tid; i < SSIM_H_RUNS; i += BLOCK) {
        const HRun h = h_run(i, height);
        float y[SSIM_SPAN];
#pragma unroll
        for (int k = 0; k < SSIM_SPAN; k++)
            y[k] = h_inside(h, k, width) ? target[(h.gy * width + h.gx0 + k) * channels + c] : 0.0f;
        store_run(window_run([&](int k) { return y[k]; }), s_h[0] + h.out);
        store_run(window_run([&](int k) { return y[k] * y[k]; }), s_h[1] + h.out);
    }
    __syncthreads();
    // vertical pass
    for (int i = tid; i < SSIM_V_RUNS; i += BLOCK) {
        const VRun v = v_run(i);
        const Run my = column_run(s_h[0] + v.in);
        const Run eyy = column_run(s_h[1] + v.in);
#pragma unroll
        for (int j = 0; j < SSIM_RUN; j++) {
            if (v.gx >= width || v.gy0 + j >= height) continue;
            const int e = ((v.gy0 + j) * width + v.gx) * channels + c;
            stats[2 * e] = my.v[j];
            stats[2 * e + 1] = eyy.v[j];
        }
    }
}

// dL/dm_x, dL/de_xx, dL/de_xy of every value (v_stats), and this block's share of L.
extern "C" __global__ void __launch_bounds__(BLOCK)
ssim_fwd(const float* __restrict__ image, const float* __restrict__ target,
         const unsigned char* __restrict__ mask, int has_mask,
         const float* __restrict__ stats, int width, int height, int channels,
         float inv_count, float l1_weight, float* __restrict__ v_stats,
         float* __restrict__ partials) {
    // row sums of x, x², x y' (and with a mask y', y'²)
    __shared__ float s_h[5][SSIM_ROWS_SIZE];
    __shared__ float s_sum[BLOCK];
    const int tid = threadIdx.x, c = blockIdx.z;

    // horizontal pass over x and y'
    for (int i = tid; i < SSIM_H_RUNS; i += BLOCK) {
        const HRun h = h_run(i, height);
        float x[SSIM_SPAN], y[SSIM_SPAN];
#pragma unroll
        for (int k = 0; k < SSIM_SPAN; k++) {
            x[k] = y[k] = 0.0f;
            if (h_inside(h, k, width)) {
                const int p = h.gy * width + h.gx0 + k;
                x[k] = image[p * channels + c];
                y[k] = (!has_mask || mask[p]) ? target[p * channels + c] : x[k];
            }
        }
        store_run(window_run([&](int k) { return x[k]; }), s_h[0] + h.out);
        store_run(window_run([&](int k) { return x[k] * x[k]; }), s_h[1] + h.out);
        store_run(window_run([&](int k) { return x[k] * y[k]; }), s_h[2] + h.out);
        if (has_mask) {
            store_run(window_run([&](int k) { return y[k]; }), s_h[3] + h.out);
            store_run(window_run([&](int k) { return y[k] * y[k]; }), s_h[4] + h.out);
        }
    }
    __syncthreads();
    // vertical pass, SSIM and its partial derivatives at the tile's pixels
    const int n = height * width * channels;  // values per plane of v_stats
    const float ssim_weight = 1.0f - l1_weight;
    float share = 0.0f;  // this thread's Σ v_p (λ |x − y'| − (1 − λ) S)
    for (int i = tid; i < SSIM_V_RUNS; i += BLOCK) {
        const VRun v = v_run(i);
        const Run mx = column_run(s_h[0] + v.in);
        const Run exx = column_run(s_h[1] + v.in);
        const Run exy = column_run(s_h[2] + v.in);
        Run my, eyy;
        if (has_mask) {
            my = column_run(s_h[3] + v.in);
            eyy = column_run(s_h[4] + v.in);
        }
#pragma unroll
        for (int j = 0; j < SSIM_RUN; j++) {
            const int gy = v.gy0 + j;
            if (v.gx >= width || gy >= height) continue;
            const int p = gy * width + v.gx, e = p * channels + c;
            const bool valid = !has_mask || mask[p];
            const float m_x = mx.v[j];
            const float m_y = has_mask ? my.v[j] : stats[2 * e];
            const float e_yy = has_mask ? eyy.v[j] : stats[2 * e + 1];
            const float sx = exx.v[j] - m_x * m_x, sy = e_yy - m_y * m_y;
            const float sxy = exy.v[j] - m_x * m_y;
            const float a1 = 2.0f * m_x * m_y + SSIM_C1, a2 = 2.0f * sxy + SSIM_C2;
            const float b1 = m_x * m_x + m_y * m_y + SSIM_C1, b2 = sx + sy + SSIM_C2;
            const float inv_b1 = 1.0f / b1, inv_b2 = 1.0f / b2, inv_b1b2 = inv_b1 * inv_b2;
            const float s = a1 * a2 * inv_b1b2;
            const float d_mx =
                2.0f * m_y * (a2 - a1) * inv_b1b2 + 2.0f * m_x * s * (inv_b2 - inv_b1);
            const float d_exx = -s * inv_b2;
            const float d_exy = 2.0f * a1 * inv_b1b2;
            // this value's weight in the mean: 0 where masked out
            const float weight = valid ? inv_count : 0.0f;
            const float x = image[e];
            const float y = valid ? target[e] : x;
            share += weight * (l1_weight * fabsf(x - y) - ssim_weight * s);
            const float v_s = -ssim_weight * weight;  // dL/dS
            v_stats[e] = v_s * d_mx;
            v_stats[n + e] = v_s * d_exx;
            v_stats[2 * n + e] = v_s * d_exy;
        }
    }
    // this block's share of L
    const float total = block_sum(share, s_sum);
    if (tid == 0) partials[(blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x] = total;
}

// dL/dimage; block (0, 0, 0) also writes the value L = (1 − λ) + Σ partials.
extern "C" __global__ void __launch_bounds__(BLOCK)
ssim_bwd(const float* __restrict__ image, const float* __restrict__ target,
         const unsigned char* __restrict__ mask, int has_mask,
         const float* __restrict__ v_stats, const float* __restrict__ partials,
         int num_partials, int width, int height, int channels, float inv_count,
         float l1_weight, float* __restrict__ value, float* __restrict__ v_image) {
    __shared__ float s_h[3][SSIM_ROWS_SIZE];  // row sums of dL/dm_x, dL/de_xx, dL/de_xy
    __shared__ double s_total[BLOCK];
    const int tid = threadIdx.x, c = blockIdx.z;
    const int n = height * width * channels;

    // horizontal pass over the three cotangents
    for (int i = tid; i < SSIM_H_RUNS; i += BLOCK) {
        const HRun h = h_run(i, height);
        float a[SSIM_SPAN], b[SSIM_SPAN], d[SSIM_SPAN];
#pragma unroll
        for (int k = 0; k < SSIM_SPAN; k++) {
            const bool in = h_inside(h, k, width);
            const int e = in ? (h.gy * width + h.gx0 + k) * channels + c : 0;
            a[k] = in ? v_stats[e] : 0.0f;
            b[k] = in ? v_stats[n + e] : 0.0f;
            d[k] = in ? v_stats[2 * n + e] : 0.0f;
        }
        store_run(window_run([&](int k) { return a[k]; }), s_h[0] + h.out);
        store_run(window_run([&](int k) { return b[k]; }), s_h[1] + h.out);
        store_run(window_run([&](int k) { return d[k]; }), s_h[2] + h.out);
    }
    __syncthreads();
    // vertical pass and the chain rule at the tile's pixels, plus the L1 term
    for (int i = tid; i < SSIM_V_RUNS; i += BLOCK) {
        const VRun v = v_run(i);
        const Run bm = column_run(s_h[0] + v.in);
        const Run bxx = column_run(s_h[1] + v.in);
        const Run bxy = column_run(s_h[2] + v.in);
#pragma unroll
        for (int j = 0; j < SSIM_RUN; j++) {
            const int gy = v.gy0 + j;
            if (v.gx >= width || gy >= height) continue;
            const int p = gy * width + v.gx, e = p * channels + c;
            const bool valid = !has_mask || mask[p];
            const float x = image[e];
            const float y = valid ? target[e] : x;
            const float l1 = valid ? l1_weight * inv_count * sign_or_nan(x - y) : 0.0f;
            v_image[e] = bm.v[j] + 2.0f * x * bxx.v[j] + y * bxy.v[j] + l1;
        }
    }
    // the loss value: the forward's partials summed in double, in a fixed order
    if (blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0) {
        double sum = 0.0;
        for (int j = tid; j < num_partials; j += BLOCK) sum += (double)partials[j];
        s_total[tid] = sum;
        __syncthreads();
        if (tid == 0) {
            double total = (double)(1.0f - l1_weight);
            for (int j = 0; j < BLOCK; j++) total += s_total[j];
            value[0] = (float)total;
        }
    }
}
