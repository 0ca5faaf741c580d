"""kernels/lion.cu against reference/lion.py, and the Lion optimizer: sign(0), NaN, named
tensors, bfloat16 momentum (ties, NaN), its state size, the cautious variant."""

from __future__ import annotations

import numpy as np
import pytest
from optim_cases import check_step_all_against_reference, host_flat, make

from splat_lion import Flat, Layout, Lion, LrTable
from splat_lion.optim import lion_step
from splat_lion.optim.lr_table import LION_FROM_POINTS
from splat_lion.reference.common import bf16_to_float, float_to_bf16
from splat_lion.reference.lion import lion_step as lion_ref

pytestmark = pytest.mark.usefixtures("poisoned_outputs")


def lion_reference_step(opt, lay, p, g, state, hyper, t, visible):
    p, m = lion_ref(p, g, state[0], lay.segment_table(), hyper, opt.beta1, opt.beta2, visible,
                    cautious=opt.cautious)
    return p, (m,)


@pytest.mark.parametrize("cautious", [False, True], ids=["plain", "cautious"])
@pytest.mark.parametrize("masked", [False, True], ids=["all", "masked"])
@pytest.mark.parametrize("kind", ["lion", "lion-bf16"])
def test_step_all_matches_reference_over_many_steps(be, rng, kind, masked, cautious):
    check_step_all_against_reference(be, rng, kind, masked, lion_reference_step,
                                     cautious=cautious)


@pytest.mark.parametrize("kind", ["lion", "lion-bf16"])
def test_sign_of_zero_is_zero_and_nan_is_not_dropped(be, kind):
    opt = make(kind, be, lr_table=None)
    p = be.asarray(np.array([1.0, -2.0, 3.0, 4.0, 5.0], np.float32), tag="params")
    opt.step("x", p, be.zeros(5, np.float32, tag="grads"))  # m = 0, g = 0: c = 0
    np.testing.assert_array_equal(be.to_numpy(p), [1.0, -2.0, 3.0, 4.0, 5.0])
    g = be.asarray(np.array([1.0, -1.0, 0.0, np.nan, 0.0], np.float32), tag="grads")
    opt.step("x", p, g)
    got = be.to_numpy(p)
    lr = np.float32(opt.lr)
    np.testing.assert_array_equal(got[[0, 1, 2, 4]],
                                  np.float32([1.0 - lr, -2.0 + lr, 3.0, 5.0]))
    assert np.isnan(got[3]), "a NaN gradient must surface in the parameter"


@pytest.mark.parametrize("kind", ["lion", "lion-bf16"])
def test_sign_of_minus_zero_is_plus_zero_as_numpys(be, kind):
    """c = -0 (m = -0, g = -0) with p = -0 and no weight decay: p - lr * (+0 + -0) = -0 - +0 =
    -0, where sign(-0) = -0 would give -0 - -0 = +0. The reference's np.sign(-0.0) is +0."""
    p0 = np.float32([-0.0, -0.0, 1.0, -0.0])
    m0 = np.float32([-0.0, 0.0, -0.0, -0.0])
    g0 = np.float32([-0.0, -0.0, -0.0, 0.0])
    segments, hyper = np.array([[0, 4, 1]], np.int64), np.float32([[0.1, 0.0]])
    m_host = float_to_bf16(m0) if kind == "lion-bf16" else m0
    want_p, _ = lion_ref(p0, g0, m_host, segments, hyper, 0.9, 0.99)
    p, m = be.asarray(p0.copy(), tag="params"), be.asarray(m_host.copy(), tag="optimizer")
    lion_step(p, be.asarray(g0, tag="grads"), m, segments, hyper, 0.9, 0.99, backend=be)
    np.testing.assert_array_equal(be.to_numpy(p).view(np.uint32), want_p.view(np.uint32))


