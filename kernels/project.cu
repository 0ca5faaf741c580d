// project.cu: per-splat projection to the image and SH colour, forward and backward.
//
// Math:    see splat_lion/reference/project.py (the spec): t = W mu + T; cull outside
//          [near, far]; Sigma = R S S^T R^T; EWA J with u = x/z, v = y/z clamped to
//          1.3 x the field of view; Sigma2 = J W Sigma W^T J^T + 0.3 I; conic = Sigma2^-1;
//          mean2d = (fx x/z + cx, fy y/z + cy); radius = min(ceil(3 sqrt(lambda_max)),
//          MAX_RADIUS) (NaN: culled); tiles touched; colour = max(sum_k Y_k(d) sh_k + 0.5, 0), d = normalise(mu - campos).
//          Backward: exact derivatives of the same (the clamp of u, v and of the colour
//          passes no gradient where active); gradients are v_<x>. A gradient of the depths
//          (a depth render's) adds v_depth W[2, :3] to v_means (z = t[2]): project_bwd_depths.
// Mapping: one thread per splat. One kernel per SH degree D evaluated (the active degree,
//          which ramps up during a fit): project_fwd_sh<D> and project_bwd_sh<D>, D = 0..3, all
//          compiled at once from the templates project_fwd<D> and project_bwd<D>, so that
//          every loop over the (D+1)^2 coefficients unrolls and nothing goes to local memory.
//          project_bwd_depths, one thread per splat, runs after project_bwd_sh<D> only when
//          depth is differentiated: the colour path's kernels are unchanged by it.
// Layout:  means, scales: [N, 3]; quats: [N, 4] (w, x, y, z); sh0: [N, 1, 3];
//          shN: [N, num_rest, 3] (a dummy when num_rest == 0; num_rest >= (D+1)^2 - 1, the
//          scene's degree may exceed D); viewmat: [4, 4] row-major.
//          Outputs: radii [N] int32 (0: culled), means2d [N, 2], depths [N], conics [N, 3]
//          (A, B, C of [[A, B], [B, C]]), colors [N, 3], tiles_touched [N] int32.
//          Backward outputs v_means .. v_shN (the inputs' shapes): written, zero for a
//          culled splat, or with accumulate = 1 added to (a batch's later views).
//          project_bwd_depths: v_depths [N] in, added to v_means [N, 3] (splats in view).
#include "common.cuh"

#define SH_C0 0.28209479177387814f
#define MAX_RADIUS 16777216.0f  // 2^24 pixels: exact as float and int, wider than any image
#define SH_C1 0.4886025119029199f

#define SH_COEFFS(D) (((D) + 1) * ((D) + 1))  // coefficients per channel up to degree D

