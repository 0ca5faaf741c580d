"""kernels/undistort.cu vs reference/undistort.py, COLMAP's choice of undistorted camera, and
the round trip pinhole render -> distorted capture -> undistorted image."""

from __future__ import annotations

import math

import numpy as np
import pytest

import splat_lion as sl
from splat_lion import undistort as ud
from splat_lion.cameras import Camera, Distortion
from splat_lion.reference import undistort as ref
from splat_lion.undistort import (distort_image, distort_map, remap, undistort_image,
                                  undistort_map, undistorted_camera)

pytestmark = pytest.mark.usefixtures("poisoned_outputs")

# (model, coefficients, horizontal field of view in degrees) of a distorted capture: the
# perspective models at 60° (a phone or a wide-angle lens), the fisheyes at 120°
LENSES = [
    ("SIMPLE_RADIAL", (-0.1,), 60),
    ("SIMPLE_RADIAL", (0.1,), 60),
    ("RADIAL", (-0.12, 0.03), 60),
    ("OPENCV", (-0.1, 0.02, 1e-3, -8e-4), 60),
    ("FULL_OPENCV", (-0.25, 0.06, 1e-3, -8e-4, -0.003, -0.15, 0.02, 0.001), 60),
    ("OPENCV_FISHEYE", (0.04, -0.01, 0.003, -0.0005), 120),
    ("SIMPLE_RADIAL_FISHEYE", (0.03,), 120),
    ("RADIAL_FISHEYE", (0.03, -0.005), 120),
]
LENS_IDS = [f"{m}{list(p)}" for m, p, _ in LENSES]
# lenses whose whole field a pinhole within MAX_SCALE keeps (the 120° fisheyes' corners,
# at ~75° from the axis, need tan 75° / 1.3 ≈ 2.9x: clamped)
UNCLAMPED = [lens for lens in LENSES if lens[2] <= 60]
UNCLAMPED_IDS = [f"{m}{list(p)}" for m, p, _ in UNCLAMPED]

EYE, TARGET = (3.0, -2.5, 1.5), (0.0, 0.0, 0.0)


def capture(model, params, fov_deg, width=128, height=96, cx=None, cy=None):
    """(camera, distortion): a distorted camera at EYE looking at TARGET whose horizontal
    field spans fov_deg (the rays at fov/2 from the axis land width/2 from the centre), its
    principal point at the image centre unless cx, cy are given."""
    d = Distortion(model, params)
    edge = d.distort([math.tan(math.radians(fov_deg) / 2), 0.0])[0]  # normalised
    base = Camera.look_at(EYE, TARGET, width=width, height=height)
    f = (width / 2) / edge
    cx, cy = width / 2 if cx is None else cx, height / 2 if cy is None else cy
    return Camera(np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]]), base.viewmat, width, height), d


# -- the remap kernel ------------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("src_size,dst_size", [((37, 53), (29, 41)), ((16, 16), (40, 7))])
def test_remap_matches_reference(be, rng, channels, src_size, dst_size):
    h, w = src_size
    image = rng.random((h, w, channels)).astype(np.float32)
    xy = np.stack([rng.uniform(-3, w + 3, dst_size), rng.uniform(-3, h + 3, dst_size)], -1)
    flat = xy.reshape(-1, 2)
    flat[:6] = [[0, 0], [w, h], [0, h], [w, 0], [np.nan, 1], [1, np.nan]]  # borders, no source
    flat[6:12, 0] = rng.integers(0, w, 6) + 0.5  # pixel centres
    xy = xy.astype(np.float32)
    out, valid = remap(be.asarray(image, tag="image"), be.asarray(xy, tag="scratch"), backend=be)
    want, want_valid = ref.remap(image, xy)
    assert out.shape == (*dst_size, channels) and out.dtype == np.float32
    assert valid.shape == dst_size and valid.dtype == np.bool_
    np.testing.assert_array_equal(be.to_numpy(valid), want_valid)
    assert want_valid.any() and not want_valid.all()
    np.testing.assert_allclose(be.to_numpy(out), want, rtol=0, atol=2e-6)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_remap_on_the_identity_map_is_bit_exact(be, rng, channels):
    h, w = 23, 31
    image = rng.random((h, w, channels)).astype(np.float32)
    y, x = np.mgrid[0:h, 0:w]
    xy = np.stack([x + 0.5, y + 0.5], axis=-1).astype(np.float32)
    out, valid = remap(be.asarray(image, tag="image"), be.asarray(xy, tag="scratch"), backend=be)
    np.testing.assert_array_equal(be.to_numpy(out), image)
    assert be.to_numpy(valid).all()


