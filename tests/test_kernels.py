"""splat_lion.kernels: the one loader of kernels/*.cu."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from splat_lion import cuda_cpu, kernels
from splat_lion.backend import get_backend


def test_source_pastes_common_and_keeps_line_numbers():
    path = kernels.family_path("selftest")
    text = kernels.source(path)
    assert text.startswith('#line 1 "kernels/selftest.cu"\n')
    assert not any(s.startswith('#include') for s in text.splitlines())
    assert "warp_sum_atomic_add" in text  # from common.cuh
    # the line after the include is announced with its real number
    lines = path.read_text().splitlines()
    include_at = next(i for i, s in enumerate(lines) if s.startswith('#include "common.cuh"')) + 1
    assert f'#line {include_at + 1} "kernels/selftest.cu"' in text


def test_options_are_fixed_plus_sorted_defines():
    assert kernels.options() == kernels.FIXED_OPTIONS
    assert kernels.options({"B": 2, "A": "x1"})[-2:] == ("-DA=x1", "-DB=2")
    with pytest.raises(ValueError, match="NAME=VALUE"):
        kernels.options({"A B": 1})
    with pytest.raises(TypeError, match="int or a str"):
        kernels.options({"A": 1.5})


def test_launch_geometry_has_one_home():
    """TILE and BLOCK are defined in kernels.py only and reach every kernel as -D options;
    kernels/common.cuh refuses to compile without them, and no caller may change them."""
    assert f"-DTILE={kernels.TILE}" in kernels.FIXED_OPTIONS
    assert f"-DBLOCK={kernels.BLOCK}" in kernels.FIXED_OPTIONS
    with pytest.raises(ValueError, match="launch geometry is fixed"):
        kernels.options({"TILE": 8})
    common = (kernels.kernel_dir() / "common.cuh").read_text()
    assert "#define TILE" not in common and "#define BLOCK" not in common


def test_modules_are_cached_per_family_and_options():
    cpu = get_backend("cpu")
    m1 = kernels.module("selftest", backend=cpu)
    assert kernels.module("selftest", backend=cpu) is m1
    assert kernels.module("selftest", {"UNUSED": 1}, backend=cpu) is not m1


def test_kernel_handles_are_made_once_per_backend_family_kernel_and_defines(monkeypatch):
    """A launch must not call get_function (on CuPy it builds a new RawKernel each time)."""
    cpu = get_backend("cpu")
    made = []
    original = cuda_cpu.RawModule.get_function

    def counting(self, name):
        made.append(name)
        return original(self, name)

    monkeypatch.setattr(kernels, "_functions", {})
    monkeypatch.setattr(cuda_cpu.RawModule, "get_function", counting)
    k = kernels.function("selftest", "selftest_saxpy", backend=cpu)
    assert all(kernels.function("selftest", "selftest_saxpy", backend=cpu) is k for _ in range(3))
    assert made == ["selftest_saxpy"]
    other = kernels.function("selftest", "selftest_saxpy", {"UNUSED": 1}, backend=cpu)
    assert other is not k
    assert kernels.function("selftest", "selftest_block_sum", backend=cpu) is not k
    assert made == ["selftest_saxpy", "selftest_saxpy", "selftest_block_sum"]


def test_unknown_family_is_a_clear_error():
    with pytest.raises(ValueError, match="no kernel family 'nope'.*selftest"):
        kernels.module("nope")


def test_a_new_kernel_file_needs_no_loader_change(tmp_path, monkeypatch):
    shutil.copy(kernels.kernel_dir() / "common.cuh", tmp_path / "common.cuh")
    (tmp_path / "brand_new.cu").write_text(
        '#include "common.cuh"\n'
        'extern "C" __global__ void brand_new_fill(float* out, float v) {\n'
        "    out[linear_thread_id()] = v;\n}\n")
    monkeypatch.setattr(kernels, "kernel_dir", lambda: tmp_path)
    assert "brand_new" in kernels.families()
    out = np.zeros(64, np.float32)
    cpu = get_backend("cpu")
    cpu.launch(kernels.function("brand_new", "brand_new_fill", backend=cpu), (1,), (8, 8),
               (out, np.float32(4.5)))
    assert (out == 4.5).all()


def test_importing_the_package_compiles_nothing(tmp_path):
    env = {**os.environ, "SPLAT_LION_CACHE_DIR": str(tmp_path),
           "PYTHONPATH": str(Path(__file__).parents[1])}
    code = ("import splat_lion, splat_lion.kernels, splat_lion.backend, splat_lion.selftest, "
            "splat_lion.cli, splat_lion.cuda_cpu")
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    assert not any(tmp_path.rglob("*.so"))


def test_kernels_are_found_in_an_installed_wheel_layout(tmp_path):
    """A wheel puts kernels/ at splat_lion/_kernels: the loader must look there first."""
    pkg = tmp_path / "splat_lion"
    shutil.copytree(Path(kernels.__file__).parent, pkg,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(kernels.kernel_dir(), pkg / "_kernels")
    code = "import splat_lion.kernels as k; print(k.kernel_dir()); print(k.families())"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(tmp_path)},
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert out.splitlines()[0] == str(pkg / "_kernels")
    assert "selftest" in out
