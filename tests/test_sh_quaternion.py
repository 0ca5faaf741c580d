"""The SH and quaternion helpers every layer shares (splat_lion/sh.py, quaternion.py)."""

from __future__ import annotations

import numpy as np
import pytest

from splat_lion.quaternion import quat_to_rotmat
from splat_lion.sh import (SH_C0, check_degree, empty_shN, rgb_to_sh0, sh_coeffs, sh_degree_of,
                           sh_rest)


@pytest.mark.parametrize("degree,coeffs", [(0, 1), (1, 4), (2, 9), (3, 16)])
def test_coefficient_counts_and_their_inverse(degree, coeffs):
    assert sh_coeffs(degree) == coeffs and sh_rest(degree) == coeffs - 1
    assert sh_degree_of(coeffs) == degree


@pytest.mark.parametrize("bad", [-1, 4, 1.5, True, "3"])
def test_a_bad_degree_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="sh_degree must be 0, 1, 2 or 3"):
        check_degree(bad)
    with pytest.raises(ValueError, match="must be 0, 1, 2 or 3"):
        sh_coeffs(bad)


def test_a_count_of_no_degree_is_a_clear_error():
    with pytest.raises(ValueError, match="5 SH coefficients per channel is no degree's"):
        sh_degree_of(5)


def test_degree_zero_shN_is_an_empty_view():
    buf = np.arange(8, dtype=np.float32)
    e = empty_shN(buf, 5)
    assert e.shape == (5, 0, 3) and e.dtype == np.float32


def test_rgb_to_sh0_inverts_the_dc_colour():
    rgb = np.array([0.0, 0.5, 1.0])
    np.testing.assert_allclose(SH_C0 * rgb_to_sh0(rgb) + 0.5, rgb, atol=1e-15)


def test_quaternions_give_rotations(rng):
    q = rng.standard_normal((50, 4))
    r = quat_to_rotmat(q)
    np.testing.assert_allclose(r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    # unnormalised and negated quaternions give the same rotation
    np.testing.assert_allclose(quat_to_rotmat(-3 * q), r, atol=1e-12)
    # a rotation by angle t about z: (cos t/2, 0, 0, sin t/2)
    t = 0.7
    rz = quat_to_rotmat(np.array([np.cos(t / 2), 0, 0, np.sin(t / 2)]))
    np.testing.assert_allclose(rz, [[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0],
                                    [0, 0, 1]], atol=1e-15)
