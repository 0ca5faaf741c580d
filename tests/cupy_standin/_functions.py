"""The stand-in's numpy-like functions: the subset of CuPy's that splat-lion calls (and a few
neighbours), each with CuPy 14.2's parameters (test_standin checks them against
cupy_api.json) and each counted: one device operation per call that launches work, one
allocation per new array, a sync where CuPy waits for the device (nonzero, unique,
asnumpy).
"""

from __future__ import annotations

import builtins

import numpy as np

from . import _core
from . import _counters as C
from ._core import POOL, _arg, _dev, _new, _out, _result, _view, ndarray

# -- ufuncs ------------------------------------------------------------------------------------


class ufunc:  # noqa: N801 (CuPy's name)
    """A CuPy ufunc: `f(x, [y,] out=None, *, casting='same_kind', dtype=None)` on device
    arrays and scalars; a host array is refused ("Unsupported type")."""

    def __init__(self, name: str, numpy_ufunc: np.ufunc) -> None:
        self.__name__ = self.name = name
        self._np = numpy_ufunc
        self.nin = numpy_ufunc.nin
        self.nout = 1
        self.nargs = self.nin + 1

    def __repr__(self) -> str:
        return f"<ufunc 'cupy_{self.name}'>"

    def __call__(self, *args, out=None, casting="same_kind", dtype=None):
        n = self.nin
        if len(args) == n + 1 and out is None:
            args, out = args[:n], args[n]
        if len(args) != n:
            raise TypeError(f"Wrong number of arguments for {self.name}")
        kw = {}
        if dtype is not None:
            kw["dtype"] = dtype
        if casting != "same_kind":
            kw["casting"] = casting
        ins = [_arg(a) for a in args]
        if out is not None:
            self._np(*ins, out=_out(out), **kw)
            C.op(self.name)
            return out
        r = self._np(*ins, **kw)
        C.op(self.name)
        return _new(r)


# name in CuPy -> NumPy's ufunc of the same meaning
_UFUNC_NAMES = (
    "add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "power",
    "remainder", "mod", "negative", "positive", "absolute", "sign", "sqrt", "square", "exp",
    "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan", "arcsin", "arccos",
    "arctan", "arctan2", "sinh", "cosh", "tanh", "hypot", "maximum", "minimum", "fmax", "fmin",
    "isfinite", "isnan", "isinf", "signbit", "copysign", "logical_and", "logical_or",
    "logical_xor", "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor", "invert",
    "left_shift", "right_shift", "equal", "not_equal", "less", "less_equal", "greater",
    "greater_equal", "floor", "ceil", "trunc", "rint", "reciprocal", "fabs",
)
_made = {name: ufunc(name, getattr(np, name)) for name in _UFUNC_NAMES}
globals().update(_made)
abs = _made["absolute"]  # noqa: A001 (cupy.abs is cupy.absolute)
# NumPy ufunc name -> the stand-in's, for __array_ufunc__ (np.exp(device) runs exp here)
UFUNCS = {u._np.__name__: u for u in _made.values()}
UFUNC_NAMES = (*_UFUNC_NAMES, "abs")
BY_NAME = {**_made, "abs": abs}  # the stand-in's name -> its ufunc (operators use these)

# -- creation ----------------------------------------------------------------------------------


def empty(shape, dtype=float, order="C"):
    return _new(np.empty(shape, dtype, order))


def zeros(shape, dtype=float, order="C"):
    C.op("zeros")  # a memset
    return _new(np.zeros(shape, dtype, order))


def ones(shape, dtype=float, order="C"):
    C.op("ones")
    return _new(np.ones(shape, dtype, order))


def full(shape, fill_value, dtype=None, order="C"):
    C.op("full")
    return _new(np.full(shape, _arg(fill_value), dtype, order))


def empty_like(prototype, dtype=None, order="K", subok=None, shape=None):
    return _new(np.empty_like(_dev(prototype, "prototype"), dtype, order, shape=shape))


