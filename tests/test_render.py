"""render() and render_backward(): the whole pipeline vs the float64 reference pipeline, and
render invariants. (Each kernel family's own tests: test_project, test_binning, test_rasterize.)"""

from __future__ import annotations

import numpy as np
import pytest

from splat_lion import Gaussians
from splat_lion.reference.render import bin_and_rasterize
from splat_lion.reference.render import render as reference_render
from splat_lion.render import render, render_backward

pytestmark = pytest.mark.usefixtures("poisoned_outputs")


def oracle(out):
    """(image, alpha, last) of the reference binning and rasteriser, from out's projection."""
    be = out.gaussians.backend
    host = {k: be.to_numpy(v) for k, v in out.projected.items()}
    return bin_and_rasterize(host, be.to_numpy(out.gaussians.opacities),
                             be.to_numpy(out.background), out.camera.width, out.camera.height)


@pytest.mark.parametrize("size,degree", [((64, 48), 0), ((37, 29), 3), ((80, 16), 1)])
def test_render_matches_reference(be, rng, random_scene, camera, size, degree):
    g = random_scene(300, degree, be, spread=1.2)
    g.opacities[:] = be.asarray(rng.uniform(-1, 4, g.count).astype(np.float32), tag="params")
    out = render(g, camera(*size), background=(0.1, 0.2, 0.3))
    image, alpha, last = oracle(out)
    got = be.to_numpy(out.image)
    # float32 vs float64 may flip a threshold test at a few pixels
    close = np.isclose(got, image, atol=1e-5).all(-1)
    assert close.mean() > 0.995, f"{(~close).sum()} pixels differ"
    np.testing.assert_allclose(be.to_numpy(out.alpha)[close], alpha[close], atol=1e-5)
    assert (be.to_numpy(out.last)[close] == last[close]).mean() > 0.99
    assert alpha.max() > 0.5, "the scene should cover part of the image"


def test_zero_splats_render_the_background(be, camera):
    g = Gaussians.from_arrays(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 4)), np.zeros(0),
                              np.zeros((0, 1, 3)), backend=be)
    out = render(g, camera(40, 30), background=(0.25, 0.5, 1.0))
    np.testing.assert_array_equal(be.to_numpy(out.image), np.broadcast_to([0.25, 0.5, 1.0],
                                                                          (30, 40, 3)))
    assert not be.to_numpy(out.alpha).any()


def test_a_zero_opacity_splat_changes_nothing(be, random_scene, camera):
    g = random_scene(120, 1, be)
    cam = camera(48, 48)
    before = be.to_numpy(render(g, cam).image)
    means = be.to_numpy(g.means)
    host = {a: be.to_numpy(getattr(g, a)) for a in ("scales", "quats", "sh0", "shN", "opacities")}
    extra = Gaussians.from_arrays(
        np.concatenate([means, [[0.0, 0.0, 0.0]]]), np.concatenate([host["scales"], [[0, 0, 0]]]),
        np.concatenate([host["quats"], [[1, 0, 0, 0]]]),
        np.concatenate([host["opacities"], [-1e4]]),  # sigmoid -> 0
        np.concatenate([host["sh0"], [[[5, 5, 5]]]]), np.concatenate([host["shN"], [np.zeros((3, 3))]]),
        backend=be)
    after = render(extra, cam)
    assert be.to_numpy(after.visible)[-1]  # it is in view, yet invisible
    np.testing.assert_array_equal(be.to_numpy(after.image), before)


def test_same_inputs_give_the_same_image(be, random_scene, camera):
    g = random_scene(200, 2, be)
    cam = camera(50, 40)
    first = be.to_numpy(render(g, cam).image).copy()
    np.testing.assert_array_equal(be.to_numpy(render(g, cam).image), first)


def test_render_reads_current_parameters(be, random_scene, camera):
    g = random_scene(100, 0, be)
    cam = camera(40, 40)
    first = be.to_numpy(render(g, cam).image).copy()
    g.sh0[:] = g.sh0 + 0.5
    assert not np.array_equal(be.to_numpy(render(g, cam).image), first)


