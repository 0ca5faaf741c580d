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


def photometric64(x, y, mask=None):
    """3DGS's loss in float64 from the array losses: what finite differences take for
    photometric_loss, whose fused kernels compute in float32 whatever the inputs (its
    float32 gradients meet the same tolerances: measured 15x inside them)."""
    return 0.8 * loss.l1(x, y, mask)[0] + 0.2 * (1 - loss.ssim(x, y, mask)[0]), None


def float64_value(fn):
    """fn, or for photometric_loss its float64 twin (the finite differences' f)."""
    return photometric64 if fn is loss.photometric_loss else fn


@pytest.mark.parametrize("fn", [loss.ssim, loss.l1, loss.photometric_loss],
                         ids=["ssim", "l1", "photometric"])
def test_gradients_match_finite_differences(rng, finite_differences, fn):
    x, y = images(rng)
    _, grad = fn(x, y)
    at = [tuple(rng.integers(0, s) for s in x.shape) for _ in range(40)]
    fd = finite_differences(lambda: float64_value(fn)(x, y)[0], x, eps=1e-6, at=at)
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


# -- masks ------------------------------------------------------------------------------------

def border_mask(h, w, rng):
    """[H, W] bool: True inside a random inner rectangle (a valid region after undistortion)."""
    m = np.zeros((h, w), bool)
    m[rng.integers(1, 4):h - rng.integers(1, 4), rng.integers(1, 4):w - rng.integers(1, 4)] = True
    return m


def test_an_all_true_mask_changes_nothing(rng):
    x, y = images(rng)
    full = np.ones(x.shape[:2], bool)
    for fn in (loss.l1, loss.ssim, loss.photometric_loss):
        (v0, g0), (v1, g1) = fn(x, y), fn(x, y, full)
        assert v1 == pytest.approx(v0, rel=1e-12)
        np.testing.assert_allclose(g1, g0, rtol=1e-10, atol=1e-15)
    assert loss.psnr(x, y, full) == pytest.approx(loss.psnr(x, y), rel=1e-12)


def test_masked_l1_and_psnr_are_those_of_the_valid_pixels(rng):
    x, y = images(rng)
    m = border_mask(*x.shape[:2], rng)
    assert loss.l1(x, y, m)[0] == pytest.approx(np.abs(x - y)[m].mean(), rel=1e-12)
    assert loss.psnr(x, y, m) == pytest.approx(-10 * math.log10(((x - y)[m] ** 2).mean()))
    y_out = y.copy()
    y_out[~m] = 1 - y_out[~m]  # what lies outside the mask does not count
    assert loss.psnr(x, y_out, m) == pytest.approx(loss.psnr(x, y, m), rel=1e-12)
    assert loss.ssim(x, y_out, m)[0] == pytest.approx(loss.ssim(x, y, m)[0], rel=1e-12)
    assert (loss.l1(x, y, m)[1][~m] == 0).all()  # masked-out pixels get no L1 gradient


@pytest.mark.parametrize("fn", [loss.ssim, loss.l1, loss.photometric_loss],
                         ids=["ssim", "l1", "photometric"])
def test_masked_gradients_match_finite_differences(rng, finite_differences, fn):
    """At the valid pixels (where the target does not follow the image)."""
    x, y = images(rng)
    m = border_mask(*x.shape[:2], rng)
    _, grad = fn(x, y, m)
    valid = np.argwhere(m)
    at = [(*map(int, valid[i]), int(rng.integers(0, 3)))
          for i in rng.choice(len(valid), 40, replace=False)]
    fd = finite_differences(lambda: float64_value(fn)(x, y, m)[0], x, eps=1e-6, at=at)
    for idx in at:
        assert grad[idx] == pytest.approx(fd[idx], rel=1e-5, abs=1e-9), idx


def test_bad_masks_are_clear_errors(rng):
    x, y = images(rng)
    with pytest.raises(ValueError, match=r"mask must be \[H, W\] bool"):
        loss.l1(x, y, np.ones(x.shape[:2], np.uint8))
    with pytest.raises(ValueError, match="no valid pixel"):
        loss.ssim(x, y, np.zeros(x.shape[:2], bool))
