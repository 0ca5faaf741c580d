// rasterize.cu: front-to-back alpha compositing of the sorted splats, tile by tile.
//
// Math:    for pixel p (sampled at its centre, px + 0.5, py + 0.5) and the splats of its
//          tile in depth order: d = mean2d - p; power = -(A dx^2 + C dy^2)/2 - B dx dy;
//          skip if power > 0; alpha = min(0.99, sigmoid(opacity) exp(power)); skip if
//          alpha < 1/255; stop before the splat that would take T below 1e-4;
//          colour += colour_i alpha T; T *= 1 - alpha. Pixel = colour + T background;
//          alpha_out = 1 - T; last = how many of the tile's splats were walked up to and
//          including the last one that contributed (the backward pass starts there).
//          Depth variant (rasterize_fwd_depth, from the same walk): with z_i = depths[id]
//          (project_fwd's view-space z) and w_i = alpha_i T_i the compositing weights,
//          depth = sum_i w_i z_i / alpha_out where alpha_out > 0, else 0 (expected depth
//          normalised by the accumulated alpha: gsplat's "ED"; times alpha_out it is "D");
//          median_depth = z_i of the first splat after which T < 0.5, 0 where T stays >= 0.5.
//          Backward: walking back to front from `last`, T_i is recovered as T_{i+1} / (1 - a_i)
//          and dC/da_i = T_i (c_i - S_i) - T_final bg / (1 - a_i), S_i the colour composited
//          behind splat i normalised by T_{i+1} (3DGS's recurrence); gradients reach
//          means2d, conics, colors and opacities (logits); gradients are v_<x>.
//          Depth variant (rasterize_bwd_depth): depth = D / alpha_out, D = sum_i w_i z_i, so
//          dL/dD = v_depth / alpha_out and dL/dalpha_out gains -v_depth depth / alpha_out;
//          D composites z like a fourth colour channel over a background of depth 0, which
//          gives v_depths[i] = w_i dL/dD and its share of dL/da_i. The median has no gradient.
// Mapping: one block per TILE x TILE tile, one thread per pixel; the tile's splats are
//          loaded into shared memory in batches of one per thread; the block stops when
//          __syncthreads_count says every pixel is done.
//          Backward: each block walks back from the furthest last contributor of its pixels,
//          each warp from that of its own lanes; a splat that no lane of the warp takes (all
//          beyond their last, or skipped by the forward pass) is passed over as one
//          (warp_sums_needed); the others' gradients are summed over the warp before one atomic
//          add (warp_sum_atomic_add_full): every pixel of a warp visits the same splat together.
//          BWD_SKIPS=0 (tests) walks every splat of the tile with every warp: same results.
//          The depth variants are the templates' DEPTH = true instances (rasterize_forward,
//          rasterize_backward), separate kernels: rasterize_fwd and rasterize_bwd, which every
//          fit step runs, compile to what they were without them.
// Layout:  ranges: [T, 2] int32; ids: [M] int32; means2d: [N, 2]; conics: [N, 3];
//          colors: [N, 3]; opacities: [N] (logits); background: [3]; depths: [N];
//          image: [H, W, 3]; alpha: [H, W]; last: [H, W] int32; depth, median_depth: [H, W];
//          v_image: [H, W, 3]; v_alpha: [H, W]; v_depth: [H, W] (of the normalised depth);
//          v_means2d [N, 2], v_conics [N, 3], v_colors [N, 3], v_opacities [N],
//          v_depths [N]: accumulated, zeroed by the caller.
#include "common.cuh"

#define BATCH (TILE * TILE)
#ifndef BWD_SKIPS
#define BWD_SKIPS 1  // rasterize_bwd passes over what no pixel needs (0: tests, walk everything)
#endif
static_assert(BATCH % 32 == 0, "a tile is made of full warps (rasterize_bwd sums over warps)");

// rasterize_bwd's minimum of resident blocks per SM, hence its register bound: where an SM
// holds 2048 threads (sm_80, sm_90), 1280 threads at 48 registers (5 blocks of 256); unbounded,
// ptxas takes 52 and fits 4. sm_75 holds 1024 threads: no bound (ptxas warns at 5).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define BWD_MIN_BLOCKS (1280 / BATCH)
#else
#define BWD_MIN_BLOCKS 1
#endif

