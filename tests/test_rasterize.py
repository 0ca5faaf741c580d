"""kernels/rasterize.cu vs reference/rasterize.py: forward, backward (vs the reference and vs
finite differences of the forward reference), the backward's two atomic-add variants, and its
skips (of what no pixel of a warp or block needs), which change no result."""

from __future__ import annotations

import numpy as np
import pytest

from splat_lion.binning import bin_intersections
from splat_lion.kernels import TILE, num_tiles
from splat_lion.project import project_fwd
from splat_lion.rasterize import rasterize_bwd, rasterize_fwd
from splat_lion.reference import rasterize as ref

pytestmark = pytest.mark.usefixtures("poisoned_outputs")

NAMES = ("means2d", "conics", "colors", "opacities")  # what rasterize_bwd differentiates


def inputs(be, rng, random_scene, cam, n, degree=1, *, spread=1.2, opacity=(-1, 4), scale=None,
           background=(0.1, 0.2, 0.3)):
    """rasterize_fwd's arguments (less the backend) for n random splats, projected and
    binned by the kernels; opacity logits uniform in `opacity`, σ uniform in `scale`."""
    g = random_scene(n, degree, be, spread=spread)
    g.opacities[:] = be.asarray(rng.uniform(*opacity, n).astype(np.float32), tag="params")
    if scale is not None:
        g.scales[:] = be.asarray(np.log(rng.uniform(*scale, (n, 3))).astype(np.float32),
                                 tag="params")
    p = project_fwd(g, cam)
    bins = bin_intersections(p, cam.width, cam.height, be)
    return (bins["ranges"], bins["ids"], p["means2d"], p["conics"], p["colors"], g.opacities,
            be.asarray(np.array(background, np.float32), tag="image"), cam.width, cam.height)


def small_inputs(be, rng, random_scene, camera):
    """6 splats over 20 x 16 pixels (2 x 1 tiles); moderate opacities keep away from the 0.99
    clamp and the T < 1e-4 stop, where finite differences would jump."""
    return inputs(be, rng, random_scene, camera(20, 16), 6, spread=0.6, opacity=(-2, 1),
                  scale=(0.15, 0.4), background=(0.3, 0.1, 0.2))


def long_walk_inputs(be, rng, random_scene, camera):
    """700 splats in the middle of 40 x 40 pixels (3 x 3 tiles, the last row and column
    overhanging the image by 8 pixels): tiles of up to 700 splats (3 batches), nine in ten
    faint (long walks), one in ten nearly opaque (early stops). Per tile, `last` then varies
    from warp to warp, whole warps have none (outside the image or the splats), and the
    block's furthest last contributor falls short of the tile's list."""
    n = 700
    opacity = np.where(rng.random(n) < 0.9, rng.uniform(-5, -2, n), rng.uniform(2, 5, n))
    args = inputs(be, rng, random_scene, camera(40, 40), n, 0, spread=0.5)
    args[5][:] = be.asarray(opacity.astype(np.float32), tag="params")
    return args


def warp_and_block_lasts(last, width, height):
    """[tiles, warps] the furthest last contributor of each warp (TILE x TILE pixels, warps of
    32 consecutive pixels in row-major order, pixels outside the image count 0), and [tiles]
    that of each block."""
    tx, ty = num_tiles(width, height)
    padded = np.zeros((ty * TILE, tx * TILE), np.int64)
    padded[:height, :width] = last
    tiles = padded.reshape(ty, TILE, tx, TILE).transpose(0, 2, 1, 3).reshape(tx * ty, -1, 32)
    warp = tiles.max(2)
    return warp, warp.max(1)


def host(be, args):
    return tuple(be.to_numpy(a) if hasattr(a, "shape") else a for a in args)


def cotangents(rng, width, height):
    """Random v_image [H, W, 3] and v_alpha [H, W], float32."""
    return (rng.standard_normal((height, width, 3)).astype(np.float32),
            rng.standard_normal((height, width)).astype(np.float32))


