"""kernels/project.cu vs reference/project.py: forward, culling, backward vs finite differences,
at every active SH degree up to the scene's (one kernel per degree, all compiled at once)."""

from __future__ import annotations

import numpy as np
import pytest

from splat_lion import Gaussians, kernels
from splat_lion.cameras import Camera, orbit_cameras
from splat_lion.project import project_bwd, project_fwd
from splat_lion.reference import project as ref

pytestmark = pytest.mark.usefixtures("poisoned_outputs")

FIELDS = ("means", "scales", "quats", "sh0", "shN")  # the reference's arguments for a Gaussians


def host_fields(g):
    """g's fields as float64 host arrays: the reference's arguments in place of g."""
    return {a: np.asarray(g.backend.to_numpy(getattr(g, a)), np.float64) for a in FIELDS}


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_forward_matches_reference(be, random_scene, camera, degree):
    g = random_scene(500, degree, be, spread=2.5)  # some splats leave the view, some the frustum
    cam = camera()
    got = {k: be.to_numpy(v) for k, v in project_fwd(g, cam).items()}
    want = ref.project_fwd(**host_fields(g), camera=cam)
    same_radius = got["radii"] == want["radii"]
    assert same_radius.mean() > 0.99  # float32 vs float64 may round a ceil differently
    vis = same_radius & (want["radii"] > 0)
    assert vis.sum() > 100 and (want["radii"] == 0).sum() > 5
    np.testing.assert_allclose(got["means2d"][vis], want["means2d"][vis], rtol=1e-5, atol=1e-3)
    # depth = R p + t in float32: its rounding error scales with the summed terms (|t| + |p|),
    # not with the depth itself, so splats near the camera plane need an absolute tolerance.
    terms = np.linalg.norm(cam.viewmat[:3, 3]) + 2.5 * np.sqrt(3)
    np.testing.assert_allclose(got["depths"][vis], want["depths"][vis], rtol=1e-6,
                               atol=4 * np.finfo(np.float32).eps * terms)
    np.testing.assert_allclose(got["conics"][vis], want["conics"][vis], rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(got["colors"][vis], want["colors"][vis], atol=2e-6)
    np.testing.assert_array_equal(got["tiles_touched"][vis], want["tiles_touched"][vis])
    culled = want["radii"] == 0
    for name in ("means2d", "depths", "conics", "colors", "tiles_touched"):
        assert not np.asarray(got[name])[culled & same_radius].any(), name


@pytest.mark.parametrize("active", [0, 1, 2])
def test_forward_at_an_active_degree_below_the_scenes_matches_reference(be, random_scene,
                                                                          camera, active):
    """A degree-3 scene seen at a lower active degree (as while the degree ramps up): the
    colour uses sh0 and the first (active+1)^2 - 1 of shN's 15 rows, the rest never read."""
    g = random_scene(300, 3, be, spread=1.0)
    cam = camera()
    got = {k: be.to_numpy(v) for k, v in project_fwd(g, cam, active).items()}
    want = ref.project_fwd(**host_fields(g), camera=cam, sh_degree=active)
    vis = (got["radii"] == want["radii"]) & (want["radii"] > 0)
    assert vis.sum() > 100
    np.testing.assert_allclose(got["colors"][vis], want["colors"][vis], atol=2e-6)
    full = ref.project_fwd(**host_fields(g), camera=cam)
    assert np.abs(full["colors"][vis] - want["colors"][vis]).max() > 1e-3  # degrees differ


def test_every_active_degree_runs_without_compiling_again(be, rng, random_scene, camera):
    """The variants for degrees 0..3 are compiled together: a degree ramping up during a fit
    compiles nothing."""
    g = random_scene(40, 3, be)
    cam = camera()
    v = [be.asarray(rng.standard_normal((40, k)).astype(np.float32), tag="grads")
         for k in (2, 3, 3)]
    out = project_fwd(g, cam, 0)
    project_bwd(g, cam, out["radii"], *v, 0)
    modules = dict(kernels._modules)
    for degree in (1, 2, 3):
        out = project_fwd(g, cam, degree)
        project_bwd(g, cam, out["radii"], *v, degree)
    assert kernels._modules == modules


def test_splats_behind_the_camera_or_too_far_are_culled(cpu, camera):
    cam = camera()
    eye = cam.position
    toward = -eye / np.linalg.norm(eye)
    means = np.stack([eye - toward, eye + 0.001 * toward, eye + 2e10 * toward, np.zeros(3)])
    g = Gaussians.from_arrays(means, np.full((4, 3), -2.0), np.tile([1.0, 0, 0, 0], (4, 1)),
                              np.zeros(4), np.zeros((4, 1, 3)), backend=cpu)
    out = project_fwd(g, cam)
    np.testing.assert_array_equal(out["radii"] > 0, [False, False, False, True])
    np.testing.assert_allclose(out["means2d"][3], [cam.cx, cam.cy], atol=1e-3)


def test_runaway_splats_are_capped_or_culled_and_bin_consistently(be, camera):
    """A splat blown up to σ = e^30 (a diverging fit) covers every tile with the capped
    radius and binning writes exactly its tiles_touched keys; a NaN scale culls the splat.
    (The int radius of an uncapped float radius overflowed: binning then wrote keys past
    its buffer, and the CPU runtime crashed.)"""
    from splat_lion.binning import bin_intersections
    from splat_lion.kernels import num_tiles

    cam = camera(48, 32)
    scales = np.array([[30.0] * 3, [np.nan, -2.0, -2.0], [-2.0] * 3])
    g = Gaussians.from_arrays(np.zeros((3, 3)), scales, np.tile([1.0, 0, 0, 0], (3, 1)),
                              np.zeros(3), np.zeros((3, 1, 3)), backend=be)
    out = project_fwd(g, cam)
    radii, touched = be.to_numpy(out["radii"]), be.to_numpy(out["tiles_touched"])
    tx, ty = num_tiles(48, 32)
    assert radii[0] == 2**24 and touched[0] == tx * ty
    assert radii[1] == 0 and touched[1] == 0 and radii[2] > 0
    bins = bin_intersections(out, 48, 32, be)
    keys = be.to_numpy(bins["keys"])
    assert bins["num_intersections"] == touched.sum() == keys.shape[0]
    assert (keys < tx * ty).all()  # tile ids
    assert (np.bincount(be.to_numpy(bins["ids"]), minlength=3) == touched).all()


@pytest.mark.parametrize("degree,active", [(0, 0), (1, 1), (2, 1), (3, 0), (3, 2), (3, 3)])
def test_backward_matches_finite_differences(be, rng, random_scene, camera, finite_differences,
                                             degree, active):
    g = random_scene(6, degree, be, spread=0.8)
    cam = camera()
    out = project_fwd(g, cam, active)
    assert (be.to_numpy(out["radii"]) > 0).all()
    v = {k: rng.standard_normal(s).astype(np.float32)
         for k, s in (("means2d", (6, 2)), ("conics", (6, 3)), ("colors", (6, 3)))}
    got = project_bwd(g, cam, out["radii"], *(be.asarray(v[k], tag="grads")
                                              for k in ("means2d", "conics", "colors")), active)
    host = host_fields(g)

    def loss():
        p = ref.project_fwd(**host, camera=cam, sh_degree=active)
        return sum(float((p[k] * v[k]).sum()) for k in v)

    for name in FIELDS:
        w = finite_differences(loss, host[name])
        gv = be.to_numpy(got[name]).astype(np.float64)
        scale = max(np.abs(w).max(initial=0.0), 1e-3)
        np.testing.assert_allclose(gv, w.reshape(gv.shape), atol=3e-3 * scale, rtol=3e-3,
                                   err_msg=name)


def test_culled_splats_get_zero_gradients(be, rng, random_scene, camera):
    g = random_scene(300, 2, be, spread=2.5)
    cam = camera()
    out = project_fwd(g, cam)
    culled = be.to_numpy(out["radii"]) == 0
    assert culled.sum() > 5 and (~culled).sum() > 100
    v = [be.asarray(rng.standard_normal((300, k)).astype(np.float32), tag="grads")
         for k in (2, 3, 3)]
    got = {k: be.to_numpy(a) for k, a in project_bwd(g, cam, out["radii"], *v).items()}
    for name in FIELDS:
        assert np.isfinite(got[name]).all(), name
        assert not got[name][culled].any(), name


def test_camera_looks_at_its_target_and_orbits_keep_their_radius():
    cam = Camera.look_at((0, -5, 0), (0, 0, 0), width=64, height=48)
    t = cam.viewmat @ np.array([0, 0, 0, 1.0])
    assert t[2] == pytest.approx(5.0) and abs(t[0]) < 1e-12 and abs(t[1]) < 1e-12
    up = cam.viewmat @ np.array([0, 0, 1.0, 1.0])
    assert up[1] < 0  # world up is image up: camera -y
    cams = orbit_cameras(radius=3.0, n=5, width=32, height=32)
    assert len(cams) == 5
    for c in cams:
        assert np.linalg.norm(c.position) == pytest.approx(3.0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(K=np.eye(3) * [1, 1, 0]), r"K: expected"),
    (dict(viewmat=np.diag([1.0, 1, -1, 1])), "rotation"),
    (dict(width=0), "width must be a positive int"),
    (dict(near=0.0), "0 < near < far"),
])
def test_bad_cameras_are_clear_errors(kwargs, match):
    base = dict(K=np.array([[50.0, 0, 16], [0, 50, 16], [0, 0, 1]]), viewmat=np.eye(4),
                width=32, height=32)
    with pytest.raises(ValueError, match=match):
        Camera(**{**base, **kwargs})