def zeros_like(a, dtype=None, order="K", subok=None, shape=None):
    C.op("zeros_like")
    return _new(np.zeros_like(_dev(a), dtype, order, shape=shape))


def ones_like(a, dtype=None, order="K", subok=None, shape=None):
    C.op("ones_like")
    return _new(np.ones_like(_dev(a), dtype, order, shape=shape))


def full_like(a, fill_value, dtype=None, order="K", subok=None, shape=None):
    C.op("full_like")
    return _new(np.full_like(_dev(a), _arg(fill_value), dtype, order, shape=shape))


def arange(start, stop=None, step=1, dtype=None):
    C.op("arange")
    return _new(np.arange(start, stop, step, dtype))


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    C.op("linspace")
    r = np.linspace(start, stop, num, endpoint, retstep, dtype, axis)
    return (_new(r[0]), r[1]) if retstep else _new(r)


def _from_host(obj, dtype, copy: bool, order):
    """A host object (NumPy array, list, scalar) copied to a new device array."""
    if isinstance(obj, (list, tuple)) and builtins.any(type(x) is ndarray for x in obj):
        joined = stack(obj)  # device arrays in a list: joined on the device
        return joined if dtype is None else joined.astype(dtype, copy=False)
    C.transfer()
    return _new(np.array(obj, dtype=dtype, order=order if order in ("C", "F") else "K"))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if type(obj) is ndarray:
        r = obj._a.astype(dtype if dtype is not None else obj.dtype, order=order, copy=True)
        C.op("array (copy)")
        out = _new(r)
    else:
        out = _from_host(obj, dtype, True, order)
    while out.ndim < ndmin:
        out = out[None]
    return out


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    if type(a) is ndarray:
        if (dtype is None or np.dtype(dtype) == a.dtype) and copy is not True:
            return a
        return a.astype(a.dtype if dtype is None else dtype)
    return _from_host(a, dtype, True, order)


def ascontiguousarray(a, dtype=None):
    x = _dev(a)
    if x.flags.c_contiguous and (dtype is None or np.dtype(dtype) == x.dtype):
        return a
    C.op("ascontiguousarray")
    return _new(np.ascontiguousarray(x, dtype))


def copy(a, order="K"):
    C.op("copy")
    return _new(np.array(_dev(a), order=order, copy=True))


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if type(a) is ndarray:
        return a.get(stream, order, out, blocking)
    if out is not None:
        out[...] = a
        return out
    return np.asarray(a, order=order)


def get_array_module(*args):
    from . import namespace
    return namespace.module() if any(type(a) is ndarray for a in args) else np


def get_default_memory_pool():
    return POOL


# -- reductions and scans ------------------------------------------------------------------------


def sum(a, axis=None, dtype=None, out=None, keepdims=False):  # noqa: A001
    r = np.sum(_dev(a), axis=axis, dtype=dtype, out=_out(out), keepdims=keepdims)
    return _result(r, out, "sum")


def mean(a, axis=None, dtype=None, out=None, keepdims=False):
    r = np.mean(_dev(a), axis=axis, dtype=dtype, out=_out(out), keepdims=keepdims)
    return _result(r, out, "mean")


def prod(a, axis=None, dtype=None, out=None, keepdims=False):
    r = np.prod(_dev(a), axis=axis, dtype=dtype, out=_out(out), keepdims=keepdims)
    return _result(r, out, "prod")


def amax(a, axis=None, out=None, keepdims=False):
    return _result(np.max(_dev(a), axis=axis, out=_out(out), keepdims=keepdims), out, "max")


def amin(a, axis=None, out=None, keepdims=False):
    return _result(np.min(_dev(a), axis=axis, out=_out(out), keepdims=keepdims), out, "min")


max = amax  # noqa: A001
min = amin  # noqa: A001


def any(a, axis=None, out=None, keepdims=False):  # noqa: A001
    return _result(np.any(_dev(a), axis=axis, out=_out(out), keepdims=keepdims), out, "any")


def all(a, axis=None, out=None, keepdims=False):  # noqa: A001
    return _result(np.all(_dev(a), axis=axis, out=_out(out), keepdims=keepdims), out, "all")