@pytest.mark.parametrize("size,degree", [((64, 48), 0), ((37, 29), 3), ((80, 16), 1)])
def test_forward_matches_reference(be, rng, random_scene, camera, size, degree):
    args = inputs(be, rng, random_scene, camera(*size), 300, degree)
    image, alpha, last = (be.to_numpy(a) for a in rasterize_fwd(*args, be))
    want_image, want_alpha, want_last = ref.rasterize_fwd(*host(be, args))
    # float32 vs float64 may flip a threshold test at a few pixels
    close = np.isclose(image, want_image, atol=1e-5).all(-1)
    assert close.mean() > 0.995, f"{(~close).sum()} pixels differ"
    np.testing.assert_allclose(alpha[close], want_alpha[close], atol=1e-5)
    assert (last[close] == want_last[close]).mean() > 0.99
    assert want_alpha.max() > 0.5, "the scene should cover part of the image"


@pytest.mark.parametrize("scene", ["many_tiles", "long_walks"])
def test_backward_matches_reference(be, rng, random_scene, camera, scene):
    """Many splats and tiles, or long walks that the skips cut short: the kernel's
    back-to-front recurrence and float32 atomics vs the reference's direct sums in float64,
    from the same forward pass."""
    if scene == "many_tiles":
        args = inputs(be, rng, random_scene, camera(64, 48), 300)
    else:
        args = long_walk_inputs(be, rng, random_scene, camera)
    width, height = args[-2:]
    _, alpha, last = rasterize_fwd(*args, be)
    v_image, v_alpha = cotangents(rng, width, height)
    got = rasterize_bwd(*args, alpha, last, be.asarray(v_image, tag="loss"),
                        be.asarray(v_alpha, tag="loss"), be)
    want = ref.rasterize_bwd(*host(be, args), be.to_numpy(alpha), be.to_numpy(last), v_image,
                             v_alpha)
    for name in NAMES:
        scale = np.abs(want[name]).max()
        assert scale > 0.01, name  # the test has teeth
        g = be.to_numpy(got[name])
        # float32 vs float64 may flip the alpha >= 1/255 test at a few splat-pixel pairs
        close = np.isclose(g, want[name], atol=1e-3 * scale, rtol=1e-3)
        assert close.mean() > 0.99, f"{name}: {(~close).sum()} of {close.size} differ"
        np.testing.assert_allclose(g, want[name], atol=0.1 * scale, err_msg=name)


def test_reference_backward_matches_finite_differences(cpu, rng, random_scene, camera,
                                                       finite_differences):
    ranges, ids, *values, bg, width, height = host(cpu, small_inputs(cpu, rng, random_scene,
                                                                     camera))
    x = dict(zip(NAMES, (np.asarray(v, np.float64) for v in values)))
    v_image, v_alpha = cotangents(rng, width, height)

    def loss():
        image, alpha, _ = ref.rasterize_fwd(ranges, ids, *x.values(), bg, width, height)
        return (image * v_image).sum() + (alpha * v_alpha).sum()

    _, alpha, last = ref.rasterize_fwd(ranges, ids, *x.values(), bg, width, height)
    want = ref.rasterize_bwd(ranges, ids, *x.values(), bg, width, height, alpha, last, v_image,
                             v_alpha)
    for name in NAMES:
        fd = finite_differences(loss, x[name])
        np.testing.assert_allclose(want[name], fd, atol=1e-6 * np.abs(fd).max(), rtol=1e-6,
                                   err_msg=name)


def test_backward_matches_finite_differences(be, rng, random_scene, camera, finite_differences):
    args = small_inputs(be, rng, random_scene, camera)
    ranges, ids, *values, bg, width, height = host(be, args)
    x = dict(zip(NAMES, (np.asarray(v, np.float64) for v in values)))
    _, alpha, last = rasterize_fwd(*args, be)
    v_image, v_alpha = cotangents(rng, width, height)
    got = rasterize_bwd(*args, alpha, last, be.asarray(v_image, tag="loss"),
                        be.asarray(v_alpha, tag="loss"), be)

    def loss():
        image, alpha, _ = ref.rasterize_fwd(ranges, ids, *x.values(), bg, width, height)
        return (image * v_image).sum() + (alpha * v_alpha).sum()

    for name in NAMES:
        fd = finite_differences(loss, x[name])
        scale = max(np.abs(fd).max(), 1e-2)
        np.testing.assert_allclose(be.to_numpy(got[name]), fd, atol=2e-3 * scale, rtol=2e-3,
                                   err_msg=name)
    assert np.abs(be.to_numpy(got["opacities"])).max() > 1e-3  # the test has teeth


