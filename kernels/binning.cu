// binning.cu: which splats touch which tile, in depth order per tile.
//
// Math:    splat i touches the tiles of tile_rect(means2d[i], radii[i]), tile id =
//          ty * tiles_x + tx. Splats are taken front to back (order: a stable sort of their
//          depths, splat_lion/binning.py), so after a stable sort of the intersections by
//          tile id alone, tile t's splats, front to back (ties by splat index), are
//          ids[ranges[t][0] .. ranges[t][1]).
// Mapping: binning_keys: one thread per splat in depth order (k-th nearest), writing its
//          intersections from the exclusive prefix sum of the tile counts in that order
//          (ends: the inclusive one), row by row; and visible[i] = radii[i] > 0 for every splat.
//          tile_ranges: one thread per tile, two binary searches in the sorted tile ids.
// Layout:  order, ends: [N] int32; means2d: [N, 2]; radii: [N] int32; keys (tile ids): [M]
//          uint32; ids: [M] int32; visible: [N] bool; ranges: [T, 2] int32, (0, 0) for a tile
//          without splats, T = tiles_x * tiles_y. M < 2^31.
#include "common.cuh"

extern "C" __global__ void binning_keys(const int* __restrict__ order,
                                        const int* __restrict__ ends,
                                        const float* __restrict__ means2d,
                                        const int* __restrict__ radii, int width, int height,
                                        long long n, unsigned* __restrict__ keys,
                                        int* __restrict__ ids, bool* __restrict__ visible) {
    const long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= n) return;
    const int i = order[k];
    const int radius = radii[i];
    visible[i] = radius > 0;
    int out = k > 0 ? ends[k - 1] : 0;
    const int end = ends[k];
    if (radius == 0 || out == end) return;
    int x0, x1, y0, y1;
    tile_rect(means2d[2 * i], means2d[2 * i + 1], (float)radius, width, height, &x0, &x1, &y0, &y1);
    const int tiles_x = (width + TILE - 1) / TILE;
    // `out < end`: never past the splat's tiles_touched slots, whatever its rectangle
    for (int ty = y0; ty < y1 && out < end; ty++)
        for (int tx = x0; tx < x1 && out < end; tx++) {
            keys[out] = (unsigned)(ty * tiles_x + tx);
            ids[out] = i;
            out++;
        }
}

// First index in sorted[0, m) whose value is >= v.
__device__ __forceinline__ long long lower_bound(const unsigned* sorted, long long m, unsigned v) {
    long long lo = 0, hi = m;
    while (lo < hi) {
        const long long mid = (lo + hi) >> 1;
        if (sorted[mid] < v) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

extern "C" __global__ void tile_ranges(const unsigned* __restrict__ sorted_keys, long long m,
                                       int num_tiles, int* __restrict__ ranges) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= num_tiles) return;
    const long long start = lower_bound(sorted_keys, m, (unsigned)t);
    const long long end = lower_bound(sorted_keys, m, (unsigned)t + 1u);
    ranges[2 * t] = start < end ? (int)start : 0;
    ranges[2 * t + 1] = start < end ? (int)end : 0;
}
