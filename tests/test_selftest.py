"""kernels/selftest.cu against its reference."""

from __future__ import annotations

import numpy as np
import pytest

from splat_lion import selftest
from splat_lion.reference import selftest as ref

pytestmark = pytest.mark.usefixtures("poisoned_outputs")


@pytest.mark.parametrize("n", [0, 1, 255, 256, 100_001])
def test_saxpy_matches_reference(be, rng, n):
    x = rng.standard_normal(n).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    want = ref.selftest_saxpy(x, y, -1.25)
    got = be.to_numpy(selftest.selftest_saxpy(be.asarray(x, tag="scratch"),
                                              be.asarray(y, tag="scratch").copy(), -1.25, be))
    np.testing.assert_allclose(got, want, rtol=2e-7, atol=2e-7)  # GPUs may fuse into an FMA


@pytest.mark.parametrize("n", [0, 1, 31, 257, 1_000_000])
def test_block_sum_matches_reference(be, rng, n):
    x = rng.standard_normal(n).astype(np.float32)
    got = selftest.selftest_block_sum(be.asarray(x, tag="scratch"), be)
    assert got == pytest.approx(ref.selftest_block_sum(x), abs=1e-6 * max(1.0, float(np.abs(x).sum())))


def test_wrappers_check_their_arguments(cpu):
    x = np.zeros(10, np.float32)
    with pytest.raises(TypeError, match="x: expected dtype float32, got float64"):
        selftest.selftest_saxpy(x.astype(np.float64), x, 1.0, cpu)
    with pytest.raises(ValueError, match=r"y: expected shape \[10\], got \[9\]"):
        selftest.selftest_saxpy(x, x[:9].copy(), 1.0, cpu)
    with pytest.raises(ValueError, match="x: must be C-contiguous"):
        selftest.selftest_block_sum(np.zeros(20, np.float32)[::2], cpu)
