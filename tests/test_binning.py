"""kernels/binning.cu vs reference/binning.py, and the whole binning step."""

from __future__ import annotations

import numpy as np
import pytest

from splat_lion.binning import bin_intersections, binning_keys, tile_ranges
from splat_lion.kernels import num_tiles
from splat_lion.project import project_fwd
from splat_lion.reference import binning as ref

pytestmark = pytest.mark.usefixtures("poisoned_outputs")

# 100 x 37: no multiple of 16; 400 x 260: 425 tiles, a tile sort of two passes
SIZES = [(96, 64), (100, 37), (400, 260)]


def projected(be, random_scene, cam, n=400):
    """project_fwd's outputs for n random splats, some of them out of view."""
    return project_fwd(random_scene(n, 0, be, spread=2.0), cam)


def host(be, proj):
    return {k: be.to_numpy(v) for k, v in proj.items()}


@pytest.mark.parametrize("size", SIZES)
def test_binning_keys_match_reference(be, random_scene, camera, size):
    cam = camera(*size)
    p = host(be, projected(be, random_scene, cam))
    order = ref.depth_order(p["depths"])
    ends = np.cumsum(p["tiles_touched"][order]).astype(np.int32)
    m = int(ends[-1])
    keys, ids, visible = binning_keys(be.asarray(order, tag="scratch"),
                                      be.asarray(ends, tag="scratch"),
                                      be.asarray(p["means2d"], tag="scratch"),
                                      be.asarray(p["radii"], tag="scratch"), m, *size, be)
    want_keys, want_ids, want_visible = ref.binning_keys(order, ends, p["means2d"], p["radii"],
                                                         m, *size)
    assert m > 0 and not want_visible.all() and want_visible.any()
    np.testing.assert_array_equal(be.to_numpy(keys), want_keys)
    np.testing.assert_array_equal(be.to_numpy(ids), want_ids)
    np.testing.assert_array_equal(be.to_numpy(visible), want_visible)


@pytest.mark.parametrize("size", SIZES)
def test_tile_ranges_match_reference(be, rng, size):
    tx, ty = num_tiles(*size)
    used = rng.choice(tx * ty, size=tx * ty // 2, replace=False)  # the other tiles stay empty
    sorted_keys = np.sort(rng.choice(used, size=3 * tx * ty)).astype(np.uint32)
    got = tile_ranges(be.asarray(sorted_keys, tag="scratch"), *size, be)
    want = ref.tile_ranges(sorted_keys, *size)
    assert (want[:, 1] == 0).any()
    np.testing.assert_array_equal(be.to_numpy(got), want)


@pytest.mark.parametrize("size", SIZES)
def test_binning_sorts_intersections_by_tile_then_depth(be, random_scene, camera, size):
    cam = camera(*size)
    proj = projected(be, random_scene, cam)
    bins = bin_intersections(proj, cam.width, cam.height, be)
    p = host(be, proj)
    # the spec, written out: a stable sort of (tile << 32 | depth bits), splats by index
    want = ref.bin_intersections(p, cam.width, cam.height)
    assert bins["num_intersections"] == want["num_intersections"] == p["tiles_touched"].sum() > 0
    for name in ("keys", "ids", "ranges", "visible"):
        np.testing.assert_array_equal(be.to_numpy(bins[name]), want[name], err_msg=name)
    # within a tile, depths never decrease
    got_ids = be.to_numpy(bins["ids"])
    for start, end in want["ranges"]:
        assert (np.diff(p["depths"][got_ids[start:end]]) >= 0).all()


def test_equal_depths_keep_splat_order(be, camera):
    """Ties of depth go by splat index, as a stable sort of (tile | depth) keys orders them."""
    n = 300
    rng = np.random.default_rng(5)
    proj = {"radii": np.full(n, 9, np.int32),
            "means2d": rng.uniform(0, 64, (n, 2)).astype(np.float32),
            "depths": rng.choice(np.float32([1.0, 2.0, 3.0]), n).astype(np.float32)}
    proj["means2d"][:, 1] *= 48 / 64
    x0, x1, y0, y1 = ref.tile_rect(proj["means2d"], proj["radii"], 64, 48)
    proj["tiles_touched"] = ((x1 - x0) * (y1 - y0)).astype(np.int32)
    bins = bin_intersections({k: be.asarray(v, tag="projection") for k, v in proj.items()},
                             64, 48, be)
    want = ref.bin_intersections(proj, 64, 48)
    np.testing.assert_array_equal(be.to_numpy(bins["ids"]), want["ids"])


def test_no_visible_splats_gives_no_intersections(be, random_scene, camera):
    g = random_scene(10, 0, be)
    g.means[:] = -100.0  # all behind or outside
    cam = camera()
    proj = project_fwd(g, cam)
    bins = bin_intersections(proj, cam.width, cam.height, be)
    assert bins["num_intersections"] == 0 and not be.to_numpy(bins["ranges"]).any()
    assert not be.to_numpy(bins["visible"]).any()


def test_binning_allocates_nothing_once_sizes_are_seen(be, random_scene, camera):
    cam = camera(96, 64)
    proj = projected(be, random_scene, cam)
    bin_intersections(proj, cam.width, cam.height, be)  # warm-up: the workspaces
    before = be.memory.current_bytes(), len(be.workspaces.buffers())
    with _allocations(be) as made:
        bins = bin_intersections(proj, cam.width, cam.height, be)
    assert made == [] and (be.memory.current_bytes(), len(be.workspaces.buffers())) == before
    del bins


def test_bins_held_from_a_render_are_not_overwritten_by_the_next(be, random_scene, camera):
    cam = camera(96, 64)
    first = bin_intersections(projected(be, random_scene, cam), cam.width, cam.height, be)
    kept = {k: be.to_numpy(first[k]).copy() for k in ("keys", "ids", "ranges")}
    bin_intersections(projected(be, random_scene, cam), cam.width, cam.height, be)
    for k in kept:
        np.testing.assert_array_equal(be.to_numpy(first[k]), kept[k], err_msg=k)


def test_reference_refuses_ends_that_leave_slots_empty():
    means2d = np.array([[8.0, 8.0], [40.0, 8.0]], np.float32)
    radii = np.array([3, 3], np.int32)
    with pytest.raises(ValueError, match="inclusive prefix sum"):
        ref.binning_keys(np.array([0, 1]), np.array([1, 3]), means2d, radii, 3, 64, 16)


class _allocations:
    """`with _allocations(be) as made:` every array the backend's empty/zeros make inside."""

    def __init__(self, be):
        self.be, self.made = be, []

    def __enter__(self):
        be, made = self.be, self.made
        self.saved = be.empty, be.zeros
        for name in ("empty", "zeros"):
            original = getattr(be, name)

            def counted(shape, dtype=np.float32, *, tag, _original=original):
                made.append((shape, tag))
                return _original(shape, dtype, tag=tag)

            setattr(be, name, counted)
        return made

    def __exit__(self, *exc):
        del self.be.empty, self.be.zeros  # the class's methods again
