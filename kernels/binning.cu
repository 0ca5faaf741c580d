// binning.cu: which splats touch which tile, in depth order per tile.
//
// Math:    splat i touches the tiles of tile_rect(means2d[i], radii[i]); for each, one
//          intersection key = (tile id << 32) | bits of depth[i] (positive floats order
//          like their bits), value = i. After a stable sort of the keys, tile t's splats,
//          front to back, are ids[ranges[t][0] .. ranges[t][1]).
// Mapping: binning_keys: one thread per splat, writing its tiles_touched[i] intersections
//          from offsets[i] (an exclusive prefix sum). tile_ranges: one thread per sorted
//          intersection, marking where each tile's run starts and ends.
// Layout:  means2d: [N, 2]; radii: [N] int32; depths: [N]; offsets: [N] int64;
//          keys: [M] uint64; ids: [M] int32; ranges: [T, 2] int32 (zeroed by the caller),
//          T = tiles_x * tiles_y, tile id = ty * tiles_x + tx.
#include "common.cuh"

extern "C" __global__ void binning_keys(const float* __restrict__ means2d,
                                        const int* __restrict__ radii,
                                        const float* __restrict__ depths,
                                        const long long* __restrict__ offsets, int width,
                                        int height, long long n, unsigned long long* __restrict__ keys,
                                        int* __restrict__ ids) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n || radii[i] == 0) return;
    int x0, x1, y0, y1;
    tile_rect(means2d[2 * i], means2d[2 * i + 1], (float)radii[i], width, height, &x0, &x1, &y0, &y1);
    const int tiles_x = (width + TILE - 1) / TILE;
    const unsigned long long depth_bits = __float_as_uint(depths[i]);
    long long out = offsets[i];
    for (int ty = y0; ty < y1; ty++)
        for (int tx = x0; tx < x1; tx++) {
            keys[out] = ((unsigned long long)(ty * tiles_x + tx) << 32) | depth_bits;
            ids[out] = (int)i;
            out++;
        }
}

extern "C" __global__ void tile_ranges(const unsigned long long* __restrict__ sorted_keys,
                                       long long m, int* __restrict__ ranges) {
    const long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= m) return;
    const int tile = (int)(sorted_keys[j] >> 32);
    if (j == 0 || (int)(sorted_keys[j - 1] >> 32) != tile) ranges[2 * tile] = (int)j;
    if (j == m - 1 || (int)(sorted_keys[j + 1] >> 32) != tile) ranges[2 * tile + 1] = (int)(j + 1);
}
