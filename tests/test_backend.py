"""splat_lion.backend: choice (the cuda probe), allocation tags, launch, array primitives."""

from __future__ import annotations

import importlib.util
import sys
import types
import warnings

import numpy as np
import pytest

from splat_lion import backend, cuda_cpu, kernels
from splat_lion.backend import BackendFallbackWarning, BackendUnavailable, CudaProbe, get_backend
from splat_lion.cli import main
from splat_lion.errors import BackendError, ConfigError

# What CuPy 14 raises at the first compile when the CUDA headers are missing (driver-only
# machine, cupy-cuda12x without its [ctk] extra): cupy/_core/core.pyx, v14.2.0.
NO_HEADERS = ("Failed to find CUDA headers. Please install CUDA toolkit headers (e.g., pip "
              "install cupy-cuda12x[ctk]) or specify CUDA_PATH environment variable.")


@pytest.fixture
def fresh_choice(monkeypatch):
    """A process that has not probed yet: no probe result, no warning given, no backends made,
    no kernels compiled for them (all restored after the test)."""
    monkeypatch.setattr(backend, "_probe", None)
    monkeypatch.setattr(backend, "_warned", False)
    monkeypatch.setattr(backend, "_cache", {})
    monkeypatch.setattr(kernels, "_modules", {})
    monkeypatch.setattr(kernels, "_functions", {})
    monkeypatch.delenv("SPLAT_LION_BACKEND", raising=False)


def stub_probe(monkeypatch, probe: CudaProbe, handed_out=None) -> list:
    """Replace the probe's checks by `probe`; a passing one hands out `handed_out` as the cuda
    backend. Returns the list of calls (one entry per run of the checks)."""
    calls = []

    def probe_cuda():
        calls.append(1)
        if probe.ok:
            backend._cache["cuda"] = handed_out
        return probe

    monkeypatch.setattr(backend, "probe_cuda", probe_cuda)
    return calls


FAILED = CudaProbe(False, "CuPy failed compiling selftest_saxpy (RuntimeError: no headers)",
                   backend.COMPILE_FIX, cupy_installed=True)


