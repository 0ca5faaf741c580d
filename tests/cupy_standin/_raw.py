"""cupy.RawModule / cupy.RawKernel of the stand-in: the same CUDA C source, compiled by
splat_lion.cuda_cpu (g++) instead of NVRTC, launched with CuPy's argument rules.

CuPy's rules (cupy/_core/raw.pyx, cupy/cuda/function.pyx of 14.2), kept here:
- RawModule(code=..., options=...): `code` a str, `options` a tuple (a list is a TypeError).
- kernel(grid, block, args, shared_mem=0): grid and block are tuples (a list or an int is a
  TypeError); shared_mem a size_t.
- Each argument: a device array (its pointer), a NumPy scalar (its bytes), or a NumPy array
  of size one (its bytes); a larger host array is a TypeError with CuPy's message.
Stricter than CuPy, as the CPU runtime is (it knows each parameter's type, CuPy does not):
- A Python int, float or bool is refused: CuPy would pass 8 bytes (int64 / float64 / bool)
  whatever the kernel expects, silently wrong for an int32 or a float parameter.
- A device array where the kernel takes a value, or a value where it takes a pointer, is
  refused; a scalar must have exactly the parameter's type and width.
"""

from __future__ import annotations

import numpy as np

from . import _counters as C
from ._core import ndarray

_CUPY_HOST_ARRAY = ("You are trying to pass a numpy.ndarray of shape {} as a kernel parameter. "
                    "Only numpy.ndarrays of size one can be passed by value. If you meant to "
                    "pass a pointer to __global__ memory, you need to pass a cupy.ndarray "
                    "instead.")


def _cuda_cpu():
    """splat_lion.cuda_cpu, imported when first needed: installing the stand-in imports
    nothing of splat_lion, so it can come before splat_lion's first import."""
    from splat_lion import cuda_cpu
    return cuda_cpu


def _typed(what: str, value, expected: type):
    if not isinstance(value, expected):
        raise TypeError(f"Argument '{what}' has incorrect type (expected {expected.__name__}, "
                        f"got {type(value).__name__})")
    return value


class RawModule:
    """cupy.RawModule(code=..., options=(...)) compiled by the CPU runtime."""

    def __init__(self, code=None, *, path=None, options=(), backend="nvrtc",
                 translate_cucomplex=False, enable_cooperative_groups=False,
                 name_expressions=None, jitify=None):
        if path is not None or name_expressions is not None or jitify:
            raise NotImplementedError("the stand-in's RawModule takes code= only")
        if code is None:
            raise TypeError("Either code or path must be given")
        self.code = _typed("code", code, str)
        self.options = _typed("options", options, tuple)
        self.backend = _typed("backend", backend, str)
        if backend not in ("nvrtc", "nvcc"):
            raise ValueError(f"Invalid backend {backend}")
        self.enable_cooperative_groups = enable_cooperative_groups
        self._module = _cuda_cpu().RawModule(code, options)
        self._kernels: dict[str, RawKernel] = {}

    def get_function(self, name):
        _typed("name", name, str)
        if name not in self._kernels:
            try:
                inner = self._module.get_function(name)
            except ValueError as e:  # CuPy: CUDADriverError CUDA_ERROR_NOT_FOUND
                raise RuntimeError(f"CUDA_ERROR_NOT_FOUND: named symbol not found ({e})") \
                    from None
            k = RawKernel.__new__(RawKernel)
            k._setup(self.code, name, self.options, self.backend, inner)
            self._kernels[name] = k
        return self._kernels[name]

    def compile(self, log_stream=None):
        self._module.compile()


