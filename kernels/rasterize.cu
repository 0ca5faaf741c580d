// rasterize.cu: front-to-back alpha compositing of the sorted splats, tile by tile.
//
// Math:    for pixel p (sampled at its centre, px + 0.5, py + 0.5) and the splats of its
//          tile in depth order: d = mean2d - p; power = -(A dx^2 + C dy^2)/2 - B dx dy;
//          skip if power > 0; alpha = min(0.99, sigmoid(opacity) exp(power)); skip if
//          alpha < 1/255; stop before the splat that would take T below 1e-4;
//          colour += colour_i alpha T; T *= 1 - alpha. Pixel = colour + T background;
//          alpha_out = 1 - T; last = how many of the tile's splats were walked up to and
//          including the last one that contributed (the backward pass starts there).
//          Backward: walking back to front from `last`, T_i is recovered as T_{i+1} / (1 - a_i)
//          and dC/da_i = T_i (c_i - S_i) - T_final bg / (1 - a_i), S_i the colour composited
//          behind splat i normalised by T_{i+1} (3DGS's recurrence); gradients reach
//          means2d, conics, colors and opacities (logits); gradients are v_<x>.
// Mapping: one block per TILE x TILE tile, one thread per pixel; the tile's splats are
//          loaded into shared memory in batches of one per thread; the block stops when
//          __syncthreads_count says every pixel is done.
//          Backward sums each splat's gradient over a warp before one atomic add
//          (warp_sum_atomic_add_full): every pixel of a warp visits the same splat together.
// Layout:  ranges: [T, 2] int32; ids: [M] int32; means2d: [N, 2]; conics: [N, 3];
//          colors: [N, 3]; opacities: [N] (logits); background: [3];
//          image: [H, W, 3]; alpha: [H, W]; last: [H, W] int32; v_image: [H, W, 3];
//          v_alpha: [H, W]; v_means2d [N, 2], v_conics [N, 3], v_colors [N, 3],
//          v_opacities [N]: accumulated, zeroed by the caller.
#include "common.cuh"

#define BATCH (TILE * TILE)

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

extern "C" __global__ void __launch_bounds__(BATCH)
rasterize_fwd(const int* __restrict__ ranges, const int* __restrict__ ids,
              const float* __restrict__ means2d, const float* __restrict__ conics,
              const float* __restrict__ colors, const float* __restrict__ opacities,
              const float* __restrict__ background, int width, int height,
              float* __restrict__ image, float* __restrict__ alpha_out, int* __restrict__ last) {
    __shared__ float2 s_xy[BATCH];
    __shared__ float4 s_conic_opacity[BATCH];
    __shared__ float3 s_color[BATCH];
    const TilePixel t = tile_pixel(ranges, width, height);

    bool done = !t.inside;
    float T = 1.0f, c0 = 0.0f, c1 = 0.0f, c2 = 0.0f;
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
    }
}

extern "C" __global__ void __launch_bounds__(BATCH)
rasterize_bwd(const int* __restrict__ ranges, const int* __restrict__ ids,
              const float* __restrict__ means2d, const float* __restrict__ conics,
              const float* __restrict__ colors, const float* __restrict__ opacities,
              const float* __restrict__ background, int width, int height,
              const float* __restrict__ alpha_out, const int* __restrict__ last,
              const float* __restrict__ v_image, const float* __restrict__ v_alpha,
              float* __restrict__ v_means2d, float* __restrict__ v_conics,
              float* __restrict__ v_colors, float* __restrict__ v_opacities) {
    __shared__ int s_id[BATCH];
    __shared__ float2 s_xy[BATCH];
    __shared__ float4 s_conic_opacity[BATCH];
    __shared__ float3 s_color[BATCH];
    const TilePixel t = tile_pixel(ranges, width, height);
    const int pix = t.inside ? t.py * width + t.px : 0;

    const float T_final = t.inside ? 1.0f - alpha_out[pix] : 1.0f;
    float T = T_final;
    const int my_last = t.inside ? last[pix] : 0;
    float gp[3] = {0.0f, 0.0f, 0.0f};
    float g_alpha_out = 0.0f;
    if (t.inside) {
        for (int c = 0; c < 3; c++) gp[c] = v_image[3 * pix + c];
        g_alpha_out = v_alpha[pix];
    }
    const float bg_dot = background[0] * gp[0] + background[1] * gp[1] + background[2] * gp[2];
    float behind[3] = {0.0f, 0.0f, 0.0f};  // S: colour composited behind, normalised
    float last_alpha = 0.0f, last_color[3] = {0.0f, 0.0f, 0.0f};
    int position = t.end - t.start;  // tile-list position of the splat about to be visited, + 1

    for (int r = 0; r < t.rounds; r++) {
        __syncthreads();  // the previous batch is no longer read
        const int idx = t.end - 1 - (r * BATCH + t.rank);  // batches from the back
        if (idx >= t.start) {
            const int id = ids[idx];
            s_id[t.rank] = id;
            s_xy[t.rank] = make_float2(means2d[2 * id], means2d[2 * id + 1]);
            s_conic_opacity[t.rank] = make_float4(conics[3 * id], conics[3 * id + 1],
                                                conics[3 * id + 2],
                                                1.0f / (1.0f + expf(-opacities[id])));
            s_color[t.rank] = make_float3(colors[3 * id], colors[3 * id + 1], colors[3 * id + 2]);
        }
        __syncthreads();
        const int batch = min(BATCH, t.end - t.start - r * BATCH);
        for (int j = 0; j < batch; j++) {
            // Every lane runs every iteration to the reductions at the end (lanes with
            // nothing to add pass 0), so the warp sums stay in lockstep.
            position--;
            const float4 co = s_conic_opacity[j];
            const float dx = s_xy[j].x - t.pfx, dy = s_xy[j].y - t.pfy;
            const float power = -0.5f * (co.x * dx * dx + co.z * dy * dy) - co.y * dx * dy;
            const float gauss = expf(fminf(power, 0.0f));
            const float raw_alpha = co.w * gauss;
            const float alpha = fminf(0.99f, raw_alpha);
            // behind this pixel's last contributor, or skipped by the forward pass: nothing
            const bool valid = t.inside && position < my_last && power <= 0.0f &&
                               alpha >= 1.0f / 255.0f;
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
        }
    }
}
