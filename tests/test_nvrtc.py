"""Every CUDA kernel compiles with NVRTC, the compiler CuPy uses, without errors or warnings,
and neither spills nor uses local memory on sm_90; SASS instructions are counted per kernel.

No GPU needed: NVRTC (pip `nvidia-cuda-nvrtc-cu12`) builds a CUBIN for sm_75, sm_80 and sm_90;
nvdisasm (the CUDA toolkit's, or pip `nvidia-cuda-nvdisasm`) reads it where installed.
Skipped where NVRTC is not installed, except under CI=true, where that is a failure: CI
installs it (`pip install -e .[test]`) and must not pass by skipping.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from splat_lion import kernels, nvrtc_check

TEST_KERNELS = Path(__file__).resolve().parent / "kernels"

CLEAN = 'extern "C" __global__ void k(float* y) { y[threadIdx.x] = 1.0f; }\n'

# Sources NVRTC must reject (error) or warn about; each must make the check fail.
BAD_SOURCES = {
    "syntax_error": 'extern "C" __global__ void k(float* y) { y[0] = 1.0f }\n',
    "unused_variable": 'extern "C" __global__ void k(float* y) { int x = 1; y[0] = 1.0f; }\n',
    "missing_return": ('__device__ int f(int a) { if (a) return 1; }\n'
                       'extern "C" __global__ void k(int* y) { y[0] = f(y[1]); }\n'),
    "warning_directive": '#warning "left in by mistake"\n' + CLEAN,
}

# Holds 96 floats live under __launch_bounds__(1024, 2) (at most 32 registers): ptxas spills.
SPILLING = """
extern "C" __global__ void __launch_bounds__(1024, 2) spill(const float* x, float* y, int n) {
    float v[96];
#pragma unroll
    for (int i = 0; i < 96; ++i) v[i] = x[threadIdx.x + i * n];
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < 96; ++i) s += v[i] * v[95 - i];
#pragma unroll
    for (int i = 0; i < 96; ++i) y[threadIdx.x + i * n] = v[i] * s;
}
"""


# An array written at indices known only at run time lives in local memory (a stack frame),
# though nothing spills.
LOCAL_ARRAY = """
extern "C" __global__ void local_array(const int* idx, const float* x, float* y, int n) {
    float v[64];
    for (int i = 0; i < 64; ++i) v[i] = 0.0f;
    for (int i = 0; i < n; ++i) v[idx[i] & 63] += x[i];
    for (int i = 0; i < 64; ++i) y[64 * threadIdx.x + i] = v[i];
}
"""


@pytest.fixture(scope="module")
def nvrtc():
    """The NVRTC library; skips without it, fails without it under CI=true."""
    if nvrtc_check.find_nvrtc() is None:
        msg = f"NVRTC not found: {nvrtc_check.INSTALL_HINT}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{msg} (CI=true: CI must compile every kernel, not skip)", pytrace=False)
        pytest.skip(msg)
    return nvrtc_check.load_nvrtc()


@pytest.fixture(scope="module")
def results(nvrtc):
    """Every kernels/*.cu, tests/kernels/*.cu and benchmarks/kernels/*.cu, once per arch."""
    return nvrtc_check.check()


def _describe(failures) -> str:
    return "\n\n".join(f"{r.name} [{r.arch}] {r.status}:\n{r.log.rstrip()}" for r in failures)


def test_every_kernel_compiles_without_errors_or_warnings(results):
    failures = [r for r in results if not r.ok]
    assert not failures, f"{len(failures)} of {len(results)} NVRTC builds failed:\n\n" + \
        _describe(failures)


def test_every_cu_file_is_compiled_for_every_arch(results):
    expected_files = {p.resolve() for p in kernels.kernel_dir().glob("*.cu")}
    assert expected_files, f"no kernels in {kernels.kernel_dir()}: the check would be vacuous"
    root = Path(__file__).resolve().parents[1]
    for folder in ("tests/kernels", "benchmarks/kernels"):
        expected_files |= {p.resolve() for p in (root / folder).glob("*.cu")}
    expected = {(p, arch) for p in expected_files for arch in nvrtc_check.DEFAULT_ARCHS}
    compiled = [(Path(r.path), r.arch) for r in results]
    assert len(compiled) == len(set(compiled)), "a (file, arch) pair was compiled twice"
    assert set(compiled) == expected
    assert all(r.cubin_bytes > 0 for r in results if r.ok)


def test_options_are_cupys_own_plus_ours():
    """CuPy 14.2 compiles a RawModule with our options, --std=c++17 unless we name one, then
    -ftz=true, -arch=sm_XX and --device-as-default-execution-space (include folders aside)."""
    assert nvrtc_check.cupy_options(kernels.options(), "sm_80") == (
        *kernels.options(), "-ftz=true", "-arch=sm_80", "--device-as-default-execution-space")
    assert "--std=c++17" in kernels.options()
    assert nvrtc_check.cupy_options(("-DA=1",), "compute_90") == (
        "-DA=1", "--std=c++17", "-ftz=true", "-arch=compute_90",
        "--device-as-default-execution-space")
    with pytest.raises(ValueError, match="expected 'sm_XX'"):
        nvrtc_check.cupy_options((), "90")


SAXPY = ('extern "C" __global__ void saxpy(const float* x, float* y, float a, int n) {\n'
         "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
         "    if (i < n) y[i] = a * x[i] + y[i];\n}\n")


def test_kernels_compile_with_flush_to_zero_and_fused_multiply_add(nvrtc):
    """What the CPU runtime must match: float arithmetic flushes subnormals (.ftz) and
    a * x + y contracts into one FMA (NVRTC's default --fmad=true)."""
    ptx = nvrtc_check.compile_ptx(SAXPY, "saxpy.cu", kernels.options())
    assert "fma.rn.ftz.f32" in ptx, ptx


def _installed_cupy_compiler() -> Path | None:
    """cupy/cuda/compiler.py of a real CuPy wheel, if one is importable here."""
    spec = importlib.util.find_spec("cupy")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "cuda" / "compiler.py"
    return path if path.is_file() else None


@pytest.mark.skipif(_installed_cupy_compiler() is None, reason="no CuPy wheel installed")
def test_the_options_modelled_are_in_the_installed_cupy():
    """A drift check: the options cupy_options adds still appear in CuPy's compiler."""
    text = _installed_cupy_compiler().read_text()
    for option in (*nvrtc_check.CUPY_OPTIONS_BEFORE_ARCH, *nvrtc_check.CUPY_OPTIONS_AFTER_ARCH,
                   "-arch=sm_", "-arch=compute_"):
        assert option in text, f"{option} no longer in {_installed_cupy_compiler()}"


def test_clean_source_passes(nvrtc):
    # The control for the failures below: the check does not fail everything.
    r = nvrtc_check.compile_source(CLEAN, "clean.cu", kernels.options(), "sm_75")
    assert r.ok, r.log
    assert r.log.strip() == "" and r.cubin_bytes > 0


@pytest.mark.parametrize("case", sorted(BAD_SOURCES))
def test_errors_and_warnings_fail(nvrtc, case):
    r = nvrtc_check.compile_source(BAD_SOURCES[case], f"{case}.cu", kernels.options(), "sm_75")
    assert not r.ok
    assert r.log.strip(), "a failure must come with NVRTC's log"
    if case == "syntax_error":
        assert r.status != "NVRTC_SUCCESS" and r.cubin_bytes == 0
    else:
        # It compiled (a CUBIN exists), yet the warning alone fails the check.
        assert r.status == "NVRTC_SUCCESS" and r.cubin_bytes > 0
        assert "warning" in r.log


def test_command_exits_1_on_a_warning_in_a_file(nvrtc, tmp_path, capsys):
    bad = tmp_path / "warns.cu"
    bad.write_text(BAD_SOURCES["unused_variable"])
    (result,) = nvrtc_check.check([bad], archs=("sm_90",))
    assert not result.ok and result.path == str(bad.resolve())

    assert nvrtc_check.main([str(bad), "--arch", "sm_90"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "never referenced" in out


def test_library_kernels_neither_spill_nor_use_local_memory(nvrtc):
    reports = nvrtc_check.resources(sorted(kernels.kernel_dir().glob("*.cu")))
    failures = [r for r in reports if not r.ok]
    assert not failures, "\n\n".join(f"{r.name} ({r.tool}): {r.note}\n{r.log}" for r in failures)
    entries = [f for r in reports for f in r.functions if f.entry]
    assert entries and all(f.registers for f in entries), "ptxas report not parsed"
    assert all(f.stack_bytes == 0 and f.spill_store_bytes == 0 for f in entries)
    if nvrtc_check.find_nvdisasm() is not None:
        assert all(f.sass_instructions and f.sass_instructions > 10 for f in entries), entries


def test_local_memory_fails_the_resource_check(nvrtc, tmp_path, capsys):
    r = nvrtc_check.resources_source(LOCAL_ARRAY, "local_array.cu", kernels.options())
    assert not r.ok, r.log
    (k,) = [f for f in r.functions if f.function == "local_array"]
    assert k.stack_bytes > 0 and k.spill_store_bytes == 0 and k.spill_load_bytes == 0
    assert "local memory (stack frame) in local_array" in r.note

    path = tmp_path / "local_array.cu"
    path.write_text(LOCAL_ARRAY)
    assert nvrtc_check.main([str(path), "--arch", "sm_90"]) == 0  # it compiles cleanly
    assert nvrtc_check.main([str(path), "--arch", "sm_90", "--resources"]) == 1
    assert "resources FAIL: local memory" in capsys.readouterr().out


@pytest.mark.skipif(nvrtc_check.find_nvdisasm() is None,
                    reason=f"no nvdisasm: {nvrtc_check.NVDISASM_HINT}")
def test_sass_instructions_are_counted_per_kernel(nvrtc, capsys):
    r = nvrtc_check.resources_source(SAXPY, "saxpy.cu", kernels.options())
    assert r.ok and r.sass_tool.startswith("nvdisasm")
    (saxpy,) = [f for f in r.functions if f.function == "saxpy"]
    assert 10 < saxpy.sass_instructions < 60  # address arithmetic, 2 loads, 1 FMA, 1 store
    assert nvrtc_check.main([str(TEST_KERNELS / "warp.cu"), "--arch", "sm_90",
                             "--resources"]) == 0
    out = capsys.readouterr().out
    assert "SASS" in out and "nvdisasm" in out


def test_without_a_disassembler_the_counts_are_left_out_with_a_note(nvrtc, monkeypatch):
    monkeypatch.setattr(nvrtc_check, "find_nvdisasm", lambda: None)
    r = nvrtc_check.resources_source(SAXPY, "saxpy.cu", kernels.options())
    assert r.ok and r.sass_tool == ""
    assert all(f.sass_instructions is None for f in r.functions)
    assert "no nvdisasm found" in r.note and nvrtc_check.NVDISASM_HINT in r.note


def test_nvdisasm_output_is_parsed():
    """Instructions per `.text.<kernel>` section, subroutines included; the NOP padding and
    the closing branch-to-itself left out."""
    text = """\
//--------------------- .text.k       --------------------------
        .section        .text.k,"ax",@progbits
        .global         k
k:
.text.k:
        /*0000*/                   LDC R1, c[0x0][0x28] ;
        /*0010*/              @!P0 BRA `(.L_x_1) ;
.L_x_1:
        /*0020*/                   EXIT ;
        .type           $__internal_0_$__cuda_sm20_rcp_rn_ftz_f32_slowpath,@function
$__internal_0_$__cuda_sm20_rcp_rn_ftz_f32_slowpath:
        /*0030*/                   MUFU.RCP R9, R10 ;
        /*0040*/                   RET.REL.NODEC R8 `(k) ;
