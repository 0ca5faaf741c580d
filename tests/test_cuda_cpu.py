"""The CUDA-on-CPU runtime's own contract: errors, limits, caching, fibers, sanitizer."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_KERNELS, load_test_kernel

from splat_lion import cuda_cpu, kernels
from splat_lion.cuda_cpu import builder
from splat_lion.errors import BackendError, ConfigError

SAXPY = r'''
extern "C" __global__ void saxpy(const float* x, float* y, float a, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = SCALE * a * x[i] + y[i];
}
'''


def saxpy_module(scale=1, extra=()):
    return cuda_cpu.RawModule("#ifndef SCALE\n#define SCALE 1\n#endif\n" + SAXPY,
                              options=(f"-DSCALE={scale}", "--std=c++17", *extra))


def run_with_timeout(fn, seconds=60):
    """Run fn in a daemon thread; fail (rather than hang the suite) if it does not return."""
    result = {}

    def target():
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            result["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"launch still running after {seconds} s: it hangs"
    return result.get("error")


# -- the CuPy-shaped API ------------------------------------------------------------------

def test_raw_module_runs_a_kernel_and_applies_defines(rng):
    n = 1000
    x = rng.standard_normal(n).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    want = 3 * np.float32(2) * x + y
    k = saxpy_module(scale=3).get_function("saxpy")
    k((4,), (256,), (x, y, np.float32(2), np.int64(n)))
    np.testing.assert_array_equal(y, want)
    assert k.signature == ("p8", "p8", "f4", "i8")


def test_kernel_names_skip_comments_and_require_extern_c():
    code = '// extern "C" __global__ void in_a_comment(int x)\n' + SAXPY.replace("SCALE * ", "")
    assert builder.kernel_names(code) == ["saxpy"]
    with pytest.raises(cuda_cpu.CompileError, match="not declared extern"):
        builder.kernel_names("__global__ void k(int* p) {}")


def test_unknown_kernel_name_lists_the_kernels():
    with pytest.raises(ValueError, match="no kernel 'nope'.*saxpy"):
        saxpy_module().get_function("nope")


@pytest.mark.parametrize("args,match", [
    ((np.zeros(4, np.float32), np.zeros(4, np.float32), np.float32(1)), "takes 4 arguments"),
    ((np.zeros(4, np.float32), np.zeros(4, np.float32), 1.0, np.int64(4)),
     r"argument 2 \(float\): got float.*np.float32"),
    ((np.zeros(4, np.float32), np.zeros(4, np.float32), np.float64(1), np.int64(4)),
     r"argument 2 \(float\): got np.float64 \(8 bytes\)"),
    ((np.zeros(4, np.float32), np.zeros(4, np.float32), np.float32(1), np.int32(4)),
     r"argument 3 \(long long\): got np.int32 \(4 bytes\)"),
    ((np.zeros(4, np.float32), np.zeros(4, np.float32), np.float32(1), np.uint64(4)),
     r"argument 3 \(long long\): got np.uint64"),
    ((np.zeros(4, np.float32), 7, np.float32(1), np.int64(4)),
     r"argument 1 \(pointer\): expected a NumPy array, got int"),
    ((np.zeros(4, np.float32), np.zeros(4, np.float32), np.zeros(1, np.float32), np.int64(4)),
     r"argument 2 \(float\): got ndarray"),
])
def test_wrong_arguments_are_python_errors(args, match):
    k = saxpy_module().get_function("saxpy")
    with pytest.raises(TypeError, match=match):
        k((1,), (4,), args)


@pytest.mark.parametrize("grid,block,shared,match", [
    ((0,), (32,), 0, "dimension x must be an int in 1"),
    ((1, 1, 1, 1), (32,), 0, "tuple of 1 to 3 ints"),
    ((1,), (1025,), 0, "dimension x must be an int in 1..1024"),
    ((1,), (64, 32), 0, "2048 threads"),
    ((1,), (1, 1, 65), 0, "dimension z must be an int in 1..64"),
    ((1,), (32,), 48 * 1024 + 4, "shared_mem=49156"),
])
def test_launch_configuration_is_checked(grid, block, shared, match):
    k = saxpy_module().get_function("saxpy")
    x = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=match):
        k(grid, block, (x, x.copy(), np.float32(1), np.int64(4)), shared_mem=shared)


def test_unknown_compile_option_is_rejected_and_nvrtc_ones_ignored():
    with pytest.raises(ValueError, match="--frobnicate"):
        saxpy_module(extra=("--frobnicate",)).get_function("saxpy")
    saxpy_module(extra=("--use_fast_math", "-arch=sm_90", "-lineinfo")).get_function("saxpy")


def test_compile_error_points_at_the_cu_file_and_line(tmp_path):
    bad = tmp_path / "broken.cu"
    bad.write_text('#include "common.cuh"\n\nextern "C" __global__ void k(float* x) {\n'
                   "    x[0] = undefined_name;\n}\n")
    with pytest.raises(cuda_cpu.CompileError, match=r"broken\.cu:4"):
        kernels.module_from_file(bad, backend=kernels._backend.get_backend("cpu")).get_function("k")


def test_struct_arguments_pass_by_value():
    code = textwrap.dedent('''
        struct Pair { float a; int b; long long c; };
        extern "C" __global__ void unpack(Pair p, float* out) {
            out[0] = p.a; out[1] = (float)p.b; out[2] = (float)p.c;
        }''')
    k = cuda_cpu.RawModule(code).get_function("unpack")
    assert k.signature == ("s16", "p8")
    pair = np.array((1.5, -2, 7), dtype=np.dtype([("a", "<f4"), ("b", "<i4"), ("c", "<i8")]))[()]
    out = np.full(3, np.nan, np.float32)
    k((1,), (1,), (pair, out))
    np.testing.assert_array_equal(out, [1.5, -2, 7])


# -- subnormals flush to zero, as CuPy's -ftz=true makes them ------------------------

FLUSH = r"""
extern "C" __global__ void flush(const float* x, float* half, float* plus_zero,
                                 unsigned* moved, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    __syncthreads();  // every thread parks once: resumed fibers must flush too
    if (i < n) {
        half[i] = x[i] * 0.5f;               // a subnormal result is written as 0
        plus_zero[i] = x[i] + 0.0f;          // a subnormal input is read as 0
        moved[i] = __float_as_uint(x[i]);    // no arithmetic: kept bit for bit
    }
}
"""


@pytest.mark.parametrize("mode", ["parallel", "ordered", "ucontext"])
def test_subnormals_flush_to_zero_in_every_thread_like_ftz(mode):
    """-ftz=true on the GPU: subnormal inputs of float arithmetic count as zero and subnormal
    results become zero, sign kept; loads, stores and bit casts leave them alone. The same on
    every OpenMP thread and fiber of a launch; the process's own mode is restored after it."""
    pattern = np.float32([1.5e-38, -1.5e-38, 1e-40, -1e-40, 3.0])
    x = np.tile(pattern, 64 * 256 // 5 + 1)[:64 * 256]
    n = x.size
    half, plus_zero = np.full(n, np.nan, np.float32), np.full(n, np.nan, np.float32)
    moved = np.zeros(n, np.uint32)
    options = ("-DCUDACPU_USE_UCONTEXT=1",) if mode == "ucontext" else ()
    k = cuda_cpu.RawModule(FLUSH, options).get_function("flush")
    k((64,), (256,), (x, half, plus_zero, moved, np.int64(n)), ordered=mode == "ordered")
    want_half = np.tile(np.float32([0.0, -0.0, 0.0, -0.0, 1.5]), n // 5 + 1)[:n]
    want_plus = np.tile(np.float32([1.5e-38, -1.5e-38, 0.0, 0.0, 3.0]), n // 5 + 1)[:n]
    np.testing.assert_array_equal(half, want_half)
    np.testing.assert_array_equal(np.signbit(half), np.signbit(want_half))
    np.testing.assert_array_equal(plus_zero, want_plus)
    np.testing.assert_array_equal(np.signbit(plus_zero), np.signbit(want_plus))
    np.testing.assert_array_equal(moved, x.view(np.uint32))
    # the caller's thread has its own floating-point mode back: NumPy keeps subnormals
    assert np.float32(1.5e-38) * np.float32(0.5) > 0
    assert np.float32(1e-40) + np.float32(0.0) > 0


# -- deadlocks and faults are errors, never hangs or silent corruption ------------------

def test_deadlock_names_the_kernel_and_the_waiting_threads(cpu):
    k = load_test_kernel(cpu, "faults", "deadlock_shfl_vs_barrier")
    x = np.zeros(64, np.float32)
    err = run_with_timeout(lambda: k((2,), (64,), (x,)))
    assert isinstance(err, cuda_cpu.LaunchError)
    msg = str(err)
    assert "kernel 'deadlock_shfl_vs_barrier': deadlock in block (" in msg
    assert "waiting at __syncthreads: threads 3, 35" in msg
    assert "waiting at __shfl_sync: threads 0-2, 4-34, 36-63" in msg


def test_threads_at_different_barriers_are_reported(cpu):
    k = load_test_kernel(cpu, "faults", "mismatched_barriers")
    err = run_with_timeout(lambda: k((1,), (64,), (np.zeros(64, np.float32),)))
    assert isinstance(err, cuda_cpu.LaunchError)
    assert "different barriers (__syncthreads and __syncthreads_count)" in str(err)


def test_write_past_dynamic_shared_memory_is_reported(cpu):
    k = load_test_kernel(cpu, "faults", "shared_overflow")
    x = np.arange(32, dtype=np.float32)
    with pytest.raises(cuda_cpu.LaunchError, match="wrote past its 128 bytes of dynamic shared"):
        k((1,), (32,), (x,), shared_mem=128)


def test_dynamic_shared_memory_starts_poisoned(cpu):
    code = textwrap.dedent('''
        extern "C" __global__ void peek(float* out) {
            extern __shared__ float tile[];
            out[threadIdx.x] = tile[threadIdx.x];
        }''')
    out = np.zeros(16, np.float32)
    cuda_cpu.RawModule(code).get_function("peek")((1,), (16,), (out,), shared_mem=64)
    assert np.isnan(out).all()


def test_extern_shared_outside_a_kernel_body_is_a_clear_error():
    code = 'extern __shared__ float tile[];\nextern "C" __global__ void k(float* x) { x[0] = tile[0]; }'
    with pytest.raises(cuda_cpu.CompileError, match="inside the kernel body"):
        cuda_cpu.RawModule(code).get_function("k")


def test_a_failed_block_leaves_the_runtime_usable(cpu, rng):
    test_deadlock_names_the_kernel_and_the_waiting_threads(cpu)
    n = 3000
    x = rng.integers(0, 10, n).astype(np.float32)
    sums = np.full(12, np.nan, np.float32)
    total = np.zeros(1, np.float32)
    load_test_kernel(cpu, "reduce", "tree_sum")((12,), (256,), (x, sums, total, np.int32(n)))
    assert total[0] == x.sum()


# -- fibers ---------------------------------------------------------------------------

def test_ucontext_fibers_give_the_same_results(cpu, rng):
    """The portable fiber switch (used off x86-64) runs barrier code like the fast one."""
    n = 5000
    x = rng.integers(0, 10, n).astype(np.float32)
    results = []
    for defines in (None, {"CUDACPU_USE_UCONTEXT": 1}):
        k = load_test_kernel(cpu, "tile_loop", "batched_accumulate", defines)
        out_sum = np.full(512, np.nan, np.float32)
        out_count = np.zeros(512, np.int32)
        batches = np.zeros(2, np.int32)
        k((2,), (16, 16), (x, np.int32(n), np.float32(300), out_sum, out_count, batches),
          shared_mem=1024)
        results.append((out_sum, out_count, batches))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_big_thread_locals_fit_on_fiber_stacks(cpu):
    code = textwrap.dedent('''
        extern "C" __global__ void big_stack(float* out) {
            float local[4096];  // 16 KiB per thread, live across the barrier
            for (int i = 0; i < 4096; i++) local[i] = (float)(threadIdx.x + i);
            __syncthreads();
            float s = 0.0f;
            for (int i = 0; i < 4096; i += 512) s += local[i];
            out[threadIdx.x] = s;
        }''')
    out = np.zeros(1024, np.float32)
    cuda_cpu.RawModule(code).get_function("big_stack")((1,), (1024,), (out,))
    t = np.arange(1024, dtype=np.float32)
    np.testing.assert_array_equal(out, 8 * t + np.arange(0, 4096, 512).sum())


# -- the build cache -------------------------------------------------------------------

def test_build_is_cached_by_source_and_options(tmp_path, monkeypatch):
    monkeypatch.setenv("SPLAT_LION_CACHE_DIR", str(tmp_path))
    path1, _ = builder.build(SAXPY, ("-DSCALE=2",))
    mtime = path1.stat().st_mtime_ns
    path2, _ = builder.build(SAXPY, ("-DSCALE=2",))
    path3, _ = builder.build(SAXPY, ("-DSCALE=3",))
    assert path1 == path2 and path2.stat().st_mtime_ns == mtime
    assert path3 != path1
    assert sorted(p.suffix for p in (tmp_path / "cuda_cpu").iterdir()) == [".cu", ".cu", ".so", ".so"]


_BUILD_AND_RUN = r'''
import sys, numpy as np
from splat_lion import cuda_cpu
code = sys.stdin.read()
k = cuda_cpu.RawModule(code, ("-DSCALE=5",)).get_function("saxpy")
x = np.arange(100, dtype=np.float32); y = np.ones(100, np.float32)
k((1,), (128,), (x, y, np.float32(2), np.int64(100)))
assert (y == 10 * x + 1).all(), y
'''


def test_concurrent_processes_build_the_same_source_safely(tmp_path):
    env = {**os.environ, "SPLAT_LION_CACHE_DIR": str(tmp_path),
           "PYTHONPATH": str(Path(__file__).parents[1])}
    code = f"// unique: {tmp_path}\n" + SAXPY
    procs = [subprocess.Popen([sys.executable, "-c", _BUILD_AND_RUN], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
             for _ in range(6)]
    for p in procs:
        p.stdin.write(code)
        p.stdin.close()
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    files = sorted(p.name for p in (tmp_path / "cuda_cpu").iterdir())
    assert len(files) == 2 and files[0].endswith(".cu") and files[1].endswith(".so"), files


def test_a_cached_library_carries_its_checksum(tmp_path, monkeypatch):
    monkeypatch.setenv("SPLAT_LION_CACHE_DIR", str(tmp_path))
    path, _ = builder.build(SAXPY, ("-DSCALE=1",))
    data = path.read_bytes()
    assert data.startswith(b"\x7fELF") and data[-builder.TRAILER:].startswith(builder.MAGIC)
    assert builder.verify(path) is None


def _damage(path: Path, how: str) -> None:
    """Damage a cached library in place (same inode), as a crash or a full disk would."""
    size = path.stat().st_size
    if how == "truncated":
        os.truncate(path, size // 2)
    elif how == "empty":
        os.truncate(path, 0)
    else:  # one byte altered in the middle, size unchanged
        with open(path, "r+b") as f:
            f.seek(size // 2)
            byte = f.read(1)
            f.seek(size // 2)
            f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("how", ["truncated", "empty", "altered"])
def test_a_damaged_cached_library_is_rebuilt_not_loaded(tmp_path, monkeypatch, how):
    """Issue 13: a truncated library in the cache gave SIGBUS on every later run, an empty one
    an OSError traceback. Now the next run finds the checksum wrong, warns, rebuilds and runs
    the kernel correctly. The run is a separate process, so that a regression (SIGBUS) fails
    this test instead of killing the suite."""
    monkeypatch.setenv("SPLAT_LION_CACHE_DIR", str(tmp_path))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    code = SAXPY
    path, _ = builder.build(code, ("-DSCALE=5",))  # built, never loaded by this process
    _damage(path, how)
    assert builder.verify(path) is not None
    proc = subprocess.run([sys.executable, "-c", _BUILD_AND_RUN], input=code, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    assert "KernelCacheWarning" in proc.stderr and "it is rebuilt" in proc.stderr, proc.stderr
    assert {"truncated": "truncated", "empty": "empty (0 bytes)",
            "altered": "checksum mismatch"}[how] in proc.stderr
    assert builder.verify(path) is None  # the same name now holds a whole library


@pytest.mark.parametrize("script,status", [
    ("exit 3", "exited with status 3 and printed nothing"),
    ("kill -9 $$", "was killed by SIGKILL (out of memory?) and printed nothing"),
])
def test_a_compiler_that_fails_silently_is_named_with_its_status(tmp_path, monkeypatch, script,
                                                                  status):
    """A compiler that answers --version but fails a build without a word: the error names it,
    how it ended and the fix, never an empty log."""
    cxx = tmp_path / "fakecxx"
    cxx.write_text(f'#!/bin/sh\nif [ "$1" = --version ]; then echo "fakecxx 1.0"; exit 0; fi\n'
                   f"{script}\n")
    cxx.chmod(0o755)
    monkeypatch.setenv("CXX", str(cxx))
    monkeypatch.setenv("SPLAT_LION_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(cuda_cpu.CompileError) as e:
        builder.build(SAXPY)
    message = str(e.value)
    assert f"CPU build of kernels saxpy failed: {cxx} {status}" in message
    assert "install g++" in message and "set CXX" in message
    assert isinstance(e.value, BackendError)
    assert sorted(p.name for p in (tmp_path / "cache" / "cuda_cpu").iterdir()) == []  # no debris


@pytest.mark.parametrize("cxx,says", [
    ("no-such-compiler-13", "CXX=no-such-compiler-13: no such program on PATH"),
    ("false", "fails: `false --version` exited with status 1"),
])
def test_a_missing_or_failing_compiler_is_a_backend_error_with_the_fix(monkeypatch, cxx, says):
    """Issue 13: CXX missing gave a FileNotFoundError traceback, CXX=false an empty log."""
    monkeypatch.setenv("CXX", cxx)
    with pytest.raises(BackendError) as e:
        builder.build(SAXPY)
    assert isinstance(e.value, cuda_cpu.CompileError) and not isinstance(e.value, OSError)
    message = str(e.value)
    assert says in message and f"CXX={cxx}" in message and "\n" not in message
    assert "install g++ (Debian/Ubuntu: apt-get install g++" in message and "set CXX" in message


def test_runtime_errors_belong_to_the_error_family():
    """The CLI shows BackendErrors as one line; code catching RuntimeError still works."""
    for cls in (cuda_cpu.CompileError, cuda_cpu.LaunchError):
        assert issubclass(cls, BackendError) and issubclass(cls, RuntimeError)
    with pytest.raises(ConfigError, match="SPLAT_LION_CPU_SANITIZE='thread'"):
        os.environ["SPLAT_LION_CPU_SANITIZE"] = "thread"
        try:
            builder.sanitize_mode()
        finally:
            del os.environ["SPLAT_LION_CPU_SANITIZE"]


def _unwritable(how: str, tmp_path: Path, monkeypatch) -> Path:
    """A cache folder (SPLAT_LION_CACHE_DIR) this process cannot write into."""
    if how == "chmod":
        base = tmp_path / "readonly"
        base.mkdir(mode=0o500)
        try:
            builder.check_writable(base)
        except OSError:
            return base
        base.chmod(0o700)
        pytest.skip("chmod 0o500 does not stop this user writing (root): see the other cases")
    if how == "a file":
        base = tmp_path / "not_a_folder"
        base.write_text("")
        return base
    base = tmp_path / "simulated"  # permission bits aside: creating a file there fails

    def refuse(d):
        raise PermissionError(13, "Permission denied", str(d))

    monkeypatch.setattr(builder, "check_writable", refuse)
    return base


@pytest.mark.parametrize("how", ["chmod", "a file", "simulated"])
def test_an_unwritable_cache_folder_uses_a_private_cache_with_one_warning(tmp_path, monkeypatch,
                                                                           how):
    base = _unwritable(how, tmp_path, monkeypatch)
    monkeypatch.setenv("SPLAT_LION_CACHE_DIR", str(base))
    x = np.arange(100, dtype=np.float32)
    unique = f"-DUNIQUE_{os.getpid()}_{how.replace(' ', '_')}"  # not in the private cache yet
    try:
        with pytest.warns(cuda_cpu.KernelCacheWarning) as caught:
            y = np.ones(100, np.float32)
            saxpy_module(scale=7, extra=(unique,)).get_function("saxpy")(
                (1,), (128,), (x, y, np.float32(2), np.int64(100)))
        np.testing.assert_array_equal(y, 14 * x + 1)
        (w,) = caught
        message = str(w.message)
        assert f"the kernel cache {base / 'cuda_cpu'} cannot be written" in message
        assert "private temporary cache" in message and "SPLAT_LION_CACHE_DIR" in message
        private = builder.cache_dir()
        assert private != base / "cuda_cpu" and oct(private.stat().st_mode & 0o777) == "0o700"
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # one warning per process, not one per build
            path, _ = builder.build(SAXPY, ("-DSCALE=1", unique))
        assert path.parent == private and builder.verify(path) is None
    finally:
        if how == "chmod":
            base.chmod(0o700)


# -- AddressSanitizer ------------------------------------------------------------------

def _libasan() -> str | None:
    try:
        out = subprocess.run([builder.compiler()[0], "-print-file-name=libasan.so"],
                             capture_output=True, text=True).stdout.strip()
    except cuda_cpu.CompileError:
        return None
    return out if os.path.isabs(out) and os.path.exists(out) else None


_OOB = r'''
import numpy as np
from splat_lion import kernels
from splat_lion.backend import get_backend
k = kernels.module_from_file({path!r}).get_function("write_past_end")
x = np.zeros(1000, np.float32)
k((4,), (256,), (x, np.int32(1000)))
print("no report")
'''


def test_sanitizer_needs_its_runtime_preloaded(monkeypatch):
    monkeypatch.setenv("SPLAT_LION_CPU_SANITIZE", "address")
    monkeypatch.setattr(builder, "_asan_loaded", lambda: False)
    with pytest.raises(RuntimeError, match="LD_PRELOAD="):
        builder.build(SAXPY)


@pytest.mark.skipif(_libasan() is None, reason="the C++ toolchain has no AddressSanitizer")
def test_address_sanitizer_reports_out_of_bounds_write_with_file_and_line(tmp_path):
    env = {**os.environ, "SPLAT_LION_CACHE_DIR": str(tmp_path), "SPLAT_LION_BACKEND": "cpu",
           "SPLAT_LION_CPU_SANITIZE": "address", "LD_PRELOAD": _libasan(),
           "ASAN_OPTIONS": "detect_leaks=0", "PYTHONPATH": str(Path(__file__).parents[1])}
    script = _OOB.format(path=str(TEST_KERNELS / "faults.cu"))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    line = next(i + 1 for i, text in enumerate((TEST_KERNELS / "faults.cu").read_text().splitlines())
                if "the planted bug" in text)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "heap-buffer-overflow" in proc.stderr, proc.stderr[-3000:]
    assert f"faults.cu:{line}" in proc.stderr, proc.stderr[-3000:]


ATOMIC_SUM = r'''
extern "C" __global__ void atomic_sum(const float* x, float* out, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) atomicAdd(out, x[i]);
}
'''


def test_an_ordered_launch_adds_atomics_in_block_order(rng):
    """ordered=True: blocks one after another, so a float atomic sum equals the sequential
    float32 sum in index order, bit for bit, on every run."""
    n = 64 * 300
    x = (rng.standard_normal(n) * 10.0 ** rng.integers(-4, 4, n)).astype(np.float32)
    want = np.float32(0)
    for v in x:  # sequential float32 sum in index order
        want = np.float32(want + v)
    k = cuda_cpu.RawModule(ATOMIC_SUM).get_function("atomic_sum")
    for _ in range(5):
        out = np.zeros(1, np.float32)
        k((300,), (64,), (x, out, np.int64(n)), ordered=True)
        assert out[0] == want