// Real SH basis of 3DGS up to degree D at unit direction (x, y, z): b[k], k < SH_COEFFS(D),
// and, with GRAD, d b[k] / d(x, y, z) into d[3 * k + axis] (d unused without GRAD).
template <int D, bool GRAD>
__device__ __forceinline__ void sh_basis(float x, float y, float z, float* b, float* d) {
    static_assert(D >= 0 && D <= 3, "SH degree 0..3");
    const float C2[5] = {1.0925484305920792f, -1.0925484305920792f, 0.31539156525252005f,
                         -1.0925484305920792f, 0.5462742152960396f};
    const float C3[7] = {-0.5900435899266435f, 2.890611442640554f, -0.4570457994644658f,
                         0.3731763325901154f, -0.4570457994644658f, 1.445305721320277f,
                         -0.5900435899266435f};
    const float xx = x * x, yy = y * y, zz = z * z;
    if constexpr (GRAD) {
        #pragma unroll
        for (int k = 0; k < 3 * SH_COEFFS(D); k++) d[k] = 0.0f;
    }
    b[0] = SH_C0;
    if constexpr (D > 0) {
        b[1] = -SH_C1 * y;
        b[2] = SH_C1 * z;
        b[3] = -SH_C1 * x;
        if constexpr (GRAD) {
            d[3 * 1 + 1] = -SH_C1;
            d[3 * 2 + 2] = SH_C1;
            d[3 * 3 + 0] = -SH_C1;
        }
    }
    if constexpr (D > 1) {
        b[4] = C2[0] * x * y;
        b[5] = C2[1] * y * z;
        b[6] = C2[2] * (2 * zz - xx - yy);
        b[7] = C2[3] * x * z;
        b[8] = C2[4] * (xx - yy);
        if constexpr (GRAD) {
            d[12] = C2[0] * y;  d[13] = C2[0] * x;
            d[16] = C2[1] * z;  d[17] = C2[1] * y;
            d[18] = -2 * C2[2] * x;  d[19] = -2 * C2[2] * y;  d[20] = 4 * C2[2] * z;
            d[21] = C2[3] * z;  d[23] = C2[3] * x;
            d[24] = 2 * C2[4] * x;  d[25] = -2 * C2[4] * y;
        }
    }
    if constexpr (D > 2) {
        b[9] = C3[0] * y * (3 * xx - yy);
        b[10] = C3[1] * x * y * z;
        b[11] = C3[2] * y * (4 * zz - xx - yy);
        b[12] = C3[3] * z * (2 * zz - 3 * xx - 3 * yy);
        b[13] = C3[4] * x * (4 * zz - xx - yy);
        b[14] = C3[5] * z * (xx - yy);
        b[15] = C3[6] * x * (xx - 3 * yy);
        if constexpr (GRAD) {
            d[27] = 6 * C3[0] * x * y;  d[28] = C3[0] * (3 * xx - 3 * yy);
            d[30] = C3[1] * y * z;  d[31] = C3[1] * x * z;  d[32] = C3[1] * x * y;
            d[33] = -2 * C3[2] * x * y;  d[34] = C3[2] * (4 * zz - xx - 3 * yy);
            d[35] = 8 * C3[2] * y * z;
            d[36] = -6 * C3[3] * x * z;  d[37] = -6 * C3[3] * y * z;
            d[38] = C3[3] * (6 * zz - 3 * xx - 3 * yy);
            d[39] = C3[4] * (4 * zz - 3 * xx - yy);  d[40] = -2 * C3[4] * x * y;
            d[41] = 8 * C3[4] * x * z;
            d[42] = 2 * C3[5] * x * z;  d[43] = -2 * C3[5] * y * z;  d[44] = C3[5] * (xx - yy);
            d[45] = C3[6] * (3 * xx - 3 * yy);  d[46] = -6 * C3[6] * x * y;
        }
    }
}

// Splat i's SH coefficients up to degree D: sh[k][c], k < SH_COEFFS(D) (sh0, then shN's first
// SH_COEFFS(D) - 1 of its num_rest).
template <int D>
__device__ __forceinline__ void load_sh(const float* __restrict__ sh0, const float* __restrict__ shN,
                                        int num_rest, long long i, float (*sh)[3]) {
    #pragma unroll
    for (int c = 0; c < 3; c++) sh[0][c] = sh0[3 * i + c];
    #pragma unroll
    for (int k = 1; k < SH_COEFFS(D); k++)
        #pragma unroll
        for (int c = 0; c < 3; c++) sh[k][c] = shN[(i * num_rest + k - 1) * 3 + c];
}

