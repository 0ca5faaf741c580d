"""kernels/ssim.cu vs reference/ssim.py (each kernel on the same inputs, outputs poisoned)."""

from __future__ import annotations

import numpy as np
import pytest

from splat_lion.backend import get_backend
from splat_lion.reference import ssim as ref
from splat_lion.ssim import num_partials, ssim_bwd, ssim_fwd, ssim_stats

pytestmark = pytest.mark.usefixtures("poisoned_outputs")

# Odd sizes: tiles cut by both image edges, one image smaller than the window, several tiles.
SIZES = [(37, 53), (70, 33), (5, 3)]


def images(rng, h, w, c, dtype=np.float32):
    """A render x in [0, 1] and a target y near it (clipped), [H, W, C]."""
    x = rng.random((h, w, c))
    y = np.clip(x + 0.2 * rng.standard_normal((h, w, c)), 0, 1)
    return x.astype(dtype), y.astype(dtype)


def border_mask(rng, h, w):
    """[H, W] bool: True inside a random inner rectangle, plus a few random holes."""
    m = np.zeros((h, w), bool)
    m[rng.integers(0, 3):h - rng.integers(0, 3), rng.integers(0, 3):w - rng.integers(0, 3)] = True
    m[rng.random((h, w)) < 0.05] = False
    if not m.any():
        m[h // 2, w // 2] = True
    return m


def inv_count(mask, h, w, c):
    return 1.0 / ((h * w if mask is None else int(mask.sum())) * c)


def scale(a):
    return float(np.abs(a).max())


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[1]}x{s[0]}")
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_kernels_match_the_reference(be, rng, size, channels, masked):
    """Each kernel against the reference on the same inputs (float32 vs float64)."""
    h, w = size
    be.workspaces.drop("ssim.")  # outputs made now, hence poisoned
    x, y = images(rng, h, w, channels)
    mask = border_mask(rng, h, w) if masked else None
    inv, lam = inv_count(mask, h, w, channels), 0.8
    dx, dy = be.asarray(x, tag="image"), be.asarray(y, tag="loss")
    dmask = None if mask is None else be.asarray(mask, tag="loss")

    stats = None
    if not masked:
        stats = ssim_stats(dy, be)
        np.testing.assert_allclose(be.to_numpy(stats), ref.ssim_stats(y), rtol=0, atol=1e-6)
    host_stats = None if stats is None else be.to_numpy(stats)

    v_stats, partials = ssim_fwd(dx, dy, dmask, stats, inv, lam, be)
    want_v, want_partials = ref.ssim_fwd(x, y, mask, host_stats, inv, lam)
    got_v = be.to_numpy(v_stats)
    assert got_v.shape == (3, h, w, channels)
    # dL/dm_x, dL/de_xx, dL/de_xy within 1e-5 of the largest of them (dL/dm_x alone can be
    # far smaller: its two terms cancel where x ~ y', leaving float32's rounding of each)
    np.testing.assert_allclose(got_v, want_v, rtol=0, atol=1e-5 * scale(want_v))
    assert partials.shape == (num_partials(h, w, channels),)
    np.testing.assert_allclose(be.to_numpy(partials), want_partials, rtol=0, atol=1e-6)

    value, v_image = ssim_bwd(dx, dy, dmask, v_stats, partials, inv, lam, be)
    want_value, want_image = ref.ssim_bwd(x, y, mask, got_v, be.to_numpy(partials), inv, lam)
    assert value.shape == (1,) and value.dtype == np.float32
    np.testing.assert_allclose(be.to_numpy(value), want_value, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(be.to_numpy(v_image), want_image, rtol=0,
                               atol=1e-5 * scale(want_image))
    if masked:  # the test has teeth: pixels left out of the mean still get SSIM's gradient
        assert np.abs(want_image[~mask]).max() > 0


# -- errors ----------------------------------------------------------------------------------

def test_wrappers_name_the_bad_argument(rng):
    be = get_backend("cpu")
    x, y = images(rng, 8, 9, 3)
    with pytest.raises(TypeError, match="image: expected dtype float32, got float64"):
        ssim_fwd(x.astype(np.float64), y, None, ssim_stats(y, be), 1 / 216, 0.8, be)
    with pytest.raises(ValueError, match=r"target: expected shape \[8, 9, 3\], got \[8, 9, 1\]"):
        ssim_fwd(x, y[..., :1].copy(), None, None, 1 / 216, 0.8, be)
    with pytest.raises(ValueError, match="stats: required without a mask"):
        ssim_fwd(x, y, None, None, 1 / 216, 0.8, be)
    with pytest.raises(ValueError, match="stats: must be None with a mask"):
        ssim_fwd(x, y, np.ones((8, 9), bool), ssim_stats(y, be), 1 / 216, 0.8, be)
    with pytest.raises(TypeError, match="mask: expected dtype bool"):
        ssim_fwd(x, y, np.ones((8, 9), np.uint8), None, 1 / 216, 0.8, be)
    with pytest.raises(ValueError, match=r"partials: expected shape \[3\]"):
        ssim_bwd(x, y, None, np.zeros((3, 8, 9, 3), np.float32), np.zeros(4, np.float32),
                 1 / 216, 0.8, be)
