"""What the optimizer tests share (test_lion.py, test_adam.py, test_optim.py): the optimizer
kinds, how a test builds one, random flat buffers, and the kernel-vs-reference loop."""

from __future__ import annotations

import numpy as np

from splat_lion import Adam, Flat, Layout, Lion, LrTable
from splat_lion.reference.common import bf16_to_float

KINDS = ["lion", "lion-bf16", "adam"]


def make(kind, be, lr=None, **kw):
    """An optimizer of `kind` on backend `be` (lr table: Lion's default at extent 2, 20 steps)."""
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


def assert_matches(be, got, want, what):
    if be.name == "cpu":  # same operations in the same order: bit for bit
        np.testing.assert_array_equal(got, want, err_msg=what)
    else:  # GPUs fuse multiply-adds: rare last-bit differences (a Lion sign may flip at c ~ 0)
        close = np.isclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-5, atol=1e-6)
        assert close.mean() > 1 - 1e-4, f"{what}: {(~close).sum()} elements differ"


def check_step_all_against_reference(be, rng, kind, masked, reference_step, **options):
    """12 step_all calls (weight decay 0.1, fresh gradients of random size, a random mask when
    `masked`) against reference_step(opt, lay, p, g, state, hyper, t, visible) -> (p, state),
    with the lr table read at iteration t; then the state buffers too. options: more of the
    optimizer's fields (Lion's cautious)."""
    lay = Layout.gaussians(int(rng.integers(50, 300)), 3)
    opt = make(kind, be, weight_decay=0.1, **options)
    p_host = host_flat(rng, lay)
    params = Flat(lay, be.asarray(p_host.copy(), tag="params"))
    state_dtype = np.uint16 if kind == "lion-bf16" else np.float32
    ref_state = tuple(np.zeros(lay.total, state_dtype) for _ in opt.state_names)
    for t in range(12):
        g_host = host_flat(rng, lay, scale=float(rng.uniform(0.01, 3)))
        vis_host = rng.random(lay.count) < 0.7 if masked else None
        vis = None if vis_host is None else be.asarray(vis_host, tag="scratch")
        opt.step_all(params, Flat(lay, be.asarray(g_host, tag="grads")), visible=vis)
        hyper = np.array([[opt.lr * opt.lr_table.scale(n, t), opt.weight_decay]
                          for n in lay.names], np.float32)
        p_host, ref_state = reference_step(opt, lay, p_host, g_host, ref_state, hyper, t,
                                           vis_host)
        opt.end_iteration()
        assert_matches(be, be.to_numpy(params.data), p_host, f"params after step {t}")
    for name, want in zip(opt.state_names, ref_state):
        got = be.to_numpy(opt.flat_state[name].data)
        if state_dtype == np.uint16:
            got, want = bf16_to_float(got), bf16_to_float(want)
        assert_matches(be, got, want, name)
