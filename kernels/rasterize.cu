// rasterize.cu: front-to-back alpha compositing of the sorted splats, tile by tile.
//
// Math:    for pixel p (sampled at its centre, px + 0.5, py + 0.5) and the splats of its
//          tile in depth order: d = mean2d - p; power = -(A dx^2 + C dy^2)/2 - B dx dy;
//          skip if power > 0; alpha = min(0.99, sigmoid(opacity) exp(power)); skip if
//          alpha < 1/255; stop before the splat that would take T below 1e-4;
//          colour += colour_i alpha T; T *= 1 - alpha. Pixel = colour + T background;
//          alpha_out = 1 - T; last = how many of the tile's splats were walked up to and
//          including the last one that contributed (the backward pass starts there).
// Mapping: one block per TILE x TILE tile, one thread per pixel; the tile's splats are
//          loaded into shared memory in batches of one per thread; the block stops when
//          __syncthreads_count says every pixel is done.
// Layout:  ranges: [T, 2] int32; ids: [M] int32; means2d: [N, 2]; conics: [N, 3];
//          colors: [N, 3]; opacities: [N] (logits); background: [3];
//          image: [H, W, 3]; alpha: [H, W]; last: [H, W] int32.
#include "common.cuh"

#define BATCH (TILE * TILE)

extern "C" __global__ void __launch_bounds__(BATCH)
rasterize_fwd(const int* __restrict__ ranges, const int* __restrict__ ids,
              const float* __restrict__ means2d, const float* __restrict__ conics,
              const float* __restrict__ colors, const float* __restrict__ opacities,
              const float* __restrict__ background, int width, int height,
              float* __restrict__ image, float* __restrict__ alpha_out, int* __restrict__ last) {
    __shared__ float2 s_xy[BATCH];
    __shared__ float4 s_conic_opacity[BATCH];
    __shared__ float3 s_color[BATCH];
    const int tiles_x = (width + TILE - 1) / TILE;
    const int tile = blockIdx.y * tiles_x + blockIdx.x;
    const int rank = threadIdx.y * TILE + threadIdx.x;
    const int px = blockIdx.x * TILE + threadIdx.x, py = blockIdx.y * TILE + threadIdx.y;
    const bool inside = px < width && py < height;
    const float pfx = (float)px + 0.5f, pfy = (float)py + 0.5f;
    const int start = ranges[2 * tile], end = ranges[2 * tile + 1];
    const int rounds = (end - start + BATCH - 1) / BATCH;

    bool done = !inside;
    float T = 1.0f, c0 = 0.0f, c1 = 0.0f, c2 = 0.0f;
    int walked = 0, last_contributor = 0;
    for (int r = 0; r < rounds; r++) {
        // every pixel done: stop loading (this barrier also ends the previous batch)
        if (__syncthreads_count(done) == BATCH) break;
        const int idx = start + r * BATCH + rank;
        if (idx < end) {
            const int id = ids[idx];
            s_xy[rank] = make_float2(means2d[2 * id], means2d[2 * id + 1]);
            s_conic_opacity[rank] = make_float4(conics[3 * id], conics[3 * id + 1],
                                                conics[3 * id + 2],
                                                1.0f / (1.0f + expf(-opacities[id])));
            s_color[rank] = make_float3(colors[3 * id], colors[3 * id + 1], colors[3 * id + 2]);
        }
        __syncthreads();
        const int batch = min(BATCH, end - start - r * BATCH);
        for (int j = 0; !done && j < batch; j++) {
            walked++;
            const float dx = s_xy[j].x - pfx, dy = s_xy[j].y - pfy;
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
    if (inside) {
        const int pix = py * width + px;
        image[3 * pix] = c0 + T * background[0];
        image[3 * pix + 1] = c1 + T * background[1];
        image[3 * pix + 2] = c2 + T * background[2];
        alpha_out[pix] = 1.0f - T;
        last[pix] = last_contributor;
    }
}
