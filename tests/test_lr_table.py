"""LrTable: the attribute-typed learning-rate table and its schedules."""

from __future__ import annotations

import math

import pytest

from splat_lion import Adam, Lion, LrEntry, LrTable
from splat_lion.optim import ADAM_3DGS_LR
from splat_lion.optim.lr_table import ADAM_FROM_POINTS_FACTORS, LION_FROM_POINTS_FACTORS


def test_adam_3dgs_reproduces_the_original_rates():
    extent = 3.7
    opt = Adam.for_3dgs(extent=extent, steps=30_000)
    want = {"scales": 5e-3, "quats": 1e-3, "opacities": 5e-2, "sh0": 2.5e-3, "shN": 2.5e-3 / 20,
            "means": 1.6e-4 * extent}
    for name, lr in want.items():
        assert opt.effective_lr(name) == pytest.approx(lr, rel=1e-12), name
    assert opt.lr == ADAM_3DGS_LR and opt.eps == 1e-15


def test_means_decay_log_linearly_to_the_final_rate():
    table = LrTable.adam_3dgs(extent=2.0, steps=1000)
    start, end = table.scale("means", 0), table.scale("means", 1000)
    assert start == pytest.approx(0.32) and end == pytest.approx(0.0032)
    assert table.scale("means", 500) == pytest.approx(math.sqrt(start * end))  # geometric mean
    assert table.scale("means", 5000) == pytest.approx(end)  # stays at the final rate
    assert table.scale("quats", 0) == table.scale("quats", 999) == 1.0


def test_unlisted_names_scale_by_one_and_the_optimizer_follows_its_iteration():
    opt = Lion(1e-4, lr_table=LrTable.lion_default(steps=10))
    assert opt.lr_scale("features") == 1.0
    before = opt.lr_scale("means")
    for _ in range(10):
        opt.end_iteration()
    assert opt.iteration == 10 and opt.lr_scale("means") == pytest.approx(before / 100)


@pytest.mark.parametrize("preset,multiplier,factors", [
    (LrTable.lion_default, 40.0, LION_FROM_POINTS_FACTORS), (LrTable.lion_refine, 3.0, {})])
def test_lion_presets_scale_3dgs_relative_rates_and_decay_them(preset, multiplier, factors):
    lion, adam = preset(extent=2.0, steps=1000), LrTable.adam_3dgs(extent=2.0, steps=1000)
    assert lion.names == adam.names
    for name in adam.names:
        want = multiplier * factors.get(name, 1.0) * adam.scale(name, 0)
        assert lion.scale(name, 0) == pytest.approx(want), name
        decay = 0.01 if name == "means" else 0.1  # means: 3DGS's own decay
        assert lion.scale(name, 1000) == pytest.approx(decay * lion.scale(name, 0)), name
    assert Lion.for_splats().lr_table == LrTable.lion_default()


def test_table_helpers():
    t = LrTable({"a": LrEntry(2.0, final_scale=1.0, decay_steps=10), "b": LrEntry(3.0)})
    assert t.names == ("a", "b") and "a" in t and "c" not in t
    assert t.with_extent(5.0).extent == 5.0
    assert t.with_decay_steps(100).entry("a").decay_steps == 100
    assert t.with_decay_steps(100).entry("b").decay_steps == t.entry("b").decay_steps
    assert hash(t) == hash(LrTable({"b": LrEntry(3.0), "a": LrEntry(2.0, 1.0, 10)}))


@pytest.mark.parametrize("build,match", [
    (lambda: LrEntry(-1.0), "scale must be a finite number >= 0"),
    (lambda: LrEntry(float("nan")), "scale must be a finite number"),
    (lambda: LrEntry(1.0, final_scale=0.0), "both > 0"),
    (lambda: LrEntry(1.0, decay_steps=0), "decay_steps must be an int >= 1"),
    (lambda: LrTable({"a": LrEntry(1.0)}, extent=0.0), "extent must be a finite number > 0"),
])
def test_bad_entries_are_clear_errors(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_entries_must_be_lr_entries():
    with pytest.raises(TypeError, match="entry 'means': expected an LrEntry, got float"):
        LrTable({"means": 0.1})


def test_adam_from_points_is_3dgs_with_the_studys_factors():
    tuned, base = LrTable.adam_from_points(2.0, 1000), LrTable.adam_3dgs(2.0, 1000)
    assert ADAM_FROM_POINTS_FACTORS == {"scales": 2.0, "opacities": 2.0, "sh0": 2.0, "shN": 2.0}
    for name in base.names:
        for step in (0, 500, 1000):
            want = ADAM_FROM_POINTS_FACTORS.get(name, 1.0) * base.scale(name, step)
            assert tuned.scale(name, step) == pytest.approx(want), (name, step)
