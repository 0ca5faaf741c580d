"""The capture suite (benchmarks/capture_suite.py) writes captures that behave like real ones:
the same bytes every time, loadable, with close-ups that see part of the scene, a backdrop
behind everything and an SfM-like point cloud; a folder made once is reused."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import splat_lion as sl
from splat_lion.datasets import load_dataset

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import capture_suite as cs

SIZE, VIEWS = 32, 10  # small captures: 32x24 pixels, 8 views to train on, 2 held out


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """name -> its capture folder, made once for the module."""
    root = tmp_path_factory.mktemp("suite")
    return {name: cs.make_capture(name, root, size=SIZE, views=VIEWS) for name in cs.SUITE}


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_suite_has_three_scenes_of_tens_of_thousands_of_splats():
    assert len(cs.SUITE) >= 3
    for name in cs.SUITE:
        s = cs.scene(name)
        assert 20_000 <= s.count <= 80_000, (name, s.count)
        assert 1000 <= s.subject.sum() < s.count


def test_a_default_capture_has_50_or_more_views_with_close_ups():
    for name in cs.SUITE:
        kinds = [k for k, _ in cs.rig(name)]
        assert len(kinds) >= 50 and kinds.count("close") == len(kinds) // cs.CLOSE_EVERY


@pytest.mark.parametrize("name", cs.SUITE)
def test_generation_is_deterministic(made, name, tmp_path):
    again = cs.make_capture(name, tmp_path, size=SIZE, views=VIEWS)
    first, second = files(made[name]), files(again)
    assert len(first) == VIEWS + 4  # images, cameras, images, points3D, suite.json
    assert first == second


@pytest.mark.parametrize("name", cs.SUITE)
def test_the_capture_loads_with_its_train_and_held_out_views(made, name):
    be = sl.get_backend("cpu")
    problem = sl.load_problem(made[name], sl.ProblemConfig(sh_degree=0), backend=be)
    assert (len(problem.train_cameras), len(problem.test_cameras)) == (8, 2)  # test_every 8
    assert problem.size == (SIZE, SIZE * 3 // 4)
    assert problem.start.count == cs.POINTS  # a start from points3D
    info = cs.describe(made[name])
    assert (info["train"], info["held_out"], info["splats"]) == (8, 2, cs.scene(name).count)
    random = sl.load_problem(made[name], sl.ProblemConfig(init="random", init_points=500,
                                                          sh_degree=0), backend=be)
    assert random.start.count == 500


@pytest.mark.parametrize("name", cs.SUITE)
def test_close_views_see_part_of_the_subject_and_arcs_all_of_it(made, name):
    info = cs.describe(made[name])  # per view, the share of the subject's splats in it
    seen = {k: [f for kind, f in zip(info["kinds"], info["subject_seen"]) if kind == k]
            for k in ("arc", "close")}
    assert max(seen["close"]) < 0.75 and np.mean(seen["close"]) < 0.6, seen["close"]
    assert min(seen["arc"]) > 0.9, seen["arc"]
    be = sl.get_backend("cpu")  # the record tells the truth: a close view and an arc's
    s = cs.scene(name)
    g = s.gaussians(be)
    for i in (info["kinds"].index("close"), info["kinds"].index("arc")):
        visible = be.to_numpy(sl.render(g, cs.rig(name, SIZE, VIEWS)[i][1]).visible)
        assert visible[s.subject].mean() == pytest.approx(info["subject_seen"][i], abs=1e-4)


@pytest.mark.parametrize("name", cs.SUITE)
def test_the_backdrop_covers_every_pixel(made, name):
    be = sl.get_backend("cpu")
    g = cs.scene(name).gaussians(be)
    for _, cam in cs.rig(name, SIZE, VIEWS)[3:6]:  # arcs and a close-up
        assert be.to_numpy(sl.render(g, cam).alpha).min() > 0.95
    for image in sorted((made[name] / "images").glob("*.png")):
        pixels = np.asarray(Image.open(image))  # [H, W, 3] uint8, rendered on black
        assert (pixels.max(axis=2) > 8).all(), f"{image.name}: the black background shows"


@pytest.mark.parametrize("name", cs.SUITE)
def test_points3d_holds_the_promised_points_near_the_true_centres(made, name):
    from scipy.spatial import cKDTree

    ds = load_dataset(made[name])
    assert ds.points.shape == (cs.POINTS, 3) and ds.point_colors.shape == (cs.POINTS, 3)
    s = cs.scene(name)
    gap, nearest = cKDTree(s.means).query(ds.points)  # [P] to the nearest true centre
    near = gap < 3 * np.exp(s.scales[nearest]).max(axis=1)  # within its noise
    assert 0.9 <= near.mean() < 1.0, near.mean()  # noisy, with a few stray points
    assert len(np.unique(ds.points, axis=0)) > 0.9 * cs.POINTS


def test_a_capture_is_reused_and_other_settings_make_another(made, tmp_path):
    folder = made["room"]
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    assert cs.make_capture("room", folder.parent, size=SIZE, views=VIEWS) == folder
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before
    other = cs.make_capture("room", folder.parent, size=SIZE, views=VIEWS + 1)
    assert other != folder and other.name == f"room-{SIZE}-{VIEWS + 1}"
    assert cs.describe(other)["train"] + cs.describe(other)["held_out"] == VIEWS + 1
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before


def test_an_unknown_scene_is_refused_with_the_names():
    with pytest.raises(ValueError, match="statue, room, garden"):
        cs.make_capture("lego", Path("/nonexistent"))
