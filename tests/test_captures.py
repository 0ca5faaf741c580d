"""Real captures fit out of the box (end to end): an instant-ngp-style capture with lens
distortion, missing images and an object far from the origin fits as well as its undistorted
pinhole twin."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import splat_lion as sl
from splat_lion.cameras import Distortion
from splat_lion.datasets import write_transforms
from splat_lion.undistort import distort_image

OBJECT_AT = np.array([20.0, 5.0, -3.0])  # far from the origin: a random start there must find it
LENS = Distortion("OPENCV", (-0.12, 0.03, 0.001, -0.0008))  # k1, k2, p1, p2: a phone's
MISSING = (3, 10)  # frames the capture lists without their image


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    """(distorted capture, pinhole twin): 14 views at 80x60 on a 280° arc around `shapes`
    moved to OBJECT_AT, as transforms.json with k1, k2, p1, p2 at the top level and no
    points; the twin holds the same views without distortion. Both miss MISSING's images."""
    be = sl.get_backend("cpu")
    ref = sl.load_ply(sl.scenes.path("shapes"), backend=be)
    ref.means[...] += OBJECT_AT.astype(np.float32)
    ring = sl.orbit_cameras(center=OBJECT_AT, radius=4.5, n=18, width=80, height=60,
                            elevation_deg=25, fov_x_deg=60)
    cams = ring[:14]  # an arc, not a full circle
    pinhole = [np.asarray(sl.render(ref, c).image) for c in cams]
    distorted = [np.asarray(distort_image(img, c, c, LENS, backend=be)[0])
                 for img, c in zip(pinhole, cams)]
    root = tmp_path_factory.mktemp("captures")
    write_transforms(root / "lens", cams, distorted, distortion=LENS, drop=MISSING)
    write_transforms(root / "twin", cams, pinhole, drop=MISSING)
    return root / "lens", root / "twin"


def fit_capture(folder) -> tuple[float, float, sl.Problem]:
    """(held-out PSNR before, after) of a Lion fit from a random start."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        problem = sl.load_problem(folder, sl.ProblemConfig(init_points=4000, sh_degree=0),
                                  backend=sl.get_backend("cpu"))
    assert any("2 " in str(w.message) and "missing" in str(w.message) for w in caught)
    g = problem.fresh_start()
    before = problem.evaluate(g).psnr
    sl.fit(g, problem.train_cameras, problem.train_images, sl.FitConfig.from_points(300),
           masks=problem.train_masks)
    return before, problem.evaluate(g).psnr, problem


@pytest.mark.slow
def test_a_distorted_capture_fits_as_well_as_its_pinhole_twin(captures):
    lens, twin = captures
    before, after, problem = fit_capture(lens)
    twin_before, twin_after, twin_problem = fit_capture(twin)
    print(f"distorted: {before:.2f} -> {after:.2f} dB; pinhole twin: {twin_before:.2f} -> "
          f"{twin_after:.2f} dB")
    assert "undistorted to pinhole (OPENCV: 12)" in problem.description
    assert len(problem.train_cameras) + len(problem.test_cameras) == 12  # 2 images missing
    # the start is where the cameras look, far from the origin
    np.testing.assert_allclose(problem.frame.center, OBJECT_AT, atol=1e-6)
    assert after > before + 5 and twin_after > twin_before + 5
    assert abs(after - twin_after) <= 2.0
