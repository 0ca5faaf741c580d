"""Memory accounting (splat_lion/memory.py, DESIGN §7): tracked bytes per tag, peaks, phases,
one fit step profiled, and the predictor held against the tracker."""

from __future__ import annotations

import gc
import json

import numpy as np
import pytest
from conftest import cuda_or_skip

from splat_lion import cameras, memory, ply, scenes
from splat_lion.backend import get_backend
from splat_lion.layout import Layout
from splat_lion.ledger import TAGS
from splat_lion.optim import Adam, Lion
from splat_lion.render import render

OPTIMIZERS = {
    "lion": lambda be: Lion(1e-4, backend=be),
    "lion-bf16": lambda be: Lion(1e-4, backend=be, momentum_dtype="bfloat16"),
    "adam": lambda be: Adam(1e-3, backend=be),
}


# -- counting ------------------------------------------------------------------------------

def test_tracked_bytes_equal_array_sizes_and_drop_when_freed(be):
    gc.collect()
    before = be.memory.current_bytes("projection")
    a = be.empty((100, 3), np.float32, tag="projection")
    b = be.zeros((7,), np.int64, tag="projection")
    assert be.memory.current_bytes("projection") - before == 1200 + 56
    del a
    assert be.memory.current_bytes("projection") - before == 56
    del b
    assert be.memory.current_bytes("projection") == before


def test_total_is_the_sum_of_the_tags(be):
    assert be.memory.current_bytes() == sum(be.memory.current_bytes(t) for t in TAGS)


def test_asarray_counts_a_new_array_once_and_a_counted_one_not_again(be):
    host = np.ones((50, 4), np.float32)
    with memory.track(be) as t:
        a = be.asarray(host, tag="params")  # a copy on CUDA, `host` itself on the CPU: once
        assert t.current_bytes() == host.nbytes
        assert be.asarray(a, tag="params") is a
        be.asarray(a[10:20], tag="grads")  # a view: its memory is a's
        assert t.current_bytes() == host.nbytes
        c = be.asarray(a, np.float64, tag="scratch")  # converted: a new array
    assert t.current_bytes("scratch") == c.nbytes
    assert t.current_bytes() == host.nbytes + c.nbytes
    assert be.memory.tag_of(a) == "params" and be.memory.tag_of(c) == "scratch"


def test_asarray_of_a_view_of_host_memory_counts_that_memory(cpu):
    host = np.zeros(16, np.float32)
    with memory.track(cpu) as t:
        cpu.asarray(host.reshape(4, 4), tag="image")  # on the CPU: a view of host, kept
    assert t.current_bytes("image") == host.nbytes


def test_track_counts_arrays_made_with_xp(be):
    with memory.track(be) as t:
        keys = be.zeros((40,), np.uint64, tag="intersections")
        order = be.argsort(keys, tag="intersections")
        gathered = be.track(keys[order], tag="intersections")
        be.track(gathered, tag="intersections")  # again: no change
    assert t.current_bytes("intersections") == 320 + order.nbytes + 320


def test_argsort_and_cumsum_count_their_results_as_scratch(be):
    counts = be.zeros((30,), np.int32, tag="projection")
    with memory.track(be) as t:
        ends = be.cumsum(counts, np.int64)
        order = be.argsort(counts)
    assert t.current_bytes() == t.current_bytes("scratch") == ends.nbytes + order.nbytes


def test_tables_count_as_scratch_while_cached(be):
    host = np.arange(12, dtype=np.float32) + np.float32(np.random.default_rng().random())
    with memory.track(be) as t:
        table = be.table(host)
        be.table(host)  # cached: made once
    assert t.current_bytes("scratch") == host.nbytes
    assert be.memory.tag_of(table) == "scratch"


def test_unknown_tag_is_refused(be):
    with pytest.raises(ValueError, match="not one of"):
        be.memory.current_bytes("textures")
    with pytest.raises(ValueError, match="not one of"):
        be.track(np.zeros(3), tag="textures")


# -- trackers, peaks, phases -----------------------------------------------------------------

def test_tracker_counts_what_is_allocated_inside_it(be):
    outside = be.zeros((1000,), np.float32, tag="image")
    with memory.track(be) as t:
        inside = be.zeros((250,), np.float32, tag="image")
    assert t.current_bytes("image") == 1000
    del inside
    gc.collect()
    assert t.current_bytes("image") == 0 and t.peak_bytes("image") == 1000  # not `outside`
    del outside


def test_peaks_and_reset_peak(be):
    with memory.track(be) as t:
        a = be.empty((1000,), np.uint8, tag="loss")
        b = be.empty((300,), np.uint8, tag="grads")
        del a
        gc.collect()
        c = be.empty((200,), np.uint8, tag="grads")
    assert t.peak_total == 1300 and t.at_peak() == {**dict.fromkeys(TAGS, 0), "loss": 1000,
                                                    "grads": 300}
    assert t.peak_bytes("loss") == 1000 and t.peak_bytes("grads") == 500
    assert t.current_bytes() == 500
    t.reset_peak()
    assert t.peak_total == 500 and t.peak_bytes("loss") == 0
    del b, c