def test_remap_by_a_known_shift(be, rng):
    h, w = 12, 20
    image = rng.random((h, w, 3)).astype(np.float32)
    y, x = np.mgrid[0:h, 0:w]
    # a quarter pixel right: 3/4 of each pixel and 1/4 of its right neighbour; the last
    # column (u = W - 0.25, inside) samples its own centre, the nearest
    xy = np.stack([x + 0.75, y + 0.5], axis=-1).astype(np.float32)
    out, valid = remap(be.asarray(image, tag="image"), be.asarray(xy, tag="scratch"), backend=be)
    want = image.copy()
    want[:, :-1] = 0.75 * image[:, :-1] + 0.25 * image[:, 1:]
    np.testing.assert_allclose(be.to_numpy(out), want, rtol=0, atol=1e-6)
    assert be.to_numpy(valid).all()
    # a whole pixel down: row i reads row i + 1 exactly; the last row's u lies past H: invalid
    xy = np.stack([x + 0.5, y + 1.5], axis=-1).astype(np.float32)
    out, valid = (be.to_numpy(a) for a in remap(be.asarray(image, tag="image"),
                                                   be.asarray(xy, tag="scratch"), backend=be))
    np.testing.assert_array_equal(out[:-1], image[1:])
    np.testing.assert_array_equal(out[-1], 0.0)
    assert valid[:-1].all() and not valid[-1].any()


def test_remap_validity_is_the_closed_image_rectangle(be):
    image = np.arange(2 * 3, dtype=np.float32).reshape(2, 3, 1)  # H = 2, W = 3
    xy = np.array([[[0, 0], [3, 2], [0.2, 1.0], [3.0, 0.3],  # on the border: nearest centres
                    [-1e-3, 1], [3.001, 1], [1, 2.001], [np.inf, 1], [np.nan, np.nan]]],
                  np.float32)
    out, valid = (be.to_numpy(a) for a in remap(be.asarray(image, tag="image"),
                                                   be.asarray(xy, tag="scratch"), backend=be))
    np.testing.assert_array_equal(valid[0], [True] * 4 + [False] * 5)
    # (0.2, 1.0): row blend (0.5, 0.5) of column 0; (3.0, 0.3): row 0 of column 2
    np.testing.assert_allclose(out[0, :, 0], [0, 5, 1.5, 2, 0, 0, 0, 0, 0], atol=1e-6)


def test_remap_of_an_empty_map(be):
    image = np.zeros((4, 4, 3), np.float32)
    out, valid = remap(be.asarray(image, tag="image"),
                       be.asarray(np.zeros((0, 5, 2), np.float32), tag="scratch"), backend=be)
    assert out.shape == (0, 5, 3) and valid.shape == (0, 5)


def test_remap_checks_its_arrays(cpu):
    image = np.zeros((4, 5, 3), np.float32)
    xy = np.zeros((2, 2, 2), np.float32)
    with pytest.raises(TypeError, match="image: expected dtype float32, got float64"):
        remap(image.astype(np.float64), xy, backend=cpu)
    with pytest.raises(ValueError, match=r"image: expected shape \[\*, \*, \*\], got \[4, 5\]"):
        remap(image[..., 0], xy, backend=cpu)
    with pytest.raises(ValueError, match="image: must be C-contiguous"):
        remap(np.zeros((5, 4, 3), np.float32).transpose(1, 0, 2), xy, backend=cpu)
    with pytest.raises(ValueError, match=r"source_xy: expected shape \[\*, \*, 2\], got \[2, 2, 3"):
        remap(image, np.zeros((2, 2, 3), np.float32), backend=cpu)
    with pytest.raises(TypeError, match="source_xy: expected dtype float32"):
        remap(image, xy.astype(np.float64), backend=cpu)
    with pytest.raises(ValueError, match=r"H, W, C >= 1, got \[4, 5, 0\]"):
        remap(np.zeros((4, 5, 0), np.float32), xy, backend=cpu)


