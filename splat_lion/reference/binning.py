"""Reference of kernels/binning.cu: splat-tile intersections, sorted, and each tile's range."""

from __future__ import annotations

import numpy as np


def tile_rect(means2d, radii, width, height, tile=16):
    """[N] x0, x1, y0, y1: the tiles [x0, x1) x [y0, y1) each splat touches (3DGS getRect)."""
    gx, gy = -(-width // tile), -(-height // tile)
    m = np.asarray(means2d, np.float32)
    r = np.asarray(radii, np.float32)
    def clip(v, hi):
        return np.clip(v, 0, hi).astype(np.int64)
    return (clip(np.floor((m[:, 0] - r) / tile), gx), clip(np.ceil((m[:, 0] + r) / tile), gx),
            clip(np.floor((m[:, 1] - r) / tile), gy), clip(np.ceil((m[:, 1] + r) / tile), gy))


def binning_keys(means2d, radii, depths, offsets, width, height, tile=16):
    """(keys [M] uint64, ids [M] int32) in the kernel's order: splat by splat, tiles row by
    row; key = (tile id << 32) | float32 bits of the depth. Culled splats (radius 0) add none."""
    x0, x1, y0, y1 = tile_rect(means2d, radii, width, height, tile)
    tiles_x = -(-width // tile)
    bits = np.asarray(depths, np.float32).view(np.uint32).astype(np.uint64)
    keys, ids = [], []
    for i in range(len(radii)):
        if radii[i] == 0:
            continue
        for ty in range(y0[i], y1[i]):
            for tx in range(x0[i], x1[i]):
                keys.append((np.uint64(ty * tiles_x + tx) << np.uint64(32)) | bits[i])
                ids.append(i)
    return np.array(keys, np.uint64), np.array(ids, np.int32)


def tile_ranges(sorted_keys, num_tiles):
    """[T, 2] int32: for each tile, [start, end) of its run in sorted_keys ((0, 0) if none)."""
    tiles = (np.asarray(sorted_keys, np.uint64) >> np.uint64(32)).astype(np.int64)
    ranges = np.zeros((num_tiles, 2), np.int32)
    for t in np.unique(tiles):
        where = np.nonzero(tiles == t)[0]
        ranges[t] = (where[0], where[-1] + 1)
    return ranges