// The unit view direction of splat i: normalise(mean - camera centre), the centre -W^T T.
__device__ __forceinline__ void view_dir(const float* __restrict__ means, const float* W, long long i,
                                         float dir[3], float* inv_len) {
    float d[3];
    #pragma unroll
    for (int k = 0; k < 3; k++)
        d[k] = means[3 * i + k] + (W[k] * W[3] + W[4 + k] * W[7] + W[8 + k] * W[11]);
    *inv_len = rsqrtf(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    #pragma unroll
    for (int k = 0; k < 3; k++) dir[k] = d[k] * *inv_len;
}

// Row-major 3x3 rotation from a quaternion (w, x, y, z), normalised here.
__device__ __forceinline__ void quat_to_rotmat(const float* q_raw, float* q, float* R) {
    const float inv = rsqrtf(q_raw[0] * q_raw[0] + q_raw[1] * q_raw[1] + q_raw[2] * q_raw[2] +
                             q_raw[3] * q_raw[3]);
    for (int k = 0; k < 4; k++) q[k] = q_raw[k] * inv;
    const float w = q[0], x = q[1], y = q[2], z = q[3];
    R[0] = 1 - 2 * (y * y + z * z); R[1] = 2 * (x * y - w * z);     R[2] = 2 * (x * z + w * y);
    R[3] = 2 * (x * y + w * z);     R[4] = 1 - 2 * (x * x + z * z); R[5] = 2 * (y * z - w * x);
    R[6] = 2 * (x * z - w * y);     R[7] = 2 * (y * z + w * x);     R[8] = 1 - 2 * (x * x + y * y);
}

// What forward and backward both compute for one splat.
struct Projected {
    float t[3];          // camera coordinates
    float q[4];          // normalised quaternion
    float R[9];          // its rotation
    float s[3];          // standard deviations exp(scales)
    float cov_cam[9];    // W Sigma W^T
    float u, v;          // clamped x/z, y/z
    bool u_free, v_free; // whether u, v are inside the clamp
    float J[6];          // EWA Jacobian [2, 3]
    float cov2[3];       // Sigma2 as (a, b, c)
    float det;
};

// Fill p for splat i; false if culled by depth or a degenerate Sigma2.
__device__ __forceinline__ bool project_one(const float* means, const float* scales,
                                            const float* quats, const float* W, float fx, float fy,
                                            int width, int height, float near, float far,
                                            long long i, Projected& p) {
    for (int r = 0; r < 3; r++)
        p.t[r] = W[4 * r] * means[3 * i] + W[4 * r + 1] * means[3 * i + 1] +
                 W[4 * r + 2] * means[3 * i + 2] + W[4 * r + 3];
    const float z = p.t[2];
    if (!(z >= near && z <= far)) return false;
    quat_to_rotmat(quats + 4 * i, p.q, p.R);
    for (int k = 0; k < 3; k++) p.s[k] = expf(scales[3 * i + k]);
    // Sigma = M M^T with M = R S; then W Sigma W^T
    float M[9], sigma[9], WS[9];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++) M[3 * r + c] = p.R[3 * r + c] * p.s[c];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            sigma[3 * r + c] = M[3 * r] * M[3 * c] + M[3 * r + 1] * M[3 * c + 1] +
                               M[3 * r + 2] * M[3 * c + 2];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            WS[3 * r + c] = W[4 * r] * sigma[c] + W[4 * r + 1] * sigma[3 + c] + W[4 * r + 2] * sigma[6 + c];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            p.cov_cam[3 * r + c] = WS[3 * r] * W[4 * c] + WS[3 * r + 1] * W[4 * c + 1] +
                                   WS[3 * r + 2] * W[4 * c + 2];
    // EWA Jacobian with 3DGS's clamp of x/z, y/z to 1.3 x the field of view
    const float lim_x = 1.3f * 0.5f * (float)width / fx, lim_y = 1.3f * 0.5f * (float)height / fy;
    const float u = p.t[0] / z, v = p.t[1] / z;
    p.u_free = u >= -lim_x && u <= lim_x;
    p.v_free = v >= -lim_y && v <= lim_y;
    p.u = fminf(fmaxf(u, -lim_x), lim_x);
    p.v = fminf(fmaxf(v, -lim_y), lim_y);
    p.J[0] = fx / z; p.J[1] = 0.0f; p.J[2] = -fx * p.u / z;
    p.J[3] = 0.0f;   p.J[4] = fy / z; p.J[5] = -fy * p.v / z;
    // Sigma2 = J cov_cam J^T + 0.3 I
    float JC[6];
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 3; c++)
            JC[3 * r + c] = p.J[3 * r] * p.cov_cam[c] + p.J[3 * r + 1] * p.cov_cam[3 + c] +
                            p.J[3 * r + 2] * p.cov_cam[6 + c];
    p.cov2[0] = JC[0] * p.J[0] + JC[1] * p.J[1] + JC[2] * p.J[2] + 0.3f;
    p.cov2[1] = JC[0] * p.J[3] + JC[1] * p.J[4] + JC[2] * p.J[5];
    p.cov2[2] = JC[3] * p.J[3] + JC[4] * p.J[4] + JC[5] * p.J[5] + 0.3f;
    p.det = p.cov2[0] * p.cov2[2] - p.cov2[1] * p.cov2[1];
    return p.det > 0.0f;
}