def test_step_works_on_any_named_array_and_checks_shape(cpu, rng):
    opt = Lion(0.1, lr_table=LrTable.lion_default(), backend=cpu)
    assert opt.lr_scale("anything") == 1.0
    assert opt.lr_scale("opacities") == pytest.approx(50.0 * LION_FROM_POINTS)
    x = rng.standard_normal((3, 7)).astype(np.float32)  # 21 floats: a partial last chunk
    before = x.copy()
    g = rng.standard_normal((3, 7)).astype(np.float32)
    opt.step("w", x, g)
    want, _ = lion_ref(before.ravel(), g.ravel(), np.zeros(21, np.float32),
                       np.array([[0, 21, 1]]), np.float32([[0.1, 0]]), 0.9, 0.99)
    np.testing.assert_array_equal(x.ravel(), want)
    with pytest.raises(ValueError, match=r"param 'w': shape \[21\] differs"):
        opt.step("w", x.ravel().copy(), g.ravel().copy())


@pytest.mark.parametrize("kind,ratio", [("lion", 0.5), ("lion-bf16", 0.25)])
def test_lion_state_is_half_of_adams_and_bf16_a_quarter(cpu, rng, kind, ratio):
    lay = Layout.gaussians(1000, 3)
    sizes = {}
    for k in (kind, "adam"):
        opt = make(k, cpu)
        opt.step_all(Flat(lay, host_flat(rng, lay)), Flat(lay, host_flat(rng, lay)))
        sizes[k] = opt.state_bytes()
    assert sizes["adam"] == 2 * lay.total * 4
    assert sizes[kind] == ratio * sizes["adam"]


def test_lion_step_refuses_momentum_of_another_dtype(cpu):
    x = np.zeros(8, np.float32)
    with pytest.raises(TypeError, match="momentum: expected float32 or uint16 .*got float16"):
        lion_step(x, x.copy(), np.zeros(8, np.float16), np.array([[0, 8, 1]], np.int64),
                  np.float32([[0.1, 0]]), 0.9, 0.99, backend=cpu)


# -- bfloat16 momentum ------------------------------------------------------------------

def test_bfloat16_rounds_to_nearest_even():
    one = np.float32(1.0)
    ulp = np.float32(2.0**-7)  # bf16 spacing at 1.0
    values = np.float32([one + ulp / 2,          # tie -> even (1.0)
                         one + 3 * ulp / 2,      # tie -> even (1 + 2 ulp)
                         one + ulp / 2 + ulp / 8,  # above the tie -> up
                         -(one + ulp / 4),       # below the tie -> down in magnitude
                         np.inf, -np.inf, np.finfo(np.float32).max])
    want = np.float32([1.0, one + 2 * ulp, one + ulp, -1.0, np.inf, -np.inf, np.inf])
    np.testing.assert_array_equal(bf16_to_float(float_to_bf16(values)), want)
    assert np.isnan(bf16_to_float(float_to_bf16(np.float32([np.nan])))).all()


def test_bf16_kernel_rounding_matches_reference(be, rng):
    """With lr 0 the Lion step only rewrites momentum: m = b2*m + (1-b2)*g, rounded to bf16."""
    n = 4099
    g = (rng.standard_normal(n) * 10.0 ** rng.uniform(-30, 30, n)).astype(np.float32)
    opt = Lion(0.0, beta2=0.0, momentum_dtype="bfloat16", backend=be)
    opt.step("x", be.zeros(n, np.float32, tag="params"), be.asarray(g, tag="grads"))
    got = be.to_numpy(opt.state_dict()["named"]["x"]["momentum"])
    np.testing.assert_array_equal(got, float_to_bf16(g))


def test_bf16_rounding_breaks_ties_to_even(be):
    """Momenta exactly halfway between two bfloat16 values, with even and odd lower neighbours,
    positive and negative, across the hot path (full chunks) and the cold path (the tail)."""
    words = np.uint32([0x3f80, 0x3f81, 0xc040, 0xc041, 0x0d80, 0x617f, 0x7f7f])  # even, odd
    ties = ((words << 16) | 0x8000).view(np.float32)  # halfway to the next bfloat16
    g = np.tile(ties, 3)[:17]  # 17: four full chunks and a partial one
    opt = Lion(0.0, beta2=0.0, momentum_dtype="bfloat16", backend=be)
    opt.step("x", be.zeros(g.size, np.float32, tag="params"), be.asarray(g, tag="grads"))
    got = be.to_numpy(opt.state_dict()["named"]["x"]["momentum"])
    np.testing.assert_array_equal(got, float_to_bf16(g))