def test_near_degenerate_scales_and_splats_behind_render_finite(be, random_scene, camera):
    g = random_scene(150, 0, be)
    g.scales[:50] = be.asarray(np.full((50, 3), -12.0, np.float32), tag="params")  # σ ~ 6e-6
    g.scales[50:60, 0] = 3.0  # one very long axis
    cam = camera(48, 48)
    g.means[60:70] = be.asarray(np.tile(cam.position * 2, (10, 1)).astype(np.float32),
                                tag="params")  # behind the camera
    out = render(g, cam)
    assert np.isfinite(be.to_numpy(out.image)).all()
    assert not be.to_numpy(out.visible)[60:70].any()
    image, _, _ = oracle(out)
    assert np.isclose(be.to_numpy(out.image), image, atol=2e-4).all(-1).mean() > 0.995


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_backward_matches_finite_differences(be, rng, random_scene, camera, finite_differences,
                                             degree):
    """render_backward vs central differences of the float64 reference pipeline, for every
    attribute; moderate opacities keep away from the 0.99 clamp and the T < 1e-4 stop."""
    g = random_scene(6, degree, be, spread=0.6)
    g.opacities[:] = be.asarray(rng.uniform(-2, 1, 6).astype(np.float32), tag="params")
    g.scales[:] = be.asarray(np.log(rng.uniform(0.15, 0.4, (6, 3))).astype(np.float32),
                             tag="params")
    cam = camera(20, 16)
    bg = (0.3, 0.1, 0.2)
    out = render(g, cam, background=bg)
    v_image = rng.standard_normal((16, 20, 3)).astype(np.float32)
    v_alpha = rng.standard_normal((16, 20)).astype(np.float32)
    grads = render_backward(out, be.asarray(v_image, tag="loss"), be.asarray(v_alpha, tag="loss"))
    names = ["means", "scales", "quats", "opacities", "sh0", "shN"]
    host = {n: np.asarray(be.to_numpy(getattr(g, n)), np.float64) for n in names}

    def loss():
        image, alpha = reference_render(*(host[n] for n in names), cam, bg, degree)
        return (image * v_image).sum() + (alpha * v_alpha).sum()

    for name in names:
        # eps small: a step across the 1/255 cutoff or a tile edge would jump
        fd = finite_differences(loss, host[name], eps=1e-6)
        got = be.to_numpy(getattr(grads, name)).astype(np.float64)
        scale = max(np.abs(fd).max(initial=0.0), 1e-2)
        np.testing.assert_allclose(got, fd, atol=2e-3 * scale, rtol=2e-3, err_msg=name)
    assert np.abs(be.to_numpy(grads.opacities)).max() > 1e-3  # the test has teeth


def test_backward_writes_into_the_flat_gradients_and_allocates_nothing_once_warm(be, rng,
                                                                                random_scene,
                                                                                camera):
    g = random_scene(201, 1, be)  # 201 x 3 floats: padding after means and scales
    cam = camera(48, 40)
    v_image = be.asarray(rng.standard_normal((40, 48, 3)).astype(np.float32), tag="loss")
    out = render(g, cam)
    want = {n: be.to_numpy(a).copy() for n, a in render_backward(out, v_image).items()}
    before = be.memory.current_bytes()
    grads = render_backward(out, v_image)  # the first one's buffers are free again: reused
    assert be.memory.current_bytes() == before
    assert grads.data.shape == (g.layout.total,) and grads.means.base is not None
    for name, a in grads.items():
        np.testing.assert_array_equal(be.to_numpy(a), want[name], err_msg=name)
    padding = np.ones(g.layout.total, bool)
    for s in g.layout.segments:
        padding[s.begin:s.end] = False
    assert padding.any() and not be.to_numpy(grads.data)[padding].any()