def test_backward_accumulates_into_what_out_holds(be, rng, random_scene, camera):
    """accumulate=True adds every gradient to `out` (a batch's later views), culled splats'
    included (they add nothing); without it every element is written."""
    g = random_scene(300, 3, be, spread=2.5)
    cam = camera()
    out = project_fwd(g, cam, 2)
    assert (be.to_numpy(out["radii"]) == 0).sum() > 5
    v = [be.asarray(rng.standard_normal((300, k)).astype(np.float32), tag="grads")
         for k in (2, 3, 3)]
    fresh = {k: be.to_numpy(a).copy() for k, a in project_bwd(g, cam, out["radii"], *v, 2).items()}
    held = {k: rng.standard_normal(a.shape).astype(np.float32) for k, a in fresh.items()}
    into = {k: be.asarray(a.copy(), tag="grads") for k, a in held.items()}
    project_bwd(g, cam, out["radii"], *v, 2, out=into, accumulate=True)
    for k in FIELDS:
        np.testing.assert_allclose(be.to_numpy(into[k]), held[k] + fresh[k], rtol=1e-6,
                                   atol=1e-6, err_msg=k)
    project_bwd(g, cam, out["radii"], *v, 2, out=into)
    for k in FIELDS:
        np.testing.assert_array_equal(be.to_numpy(into[k]), fresh[k], err_msg=k)
    with pytest.raises(ValueError, match="give out"):
        project_bwd(g, cam, out["radii"], *v, 2, accumulate=True)


