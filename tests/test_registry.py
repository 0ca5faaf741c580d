"""splat_lion/optim/registry.py: each optimizer name builds what it says and keeps the state
it says."""

from __future__ import annotations

import numpy as np
import pytest

from splat_lion.fit import FitConfig, make_optimizer
from splat_lion.layout import Flat, Layout
from splat_lion.optim import (ADAM_3DGS_LR, LION_DEFAULT_LR, OPTIMIZER_NAMES, OPTIMIZER_SPECS,
                              RATES, Adam, Lion, LrTable, optimizer_name, optimizer_spec)
from splat_lion.optim.lion import LION_CAUTIOUS

EXTENT, STEPS = 2.5, 120
# what each name must build: (class, base lr, Lion's momentum dtype or None, lr table)
WANT = {
    "lion": (Lion, LION_DEFAULT_LR, "float32", LrTable.lion_default(EXTENT, STEPS)),
    "lion-bf16": (Lion, LION_DEFAULT_LR, "bfloat16", LrTable.lion_default(EXTENT, STEPS)),
    "adam": (Adam, ADAM_3DGS_LR, None, LrTable.adam_from_points(EXTENT, STEPS)),
}


def test_the_registry_holds_the_three_names_and_the_presets():
    assert OPTIMIZER_NAMES == ("lion", "lion-bf16", "adam") == tuple(WANT)
    assert RATES == ("from_points", "refine")
    # the study's batch sizes from points (docs/lion-vs-adam.md); refining: one view a step
    assert {n: (s.batch_size("from_points"), s.batch_size("refine"))
            for n, s in OPTIMIZER_SPECS.items()} == {"lion": (4, 1), "lion-bf16": (4, 1),
                                                     "adam": (1, 1)}
    assert all(spec.description for spec in OPTIMIZER_SPECS.values())


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_every_name_builds_the_optimizer_it_says(cpu, name):
    cls, lr, momentum_dtype, table = WANT[name]
    spec = optimizer_spec(name)
    opt = spec.make(EXTENT, STEPS, backend=cpu)
    assert type(opt) is cls and opt.lr == lr == spec.base_lr
    assert opt.lr_table == table and opt.backend is cpu
    assert getattr(opt, "momentum_dtype", None) == momentum_dtype
    assert optimizer_name(opt) == name
    assert spec.make(EXTENT, STEPS, lr=0.5).lr == 0.5


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_fit_builds_its_optimizer_through_the_registry(cpu, name):
    for rates in RATES:
        config = FitConfig(optimizer=name, steps=STEPS, rates=rates, lr=3e-3)
        got = make_optimizer(config, EXTENT, cpu)
        want = optimizer_spec(name).make(EXTENT, STEPS, lr=3e-3, rates=rates, backend=cpu)
        assert repr(got) == repr(want) and got.backend is cpu


def test_rates_pick_each_optimizers_table_and_refining_adam_keeps_3dgs_own():
    refine = optimizer_spec("lion").make(EXTENT, STEPS, rates="refine")
    assert refine.lr_table == LrTable.lion_refine(EXTENT, STEPS)
    adam = optimizer_spec("adam").make(EXTENT, STEPS, rates="refine")
    assert adam.lr_table == LrTable.adam_3dgs(EXTENT, STEPS)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_state_bytes_match_what_the_optimizer_holds(cpu, rng, name):
    spec = optimizer_spec(name)
    lay = Layout.gaussians(37, 2)
    opt = spec.make(EXTENT, STEPS, backend=cpu)
    params = Flat(lay, rng.standard_normal(lay.total).astype(np.float32))
    opt.step_all(params, Flat(lay, rng.standard_normal(lay.total).astype(np.float32)))
    assert opt.state_bytes() == spec.state_bytes(lay.total)
    assert len(opt.flat_state) == spec.state_buffers
    assert {buf.data.dtype.itemsize for buf in opt.flat_state.values()} == {spec.state_itemsize}


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="optimizer must be one of lion, lion-bf16, adam, "
                                         "got 'sgd'"):
        optimizer_spec("sgd")
    with pytest.raises(ValueError, match="rates must be one of from_points, refine, got "
                                         "'fast'"):
        optimizer_spec("lion").make(EXTENT, STEPS, rates="fast")


def test_an_optimizer_of_ones_own_is_named_by_its_class():
    class MySgd:
        pass

    assert optimizer_name(MySgd()) == "mysgd"
    assert optimizer_name(Lion(1e-3, momentum_dtype="bfloat16")) == "lion-bf16"
    assert optimizer_name(Adam(1e-3)) == "adam"


@pytest.mark.parametrize("name", ["lion", "lion-bf16"])
def test_lion_is_cautious_from_points_and_plain_refining_as_the_study_and_demo_chose(name):
    spec = optimizer_spec(name)
    assert spec.make(EXTENT, STEPS).cautious is LION_CAUTIOUS["from_points"] is True
    assert spec.make(EXTENT, STEPS, rates="refine").cautious is LION_CAUTIOUS["refine"] is False
    assert Lion.for_splats().cautious is True and not Lion(1e-4).cautious  # the paper's Lion
    assert optimizer_name(Lion.for_splats(cautious=False)) == "lion"  # the name: the state