def test_gradients_held_are_not_overwritten_by_the_next_backward(be, rng, random_scene,
                                                                 camera):
    g = random_scene(100, 0, be)
    cam = camera(40, 32)
    out = render(g, cam)
    first = render_backward(out, be.asarray(np.ones((32, 40, 3), np.float32), tag="loss"))
    kept = be.to_numpy(first.data).copy(), be.to_numpy(first.means2d).copy()
    second = render_backward(out, be.asarray(-np.ones((32, 40, 3), np.float32), tag="loss"))
    np.testing.assert_array_equal(be.to_numpy(first.data), kept[0])
    np.testing.assert_array_equal(be.to_numpy(first.means2d), kept[1])
    np.testing.assert_allclose(be.to_numpy(second.data), -kept[0], atol=1e-6)
    norm = be.to_numpy(first.means2d_norm)
    np.testing.assert_allclose(norm, np.linalg.norm(kept[1], axis=1), rtol=1e-6)


def test_a_batch_gradient_is_the_sum_of_its_views_gradients(be, rng, random_scene):
    """render_backward(..., into=grads) adds a view's gradients to a batch's: the sum of
    single-view gradients (each view culls other splats: one sees only part of the scene);
    means2d is the last view's, as densification reads it per view."""
    from splat_lion.cameras import Camera

    g = random_scene(300, 2, be, spread=1.5)
    cams = [Camera.look_at(eye, (0, 0, 0), width=48, height=40, fov_x_deg=40)
            for eye in ((2.0, -1.5, 1.0), (-1.5, 0.8, 0.4), (0.3, 0.2, 2.2))]
    singles, batch, visible = [], None, []
    for cam in cams:
        v_image = be.asarray(rng.standard_normal((40, 48, 3)).astype(np.float32), tag="loss")
        out = render(g, cam)
        one = render_backward(out, v_image)
        singles.append((be.to_numpy(one.data).copy(), be.to_numpy(one.means2d).copy()))
        visible.append(be.to_numpy(out.visible).copy())
        del one
        batch = render_backward(out, v_image, into=batch)
        del out
    seen = np.array(visible)
    assert (~seen).any(axis=1).all() and seen.any(axis=0).sum() > seen[0].sum()  # partial views
    want = np.sum([s[0] for s in singles], axis=0)
    np.testing.assert_allclose(be.to_numpy(batch.data), want, rtol=1e-5,
                               atol=1e-6 * np.abs(want).max())
    np.testing.assert_array_equal(be.to_numpy(batch.means2d), singles[-1][1])
    np.testing.assert_allclose(be.to_numpy(batch.means2d_norm),
                               np.linalg.norm(singles[-1][1], axis=1), rtol=1e-6)


def test_a_batch_refuses_gradients_of_other_splats(be, rng, random_scene, camera):
    cam = camera(32, 24)
    v_image = be.asarray(np.ones((24, 32, 3), np.float32), tag="loss")
    first = render_backward(render(random_scene(50, 0, be), cam), v_image)
    with pytest.raises(ValueError, match="other splats"):
        render_backward(render(random_scene(60, 0, be), cam), v_image, into=first)


# -- depth renders ---------------------------------------------------------------------------------

@pytest.mark.parametrize("size,degree", [((64, 48), 0), ((37, 29), 2)])
def test_render_depth_matches_reference(be, rng, random_scene, camera, size, degree):
    g = random_scene(300, degree, be, spread=1.2)
    g.opacities[:] = be.asarray(rng.uniform(-1, 4, g.count).astype(np.float32), tag="params")
    out = render(g, camera(*size), depth=True)
    _, alpha, last, depth, median = bin_and_rasterize(
        {k: be.to_numpy(v) for k, v in out.projected.items()},
        be.to_numpy(g.opacities), be.to_numpy(out.background), *size, depth=True)
    # float32 vs float64 may flip a threshold test at a few pixels
    same = (be.to_numpy(out.last) == last) & np.isclose(be.to_numpy(out.alpha), alpha, atol=1e-5)
    assert same.mean() > 0.99
    # D / (1 - T): 1 - T loses ~1e-5 of a faint pixel's alpha (~1/255) to float32 rounding
    np.testing.assert_allclose(be.to_numpy(out.depth)[same], depth[same], rtol=1e-4)
    assert (be.to_numpy(out.median_depth) == median.astype(np.float32))[same].mean() > 0.99
    assert (median > 0).sum() > 50 and (alpha == 0).any()