@pytest.mark.parametrize("accumulate", [False, True])
def test_backward_of_depths_matches_finite_differences(be, rng, random_scene, camera,
                                                       finite_differences, accumulate):
    """v_depths (a depth render's dL/dz) reaches the means through z = W[2] mu + T[2], added
    by project_bwd_depths after the colour kernel, into fresh or accumulated gradients;
    the other attributes are those without it."""
    g = random_scene(300, 1, be, spread=2.5)
    cam = camera()
    out = project_fwd(g, cam)
    radii = be.to_numpy(out["radii"])
    assert (radii == 0).sum() > 5
    v = {k: rng.standard_normal(s).astype(np.float32)
         for k, s in (("means2d", (300, 2)), ("conics", (300, 3)), ("colors", (300, 3)),
                      ("depths", (300,)))}
    v["depths"][radii == 0] = 0.0  # culled splats are never rasterised: no depth gradient
    dev = {k: be.asarray(a, tag="grads") for k, a in v.items()}
    colour = {k: be.to_numpy(a).copy() for k, a in
              project_bwd(g, cam, out["radii"], dev["means2d"], dev["conics"],
                          dev["colors"]).items()}
    held = {k: rng.standard_normal(a.shape).astype(np.float32) if accumulate
            else np.full(a.shape, np.nan, np.float32) for k, a in colour.items()}
    into = {k: be.asarray(a.copy(), tag="grads") for k, a in held.items()}
    project_bwd(g, cam, out["radii"], dev["means2d"], dev["conics"], dev["colors"], out=into,
                accumulate=accumulate, v_depths=dev["depths"])
    got = {k: be.to_numpy(a) - (held[k] if accumulate else 0) for k, a in into.items()}
    for k in ("scales", "quats", "sh0", "shN"):
        np.testing.assert_allclose(got[k], colour[k], rtol=1e-5, atol=1e-5, err_msg=k)
    host = host_fields(g)

    def depth_loss():
        return float((ref.project_fwd(**host, camera=cam)["depths"] * v["depths"]).sum())

    fd = finite_differences(depth_loss, host["means"])
    np.testing.assert_allclose(got["means"] - colour["means"], fd, rtol=1e-4,
                               atol=1e-4 * np.abs(fd).max())
    assert np.abs(fd).max() > 0.1
