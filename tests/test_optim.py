"""What Lion and Adam share: masks and padding, one launch per step, state checkpoints and
surgery, convergence on a quadratic and on Rosenbrock, builders and bad input. Each kernel
against its reference: test_lion.py, test_adam.py."""

from __future__ import annotations

import numpy as np
import pytest
from optim_cases import KINDS, host_flat, make

from splat_lion import Adam, Flat, Layout, Lion, LrEntry, LrTable, kernels


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


# -- builders and bad input ----------------------------------------------------------------

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

