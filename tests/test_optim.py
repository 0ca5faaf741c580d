"""Fused Lion and Adam: kernels vs references, masks, launches, state, convergence, errors."""

from __future__ import annotations

import numpy as np
import pytest

from splat_lion import Adam, Flat, Layout, Lion, LrEntry, LrTable, kernels
from splat_lion.optim.lr_table import LION_FROM_POINTS
from splat_lion.reference.adam import adam_step as adam_ref
from splat_lion.reference.common import bf16_to_float, float_to_bf16
from splat_lion.reference.lion import lion_step as lion_ref

KINDS = ["lion", "lion-bf16", "adam"]


def make(kind, be, lr=None, **kw):
    table = kw.pop("lr_table", LrTable.lion_default(extent=2.0, steps=20))
    if kind == "adam":
        return Adam(lr or 1e-2, lr_table=table, backend=be, **kw)
    return Lion(lr or 1e-3, lr_table=table, backend=be,
                momentum_dtype="bfloat16" if kind == "lion-bf16" else "float32", **kw)


def host_flat(rng, lay, scale=1.0):
    """Random values on every attribute, zero padding (as real buffers have)."""
    host = np.zeros(lay.total, np.float32)
    for s in lay.segments:
        host[s.begin:s.end] = rng.standard_normal(s.end - s.begin) * scale
    return host


def reference_step(kind, opt, lay, p, g, state, t, visible):
    """One step of the reference, with the lr table read at iteration t; returns p, state."""
    hyper = np.array([[opt.lr * opt.lr_table.scale(n, t), opt.weight_decay] for n in lay.names],
                     np.float32)
    seg = lay.segment_table()
    if kind == "adam":
        p, m, v = adam_ref(p, g, state[0], state[1], seg, hyper, opt.beta1, opt.beta2, opt.eps,
                           t + 1, visible)
        return p, (m, v)
    p, m = lion_ref(p, g, state[0], seg, hyper, opt.beta1, opt.beta2, visible)
    return p, (m,)


def assert_matches(be, got, want, what):
    if be.name == "cpu":  # same operations in the same order: bit for bit
        np.testing.assert_array_equal(got, want, err_msg=what)
    else:  # GPUs fuse multiply-adds: rare last-bit differences (a Lion sign may flip at c ~ 0)
        close = np.isclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-5, atol=1e-6)
        assert close.mean() > 1 - 1e-4, f"{what}: {(~close).sum()} elements differ"


@pytest.mark.parametrize("masked", [False, True], ids=["all", "masked"])
@pytest.mark.parametrize("kind", KINDS)
def test_step_all_matches_reference_over_many_steps(be, rng, kind, masked):
    lay = Layout.gaussians(int(rng.integers(50, 300)), 3)
    opt = make(kind, be, weight_decay=0.1)
    p_host = host_flat(rng, lay)
    params = Flat(lay, be.asarray(p_host.copy(), tag="params"))
    state_dtype = np.uint16 if kind == "lion-bf16" else np.float32
    ref_state = tuple(np.zeros(lay.total, state_dtype) for _ in opt.state_names)
    for t in range(12):
        g_host = host_flat(rng, lay, scale=float(rng.uniform(0.01, 3)))
        vis_host = rng.random(lay.count) < 0.7 if masked else None
        vis = None if vis_host is None else be.asarray(vis_host, tag="scratch")
        opt.step_all(params, Flat(lay, be.asarray(g_host, tag="grads")), visible=vis)
        p_host, ref_state = reference_step(kind, opt, lay, p_host, g_host, ref_state, t, vis_host)
        opt.end_iteration()
        assert_matches(be, be.to_numpy(params.data), p_host, f"params after step {t}")
    for name, want in zip(opt.state_names, ref_state):
        got = be.to_numpy(opt.flat_state[name].data)
        if state_dtype == np.uint16:
            got, want = bf16_to_float(got), bf16_to_float(want)
        assert_matches(be, got, want, name)


@pytest.mark.parametrize("kind", KINDS)
def test_masked_splats_and_padding_are_unchanged_bit_for_bit(be, rng, kind):
    lay = Layout.gaussians(333, 3)
    opt = make(kind, be)
    params = Flat(lay, be.asarray(host_flat(rng, lay), tag="params"))
    # two steps so the state is non-zero, then a masked step
    for _ in range(2):
        opt.step_all(params, Flat(lay, be.asarray(host_flat(rng, lay), tag="grads")))
    hidden = rng.random(lay.count) < 0.5
    before_p = be.to_numpy(params.data).copy()
    before_s = {k: be.to_numpy(v.data).copy() for k, v in opt.flat_state.items()}
    opt.step_all(params, Flat(lay, be.asarray(host_flat(rng, lay), tag="grads")),
                 visible=be.asarray(~hidden, tag="scratch"))
    after = Flat(lay, be.to_numpy(params.data))
    before = Flat(lay, before_p)
    for name in lay.names:
        np.testing.assert_array_equal(after[name][hidden].view(np.uint32),
                                      before[name][hidden].view(np.uint32))
        assert (after[name][~hidden] != before[name][~hidden]).any()
        for k, buf in opt.flat_state.items():
            got = lay.view(be.to_numpy(buf.data), name)[hidden]
            np.testing.assert_array_equal(got, lay.view(before_s[k], name)[hidden])
    real = np.zeros(lay.total, bool)
    for s in lay.segments:
        real[s.begin:s.end] = True
    assert not be.to_numpy(params.data)[~real].any(), "padding changed"


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


