"""cameras.Distortion: COLMAP's camera models, their formulas, the inverse, the checks; Camera
and look_at refuse non-finite or impossible inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from splat_lion.cameras import CAMERA_MODELS, Camera, Distortion

# Typical coefficients of real lenses, per model (several for some): phone cameras
# (SIMPLE_RADIAL k1 = -0.1..0.1), a wide-angle OpenCV calibration with a little tangential
# distortion, a rational FULL_OPENCV one, and GoPro-like fisheyes.
TYPICAL = [
    ("SIMPLE_PINHOLE", ()),
    ("PINHOLE", ()),
    ("SIMPLE_RADIAL", (-0.1,)),
    ("SIMPLE_RADIAL", (0.1,)),
    ("RADIAL", (-0.12, 0.03)),
    ("OPENCV", (-0.1, 0.02, 1e-3, -8e-4)),
    ("OPENCV", (0.05, -0.01, -2e-3, 1.5e-3)),
    ("FULL_OPENCV", (-0.25, 0.06, 1e-3, -8e-4, -0.003, -0.15, 0.02, 0.001)),
    ("OPENCV_FISHEYE", (0.04, -0.01, 0.003, -0.0005)),
    ("OPENCV_FISHEYE", (-0.02, 0.004, -0.001, 0.0002)),
    ("SIMPLE_RADIAL_FISHEYE", (0.03,)),
    ("RADIAL_FISHEYE", (0.03, -0.005)),
]
IDS = [f"{m}{list(p)}" for m, p in TYPICAL]

# the field of view the round trips cover: pinhole radius tan(half angle)
PERSPECTIVE_HALF_FOV = math.radians(50)  # r <= 1.19: a 100° field, beyond phone cameras
FISHEYE_HALF_FOV = math.radians(80)  # a 160° field (the brief asks for 120° at least)


def pinhole_points(rng, distortion, n=4000):
    """[n, 2] pinhole coordinates spread over the model's field of view, its edge included."""
    half = FISHEYE_HALF_FOV if distortion.fisheye else PERSPECTIVE_HALF_FOV
    theta = half * np.sqrt(rng.random(n))
    theta[:8] = half  # the edge itself
    theta[8] = 0.0  # and the centre
    phi = rng.uniform(0, 2 * np.pi, n)
    return np.tan(theta)[:, None] * np.stack([np.cos(phi), np.sin(phi)], axis=-1)


def test_every_colmap_model_names_its_coefficients():
    assert CAMERA_MODELS == {
        "SIMPLE_PINHOLE": (), "PINHOLE": (), "SIMPLE_RADIAL": ("k1",), "RADIAL": ("k1", "k2"),
        "OPENCV": ("k1", "k2", "p1", "p2"),
        "FULL_OPENCV": ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6"),
        "OPENCV_FISHEYE": ("k1", "k2", "k3", "k4"), "SIMPLE_RADIAL_FISHEYE": ("k1",),
        "RADIAL_FISHEYE": ("k1", "k2"),
    }


def test_typical_cases_cover_every_model():
    assert {m for m, _ in TYPICAL} == set(CAMERA_MODELS)


@pytest.mark.parametrize("model,params", TYPICAL, ids=IDS)
def test_undistort_inverts_distort(rng, model, params):
    d = Distortion(model, params)
    xy = pinhole_points(rng, d)
    np.testing.assert_allclose(d.undistort(d.distort(xy)), xy, rtol=0, atol=1e-8)


@pytest.mark.parametrize("model,params", TYPICAL, ids=IDS)
def test_distort_inverts_undistort(rng, model, params):
    d = Distortion(model, params)
    xy_d = d.distort(pinhole_points(rng, d))  # distorted points over the same field
    back = d.undistort(xy_d)
    assert np.isfinite(back).all()
    np.testing.assert_allclose(d.distort(back), xy_d, rtol=0, atol=1e-8)


