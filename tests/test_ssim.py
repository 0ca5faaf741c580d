"""kernels/ssim.cu vs reference/ssim.py (each kernel on the same inputs, outputs poisoned),
the fused photometric_loss vs today's array losses (loss.l1, loss.ssim) and vs finite
differences, the per-target cache of the target's statistics, and the counts of one loss on
the CuPy stand-in (launches, syncs, allocations, device operations)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import cupy_standin
import numpy as np
import pytest

from splat_lion import loss
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
    if m.all():  # one pixel out at least: the masked tests check that it still gets gradients
        m[0, 0] = False
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


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_photometric_loss_matches_todays_array_losses(be, rng, channels, masked):
    """Value within 1e-5 (relative) and dL/dimage within 1e-5 of its largest entry of
    0.8·l1 + 0.2·(1 − ssim) computed by loss.l1 / loss.ssim in float64 on the same inputs."""
    h, w = 41, 67
    x, y = images(rng, h, w, channels)
    mask = border_mask(rng, h, w) if masked else None
    value, grad = loss.photometric_loss(be.asarray(x, tag="image"), be.asarray(y, tag="loss"),
                                        None if mask is None else be.asarray(mask, tag="loss"))
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    l1, l1_grad = loss.l1(x64, y64, mask)
    s, s_grad = loss.ssim(x64, y64, mask)
    assert value.shape == () and value.dtype == np.float32
    assert float(value) == pytest.approx(0.8 * l1 + 0.2 * (1 - s), rel=1e-5)
    want = 0.8 * l1_grad - 0.2 * s_grad
    assert grad.dtype == np.float32 and grad.shape == x.shape
    np.testing.assert_allclose(be.to_numpy(grad), want, rtol=0, atol=1e-5 * scale(want))


def reference_loss(x, y, mask, lam=0.8):
    """The loss in float64 from the reference's kernels chained (finite differences' f)."""
    h, w, c = x.shape
    inv = inv_count(mask, h, w, c)
    stats = None if mask is not None else ref.ssim_stats(y)
    v_stats, partials = ref.ssim_fwd(x, y, mask, stats, inv, lam)
    return float(ref.ssim_bwd(x, y, mask, v_stats, partials, inv, lam)[0][0])


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_backward_matches_finite_differences(rng, finite_differences, masked):
    """The kernels' float32 dL/dimage vs float64 central differences of the reference's loss,
    at 40 values (valid pixels with a mask), within test_loss's float64 tolerances (1e-5
    relative + 1e-9; entries are ~1e-4 here, float32 errors measured 15x inside)."""
    h, w, c = 19, 23, 3
    x, y = images(rng, h, w, c, np.float64)
    mask = border_mask(rng, h, w) if masked else None
    _, grad = loss.photometric_loss(x.astype(np.float32), y.astype(np.float32), mask)
    where = np.argwhere(mask) if masked else np.argwhere(np.ones((h, w), bool))
    at = [(*map(int, where[i]), int(rng.integers(0, c)))
          for i in rng.choice(len(where), 40, replace=False)]
    fd = finite_differences(lambda: reference_loss(x, y, mask), x, eps=1e-6, at=at)
    for idx in at:
        assert grad[idx] == pytest.approx(fd[idx], rel=1e-5, abs=1e-9), idx


def test_masked_out_pixels_neither_count_nor_follow_the_target(rng):
    h, w, c = 30, 40, 3
    x, y = images(rng, h, w, c)
    mask = border_mask(rng, h, w)
    y_out = y.copy()
    y_out[~mask] = 1 - y_out[~mask]
    v0, g0 = loss.photometric_loss(x, y, mask)
    v1, g1 = loss.photometric_loss(x, y_out, mask)
    assert float(v1) == float(v0)
    np.testing.assert_array_equal(g1, g0)


# -- the target's statistics, cached per target ----------------------------------------------

def test_target_statistics_are_computed_once_per_target(be, rng):
    """The first loss against a target launches ssim_stats, fwd and bwd; later ones only fwd
    and bwd; another target (even with equal values) gets its own statistics, and they go
    when it goes."""
    h, w = 33, 47
    x, y = images(rng, h, w, 3)
    dx = be.asarray(x, tag="image")
    target = be.asarray(y, tag="loss")
    loss.clear_cache()
    start = be.launch_count
    v1, g1 = loss.photometric_loss(dx, target)
    assert be.launch_count - start == 3
    start = be.launch_count
    v2, g2 = loss.photometric_loss(dx, target)
    assert be.launch_count - start == 2
    assert float(v2) == float(v1)
    np.testing.assert_array_equal(be.to_numpy(g2), be.to_numpy(g1))

    other = be.asarray(np.clip(y + 0.1, 0, 1).astype(np.float32), tag="loss")
    start = be.launch_count
    v3, _ = loss.photometric_loss(dx, other)
    assert be.launch_count - start == 3
    assert float(v3) != float(v1)
    assert float(v3) == pytest.approx(reference_loss(x.astype(np.float64),
                                                     be.to_numpy(other).astype(np.float64),
                                                     None), rel=1e-5)

    held = be.memory.current_bytes("loss")
    del other, v3
    gc.collect()
    assert held - be.memory.current_bytes("loss") >= h * w * 3 * 2 * 4  # its statistics


def test_a_float64_target_is_cached_too(rng):
    """A target of another dtype is converted once, with its statistics."""
    be = get_backend("cpu")
    x, y = images(rng, 20, 30, 3, np.float64)
    loss.photometric_loss(x, y)
    start = be.launch_count
    value, grad = loss.photometric_loss(x, y)
    assert be.launch_count - start == 2
    assert grad.dtype == np.float64 and value.dtype == np.float32


def test_a_cache_hit_counts_the_statistics_in_open_trackers(rng):
    """memory.track around a step that reuses cached statistics counts them, as if made
    there (a step holds them either way)."""
    from splat_lion import memory

    be = get_backend("cpu")
    x, y = images(rng, 24, 40, 3)
    loss.photometric_loss(x, y)  # the statistics are made here, before the tracker
    with memory.track(be) as t:
        loss.photometric_loss(x, y)
    assert t.peak_bytes("loss") >= 24 * 40 * 3 * 2 * 4


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


def test_a_mask_without_valid_pixels_is_a_clear_error(rng):
    x, y = images(rng, 8, 9, 3)
    with pytest.raises(ValueError, match="no valid pixel"):
        loss.photometric_loss(x, y, np.zeros((8, 9), bool))


# -- counts on the CuPy stand-in ---------------------------------------------------------------

def measure_counts() -> dict:
    """What one photometric_loss costs on the cuda backend after a warm-up (the stand-in must
    be installed as `cupy`): {"plain": counts, "masked": counts, "read": counts of float()}."""
    be = get_backend("cuda")
    rng = np.random.default_rng(0)
    x, y = images(rng, 64, 64, 3)
    dx, dy = be.asarray(x, tag="image"), be.asarray(y, tag="loss")
    dmask = be.asarray(border_mask(rng, 64, 64), tag="loss")
    out = {}
    for name, mask in (("plain", None), ("masked", dmask)):
        loss.photometric_loss(dx, dy, mask)  # warm-up: compiles, caches statistics or count
        with cupy_standin.counting() as c:  # the last call's outputs held, as in a fit
            value, _grad = loss.photometric_loss(dx, dy, mask)
        out[name] = c.as_dict()
    with cupy_standin.counting() as c:
        float(value)
    out["read"] = c.as_dict()
    return out


@pytest.fixture(scope="module")
def counts():
    if cupy_standin.installed():
        return measure_counts()
    tests = Path(__file__).parent
    code = ("import json, cupy_standin; cupy_standin.install(); import test_ssim; "
            "print('COUNTS ' + json.dumps(test_ssim.measure_counts()))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tests, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    line = [x for x in run.stdout.splitlines() if x.startswith("COUNTS ")][-1]
    return json.loads(line[len("COUNTS "):])


@pytest.mark.parametrize("case", ["plain", "masked"])
def test_one_loss_is_two_launches_and_no_sync(counts, case):
    """After warm-up: ssim_fwd and ssim_bwd (the third launch, ssim_stats, only the first time
    a target is seen), no host sync, no other device operation, no allocation (the scratch,
    the value and dL/dimage are workspaces; the last step's, still held, are not reused)."""
    c = counts[case]
    print(case, c)
    assert c["launches"] == 2 and c["syncs"] == 0 and c["explicit_syncs"] == 0
    assert c["ops"] == 0 and c["transfers"] == 0
    assert c["allocations"] == 0


def test_reading_the_value_is_the_one_sync(counts):
    assert counts["read"]["syncs"] == 1 and counts["read"]["launches"] == 0