// The arguments the forward and backward kernels share, and those of each (macros: the
// eight kernels at the end of the file take the same lists).
#define PROJECT_PARAMS                                                                        \
    const float* __restrict__ means, const float* __restrict__ scales,                        \
    const float* __restrict__ quats, const float* __restrict__ sh0,                           \
    const float* __restrict__ shN, int num_rest, const float* __restrict__ viewmat, float fx,  \
    float fy, float cx, float cy, int width, int height, float near, float far, long long n
#define PROJECT_ARGS \
    means, scales, quats, sh0, shN, num_rest, viewmat, fx, fy, cx, cy, width, height, near, far, n
#define PROJECT_FWD_PARAMS                                                                    \
    PROJECT_PARAMS, int* __restrict__ radii, float* __restrict__ means2d,                     \
    float* __restrict__ depths, float* __restrict__ conics, float* __restrict__ colors,       \
    int* __restrict__ tiles_touched
#define PROJECT_FWD_ARGS PROJECT_ARGS, radii, means2d, depths, conics, colors, tiles_touched
#define PROJECT_BWD_PARAMS                                                                    \
    PROJECT_PARAMS, const int* __restrict__ radii, const float* __restrict__ v_means2d,       \
    const float* __restrict__ v_conics, const float* __restrict__ v_colors,                   \
    float* __restrict__ v_means, float* __restrict__ v_scales, float* __restrict__ v_quats,   \
    float* __restrict__ v_sh0, float* __restrict__ v_shN, int accumulate
#define PROJECT_BWD_ARGS                                                                      \
    PROJECT_ARGS, radii, v_means2d, v_conics, v_colors, v_means, v_scales, v_quats, v_sh0,   \
    v_shN, accumulate

template <int D>
__device__ __forceinline__ void project_fwd(PROJECT_FWD_PARAMS) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    Projected p;
    bool visible = project_one(means, scales, quats, viewmat, fx, fy, width, height, near, far, i, p);
    float m2[2] = {0.0f, 0.0f}, radius = 0.0f;
    int tiles = 0;
    if (visible) {
        m2[0] = fx * p.t[0] / p.t[2] + cx;
        m2[1] = fy * p.t[1] / p.t[2] + cy;
        const float mid = 0.5f * (p.cov2[0] + p.cov2[2]);
        radius = ceilf(3.0f * sqrtf(mid + sqrtf(fmaxf(0.1f, mid * mid - p.det))));
        // a runaway splat: a NaN radius culls it; a huge one is capped at MAX_RADIUS, which
        // covers any image, so that binning's int radius gives the same tile rectangle
        visible = radius > 0.0f;
        radius = fminf(radius, MAX_RADIUS);
        int x0 = 0, x1 = 0, y0 = 0, y1 = 0;
        if (visible) tile_rect(m2[0], m2[1], radius, width, height, &x0, &x1, &y0, &y1);
        tiles = (x1 - x0) * (y1 - y0);
        visible = tiles > 0;
    }
    if (!visible) {
        radii[i] = 0; tiles_touched[i] = 0; depths[i] = 0.0f;
        for (int k = 0; k < 2; k++) means2d[2 * i + k] = 0.0f;
        for (int k = 0; k < 3; k++) { conics[3 * i + k] = 0.0f; colors[3 * i + k] = 0.0f; }
        return;
    }
    radii[i] = (int)radius;
    tiles_touched[i] = tiles;
    depths[i] = p.t[2];
    means2d[2 * i] = m2[0];
    means2d[2 * i + 1] = m2[1];
    conics[3 * i] = p.cov2[2] / p.det;
    conics[3 * i + 1] = -p.cov2[1] / p.det;
    conics[3 * i + 2] = p.cov2[0] / p.det;
    // colour from the view direction
    float dir[3], inv_len, basis[SH_COEFFS(D)], sh[SH_COEFFS(D)][3];
    view_dir(means, viewmat, i, dir, &inv_len);
    sh_basis<D, false>(dir[0], dir[1], dir[2], basis, nullptr);
    load_sh<D>(sh0, shN, num_rest, i, sh);
    #pragma unroll
    for (int c = 0; c < 3; c++) {
        float rgb = basis[0] * sh[0][c];
        #pragma unroll
        for (int k = 1; k < SH_COEFFS(D); k++) rgb += basis[k] * sh[k][c];
        colors[3 * i + c] = fmaxf(rgb + 0.5f, 0.0f);
    }
}

