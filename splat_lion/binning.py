"""Wrappers of kernels/binning.cu, and the binning step of a render (reference/binning.py:
the same functions and arguments, less `be`).

    bins = bin_intersections(projected, width, height)   # projected: project_fwd's output
    bins["ids"][bins["ranges"][t, 0]:bins["ranges"][t, 1]]  # tile t's splats, front to back
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .backend import Backend
from .checks import check_array
from .kernels import BLOCK, num_tiles


def binning_keys(means2d, radii, depths, offsets, num_intersections: int, width: int,
                 height: int, be: Backend):
    """(keys [M] uint64, ids [M] int32) of every splat-tile intersection, unsorted."""
    n, xp = radii.shape[0], be.xp
    check_array("means2d", means2d, np.float32, (n, 2), xp)
    check_array("radii", radii, np.int32, (n,), xp)
    check_array("depths", depths, np.float32, (n,), xp)
    check_array("offsets", offsets, np.int64, (n,), xp)
    keys = be.empty((num_intersections,), np.uint64, tag="intersections")
    ids = be.empty((num_intersections,), np.int32, tag="intersections")
    if n and num_intersections:
        be.launch(kernels.function("binning", "binning_keys", backend=be),
                  ((n + BLOCK - 1) // BLOCK,), (BLOCK,),
                  (means2d, radii, depths, offsets, np.int32(width), np.int32(height),
                   np.int64(n), keys, ids))
    return keys, ids


def tile_ranges(sorted_keys, width: int, height: int, be: Backend):
    """[T, 2] int32: each tile's [start, end) in the sorted intersections."""
    check_array("sorted_keys", sorted_keys, np.uint64, (None,), be.xp)
    tx, ty = num_tiles(width, height)
    ranges = be.zeros((tx * ty, 2), np.int32, tag="intersections")
    m = sorted_keys.shape[0]
    if m:
        be.launch(kernels.function("binning", "tile_ranges", backend=be),
                  ((m + BLOCK - 1) // BLOCK,), (BLOCK,), (sorted_keys, np.int64(m), ranges))
    return ranges


def bin_intersections(projected: dict, width: int, height: int, be: Backend) -> dict:
    """Tiles touched -> prefix sum -> keys -> stable sort -> tile ranges."""
    counts = projected["tiles_touched"]
    ends = be.cumsum(counts, np.int64)  # inclusive
    m = int(be.to_numpy(ends[-1:]).sum()) if counts.shape[0] else 0  # one small read back
    offsets = be.xp.ascontiguousarray(ends - counts)
    keys, ids = binning_keys(projected["means2d"], projected["radii"], projected["depths"],
                             offsets, m, width, height, be)
    order = be.argsort(keys)
    keys = be.track(be.xp.ascontiguousarray(keys[order]), tag="intersections")
    ids = be.track(be.xp.ascontiguousarray(ids[order]), tag="intersections")
    return {"keys": keys, "ids": ids, "ranges": tile_ranges(keys, width, height, be),
            "num_intersections": m}
