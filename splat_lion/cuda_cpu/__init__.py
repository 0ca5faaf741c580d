"""CUDA-on-CPU: run CUDA C kernel source on NumPy arrays, with CuPy's calling convention.

    mod = RawModule(code, options=("-DTILE=16",))
    k = mod.get_function("saxpy")
    k((blocks,), (256,), (x, y, np.float32(2.0), np.int64(n)), shared_mem=0)

Pointers are NumPy arrays (their data pointer is passed, strides are ignored, as in CuPy);
scalars must be NumPy scalars of exactly the kernel parameter's type and width, so a call
that would pass the wrong bytes on the GPU fails here with a message instead.
See cuda_cpu.h for the execution model and builder.py for how the source is compiled.
"""

from __future__ import annotations

import ctypes

import numpy as np

from ..errors import BackendError
from .builder import CompileError, KernelCacheWarning, build, load_library

__all__ = ["RawModule", "RawKernel", "CompileError", "LaunchError", "KernelCacheWarning"]

# Limits a CUDA launch has on every GPU we target; the CPU runtime enforces the same.
MAX_THREADS_PER_BLOCK = 1024
MAX_BLOCK_DIM = (1024, 1024, 64)
MAX_GRID_DIM = (2**31 - 1, 65535, 65535)
MAX_SHARED_BYTES = 48 * 1024  # dynamic shared memory a launch may use without opting in

_C_NAMES = {
    "f4": "float", "f8": "double", "i1": "signed char", "u1": "unsigned char",
    "i2": "short", "u2": "unsigned short", "i4": "int", "u4": "unsigned int",
    "i8": "long long", "u8": "unsigned long long", "b1": "bool", "p8": "pointer",
}
_NUMPY_NAMES = {
    "f4": "float32", "f8": "float64", "i1": "int8", "u1": "uint8", "i2": "int16",
    "u2": "uint16", "i4": "int32", "u4": "uint32", "i8": "int64", "u8": "uint64", "b1": "bool_",
}


class LaunchError(BackendError):
    """A launch failed while running: a deadlock, or a write past dynamic shared memory."""


class RawModule:
    """A compiled CUDA C source, like `cupy.RawModule(code=..., options=...)`."""

    def __init__(self, code: str, options: tuple[str, ...] = ()):
        self.code = code
        self.options = tuple(options)
        self._lib = None
        self._names: list[str] = []
        self._kernels: dict[str, RawKernel] = {}

    def compile(self) -> None:
        """Build (or find in the cache) the host library; done on first `get_function`."""
        if self._lib is None:
            path, self._names = build(self.code, self.options)
            self._lib = load_library(path)

    @property
    def kernel_names(self) -> list[str]:
        self.compile()
        return list(self._names)

    def get_function(self, name: str) -> "RawKernel":
        self.compile()
        if name not in self._kernels:
            if name not in self._names:
                raise ValueError(
                    f"no kernel '{name}' in this module; it defines: {', '.join(self._names) or 'none'}"
                )
            self._kernels[name] = RawKernel(self._lib, name)
        return self._kernels[name]


