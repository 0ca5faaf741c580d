"""Fitting problems (splat_lion/problem.py): views, held-out split, starts, evaluation."""

from __future__ import annotations

import numpy as np
import pytest

import splat_lion as sl
from splat_lion.datasets import write_transforms
from splat_lion.errors import ConfigError
from splat_lion.frame import frame_of_splats
from splat_lion.problem import (ORBIT_RADIUS, ProblemConfig, load_problem, random_start,
                                source_digest)


@pytest.fixture(scope="module")
def cpu_be():
    return sl.get_backend("cpu")


def test_a_scene_gives_orbit_views_with_every_fifth_held_out(cpu_be):
    p = load_problem("planet", ProblemConfig(resolution=24, views=10), backend=cpu_be)
    assert len(p.train_cameras) == 8 and len(p.test_cameras) == 2 and p.size == (24, 24)
    ref = sl.load_ply(sl.scenes.path("planet"), backend=cpu_be)
    frame = frame_of_splats(ref)
    for cam in p.train_cameras + p.test_cameras:  # around the splats' centre
        assert np.linalg.norm(cam.position - frame.center) == pytest.approx(
            ORBIT_RADIUS * frame.radius, rel=1e-6)
    # the targets are renders of the scene itself
    np.testing.assert_array_equal(p.test_images[1], sl.render(ref, p.test_cameras[1]).image)
    assert p.image_bytes == 10 * 24 * 24 * 3 * 4
    assert p.context == {"source": str(sl.scenes.path("planet")), "resolution": 24,
                         "views": 10, "init": "perturbed", "orbit_radius": ORBIT_RADIUS,
                         "source_digest": source_digest(sl.scenes.path("planet"))}
    assert not p.from_points and p.evaluated_on == "held-out views"


@pytest.mark.parametrize("init,from_points", [("perturbed", False), ("points", True),
                                              ("random", True), ("scene", False)])
def test_each_start_of_a_scene(cpu_be, init, from_points):
    p = load_problem("shapes", ProblemConfig(resolution=16, views=5, init=init, init_points=40),
                     backend=cpu_be)
    ref = sl.load_ply(sl.scenes.path("shapes"), backend=cpu_be)
    assert p.from_points == from_points and p.start.sh_degree == ref.sh_degree
    assert p.start.count == (40 if init == "random" else ref.count)
    same = np.array_equal(p.start.params.data, ref.params.data)
    assert same == (init == "scene")


def test_evaluate_scores_the_held_out_views_and_the_scene_beats_its_perturbation(cpu_be):
    p = load_problem("knot", ProblemConfig(resolution=24, views=5), backend=cpu_be)
    perturbed = p.evaluate(p.start)
    exact = load_problem("knot", ProblemConfig(resolution=24, views=5, init="scene"),
                         backend=cpu_be)
    # renders of the scene itself equal the targets: PSNR infinite, SSIM 1
    scene = exact.evaluate(exact.start)
    assert scene.ssim == pytest.approx(1.0) and scene.psnr > perturbed.psnr + 10
    assert np.isfinite(perturbed.psnr) and 0 < perturbed.ssim < 1
    assert len(perturbed.images) == 1 and perturbed.on == "held-out views"


def test_fresh_start_is_a_copy(cpu_be):
    p = load_problem("planet", ProblemConfig(resolution=16, views=5), backend=cpu_be)
    g = p.fresh_start()
    g.means[...] += 1
    assert not np.array_equal(g.params.data, p.start.params.data)


def test_test_every_zero_scores_the_training_views(cpu_be):
    p = load_problem("planet", ProblemConfig(resolution=16, views=6, test_every=0),
                     backend=cpu_be)
    assert len(p.train_cameras) == 6 and not p.test_cameras
    assert p.evaluated_on == "training views" and p.eval_views()[0] is p.train_cameras


