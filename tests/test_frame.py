"""The scene frame (splat_lion/frame.py): where a capture's cameras look, where a PLY's
splats are, and orbits and starts that follow it."""

from __future__ import annotations

import numpy as np
import pytest

import splat_lion as sl
from splat_lion.frame import SceneFrame, frame_of_cameras, frame_of_splats, weighted_percentile
from splat_lion.problem import ProblemConfig, load_problem


def test_cameras_around_an_object_find_its_centre_radius_and_up(rng):
    target = np.array([3.0, -7.0, 12.0])
    up = np.array([0.0, 1.0, 0.0])
    cams = sl.orbit_cameras(center=target, radius=5.0, n=9, width=64, height=48,
                            elevation_deg=30, fov_x_deg=50, up=up)
    frame = frame_of_cameras(cams)
    np.testing.assert_allclose(frame.center, target, atol=1e-9)
    np.testing.assert_allclose(frame.up, up, atol=1e-9)
    half_fov_y = np.arctan2(24, cams[0].fy)  # the narrower half field of view
    assert frame.radius == pytest.approx(5.0 * np.tan(half_fov_y), rel=1e-9)


def test_a_forward_facing_capture_centres_in_front_of_its_cameras():
    cams = [sl.Camera.look_at((x, 0.0, 0.0), (x, 10.0, 0.0), width=32, height=32)
            for x in np.linspace(-1, 1, 5)]
    frame = frame_of_cameras(cams)
    assert frame.center[1] > 0.5 and abs(frame.center[0]) < 1e-9  # in front, on the axis


def test_splats_far_from_the_origin_give_their_own_centre(rng):
    ref = sl.load_ply(sl.scenes.path("knot"), backend=sl.get_backend("cpu"))
    moved = ref.to("cpu")
    offset = np.array([120.0, -40.0, 35.0], np.float32)
    moved.means[...] += offset
    f0, f1 = frame_of_splats(ref), frame_of_splats(moved)
    np.testing.assert_allclose(f1.center - f0.center, offset, atol=1e-3)
    assert f1.radius == pytest.approx(f0.radius, rel=1e-3)
    assert 0.5 * ref.extent() < f0.radius < 2 * ref.extent()


def test_transparent_stray_splats_do_not_move_the_frame():
    ref = sl.load_ply(sl.scenes.path("planet"), backend=sl.get_backend("cpu"))
    n = ref.count
    stray = sl.Gaussians.from_arrays(
        np.concatenate([np.asarray(ref.means), np.full((n // 2, 3), 500.0)]),
        np.concatenate([np.asarray(ref.scales), np.zeros((n // 2, 3))]),
        np.concatenate([np.asarray(ref.quats), np.tile([1.0, 0, 0, 0], (n // 2, 1))]),
        np.concatenate([np.asarray(ref.opacities), np.full(n // 2, -20.0)]),  # transparent
        np.concatenate([np.asarray(ref.sh0), np.zeros((n // 2, 1, 3))]),
        backend=sl.get_backend("cpu"))
    f0, f1 = frame_of_splats(ref), frame_of_splats(stray)
    np.testing.assert_allclose(f1.center, f0.center, atol=0.05)
    assert f1.radius == pytest.approx(f0.radius, rel=0.05)


def test_weighted_percentile():
    v = np.array([5.0, 1.0, 3.0, 2.0])
    assert weighted_percentile(v, np.ones(4), 50) == 2.0
    assert weighted_percentile(v, np.array([0.0, 0.0, 0.0, 1.0]), 99) == 2.0
    assert weighted_percentile(v, np.ones(4), 100) == 5.0


def test_a_ply_far_from_the_origin_is_in_every_orbit_view(tmp_path):
    """The orbit circles the splats' centre, not the origin: every view sees the scene."""
    ref = sl.load_ply(sl.scenes.path("shapes"), backend=sl.get_backend("cpu"))
    ref.means[...] += np.array([250.0, 80.0, -30.0], np.float32)
    path = sl.save_ply(ref, tmp_path / "far.ply")
    p = load_problem(path, ProblemConfig(resolution=24, views=5, init="scene"),
                     backend=sl.get_backend("cpu"))
    for image in p.train_images + p.test_images:
        assert np.asarray(image).max() > 0.2  # something rendered, not the black background
    assert p.evaluate(p.start).psnr == np.inf  # the scene reproduces its own views


def test_center_and_up_overrides_move_the_orbit():
    cfg = ProblemConfig(resolution=16, views=4, init="scene", center=(1.0, 2.0, 3.0),
                        up=(0.0, 1.0, 0.0), distance=7.0)
    p = load_problem("planet", cfg, backend=sl.get_backend("cpu"))
    assert p.frame.source == "given"
    for cam in p.train_cameras + p.test_cameras:
        assert np.linalg.norm(cam.position - [1.0, 2.0, 3.0]) == pytest.approx(7.0)
    assert p.context["center"] == [1.0, 2.0, 3.0] and p.context["distance"] == 7.0


@pytest.mark.parametrize("kwargs,match", [
    ({"center": [0, 0, np.nan], "radius": 1.0, "up": [0, 0, 1]}, "center: expected 3 finite"),
    ({"center": [0, 0, 0], "radius": 0.0, "up": [0, 0, 1]}, "radius must be"),
    ({"center": [0, 0, 0], "radius": 1.0, "up": [0, 0, 0]}, "up: expected a nonzero"),
])
def test_bad_frames_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SceneFrame(**kwargs)
