"""Losses: values against independent implementations, gradients against finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import correlate

from splat_lion import loss


def ssim_independent(x, y):
    """SSIM with scipy's 2-D correlation (zero padding) per channel, float64."""
    w1 = loss.gaussian_window()
    w = np.outer(w1, w1)

    def f(a):
        return np.stack([correlate(a[..., c], w, mode="constant") for c in range(a.shape[-1])], -1)

    mx, my = f(x), f(y)
    sx, sy, sxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    c1, c2 = loss.SSIM_C1, loss.SSIM_C2
    return (((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sx + sy + c2))).mean()


def images(rng, h=19, w=23):
    x = rng.random((h, w, 3))
    return x, np.clip(x + 0.2 * rng.standard_normal((h, w, 3)), 0, 1)


def test_ssim_matches_an_independent_implementation(rng):
    x, y = images(rng)
    assert loss.ssim(x, y)[0] == pytest.approx(ssim_independent(x, y), rel=1e-12)
    assert loss.ssim(x, x)[0] == pytest.approx(1.0)


@pytest.mark.parametrize("fn", [loss.ssim, loss.l1, loss.photometric_loss],
                         ids=["ssim", "l1", "photometric"])
def test_gradients_match_finite_differences(rng, finite_differences, fn):
    x, y = images(rng)
    _, grad = fn(x, y)
    at = [tuple(rng.integers(0, s) for s in x.shape) for _ in range(40)]
    fd = finite_differences(lambda: fn(x, y)[0], x, eps=1e-6, at=at)
    for idx in at:
        assert grad[idx] == pytest.approx(fd[idx], rel=1e-5, abs=1e-9), idx


def test_photometric_loss_is_3dgs_mix_and_psnr(rng):
    x, y = images(rng)
    value, _ = loss.photometric_loss(x, y)
    assert value == pytest.approx(0.8 * np.abs(x - y).mean() + 0.2 * (1 - ssim_independent(x, y)))
    assert loss.psnr(x, y) == pytest.approx(-10 * math.log10(((x - y) ** 2).mean()))
    assert loss.psnr(x, x) == math.inf


def test_float32_gradients_keep_their_dtype(rng):
    x, y = (a.astype(np.float32) for a in images(rng))
    value, grad = loss.photometric_loss(x, y)
    assert grad.dtype == np.float32 and grad.shape == x.shape and np.isfinite(value)


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\[H, W, C\]"):
        loss.l1(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))
