"""Wrappers of kernels/binning.cu, and the binning step of a render (reference/binning.py:
the same functions and arguments, less `be`).

    bins = bin_intersections(projected, width, height, be)   # projected: project_fwd's output
    bins["ids"][bins["ranges"][t, 0]:bins["ranges"][t, 1]]  # tile t's splats, front to back

Depth, then tile: the splats are sorted by depth (N keys of 32 bits: four 8-bit radix passes),
their intersections are written in that order with the tile id alone as key, and a stable
sort by tile (ceil(log2 T) bits: one pass up to 256 tiles, two up to 65536) keeps the depth
order within each tile. Ties of depth go by splat index, as a stable sort of
(tile << 32 | depth bits) would order them. Every buffer is a workspace (backend.py), so
binning allocates nothing once the sizes of a fit's views have been seen; the one host sync
is the intersection count, which sizes the second sort.
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .backend import Backend
from .checks import check_array
from .kernels import BLOCK, num_tiles
from . import sort
from .sort import key_bits_for, radix_sort

TAG = "intersections"


def binning_keys(order, ends, means2d, radii, num_intersections: int, width: int, height: int,
                 be: Backend):
    """(keys [M] uint32 tile ids, ids [M] int32, visible [N] bool) of every splat-tile
    intersection, the splats taken in `order` [N] int32 (front to back), splat order[k]'s
    from ends[k - 1] (0 for k = 0) to ends[k] ([N] int32, the inclusive prefix sum of the
    tile counts in that order); visible = radii > 0. Workspaces binning.keys/ids/visible."""
    n, xp = radii.shape[0], be.xp
    check_array("order", order, np.int32, (n,), xp)
    check_array("ends", ends, np.int32, (n,), xp)
    check_array("means2d", means2d, np.float32, (n, 2), xp)
    check_array("radii", radii, np.int32, (n,), xp)
    keys = be.workspace("binning.keys", num_intersections, np.uint32, tag=TAG)
    ids = be.workspace("binning.ids", num_intersections, np.int32, tag=TAG)
    visible = be.workspace("binning.visible", n, np.bool_, tag="projection")
    if n:
        be.launch(kernels.function("binning", "binning_keys", backend=be),
                  ((n + BLOCK - 1) // BLOCK,), (BLOCK,),
                  (order, ends, means2d, radii, np.int32(width), np.int32(height), np.int64(n),
                   keys, ids, visible))
    return keys, ids, visible


def tile_ranges(sorted_keys, width: int, height: int, be: Backend):
    """[T, 2] int32: each tile's [start, end) in the sorted tile ids [M] uint32; (0, 0) for a
    tile without intersections. Workspace binning.ranges."""
    check_array("sorted_keys", sorted_keys, np.uint32, (None,), be.xp)
    tx, ty = num_tiles(width, height)
    ranges = be.workspace("binning.ranges", (tx * ty, 2), np.int32, tag=TAG)
    be.launch(kernels.function("binning", "tile_ranges", backend=be),
              ((tx * ty + BLOCK - 1) // BLOCK,), (BLOCK,),
              (sorted_keys, np.int64(sorted_keys.shape[0]), np.int32(tx * ty), ranges))
    return ranges


def bin_intersections(projected: dict, width: int, height: int, be: Backend) -> dict:
    """Splats by depth (and each one's tile count in that order) -> prefix sum -> the
    intersection count (read back: the one sync) -> tile ids in depth order -> stable sort by
    tile -> tile ranges. Returns keys [M] (uint32 tile ids, sorted), ids [M], ranges [T, 2],
    num_intersections M, and visible [N] (radii > 0)."""
    xp = be.xp
    radii, counts = projected["radii"], projected["tiles_touched"]
    n = radii.shape[0]
    check_array("depths", projected["depths"], np.float32, (n,), xp)
    check_array("tiles_touched", counts, np.int32, (n,), xp)
    # front to back: positive floats order like their bits (culled splats: any place)
    in_depth_order = be.workspace("binning.counts", n, np.int32, tag=TAG)
    _, order = radix_sort(projected["depths"].view(np.uint32), None, 32, be,
                          key="binning.depth", gather=(counts, in_depth_order))
    ends = be.workspace("binning.ends", n, np.int32, tag=TAG)
    if n:
        be.cumsum(in_depth_order, out=ends)
    m = int(be.to_numpy(ends[n - 1:])[0]) if n else 0  # one small read back
    keys, ids, visible = binning_keys(order, ends, projected["means2d"], radii, m, width,
                                      height, be)
    tx, ty = num_tiles(width, height)
    keys, ids = radix_sort(keys, ids, key_bits_for(tx * ty), be, key="binning.tile",
                           in_place=True)
    return {"keys": keys, "ids": ids, "ranges": tile_ranges(keys, width, height, be),
            "num_intersections": m, "visible": visible}


def workspace_bytes(num_splats: int, num_intersections: int, width: int, height: int) -> dict:
    """Bytes of binning's workspaces by tag (the memory predictor's arithmetic), N splats and
    M intersections: "intersections": the depth sort's (a 32-bit sort of N) and each splat's
    tile count and their prefix sum in depth order (8·N), the tile ids and ids written (8·M)
    and the tile sort's (sorted in place), the tile ranges (8·T); "projection": visible, N."""
    n, m = num_splats, num_intersections
    tx, ty = num_tiles(width, height)
    return {"intersections": sort.workspace_bytes(n, 32) + 8 * n + 8 * m
            + sort.workspace_bytes(m, key_bits_for(tx * ty), in_place=True) + 8 * tx * ty,
            "projection": n}