// A gradient out: written (out[j] = v), or added to what is there when `accumulate` is set
// (a batch's later views add into the gradients of its first: see render_backward).
__device__ __forceinline__ void put_grad(float* __restrict__ out, long long j, float v,
                                         int accumulate) {
    out[j] = accumulate ? out[j] + v : v;
}

template <int D>
__device__ __forceinline__ void project_bwd(PROJECT_BWD_PARAMS) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    if (!accumulate) {  // a splat outside the view gets zero gradients (left as they are)
        for (int k = 0; k < 3; k++) { v_means[3 * i + k] = 0.0f; v_scales[3 * i + k] = 0.0f;
                                      v_sh0[3 * i + k] = 0.0f; }
        for (int k = 0; k < 4; k++) v_quats[4 * i + k] = 0.0f;
        for (int k = 0; k < 3 * num_rest; k++) v_shN[3 * num_rest * i + k] = 0.0f;
    }
    Projected p;
    if (radii[i] == 0 ||
        !project_one(means, scales, quats, viewmat, fx, fy, width, height, near, far, i, p))
        return;
    const float* W = viewmat;
    const float x = p.t[0], y = p.t[1], z = p.t[2];
    float v_t[3] = {0.0f, 0.0f, 0.0f};

    // 1. mean2d = (fx x/z + cx, fy y/z + cy)
    const float gmx = v_means2d[2 * i], gmy = v_means2d[2 * i + 1];
    v_t[0] += gmx * fx / z;
    v_t[1] += gmy * fy / z;
    v_t[2] -= (gmx * fx * x + gmy * fy * y) / (z * z);

    // 2. conic = Sigma2^-1: v_Sigma2 = -Conic G Conic, G the symmetric gradient matrix
    const float A = p.cov2[2] / p.det, B = -p.cov2[1] / p.det, C = p.cov2[0] / p.det;
    const float gA = v_conics[3 * i], gB = 0.5f * v_conics[3 * i + 1], gC = v_conics[3 * i + 2];
    const float CG00 = A * gA + B * gB, CG01 = A * gB + B * gC;  // Conic G
    const float CG10 = B * gA + C * gB, CG11 = B * gB + C * gC;
    float V2[4];  // -Conic G Conic, row-major 2x2 (symmetric)
    V2[0] = -(CG00 * A + CG01 * B);
    V2[1] = -(CG00 * B + CG01 * C);
    V2[2] = -(CG10 * A + CG11 * B);
    V2[3] = -(CG10 * B + CG11 * C);

    // 3. Sigma2 = J cov_cam J^T: v_cov_cam = J^T V2 J, v_J = 2 V2 J cov_cam
    float V2J[6], v_cov_cam[9], v_J[6];
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 3; c++) V2J[3 * r + c] = V2[2 * r] * p.J[c] + V2[2 * r + 1] * p.J[3 + c];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++) v_cov_cam[3 * r + c] = p.J[r] * V2J[c] + p.J[3 + r] * V2J[3 + c];
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 3; c++)
            v_J[3 * r + c] = 2.0f * (V2J[3 * r] * p.cov_cam[c] + V2J[3 * r + 1] * p.cov_cam[3 + c] +
                                     V2J[3 * r + 2] * p.cov_cam[6 + c]);

    // 4. J00 = fx/z, J02 = -fx u/z, J11 = fy/z, J12 = -fy v/z; u = x/z, v = y/z unless clamped
    v_t[2] += -v_J[0] * fx / (z * z) - v_J[4] * fy / (z * z) + v_J[2] * fx * p.u / (z * z) +
              v_J[5] * fy * p.v / (z * z);
    const float v_u = -v_J[2] * fx / z, v_v = -v_J[5] * fy / z;
    if (p.u_free) { v_t[0] += v_u / z; v_t[2] -= v_u * x / (z * z); }
    if (p.v_free) { v_t[1] += v_v / z; v_t[2] -= v_v * y / (z * z); }

    // 5. cov_cam = W Sigma W^T: v_Sigma = W^T v_cov_cam W; Sigma = M M^T: v_M = 2 v_Sigma M
    float T1[9], v_sigma[9], M[9], v_M[9];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            T1[3 * r + c] = W[r] * v_cov_cam[c] + W[4 + r] * v_cov_cam[3 + c] + W[8 + r] * v_cov_cam[6 + c];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            v_sigma[3 * r + c] = T1[3 * r] * W[c] + T1[3 * r + 1] * W[4 + c] + T1[3 * r + 2] * W[8 + c];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++) M[3 * r + c] = p.R[3 * r + c] * p.s[c];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            v_M[3 * r + c] = 2.0f * (v_sigma[3 * r] * M[c] + v_sigma[3 * r + 1] * M[3 + c] +
                                     v_sigma[3 * r + 2] * M[6 + c]);

    // 6. M = R S: v_log_sigma[c] = s[c] * sum_r v_M[r][c] R[r][c]; v_R = v_M S
    float v_R[9];
    for (int c = 0; c < 3; c++) {
        float acc = 0.0f;
        for (int r = 0; r < 3; r++) {
            acc += v_M[3 * r + c] * p.R[3 * r + c];
            v_R[3 * r + c] = v_M[3 * r + c] * p.s[c];
        }
        put_grad(v_scales, 3 * i + c, acc * p.s[c], accumulate);
    }

    // 7. R(q) for the normalised q, then through the normalisation
    const float w = p.q[0], qx = p.q[1], qy = p.q[2], qz = p.q[3];
    float vq[4];
    vq[0] = 2 * (-qz * v_R[1] + qy * v_R[2] + qz * v_R[3] - qx * v_R[5] - qy * v_R[6] + qx * v_R[7]);
    vq[1] = 2 * (qy * v_R[1] + qz * v_R[2] + qy * v_R[3] - 2 * qx * v_R[4] - w * v_R[5] +
                 qz * v_R[6] + w * v_R[7] - 2 * qx * v_R[8]);
    vq[2] = 2 * (-2 * qy * v_R[0] + qx * v_R[1] + w * v_R[2] + qx * v_R[3] + qz * v_R[5] -
                 w * v_R[6] + qz * v_R[7] - 2 * qy * v_R[8]);
    vq[3] = 2 * (-2 * qz * v_R[0] - w * v_R[1] + qx * v_R[2] + w * v_R[3] - 2 * qz * v_R[4] +
                 qy * v_R[5] + qx * v_R[6] + qy * v_R[7]);
    const float* q_raw = quats + 4 * i;
    const float inv_norm = rsqrtf(q_raw[0] * q_raw[0] + q_raw[1] * q_raw[1] + q_raw[2] * q_raw[2] +
                                  q_raw[3] * q_raw[3]);
    const float dot = vq[0] * p.q[0] + vq[1] * p.q[1] + vq[2] * p.q[2] + vq[3] * p.q[3];
    for (int k = 0; k < 4; k++)
        put_grad(v_quats, 4 * i + k, (vq[k] - dot * p.q[k]) * inv_norm, accumulate);

    // 8. colour: v_sh_k = Y_k v_raw; the view direction feeds back into the mean
    float dir[3], inv_len, basis[SH_COEFFS(D)], dbasis[3 * SH_COEFFS(D)], sh[SH_COEFFS(D)][3];
    view_dir(means, W, i, dir, &inv_len);
    sh_basis<D, true>(dir[0], dir[1], dir[2], basis, dbasis);
    load_sh<D>(sh0, shN, num_rest, i, sh);
    float v_raw[3];
    #pragma unroll
    for (int c = 0; c < 3; c++) {
        float rgb = basis[0] * sh[0][c];
        #pragma unroll
        for (int k = 1; k < SH_COEFFS(D); k++) rgb += basis[k] * sh[k][c];
        v_raw[c] = rgb + 0.5f > 0.0f ? v_colors[3 * i + c] : 0.0f;
    }
    float v_dir[3] = {0.0f, 0.0f, 0.0f};
    #pragma unroll
    for (int k = 0; k < SH_COEFFS(D); k++) {
        float sh_dot = 0.0f;
        #pragma unroll
        for (int c = 0; c < 3; c++) {
            sh_dot += sh[k][c] * v_raw[c];
            if (k == 0) put_grad(v_sh0, 3 * i + c, basis[0] * v_raw[c], accumulate);
            else put_grad(v_shN, (i * num_rest + k - 1) * 3 + c, basis[k] * v_raw[c], accumulate);
        }
        #pragma unroll
        for (int a = 0; a < 3; a++) v_dir[a] += dbasis[3 * k + a] * sh_dot;
    }
    const float vd_dot = v_dir[0] * dir[0] + v_dir[1] * dir[1] + v_dir[2] * dir[2];

    // 9. t = W mu + T: v_mu = W^T v_t, plus the direction's share
    for (int k = 0; k < 3; k++)
        put_grad(v_means, 3 * i + k, W[k] * v_t[0] + W[4 + k] * v_t[1] + W[8 + k] * v_t[2] +
                 (v_dir[k] - vd_dot * dir[k]) * inv_len, accumulate);
}