def test_phases_record_their_own_peaks(be):
    with memory.track(be) as t:
        kept = be.empty((100,), np.uint8, tag="params")
        with t.phase("project"):
            tmp = be.empty((4000,), np.uint8, tag="projection")
            del tmp
            gc.collect()
        with t.phase("loss"):
            out = be.empty((800,), np.uint8, tag="loss")
    assert t.phases["project"]["peak_bytes"] == 4100
    assert t.phases["project"]["by_tag"]["projection"] == 4000
    assert t.phases["loss"]["peak_bytes"] == 900
    assert t.phases["loss"]["by_tag"]["projection"] == 0
    assert t.peak_total == 4100  # the whole includes its phases
    del kept, out


def test_include_counts_a_resident_array_once(be):
    params = be.zeros((64,), np.float32, tag="params")
    with memory.track(be) as t:
        t.include(params)
        t.include(params)
        t.include(params[8:16])  # a view of it: the same memory
    assert t.current_bytes("params") == 256 and t.current_bytes() == 256


# -- one fit step ----------------------------------------------------------------------------

def scene_step(size: int, be=None):
    be = be or get_backend("cpu")
    g = ply.load_ply(scenes.path("shapes"), backend=be)
    cams = cameras.orbit_cameras(radius=2.6 * g.extent(), n=4, width=size, height=size)
    target = be.to_numpy(render(g, cams[1]).image).copy()
    return g, cams[0], target


def within(predicted: int, measured: int, rel: float) -> bool:
    return abs(predicted - measured) <= rel * measured + 1024  # + tables, a few bytes each


@pytest.mark.parametrize("size", [64, 256])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_predictor_matches_the_tracker_given_the_intersections(name, size):
    g, cam, target = scene_step(size)
    opt = OPTIMIZERS[name](g.backend)
    first = memory.profile_step(g, cam, target, opt)  # makes the optimizer state
    steady = memory.profile_step(g, cam, target, opt)
    for prof, resident in ((first, False), (steady, True)):
        assert prof["optimizer_state_resident"] is resident
        pred = memory.predict_memory(g.count, size, size, g.sh_degree, name,
                                     num_intersections=prof["num_intersections"],
                                     optimizer_state_resident=resident)
        assert within(pred["peak"], prof["peak_bytes"], 0.10)
        for tag in TAGS:
            assert within(pred[tag], prof["by_tag"][tag], 0.10), tag
        for phase in memory.PHASES:
            assert within(pred["by_phase"][phase], prof["by_phase"][phase], 0.10), phase


