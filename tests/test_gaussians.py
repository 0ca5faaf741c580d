"""Gaussians: layout, constructors (3DGS initialisation), activations, backends."""

from __future__ import annotations

import numpy as np
import pytest

from splat_lion import Gaussians
from splat_lion.backend import backend_of
from splat_lion.gaussians import mean_sq_dist_to_neighbours
from splat_lion.sh import SH_C0, rgb_to_sh0


def host(a) -> np.ndarray:
    """`a` (on the default backend: CuPy's where a GPU is) as a NumPy array."""
    return backend_of(a).to_numpy(a)


def test_from_points_follows_the_3dgs_initialisation(rng):
    points = rng.uniform(-1, 1, (300, 3))
    colors = rng.uniform(0, 1, (300, 3))
    g = Gaussians.from_points(points, colors, sh_degree=2, opacity=0.1)
    # brute force: mean squared distance to the 3 nearest other points
    d2 = ((points[:, None] - points[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    want = np.sort(d2, 1)[:, :3].mean(1)
    np.testing.assert_allclose(np.exp(2 * host(g.scales[:, 0])), want, rtol=1e-5)
    assert (g.scales[:, 0] == g.scales[:, 2]).all()  # isotropic
    np.testing.assert_allclose(host(g.opacity_values()), 0.1, rtol=1e-6)
    np.testing.assert_array_equal(host(g.rotations()), np.tile([1, 0, 0, 0], (300, 1)))
    np.testing.assert_allclose(host(g.base_colors()), colors, atol=1e-6)
    assert g.shN.shape == (300, 8, 3) and not g.shN.any()


def test_neighbour_distances_for_tiny_and_duplicate_clouds():
    assert mean_sq_dist_to_neighbours(np.zeros((1, 3))).tolist() == [1.0]
    two = mean_sq_dist_to_neighbours(np.array([[0.0, 0, 0], [3, 4, 0]]))
    np.testing.assert_allclose(two, [25, 25])
    g = Gaussians.from_points(np.zeros((4, 3)), np.full((4, 3), 0.5), sh_degree=0)
    assert np.isfinite(g.scales).all()  # duplicates: clamped, not log(0)


def test_views_share_one_flat_buffer(rng):
    g = Gaussians.random(50, 3, seed=3)
    g.opacities[:] = 2.0
    seg = g.layout.segment("opacities")
    assert (g.params.data[seg.begin:seg.end] == 2.0).all()
    assert g.means.base is not None


def test_activations():
    g = Gaussians.from_arrays(np.zeros((2, 3)), np.log([[1, 2, 3], [4, 5, 6]]),
                              [[2, 0, 0, 0], [0, 0, 3, 4]], [0.0, np.log(3)],
                              rgb_to_sh0([[0.5, 0, 1], [0.2, 0.4, 0.6]]).reshape(2, 1, 3))
    np.testing.assert_allclose(host(g.scale_values()), [[1, 2, 3], [4, 5, 6]], rtol=1e-6)
    np.testing.assert_allclose(host(g.opacity_values()), [0.5, 0.75], rtol=1e-6)
    np.testing.assert_allclose(host(g.rotations()), [[1, 0, 0, 0], [0, 0, 0.6, 0.8]],
                               rtol=1e-6)
    np.testing.assert_allclose(host(g.base_colors()), [[0.5, 0, 1], [0.2, 0.4, 0.6]],
                               atol=1e-6)
    assert SH_C0 == pytest.approx(0.5 / np.sqrt(np.pi))


def test_from_arrays_checks_shapes():
    with pytest.raises(ValueError, match=r"quats: expected shape \[2, 4\], got \[2, 3\]"):
        Gaussians.from_arrays(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(2),
                              np.zeros((2, 1, 3)))
    with pytest.raises(ValueError, match="K in 4, 9, 16"):
        Gaussians.from_arrays(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 4)), np.zeros(2),
                              np.zeros((2, 1, 3)), np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match=r"extra property 'tag': expected shape \[2\]"):
        Gaussians.from_arrays(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 4)), np.zeros(2),
                              np.zeros((2, 3)), extra={"tag": np.zeros(3)})


def test_extent_ignores_a_few_outliers():
    g = Gaussians.random(1000, 0, box=1.0, seed=0)
    g.means[:3] = 1000.0
    assert 1.0 < g.extent() < 2.5


def test_moving_between_backends_copies(be, cpu):
    g = Gaussians.random(20, 1, seed=1, backend=cpu)
    h = g.to(be)
    assert h.backend.name == be.name and h.sh_degree == 1
    np.testing.assert_array_equal(be.to_numpy(h.params.data), g.params.data)
    h.means[0, 0] = 99.0
    assert g.means[0, 0] != 99.0