def test_bf16_momentum_that_turns_nan_stays_nan(be):
    """beta2 = 0 and an infinite momentum: m = 0 * inf + g is NaN (the cold path rounds it: the
    hot path's rounding would carry a NaN into the sign bit)."""
    segments, hyper = np.array([[0, 8, 1]], np.int64), np.float32([[0.1, 0.0]])
    m0 = float_to_bf16(np.float32([np.inf, 1.0, -np.inf, 2.0, 3.0, 4.0, 5.0, 6.0]))
    g0 = np.float32([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    m = be.asarray(m0.copy(), tag="optimizer")
    p = be.zeros(8, np.float32, tag="params")
    lion_step(p, be.asarray(g0, tag="grads"), m, segments, hyper, 0.9, 0.0, backend=be)
    got = bf16_to_float(be.to_numpy(m))
    assert np.isnan(got[[0, 2]]).all()
    np.testing.assert_array_equal(got[4:], bf16_to_float(float_to_bf16(g0[4:])))


# -- the cautious variant ------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["lion", "lion-bf16"])
def test_cautious_lion_updates_only_where_the_step_agrees_with_the_gradient(be, kind):
    """m chosen so that sign(c) agrees with g, disagrees, or g or c is 0; 9 values: two full
    chunks (the hot path) and a tail (the cold path), no weight decay. Plain Lion moves every
    value with c != 0; cautious Lion only those where sign(c) = sign(g)."""
    m0 = np.float32([1.0, 1.0, -1.0, -1.0, 0.0, 1.0, 0.0, 20.0, -20.0])
    g0 = np.float32([1.0, -1.0, -1.0, 1.0, 0.0, 0.0, 2.0, -1.0, 1.0])
    # c = 0.9 m + 0.1 g: +, +, -, -, 0, +, +, +, -  against sign(g): +, -, -, +, 0, 0, +, -, +
    agree = np.array([1, 0, 1, 0, 0, 0, 1, 0, 0], bool)
    sign_c = np.float32([1, 1, -1, -1, 0, 1, 1, 1, -1])
    segments, hyper = np.array([[0, 9, 1]], np.int64), np.float32([[0.5, 0.0]])
    m_host = float_to_bf16(m0) if kind == "lion-bf16" else m0
    for cautious in (False, True):
        p = be.zeros(9, np.float32, tag="params")
        m = be.asarray(m_host.copy(), tag="optimizer")
        lion_step(p, be.asarray(g0, tag="grads"), m, segments, hyper, 0.9, 0.99,
                  cautious=cautious, backend=be)
        want = -0.5 * sign_c * (agree if cautious else 1)
        np.testing.assert_array_equal(be.to_numpy(p), want + 0)  # +0: -0.5 * 0 is -0
        want_p, want_m = lion_ref(np.zeros(9, np.float32), g0, m_host, segments, hyper, 0.9,
                                  0.99, cautious=cautious)
        np.testing.assert_array_equal(be.to_numpy(p), want_p)
        np.testing.assert_array_equal(be.to_numpy(m), want_m)  # the momentum as plain Lion's


@pytest.mark.parametrize("masked", [False, True], ids=["all", "masked"])
def test_cautious_lion_skips_a_nan_gradient_and_records_its_step(be, masked):
    """A NaN gradient gives no update (u*g > 0 is false) instead of a NaN parameter, but the
    kernel still records the step, so a fit stops as with plain Lion."""
    opt = Lion(0.1, cautious=True, backend=be)
    assert opt.config()["cautious"] is True
    lay = Layout.gaussians(10, 0)
    p = Flat(lay, be.asarray(np.ones(lay.total, np.float32), tag="params"))
    g_host = np.ones(lay.total, np.float32)
    g_host[lay.segment("means").begin + 4] = np.nan  # splat 1's y
    vis = be.asarray(np.ones(lay.count, bool), tag="scratch") if masked else None
    opt.step_all(p, Flat(lay, be.asarray(g_host, tag="grads")), visible=vis, check_finite=True)
    got = be.to_numpy(p.data)
    assert np.isfinite(got).all()
    assert got[lay.segment("means").begin + 4] == 1.0
    assert opt.nonfinite_step() == 0
