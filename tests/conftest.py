"""Shared fixtures: the backends to run kernels on, fresh random generators, poisoned
outputs, test kernels."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import numpy as np
import pytest

from splat_lion import kernels
from splat_lion.backend import Backend, BackendUnavailable, get_backend

TEST_KERNELS = Path(__file__).parent / "kernels"


def cuda_or_skip():
    try:
        return get_backend("cuda")
    except BackendUnavailable as e:
        pytest.skip(f"no CUDA backend: {e.reason}")


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def be(request):
    """Each backend in turn: the CPU runtime always, CuPy where a GPU is present."""
    return cuda_or_skip() if request.param == "cuda" else get_backend("cpu")


@pytest.fixture
def cpu():
    return get_backend("cpu")


@pytest.fixture
def rng():
    """A fresh generator per test; its seed is printed so that a failure can be replayed with
    SPLAT_LION_TEST_SEED=<seed> python -m pytest <test id>."""
    replay = os.environ.get("SPLAT_LION_TEST_SEED")
    seed = int(replay) if replay else secrets.randbits(32)
    print(f"random seed: {seed}")
    return np.random.default_rng(seed)


def poison_value(dtype):
    """What a poisoned array of `dtype` holds: NaN (floats), -7 (signed ints), the largest
    value (unsigned ints), True (bools): values no kernel output should keep by accident."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.nan
    if dtype.kind == "i":
        return -7
    if dtype.kind == "u":
        return np.iinfo(dtype).max
    return True


@pytest.fixture
def poisoned_outputs(monkeypatch):
    """Every array made by `Backend.empty` (every wrapper's outputs) starts poisoned (see
    poison_value), so an element a kernel never writes fails the comparison with the reference.
    `Backend.zeros` is left alone: it is for outputs a kernel accumulates into.
    Use in a test module: pytestmark = pytest.mark.usefixtures("poisoned_outputs")."""
    original = Backend.empty

    def empty(self, shape, dtype=np.float32, *, tag):
        a = original(self, shape, dtype, tag=tag)
        a.fill(poison_value(dtype))
        return a

    monkeypatch.setattr(Backend, "empty", empty)


def load_test_kernel(be, file: str, name: str, defines=None):
    """Kernel `name` of tests/kernels/<file>.cu, compiled for backend `be`."""
    return kernels.module_from_file(TEST_KERNELS / f"{file}.cu", defines, be).get_function(name)