def test_backward_warp_sums_agree_with_direct_atomics(cpu, rng, random_scene, camera):
    """rasterize_bwd's GPU variant (warp sums, via the runtime's shuffle emulation) against
    the CPU one (a direct atomic per pixel)."""
    cam = camera(40, 24)
    args = inputs(cpu, rng, random_scene, cam, 80, spread=1.0, opacity=(-1, 1))
    _, alpha, last = rasterize_fwd(*args, cpu)
    v_image, v_alpha = cotangents(rng, cam.width, cam.height)
    direct = rasterize_bwd(*args, alpha, last, v_image, v_alpha, cpu)
    warp = rasterize_bwd(*args, alpha, last, v_image, v_alpha, cpu,
                         defines={"SPLAT_LION_WARP_SUM_ON_CPU": 1})
    for name in direct:
        np.testing.assert_allclose(warp[name], direct[name], rtol=1e-4, atol=1e-5, err_msg=name)
    assert np.abs(direct["means2d"]).max() > 0


def test_long_walks_give_the_skips_something_to_skip(cpu, rng, random_scene, camera):
    """The scene of the skip tests below has each kind of skip: tiles of several batches,
    blocks whose furthest last contributor is short of the tile's list, warps short of their
    block's, and warps with no contributor in a tile that has splats."""
    args = long_walk_inputs(cpu, rng, random_scene, camera)
    ranges, width, height = args[0], args[-2], args[-1]
    _, _, last = rasterize_fwd(*args, cpu)
    warp_last, block_last = warp_and_block_lasts(last, width, height)
    listed = ranges[:, 1] - ranges[:, 0]
    assert listed.max() > 2 * TILE * TILE
    assert (block_last < listed).sum() >= 2 and (block_last > 0).sum() >= 2
    assert (warp_last < block_last[:, None]).sum() >= 8
    assert ((warp_last == 0) & (listed[:, None] > 0)).sum() >= 8


@pytest.mark.parametrize("scene", ["many_tiles", "long_walks"])
def test_backward_skips_change_no_bit_on_the_cpu(cpu, rng, random_scene, camera, scene):
    """Each lane adds its own gradients on the CPU (common.cuh): passing over what no lane
    needs leaves out only zeros, so the sums, in the same order, are bit for bit those of
    the walk over every splat of every tile (BWD_SKIPS=0). Fits resume exactly on this."""
    if scene == "many_tiles":
        args = inputs(cpu, rng, random_scene, camera(64, 48), 300)
    else:
        args = long_walk_inputs(cpu, rng, random_scene, camera)
    _, alpha, last = rasterize_fwd(*args, cpu)
    v_image, v_alpha = cotangents(rng, *args[-2:])
    skipping = rasterize_bwd(*args, alpha, last, v_image, v_alpha, cpu)
    walking = rasterize_bwd(*args, alpha, last, v_image, v_alpha, cpu, defines={"BWD_SKIPS": 0})
    for name in NAMES:
        np.testing.assert_array_equal(skipping[name], walking[name], err_msg=name)
    assert np.abs(skipping["opacities"]).max() > 0


def test_backward_skips_keep_the_warp_sums(cpu, rng, random_scene, camera):
    """The GPU variant (a warp-uniform vote, then warp sums; through the runtime's shuffle
    emulation) with and without the skips: the same sums up to the order in which warps'
    atomics land."""
    args = long_walk_inputs(cpu, rng, random_scene, camera)
    _, alpha, last = rasterize_fwd(*args, cpu)
    v_image, v_alpha = cotangents(rng, *args[-2:])
    warp = {"SPLAT_LION_WARP_SUM_ON_CPU": 1}
    skipping = rasterize_bwd(*args, alpha, last, v_image, v_alpha, cpu, defines=warp)
    walking = rasterize_bwd(*args, alpha, last, v_image, v_alpha, cpu,
                            defines={**warp, "BWD_SKIPS": 0})
    for name in NAMES:
        scale = np.abs(walking[name]).max()
        assert scale > 0, name
        np.testing.assert_allclose(skipping[name], walking[name], rtol=1e-5, atol=1e-6 * scale,
                                   err_msg=name)


