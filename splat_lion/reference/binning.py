"""Reference of kernels/binning.cu: splat-tile intersections, sorted, and each tile's range.

Same functions and arguments as splat_lion/binning.py, less the backend `be`:

    tile_rect        which tiles a splat touches (kernels/common.cuh's tile_rect)
    depth_order      the splats front to back (binning.py sorts with kernels/sort.cu)
    binning_keys     one tile-id key per splat-tile intersection, the splats in depth order
    tile_ranges      each tile's [start, end) in the sorted keys
    bin_intersections  the whole step, written as its spec: a stable sort of
                     (tile << 32 | depth bits) keys, splats in index order
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


def depth_order(depths):
    """[N] int32: the splats front to back, a stable sort of the float32 bits of depths
    (positive floats order like their bits; culled splats, whatever their depth, touch no
    tile, so their place does not matter)."""
    return np.argsort(np.asarray(depths, np.float32).view(np.uint32), kind="stable"
                      ).astype(np.int32)


def binning_keys(order, ends, means2d, radii, num_intersections, width, height):
    """(keys [M] uint32, ids [M] int32, visible [N] bool), M = num_intersections.

    The k-th splat in `order`, i = order[k], with radii[i] > 0 writes one intersection per
    tile of its tile_rect, row by row, at ends[k - 1], ends[k - 1] + 1, ... (from 0 for
    k = 0): key = tile id = ty * tiles_x + tx, id = i. ends [N]: the inclusive prefix sum of
    the splats' tile counts in that order. visible = radii > 0. ValueError unless every slot
    is written exactly once.
    """
    x0, x1, y0, y1 = tile_rect(means2d, radii, width, height)
    tiles_x, _ = num_tiles(width, height)
    order = np.asarray(order, np.int64)
    ends = np.asarray(ends, np.int64)
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    radii = np.asarray(radii)
    keys = np.zeros(num_intersections, np.uint32)
    ids = np.zeros(num_intersections, np.int32)
    writes = np.zeros(num_intersections, np.int64)
    for k, i in enumerate(order):
        if radii[i] == 0:
            continue
        ty, tx = np.mgrid[y0[i]:y1[i], x0[i]:x1[i]]
        tile = (ty * tiles_x + tx).ravel()
        at = starts[k] + np.arange(tile.size)
        if at.size and (at[-1] >= num_intersections or at[-1] >= ends[k]):
            writes[:] = 0  # fails below
            break
        keys[at] = tile
        ids[at] = i
        np.add.at(writes, at, 1)
    if (writes != 1).any():
        raise ValueError(f"ends and num_intersections={num_intersections} do not give each "
                         "intersection one slot: ends must be the inclusive prefix sum of the "
                         "splats' tile counts, in `order`")
    return keys, ids, radii > 0


def tile_ranges(sorted_keys, width, height):
    """[T, 2] int32: for each tile t (T = tiles_x * tiles_y), [start, end) of its run in
    sorted_keys [M] (tile ids, sorted); (0, 0) for a tile with none."""
    tiles_x, tiles_y = num_tiles(width, height)
    tiles = np.asarray(sorted_keys).astype(np.int64)
    ranges = np.zeros((tiles_x * tiles_y, 2), np.int32)
    for t in np.unique(tiles):
        where = np.nonzero(tiles == t)[0]
        ranges[t] = (where[0], where[-1] + 1)
    return ranges


def bin_intersections(projected, width, height):
    """The binning step of a render, from project_fwd's outputs `projected` (radii, means2d,
    depths, tiles_touched): every splat-tile intersection, sorted by tile, then depth, then
    splat index (a stable sort of the keys (tile << 32) | float32 bits of depth, the splats
    in index order). Returns keys [M] (the sorted tile ids, uint32), ids [M] int32 (sorted),
    ranges [T, 2] (tile_ranges), num_intersections M and visible [N] (radii > 0)."""
    x0, x1, y0, y1 = tile_rect(projected["means2d"], projected["radii"], width, height)
    tiles_x, _ = num_tiles(width, height)
    radii = np.asarray(projected["radii"])
    depth_bits = np.asarray(projected["depths"], np.float32).view(np.uint32).astype(np.uint64)
    keys, ids = [], []
    for i in np.nonzero(radii != 0)[0]:
        ty, tx = np.mgrid[y0[i]:y1[i], x0[i]:x1[i]]
        tile = (ty * tiles_x + tx).ravel().astype(np.uint64)
        keys.append((tile << np.uint64(32)) | depth_bits[i])
        ids.append(np.full(tile.size, i, np.int32))
    keys = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
    ids = np.concatenate(ids) if ids else np.zeros(0, np.int32)
    order = np.argsort(keys, kind="stable")
    tiles = (keys[order] >> np.uint64(32)).astype(np.uint32)
    return {"keys": tiles, "ids": ids[order], "ranges": tile_ranges(tiles, width, height),
            "num_intersections": int(keys.size), "visible": radii > 0}