@pytest.mark.parametrize("model,params", TYPICAL, ids=IDS)
def test_maps_keep_the_shape_and_give_float64(model, params):
    d = Distortion(model, params)
    xy = np.full((3, 5, 2), 0.25, np.float32)
    for out in (d.distort(xy), d.undistort(xy)):
        assert out.shape == (3, 5, 2) and out.dtype == np.float64
    assert d.distort([0.1, -0.2]).shape == (2,)


def test_the_centre_stays_put():
    for model, params in TYPICAL:
        d = Distortion(model, params)
        np.testing.assert_array_equal(d.distort([0.0, 0.0]), [0.0, 0.0])
        np.testing.assert_array_equal(d.undistort([0.0, 0.0]), [0.0, 0.0])


def test_opencv_matches_the_formula_worked_by_hand():
    # (x, y) = (0.3, -0.2): r² = 0.13, radial = 1 + 0.1 r² + 0.01 r⁴ = 1.013169,
    # x_d = 0.3 radial + 2 p1 x y + p2 (r² + 2 x²) = 0.3039507 - 0.00012 + 0.00062
    # y_d = -0.2 radial + 2 p2 x y + p1 (r² + 2 y²) = -0.2026338 - 0.00024 + 0.00021
    d = Distortion("OPENCV", (0.1, 0.01, 0.001, 0.002))
    np.testing.assert_allclose(d.distort([0.3, -0.2]), [0.3044507, -0.2026638], atol=1e-12)


def test_full_opencv_divides_by_its_rational_denominator():
    # r² = 0.25: (1 + 0.2 r² + 0.1 r⁴ + 0.05 r⁶) / (1 + 0.4 r² + 0.3 r⁴ + 0.2 r⁶)
    num = 1 + 0.2 * 0.25 + 0.1 * 0.25**2 + 0.05 * 0.25**3
    den = 1 + 0.4 * 0.25 + 0.3 * 0.25**2 + 0.2 * 0.25**3
    d = Distortion("FULL_OPENCV", (0.2, 0.1, 0.0, 0.0, 0.05, 0.4, 0.3, 0.2))
    np.testing.assert_allclose(d.distort([0.5, 0.0]), [0.5 * num / den, 0.0], atol=1e-15)
    # with the same tangential terms, FULL_OPENCV with k3..k6 = 0 is OPENCV
    opencv = Distortion("OPENCV", (0.2, 0.1, 1e-3, -2e-3))
    full = Distortion("FULL_OPENCV", (0.2, 0.1, 1e-3, -2e-3, 0, 0, 0, 0))
    xy = np.array([[0.3, -0.4], [-0.7, 0.1]])
    np.testing.assert_allclose(full.distort(xy), opencv.distort(xy), atol=1e-15)


@pytest.mark.parametrize("model,params", [("SIMPLE_RADIAL", (0.07,)), ("RADIAL", (0.07, 0.0)),
                                          ("OPENCV", (0.07, 0.0, 0.0, 0.0))])
def test_radial_models_agree_on_one_coefficient(model, params):
    xy = np.array([[0.3, -0.4], [-0.7, 0.1]])
    r2 = (xy ** 2).sum(-1, keepdims=True)
    np.testing.assert_allclose(Distortion(model, params).distort(xy), xy * (1 + 0.07 * r2),
                               atol=1e-15)