def argmax(a, axis=None, dtype=None, out=None, keepdims=False):
    return _on(a).argmax(axis, out, dtype, keepdims)


def argmin(a, axis=None, dtype=None, out=None, keepdims=False):
    return _on(a).argmin(axis, out, dtype, keepdims)


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    return _result(np.var(_dev(a), axis=axis, dtype=dtype, out=_out(out), ddof=ddof,
                          keepdims=keepdims), out, "var")


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    return _result(np.std(_dev(a), axis=axis, dtype=dtype, out=_out(out), ddof=ddof,
                          keepdims=keepdims), out, "std")


def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    return _result(np.median(_dev(a), axis=axis, out=_out(out), keepdims=keepdims), out,
                   "median")


def percentile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
               keepdims=False, *, interpolation=None):
    r = np.percentile(_dev(a), _arg(q) if not isinstance(q, (list, tuple)) else q, axis=axis,
                      out=_out(out), method=method, keepdims=keepdims)
    return _result(r, out, "percentile")


def count_nonzero(a, axis=None):
    return _result(np.count_nonzero(_dev(a), axis=axis), None, "count_nonzero")


def cumsum(a, axis=None, dtype=None, out=None):
    return _result(np.cumsum(_dev(a), axis=axis, dtype=dtype, out=_out(out)), out, "cumsum")


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    return _result(np.allclose(_arg(a), _arg(b), rtol, atol, equal_nan), None, "allclose")


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    return _result(np.isclose(_arg(a), _arg(b), rtol, atol, equal_nan), None, "isclose")


def array_equal(a1, a2, equal_nan=False):
    return _result(np.array_equal(_arg(a1), _arg(a2), equal_nan), None, "array_equal")


