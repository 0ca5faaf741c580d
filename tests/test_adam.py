"""kernels/adam.cu against reference/adam.py, and the Adam optimizer: its bias correction,
its wrapper's checks."""

from __future__ import annotations

import numpy as np
import pytest
from optim_cases import check_step_all_against_reference

from splat_lion import Adam
from splat_lion.optim import adam_step
from splat_lion.reference.adam import adam_step as adam_ref

pytestmark = pytest.mark.usefixtures("poisoned_outputs")

SEGMENT = np.array([[0, 8, 1]], np.int64)  # one segment of 8 floats


def adam_reference_step(opt, lay, p, g, state, hyper, t, visible):
    p, m, v = adam_ref(p, g, state[0], state[1], lay.segment_table(), hyper, opt.beta1,
                       opt.beta2, opt.eps, t + 1, visible)
    return p, (m, v)


@pytest.mark.parametrize("masked", [False, True], ids=["all", "masked"])
def test_step_all_matches_reference_over_many_steps(be, rng, masked):
    check_step_all_against_reference(be, rng, "adam", masked, adam_reference_step)


@pytest.mark.parametrize("beta1,beta2", [(0.9, 0.999), (0.5, 0.9), (0.0, 0.99)])
def test_bias_correction_makes_every_first_step_lr_long(be, rng, beta1, beta2):
    """At t = 1 the corrected moments are g and g², so each element moves by lr * sign(g),
    whatever the betas and the gradient's size (torch.optim.Adam; no reference involved)."""
    p0 = rng.standard_normal(1000).astype(np.float32)
    g = (rng.standard_normal(1000) * 10.0 ** rng.uniform(-3, 3, 1000)).astype(np.float32)
    p = be.asarray(p0.copy(), tag="params")
    Adam(0.01, beta1=beta1, beta2=beta2, backend=be).step("x", p, be.asarray(g, tag="grads"))
    np.testing.assert_allclose(be.to_numpy(p) - p0, -0.01 * np.sign(g), rtol=1e-4, atol=1e-6)


def test_adam_step_checks_its_step_and_moment_dtypes(cpu):
    x = np.zeros(8, np.float32)
    hyper = np.float32([[0.1, 0]])
    for step in (0, 1.5, True):
        with pytest.raises(ValueError, match="step: expected an int >= 1"):
            adam_step(x, x.copy(), x.copy(), x.copy(), SEGMENT, hyper, 0.9, 0.999, 1e-15, step,
                      backend=cpu)
    with pytest.raises(TypeError, match="exp_avg_sq: expected dtype float32, got float16"):
        adam_step(x, x.copy(), x.copy(), np.zeros(8, np.float16), SEGMENT, hyper, 0.9, 0.999,
                  1e-15, 1, backend=cpu)
