"""What Lion and Adam share: masks and padding, the segment table (every width, tails,
attributes cut into pieces, the division by the width), one launch per step, the non-finite
record, state checkpoints and surgery, convergence on a quadratic and on Rosenbrock, builders
and bad input. Each kernel against its reference: test_lion.py, test_adam.py."""

from __future__ import annotations

import cupy_standin
import numpy as np
import pytest
from optim_cases import KINDS, assert_matches, host_flat, make

from splat_lion import Adam, Flat, Layout, Lion, LrEntry, LrTable, kernels
from splat_lion.optim import adam_step, base, lion_step
from splat_lion.reference.adam import adam_step as adam_ref
from splat_lion.reference.common import bf16_to_float, float_to_bf16
from splat_lion.reference.lion import lion_step as lion_ref


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


# -- the segment table ---------------------------------------------------------------------

def flat_step(kind, be, p, g, state, segments, hyper, visible, nonfinite=None, record_step=None):
    """One kernel step through the wrapper (lion_step or adam_step at t = 1), in place."""
    if kind == "adam":
        adam_step(p, g, state[0], state[1], segments, hyper, 0.9, 0.999, 1e-8, 1, visible,
                  nonfinite=nonfinite, record_step=record_step, backend=be)
    else:
        lion_step(p, g, state[0], segments, hyper, 0.9, 0.99, visible, nonfinite=nonfinite,
                  record_step=record_step, backend=be)


def reference_step(kind, p, g, state, segments, hyper, visible):
    if kind == "adam":
        return adam_ref(p, g, state[0], state[1], segments, hyper, 0.9, 0.999, 1e-8, 1, visible)
    return lion_ref(p, g, state[0], segments, hyper, 0.9, 0.99, visible)


def random_state(kind, rng, total):
    if kind == "adam":
        return (rng.standard_normal(total).astype(np.float32),
                rng.random(total).astype(np.float32))
    m = rng.standard_normal(total).astype(np.float32)
    return (float_to_bf16(m) if kind == "lion-bf16" else m,)


def check_table_against_reference(kind, be, rng, widths, count, masked):
    """A layout of one attribute per width, `count` splats, random state: one step of the
    kernel against the reference, bit for bit on the CPU; padding untouched."""
    lay = Layout([(f"w{w}", (w,)) for w in widths], count)
    segments = lay.segment_table()
    hyper = np.float32([[0.01 * (i + 1), 0.1] for i in range(len(widths))])
    p, g = (rng.standard_normal(lay.total).astype(np.float32) for _ in range(2))
    state = random_state(kind, rng, lay.total)
    visible = rng.random(count) < 0.5 if masked else None
    want = reference_step(kind, p, g, state, segments, hyper, visible)
    dp, dg = be.asarray(p.copy(), tag="params"), be.asarray(g, tag="grads")
    ds = tuple(be.asarray(s.copy(), tag="optimizer") for s in state)
    flat_step(kind, be, dp, dg, ds, segments, hyper,
              None if visible is None else be.asarray(visible, tag="scratch"))
    got = (be.to_numpy(dp), *(be.to_numpy(s) for s in ds))
    for name, a, b in zip(("params", "state", "state 2"), got, want):
        if a.dtype == np.uint16:
            a, b = bf16_to_float(a), bf16_to_float(b)
        assert_matches(be, a, b, f"{name}, widths {widths}, {count} splats")
    pad = np.ones(lay.total, bool)
    for s in lay.segments:
        pad[s.begin:s.end] = False
    np.testing.assert_array_equal(got[0][pad], p[pad], "padding changed")