def test_auto_falls_back_to_cpu_with_one_warning_when_the_probe_fails(fresh_choice, monkeypatch):
    calls = stub_probe(monkeypatch, FAILED)
    with pytest.warns(BackendFallbackWarning) as caught:
        be = get_backend()
    assert be.name == "cpu"
    (w,) = caught
    assert FAILED.reason in str(w.message) and "pip install 'splat-lion[cuda12]'" in str(w.message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise
        assert get_backend().name == "cpu" and get_backend().name == "cpu"
    assert calls == [1], "the probe runs once per process"
    assert backend.why_chosen(be) == f"auto: cuda probe failed: {FAILED.reason}"


@pytest.mark.parametrize("how", ["env", "name"])
def test_forced_cuda_fails_with_the_probe_message(fresh_choice, monkeypatch, how):
    stub_probe(monkeypatch, FAILED)
    if how == "env":
        monkeypatch.setenv("SPLAT_LION_BACKEND", "cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # forced: an error, not a warning
        with pytest.raises(BackendUnavailable) as e:
            get_backend(None if how == "env" else "cuda")
    assert str(e.value) == f"{FAILED.reason}: {FAILED.fix}"
    assert e.value.reason == FAILED.reason and e.value.fix == FAILED.fix
    assert isinstance(e.value, BackendError)  # the CLI shows it as one line


def test_auto_chooses_cuda_when_the_probe_passes(fresh_choice, monkeypatch):
    class StubCuda(backend.CpuBackend):
        name = "cuda"

    stub = StubCuda()
    calls = stub_probe(monkeypatch, CudaProbe(True, "GPU 0: stub", cupy_installed=True), stub)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert get_backend() is stub and get_backend("cuda") is stub
    assert calls == [1]
    assert backend.why_chosen(stub) == "auto: the cuda probe passed"


def test_no_warning_when_cupy_is_not_installed(fresh_choice, monkeypatch):
    """A CPU-only install (no CuPy) is no problem to warn about."""
    stub_probe(monkeypatch, CudaProbe(False, "CuPy is not installed", backend.INSTALL_HINT))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert get_backend().name == "cpu"


def test_info_shows_the_probe_result(fresh_choice, monkeypatch, capsys):
    stub_probe(monkeypatch, FAILED)
    monkeypatch.setenv("SPLAT_LION_BACKEND", "cpu")
    assert main(["info"]) == 0
    line = next(s for s in capsys.readouterr().out.splitlines() if s.startswith("cuda_probe"))
    assert f"failed: {FAILED.reason}; fix: {FAILED.fix}" in line


# -- the probe's checks, on a fake CuPy that runs kernels on the CPU runtime ------------------

class CUDADriverError(RuntimeError):
    """Named as CuPy's driver error (cupy_backends.cuda.api.driver.CUDADriverError)."""


def install_fake_cupy(monkeypatch, *, compile_error=None, launch_error=None, wrong=False):
    """A `cupy` module just big enough for the probe: one device, RawModule on cuda_cpu, NumPy
    arrays; it can fail the compile, fail the launch or corrupt results."""
    cupy = types.ModuleType("cupy")
    cupy.__version__ = "14.2.0 (fake)"
    cupy.ndarray = np.ndarray
    cupy.asarray = np.asarray
    cupy.asnumpy = (lambda a: np.zeros_like(a)) if wrong else np.array

    class RawModule:
        def __init__(self, code, options):
            if compile_error is not None:
                raise compile_error
            self._module = cuda_cpu.RawModule(code, options)

        def get_function(self, name):
            kernel = self._module.get_function(name)

            def launch(grid, block, args, shared_mem=0):
                if launch_error is not None:
                    raise launch_error
                kernel(grid, block, args, shared_mem=shared_mem)
            return launch

    cupy.RawModule = RawModule
    runtime = types.SimpleNamespace(
        getDeviceCount=lambda: 1, deviceSynchronize=lambda: None,
        getDeviceProperties=lambda i: {"name": b"Fake GPU", "major": 9, "minor": 0},
        memGetInfo=lambda: (2**30, 2**31), runtimeGetVersion=lambda: 12090,
        driverGetVersion=lambda: 12090)
    cupy.cuda = types.SimpleNamespace(runtime=runtime, Device=lambda: types.SimpleNamespace(id=0),
                                      nvrtc=types.SimpleNamespace(getVersion=lambda: (12, 9)))
    monkeypatch.setitem(sys.modules, "cupy", cupy)


def test_probe_passes_on_a_working_cupy_and_hands_out_that_backend(fresh_choice, monkeypatch):
    install_fake_cupy(monkeypatch)
    probe = backend.cuda_probe()
    assert probe.ok, probe
    assert "Fake GPU" in probe.reason and "selftest_saxpy" in probe.reason
    be = get_backend()
    assert isinstance(be, backend.CudaBackend) and get_backend("cuda") is be


def test_cupy_without_cuda_headers_falls_back_naming_the_extra(fresh_choice, monkeypatch):
    """B2: a driver-only machine with CuPy 14 installed without its [ctk] extra."""
    install_fake_cupy(monkeypatch, compile_error=RuntimeError(NO_HEADERS))
    with pytest.warns(BackendFallbackWarning, match=r"Failed to find CUDA headers") as caught:
        assert get_backend().name == "cpu"
    message = str(caught[0].message)
    assert "compiling selftest_saxpy" in message
    assert "pip install 'splat-lion[cuda12]'" in message and "cupy-cuda12x[ctk]" in message
    with pytest.raises(BackendUnavailable, match="Failed to find CUDA headers"):
        get_backend("cuda")


def test_a_kernel_that_does_not_run_calls_for_a_driver_update(fresh_choice, monkeypatch):
    install_fake_cupy(monkeypatch, launch_error=CUDADriverError("CUDA_ERROR_NO_BINARY_FOR_GPU"))
    probe = backend.cuda_probe()
    assert not probe.ok and "running selftest_saxpy" in probe.reason
    assert "CUDA_ERROR_NO_BINARY_FOR_GPU" in probe.reason and probe.fix == backend.RUN_FIX


def test_wrong_results_fail_the_probe(fresh_choice, monkeypatch):
    install_fake_cupy(monkeypatch, wrong=True)
    probe = backend.cuda_probe()
    assert not probe.ok and "wrong results" in probe.reason
    assert probe.fix == backend.WRONG_RESULTS_FIX


def test_env_var_forces_cpu(monkeypatch):
    monkeypatch.setenv("SPLAT_LION_BACKEND", "cpu")
    be = get_backend()
    assert be.name == "cpu" and be.xp is np
    assert backend.why_chosen(be) == "forced by SPLAT_LION_BACKEND=cpu"


def test_an_unknown_backend_is_a_config_error_naming_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setenv("SPLAT_LION_BACKEND", "tpu")
    with pytest.raises(ConfigError) as e:
        get_backend()
    assert str(e.value) == ("SPLAT_LION_BACKEND='tpu' is not a backend: choose cuda, cpu or auto "
                            "(or unset SPLAT_LION_BACKEND: auto)")
    with pytest.raises(ConfigError) as e:
        get_backend("gpu")
    assert str(e.value) == "backend 'gpu' is not a backend: choose cuda, cpu or auto"


@pytest.mark.parametrize("command", [["fit", "shapes", "--out", "{out}"],
                                     ["render", "shapes", "--out", "{out}"], ["info"]])
@pytest.mark.parametrize("setting", ["bogus", "cuda without CuPy"])
def test_the_cli_shows_a_backend_it_cannot_use_as_one_line(fresh_choice, monkeypatch, capsys,
                                                           tmp_path, command, setting):
    """Issue 13: SPLAT_LION_BACKEND=bogus, or =cuda without CuPy, gave tracebacks in fit and
    render. Now: one line naming the variable and the choices, or how to install CuPy; exit 2."""
    if setting == "bogus":
        monkeypatch.setenv("SPLAT_LION_BACKEND", "bogus")
        says = "SPLAT_LION_BACKEND='bogus' is not a backend: choose cuda, cpu or auto"
    else:
        monkeypatch.setenv("SPLAT_LION_BACKEND", "cuda")
        monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` fails: not installed
        says = "CuPy is not installed"
    argv = [a.format(out=tmp_path / "out") for a in command]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"splat-lion: {says}"), line
    if setting != "bogus":
        assert "pip install 'splat-lion[cuda12]'" in line and "SPLAT_LION_BACKEND=cpu" in line
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_the_cli_shows_a_missing_compiler_as_one_line(monkeypatch, capsys):
    """The CPU backend without its C++ compiler: `info` names CXX and the fix in one line."""
    monkeypatch.setenv("SPLAT_LION_BACKEND", "cpu")
    monkeypatch.setenv("CXX", "no-such-compiler-13")
    assert main(["info"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("splat-lion: CXX=no-such-compiler-13: no such program on PATH")
    assert "install g++" in line and "set CXX" in line


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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BackendFallbackWarning)
            be = get_backend()
        assert be.name == "cpu" and backend.why_chosen(be).startswith("auto: cuda probe failed")
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


def test_cumsum_into_out_allocates_nothing(be, rng):
    counts = be.asarray(rng.integers(0, 9, 100).astype(np.int32), tag="scratch")
    out = be.empty(100, np.int32, tag="scratch")
    before = be.memory.current_bytes()
    got = be.cumsum(counts, out=out)
    assert be.memory.current_bytes() == before
    np.testing.assert_array_equal(be.to_numpy(got), np.cumsum(be.to_numpy(counts)))
    np.testing.assert_array_equal(be.to_numpy(out), np.cumsum(be.to_numpy(counts)))


# -- workspaces ------------------------------------------------------------------------------

def test_a_workspace_is_handed_out_again_once_its_views_are_gone(be):
    a = be.workspace("test.ws", (4, 5), np.float32, tag="scratch")
    a.fill(3)
    assert a.shape == (4, 5) and a.dtype == np.float32
    del a
    before = be.memory.current_bytes()
    b = be.workspace("test.ws", (2, 10), np.float32, tag="scratch")
    assert be.memory.current_bytes() == before and len(be.workspaces.buffers()) >= 1
    assert (be.to_numpy(b) == 3).all()  # the same memory, as the last user left it
    del b
    be.workspaces.drop("test.")


def test_a_held_workspace_is_never_handed_out_again(be):
    a = be.workspace("test.held", 8, np.int32, tag="scratch")
    view_of_a = a[2:].reshape(2, 3)  # a view of a view still holds the buffer
    del a
    b = be.workspace("test.held", 8, np.int32, tag="scratch")
    c = be.workspace("test.held", 8, np.int32, tag="scratch")  # beyond SLOTS: not kept
    view_of_a.fill(1)
    b.fill(2)
    c.fill(3)
    assert (be.to_numpy(view_of_a) == 1).all() and (be.to_numpy(b) == 2).all()
    assert len([1 for k in be.workspaces._slots if k == "test.held"]) == 1
    assert len(be.workspaces._slots["test.held"]) == be.workspaces.SLOTS
    be.workspaces.drop("test.")


def test_workspaces_grow_to_the_largest_size_asked(be):
    def kept():  # sizes of the kept buffers (holding none of them)
        return [b.size for b in be.workspaces._slots["test.grow"]]

    be.workspace("test.grow", 100, np.float32, tag="scratch")
    be.workspace("test.grow", 50, np.float32, tag="scratch")
    assert kept() == [100]  # smaller: the same buffer
    be.workspace("test.grow", 101, np.float32, tag="scratch")
    assert kept() == [125]  # 5/4 of the old size
    be.workspace("test.grow", 400, np.float32, tag="scratch")
    assert kept() == [400]
    be.workspaces.drop("test.")


def test_workspaces_are_counted_under_their_tag_while_kept(be):
    before = be.memory.current_bytes("intersections")
    be.workspace("test.count", 256, np.uint32, tag="intersections")
    assert be.memory.current_bytes("intersections") - before == 1024
    be.workspaces.drop("test.")
    assert be.memory.current_bytes("intersections") == before


def test_zeroed_workspaces_start_zero_and_a_key_keeps_its_kind(be):
    z = be.workspace("test.zero", 1000, np.int32, tag="scratch", zeros=True)
    assert not be.to_numpy(z).any()
    with pytest.raises(ValueError, match="test.zero"):
        be.workspace("test.zero", 10, np.float32, tag="scratch", zeros=True)
    with pytest.raises(ValueError, match="allocation tag"):
        be.workspace("test.other", 10, np.float32, tag="nonsense")
    be.workspaces.drop("test.")