// The kernels, one per SH degree evaluated; splat_lion/project.py picks the active degree's.
extern "C" __global__ void project_fwd_sh0(PROJECT_FWD_PARAMS) { project_fwd<0>(PROJECT_FWD_ARGS); }
extern "C" __global__ void project_fwd_sh1(PROJECT_FWD_PARAMS) { project_fwd<1>(PROJECT_FWD_ARGS); }
extern "C" __global__ void project_fwd_sh2(PROJECT_FWD_PARAMS) { project_fwd<2>(PROJECT_FWD_ARGS); }
extern "C" __global__ void project_fwd_sh3(PROJECT_FWD_PARAMS) { project_fwd<3>(PROJECT_FWD_ARGS); }
extern "C" __global__ void project_bwd_sh0(PROJECT_BWD_PARAMS) { project_bwd<0>(PROJECT_BWD_ARGS); }
extern "C" __global__ void project_bwd_sh1(PROJECT_BWD_PARAMS) { project_bwd<1>(PROJECT_BWD_ARGS); }
extern "C" __global__ void project_bwd_sh2(PROJECT_BWD_PARAMS) { project_bwd<2>(PROJECT_BWD_ARGS); }
extern "C" __global__ void project_bwd_sh3(PROJECT_BWD_PARAMS) { project_bwd<3>(PROJECT_BWD_ARGS); }

// depth = t[2] = W[2, :3] mu + T[2]: a depth gradient's share of v_means, added to what
// project_bwd_sh<D> wrote (or accumulated) there; culled splats (radius 0) get none.
extern "C" __global__ void project_bwd_depths(const float* __restrict__ viewmat,
                                              const int* __restrict__ radii,
                                              const float* __restrict__ v_depths,
                                              float* __restrict__ v_means, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n || radii[i] == 0) return;
    const float v = v_depths[i];
    for (int k = 0; k < 3; k++) v_means[3 * i + k] += viewmat[8 + k] * v;
}
