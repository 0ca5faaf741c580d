"""Reference of kernels/selftest.cu."""

from __future__ import annotations

import numpy as np


def selftest_saxpy(x: np.ndarray, y: np.ndarray, a: float) -> np.ndarray:
    """y_new = a * x + y, in float32 as the kernel computes it.  x, y: [n] float32."""
    return (np.float32(a) * x.astype(np.float32) + y.astype(np.float32)).astype(np.float32)


def selftest_block_sum(x: np.ndarray) -> float:
    """sum_i x[i] in float64.  x: [n]."""
    return float(np.sum(x, dtype=np.float64))