def test_wrappers_check_their_arguments(cpu, rng, random_scene, camera):
    cam = camera(40, 24)
    ranges, ids, means2d, *rest = inputs(cpu, rng, random_scene, cam, 20)
    _, alpha, last = rasterize_fwd(ranges, ids, means2d, *rest, cpu)
    v_image, v_alpha = cotangents(rng, cam.width, cam.height)
    with pytest.raises(TypeError, match="means2d: expected dtype float32, got float64"):
        rasterize_bwd(ranges, ids, means2d.astype(np.float64), *rest, alpha, last, v_image,
                      v_alpha, cpu)
    with pytest.raises(ValueError, match=r"ranges: expected shape \[6, 2\], got \[5, 2\]"):
        rasterize_fwd(ranges[:5].copy(), ids, means2d, *rest, cpu)
    with pytest.raises(ValueError, match=r"v_alpha: expected shape \[24, 40\]"):
        rasterize_bwd(ranges, ids, means2d, *rest, alpha, last, v_image, v_alpha.T.copy(), cpu)


# -- depth: rasterize_fwd_depth and rasterize_bwd_depth -------------------------------------------

def with_depths(be, rng, args, lo=2.0, hi=6.0):
    """args and depths [N] float32, uniform in [lo, hi] (rasterize_* take any z per splat)."""
    n = args[2].shape[0]
    return be.asarray(rng.uniform(lo, hi, n).astype(np.float32), tag="projection")


@pytest.mark.parametrize("size,degree", [((64, 48), 0), ((37, 29), 3)])
def test_forward_depth_matches_reference(be, rng, random_scene, camera, size, degree):
    args = inputs(be, rng, random_scene, camera(*size), 300, degree)
    depths = with_depths(be, rng, args)
    plain = [be.to_numpy(a).copy() for a in rasterize_fwd(*args, be)]
    got = [be.to_numpy(a) for a in rasterize_fwd(*args, be, depths=depths)]
    # the colour outputs of the depth variant are those of the plain kernel, bit for bit
    for name, a, b in zip(("image", "alpha", "last"), got, plain):
        np.testing.assert_array_equal(a, b, err_msg=name)
    _, want_alpha, want_last, want_depth, want_median = ref.rasterize_fwd(
        *host(be, args), be.to_numpy(depths))
    # float32 vs float64 may flip a threshold test at a few pixels
    same = (want_last == got[2]) & np.isclose(got[1], want_alpha, atol=1e-5)
    assert same.mean() > 0.99, f"{(~same).sum()} pixels differ"
    # D / (1 - T): 1 - T loses ~1e-5 of a faint pixel's alpha (~1/255) to float32 rounding
    np.testing.assert_allclose(got[3][same], want_depth[same], rtol=1e-4, atol=1e-5)
    # the median is one splat's z: equal, but where T lands within rounding of 0.5
    median_same = got[4] == want_median.astype(np.float32)
    assert median_same[same].mean() > 0.99
    assert (want_alpha > 0.5).sum() > 50 and (want_alpha == 0).sum() > 0  # both kinds of pixel
    assert not got[3][want_alpha == 0].any() and not got[4][want_alpha < 0.5].any()


