"""Floating-point parity between the backends: the CPU runtime flushes subnormals to zero as
the GPU does under CuPy's -ftz=true, so a kernel gives the same bits on both.

The values below are pinned by hand from what -ftz=true means: float arithmetic reads a
subnormal input as a zero and writes a subnormal result as a zero (sign kept); loads and
stores leave subnormals alone. The NumPy references do not model this (NumPy keeps
subnormals); the kernel tests compare them on random normal data, where no subnormal occurs.
"""

from __future__ import annotations

import numpy as np

from splat_lion.optim import lion_step

TINY = float(np.finfo(np.float32).tiny)  # 1.1754944e-38, the smallest normal float32

# One Lion step, lr 0.1, no weight decay, beta1 0.9, beta2 0.99; each element is a splat.
#   p, m, g before -> p, m after, and why
CASES = [
    (1.0, 1e-40, 0.0, 1.0, 0.0),  # subnormal momentum: read as 0, sign 0, p unchanged, m -> 0
    (2.0, -1e-40, 0.0, 2.0, 0.0),  # the same, negative (-0 * 0.99 + 0 = +0)
    # normal momentum, but 0.9 * m = 1.08e-38 is subnormal: written as 0, sign 0; 0.99 * m is normal
    (3.0, 1.2e-38, 0.0, 3.0, 1.188e-38),
    (4.0, 1.5e-38, 0.0, 3.9, 1.4850001e-38),  # 0.9 * m = 1.35e-38, normal: sign 1, p -= lr
    (1e-40, 0.0, 0.0, 0.0, 0.0),  # a subnormal parameter becomes 0 once arithmetic touches it
    (5.0, 0.0, 1e-40, 5.0, 0.0),  # a subnormal gradient counts as 0
    (6.0, 1e-3, 0.0, 5.9, 0.0009900001),  # an ordinary element, for contrast
    (1e-40, 1e-40, 0.0, 1e-40, 1e-40),  # an invisible splat: no arithmetic, bits kept
]


def test_cases_are_what_they_say():
    """The momenta of the first rows really are subnormal or lead to a subnormal update."""
    m = np.float32([c[1] for c in CASES])
    assert 0 < abs(m[0]) < TINY and 0 < abs(m[1]) < TINY
    assert m[2] >= TINY and 0 < np.float32(0.9) * m[2] < TINY
    assert np.float32(0.9) * m[3] >= TINY


def test_lion_step_flushes_subnormals_like_the_gpu(be):
    p0, m0, g0, p1, m1 = (np.float32([c[i] for c in CASES]) for i in range(5))
    p = be.asarray(p0, tag="params")
    m = be.asarray(m0, tag="optimizer")
    g = be.asarray(g0, tag="grads")
    visible = be.asarray(np.arange(len(CASES)) < len(CASES) - 1, tag="scratch")
    segments = np.array([[0, len(CASES), 1]], np.int64)
    hyper = np.float32([[0.1, 0.0]])
    lion_step(p, g, m, segments, hyper, 0.9, 0.99, visible, backend=be)
    # bit for bit: +0 and -0 differ, and so would a subnormal left behind
    np.testing.assert_array_equal(be.to_numpy(p).view(np.uint32), p1.view(np.uint32))
    np.testing.assert_array_equal(be.to_numpy(m).view(np.uint32), m1.view(np.uint32))