def test_colour_outputs_are_bit_identical_with_and_without_depth(be, rng, random_scene, camera):
    g = random_scene(300, 1, be, spread=1.2)
    cam = camera(64, 48)
    plain = render(g, cam, background=(0.1, 0.2, 0.3))
    with_depth = render(g, cam, background=(0.1, 0.2, 0.3), depth=True)
    assert plain.depth is None and plain.median_depth is None
    for name in ("image", "alpha", "last"):
        np.testing.assert_array_equal(be.to_numpy(getattr(with_depth, name)),
                                      be.to_numpy(getattr(plain, name)), err_msg=name)
    v_image = be.asarray(rng.standard_normal((48, 64, 3)).astype(np.float32), tag="loss")
    want = be.to_numpy(render_backward(plain, v_image).data).copy()
    np.testing.assert_array_equal(be.to_numpy(render_backward(with_depth, v_image).data), want)


def single_splat(be, means, opacities, sigma=0.3):
    n = len(means)
    return Gaussians.from_arrays(np.asarray(means, np.float64), np.full((n, 3), np.log(sigma)),
                                 np.tile([1.0, 0, 0, 0], (n, 1)), np.asarray(opacities, float),
                                 np.zeros((n, 1, 3)), backend=be)


def test_depth_of_a_single_opaque_splat_is_its_z(be, camera):
    cam = camera(48, 40)
    out = render(single_splat(be, [[0.1, -0.2, 0.05]], [8.0]), cam, depth=True)
    z = (cam.viewmat @ [0.1, -0.2, 0.05, 1.0])[2]
    assert be.to_numpy(out.projected["depths"])[0] == pytest.approx(z, rel=1e-6)
    alpha, depth = be.to_numpy(out.alpha), be.to_numpy(out.depth)
    median = be.to_numpy(out.median_depth)
    seen = alpha > 0
    assert seen.sum() > 20 and (~seen).sum() > 20 and alpha.max() > 0.98  # opaque
    # 1 - T rounds at faint pixels: D / (1 - T) = z to float32 rounding of a small alpha
    np.testing.assert_allclose(depth[seen], z, rtol=1e-4)
    assert not depth[~seen].any()
    opaque = alpha > 0.5
    assert opaque.sum() > 4
    np.testing.assert_allclose(median[opaque], z, rtol=1e-6)
    assert not median[~opaque].any()


@pytest.mark.parametrize("front,back,picks", [(3.0, 5.0, "front"), (-1.5, 5.0, "back")])
def test_median_depth_of_two_stacked_splats_picks_the_front_one_when_opaque_enough(
        be, camera, front, back, picks):
    """Two splats on the ray through the image centre: the median is the front one's z when
    it alone takes T below 0.5 (alpha ~0.93 at the centre), else the back one's (the front at
    alpha ~0.18); the expected depth lies between, nearer the more opaque one."""
    cam = camera(48, 48)
    ray = -cam.position / np.linalg.norm(cam.position)  # from the camera to the origin
    out = render(single_splat(be, [-0.8 * ray, 0.8 * ray], [front, back]), cam, depth=True)
    z_front, z_back = np.linalg.norm(cam.position) + np.array([-0.8, 0.8])
    centre = (24, 24)
    median = be.to_numpy(out.median_depth)[centre]
    depth = be.to_numpy(out.depth)[centre]
    assert median == pytest.approx(z_front if picks == "front" else z_back, rel=1e-5)
    assert z_front < depth < z_back
    assert (depth < (z_front + z_back) / 2) == (picks == "front")