@pytest.mark.parametrize("kind", KINDS)
def test_step_all_is_one_launch_and_changing_lr_never_recompiles(be, rng, kind):
    lay = Layout.gaussians(100, 3)
    opt = make(kind, be)
    params = Flat(lay, be.asarray(host_flat(rng, lay), tag="params"))
    grads = Flat(lay, be.asarray(host_flat(rng, lay), tag="grads"))
    opt.step_all(params, grads)  # compiles
    modules = len(kernels._modules)
    for _ in range(5):
        opt.end_iteration()  # the means lr decays: a new table every step
        before = be.launch_count
        opt.step_all(params, grads, visible=be.asarray(rng.random(100) < 0.5, tag="scratch"))
        assert be.launch_count == before + 1
    assert make(kind, be, lr=0.5).effective_lr("quats") != opt.effective_lr("quats")
    make(kind, be, lr=0.5).step_all(params, grads)
    assert len(kernels._modules) == modules


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_round_trip_continues_identically(be, rng, kind):
    lay = Layout.gaussians(64, 1)
    a = make(kind, be)
    pa = Flat(lay, be.asarray(host_flat(rng, lay), tag="params"))
    extra = be.asarray(rng.standard_normal((5, 3)).astype(np.float32), tag="params")
    grads = [host_flat(rng, lay) for _ in range(6)]
    extra_grads = [rng.standard_normal((5, 3)).astype(np.float32) for _ in range(6)]
    for t in range(3):
        a.step_all(pa, Flat(lay, be.asarray(grads[t], tag="grads")))
        a.step("extra", extra, be.asarray(extra_grads[t], tag="grads"))
        a.end_iteration()
    b = make(kind, be)
    b.load_state_dict(a.state_dict())
    pb = Flat(lay, be.asarray(be.to_numpy(pa.data).copy(), tag="params"))
    extra_b = be.asarray(be.to_numpy(extra).copy(), tag="params")
    for t in range(3, 6):
        for opt, p, e in ((a, pa, extra), (b, pb, extra_b)):
            opt.step_all(p, Flat(lay, be.asarray(grads[t], tag="grads")))
            opt.step("extra", e, be.asarray(extra_grads[t], tag="grads"))
            opt.end_iteration()
    np.testing.assert_array_equal(be.to_numpy(pa.data), be.to_numpy(pb.data))
    np.testing.assert_array_equal(be.to_numpy(extra), be.to_numpy(extra_b))
    assert b.iteration == a.iteration == 6


def test_state_dict_of_another_optimizer_is_refused(cpu):
    lion = make("lion", cpu)
    lion.step("x", np.zeros(4, np.float32), np.ones(4, np.float32))
    with pytest.raises(ValueError, match="is for 'Lion', not Adam"):
        make("adam", cpu).load_state_dict(lion.state_dict())
    with pytest.raises(ValueError, match="momentum has dtype float32.*uint16"):
        make("lion-bf16", cpu).load_state_dict(lion.state_dict())


@pytest.mark.parametrize("kind", KINDS)
def test_gather_keeps_params_and_state_aligned(be, rng, kind):
    """Densify mid-run: gathering params and state alike continues like the reference does
    on gathered arrays; clones (index -1 for state) start from zero state."""
    lay = Layout.gaussians(40, 1)
    opt = make(kind, be)
    p_host = host_flat(rng, lay)
    params = Flat(lay, be.asarray(p_host.copy(), tag="params"))
    for _ in range(3):
        opt.step_all(params, Flat(lay, be.asarray(host_flat(rng, lay), tag="grads")))
    keep = rng.permutation(40)[:30]  # prune 10, shuffle the rest
    clones = keep[:5]
    param_index = np.concatenate([keep, clones])
    state_index = np.concatenate([keep, -np.ones(5, np.int64)])
    new = lay.with_count(35)
    state_before = {k: be.to_numpy(v.data).copy() for k, v in opt.flat_state.items()}
    params = Flat(new, lay.gather(params.data, be.asarray(param_index, tag="scratch"), 35,
                                  backend=be))
    opt.gather(be.asarray(state_index, tag="scratch"), 35)
    for k, before in state_before.items():
        got = opt.flat_state[k]
        assert got.layout == new
        for name in lay.names:
            want = lay.view(before, name)[keep]
            np.testing.assert_array_equal(be.to_numpy(got[name])[:30], want)
            assert not be.to_numpy(got[name])[30:].any(), "clones must start with zero state"
    # and stepping goes on with the new count
    opt.step_all(params, Flat(new, be.asarray(host_flat(rng, new), tag="grads")))
    with pytest.raises(ValueError, match="call optimizer.gather"):
        opt.step_all(Flat(lay, be.asarray(host_flat(rng, lay), tag="params")),
                     Flat(lay, be.asarray(host_flat(rng, lay), tag="grads")))