# -- the undistorted camera ------------------------------------------------------------
@pytest.mark.parametrize("model", ["PINHOLE", "SIMPLE_PINHOLE", "OPENCV"])
def test_zero_distortion_gives_back_the_camera(model):
    cam, _ = capture("PINHOLE", (), 60, cx=60.3, cy=50.1)
    d = Distortion(model, (0.0,) * (4 if model == "OPENCV" else 0))
    for keep_all in (False, True):
        out = undistorted_camera(cam, d, keep_all=keep_all)
        np.testing.assert_array_equal(out.K, cam.K)
        assert (out.width, out.height) == (cam.width, cam.height)
        # and the map is the identity: every pixel reads its own centre
        y, x = np.mgrid[0:cam.height, 0:cam.width] + 0.5
        np.testing.assert_array_equal(undistort_map(cam, d, out), np.stack([x, y], axis=-1))


@pytest.mark.parametrize("keep_all", [False, True])
@pytest.mark.parametrize("model,params,fov", LENSES, ids=LENS_IDS)
def test_undistorted_camera_keeps_focal_lengths_pose_and_depth_range(model, params, fov, keep_all):
    cam, d = capture(model, params, fov)
    cam = Camera(cam.K, cam.viewmat, cam.width, cam.height, near=0.2, far=50.0)
    out = undistorted_camera(cam, d, keep_all=keep_all)
    assert (out.fx, out.fy) == (cam.fx, cam.fy)
    np.testing.assert_array_equal(out.viewmat, cam.viewmat)
    assert (out.near, out.far) == (0.2, 50.0)
    # the principal point scales with the size, as COLMAP does
    assert out.cx == pytest.approx(cam.cx * out.width / cam.width)
    assert out.cy == pytest.approx(cam.cy * out.height / cam.height)
    assert ud.MIN_SCALE * cam.width - 1 <= out.width <= ud.MAX_SCALE * cam.width


@pytest.mark.parametrize("size", [(128, 96), (301, 199)])
@pytest.mark.parametrize("model,params,fov", LENSES, ids=LENS_IDS)
def test_no_border_mode_has_every_pixel_valid(model, params, fov, size):
    cam, d = capture(model, params, fov, *size, cx=size[0] * 0.48, cy=size[1] * 0.53)
    pinhole = undistorted_camera(cam, d)
    source = undistort_map(cam, d, pinhole)
    assert np.isfinite(source).all()
    # every pinhole pixel's ray lands inside the distorted image, pixel centres to spare
    assert source[..., 0].min() >= 0.5 and source[..., 0].max() <= cam.width - 0.5
    assert source[..., 1].min() >= 0.5 and source[..., 1].max() <= cam.height - 0.5


@pytest.mark.parametrize("model,params,fov", UNCLAMPED, ids=UNCLAMPED_IDS)
def test_keep_all_mode_keeps_every_distorted_pixel(model, params, fov):
    cam, d = capture(model, params, fov, 160, 120)
    pinhole = undistorted_camera(cam, d, keep_all=True)
    assert pinhole.width * pinhole.height >= undistorted_camera(cam, d).width * \
        undistorted_camera(cam, d).height
    # where every distorted pixel centre lands in the pinhole image
    y, x = np.mgrid[0:cam.height, 0:cam.width] + 0.5
    xy = d.undistort(np.stack([(x - cam.cx) / cam.fx, (y - cam.cy) / cam.fy], axis=-1))
    u, v = pinhole.fx * xy[..., 0] + pinhole.cx, pinhole.fy * xy[..., 1] + pinhole.cy
    # COLMAP sizes the image so the outermost centres land on its border, then truncates the
    # size (int(scale * W)), which can cost each side up to half a pixel: a centre may lie
    # that far outside, its pixel's area still reaching in
    assert u.min() >= -0.5 and u.max() <= pinhole.width + 0.5
    assert v.min() >= -0.5 and v.max() <= pinhole.height + 0.5
    # and the outermost do reach the border: the field is kept, not padded
    assert min(u.min(), pinhole.width - u.max()) < 1.0
    assert min(v.min(), pinhole.height - v.max()) < 1.0


def test_barrel_lenses_grow_the_image_and_pincushion_ones_shrink_it():
    barrel, d_barrel = capture("SIMPLE_RADIAL", (-0.1,), 60)
    pincushion, d_pin = capture("SIMPLE_RADIAL", (0.1,), 60)
    for keep_all in (False, True):
        assert undistorted_camera(barrel, d_barrel, keep_all=keep_all).width > barrel.width
        assert undistorted_camera(pincushion, d_pin, keep_all=keep_all).width < pincushion.width


