"""Reference of kernels/binning.cu: splat-tile intersections, sorted, and each tile's range.

Same functions and arguments as splat_lion/binning.py, less the backend `be`:

    tile_rect        which tiles a splat touches (kernels/common.cuh's tile_rect)
    binning_keys     one (tile | depth) key per splat-tile intersection, at the splat's offset
    tile_ranges      each tile's [start, end) in the sorted keys
    bin_intersections  all three: tiles touched -> offsets -> keys -> stable sort -> ranges
"""

from __future__ import annotations

import numpy as np

from ..kernels import TILE, num_tiles


def tile_rect(means2d, radii, width, height):
    """(x0, x1, y0, y1), each [N] int64: splat i touches the tiles [x0, x1) x [y0, y1),
    x0 = floor((mean_x - radius) / TILE), x1 = ceil((mean_x + radius) / TILE) (y alike),
    clamped to the grid (3DGS's getRect). Computed in the precision of means2d: float32 for
    the kernels' outputs, as kernels/common.cuh does, float64 for the reference's own."""
    m = np.asarray(means2d)
    if m.dtype not in (np.float32, np.float64):
        m = m.astype(np.float64)
    r = np.asarray(radii).astype(m.dtype)
    tile = m.dtype.type(TILE)
    grid_x, grid_y = num_tiles(width, height)

    def clamp(v, hi):
        return np.clip(v, 0, hi).astype(np.int64)

    return (clamp(np.floor((m[:, 0] - r) / tile), grid_x),
            clamp(np.ceil((m[:, 0] + r) / tile), grid_x),
            clamp(np.floor((m[:, 1] - r) / tile), grid_y),
            clamp(np.ceil((m[:, 1] + r) / tile), grid_y))


def binning_keys(means2d, radii, depths, offsets, num_intersections, width, height):
    """(keys [M] uint64, ids [M] int32), M = num_intersections, unsorted.

    Splat i with radii[i] > 0 writes one intersection per tile of its tile_rect, row by row,
    at offsets[i], offsets[i] + 1, ...: key = (tile id << 32) | float32 bits of depths[i]
    (positive floats order like their bits), id = i; tile id = ty * tiles_x + tx.
    means2d [N, 2], radii [N], depths [N], offsets [N] (the exclusive prefix sum of
    project_fwd's tiles_touched). ValueError unless every slot is written exactly once.
    """
    x0, x1, y0, y1 = tile_rect(means2d, radii, width, height)
    tiles_x, _ = num_tiles(width, height)
    depth_bits = np.asarray(depths, np.float32).view(np.uint32).astype(np.uint64)
    offsets = np.asarray(offsets, np.int64)
    keys = np.zeros(num_intersections, np.uint64)
    ids = np.zeros(num_intersections, np.int32)
    writes = np.zeros(num_intersections, np.int64)
    for i in np.nonzero(np.asarray(radii) != 0)[0]:
        ty, tx = np.mgrid[y0[i]:y1[i], x0[i]:x1[i]]
        tile = (ty * tiles_x + tx).ravel().astype(np.uint64)
        at = offsets[i] + np.arange(tile.size)
        keys[at] = (tile << np.uint64(32)) | depth_bits[i]
        ids[at] = i
        np.add.at(writes, at, 1)
    if (writes != 1).any():
        raise ValueError(f"offsets and num_intersections={num_intersections} do not give each "
                         "intersection one slot: offsets must be the exclusive prefix sum of "
                         "the splats' tile counts")
    return keys, ids


def tile_ranges(sorted_keys, width, height):
    """[T, 2] int32: for each tile t (T = tiles_x * tiles_y), [start, end) of its run in
    sorted_keys [M] uint64 (keys sorted by tile, then depth); (0, 0) for a tile with none."""
    tiles_x, tiles_y = num_tiles(width, height)
    tiles = (np.asarray(sorted_keys, np.uint64) >> np.uint64(32)).astype(np.int64)
    ranges = np.zeros((tiles_x * tiles_y, 2), np.int32)
    for t in np.unique(tiles):
        where = np.nonzero(tiles == t)[0]
        ranges[t] = (where[0], where[-1] + 1)
    return ranges


def bin_intersections(projected, width, height):
    """The binning step of a render, from project_fwd's outputs `projected` (radii, means2d,
    depths, tiles_touched): offsets = exclusive prefix sum of tiles_touched, binning_keys,
    a stable sort by key (tile, then depth, then splat index), tile_ranges. Returns keys [M],
    ids [M] (sorted), ranges [T, 2] and num_intersections M."""
    counts = np.asarray(projected["tiles_touched"], np.int64)
    offsets = np.cumsum(counts) - counts
    m = int(counts.sum())
    keys, ids = binning_keys(projected["means2d"], projected["radii"], projected["depths"],
                             offsets, m, width, height)
    order = np.argsort(keys, kind="stable")
    return {"keys": keys[order], "ids": ids[order],
            "ranges": tile_ranges(keys[order], width, height), "num_intersections": m}