// This thread's pixel in its block's TILE x TILE tile, and the tile's run of sorted splats.
struct TilePixel {
    int rank;        // the thread's index in the block: the batch slot it loads
    int px, py;      // the pixel
    bool inside;     // the pixel lies in the image (edge tiles overhang it)
    float pfx, pfy;  // the pixel's centre
    int start, end;  // the tile's splats: ids[start .. end), front to back
    int rounds;      // batches of BATCH splats
};

__device__ __forceinline__ TilePixel tile_pixel(const int* __restrict__ ranges, int width,
                                                int height) {
    TilePixel t;
    const int tiles_x = (width + TILE - 1) / TILE;
    const int tile = blockIdx.y * tiles_x + blockIdx.x;
    t.rank = threadIdx.y * TILE + threadIdx.x;
    t.px = blockIdx.x * TILE + threadIdx.x;
    t.py = blockIdx.y * TILE + threadIdx.y;
    t.inside = t.px < width && t.py < height;
    t.pfx = (float)t.px + 0.5f;
    t.pfy = (float)t.py + 0.5f;
    t.start = ranges[2 * tile];
    t.end = ranges[2 * tile + 1];
    t.rounds = (t.end - t.start + BATCH - 1) / BATCH;
    return t;
}

// The forward pass; with DEPTH also each pixel's expected and median depth (depths, depth_out,
// median_out: unused without).
template <bool DEPTH>
__device__ __forceinline__ void rasterize_forward(
    const int* __restrict__ ranges, const int* __restrict__ ids,
    const float* __restrict__ means2d, const float* __restrict__ conics,
    const float* __restrict__ colors, const float* __restrict__ opacities,
    const float* __restrict__ background, int width, int height, float* __restrict__ image,
    float* __restrict__ alpha_out, int* __restrict__ last, const float* __restrict__ depths,
    float* __restrict__ depth_out, float* __restrict__ median_out) {
    __shared__ float2 s_xy[BATCH];
    __shared__ float4 s_conic_opacity[BATCH];
    __shared__ float3 s_color[BATCH];
    __shared__ float s_depth[DEPTH ? BATCH : 1];
    const TilePixel t = tile_pixel(ranges, width, height);

    bool done = !t.inside;
    float T = 1.0f, c0 = 0.0f, c1 = 0.0f, c2 = 0.0f;
    float d = 0.0f, median = 0.0f;  // DEPTH: sum of w_i z_i; z where T first falls below 0.5
    int walked = 0, last_contributor = 0;
    for (int r = 0; r < t.rounds; r++) {
        // every pixel done: stop loading (this barrier also ends the previous batch)
        if (__syncthreads_count(done) == BATCH) break;
        const int idx = t.start + r * BATCH + t.rank;
        if (idx < t.end) {
            const int id = ids[idx];
            s_xy[t.rank] = make_float2(means2d[2 * id], means2d[2 * id + 1]);
            s_conic_opacity[t.rank] = make_float4(conics[3 * id], conics[3 * id + 1],
                                                conics[3 * id + 2],
                                                1.0f / (1.0f + expf(-opacities[id])));
            s_color[t.rank] = make_float3(colors[3 * id], colors[3 * id + 1], colors[3 * id + 2]);
            if constexpr (DEPTH) s_depth[t.rank] = depths[id];
        }
        __syncthreads();
        const int batch = min(BATCH, t.end - t.start - r * BATCH);
        for (int j = 0; !done && j < batch; j++) {
            walked++;
            const float dx = s_xy[j].x - t.pfx, dy = s_xy[j].y - t.pfy;
            const float4 co = s_conic_opacity[j];
            const float power = -0.5f * (co.x * dx * dx + co.z * dy * dy) - co.y * dx * dy;
            if (power > 0.0f) continue;
            const float alpha = fminf(0.99f, co.w * expf(power));
            if (alpha < 1.0f / 255.0f) continue;
            const float next_T = T * (1.0f - alpha);
            if (next_T < 1e-4f) {
                done = true;
                continue;
            }
            const float w = alpha * T;
            c0 += s_color[j].x * w;
            c1 += s_color[j].y * w;
            c2 += s_color[j].z * w;
            if constexpr (DEPTH) {
                d += s_depth[j] * w;
                if (T >= 0.5f && next_T < 0.5f) median = s_depth[j];  // T falls past 0.5
            }
            T = next_T;
            last_contributor = walked;
        }
    }
    if (t.inside) {
        const int pix = t.py * width + t.px;
        image[3 * pix] = c0 + T * background[0];
        image[3 * pix + 1] = c1 + T * background[1];
        image[3 * pix + 2] = c2 + T * background[2];
        alpha_out[pix] = 1.0f - T;
        last[pix] = last_contributor;
        if constexpr (DEPTH) {
            const float a = 1.0f - T;  // alpha_out; 0 exactly where no splat contributed
            depth_out[pix] = a > 0.0f ? d / a : 0.0f;
            median_out[pix] = median;
        }
    }
}

