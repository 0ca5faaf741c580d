"""kernels/binning.cu vs reference/binning.py, and the whole binning step."""

from __future__ import annotations

import numpy as np
import pytest
from test_project import camera, scene

from splat_lion.binning import bin_intersections, num_tiles
from splat_lion.project import project_fwd
from splat_lion.reference import binning as ref


@pytest.mark.parametrize("size", [(96, 64), (100, 37)])  # sizes that are no multiple of 16
def test_binning_sorts_intersections_by_tile_then_depth(be, rng, size):
    g = scene(rng, 400, 0, be, spread=2.0)
    cam = camera(*size)
    proj = project_fwd(g, cam)
    bins = bin_intersections(proj, cam.width, cam.height, be)
    host = {k: be.to_numpy(v) for k, v in proj.items()}
    offsets = np.cumsum(host["tiles_touched"]) - host["tiles_touched"]
    keys, ids = ref.binning_keys(host["means2d"], host["radii"], host["depths"], offsets,
                                 cam.width, cam.height)
    assert bins["num_intersections"] == len(keys) == host["tiles_touched"].sum() > 0
    order = np.argsort(keys, kind="stable")
    np.testing.assert_array_equal(be.to_numpy(bins["keys"]), keys[order])
    np.testing.assert_array_equal(be.to_numpy(bins["ids"]), ids[order])
    tx, ty = num_tiles(cam.width, cam.height)
    want_ranges = ref.tile_ranges(keys[order], tx * ty)
    np.testing.assert_array_equal(be.to_numpy(bins["ranges"]), want_ranges)
    # within a tile, depths never decrease
    got_ids, depth = be.to_numpy(bins["ids"]), host["depths"]
    for start, end in want_ranges:
        assert (np.diff(depth[got_ids[start:end]]) >= 0).all()


def test_no_visible_splats_gives_no_intersections(cpu, rng):
    g = scene(rng, 10, 0, cpu)
    g.means[:] = -100.0  # all behind or outside
    cam = camera()
    proj = project_fwd(g, cam)
    bins = bin_intersections(proj, cam.width, cam.height, cpu)
    assert bins["num_intersections"] == 0 and not bins["ranges"].any()
