"""splat_lion.backend: choice, allocation tags, launch, array primitives."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from splat_lion import backend, kernels
from splat_lion.backend import BackendUnavailable, get_backend


def test_env_var_forces_cpu(monkeypatch):
    monkeypatch.setenv("SPLAT_LION_BACKEND", "cpu")
    be = get_backend()
    assert be.name == "cpu" and be.xp is np
    assert backend.why_chosen(be) == "forced by SPLAT_LION_BACKEND=cpu"


def test_unknown_backend_name_is_rejected(monkeypatch):
    monkeypatch.setenv("SPLAT_LION_BACKEND", "tpu")
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        get_backend()


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed")
def test_forcing_cuda_without_cupy_says_how_to_install(monkeypatch):
    monkeypatch.setenv("SPLAT_LION_BACKEND", "cuda")
    with pytest.raises(BackendUnavailable, match=r"pip install 'splat-lion\[cuda12\]'"):
        get_backend()


def test_auto_falls_back_to_cpu_without_a_gpu(monkeypatch):
    monkeypatch.delenv("SPLAT_LION_BACKEND", raising=False)
    try:
        get_backend("cuda")
    except BackendUnavailable:
        be = get_backend()
        assert be.name == "cpu" and backend.why_chosen(be).startswith("auto: ")
    else:
        assert get_backend().name == "cuda"


def test_allocations_need_a_known_tag(be):
    a = be.zeros((3, 4), np.float32, tag="params")
    assert a.shape == (3, 4) and a.dtype == np.float32 and isinstance(a, be.xp.ndarray)
    assert be.empty(5, np.int32, tag="intersections").dtype == np.int32
    with pytest.raises(ValueError, match="allocation tag 'weights'"):
        be.zeros(3, tag="weights")
    with pytest.raises(TypeError):
        be.zeros(3)  # the tag is required


def test_argsort_is_stable_and_cumsum_inclusive(be, rng):
    keys = rng.integers(0, 5, 1000).astype(np.uint64)
    order = be.to_numpy(be.argsort(be.asarray(keys, tag="intersections")))
    np.testing.assert_array_equal(order, np.argsort(keys, kind="stable"))
    counts = rng.integers(0, 9, 1000).astype(np.int32)
    np.testing.assert_array_equal(be.to_numpy(be.cumsum(be.asarray(counts, tag="scratch"), np.int64)),
                                  np.cumsum(counts, dtype=np.int64))


def test_launch_counts_launches(be):
    k = kernels.function("selftest", "selftest_saxpy", backend=be)
    x = be.zeros(10, np.float32, tag="scratch")
    before = be.launch_count
    be.launch(k, (1,), (32,), (x, x, np.float32(1), np.int64(10)))
    be.launch(k, (1,), (32,), (x, x, np.float32(1), np.int64(10)))
    assert be.launch_count == before + 2
