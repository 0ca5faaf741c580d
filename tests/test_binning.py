"""kernels/binning.cu vs reference/binning.py, and the whole binning step."""

from __future__ import annotations

import numpy as np
import pytest

from splat_lion.binning import bin_intersections, binning_keys, tile_ranges
from splat_lion.kernels import num_tiles
from splat_lion.project import project_fwd
from splat_lion.reference import binning as ref

pytestmark = pytest.mark.usefixtures("poisoned_outputs")

SIZES = [(96, 64), (100, 37)]  # 100 x 37: no multiple of 16


def projected(be, random_scene, cam, n=400):
    """project_fwd's outputs for n random splats, some of them out of view."""
    return project_fwd(random_scene(n, 0, be, spread=2.0), cam)


@pytest.mark.parametrize("size", SIZES)
def test_binning_keys_match_reference(be, random_scene, camera, size):
    cam = camera(*size)
    proj = projected(be, random_scene, cam)
    counts = be.to_numpy(proj["tiles_touched"]).astype(np.int64)
    offsets = np.cumsum(counts) - counts
    m = int(counts.sum())
    keys, ids = binning_keys(proj["means2d"], proj["radii"], proj["depths"],
                             be.asarray(offsets, tag="scratch"), m, cam.width, cam.height, be)
    host = {k: be.to_numpy(v) for k, v in proj.items()}
    want_keys, want_ids = ref.binning_keys(host["means2d"], host["radii"], host["depths"],
                                           offsets, m, cam.width, cam.height)
    assert m > 0
    np.testing.assert_array_equal(be.to_numpy(keys), want_keys)
    np.testing.assert_array_equal(be.to_numpy(ids), want_ids)


@pytest.mark.parametrize("size", SIZES)
def test_tile_ranges_match_reference(be, rng, size):
    tx, ty = num_tiles(*size)
    used = rng.choice(tx * ty, size=tx * ty // 2, replace=False)  # the other tiles stay empty
    tiles = np.sort(rng.choice(used, size=3 * tx * ty)).astype(np.uint64)
    sorted_keys = (tiles << np.uint64(32)) | rng.integers(0, 2**31, tiles.size, dtype=np.uint64)
    got = tile_ranges(be.asarray(sorted_keys, tag="scratch"), *size, be)
    want = ref.tile_ranges(sorted_keys, *size)
    assert (want[:, 1] == 0).any()
    np.testing.assert_array_equal(be.to_numpy(got), want)


@pytest.mark.parametrize("size", SIZES)
def test_binning_sorts_intersections_by_tile_then_depth(be, random_scene, camera, size):
    cam = camera(*size)
    proj = projected(be, random_scene, cam)
    bins = bin_intersections(proj, cam.width, cam.height, be)
    host = {k: be.to_numpy(v) for k, v in proj.items()}
    offsets = np.cumsum(host["tiles_touched"]) - host["tiles_touched"]
    keys, ids = ref.binning_keys(host["means2d"], host["radii"], host["depths"], offsets,
                                 int(host["tiles_touched"].sum()), cam.width, cam.height)
    assert bins["num_intersections"] == len(keys) == host["tiles_touched"].sum() > 0
    order = np.argsort(keys, kind="stable")
    np.testing.assert_array_equal(be.to_numpy(bins["keys"]), keys[order])
    np.testing.assert_array_equal(be.to_numpy(bins["ids"]), ids[order])
    want_ranges = ref.tile_ranges(keys[order], cam.width, cam.height)
    np.testing.assert_array_equal(be.to_numpy(bins["ranges"]), want_ranges)
    # the reference's whole step agrees
    want = ref.bin_intersections(host, cam.width, cam.height)
    for name in ("keys", "ids", "ranges"):
        np.testing.assert_array_equal(be.to_numpy(bins[name]), want[name], err_msg=name)
    # within a tile, depths never decrease
    got_ids, depth = be.to_numpy(bins["ids"]), host["depths"]
    for start, end in want_ranges:
        assert (np.diff(depth[got_ids[start:end]]) >= 0).all()


def test_no_visible_splats_gives_no_intersections(cpu, random_scene, camera):
    g = random_scene(10, 0, cpu)
    g.means[:] = -100.0  # all behind or outside
    cam = camera()
    proj = project_fwd(g, cam)
    bins = bin_intersections(proj, cam.width, cam.height, cpu)
    assert bins["num_intersections"] == 0 and not bins["ranges"].any()


def test_reference_refuses_offsets_that_leave_slots_empty():
    means2d = np.array([[8.0, 8.0], [40.0, 8.0]], np.float32)
    radii = np.array([3, 3], np.int32)
    depths = np.ones(2, np.float32)
    with pytest.raises(ValueError, match="exclusive prefix sum"):
        ref.binning_keys(means2d, radii, depths, np.array([0, 2]), 3, 64, 16)
