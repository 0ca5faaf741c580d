"""Argument checks every kernel wrapper makes before a launch (RawKernel checks nothing)."""

from __future__ import annotations

import numpy as np


def check_array(name: str, a, dtype, shape: tuple[int | None, ...] | None = None, xp=np):
    """Raise unless `a` is a C-contiguous `xp` array of `dtype` and `shape` (None: any size)."""
    if not isinstance(a, xp.ndarray):
        raise TypeError(f"{name}: expected a {xp.__name__} array, got {type(a).__name__}")
    if a.dtype != np.dtype(dtype):
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype).name}, got {a.dtype.name}")
    if shape is not None:
        ok = a.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, a.shape))
        if not ok:
            want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
            raise ValueError(f"{name}: expected shape {want}, got {list(a.shape)}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: must be C-contiguous (use xp.ascontiguousarray)")
    return a


def data_ptr(a) -> int:
    """Address of a NumPy or CuPy array's first element."""
    return a.ctypes.data if isinstance(a, np.ndarray) else a.data.ptr


def check_aligned(name: str, a, nbytes: int) -> None:
    """Raise unless `a`'s data is aligned to `nbytes` (kernels use 16-byte vector access)."""
    if data_ptr(a) % nbytes:
        raise ValueError(f"{name}: data must be {nbytes}-byte aligned for vector access; "
                         "pass a freshly allocated array or a layout view, not an offset slice")
