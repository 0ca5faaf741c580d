"""The module objects that play `cupy`, `cupy.cuda`, `cupy.cuda.runtime`, `cupy.cuda.nvrtc`
and `cupy.linalg`: each holds exactly the names listed here (test_standin checks every one
against CuPy's API table, cupy_api.json), plus `cupy.IS_STANDIN = True`, the marker by which
code tells the stand-in from CuPy (benchmarks/gpu_check.py marks its timings not-GPU)."""

from __future__ import annotations

import importlib.machinery
import types

import numpy as np

from . import _core, _cuda, _functions, _raw

VERSION = "14.2.0+standin"  # the CuPy release whose API this follows, marked as the stand-in

# NumPy's scalar types and constants, which cupy re-exports as they are
DTYPES = ("bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", "complex64", "complex128", "intp", "dtype")
CONSTANTS = ("inf", "nan", "pi", "e", "newaxis")

RUNTIME = ("getDeviceCount", "getDevice", "deviceSynchronize", "memGetInfo",
           "getDeviceProperties", "runtimeGetVersion", "driverGetVersion", "CUDARuntimeError")

_modules: dict[str, types.ModuleType] = {}


def _make(name: str, doc: str, names: dict) -> types.ModuleType:
    m = types.ModuleType(name, doc)
    m.__spec__ = importlib.machinery.ModuleSpec(name, None)
    m.__dict__.update(names)
    return m


def modules() -> dict[str, types.ModuleType]:
    """name -> module object, built once: cupy, cupy.cuda, cupy.cuda.runtime,
    cupy.cuda.nvrtc, cupy.linalg."""
    if _modules:
        return _modules
    runtime = _make("cupy.cuda.runtime", "The stand-in's CUDA runtime queries.",
                    {n: getattr(_cuda._Runtime, n) for n in RUNTIME})
    nvrtc = _make("cupy.cuda.nvrtc", "NVRTC's version, as the stand-in reports it.",
                  {"getVersion": _cuda._Nvrtc.getVersion})
    cuda = _make("cupy.cuda", "The stand-in's cupy.cuda.", {
        "runtime": runtime, "nvrtc": nvrtc, "Device": _cuda.Device, "Event": _cuda.Event,
        "get_elapsed_time": _cuda.get_elapsed_time, "is_available": _cuda.is_available,
        "MemoryPool": _core.MemoryPool, "MemoryPointer": _core.MemoryPointer,
    })
    linalg = _make("cupy.linalg", "The stand-in's cupy.linalg.", {"norm": _functions.norm})
    names = {
        "ndarray": _core.ndarray, "ufunc": _functions.ufunc,
        "RawModule": _raw.RawModule, "RawKernel": _raw.RawKernel,
        "cuda": cuda, "linalg": linalg,
        **{n: getattr(_functions, n) for n in _functions.FUNCTIONS},
        **{n: getattr(_functions, n) for n in _functions.UFUNC_NAMES},
        **{n: getattr(np, n) for n in DTYPES + CONSTANTS},
    }
    cupy = _make("cupy", "The strict CuPy stand-in of splat-lion's tests (tests/cupy_standin): "
                 "device arrays backed by NumPy, kernels on splat_lion.cuda_cpu.", names)
    cupy.__version__ = VERSION
    cupy.IS_STANDIN = True  # the one name the real CuPy lacks: how code tells them apart
    for m in (cupy, cuda, runtime, nvrtc, linalg):
        _modules[m.__name__] = m
    return _modules


def module() -> types.ModuleType:
    """The stand-in's `cupy`."""
    return modules()["cupy"]