extern "C" __global__ void __launch_bounds__(BATCH)
rasterize_fwd(const int* __restrict__ ranges, const int* __restrict__ ids,
              const float* __restrict__ means2d, const float* __restrict__ conics,
              const float* __restrict__ colors, const float* __restrict__ opacities,
              const float* __restrict__ background, int width, int height,
              float* __restrict__ image, float* __restrict__ alpha_out, int* __restrict__ last) {
    rasterize_forward<false>(ranges, ids, means2d, conics, colors, opacities, background, width,
                             height, image, alpha_out, last, nullptr, nullptr, nullptr);
}

extern "C" __global__ void __launch_bounds__(BATCH)
rasterize_fwd_depth(const int* __restrict__ ranges, const int* __restrict__ ids,
                    const float* __restrict__ means2d, const float* __restrict__ conics,
                    const float* __restrict__ colors, const float* __restrict__ opacities,
                    const float* __restrict__ background, int width, int height,
                    const float* __restrict__ depths, float* __restrict__ image,
                    float* __restrict__ alpha_out, int* __restrict__ last,
                    float* __restrict__ depth_out, float* __restrict__ median_out) {
    rasterize_forward<true>(ranges, ids, means2d, conics, colors, opacities, background, width,
                            height, image, alpha_out, last, depths, depth_out, median_out);
}

