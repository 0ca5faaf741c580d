"""Budgets of one fit step on the CUDA path, counted by the CuPy stand-in (tests/cupy_standin):
host syncs, device operations, RawKernel launches and allocations of a steady-state,
non-logging step of `planet` at 64x64 with Lion, densification off.

Each budget is today's count (measured, then written down): a change that adds a sync, an
operation, a launch or an allocation to the step fails here and says where. A later issue
(the step's performance) lowers them; lower the constants with it. DESIGN §3's goal: one
host sync per step (the intersection count) and a few dozen device operations.

How a step is isolated: after a warm-up fit (kernels compiled, every view's camera table on
the device), fit() runs k and k + 1 steps from the same start and seed; the second run's
counts minus the first's are those of one step in the middle of a fit (neither step 0 nor a
log step: log_every is larger than the run).

Runs in this process under SPLAT_LION_TEST_STANDIN=1, else in a subprocess that installs
the stand-in (a few seconds).
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import cupy_standin
import pytest

# Host syncs per step: the intersection count (binning.py: it sizes the sort). The loss is
# read back on logging steps only, and NaN / infinity is recorded by the optimizer kernel and
# read on logging steps (issue 14; 5 before). DESIGN §3's goal: 1.
MAX_SYNCS = 1
# CuPy calls that launch device work (elementwise, reductions, copies, fills, sorts), RawKernel
# launches not included: binning's cumsum, and the two fills of render_backward's gradient
# buffers. (455 before issue 14, nearly all SSIM's separable blurs in array code.)
MAX_DEVICE_OPS = 3
# RawKernel launches: project_fwd, binning's 12 (the depth sort's 4 passes and the tile sort's
# 1 at 16 tiles, each radix_count + radix_scatter; binning_keys, tile_ranges; they replace
# CuPy's argsort and gathers, which are several kernels each on a GPU), rasterize_fwd, the
# fused loss's 2 (ssim_fwd, ssim_bwd), rasterize_bwd, project_bwd, lion_step.
MAX_LAUNCHES = 19
# Issue 14's target for the two together: at most 25 device operations a step.
MAX_DEVICE_WORK = 25
# New device arrays: none after warm-up (every output and scratch buffer is a workspace,
# reused and grown to its high-water mark; 468 before issue 14).
MAX_ALLOCATIONS = 0

SCENE = "planet"
RESOLUTION = 64
STEPS = 4  # the shorter of the two fits; the longer runs STEPS + 1

TESTS = Path(__file__).parent


def measure(batch_size: int = 1) -> dict:
    """Counts of one non-logging fit step of `batch_size` views on the cuda backend (the
    stand-in must be installed as `cupy`): {"syncs", "ops", "allocations", "launches",
    "transfers", "sync_sites", "op_sites" (the most frequent operation sites)}."""
    from splat_lion import FitConfig, ProblemConfig, fit, get_backend, load_problem

    be = get_backend("cuda")
    assert be.xp is cupy_standin.module(), "the stand-in is not splat-lion's cupy"
    problem = load_problem(SCENE, ProblemConfig(resolution=RESOLUTION), backend=be)

    def run(steps: int, trace: bool = False):
        config = FitConfig(optimizer="lion", steps=steps, densify=None, log_every=10_000,
                           seed=0, batch_size=batch_size)
        g = problem.fresh_start()
        with cupy_standin.counting(trace=trace) as c:
            fit(g, problem.train_cameras, problem.train_images, config)
        return c

    run(len(problem.train_cameras) + 1)  # warm-up: compiles, and puts every camera's table
    short, long = run(STEPS, trace=True), run(STEPS + 1, trace=True)
    step = {f: getattr(long, f) - getattr(short, f) for f in
            ("syncs", "ops", "allocations", "launches", "transfers")}
    sites = collections.Counter(long.sync_sites)
    sites.subtract(collections.Counter(short.sync_sites))
    step["sync_sites"] = sorted(sites.elements())
    ops = long.op_sites.copy()
    ops.subtract(short.op_sites)
    step["op_sites"] = [f"{n:4d} x {s}" for s, n in ops.most_common(12) if n > 0]
    return step


def _measured() -> dict:
    """{1: measure(1), 2: measure(2)}: a step of one view and of a batch of two."""
    if cupy_standin.installed():
        return {1: measure(1), 2: measure(2)}
    code = ("import json, cupy_standin; cupy_standin.install(); import test_budgets; "
            "print('BUDGETS ' + json.dumps([test_budgets.measure(1), test_budgets.measure(2)]))")
    env = {k: v for k, v in os.environ.items() if k != "SPLAT_LION_BACKEND"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=TESTS, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    line = [x for x in run.stdout.splitlines() if x.startswith("BUDGETS ")][-1]
    one, two = json.loads(line[len("BUDGETS "):])
    return {1: one, 2: two}


@pytest.fixture(scope="module")
def measured():
    return _measured()


@pytest.fixture(scope="module")
def step_counts(measured):
    counts = measured[1]
    print(f"\none fit step of {SCENE} at {RESOLUTION}x{RESOLUTION} (Lion, no densify) on the "
          f"CuPy stand-in: {counts['syncs']} syncs, {counts['ops']} device operations, "
          f"{counts['launches']} RawKernel launches, {counts['allocations']} allocations, "
          f"{counts['transfers']} host-to-device copies")
    for s in counts["sync_sites"]:
        print(f"  sync: {s}")
    print("  busiest operation sites:")
    for s in counts["op_sites"]:
        print(f"  {s}")
    return counts


@pytest.mark.parametrize("what, budget", [
    ("syncs", MAX_SYNCS), ("ops", MAX_DEVICE_OPS), ("launches", MAX_LAUNCHES),
    ("allocations", MAX_ALLOCATIONS)])
def test_a_fit_step_stays_within_its_budget(step_counts, what, budget):
    got = step_counts[what]
    detail = "\n".join(step_counts["sync_sites"] if what == "syncs" else step_counts["op_sites"])
    assert got <= budget, f"one fit step: {got} {what}, budget {budget}:\n{detail}"


def test_a_fit_step_launches_at_most_25_device_operations(step_counts):
    assert step_counts["ops"] + step_counts["launches"] <= MAX_DEVICE_WORK


def test_every_sync_of_a_step_is_reported_with_its_call_site(step_counts):
    assert len(step_counts["sync_sites"]) == step_counts["syncs"]
    assert all("splat_lion/" in s for s in step_counts["sync_sites"]), step_counts["sync_sites"]


def test_a_batch_of_two_views_costs_two_renders_and_one_optimizer_launch(measured):
    """FitConfig.batch_size = 2: each view renders and back-propagates as a step of one does
    (its launches but the optimizer's, its sync: the intersection count), the gradients add
    up in place, and one fused optimizer launch follows; the visibility union costs two
    device operations (a copy, an OR) and no allocation after warm-up."""
    one, two = measured[1], measured[2]
    assert two["launches"] == 2 * (one["launches"] - 1) + 1
    assert two["syncs"] == 2 * one["syncs"]
    assert two["ops"] <= 2 * one["ops"] + 2, two["op_sites"]
    assert two["allocations"] == 0