def test_zero_state_clears_one_attribute(cpu, rng):
    lay = Layout.gaussians(20, 0)
    opt = make("adam", cpu)
    params = Flat(lay, host_flat(rng, lay))
    opt.step_all(params, Flat(lay, host_flat(rng, lay)))
    opt.zero_state("opacities")
    for buf in opt.flat_state.values():
        assert not buf.opacities.any() and buf.means.any()
    with pytest.raises(KeyError, match="unknown attribute 'opacity'"):
        opt.zero_state("opacity")


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


# -- convergence --------------------------------------------------------------------------

def run(opt, be, f_grad, x0, steps):
    x = be.asarray(np.array(x0, np.float32), tag="params")
    for _ in range(steps):
        opt.step("x", x, be.asarray(f_grad(be.to_numpy(x)).astype(np.float32), tag="grads"))
        opt.end_iteration()
    return be.to_numpy(x)


@pytest.mark.parametrize("kind", KINDS)
def test_converges_on_a_quadratic(be, rng, kind):
    target = rng.uniform(-2, 2, 37).astype(np.float32)
    curvature = rng.uniform(0.5, 5, 37).astype(np.float32)
    decay = LrTable({"x": LrEntry(1.0, final_scale=0.01, decay_steps=1200)})
    opt = make(kind, be, lr=0.05, lr_table=decay)
    x = run(opt, be, lambda x: curvature * (x - target), np.zeros(37), 1500)
    assert np.abs(x - target).max() < 0.02


@pytest.mark.parametrize("kind", KINDS)
def test_converges_on_rosenbrock(be, kind):
    def grad(x):
        a, b = x
        return np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])

    lr, final = (0.1, 0.01) if kind == "adam" else (0.01, 0.001)
    decay = LrTable({"x": LrEntry(1.0, final_scale=final, decay_steps=4000)})
    opt = make(kind, be, lr=lr, lr_table=decay)
    x = run(opt, be, grad, [-1.2, 1.0], 4000)
    assert np.abs(x - 1.0).max() < 0.05, x


# -- named tensors and bad input ----------------------------------------------------------

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


def test_builders_return_new_optimizers():
    a = Lion(1e-3)
    b = a.with_betas(0.95, 0.98).with_weight_decay(0.1)
    assert (a.beta1, a.beta2, a.weight_decay) == (0.9, 0.99, 0.0)
    assert (b.lr, b.beta1, b.beta2, b.weight_decay) == (1e-3, 0.95, 0.98, 0.1)
    with pytest.raises(AttributeError):
        a.lr = 5.0
    assert Adam(1e-3).with_betas(0.8, 0.9).beta2 == 0.9


@pytest.mark.parametrize("make_bad,match", [
    (lambda: Lion(float("nan")), "lr must be a finite number"),
    (lambda: Lion(-1e-3), "lr must be a finite number >= 0"),
    (lambda: Lion(1e-3, beta1=1.0), r"beta1 must lie in \[0, 1\)"),
    (lambda: Lion(1e-3, beta2=-0.1), r"beta2 must lie in \[0, 1\)"),
    (lambda: Lion(1e-3, weight_decay=float("inf")), "weight_decay must be a finite"),
    (lambda: Lion(1e-3, momentum_dtype="float16"), "momentum_dtype must be one of"),
    (lambda: Adam(1e-3, eps=-1.0), "eps must be a finite"),
])
def test_bad_settings_are_clear_errors(make_bad, match):
    with pytest.raises(ValueError, match=match):
        make_bad()


def test_bad_arrays_are_clear_errors(cpu, rng):
    lay = Layout.gaussians(10, 0)
    opt = Lion(1e-3, backend=cpu)
    p = Flat(lay, host_flat(rng, lay))
    g = Flat(lay, host_flat(rng, lay))
    with pytest.raises(TypeError, match="both must be Flat"):
        opt.step_all(p.data, g.data)
    with pytest.raises(ValueError, match="grads layout"):
        opt.step_all(p, Flat(lay.with_count(11), np.zeros(lay.with_count(11).total, np.float32)))
    with pytest.raises(ValueError, match=r"visible: expected one entry per splat \(10\), got 9"):
        opt.step_all(p, g, visible=np.ones(9, bool))
    with pytest.raises(TypeError, match="visible: expected dtype bool"):
        opt.step_all(p, g, visible=np.ones(10, np.uint8))
    with pytest.raises(TypeError, match="grad 'x': expected dtype float32, got float64"):
        opt.step("x", np.zeros(4, np.float32), np.zeros(4))
    with pytest.raises(ValueError, match="grad 'x': expected shape"):
        opt.step("x", np.zeros(4, np.float32), np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="param 'y': must be C-contiguous"):
        opt.step("y", np.zeros(8, np.float32)[::2], np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="16-byte aligned"):
        opt.step("z", np.zeros(9, np.float32)[1:], np.zeros(8, np.float32))


# -- bfloat16 bits ----------------------------------------------------------------------

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
