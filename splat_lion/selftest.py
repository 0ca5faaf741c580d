"""Wrappers of kernels/selftest.cu, the self-test `splat-lion info` runs with them, and the
kernel half of the cuda probe that the automatic backend choice runs once (`probe`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from . import kernels
from .backend import WRONG_RESULTS_FIX, Backend, BackendUnavailable, cuda_failure, get_backend
from .checks import check_array
from .kernels import BLOCK
from .reference import selftest as ref


def selftest_saxpy(x, y, a: float, backend: Backend | None = None):
    """y <- a * x + y in place.  x, y: [n] float32 on the backend; returns y."""
    be = backend or get_backend()
    check_array("x", x, np.float32, (None,), be.xp)
    check_array("y", y, np.float32, x.shape, be.xp)
    n = x.shape[0]
    k = kernels.function("selftest", "selftest_saxpy", backend=be)
    if n:
        be.launch(k, ((n + 255) // 256,), (256,), (x, y, np.float32(a), np.int64(n)))
    return y


def selftest_block_sum(x, backend: Backend | None = None) -> float:
    """sum_i x[i] through a shared-memory and warp-shuffle block reduction.  x: [n] float32."""
    be = backend or get_backend()
    check_array("x", x, np.float32, (None,), be.xp)
    n = x.shape[0]
    out = be.zeros((1,), np.float32, tag="scratch")
    blocks = max(1, min(1024, (n + BLOCK - 1) // BLOCK))
    k = kernels.function("selftest", "selftest_block_sum", backend=be)
    be.launch(k, (blocks,), (BLOCK,), (x, out, np.int64(n)))
    return float(be.to_numpy(out)[0])


@dataclass(frozen=True)
class Check:
    # kernel checked
    name: str
    # whether the result matched the NumPy reference within tolerance
    ok: bool
    # what was compared, and how closely
    detail: str
    # wall time of the launch, milliseconds (compile time excluded)
    ms: float


def run(backend: Backend | None = None, n: int = 1_000_003, seed: int = 0) -> list[Check]:
    """Run both self-test kernels on `n` random floats and compare with the reference."""
    be = backend or get_backend()
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    checks = []

    # saxpy: float32 result within one rounding of the reference (GPUs fuse to FMA)
    want = ref.selftest_saxpy(x, y, 2.5)  # before the launch: on the CPU, yd may be y itself
    kernels.function("selftest", "selftest_saxpy", backend=be)  # compile outside the timing
    xd, yd = be.asarray(x, tag="scratch"), be.asarray(y, tag="scratch")
    t0 = time.perf_counter()
    selftest_saxpy(xd, yd, 2.5, be)
    be.synchronize()
    ms = (time.perf_counter() - t0) * 1e3
    err = float(np.max(np.abs(be.to_numpy(yd) - want)))
    tol = 4 * float(np.finfo(np.float32).eps) * float(np.max(np.abs(want)))
    checks.append(Check("selftest_saxpy", err <= tol, f"{n:,} floats, max |error| {err:.2e} "
                        f"(tolerance {tol:.1e})", ms))

    # block sum: relative error of a float32 tree sum
    kernels.function("selftest", "selftest_block_sum", backend=be)
    t0 = time.perf_counter()
    got = selftest_block_sum(xd, be)
    ms = (time.perf_counter() - t0) * 1e3
    want_sum = ref.selftest_block_sum(x)
    scale = float(np.sum(np.abs(x), dtype=np.float64))
    rel = abs(got - want_sum) / scale
    checks.append(Check("selftest_block_sum", rel <= 1e-5, f"sum of {n:,} floats, error "
                        f"{rel:.1e} of sum|x| (tolerance 1e-5)", ms))
    return checks


def probe(be: Backend, n: int = 4099) -> str:
    """The kernel half of the cuda probe (backend.probe_cuda): on `be`, compile and run
    selftest_saxpy, then one of the array library's own elementwise kernels (CuPy compiles
    those with NVRTC too), and compare both with NumPy. Returns what ran; raises
    BackendUnavailable naming the step that failed and the fix. Allocates outside the ledger."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(n).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    want = ref.selftest_saxpy(x, y, 2.5)
    try:
        kernels.function("selftest", "selftest_saxpy", backend=be)
    except Exception as e:  # noqa: BLE001 - CuPy's compile errors have several types
        raise cuda_failure(e, "compiling selftest_saxpy") from None
    try:
        xd, yd = be.xp.asarray(x), be.xp.asarray(y)
        selftest_saxpy(xd, yd, 2.5, be)
        got = be.to_numpy(yd)
    except Exception as e:  # noqa: BLE001
        raise cuda_failure(e, "running selftest_saxpy") from None
    try:
        doubled = be.to_numpy(xd * np.float32(2))
    except Exception as e:  # noqa: BLE001
        raise cuda_failure(e, "compiling and running an elementwise kernel of its own") from None
    err = float(np.max(np.abs(got - want)))
    tol = 4 * float(np.finfo(np.float32).eps) * float(np.max(np.abs(want)))
    if not err <= tol:
        raise BackendUnavailable(f"selftest_saxpy computes wrong results on the GPU (max error "
                                 f"{err:.2e}, tolerance {tol:.1e})", WRONG_RESULTS_FIX)
    if not np.array_equal(doubled, 2 * x):
        raise BackendUnavailable("an elementwise kernel (x * 2) computes wrong results on the GPU",
                                 WRONG_RESULTS_FIX)
    return f"selftest_saxpy and an elementwise kernel ran on {n:,} floats, matching NumPy"