@pytest.mark.parametrize("scene", ["many_tiles", "long_walks"])
def test_backward_depth_matches_reference(be, rng, random_scene, camera, scene):
    """rasterize_bwd_depth vs the reference's direct sums, with colour, alpha and depth
    cotangents at once (each share also checked alone: test_..._finite_differences)."""
    if scene == "many_tiles":
        args = inputs(be, rng, random_scene, camera(64, 48), 300)
    else:
        args = long_walk_inputs(be, rng, random_scene, camera)
    width, height = args[-2:]
    depths = with_depths(be, rng, args)
    _, alpha, last, depth, _ = rasterize_fwd(*args, be, depths=depths)
    v_image, v_alpha = cotangents(rng, width, height)
    v_depth = rng.standard_normal((height, width)).astype(np.float32)
    got = rasterize_bwd(*args, alpha, last, be.asarray(v_image, tag="loss"),
                        be.asarray(v_alpha, tag="loss"), be, depths=depths, depth=depth,
                        v_depth=be.asarray(v_depth, tag="loss"))
    want = ref.rasterize_bwd(*host(be, args), be.to_numpy(alpha), be.to_numpy(last), v_image,
                             v_alpha, be.to_numpy(depths), be.to_numpy(depth), v_depth)
    for name in (*NAMES, "depths"):
        scale = np.abs(want[name]).max()
        assert scale > 0.01, name  # the test has teeth
        g = be.to_numpy(got[name])
        close = np.isclose(g, want[name], atol=1e-3 * scale, rtol=1e-3)
        assert close.mean() > 0.99, f"{name}: {(~close).sum()} of {close.size} differ"
        np.testing.assert_allclose(g, want[name], atol=0.1 * scale, err_msg=name)


def depth_loss_inputs(be, rng, random_scene, camera):
    """small_inputs, depths in [2, 4], and cotangents of image, alpha and depth."""
    args = small_inputs(be, rng, random_scene, camera)
    depths = with_depths(be, rng, args, 2.0, 4.0)
    width, height = args[-2:]
    v_image, v_alpha = cotangents(rng, width, height)
    v_depth = rng.standard_normal((height, width)).astype(np.float32)
    return args, depths, v_image, v_alpha, v_depth


def splats(x):
    """x's arrays named in NAMES, in their order (rasterize_fwd's splat arguments)."""
    return tuple(x[name] for name in NAMES)


@pytest.mark.parametrize("which", ["depth", "all"])
def test_reference_backward_depth_matches_finite_differences(cpu, rng, random_scene, camera,
                                                             finite_differences, which):
    args, depths, v_image, v_alpha, v_depth = depth_loss_inputs(cpu, rng, random_scene, camera)
    ranges, ids, *values, bg, width, height = host(cpu, args)
    if which == "depth":  # the depth's share alone
        v_image, v_alpha = np.zeros_like(v_image), np.zeros_like(v_alpha)
    x = dict(zip((*NAMES, "depths"), (np.asarray(v, np.float64) for v in (*values, depths))))

    def loss():
        image, alpha, _, depth, _ = ref.rasterize_fwd(ranges, ids, *splats(x), bg, width,
                                                      height, x["depths"])
        return (image * v_image).sum() + (alpha * v_alpha).sum() + (depth * v_depth).sum()

    _, alpha, last, depth, _ = ref.rasterize_fwd(ranges, ids, *splats(x), bg, width, height,
                                                 x["depths"])
    want = ref.rasterize_bwd(ranges, ids, *splats(x), bg, width, height, alpha, last, v_image,
                             v_alpha, x["depths"], depth, v_depth)
    for name in (*NAMES, "depths"):
        fd = finite_differences(loss, x[name])
        teeth = name != "colors" or which == "all"  # depth does not depend on colour
        assert (np.abs(fd).max() > 1e-3) == teeth, name
        np.testing.assert_allclose(want[name], fd, atol=1e-6 * max(np.abs(fd).max(), 1e-3),
                                   rtol=1e-6, err_msg=name)


