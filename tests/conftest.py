"""Shared fixtures: the backends to run kernels on, fresh random generators, poisoned
outputs, random scenes and a camera, finite differences, test kernels.

SPLAT_LION_TEST_STANDIN=1 runs the tests on the CUDA path without a GPU: the strict CuPy
stand-in (tests/cupy_standin) is installed as `cupy` before splat_lion makes a backend, so
`cuda` is available (the `gpu`-marked tests run on it) and, with SPLAT_LION_BACKEND unset,
the automatic choice, as on a machine with a GPU:
    SPLAT_LION_TEST_STANDIN=1 python -m pytest -m gpu     # the GPU tests on the stand-in
    SPLAT_LION_TEST_STANDIN=1 python -m pytest            # everything, cuda by default
(SPLAT_LION_BACKEND=cpu keeps cpu the default while cuda stays available to the gpu tests.)
tests/cupy_standin/__init__.py says what the stand-in refuses and counts.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import cupy_standin
import numpy as np
import pytest

if os.environ.get(cupy_standin.ENV_VAR, "") not in ("", "0"):
    cupy_standin.install()  # before splat_lion imports cupy (its backend does, when first asked)

from splat_lion import Gaussians, kernels  # noqa: E402
from splat_lion.backend import Backend, BackendUnavailable, get_backend  # noqa: E402
from splat_lion.cameras import Camera  # noqa: E402
from splat_lion.sh import sh_rest  # noqa: E402

TEST_KERNELS = Path(__file__).parent / "kernels"


def cuda_or_skip():
    try:
        return get_backend("cuda")
    except BackendUnavailable as e:
        pytest.skip(f"no CUDA backend: {e.reason}")


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def be(request):
    """Each backend in turn: the CPU runtime always, CuPy where a GPU is present (or the CuPy
    stand-in, under SPLAT_LION_TEST_STANDIN=1)."""
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
    """What a poisoned array of `dtype` holds: NaN (floats), the extreme integer (signed: the
    most negative, unsigned: the largest), True (bools): values no kernel output here should
    hold by accident."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.nan
    if dtype.kind == "i":
        return np.iinfo(dtype).min
    if dtype.kind == "u":
        return np.iinfo(dtype).max
    return True


@pytest.fixture
def poisoned_outputs(monkeypatch):
    """Every array made by `Backend.empty` or handed out by `Backend.workspace` (every
    wrapper's outputs) starts poisoned (see poison_value), so an element a kernel never
    writes fails the comparison with the reference. `Backend.zeros` and zeroed workspaces are
    left alone: they are for outputs a kernel accumulates into.
    Use in a test module: pytestmark = pytest.mark.usefixtures("poisoned_outputs")."""
    original = Backend.empty
    original_workspace = Backend.workspace

    def empty(self, shape, dtype=np.float32, *, tag):
        a = original(self, shape, dtype, tag=tag)
        a.fill(poison_value(dtype))
        return a

    def workspace(self, key, shape, dtype=np.float32, *, tag, zeros=False):
        """A reused buffer holds what its last user wrote: poisoned each time it is handed
        out (but those kept zero, which kernels accumulate into)."""
        a = original_workspace(self, key, shape, dtype, tag=tag, zeros=zeros)
        if not zeros:
            a.fill(poison_value(dtype))
        return a

    monkeypatch.setattr(Backend, "empty", empty)
    monkeypatch.setattr(Backend, "workspace", workspace)


@pytest.fixture
def random_scene(rng):
    """random_scene(n, sh_degree, backend=None, *, spread=1.0, extra=False) -> Gaussians:
    means uniform in [-spread, spread]³, σ uniform in [0.05, 0.3], random quaternions,
    opacity logits ~ N(0, 1), sh0 in ±0.5, shN in ±0.2; with `extra`, two per-splat extra
    properties (int32 "label", float64 "confidence") as a PLY may carry."""

    def build(n, sh_degree, backend=None, *, spread=1.0, extra=False):
        rest = sh_rest(sh_degree)
        g = Gaussians.from_arrays(
            rng.uniform(-spread, spread, (n, 3)), np.log(rng.uniform(0.05, 0.3, (n, 3))),
            rng.standard_normal((n, 4)), rng.standard_normal(n), rng.uniform(-0.5, 0.5, (n, 1, 3)),
            rng.uniform(-0.2, 0.2, (n, rest, 3)) if rest else None, backend=backend)
        if extra:
            g.extra["label"] = rng.integers(0, 9, n).astype(np.int32)
            g.extra["confidence"] = rng.random(n).astype(np.float64)
        return g

    return build


def _look_at_origin(width=96, height=64) -> Camera:
    return Camera.look_at((3.0, -2.5, 1.5), (0, 0, 0), width=width, height=height, fov_x_deg=60)


@pytest.fixture
def camera():
    """camera(width=96, height=64) -> a 60° pinhole Camera at (3, -2.5, 1.5) looking at the
    origin, where random_scene puts its splats."""
    return _look_at_origin


def _central_differences(f, x, eps=1e-6, at=None):
    """(f(x + eps e_i) - f(x - eps e_i)) / (2 eps) for every element i of the float64 array x,
    or only at the index tuples `at` (0 elsewhere). f() returns a float and reads x, which is
    perturbed in place and restored."""
    if x.dtype != np.float64:
        raise TypeError(f"x: finite differences need float64, got {x.dtype}")
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape) if at is None else at:
        old = x[idx]
        x[idx] = old + eps
        up = f()
        x[idx] = old - eps
        down = f()
        x[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad


@pytest.fixture
def finite_differences():
    """finite_differences(f, x, eps=1e-6, at=None): float64 central differences of the scalar
    f() with respect to x (see _central_differences), the oracle of every backward test
    (DESIGN §8.2): f evaluates a float64 reference."""
    return _central_differences


def load_test_kernel(be, file: str, name: str, defines=None):
    """Kernel `name` of tests/kernels/<file>.cu, compiled for backend `be`."""
    return kernels.module_from_file(TEST_KERNELS / f"{file}.cu", defines, be).get_function(name)


@pytest.fixture
def deny_reading(monkeypatch):
    """deny_reading(path): make the file unreadable, as `chmod 000` does for a user (root
    reads anyway, so open() also refuses it there, with the kernel's PermissionError)."""
    import builtins
    import io

    real = builtins.open
    denied = set()

    def refusing(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) in denied:
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing)
    monkeypatch.setattr(io, "open", refusing)

    def deny(path):
        os.chmod(path, 0)
        denied.add(os.path.abspath(path))

    return deny