.L_x_2:
        /*0050*/                   BRA `(.L_x_2);
        /*0060*/                   NOP;
        /*0070*/                   NOP;
.L_x_3:
//--------------------- .text.empty_loop       --------------------------
        .section        .text.empty_loop,"ax",@progbits
.L_x_4:
        /*0000*/                   BRA `(.L_x_4) ;
        /*0010*/                   EXIT ;
"""
    assert nvrtc_check.parse_sass(text) == {"k": 5, "empty_loop": 2}


def test_spilling_kernel_fails_the_resource_check(nvrtc):
    r = nvrtc_check.resources_source(SPILLING, "spill.cu", kernels.options())
    assert not r.ok, r.log
    (spill,) = [f for f in r.functions if f.function == "spill"]
    assert spill.spill_store_bytes > 0 and spill.spill_load_bytes > 0


def test_ptxas_report_is_parsed_in_old_and_new_formats():
    text = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'a' for 'sm_90'
ptxas info    : Function properties for a
    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 26 registers, used 1 barriers, 128 bytes smem
ptxas info    : Function properties for _Z6helperf
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Compiling entry function 'b' for 'sm_75'
ptxas info    : Function properties for b
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 10 registers, 4096 bytes smem, 380 bytes cmem[0]
"""
    got = {f.function: f for f in nvrtc_check.parse_ptxas(text)}
    assert got["a"] == nvrtc_check.KernelResources("a", True, 26, 4, 12, 8, 128)
    assert got["_Z6helperf"] == nvrtc_check.KernelResources("_Z6helperf", False, None, 0, 0, 0, 0)
    assert got["b"] == nvrtc_check.KernelResources("b", True, 10, 0, 0, 0, 4096)


def test_missing_nvrtc_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(nvrtc_check.ENV_VAR, str(tmp_path / "no_libnvrtc.so.12"))
    assert nvrtc_check.find_nvrtc() is None
    with pytest.raises(RuntimeError, match="pip install nvidia-cuda-nvrtc-cu12"):
        nvrtc_check.load_nvrtc()
    assert nvrtc_check.main([]) == 2
    assert "pip install nvidia-cuda-nvrtc-cu12" in capsys.readouterr().err