def test_backward_depth_matches_finite_differences(be, rng, random_scene, camera,
                                                   finite_differences):
    """The kernel's gradients of a loss on the normalised expected depth (with colour and
    alpha terms) vs central differences of the float64 reference forward pass."""
    args, depths, v_image, v_alpha, v_depth = depth_loss_inputs(be, rng, random_scene, camera)
    ranges, ids, *values, bg, width, height = host(be, args)
    x = dict(zip((*NAMES, "depths"),
                 (np.asarray(v, np.float64) for v in (*values, be.to_numpy(depths)))))
    _, alpha, last, depth, _ = rasterize_fwd(*args, be, depths=depths)
    got = rasterize_bwd(*args, alpha, last, be.asarray(v_image, tag="loss"),
                        be.asarray(v_alpha, tag="loss"), be, depths=depths, depth=depth,
                        v_depth=be.asarray(v_depth, tag="loss"))

    def loss():
        image, alpha, _, depth, _ = ref.rasterize_fwd(ranges, ids, *splats(x), bg, width,
                                                      height, x["depths"])
        return (image * v_image).sum() + (alpha * v_alpha).sum() + (depth * v_depth).sum()

    for name in (*NAMES, "depths"):
        fd = finite_differences(loss, x[name])
        scale = max(np.abs(fd).max(), 1e-2)
        np.testing.assert_allclose(be.to_numpy(got[name]), fd, atol=2e-3 * scale, rtol=2e-3,
                                   err_msg=name)
    assert np.abs(be.to_numpy(got["depths"])).max() > 1e-2  # the test has teeth


def test_backward_depth_with_zero_v_depth_is_the_plain_backward(cpu, rng, random_scene,
                                                                 camera):
    """rasterize_bwd_depth with v_depth = 0 adds nothing to the plain kernel's gradients: the
    same bits on the CPU, and zero dL/dz."""
    args = inputs(cpu, rng, random_scene, camera(64, 48), 300)
    depths = with_depths(cpu, rng, args)
    _, alpha, last, depth, _ = rasterize_fwd(*args, cpu, depths=depths)
    v_image, v_alpha = cotangents(rng, *args[-2:])
    plain = rasterize_bwd(*args, alpha, last, v_image, v_alpha, cpu)
    zero = rasterize_bwd(*args, alpha, last, v_image, v_alpha, cpu, depths=depths, depth=depth,
                         v_depth=np.zeros_like(v_alpha))
    for name in NAMES:
        np.testing.assert_array_equal(zero[name], plain[name], err_msg=name)
    assert not zero["depths"].any()


def test_backward_depth_warp_sums_agree_with_direct_atomics(cpu, rng, random_scene, camera):
    """rasterize_bwd_depth's GPU variant (warp sums, through the shuffle emulation, and the
    skips) against the CPU one."""
    args = long_walk_inputs(cpu, rng, random_scene, camera)
    depths = with_depths(cpu, rng, args)
    _, alpha, last, depth, _ = rasterize_fwd(*args, cpu, depths=depths)
    v_image, v_alpha = cotangents(rng, *args[-2:])
    v_depth = rng.standard_normal(v_alpha.shape).astype(np.float32)
    kw = dict(depths=depths, depth=depth, v_depth=v_depth)
    direct = rasterize_bwd(*args, alpha, last, v_image, v_alpha, cpu, **kw)
    warp = rasterize_bwd(*args, alpha, last, v_image, v_alpha, cpu,
                         defines={"SPLAT_LION_WARP_SUM_ON_CPU": 1}, **kw)
    for name in direct:
        scale = np.abs(direct[name]).max()
        assert scale > 0, name
        np.testing.assert_allclose(warp[name], direct[name], rtol=1e-5, atol=1e-6 * scale,
                                   err_msg=name)


def test_depth_wrappers_check_their_arguments(cpu, rng, random_scene, camera):
    cam = camera(40, 24)
    args = inputs(cpu, rng, random_scene, cam, 20)
    depths = with_depths(cpu, rng, args)
    _, alpha, last, depth, _ = rasterize_fwd(*args, cpu, depths=depths)
    v_image, v_alpha = cotangents(rng, cam.width, cam.height)
    with pytest.raises(ValueError, match=r"depths: expected shape \[20\], got \[19\]"):
        rasterize_fwd(*args, cpu, depths=depths[:19].copy())
    with pytest.raises(ValueError, match="go together; depth missing"):
        rasterize_bwd(*args, alpha, last, v_image, v_alpha, cpu, depths=depths,
                      v_depth=v_alpha)
    with pytest.raises(TypeError, match="v_depth: expected dtype float32, got float64"):
        rasterize_bwd(*args, alpha, last, v_image, v_alpha, cpu, depths=depths, depth=depth,
                      v_depth=v_alpha.astype(np.float64))
