"""splat_lion/densify.py: the operations (clone, split, prune, opacity reset, reindex) keep the
optimizer state and extra properties aligned; the 3DGS schedule runs them when 3DGS does."""

from __future__ import annotations

import math

import numpy as np
import pytest

from splat_lion import Gaussians
from splat_lion.cameras import Camera
from splat_lion.densify import Densifier, DensifyConfig, carry, clone, prune, reindex, split
from splat_lion.fit import FitConfig
from splat_lion.layout import Flat
from splat_lion.optim import Adam, Lion
from splat_lion.render import render, render_backward

EXTENT = 2.0


def splats(be, sigma, opacity, n=None):
    """Splats in a row along x with the given σ (scalar or [N]) and opacity ([N])."""
    opacity = np.asarray(opacity, np.float64)
    n = len(opacity)
    sigma = np.broadcast_to(np.asarray(sigma, np.float64), (n,))
    rng = np.random.default_rng(5)
    return Gaussians.from_arrays(
        np.stack([np.linspace(-1, 1, n), np.zeros(n), np.zeros(n)], 1),
        np.log(np.repeat(sigma[:, None], 3, 1)), rng.standard_normal((n, 4)),
        np.log(opacity / (1 - opacity)), rng.uniform(-1, 1, (n, 1, 3)),
        rng.uniform(-0.3, 0.3, (n, 3, 3)), backend=be)


def optimizer_with_state(g, make):
    """An optimizer whose every state buffer holds a copy of the parameters (row i of the state
    belongs to splat i: after surgery, state rows must still match their splat's values)."""
    opt = make(g.backend)
    be = g.backend
    opt.step_all(g.params, Flat(g.layout, g.layout.zeros(tag="grads", backend=be)))
    for state in opt.flat_state.values():
        state.data[...] = g.params.data.astype(state.data.dtype)
    return opt


OPTIMIZERS = {"lion": lambda be: Lion(1e-4, backend=be),
              "adam": lambda be: Adam(1e-3, backend=be)}


def with_grads(densifier, value):
    """Statistics as if every splat had been seen in one view with this average gradient."""
    be = densifier.backend
    n = densifier.grad_sum.shape[0]
    densifier.grad_sum[...] = be.asarray(np.broadcast_to(np.float32(value), (n,)).copy(),
                                         tag="grads")
    densifier.seen[...] = 1


@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_clones_copy_their_parent_and_start_with_zero_state(be, make):
    h = be.to_numpy
    g = splats(be, sigma=0.005, opacity=[0.5] * 6)  # small: σ <= 0.01 x extent
    before = h(g.params.data).copy()
    opt = optimizer_with_state(g, make)
    d = Densifier(DensifyConfig(), EXTENT, be, g.count)
    with_grads(d, [1e-3, 0, 1e-3, 0, 0, 0])
    event = d.densify_and_prune(g, opt, np.random.default_rng(0))
    assert (event.cloned, event.split, event.pruned, g.count) == (2, 0, 0, 8)
    old = Flat(g.layout.with_count(6), before)
    for name in g.layout.names:
        np.testing.assert_array_equal(h(g.params[name][:6]), old[name])
        np.testing.assert_array_equal(h(g.params[name][6:]), old[name][[0, 2]])
        for state in opt.flat_state.values():
            np.testing.assert_array_equal(h(state[name][:6]), old[name])
            assert not h(state[name][6:]).any(), f"{name}: a clone inherited optimizer state"
    assert d.grad_sum.shape == (8,) and not h(d.grad_sum).any()  # statistics restart


def test_split_replaces_a_large_splat_by_two_smaller_children_inside_it(cpu):
    g = splats(cpu, sigma=[0.005, 0.3, 0.005], opacity=[0.5] * 3)
    parent = {k: g.params[k][1].copy() for k in g.layout.names}
    opt = optimizer_with_state(g, OPTIMIZERS["lion"])
    d = Densifier(DensifyConfig(), EXTENT, cpu, g.count)
    with_grads(d, [0, 1e-3, 0])
    event = d.densify_and_prune(g, opt, np.random.default_rng(0))
    assert (event.cloned, event.split, event.pruned, g.count) == (0, 1, 0, 4)
    np.testing.assert_array_equal(g.means[:2, 0], [-1, 1])  # survivors keep their order
    children = slice(2, 4)
    np.testing.assert_allclose(g.scales[children],
                               np.tile(parent["scales"] - math.log(1.6), (2, 1)), atol=1e-6)
    for name in ("quats", "opacities", "sh0", "shN"):
        np.testing.assert_array_equal(g.params[name][children],
                                      np.broadcast_to(parent[name], g.params[name][children].shape))
    offset = np.linalg.norm(g.means[children] - parent["means"], axis=1)
    assert (offset > 0).all() and (offset < 5 * 0.3).all()  # sampled within the parent
    for name in g.layout.names:
        assert not opt.flat_state["momentum"][name][children].any()


