"""kernels/rasterize.cu vs reference/rasterize.py: forward, backward (vs the reference and vs
finite differences of the forward reference), and the backward's two atomic-add variants."""

from __future__ import annotations

import numpy as np
import pytest

from splat_lion.binning import bin_intersections
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


def test_backward_matches_reference(be, rng, random_scene, camera):
    """Many splats and tiles: the kernel's back-to-front recurrence and float32 atomics vs the
    reference's direct sums in float64, from the same forward pass."""
    cam = camera(64, 48)
    args = inputs(be, rng, random_scene, cam, 300)
    _, alpha, last = rasterize_fwd(*args, be)
    v_image, v_alpha = cotangents(rng, cam.width, cam.height)
    got = rasterize_bwd(*args, alpha, last, be.asarray(v_image, tag="loss"),
                        be.asarray(v_alpha, tag="loss"), be)
    want = ref.rasterize_bwd(*host(be, args), be.to_numpy(alpha), be.to_numpy(last), v_image,
                             v_alpha)
    for name in NAMES:
        scale = np.abs(want[name]).max()
        assert scale > 0.1, name  # the test has teeth
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