@pytest.mark.parametrize("batch_size", [1, 3])
def test_a_fits_peak_is_predicted_whatever_its_batch(batch_size):
    """FitResult.peak_bytes of a fit that sees every view once against predict_fit_peak (the
    intersections estimated; every target's SSIM statistics kept): a batch of views runs one
    view after another through the same buffers, so it costs its visibility union only."""
    from splat_lion import FitConfig, ProblemConfig, fit, load_problem

    problem = load_problem("shapes", ProblemConfig(resolution=96, views=6, test_every=0),
                           backend=get_backend("cpu"))
    g = problem.fresh_start()
    result = fit(g, problem.train_cameras, problem.train_images,
                 FitConfig(steps=6 // batch_size, batch_size=batch_size, densify=None))
    images = sum(t.nbytes for t in problem.train_images)
    pred = memory.predict_fit_peak(g.count, 96, 96, g.sh_degree, "lion", image_bytes=images,
                                   train_views=6, batch_size=batch_size)
    assert within(pred, result.peak_bytes, 0.10), (pred, result.peak_bytes)
    alone = memory.predict_fit_peak(g.count, 96, 96, g.sh_degree, "lion", image_bytes=images,
                                    train_views=6)
    assert pred - alone == (g.count if batch_size > 1 else 0)


@pytest.mark.parametrize("size", [64, 256])
def test_predictor_is_reasonable_without_the_intersections(size):
    g, cam, target = scene_step(size)
    prof = memory.profile_step(g, cam, target, Lion(1e-4, backend=g.backend))
    pred = memory.predict_memory(g.count, size, size, g.sh_degree, "lion",
                                 optimizer_state_resident=False)
    assert within(pred["peak"], prof["peak_bytes"], 0.10)
    assert 0.5 < pred["num_intersections"] / prof["num_intersections"] < 2.0


def test_profile_step_is_json_with_every_tag_and_phase():
    g, cam, target = scene_step(64)
    prof = memory.profile_step(g, cam, target, Lion(1e-4, backend=g.backend))
    prof = json.loads(json.dumps(prof))
    assert set(prof["by_tag"]) == set(TAGS) and list(prof["by_phase"]) == list(memory.PHASES)
    assert prof["peak_bytes"] == max(prof["by_phase"].values()) == sum(prof["at_peak"].values())
    assert prof["by_tag"]["params"] == Layout.gaussians(g.count, g.sh_degree).nbytes()
    assert prof["num_intersections"] > 0 and prof["optimizer"] == "lion"


def test_measured_optimizer_state_lion_is_half_of_adam_and_bf16_a_quarter():
    g, cam, target = scene_step(64)
    state = {name: memory.profile_step(g, cam, target, make(g.backend))["by_tag"]["optimizer"]
             for name, make in OPTIMIZERS.items()}
    assert state["adam"] == 2 * Layout.gaussians(g.count, g.sh_degree).nbytes()
    assert 2 * state["lion"] == state["adam"]
    assert 4 * state["lion-bf16"] == state["adam"]


# -- the predictor's arithmetic and errors ------------------------------------------------------

def test_predicted_optimizer_state_is_exact_arithmetic():
    lay = Layout.gaussians(1000, 3)
    args = (1000, 64, 64, 3)
    assert memory.predict_memory(*args, "adam")["optimizer"] == 2 * lay.nbytes()
    assert memory.predict_memory(*args, "lion")["optimizer"] == lay.nbytes()
    assert memory.predict_memory(*args, "lion", "bfloat16")["optimizer"] == lay.nbytes() // 2
    assert memory.predict_memory(*args, "lion-bf16") == \
        memory.predict_memory(*args, "lion", momentum_dtype="bfloat16")
    assert memory.predict_memory(*args, "lion")["params"] == lay.nbytes()


def test_predicted_intersections_follow_the_count_given():
    a = memory.predict_memory(1000, 64, 64, 0, "lion", num_intersections=5000)
    b = memory.predict_memory(1000, 64, 64, 0, "lion", intersections_per_splat=5.0)
    assert a == b and a["num_intersections"] == 5000
    more = memory.predict_memory(1000, 64, 64, 0, "lion", num_intersections=6000)
    # the tile ids and ids written, the tile sort's other buffer, and its counters
    assert 16 * 1000 <= more["intersections"] - a["intersections"] < 16 * 1000 + 256


@pytest.mark.parametrize("kwargs, match", [
    ({"num_splats": -1}, "num_splats must be an int >= 0"),
    ({"num_splats": 2.5}, "num_splats must be an int"),
    ({"width": 0}, "width must be an int >= 1"),
    ({"height": True}, "height must be an int"),
    ({"sh_degree": 4}, "sh_degree must be 0, 1, 2 or 3"),
    ({"optimizer": "sgd"}, "optimizer must be one of lion, lion-bf16, adam"),
    ({"momentum_dtype": "float16"}, "momentum_dtype must be 'float32' or 'bfloat16'"),
    ({"optimizer": "adam", "momentum_dtype": "bfloat16"}, "Adam keeps float32"),
    ({"optimizer": "lion-bf16", "momentum_dtype": "float32"}, "has bfloat16 momentum"),
    ({"intersections_per_splat": -1.0}, "intersections_per_splat must be a finite number"),
    ({"intersections_per_splat": float("nan")}, "intersections_per_splat must be a finite"),
    ({"num_intersections": -5}, "num_intersections must be an int >= 0"),
    ({"num_intersections": 10, "intersections_per_splat": 2.0}, "not both"),
])
def test_predict_memory_rejects_bad_arguments(kwargs, match):
    args = {"num_splats": 100, "width": 64, "height": 64, "sh_degree": 3, "optimizer": "lion",
            **kwargs}
    with pytest.raises(ValueError, match=match):
        memory.predict_memory(**args)


def test_zero_splats_predict_only_the_images():
    pred = memory.predict_memory(0, 32, 32, 3, "adam")
    assert pred["params"] == pred["optimizer"] == pred["projection"] == 0
    assert pred["image"] > 0 and pred["num_intersections"] == 0


# -- CUDA ----------------------------------------------------------------------------------------

@pytest.mark.gpu
def test_cross_check_agrees_with_cupys_pool():
    be = cuda_or_skip()
    be.synchronize()
    before = memory.cross_check(be)
    a = be.empty((16 * 2**20,), np.float32, tag="scratch")  # 64 MiB, a multiple of 512
    after = memory.cross_check(be)
    assert after["tracked_bytes"] - before["tracked_bytes"] == a.nbytes
    assert after["pool_used_bytes"] - before["pool_used_bytes"] == a.nbytes
    assert after["pool_total_bytes"] >= after["pool_used_bytes"]
    assert after["device_used_bytes"] >= after["pool_total_bytes"]
    del a


@pytest.mark.gpu
def test_profile_step_on_cuda_matches_the_predictor():
    be = cuda_or_skip()
    g, cam, target = scene_step(256, be)
    prof = memory.profile_step(g, cam, target, Lion(1e-4, backend=be))
    pred = memory.predict_memory(g.count, 256, 256, g.sh_degree, "lion",
                                 num_intersections=prof["num_intersections"],
                                 optimizer_state_resident=False)
    assert within(pred["peak"], prof["peak_bytes"], 0.10)
    assert prof["cross_check"]["pool_used_bytes"] >= prof["cross_check"]["tracked_bytes"] // 2