// The backward pass; with DEPTH also that of the expected depth (depths, depth_out, v_depth,
// v_depths: unused without).
template <bool DEPTH>
__device__ __forceinline__ void rasterize_backward(
    const int* __restrict__ ranges, const int* __restrict__ ids,
    const float* __restrict__ means2d, const float* __restrict__ conics,
    const float* __restrict__ colors, const float* __restrict__ opacities,
    const float* __restrict__ background, int width, int height,
    const float* __restrict__ alpha_out, const int* __restrict__ last,
    const float* __restrict__ v_image, const float* __restrict__ v_alpha,
    float* __restrict__ v_means2d, float* __restrict__ v_conics, float* __restrict__ v_colors,
    float* __restrict__ v_opacities, const float* __restrict__ depths,
    const float* __restrict__ depth_out, const float* __restrict__ v_depth,
    float* __restrict__ v_depths) {
    __shared__ int s_id[BATCH];
    __shared__ float2 s_xy[BATCH];
    __shared__ float4 s_conic_opacity[BATCH];
    __shared__ float3 s_color[BATCH];
    __shared__ float s_depth[DEPTH ? BATCH : 1];
    __shared__ int s_warp_last[BATCH / 32];
    const TilePixel t = tile_pixel(ranges, width, height);
    const int pix = t.inside ? t.py * width + t.px : 0;
    const int warp = t.rank / 32;

    const float T_final = t.inside ? 1.0f - alpha_out[pix] : 1.0f;
    float T = T_final;
    const int my_last = t.inside ? last[pix] : 0;

    // The furthest last contributor of this warp and of the block: the walk starts at the
    // block's, and each warp skips the splats behind its own (s_id is free until the first
    // batch loads).
    s_id[t.rank] = my_last;
    __syncthreads();
    int warp_last = 0;
    for (int k = 0; k < 32; k++) warp_last = max(warp_last, s_id[32 * warp + k]);
    if (t.rank % 32 == 0) s_warp_last[warp] = warp_last;
    __syncthreads();
    int block_last = 0;  // at most the tile's splats, whatever `last` holds
    for (int k = 0; k < BATCH / 32; k++) block_last = max(block_last, s_warp_last[k]);
    block_last = min(block_last, t.end - t.start);
    if (!BWD_SKIPS) block_last = warp_last = t.end - t.start;
    const int rounds = (block_last + BATCH - 1) / BATCH;

    float gp[3] = {0.0f, 0.0f, 0.0f};
    float g_alpha_out = 0.0f;
    if (t.inside) {
        for (int c = 0; c < 3; c++) gp[c] = v_image[3 * pix + c];
        g_alpha_out = v_alpha[pix];
    }
    float g_depth = 0.0f;  // DEPTH: dL/dD, D = sum_i w_i z_i the unnormalised expected depth
    float behind_z = 0.0f, last_z = 0.0f;  // as behind and last_color, for z
    if constexpr (DEPTH) {
        // depth = D / alpha_out where alpha_out > 0 (else 0, and no splat contributed)
        const float a = t.inside ? alpha_out[pix] : 0.0f;
        if (a > 0.0f) {
            g_depth = v_depth[pix] / a;
            g_alpha_out -= v_depth[pix] * depth_out[pix] / a;
        }
    }
    const float bg_dot = background[0] * gp[0] + background[1] * gp[1] + background[2] * gp[2];
    float behind[3] = {0.0f, 0.0f, 0.0f};  // S: colour composited behind, normalised
    float last_alpha = 0.0f, last_color[3] = {0.0f, 0.0f, 0.0f};

    for (int r = 0; r < rounds; r++) {
        // the previous batch is no longer read (before the first: the barrier above)
        if (r > 0) __syncthreads();
        // batches from the block's furthest last contributor to the front
        const int idx = t.start + block_last - 1 - (r * BATCH + t.rank);
        if (idx >= t.start) {
            const int id = ids[idx];
            s_id[t.rank] = id;
            s_xy[t.rank] = make_float2(means2d[2 * id], means2d[2 * id + 1]);
            s_conic_opacity[t.rank] = make_float4(conics[3 * id], conics[3 * id + 1],
                                                conics[3 * id + 2],
                                                1.0f / (1.0f + expf(-opacities[id])));
            s_color[t.rank] = make_float3(colors[3 * id], colors[3 * id + 1], colors[3 * id + 2]);
            if constexpr (DEPTH) s_depth[t.rank] = depths[id];
        }
        __syncthreads();
        // slot j holds tile-list position block_last - 1 - r * BATCH - j; the slots before
        // `first` lie behind every last contributor of this warp (warp-uniform)
        const int batch = min(BATCH, block_last - r * BATCH);
        const int first = max(0, block_last - r * BATCH - warp_last);
        for (int j = first; j < batch; j++) {
            const int position = block_last - 1 - r * BATCH - j;
            const float4 co = s_conic_opacity[j];
            // behind this pixel's last contributor, or skipped by the forward pass: nothing
            bool valid = position < my_last;
            float dx = 0.0f, dy = 0.0f, gauss = 0.0f, raw_alpha = 0.0f, alpha = 0.0f;
            if (valid) {
                dx = s_xy[j].x - t.pfx;
                dy = s_xy[j].y - t.pfy;
                const float power = -0.5f * (co.x * dx * dx + co.z * dy * dy) - co.y * dx * dy;
                if (power <= 0.0f) {
                    gauss = expf(power);
                    raw_alpha = co.w * gauss;
                    alpha = fminf(0.99f, raw_alpha);
                }
                valid = alpha >= 1.0f / 255.0f;  // alpha is 0 where power > 0 (or NaN)
            }
            // A splat no lane of the warp takes costs no warp sums. Past this point every
            // lane of the warp runs the iteration to the reductions at its end (lanes with
            // nothing to add pass 0), so the warp sums stay in lockstep.
            if (BWD_SKIPS && !warp_sums_needed(valid)) continue;
            float g_color = 0.0f, g_power = 0.0f, g_raw = 0.0f;  // g_color = dC/dc_i = a T
            if (valid) {
                T = T / (1.0f - alpha);  // transmittance in front of this splat
                float g_a = 0.0f;
                const float color[3] = {s_color[j].x, s_color[j].y, s_color[j].z};
                for (int c = 0; c < 3; c++) {
                    behind[c] = last_alpha * last_color[c] + (1.0f - last_alpha) * behind[c];
                    last_color[c] = color[c];
                    g_a += (color[c] - behind[c]) * gp[c];
                }
                if constexpr (DEPTH) {  // z: a fourth channel, over a background of depth 0
                    behind_z = last_alpha * last_z + (1.0f - last_alpha) * behind_z;
                    last_z = s_depth[j];
                    g_a += (last_z - behind_z) * g_depth;
                }
                g_a *= T;
                last_alpha = alpha;
                g_a += (-T_final / (1.0f - alpha)) * bg_dot;        // background seen through
                g_a += g_alpha_out * T_final / (1.0f - alpha);       // alpha_out = 1 - T_final
                g_raw = raw_alpha < 0.99f ? g_a : 0.0f;              // the 0.99 clamp
                g_power = g_raw * co.w * gauss;
                g_color = alpha * T;
            }
            const int id = s_id[j];
            warp_sum_atomic_add_full(v_colors + 3 * id, g_color * gp[0]);
            warp_sum_atomic_add_full(v_colors + 3 * id + 1, g_color * gp[1]);
            warp_sum_atomic_add_full(v_colors + 3 * id + 2, g_color * gp[2]);
            warp_sum_atomic_add_full(v_means2d + 2 * id, g_power * (-co.x * dx - co.y * dy));
            warp_sum_atomic_add_full(v_means2d + 2 * id + 1, g_power * (-co.z * dy - co.y * dx));
            warp_sum_atomic_add_full(v_conics + 3 * id, -0.5f * dx * dx * g_power);
            warp_sum_atomic_add_full(v_conics + 3 * id + 1, -dx * dy * g_power);
            warp_sum_atomic_add_full(v_conics + 3 * id + 2, -0.5f * dy * dy * g_power);
            warp_sum_atomic_add_full(v_opacities + id, g_raw * gauss * co.w * (1.0f - co.w));
            if constexpr (DEPTH) warp_sum_atomic_add_full(v_depths + id, g_color * g_depth);
        }
    }
}