def test_a_wide_fisheye_is_clamped_at_max_scale():
    # 170° across: the corners' rays pass 90°, no pinhole keeps them; COLMAP stops at 2x
    cam, d = capture("OPENCV_FISHEYE", (0.0,) * 4, 170)
    pinhole = undistorted_camera(cam, d, keep_all=True)
    assert (pinhole.width, pinhole.height) == (2 * cam.width, 2 * cam.height)
    no_border = undistorted_camera(cam, d)
    assert np.isfinite(undistort_map(cam, d, no_border)).all()


# -- images ----------------------------------------------------------------------------
def psnr(a, b, mask):
    mse = float(((a - b)[mask] ** 2).mean())
    return 10 * math.log10(1 / mse)


def round_trip(be, model, params, fov, reference_shift=0.0):
    """(PSNR in dB, fraction of pixels compared): render the shapes scene with a pinhole
    covering the distorted capture's field, distort it into the capture (distort_image),
    undistort it back (undistort_image) and compare with a render at the camera
    undistort_image returns (its principal point moved by reference_shift pixels), over the
    pixels whose bilinear taps all come from valid capture pixels."""
    g = sl.load_ply(sl.scenes.path("shapes"), backend=be)
    # 256 x 192: bilinear resampling twice costs ~31-33 dB at 128 x 96 on this scene by itself
    # (a half-pixel shift there and back), which hides nothing at 256 x 192 (36-38 dB)
    cam, d = capture(model, params, fov, 256, 192)
    wide = undistorted_camera(cam, d, keep_all=True)
    captured, captured_valid = distort_image(sl.render(g, wide).image, wide, cam, d, backend=be)
    pinhole, image, valid = undistort_image(captured, cam, d, backend=be)
    K = pinhole.K.copy()
    K[:2, 2] += reference_shift
    reference = sl.render(g, Camera(K, pinhole.viewmat, pinhole.width, pinhole.height)).image
    # the capture's outermost pixels may lie outside `wide` (a fisheye's clamped corners,
    # COLMAP's size truncation): keep only outputs that read none of them
    taps, _ = remap(be.xp.ascontiguousarray(captured_valid[..., None].astype(np.float32)),
                    be.asarray(undistort_map(cam, d, pinhole), tag="scratch"), backend=be)
    compared = be.to_numpy(valid) & (be.to_numpy(taps)[..., 0] == 1.0)
    return psnr(be.to_numpy(image), be.to_numpy(reference), compared), compared.mean()


@pytest.mark.parametrize("model,params,fov", LENSES, ids=LENS_IDS)
def test_round_trip_through_the_lens_matches_a_pinhole_render(be, model, params, fov):
    value, compared = round_trip(be, model, params, fov)
    print(f"{model} {params}: {value:.2f} dB over {compared:.1%} of the pixels")
    assert compared > 0.95
    assert value >= 35.0


def test_round_trip_bar_catches_a_half_pixel_error(cpu):
    # the same comparison against a render half a pixel off falls well below the bar
    value, _ = round_trip(cpu, "OPENCV", (-0.1, 0.02, 1e-3, -8e-4), 60, reference_shift=0.5)
    assert value < 32.0


def test_undistort_image_returns_a_valid_pinhole_image_on_the_backend(be, rng):
    cam, d = capture("OPENCV", (-0.1, 0.02, 1e-3, -8e-4), 60, 64, 48)
    image = rng.random((48, 64, 3)).astype(np.float32)
    pinhole, out, valid = undistort_image(image, cam, d, backend=be)
    assert isinstance(out, be.xp.ndarray) and isinstance(valid, be.xp.ndarray)
    assert out.shape == (pinhole.height, pinhole.width, 3) and out.dtype == np.float32
    assert be.to_numpy(valid).all()
    want, _ = ref.remap(image, undistort_map(cam, d, pinhole))
    np.testing.assert_allclose(be.to_numpy(out), want, atol=2e-6)
    # a float64 image is taken as well, and a zero distortion copies it bit for bit
    same, out, valid = undistort_image(image.astype(np.float64), cam, Distortion.none(), backend=be)
    np.testing.assert_array_equal(same.K, cam.K)
    np.testing.assert_array_equal(be.to_numpy(out), image)