def test_fisheye_is_equidistant():
    # zero coefficients: a ray at θ from the axis lands θ from the centre
    theta = np.radians([0.0, 10.0, 45.0, 60.0, 85.0])
    xy = np.stack([np.tan(theta), np.zeros_like(theta)], axis=-1)
    for model in ("OPENCV_FISHEYE", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE"):
        d = Distortion(model, (0.0,) * len(CAMERA_MODELS[model]))
        np.testing.assert_allclose(d.distort(xy)[:, 0], theta, atol=1e-15)
        assert not d.is_zero


def test_fisheye_polynomial_is_in_theta():
    # θ_d = θ (1 + k1 θ² + k2 θ⁴ + k3 θ⁶ + k4 θ⁸), along a diagonal direction
    k = (0.04, -0.01, 0.003, -0.0005)
    theta = math.radians(60)
    theta_d = theta * (1 + k[0] * theta**2 + k[1] * theta**4 + k[2] * theta**6 + k[3] * theta**8)
    direction = np.array([0.6, 0.8])
    got = Distortion("OPENCV_FISHEYE", k).distort(math.tan(theta) * direction)
    np.testing.assert_allclose(got, theta_d * direction, atol=1e-15)
    got = Distortion("RADIAL_FISHEYE", k[:2]).distort(math.tan(theta) * direction)
    np.testing.assert_allclose(got, theta * (1 + k[0] * theta**2 + k[1] * theta**4) * direction,
                               atol=1e-15)


def test_fisheye_rays_at_90_degrees_or_more_have_no_pinhole_coordinates():
    d = Distortion("OPENCV_FISHEYE", (0.0, 0.0, 0.0, 0.0))
    out = d.undistort([[math.pi / 2 + 1e-3, 0.0], [2.0, 1.0], [1.0, 0.0]])
    assert np.isnan(out[:2]).all()
    np.testing.assert_allclose(out[2], [math.tan(1.0), 0.0], atol=1e-12)


@pytest.mark.parametrize("model,params", [("SIMPLE_RADIAL", (-0.3,)), ("RADIAL", (-0.3, 0.02))])
def test_points_beyond_the_fold_have_no_inverse(model, params):
    # x (1 - 0.3 x²) peaks at x = 1/sqrt(0.9), value 0.703: a distorted 0.8 has no preimage on
    # the first branch (its cubic's real root is at x = -2.14, through the centre); with
    # k2 = 0.02 the map turns where 1 - 0.9 r² + 0.1 r⁴ = 0 (r_d 0.734) and rises again later
    d = Distortion(model, params)
    fold = (1 / math.sqrt(0.9) if model == "SIMPLE_RADIAL"
            else math.sqrt((0.9 - math.sqrt(0.41)) / 0.2))
    assert d.fold == pytest.approx(fold, rel=1e-9)
    out = d.undistort([[0.8, 0.0], [0.0, -0.8], [0.5, 0.0]])
    assert np.isnan(out[:2]).all()
    assert np.isfinite(out[2]).all() and abs(out[2, 0]) < fold


def test_first_branch_is_what_undistort_can_return(rng):
    d = Distortion("SIMPLE_RADIAL", (-0.3,))
    np.testing.assert_array_equal(d.first_branch([[0.5, 0.0], [0.0, -1.0], [1.2, 0.0],
                                                  [-2.14, 0.0]]), [True, True, False, False])
    fisheye = Distortion("OPENCV_FISHEYE", (0.0,) * 4)
    np.testing.assert_array_equal(fisheye.first_branch([[1e3, 0.0], [np.inf, 0.0]]), [True, False])
    # every point undistort returns is on it, for every typical lens
    for model, params in TYPICAL:
        lens = Distortion(model, params)
        xy = lens.undistort(lens.distort(pinhole_points(rng, lens, 500)))
        assert lens.first_branch(xy).all()


def test_fold_of_lenses_that_never_fold():
    assert Distortion("SIMPLE_RADIAL", (0.1,)).fold == math.inf
    assert Distortion.none().fold == math.inf
    assert Distortion("OPENCV_FISHEYE", (0.0,) * 4).fold == pytest.approx(math.pi / 2)
    # θ (1 - 0.3 θ²) turns at θ = 1/sqrt(0.9) rad, before 90°
    assert Distortion("SIMPLE_RADIAL_FISHEYE", (-0.3,)).fold == pytest.approx(1 / math.sqrt(0.9))


@pytest.mark.parametrize("model", ["SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "OPENCV",
                                   "FULL_OPENCV"])
def test_zero_coefficients_are_no_distortion(rng, model):
    d = Distortion(model, (0.0,) * len(CAMERA_MODELS[model]))
    assert d.is_zero and not d.fisheye
    xy = rng.uniform(-2, 2, (50, 2))
    np.testing.assert_array_equal(d.distort(xy), xy)
    np.testing.assert_array_equal(d.undistort(xy), xy)


def test_none_is_a_pinhole():
    d = Distortion.none()
    assert (d.model, d.params, d.is_zero, d.fisheye) == ("PINHOLE", (), True, False)
    assert Distortion() == d


def test_fisheye_flags():
    assert [m for m in CAMERA_MODELS if Distortion(m, (0.0,) * len(CAMERA_MODELS[m])).fisheye] == [
        "OPENCV_FISHEYE", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE"]
    assert not Distortion("SIMPLE_RADIAL", (0.1,)).is_zero


def test_equal_distortions_hash_alike():
    # undistort.py caches maps by distortion: equal values must be one key
    a = Distortion("RADIAL", [0.1, 0])
    b = Distortion("RADIAL", (np.float64(0.1), 0.0))
    assert a == b and hash(a) == hash(b) and a.params == (0.1, 0.0)
    assert Distortion("RADIAL", (0.1, 0.01)) != a


def test_coefficient_reads_by_name():
    d = Distortion("OPENCV", (0.1, 0.2, 0.3, 0.4))
    assert (d.coefficient("k1"), d.coefficient("p2"), d.coefficient("k3")) == (0.1, 0.4, 0.0)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown camera model 'THIN_PRISM_FISHEYE'.*"
                                         "SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL"):
        Distortion("THIN_PRISM_FISHEYE", ())


def test_wrong_number_of_params_names_them():
    with pytest.raises(ValueError, match=r"OPENCV\): expected 4 params \(k1, k2, p1, p2\), got 3"):
        Distortion("OPENCV", (0.1, 0.0, 0.0))
    with pytest.raises(ValueError, match=r"expected 0 params \(none\), got 1"):
        Distortion("PINHOLE", (0.1,))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_params_are_refused(bad):
    with pytest.raises(ValueError, match=r"params must be finite, got k2="):
        Distortion("RADIAL", (0.1, bad))


def test_params_must_be_numbers():
    with pytest.raises(TypeError, match="must be numbers"):
        Distortion("SIMPLE_RADIAL", ("a lot",))
    with pytest.raises(TypeError, match="sequence of 1 numbers"):
        Distortion("SIMPLE_RADIAL", 0.1)


def test_points_must_be_pairs():
    with pytest.raises(ValueError, match=r"xy: expected shape \[\.\.\., 2\].*got \[4, 3\]"):
        Distortion("SIMPLE_RADIAL", (0.1,)).distort(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="xy_d: expected shape"):
        Distortion("SIMPLE_RADIAL", (0.1,)).undistort(np.zeros(3))


# -- Camera refuses what no capture can mean ----------------------------------------------------

@pytest.mark.parametrize("where, value", [((0, 0), math.nan), ((1, 1), math.inf),
                                          ((0, 2), math.nan), ((1, 2), -math.inf)],
                         ids=["fx", "fy", "cx", "cy"])
def test_camera_refuses_non_finite_intrinsics(where, value):
    K = np.array([[50.0, 0, 16], [0, 50, 16], [0, 0, 1]])
    K[where] = value
    with pytest.raises(ValueError, match=r"K: intrinsics must be finite, got fx="):
        Camera(K, np.eye(4), 32, 32)


@pytest.mark.parametrize("kwargs, match", [
    ({"fov_x_deg": 0}, r"fov_x_deg must be in \(0, 180\) degrees"),
    ({"fov_x_deg": 180}, r"fov_x_deg must be in \(0, 180\) degrees"),
    ({"fov_x_deg": math.nan}, r"fov_x_deg must be in \(0, 180\) degrees"),
    ({"eye": (0, 0, 0)}, r"eye and target are the same point"),
    ({"eye": (math.nan, 1, 1)}, r"eye must be 3 finite numbers"),
    ({"target": (0, 0)}, r"target must be 3 finite numbers"),
], ids=["fov-0", "fov-180", "fov-nan", "eye-at-target", "eye-nan", "target-2d"])
def test_look_at_refuses_what_no_camera_can_be(kwargs, match):
    args = {"eye": (3, 0, 1), "target": (0, 0, 0), **kwargs}
    with pytest.raises(ValueError, match=match):
        Camera.look_at(args.pop("eye"), args.pop("target"), width=32, height=32, **args)