@pytest.mark.parametrize("masked", [False, True], ids=["all", "masked"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_width_and_splat_count_matches_the_reference(be, rng, kind, masked):
    """Widths 1 to 9 and 45 (a chunk spans 1 to 4 splats), splat counts that leave partial
    last chunks and blocks, a grid of several blocks per attribute."""
    for count in (1, 2, 3, 5, 7, 33, 1027, 2 * base.BLOCK * base.CHUNKS_PER_THREAD + 5):
        check_table_against_reference(kind, be, rng, [1, 2, 3, 4, 5, 6, 7, 45], count, masked)
    check_table_against_reference(kind, be, rng, [8, 9, 1], 777, masked)


@pytest.mark.parametrize("kind", KINDS)
def test_a_lone_tensor_of_any_size_matches_the_reference(be, rng, kind):
    for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 4099):
        p, g = (rng.standard_normal(n).astype(np.float32) for _ in range(2))
        state = random_state(kind, rng, n)
        segments, hyper = np.array([[0, n, 1]], np.int64), np.float32([[0.01, 0.0]])
        want = reference_step(kind, p, g, state, segments, hyper, None)
        dp = be.asarray(p.copy(), tag="params")
        ds = tuple(be.asarray(s.copy(), tag="optimizer") for s in state)
        flat_step(kind, be, dp, be.asarray(g, tag="grads"), ds, segments, hyper, None)
        assert_matches(be, be.to_numpy(dp), want[0], f"{n} floats")


@pytest.mark.parametrize("masked", [False, True], ids=["all", "masked"])
@pytest.mark.parametrize("kind", KINDS)
def test_attributes_cut_into_pieces_and_launches_match_the_reference(be, rng, kind, masked,
                                                                     monkeypatch):
    """Attributes past MAX_ENTRY_ELEMENTS are cut at splat boundaries into several table
    entries, and tables of more than MAX_SEGMENTS entries take several launches: shown with
    a small limit (2^30 floats would take 4 GiB a buffer)."""
    monkeypatch.setattr(base, "MAX_ENTRY_ELEMENTS", 256)
    base._plan.cache_clear()
    try:
        widths = [1, 3, 4, 7, 45]
        lay = Layout([(f"w{w}", (w,)) for w in widths], 50)
        plans = base._plan(lay.segment_table().tobytes())
        # 45 floats a splat, 256 a piece: 4 splats a piece, 13 pieces; 7: 36 splats a piece
        used = [int((table["seg"][0]["len"] > 0).sum()) for table, _, _ in plans]
        assert used == [8, 8, 2]  # 1 + 1 + 1 + 2 + 13 entries
        check_table_against_reference(kind, be, rng, widths, 50, masked)
    finally:
        base._plan.cache_clear()


@pytest.mark.parametrize("width", [*range(2, 70), 127, 1000, 4097, 65535, 999_983, 2**28])
def test_division_by_the_width_is_exact_below_2_to_the_30(width):
    magic, shift = base.division_magic(width)
    assert 32 <= shift < 64 and 0 < magic < 2**32
    # every multiple of width and its neighbours near 0, near 2^30 and spread between
    q = np.concatenate([np.arange(0, 2000), (2**30 - 1) // width - np.arange(2000),
                        np.random.default_rng(width).integers(0, 2**30 // width, 20000)])
    q = np.unique(q[(q >= 0) & (q * width < 2**30)]).astype(np.uint64)
    e = np.concatenate([q * width, q * width + width - 1, q * width - 1])
    e = e[(e < 2**30) & (e >= 0)].astype(np.uint64)
    e = np.concatenate([e, np.uint64([2**30 - 1])])
    # the kernel's form: the high word of e * magic, shifted by shift - 32
    got = ((e * np.uint64(magic)) >> np.uint64(32)) >> np.uint64(shift - 32)
    np.testing.assert_array_equal(got, e // np.uint64(width))
    assert base.division_magic(1) == (1, 0)


def test_the_table_matches_the_kernels_struct():
    """40-byte entries, MAX_SEGMENTS of them: the CPU runtime checks the parameter's size."""
    assert base.SEGMENT_DTYPE.itemsize == 40
    assert base.TABLE_DTYPE.itemsize == 40 * base.MAX_SEGMENTS
    common = (kernels.kernel_dir() / "common.cuh").read_text()
    for name, value in base.DEFINES.items():
        assert f"#define {name} {value}\n" in common, f"{name}: the default differs from base.py"


# -- the non-finite record -----------------------------------------------------------------

def finite_run(kind, be, rng, bad_at=None, what="grads", steps=5):
    """step_all(check_finite=True) over `steps` iterations; at iteration `bad_at` one value of
    the gradients (or, for "params", the learning rate so large an update overflows) is bad."""
    lay = Layout.gaussians(40, 1)
    opt = make(kind, be)
    params = Flat(lay, be.asarray(host_flat(rng, lay), tag="params"))
    for t in range(steps):
        g = host_flat(rng, lay)
        if t == bad_at:
            g[lay.segment("scales").begin + 5] = np.nan
        opt.step_all(params, Flat(lay, be.asarray(g, tag="grads")), check_finite=True)
        opt.end_iteration()
    return opt, params


@pytest.mark.parametrize("kind", KINDS)
def test_a_nan_gradient_is_recorded_at_its_iteration(be, rng, kind):
    opt, _ = finite_run(kind, be, rng, bad_at=3)
    assert opt.nonfinite_step() == 3
    assert opt.nonfinite_step() == 3  # reading does not clear it
    opt.reset_nonfinite()
    assert opt.nonfinite_step() is None


@pytest.mark.parametrize("kind", KINDS)
def test_finite_steps_record_nothing(be, rng, kind):
    opt, _ = finite_run(kind, be, rng)
    assert opt.nonfinite_step() is None
    assert make(kind, be).nonfinite_step() is None  # never checked


@pytest.mark.parametrize("kind", KINDS)
def test_an_infinite_parameter_update_is_recorded(be, rng, kind):
    """lr 1e38 (Lion) or a huge weight decay: the updated parameters overflow."""
    lay = Layout.gaussians(20, 0)
    opt = make(kind, be, lr=3e38, lr_table=None, weight_decay=3e38)
    params = Flat(lay, be.asarray(host_flat(rng, lay, scale=10.0), tag="params"))
    opt.step_all(params, Flat(lay, be.asarray(host_flat(rng, lay), tag="grads")),
                 check_finite=True)
    assert opt.nonfinite_step() == 0
    assert not np.isfinite(be.to_numpy(params.data)).all()


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_of_invisible_splats_are_never_read(be, rng, kind):
    """NaN gradients on invisible splats: nothing recorded, every value as without them."""
    lay = Layout.gaussians(64, 3)
    visible = rng.random(lay.count) < 0.5
    p, g = host_flat(rng, lay), host_flat(rng, lay)
    poisoned = Flat(lay, g.copy())
    for name in lay.names:
        poisoned[name][~visible] = np.nan
    outs = []
    for grads in (g, poisoned.data):
        opt = make(kind, be)
        params = Flat(lay, be.asarray(p.copy(), tag="params"))
        opt.step_all(params, Flat(lay, be.asarray(grads, tag="grads")),
                     visible=be.asarray(visible, tag="scratch"), check_finite=True)
        assert opt.nonfinite_step() is None
        outs.append(be.to_numpy(params.data))
    np.testing.assert_array_equal(outs[0].view(np.uint32), outs[1].view(np.uint32))


@pytest.mark.parametrize("kind", KINDS)
def test_a_step_reads_nothing_back_and_allocates_nothing(be, rng, kind):
    """On the CuPy stand-in (SPLAT_LION_TEST_STANDIN=1): a steady-state step_all with the
    finiteness check and a mask is one launch, no host sync, no allocation."""
    if not getattr(be.xp, "IS_STANDIN", False):
        pytest.skip("counts syncs on the CuPy stand-in: SPLAT_LION_TEST_STANDIN=1")
    lay = Layout.gaussians(100, 3)
    opt = make(kind, be)
    params = Flat(lay, be.asarray(host_flat(rng, lay), tag="params"))
    grads = Flat(lay, be.asarray(host_flat(rng, lay), tag="grads"))
    visible = be.asarray(rng.random(lay.count) < 0.5, tag="scratch")
    opt.step_all(params, grads, visible=visible, check_finite=True)  # state, flag, tables
    opt.end_iteration()
    with cupy_standin.counting() as c:
        opt.step_all(params, grads, visible=visible, check_finite=True)
    assert (c.launches, c.syncs, c.allocations) == (1, 0, 0), c.sync_sites
    with cupy_standin.counting() as c:
        assert opt.nonfinite_step() is None
    assert c.syncs == 1


def test_the_nonfinite_flag_is_optimizer_memory_and_not_saved(cpu, rng):
    lay = Layout.gaussians(10, 0)
    opt = make("lion", cpu)
    params = Flat(lay, host_flat(rng, lay))
    g = host_flat(rng, lay)
    g[0] = np.inf
    opt.step_all(params, Flat(lay, g), check_finite=True)
    assert cpu.memory.tag_of(opt.state.nonfinite) == "optimizer"
    assert opt.nonfinite_step() == 0
    state = opt.state_dict()
    assert "nonfinite" not in state
    opt.load_state_dict(state)
    assert opt.nonfinite_step() is None


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



def test_bad_kernel_arguments_are_clear_errors(cpu):
    x = np.zeros(8, np.float32)
    seg, hyper = np.array([[0, 8, 1]], np.int64), np.float32([[0.1, 0]])
    with pytest.raises(ValueError, match=r"record_step: expected an int in \[0, "):
        lion_step(x, x.copy(), x.copy(), seg, hyper, 0.9, 0.99, nonfinite=np.zeros(1, np.int32),
                  backend=cpu)
    with pytest.raises(TypeError, match="nonfinite: expected dtype int32"):
        lion_step(x, x.copy(), x.copy(), seg, hyper, 0.9, 0.99, nonfinite=np.zeros(1),
                  record_step=0, backend=cpu)
    with pytest.raises(ValueError, match="visible: data must be 4-byte aligned"):
        lion_step(x, x.copy(), x.copy(), seg, hyper, 0.9, 0.99, np.ones(9, bool)[1:],
                  backend=cpu)
    with pytest.raises(ValueError, match="a splat of more than"):
        lion_step(x, x.copy(), x.copy(), np.array([[0, 0, 2**29]], np.int64), hyper, 0.9,
                  0.99, backend=cpu)