def test_split_children_are_drawn_from_the_parents_gaussian(be, rng):
    """Children of 2000 copies of one anisotropic, rotated splat: their offsets from the parent
    have the parent's covariance R diag(σ²) Rᵀ (a transposed R or a swapped axis would not)."""
    n = 2000
    g = splats(be, sigma=0.001, opacity=[0.5] * n)
    sigma = np.array([0.4, 0.1, 0.03])
    q = rng.standard_normal(4)
    g.scales[...] = be.asarray(np.log(sigma).astype(np.float32), tag="scratch")
    g.quats[...] = be.asarray(q.astype(np.float32), tag="scratch")
    g.means[...] = 0
    d = Densifier(DensifyConfig(), EXTENT, be, g.count)
    with_grads(d, 1e-3)
    d.densify_and_prune(g, None, np.random.default_rng(1))
    assert g.count == 2 * n
    w, x, y, z = q / np.linalg.norm(q)
    R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                  [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                  [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
    cov = np.cov(be.to_numpy(g.means).astype(np.float64).T)
    np.testing.assert_allclose(cov, R @ np.diag(sigma ** 2) @ R.T, atol=0.1 * 0.4 ** 2)


def test_transparent_splats_are_pruned_with_their_state(be):
    h = be.to_numpy
    opacity = [0.5, 0.001, 0.5, 0.004, 0.9]
    g = splats(be, sigma=0.005, opacity=opacity)
    before = Flat(g.layout, h(g.params.data).copy())
    opt = optimizer_with_state(g, OPTIMIZERS["adam"])
    d = Densifier(DensifyConfig(), EXTENT, be, g.count)
    event = d.densify_and_prune(g, opt, np.random.default_rng(0))
    assert (event.pruned, g.count) == (2, 3)
    for name in g.layout.names:
        np.testing.assert_array_equal(h(g.params[name]), before[name][[0, 2, 4]])
        for state in opt.flat_state.values():
            np.testing.assert_array_equal(h(state[name]), before[name][[0, 2, 4]])


def test_oversized_splats_are_pruned_only_after_an_opacity_reset(cpu):
    g = splats(cpu, sigma=[0.005, 0.5, 0.005], opacity=[0.5] * 3)  # 0.5 > 0.1 x extent
    d = Densifier(DensifyConfig(), EXTENT, cpu, g.count)
    d.densify_and_prune(g, None, np.random.default_rng(0))
    assert g.count == 3
    d.reset_opacity(g, None)
    g.opacities[...] = 0.0  # opaque enough again
    d.densify_and_prune(g, None, np.random.default_rng(0))
    assert g.count == 2 and np.exp(g.scales).max() < 0.1


def test_opacity_reset_caps_opacity_and_zeroes_only_its_state(cpu):
    g = splats(cpu, sigma=0.005, opacity=[0.5, 0.005, 0.9])
    opt = optimizer_with_state(g, OPTIMIZERS["lion"])
    before = Flat(g.layout, g.params.data.copy())
    d = Densifier(DensifyConfig(), EXTENT, cpu, g.count)
    d.reset_opacity(g, opt)
    np.testing.assert_allclose(g.opacity_values(), [0.01, 0.005, 0.01], rtol=1e-5)
    state = opt.flat_state["momentum"]
    assert not state.opacities.any()
    for name in ("means", "scales", "quats", "sh0", "shN"):
        np.testing.assert_array_equal(state[name], before[name])


def test_max_splats_keeps_the_strongest_gradients(cpu):
    g = splats(cpu, sigma=0.005, opacity=[0.5] * 5)
    d = Densifier(DensifyConfig(max_splats=7), EXTENT, cpu, g.count)
    with_grads(d, [1e-3, 5e-3, 2e-3, 4e-3, 0])
    event = d.densify_and_prune(g, None, np.random.default_rng(0))
    assert (event.cloned, g.count) == (2, 7)
    np.testing.assert_array_equal(g.means[5:, 0], g.means[[1, 3], 0])


def test_extra_ply_properties_follow_their_splats(cpu):
    g = splats(cpu, sigma=0.005, opacity=[0.5, 0.001, 0.5])
    g.extra = {"label": np.array([10.0, 11.0, 12.0], np.float32)}
    d = Densifier(DensifyConfig(), EXTENT, cpu, g.count)
    with_grads(d, [0, 0, 1e-3])
    d.densify_and_prune(g, None, np.random.default_rng(0))
    np.testing.assert_array_equal(g.extra["label"], [10, 12, 12])


def test_wide_splats_are_pruned_after_a_reset_with_their_radius_carried_through_growth(cpu):
    """The screen radii follow the splats through clone and split (new splats have none)."""
    g = splats(cpu, sigma=[0.005, 0.005, 0.3, 0.005], opacity=[0.5] * 4)
    d = Densifier(DensifyConfig(max_screen_radius=10.0), EXTENT, cpu, g.count)
    d.reset_opacity(g, None)
    g.opacities[...] = 0.0
    with_grads(d, [1e-3, 0, 1e-3, 0])  # clone splat 0, split splat 2
    d.max_radius[...] = [20.0, 5.0, 20.0, 30.0]
    event = d.densify_and_prune(g, None, np.random.default_rng(0))
    # [0, 1, 3 | clone of 0 | 2 children of 2]: 0 and 3 are too wide, the new splats are not
    assert (event.cloned, event.split, event.pruned, g.count) == (1, 1, 2, 4)
    np.testing.assert_allclose(g.means[:2, 0], [-1 / 3, -1], rtol=1e-6)  # splat 1, the clone


# -- the operations on their own ------------------------------------------------------------

def test_clone_appends_copies_with_zero_state_and_returns_their_origin(cpu):
    g = splats(cpu, sigma=0.005, opacity=[0.5, 0.6, 0.7])
    g.extra = {"label": np.array([10, 11, 12], np.int32)}
    before = Flat(g.layout, g.params.data.copy())
    opt = optimizer_with_state(g, OPTIMIZERS["adam"])
    origin = clone(g, opt, np.array([2, 0]))
    np.testing.assert_array_equal(origin, [0, 1, 2, -1, -1])
    np.testing.assert_array_equal(g.extra["label"], [10, 11, 12, 12, 10])
    for name in g.layout.names:
        np.testing.assert_array_equal(g.params[name], before[name][[0, 1, 2, 2, 0]])
        for state in opt.flat_state.values():
            np.testing.assert_array_equal(state[name][:3], before[name])
            assert not state[name][3:].any()


def test_split_keeps_the_others_in_order_and_draws_once(cpu):
    g = splats(cpu, sigma=[0.2, 0.005, 0.3], opacity=[0.5, 0.6, 0.7])
    before = Flat(g.layout, g.params.data.copy())
    rng, twin = np.random.default_rng(4), np.random.default_rng(4)
    origin = split(g, None, np.array([0, 2]), rng)
    np.testing.assert_array_equal(origin, [1, -1, -1, -1, -1])
    np.testing.assert_array_equal(g.opacities, before.opacities[[1, 0, 2, 0, 2]])
    twin.standard_normal((4, 3))  # the one draw: 2 children of 2 parents
    assert rng.standard_normal() == twin.standard_normal()
    no_draw = np.random.default_rng(4)
    split(g, None, np.zeros(0, np.int64), no_draw)
    assert no_draw.standard_normal() == np.random.default_rng(4).standard_normal()
    assert g.count == 5


def test_prune_drops_splats_with_their_state_and_returns_the_survivors_origin(cpu):
    g = splats(cpu, sigma=0.005, opacity=[0.5, 0.6, 0.7, 0.8])
    g.extra = {"label": np.array([10, 11, 12, 13], np.int32)}
    before = Flat(g.layout, g.params.data.copy())
    opt = optimizer_with_state(g, OPTIMIZERS["lion"])
    origin = prune(g, opt, np.array([True, False, True, False]))
    np.testing.assert_array_equal(origin, [1, 3])
    np.testing.assert_array_equal(g.extra["label"], [11, 13])
    for name in g.layout.names:
        np.testing.assert_array_equal(g.params[name], before[name][[1, 3]])
        np.testing.assert_array_equal(opt.flat_state["momentum"][name], before[name][[1, 3]])


def test_reindex_can_relocate_splats_in_place(cpu):
    """What an MCMC-style strategy does: dead splats become copies of live ones, with fresh
    optimizer state, and the count stays."""
    g = splats(cpu, sigma=0.005, opacity=[0.5, 0.001, 0.7, 0.002])
    before = Flat(g.layout, g.params.data.copy())
    opt = optimizer_with_state(g, OPTIMIZERS["lion"])
    reindex(g, opt, np.array([0, 2, 2, 0]), fresh=np.array([False, True, False, True]))
    state = opt.flat_state["momentum"]
    for name in g.layout.names:
        np.testing.assert_array_equal(g.params[name], before[name][[0, 2, 2, 0]])
        np.testing.assert_array_equal(state[name][[0, 2]], before[name][[0, 2]])
        assert not state[name][[1, 3]].any()


def test_carry_moves_statistics_like_the_splats(cpu):
    radius = np.array([3.0, 4.0, 5.0], np.float32)
    got = carry(radius, np.array([2, -1, 0, -1]), cpu.xp)
    np.testing.assert_array_equal(got, [5.0, 0.0, 3.0, 0.0])
    assert got.dtype == np.float32


def test_observe_averages_ndc_gradients_over_the_views_a_splat_was_seen_in(cpu, rng):
    g = splats(cpu, sigma=0.05, opacity=[0.5] * 4)
    g.means[3] = [0, 0, 50]  # behind the camera: never visible
    cam = Camera.look_at((0, -4, 0), (0, 0, 0), width=40, height=30)
    d = Densifier(DensifyConfig(), EXTENT, cpu, g.count)
    want_sum = np.zeros(4)
    for _ in range(3):
        out = render(g, cam)
        grads = render_backward(out, rng.standard_normal((30, 40, 3)).astype(np.float32))
        v = grads.means2d
        want_sum += np.where(out.visible, np.hypot(v[:, 0] * 20, v[:, 1] * 15), 0)
        d.observe(out, grads)
    np.testing.assert_array_equal(d.seen, [3, 3, 3, 0])
    np.testing.assert_allclose(d.average_grad(), want_sum / np.maximum(d.seen, 1), rtol=1e-5)
    np.testing.assert_array_equal(d.max_radius > 0, [True, True, True, False])


def test_the_schedule_densifies_and_resets_when_3dgs_does(cpu):
    config = DensifyConfig(start_step=5, stop_step=40, interval=10, reset_interval=30)
    g = splats(cpu, sigma=0.005, opacity=[0.5] * 3)
    d = Densifier(config, EXTENT, cpu, g.count)
    events = {s: d.after_step(s, g, None, np.random.default_rng(0)) for s in range(1, 50)}
    happened = {s: (e.before != e.after or e.reset, e.reset) for s, e in events.items() if e}
    assert sorted(happened) == [10, 20, 30]  # densify at 10, 20, 30; reset at 30; none >= 40
    assert happened[30][1] and not happened[10][1]


def test_for_steps_compresses_the_3dgs_schedule():
    assert DensifyConfig.for_steps(30_000) == DensifyConfig()
    short = DensifyConfig.for_steps(600)
    assert short.interval == 25 and short.start_step == 25 and short.stop_step == 300
    assert short.reset_interval is None
    # resets 3000 views apart at any length (not compressed), before densification stops
    assert DensifyConfig.for_steps(7000).reset_interval == 3000  # as 3DGS's 7k runs
    assert DensifyConfig.for_steps(6000).reset_interval is None  # stops at 3000
    assert DensifyConfig.for_steps(1750, 4).reset_interval == 750  # 7000 views, in steps
    tiny = DensifyConfig.for_steps(60)  # still densifies once, at step 50
    assert tiny.start_step < 50 < tiny.stop_step and 50 % tiny.interval == 0


@pytest.mark.parametrize("kwargs,match", [
    (dict(interval=0), "interval"), (dict(grad_threshold=-1.0), "grad_threshold"),
    (dict(reset_opacity=1.5), "< 1"), (dict(reset_interval=0), "reset_interval"),
    (dict(max_splats=0), "max_splats"),
])
def test_bad_densify_config_is_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DensifyConfig(**kwargs)


@pytest.mark.parametrize("views,batch", [(1000, 4), (3000, 8), (600, 2), (30_000, 4)])
def test_for_steps_of_a_batch_densifies_after_the_same_views(views, batch):
    """Steps of B views: the schedule of `views` views counted in steps (the 25 views at
    least between densifications included), as the study ran its batches."""
    one = DensifyConfig.for_steps(views)
    batched = DensifyConfig.for_steps(views // batch, batch)
    for name in ("start_step", "interval", "stop_step"):
        assert abs(getattr(batched, name) * batch - getattr(one, name)) <= batch / 2 + 1, name
    assert (batched.reset_interval is None) == (one.reset_interval is None)
    assert DensifyConfig.for_steps(views // batch, batch) == \
        FitConfig.from_points(views // batch, batch_size=batch).densify