def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002 (CuPy's name)
    """cupy.linalg.norm."""
    r = np.linalg.norm(_dev(x, "x"), ord=ord, axis=axis, keepdims=keepdims)
    return _result(r, None, "norm")

# -- shapes (views: no operation) ----------------------------------------------------------------


def reshape(a, newshape, order="C", *, copy=None):
    if type(a) is not ndarray:
        _dev(a)
    return a.reshape(newshape, order=order, copy=copy)


def ravel(a, order="C"):
    return _on(a).ravel(order)


def transpose(a, axes=None):
    return _on(a).transpose(axes)


def squeeze(a, axis=None):
    return _on(a).squeeze(axis)


def expand_dims(a, axis):
    return _view(np.expand_dims(_dev(a), axis), a)


def broadcast_to(array, shape):
    return _view(np.broadcast_to(_dev(array, "array"), shape), array)


def moveaxis(a, source, destination):
    return _view(np.moveaxis(_dev(a), source, destination), a)


def _on(a) -> ndarray:
    _dev(a)
    return a


# -- joining, padding, repeating -----------------------------------------------------------------


def _arrays(tup, what: str) -> list:
    out = []
    for x in tup:
        if type(x) is not ndarray:
            raise TypeError(f"Only cupy arrays can be {what}")
        out.append(x._a)
    return out


def concatenate(tup, axis=0, out=None, *, dtype=None, casting="same_kind"):
    r = np.concatenate(_arrays(tup, "concatenated"), axis=axis, out=_out(out), dtype=dtype,
                       casting=casting)
    return _result(r, out, "concatenate")


def stack(tup, axis=0, out=None, *, dtype=None, casting="same_kind"):
    r = np.stack(_arrays(tup, "concatenated"), axis=axis, out=_out(out), dtype=dtype,
                 casting=casting)
    return _result(r, out, "stack")


def pad(array, pad_width, mode="constant"):
    if mode != "constant":
        raise NotImplementedError("the stand-in's pad() pads with zeros (mode='constant') only")
    return _result(np.pad(_dev(array, "array"), pad_width), None, "pad")


def tile(A, reps):  # noqa: N803 (CuPy's name)
    return _result(np.tile(_dev(A, "A"), reps), None, "tile")


def repeat(a, repeats, axis=None):
    return _on(a).repeat(repeats, axis)


def diff(a, n=1, axis=-1, prepend=None, append=None):
    kw = {k: _arg(v) for k, v in (("prepend", prepend), ("append", append)) if v is not None}
    return _result(np.diff(_dev(a), n, axis, **kw), None, "diff")


# -- selection, sorting, searching ---------------------------------------------------------------


def where(condition, x=None, y=None):
    if x is None and y is None:
        return nonzero(condition)
    if x is None or y is None:
        raise ValueError("Must provide both 'x' and 'y' or neither.")
    return _result(np.where(_arg(condition), _arg(x), _arg(y)), None, "where")


def nonzero(a):
    return _on(a).nonzero()


def flatnonzero(a):
    C.sync("flatnonzero")
    return _result(np.flatnonzero(_dev(a)), None, "flatnonzero")


def argsort(a, axis=-1, kind=None):
    return _on(a).argsort(axis, kind)


def sort(a, axis=-1, kind=None):
    _core._check_kind(kind)
    return _result(np.sort(_dev(a), axis=axis, kind="stable"), None, "sort")


def searchsorted(a, v, side="left", sorter=None):
    r = np.searchsorted(_dev(a), _arg(v), side, None if sorter is None else _dev(sorter))
    return _result(r, None, "searchsorted")


def take(a, indices, axis=None, out=None):
    return _on(a).take(indices, axis, out)


def unique(ar, return_index=False, return_inverse=False, return_counts=False, axis=None, *,
           equal_nan=True):
    C.sync("unique")
    C.op("unique")
    r = np.unique(_dev(ar, "ar"), return_index, return_inverse, return_counts, axis,
                  equal_nan=equal_nan)
    return tuple(_new(x) for x in r) if isinstance(r, tuple) else _new(r)


def copyto(dst, src, casting="same_kind", where=None):
    np.copyto(_dev(dst, "dst"), _arg(src), casting=casting,
              where=True if where is None else _arg(where))
    C.op("copyto")


def clip(a, a_min, a_max, out=None):
    return _on(a).clip(a_min, a_max, out)


def round(a, decimals=0, out=None):  # noqa: A001
    return _on(a).round(decimals, out)


around = round

# -- products -----------------------------------------------------------------------------------


def einsum(*operands):
    subscripts, arrays = operands[0], operands[1:]
    return _result(np.einsum(subscripts, *(_dev(x, "operands") for x in arrays)), None,
                   "einsum")


def dot(a, b, out=None):
    return _result(np.dot(_dev(a), _dev(b, "b"), out=_out(out)), out, "dot")


def matmul(*args, out=None):
    return _result(np.matmul(*(_dev(x, "x") for x in args), out=_out(out)), out, "matmul")


def outer(a, b, out=None):
    return _result(np.outer(_dev(a), _dev(b, "b"), out=_out(out)), out, "outer")


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    return _result(np.cross(_dev(a), _dev(b, "b"), axisa, axisb, axisc, axis), None, "cross")


# what namespace.py exports as cupy.<name> (cupy.linalg.norm is `norm`)
FUNCTIONS = (
    "empty", "zeros", "ones", "full", "empty_like", "zeros_like", "ones_like", "full_like",
    "arange", "linspace", "array", "asarray", "ascontiguousarray", "copy", "asnumpy",
    "get_array_module", "get_default_memory_pool",
    "sum", "mean", "prod", "amax", "amin", "max", "min", "any", "all", "argmax", "argmin",
    "var", "std", "median", "percentile", "count_nonzero", "cumsum", "allclose", "isclose",
    "array_equal",
    "reshape", "ravel", "transpose", "squeeze", "expand_dims", "broadcast_to", "moveaxis",
    "concatenate", "stack", "pad", "tile", "repeat", "diff",
    "where", "nonzero", "flatnonzero", "argsort", "sort", "searchsorted", "take", "unique",
    "copyto", "clip", "round", "around", "einsum", "dot", "matmul", "outer", "cross",
)
