"""Shared fixtures: the backends to run kernels on, fresh random generators, test kernels."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import numpy as np
import pytest

from splat_lion import kernels
from splat_lion.backend import BackendUnavailable, get_backend

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


def load_test_kernel(be, file: str, name: str, defines=None):
    """Kernel `name` of tests/kernels/<file>.cu, compiled for backend `be`."""
    return kernels.module_from_file(TEST_KERNELS / f"{file}.cu", defines, be).get_function(name)