def test_backward_with_depth_matches_finite_differences(be, rng, random_scene, camera,
                                                        finite_differences):
    """render_backward with v_depth (and image and alpha terms) vs central differences of the
    float64 reference pipeline: the depth loss reaches every attribute of the compositing
    weights, and the means also through z."""
    degree = 1
    g = random_scene(6, degree, be, spread=0.6)
    g.opacities[:] = be.asarray(rng.uniform(-2, 1, 6).astype(np.float32), tag="params")
    g.scales[:] = be.asarray(np.log(rng.uniform(0.15, 0.4, (6, 3))).astype(np.float32),
                             tag="params")
    cam = camera(20, 16)
    bg = (0.3, 0.1, 0.2)
    out = render(g, cam, background=bg, depth=True)
    v_image = rng.standard_normal((16, 20, 3)).astype(np.float32)
    v_alpha = rng.standard_normal((16, 20)).astype(np.float32)
    v_depth = rng.standard_normal((16, 20)).astype(np.float32)
    grads = render_backward(out, be.asarray(v_image, tag="loss"), be.asarray(v_alpha, tag="loss"),
                            v_depth=be.asarray(v_depth, tag="loss"))
    names = ["means", "scales", "quats", "opacities", "sh0", "shN"]
    host = {n: np.asarray(be.to_numpy(getattr(g, n)), np.float64) for n in names}

    def loss():
        image, alpha, depth, _ = reference_render(*(host[n] for n in names), cam, bg, degree,
                                                  depth=True)
        return (image * v_image).sum() + (alpha * v_alpha).sum() + (depth * v_depth).sum()

    for name in names:
        fd = finite_differences(loss, host[name], eps=1e-6)
        got = be.to_numpy(getattr(grads, name)).astype(np.float64)
        scale = max(np.abs(fd).max(initial=0.0), 1e-2)
        np.testing.assert_allclose(got, fd, atol=2e-3 * scale, rtol=2e-3, err_msg=name)
    # the depth term matters: without it the means' gradient is another
    plain = render_backward(out, be.asarray(v_image, tag="loss"), be.asarray(v_alpha, tag="loss"))
    assert not np.allclose(be.to_numpy(plain.means), be.to_numpy(grads.means), rtol=0.05)


def test_a_batch_with_depth_is_the_sum_of_its_views(be, rng, random_scene):
    """render_backward(..., v_depth=, into=) adds each view's depth gradients too."""
    from splat_lion.cameras import Camera

    g = random_scene(200, 0, be, spread=1.5)
    cams = [Camera.look_at(eye, (0, 0, 0), width=40, height=32, fov_x_deg=40)
            for eye in ((2.0, -1.5, 1.0), (-1.5, 0.8, 0.4))]
    singles, batch = [], None
    for cam in cams:
        v_image = be.asarray(rng.standard_normal((32, 40, 3)).astype(np.float32), tag="loss")
        v_depth = be.asarray(rng.standard_normal((32, 40)).astype(np.float32), tag="loss")
        out = render(g, cam, depth=True)
        one = render_backward(out, v_image, v_depth=v_depth)
        singles.append(be.to_numpy(one.data).copy())
        del one
        batch = render_backward(out, v_image, v_depth=v_depth, into=batch)
        del out
    want = np.sum(singles, axis=0)
    np.testing.assert_allclose(be.to_numpy(batch.data), want, rtol=1e-5,
                               atol=1e-6 * np.abs(want).max())


def test_v_depth_needs_a_render_with_depth(be, random_scene, camera):
    cam = camera(32, 24)
    out = render(random_scene(20, 0, be), cam)
    v_image = be.asarray(np.ones((24, 32, 3), np.float32), tag="loss")
    with pytest.raises(ValueError, match=r"render\(\.\.\., depth=True\)"):
        render_backward(out, v_image, v_depth=be.asarray(np.ones((24, 32), np.float32),
                                                         tag="loss"))