class RawKernel:
    """One kernel of a RawModule: `kernel(grid, block, args, shared_mem=0)`."""

    def __init__(self, lib: ctypes.CDLL, name: str):
        self.name = name
        sig = getattr(lib, f"cudacpu_signature_{name}")
        sig.restype = ctypes.c_char_p
        text = sig().decode()
        self.signature: tuple[str, ...] = tuple(text.split(",")) if text else ()
        self._launch = getattr(lib, f"cudacpu_launch_{name}")
        self._set_threads = lib.cudacpu_set_threads
        self._set_threads.argtypes = [ctypes.c_int]
        self._set_threads.restype = None
        self._launch.restype = ctypes.c_int
        self._launch.argtypes = [
            ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint), ctypes.c_ulonglong,
            ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_size_t,
        ]

    def __repr__(self) -> str:
        return f"<cuda_cpu.RawKernel {self.name}({', '.join(self.signature)})>"

    def __call__(self, grid, block, args, shared_mem: int = 0, *, ordered: bool = False) -> None:
        """Run the kernel; `ordered=True` runs its blocks one after another in index order on
        one OS thread, so float atomics from different blocks sum in the same order every run
        (bit-reproducible, at the cost of parallelism)."""
        g = _dims("grid", grid, MAX_GRID_DIM)
        b = _dims("block", block, MAX_BLOCK_DIM)
        if b[0] * b[1] * b[2] > MAX_THREADS_PER_BLOCK:
            raise ValueError(
                f"kernel '{self.name}': block {tuple(block)} has {b[0] * b[1] * b[2]} threads, "
                f"more than the {MAX_THREADS_PER_BLOCK} a block may have"
            )
        shared_mem = int(shared_mem)
        if not 0 <= shared_mem <= MAX_SHARED_BYTES:
            raise ValueError(
                f"kernel '{self.name}': shared_mem={shared_mem} bytes; a launch may use 0 to "
                f"{MAX_SHARED_BYTES} bytes of dynamic shared memory"
            )
        if not isinstance(args, (tuple, list)):
            raise TypeError(f"kernel '{self.name}': args must be a tuple, got {type(args).__name__}")
        if len(args) != len(self.signature):
            raise TypeError(
                f"kernel '{self.name}' takes {len(self.signature)} arguments "
                f"({', '.join(_describe(c) for c in self.signature)}), got {len(args)}"
            )
        keep = []  # holds every buffer params point into until the call returns
        params = (ctypes.c_void_p * max(1, len(args)))()
        for i, (code, value) in enumerate(zip(self.signature, args)):
            buf = self._convert(i, code, value)
            keep.append(buf)
            params[i] = ctypes.addressof(buf) if isinstance(buf, ctypes.c_void_p) else buf.ctypes.data
        err = ctypes.create_string_buffer(4096)
        grid3 = (ctypes.c_uint * 3)(*g)
        block3 = (ctypes.c_uint * 3)(*b)
        self._set_threads(1 if ordered else 0)
        try:
            status = self._launch(grid3, block3, shared_mem, params, err, len(err))
        finally:
            self._set_threads(0)
        del keep
        if status != 0:
            raise LaunchError(err.value.decode(errors="replace"))

    def _convert(self, i: int, code: str, value):
        where = f"kernel '{self.name}' argument {i} ({_describe(code)})"
        if code[0] == "p":
            if isinstance(value, np.ndarray):
                return ctypes.c_void_p(value.ctypes.data)
            kind = type(value).__module__.split(".")[0]
            hint = " (a CuPy array cannot reach the CPU runtime)" if kind == "cupy" else ""
            raise TypeError(f"{where}: expected a NumPy array, got {type(value).__name__}{hint}")
        if not isinstance(value, np.generic):
            hint = f"; pass np.{_NUMPY_NAMES[code]}(value)" if code in _NUMPY_NAMES else ""
            raise TypeError(
                f"{where}: got {type(value).__name__} {value!r:.40}, expected a NumPy scalar of "
                f"exactly that type{hint}"
            )
        dt = value.dtype
        if code[0] == "s":
            ok = dt.kind == "V" and dt.itemsize == int(code[1:])
        else:
            ok = dt.kind == code[0] and dt.itemsize == int(code[1:])
        if not ok:
            raise TypeError(
                f"{where}: got np.{dt.name} ({dt.itemsize} bytes); pass "
                + (f"np.{_NUMPY_NAMES[code]}(value)" if code in _NUMPY_NAMES else
                   f"a NumPy structured scalar of {code[1:]} bytes")
            )
        return np.array(value)


def _describe(code: str) -> str:
    if code[0] == "s":
        return f"struct of {code[1:]} bytes"
    return _C_NAMES.get(code, code)


def _dims(what: str, dims, limits) -> tuple[int, int, int]:
    if isinstance(dims, (int, np.integer)):
        dims = (dims,)
    if not isinstance(dims, (tuple, list)) or not 1 <= len(dims) <= 3:
        raise ValueError(f"{what} must be a tuple of 1 to 3 ints, got {dims!r}")
    out = []
    for axis, (d, lim) in enumerate(zip(dims, limits)):
        if not isinstance(d, (int, np.integer)) or isinstance(d, bool) or not 1 <= d <= lim:
            raise ValueError(
                f"{what} {tuple(dims)!r}: dimension {'xyz'[axis]} must be an int in 1..{lim}"
            )
        out.append(int(d))
    return tuple(out + [1] * (3 - len(out)))