class RawKernel:
    """One kernel; `kernel(grid, block, args, shared_mem=0)` runs it on the CPU runtime.
    The resource attributes CuPy reads from the driver (num_regs, local_size_bytes, ...) are
    0 here: the CPU runtime has no registers (splat_lion.nvrtc_check reads real ones)."""

    def __init__(self, code, name, options=(), backend="nvrtc", translate_cucomplex=False, *,
                 enable_cooperative_groups=False, jitify=None):
        _typed("code", code, str)
        _typed("name", name, str)
        _typed("options", options, tuple)
        inner = _cuda_cpu().RawModule(code, options).get_function(name)
        self._setup(code, name, options, backend, inner)

    def _setup(self, code, name, options, backend, inner) -> None:
        self.code, self.name, self.options, self.backend = code, name, options, backend
        self.enable_cooperative_groups = False
        self.kernel = inner
        self._signature = inner.signature

    # what CuPy reads from cuFuncGetAttribute; the CPU runtime has none of these
    num_regs = property(lambda self: 0)
    local_size_bytes = property(lambda self: 0)
    shared_size_bytes = property(lambda self: 0)
    const_size_bytes = property(lambda self: 0)
    max_threads_per_block = property(lambda self: _cuda_cpu().MAX_THREADS_PER_BLOCK)
    max_dynamic_shared_size_bytes = property(lambda self: _cuda_cpu().MAX_SHARED_BYTES)
    ptx_version = property(lambda self: 0)
    binary_version = property(lambda self: 0)
    preferred_shared_memory_carveout = property(lambda self: -1)
    cache_mode_ca = property(lambda self: 0)

    @property
    def attributes(self):
        names = ("max_threads_per_block", "shared_size_bytes", "const_size_bytes",
                 "local_size_bytes", "num_regs", "ptx_version", "binary_version",
                 "cache_mode_ca", "max_dynamic_shared_size_bytes",
                 "preferred_shared_memory_carveout")
        return {n: getattr(self, n) for n in names}

    def compile(self, log_stream=None):
        pass

    def __repr__(self):
        return f"<stand-in RawKernel {self.name}>"

    def __call__(self, grid, block, args, *, shared_mem=0):
        _typed("grid", grid, tuple)
        _typed("block", block, tuple)
        if isinstance(shared_mem, bool) or not isinstance(shared_mem, (int, np.integer)):
            raise TypeError(f"an integer is required for shared_mem, got "
                            f"{type(shared_mem).__name__}")
        if shared_mem < 0:
            raise OverflowError("can't convert negative value to size_t")
        sig = self._signature
        if len(args) != len(sig):  # CuPy would launch and read garbage; the runtime refuses
            raise TypeError(f"kernel '{self.name}' takes {len(sig)} arguments, got {len(args)}")
        host_args = tuple(self._arg(i, code, a) for i, (code, a) in enumerate(zip(sig, args)))
        C.launch()
        self.kernel(grid, block, host_args, shared_mem=int(shared_mem))

    def _arg(self, i: int, code: str, a):
        where = f"kernel '{self.name}' argument {i}"
        pointer = code[0] == "p"
        if type(a) is ndarray:
            if not pointer:
                raise TypeError(f"{where}: a device array where the kernel takes a value "
                                f"({code}); CuPy would pass its address as the value")
            return a._a
        if isinstance(a, np.ndarray):
            if a.size != 1:
                raise TypeError(_CUPY_HOST_ARRAY.format(a.shape))
            a = a.reshape(-1)[0]  # CuPy passes a size-one array by value
        if pointer:
            raise TypeError(f"{where}: the kernel takes a pointer, got {type(a).__name__} "
                            f"{a!r:.40}: pass a device array (cupy.asarray(...))")
        if type(a) in (bool, int, float, complex):  # np.float64 is a float too: not that
            wide = {bool: "bool", int: "int64", float: "float64", complex: "complex128"}
            raise TypeError(f"{where}: got Python {type(a).__name__} {a!r:.40}; CuPy would pass "
                            f"it as {wide[type(a)]} whatever the parameter's type: pass a NumPy "
                            "scalar of the parameter's exact type (e.g. np.int32(n))")
        if not isinstance(a, np.generic):
            raise TypeError(f"Unsupported type {type(a)}")
        return a