def test_undistort_image_computes_a_shared_camera_map_once(cpu, rng):
    cam, d = capture("RADIAL", (-0.05, 0.01), 60, 40, 30)
    ud._cached_undistort_map.cache_clear()
    image = rng.random((30, 40, 3)).astype(np.float32)
    other_pose = Camera(cam.K, np.eye(4), cam.width, cam.height)  # another view, same camera
    first, a, _ = undistort_image(image, cam, d, backend=cpu)
    second, b, _ = undistort_image(image, other_pose, Distortion("RADIAL", (-0.05, 0.01)),
                                   backend=cpu)
    info = ud._cached_undistort_map.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    np.testing.assert_array_equal(first.K, second.K)
    np.testing.assert_array_equal(second.viewmat, np.eye(4))
    np.testing.assert_array_equal(first.viewmat, cam.viewmat)
    np.testing.assert_array_equal(a, b)
    # keep_all is another map
    undistort_image(image, cam, d, keep_all=True, backend=cpu)
    assert ud._cached_undistort_map.cache_info().misses == 2


def test_undistort_image_checks_its_inputs(cpu):
    cam, d = capture("SIMPLE_RADIAL", (0.05,), 60, 40, 30)
    with pytest.raises(ValueError, match=r"expected shape \[30, 40, C\].*got \[40, 30, 3\]"):
        undistort_image(np.zeros((40, 30, 3), np.float32), cam, d, backend=cpu)
    with pytest.raises(TypeError, match="float image.*uint8.*255"):
        undistort_image(np.zeros((30, 40, 3), np.uint8), cam, d, backend=cpu)
    with pytest.raises(TypeError, match="distortion: expected a cameras.Distortion"):
        undistort_image(np.zeros((30, 40, 3), np.float32), cam, "OPENCV", backend=cpu)
    with pytest.raises(TypeError, match="camera: expected a Camera"):
        undistorted_camera(cam.K, d)


def test_distort_image_valid_where_the_ray_lands_in_the_pinhole_image(be, rng):
    cam, d = capture("OPENCV_FISHEYE", (0.04, -0.01, 0.003, -0.0005), 120, 64, 48)
    pinhole = undistorted_camera(cam, d)  # the inner crop: the capture's rim falls outside
    image = rng.random((pinhole.height, pinhole.width, 2)).astype(np.float32)
    out, valid = distort_image(image, pinhole, cam, d, backend=be)
    source = distort_map(pinhole, cam, d)
    u, v = source[..., 0], source[..., 1]
    inside = (u >= 0) & (u <= pinhole.width) & (v >= 0) & (v <= pinhole.height)
    np.testing.assert_array_equal(be.to_numpy(valid), inside)
    assert inside.mean() > 0.5 and not inside.all()
    want, _ = ref.remap(image, source)
    np.testing.assert_allclose(be.to_numpy(out), want, atol=2e-6)


def test_maps_invert_each_other(rng):
    cam, d = capture("FULL_OPENCV", (-0.25, 0.06, 1e-3, -8e-4, -0.003, -0.15, 0.02, 0.001), 60)
    pinhole = undistorted_camera(cam, d)
    forward = undistort_map(cam, d, pinhole).astype(np.float64)  # pinhole pixel -> capture
    # the capture -> pinhole map, evaluated at those positions, comes back to the pixel centres
    xy = d.undistort(np.stack([(forward[..., 0] - cam.cx) / cam.fx,
                               (forward[..., 1] - cam.cy) / cam.fy], axis=-1))
    y, x = np.mgrid[0:pinhole.height, 0:pinhole.width] + 0.5
    np.testing.assert_allclose(pinhole.fx * xy[..., 0] + pinhole.cx, x, atol=1e-4)  # float32 map
    np.testing.assert_allclose(pinhole.fy * xy[..., 1] + pinhole.cy, y, atol=1e-4)


def test_pinhole_pixels_beyond_the_fold_get_no_source():
    # k1 = -0.3 folds at r = 1.054: a pinhole pixel further out would sample the image again
    cam, d = capture("SIMPLE_RADIAL", (-0.3,), 60, 64, 48)
    f = cam.fx / 4  # a pinhole with a 4x wider field, reaching r = 2.2 in its corners
    wide = Camera(np.array([[f, 0, 32], [0, f, 24], [0, 0, 1]]), cam.viewmat, 64, 48)
    source = undistort_map(cam, d, wide)
    y, x = np.mgrid[0:48, 0:64] + 0.5
    r = np.hypot(x - 32, y - 24) / f
    assert np.isnan(source[r >= d.fold]).all() and (r >= d.fold).any()
    assert np.isfinite(source[r < d.fold]).all()