extern "C" __global__ void __launch_bounds__(BATCH, BWD_MIN_BLOCKS)
rasterize_bwd(const int* __restrict__ ranges, const int* __restrict__ ids,
              const float* __restrict__ means2d, const float* __restrict__ conics,
              const float* __restrict__ colors, const float* __restrict__ opacities,
              const float* __restrict__ background, int width, int height,
              const float* __restrict__ alpha_out, const int* __restrict__ last,
              const float* __restrict__ v_image, const float* __restrict__ v_alpha,
              float* __restrict__ v_means2d, float* __restrict__ v_conics,
              float* __restrict__ v_colors, float* __restrict__ v_opacities) {
    rasterize_backward<false>(ranges, ids, means2d, conics, colors, opacities, background, width,
                              height, alpha_out, last, v_image, v_alpha, v_means2d, v_conics,
                              v_colors, v_opacities, nullptr, nullptr, nullptr, nullptr);
}

// No minimum of resident blocks: bound to rasterize_bwd's 48 registers, the depth's three
// more floats a pixel spill (8 B, sm_90); unbounded, ptxas takes 62 (4 blocks of 256 an SM).
extern "C" __global__ void __launch_bounds__(BATCH)
rasterize_bwd_depth(const int* __restrict__ ranges, const int* __restrict__ ids,
                    const float* __restrict__ means2d, const float* __restrict__ conics,
                    const float* __restrict__ colors, const float* __restrict__ opacities,
                    const float* __restrict__ background, int width, int height,
                    const float* __restrict__ alpha_out, const int* __restrict__ last,
                    const float* __restrict__ v_image, const float* __restrict__ v_alpha,
                    const float* __restrict__ depths, const float* __restrict__ depth_out,
                    const float* __restrict__ v_depth, float* __restrict__ v_means2d,
                    float* __restrict__ v_conics, float* __restrict__ v_colors,
                    float* __restrict__ v_opacities, float* __restrict__ v_depths) {
    rasterize_backward<true>(ranges, ids, means2d, conics, colors, opacities, background, width,
                             height, alpha_out, last, v_image, v_alpha, v_means2d, v_conics,
                             v_colors, v_opacities, depths, depth_out, v_depth, v_depths);
}