def test_a_capture_without_points_starts_random_near_its_cameras(cpu_be, tmp_path):
    ref = sl.load_ply(sl.scenes.path("shapes"), backend=cpu_be)
    cams = sl.orbit_cameras(radius=4.0, n=4, width=16, height=12)
    write_transforms(tmp_path, cams, [np.asarray(sl.render(ref, c).image) for c in cams])
    p = load_problem(tmp_path, ProblemConfig(init_points=64, sh_degree=1, test_every=2),
                     backend=cpu_be)
    assert len(p.train_cameras) == 2 and len(p.test_cameras) == 2 and p.from_points
    assert p.start.count == 64 and p.start.sh_degree == 1
    # a cube of the frame's radius around the point the cameras look at (the origin here)
    assert p.frame.source == "cameras" and np.abs(p.frame.center).max() < 1e-9
    assert np.abs(np.asarray(p.start.means) - p.frame.center).max() <= p.frame.radius + 1e-5
    with pytest.raises(ValueError, match="has no points; use --init random"):
        load_problem(tmp_path, ProblemConfig(init="points"), backend=cpu_be)
    with pytest.raises(ValueError, match="--init perturbed needs a PLY scene"):
        load_problem(tmp_path, ProblemConfig(init="perturbed"), backend=cpu_be)


def test_random_start_fills_its_box(rng):
    lo, hi = np.array([-2.0, 0.0, 1.0]), np.array([3.0, 0.5, 4.0])
    g = random_start(lo, hi, 500, 0, rng, sl.get_backend("cpu"))
    m = np.asarray(g.means)
    assert g.count == 500 and (m >= lo - 1e-6).all() and (m <= hi + 1e-6).all()
    assert (m.max(0) - m.min(0) > 0.9 * (hi - lo)).all()  # filled, not bunched


@pytest.mark.parametrize("kwargs,match", [
    ({"views": 0}, r"views must be an int in \[2, 100000\], got 0"),
    ({"views": 1}, r"views must be an int in \[2, 100000\], got 1"),
    ({"init": "cloud"}, "init must be one of perturbed, points, random, scene"),
    ({"test_every": 1}, "test_every must be None, 0"),
    ({"sh_degree": 4}, "sh_degree must be 0, 1, 2 or 3"),
    ({"resolution": 0}, r"resolution must be None or an int in \[1, 16384\], got 0"),
    ({"resolution": -64}, r"resolution must be None or an int in \[1, 16384\], got -64"),
    ({"resolution": 100_000}, r"resolution must be None or an int in \[1, 16384\]"),
    ({"downscale": 0}, r"downscale must be an int in \[1, 64\], got 0"),
    ({"distance": 0.0}, r"distance must be None or a number in \(0, "),
    ({"seed": -1}, r"seed must be an int in \[0, "),
    ({"init_points": 10**9}, r"init_points must be an int in \[1, 50000000\]"),
    ({"up": (0, 0, 0)}, "up must not be 0,0,0"),
    ({"center": (0, np.nan, 0)}, "center must be None or 3 finite numbers"),
])
def test_bad_problem_configs_are_clear_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ProblemConfig(**kwargs)


def test_bad_sources_are_clear_errors(tmp_path, cpu_be):
    with pytest.raises(ValueError, match="no such file or folder"):
        load_problem(tmp_path / "missing.ply", backend=cpu_be)
    with pytest.raises(ValueError, match="neither a transforms.json capture nor a COLMAP"):
        load_problem(tmp_path, backend=cpu_be)
    with pytest.raises(ValueError, match="no bundled scene 'garden'"):
        load_problem("garden", backend=cpu_be)


def test_the_source_digest_follows_the_content(tmp_path):
    scene = tmp_path / "a.ply"
    scene.write_bytes(b"ply one")
    first = source_digest(scene)
    assert source_digest(scene) == first and len(first) == 16
    scene.write_bytes(b"ply two")
    assert source_digest(scene) != first
    (tmp_path / "cap").mkdir()
    (tmp_path / "cap" / "transforms.json").write_text("{}")
    (tmp_path / "cap" / "0.png").write_bytes(b"12345")
    folder = source_digest(tmp_path / "cap")
    (tmp_path / "cap" / "0.png").write_bytes(b"123456")  # an image's size counts
    assert source_digest(tmp_path / "cap") != folder
