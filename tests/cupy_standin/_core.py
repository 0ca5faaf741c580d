"""The stand-in's device array: a NumPy array behind CuPy's rules.

What CuPy does, and so this does (cupy/_core/core.pyx, _kernel.pyx, _scalar.pyx of 14.2):
- `np.asarray(a)`, `np.testing.*(a, ...)`, `np.float32(a)`: TypeError "Implicit conversion to
  a NumPy array is not allowed. Please use `.get()` to construct a NumPy array explicitly."
  (ndarray.__array__).
- NumPy functions and ufuncs called on a device array run CuPy's (`np.exp(a)` is
  `cupy.exp(a)`, `np.sum(a)` is `cupy.sum(a)`: __array_ufunc__, __array_function__), and
  return device arrays.
- A host array meeting a device array in an operator or ufunc: TypeError "Unsupported type
  <class 'numpy.ndarray'>" (a NumPy 0-d array too, except in comparisons); Python and NumPy
  scalars are fine.
- `float(a)`, `int(a)`, `bool(a)`, `a.item()`, `a.get()`, `a.tolist()`, `cupy.asnumpy(a)`,
  printing: a copy to the host that waits for the device (counted as a sync).
- Reductions return 0-d device arrays; `a[i]` of a 1-D array is a 0-d device array.
- `a[mask]` and `nonzero` wait for the device to learn the output size (counted as syncs).
- `a[...] = host_array` (basic indexing) is refused: "non-scalar numpy.ndarray cannot be used
  for fill".

Counted (see _counters.py): an allocation per new array that owns memory, a device
operation per call that launches work (views, reshapes and basic slicing launch none).
"""

from __future__ import annotations

import warnings

import numpy as np

from . import _counters as C

IMPLICIT_MESSAGE = ("Implicit conversion to a NumPy array is not allowed. "
                    "Please use `.get()` to construct a NumPy array explicitly.")

_PY_SCALARS = (bool, int, float, complex)


# -- the memory pool (CuPy's default pool: blocks rounded up to 512 bytes, freed blocks kept) --

class MemoryPool:
    """cupy.cuda.MemoryPool's counters: used_bytes (live arrays, each rounded up to 512
    bytes), total_bytes (used + freed blocks the pool keeps), free_bytes."""

    def __init__(self) -> None:
        self._used = 0
        self._held = 0  # used + cached; free_all_blocks() drops the cache

    def _alloc(self, nbytes: int) -> None:
        n = -(-nbytes // 512) * 512
        self._used += n
        if self._used > self._held:
            self._held = self._used

    def _free(self, nbytes: int) -> None:
        self._used -= -(-nbytes // 512) * 512

    def used_bytes(self) -> int:
        return self._used

    def total_bytes(self) -> int:
        return self._held

    def free_bytes(self) -> int:
        return self._held - self._used

    def free_all_blocks(self, stream=None) -> None:
        self._held = self._used


POOL = MemoryPool()


# -- wrapping ----------------------------------------------------------------------------------

def _new(a) -> "ndarray":
    """A new device array owning `a` (a NumPy array, or a NumPy scalar from a 0-d result)."""
    if type(a) is not np.ndarray:
        a = np.asarray(a)
    x = object.__new__(ndarray)
    x._a = a
    x._base = None
    C.allocation()
    POOL._alloc(a.nbytes)
    return x


def _view(a: np.ndarray, of: "ndarray") -> "ndarray":
    """A device array viewing the memory of `of` (no allocation, no operation)."""
    x = object.__new__(ndarray)
    x._a = a
    x._base = of if of._base is None else of._base
    return x


def _check_kind(kind) -> None:
    """CuPy sorts stably and takes no other kind (ndarray._check_kind_sort)."""
    if kind is not None and kind != "stable":
        raise ValueError("kind can only be None or 'stable'")


def _unsupported(x):
    return TypeError(f"Unsupported type {type(x)}")


def _arg(x):
    """An operand of an elementwise operation: a device array's data, or a Python or NumPy
    scalar; a host array (even 0-d) is refused as CuPy refuses it."""
    if type(x) is ndarray:
        return x._a
    if type(x) in _PY_SCALARS or isinstance(x, np.generic):
        return x
    raise _unsupported(x)


def _dev(x, what: str = "a") -> np.ndarray:
    """The data of an argument that must be a device array."""
    if type(x) is ndarray:
        return x._a
    raise TypeError(f"Argument '{what}' has incorrect type (expected cupy.ndarray, got "
                    f"{type(x).__module__}.{type(x).__name__})")


def _out(out):
    if out is None:
        return None
    if type(out) is not ndarray:
        raise TypeError("Output arguments must be cupy.ndarray")
    return out._a


def _result(r, out, name: str):
    """Count one operation; return `out` if given, else a new array owning `r`."""
    C.op(name)
    return out if out is not None else _new(r)


def _is_basic(key) -> bool:
    items = key if type(key) is tuple else (key,)
    for k in items:
        t = type(k)
        if t is slice or k is None or k is Ellipsis:
            continue
        if t is bool or t is np.bool_:
            return False
        if t is int or isinstance(k, np.integer):
            continue
        return False
    return True


def _index(key):
    """A key for NumPy: device arrays in it unwrapped (host arrays and lists are fine:
    CuPy copies them to the device); also whether a boolean mask is in it."""
    items = key if type(key) is tuple else (key,)
    out, mask = [], False
    for k in items:
        if type(k) is ndarray:
            mask |= k._a.dtype == np.bool_
            k = k._a
        elif isinstance(k, (list, np.ndarray)):
            k = np.asarray(k)
            mask |= k.dtype == np.bool_
            C.transfer()
        out.append(k)
    return (tuple(out) if type(key) is tuple else out[0]), mask


class Flags:
    """ndarray.flags: c_contiguous, f_contiguous, owndata."""

    __slots__ = ("c_contiguous", "f_contiguous", "owndata")

    def __init__(self, a: np.ndarray, owner: bool) -> None:
        self.c_contiguous = bool(a.flags.c_contiguous)
        self.f_contiguous = bool(a.flags.f_contiguous)
        self.owndata = owner

    def __getitem__(self, name: str) -> bool:
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[name]

    def __repr__(self) -> str:
        return (f"  C_CONTIGUOUS : {self.c_contiguous}\n  F_CONTIGUOUS : {self.f_contiguous}\n"
                f"  OWNDATA : {self.owndata}")


class MemoryPointer:
    """ndarray.data: the address of the first element (`.ptr`), as CuPy's MemoryPointer."""

    __slots__ = ("ptr", "device_id")

    def __init__(self, ptr: int) -> None:
        self.ptr = ptr
        self.device_id = 0


class ndarray:  # noqa: N801 (CuPy's name)
    """A device array of the stand-in: NumPy memory behind CuPy's rules (module doc)."""

    __slots__ = ("_a", "_base", "__weakref__")
    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the stand-in's ndarray() takes no memptr or strides")
        self._a = np.empty(shape, dtype=dtype, order=order)
        self._base = None
        C.allocation()
        POOL._alloc(self._a.nbytes)

    def __del__(self):
        if getattr(self, "_base", 0) is None:
            POOL._free(self._a.nbytes)

    # -- attributes --------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    base = property(lambda self: self._base)
    flags = property(lambda self: Flags(self._a, self._base is None))
    data = property(lambda self: MemoryPointer(self._a.ctypes.data))
    T = property(lambda self: _view(self._a.T, self))

    @property
    def device(self):
        from ._cuda import Device
        return Device(0)

    # -- what CuPy refuses -------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT_MESSAGE)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from . import _functions as F
        if method != "__call__":
            return NotImplemented
        mine = F.UFUNCS.get(ufunc.__name__)
        if mine is None:
            return NotImplemented
        if "out" in kwargs:
            out = kwargs["out"]
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            kwargs["out"] = out[0]
        for x in (*inputs, kwargs.get("out")):
            if x is not None and not (type(x) in _PY_SCALARS or isinstance(
                    x, (np.generic, np.ndarray, ndarray))):
                return NotImplemented
        if ufunc.__name__ in _COMPARISONS:
            inputs = tuple(x.item() if isinstance(x, np.ndarray) and x.ndim == 0 else x
                           for x in inputs)
        return mine(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from . import namespace
        target = namespace.module()
        try:
            for part in func.__module__.split(".")[1:]:
                target = getattr(target, part)
            mine = getattr(target, func.__name__)
        except AttributeError:
            return NotImplemented
        if mine is func:
            return NotImplemented
        if not all(issubclass(t, (ndarray, np.ndarray)) for t in types):
            return NotImplemented
        return mine(*args, **kwargs)

    # -- device -> host: each one a sync -------------------------------------------------
    def get(self, stream=None, order="C", out=None, blocking=True):
        C.sync("get")
        if out is not None:
            if not isinstance(out, np.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            out[...] = self._a
            return out
        return np.array(self._a, order=order)

    def item(self):
        if self._a.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        C.sync("item")
        return self._a.item()

    def tolist(self):
        C.sync("tolist")
        return self._a.tolist()

    def tobytes(self, order="C"):
        C.sync("tobytes")
        return self._a.tobytes(order)

    def __float__(self):
        C.sync("float")
        return float(self._a)

    def __int__(self):
        C.sync("int")
        return int(self._a)

    def __complex__(self):
        C.sync("complex")
        return complex(self._a)

    def __bool__(self):
        size = self._a.size
        if size == 0:
            warnings.warn("The truth value of an empty array is ambiguous. Returning False, but "
                          "in future this will result in an error. Use `array.size > 0` to "
                          "check that an array is not empty.", DeprecationWarning, stacklevel=2)
            return False
        if size == 1:
            C.sync("bool")
            return bool(self._a)
        raise ValueError("The truth value of an array with more than one element is "
                         "ambiguous. Use a.any() or a.all()")

    def __repr__(self):
        C.sync("repr")
        return repr(self._a)

    def __str__(self):
        C.sync("str")
        return str(self._a)

    def __format__(self, format_spec):
        C.sync("format")
        return format(self._a, format_spec)

    def __reduce__(self):
        C.sync("pickle")
        from . import _functions as F
        return F.array, (np.array(self._a),)

    # -- containers --------------------------------------------------------------------
    def __len__(self):
        if self._a.ndim == 0:
            raise TypeError("len() of unsized object")
        return self._a.shape[0]

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self._a.shape[0]))

    def __getitem__(self, key):
        a = self._a
        if _is_basic(key):
            # a view; `...` keeps a fully indexed element a 0-d array, as CuPy's
            if type(key) is tuple:
                return _view(a[key] if Ellipsis in key else a[(*key, Ellipsis)], self)
            return _view(a[key, ...] if key is not Ellipsis else a[...], self)
        k, mask = _index(key)
        if mask:
            C.sync("boolean-mask index")
        C.op("getitem")
        return _new(a[k])  # advanced indexing copies

    def __setitem__(self, key, value):
        basic = _is_basic(key)
        if type(value) is ndarray:
            v = value._a
        elif isinstance(value, np.ndarray):
            if basic and value.ndim != 0:
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            v = value
            C.transfer()
        else:
            v = value
        if basic:
            self._a[key] = v
        else:
            k, mask = _index(key)
            if mask:
                C.sync("boolean-mask index")
            self._a[k] = v
        C.op("setitem")

    # -- methods -------------------------------------------------------------------------
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        dtype = np.dtype(dtype)
        if not copy and dtype == self._a.dtype:
            return self
        kw = {} if casting is None else {"casting": casting}
        return _result(self._a.astype(dtype, order=order, **kw), None, "astype")

    def copy(self, order="C"):
        return _result(self._a.copy(order=order), None, "copy")

    def fill(self, value):
        if type(value) is ndarray:
            if value.ndim != 0:
                raise ValueError("non-scalar cupy.ndarray cannot be used for fill")
            value = value._a
        elif isinstance(value, np.ndarray) and value.ndim != 0:
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        self._a.fill(value)
        C.op("fill")

    def view(self, dtype=None, type=None):
        if type is not None:
            raise NotImplementedError("the stand-in's view() takes no type")
        return _view(self._a.view() if dtype is None else self._a.view(dtype), self)

    def reshape(self, *shape, order="C", copy=None):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        r = self._a.reshape(shape, order=order)
        if np.may_share_memory(r, self._a) and copy is not True:
            return _view(r, self)
        if copy is False:
            raise ValueError("Unable to avoid copy while reshaping.")
        return _result(r.copy(), None, "reshape (copy)")

    def ravel(self, order="C"):
        return self.reshape(-1, order=order)

    def flatten(self, order="C"):
        return _result(self._a.flatten(order), None, "flatten")

    def transpose(self, *axes):
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = axes[0]
        return _view(self._a.transpose(axes or None), self)

    def swapaxes(self, axis1, axis2):
        return _view(self._a.swapaxes(axis1, axis2), self)

    def squeeze(self, axis=None):
        return _view(self._a.squeeze(axis), self)

    def nonzero(self):
        C.sync("nonzero")
        C.op("nonzero")
        return tuple(_new(i) for i in self._a.nonzero())

    def argsort(self, axis=-1, kind=None):
        _check_kind(kind)
        return _result(np.argsort(self._a, axis=axis, kind="stable"), None, "argsort")

    def sort(self, axis=-1, kind=None):
        _check_kind(kind)
        self._a.sort(axis=axis, kind="stable")
        C.op("sort")

    def dot(self, b, out=None):
        return _result(np.dot(self._a, _dev(b, "b"), out=_out(out)), out, "dot")

    def clip(self, min=None, max=None, out=None):  # noqa: A002 (CuPy's names)
        return _result(np.clip(self._a, None if min is None else _arg(min),
                               None if max is None else _arg(max), out=_out(out)), out, "clip")

    def round(self, decimals=0, out=None):
        return _result(np.round(self._a, decimals=decimals, out=_out(out)), out, "round")

    def repeat(self, repeats, axis=None):
        return _result(np.repeat(self._a, repeats, axis=axis), None, "repeat")

    def take(self, indices, axis=None, out=None):
        return _result(np.take(self._a, _arg(indices), axis=axis, out=_out(out)), out, "take")

    def cumsum(self, axis=None, dtype=None, out=None):
        return _result(np.cumsum(self._a, axis=axis, dtype=dtype, out=_out(out)), out, "cumsum")

    def sum(self, axis=None, dtype=None, out=None, keepdims=False):
        r = self._a.sum(axis=axis, dtype=dtype, out=_out(out), keepdims=keepdims)
        return _result(r, out, "sum")

    def mean(self, axis=None, dtype=None, out=None, keepdims=False):
        r = self._a.mean(axis=axis, dtype=dtype, out=_out(out), keepdims=keepdims)
        return _result(r, out, "mean")

    def prod(self, axis=None, dtype=None, out=None, keepdims=None):
        r = self._a.prod(axis=axis, dtype=dtype, out=_out(out), keepdims=bool(keepdims))
        return _result(r, out, "prod")

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        r = self._a.var(axis=axis, dtype=dtype, out=_out(out), ddof=ddof, keepdims=keepdims)
        return _result(r, out, "var")

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        r = self._a.std(axis=axis, dtype=dtype, out=_out(out), ddof=ddof, keepdims=keepdims)
        return _result(r, out, "std")

    def max(self, axis=None, out=None, keepdims=False):
        return _result(self._a.max(axis=axis, out=_out(out), keepdims=keepdims), out, "max")

    def min(self, axis=None, out=None, keepdims=False):
        return _result(self._a.min(axis=axis, out=_out(out), keepdims=keepdims), out, "min")

    def any(self, axis=None, out=None, keepdims=False):
        return _result(self._a.any(axis=axis, out=_out(out), keepdims=keepdims), out, "any")

    def all(self, axis=None, out=None, keepdims=False):
        return _result(self._a.all(axis=axis, out=_out(out), keepdims=keepdims), out, "all")

    def argmax(self, axis=None, out=None, dtype=None, keepdims=False):
        r = self._a.argmax(axis, keepdims=keepdims)
        return _result(r if dtype is None else r.astype(dtype), out, "argmax")

    def argmin(self, axis=None, out=None, dtype=None, keepdims=False):
        r = self._a.argmin(axis, keepdims=keepdims)
        return _result(r if dtype is None else r.astype(dtype), out, "argmin")

    # -- operators: CuPy's ufuncs ----------------------------------------------------------
    def __eq__(self, other):
        from . import _functions as F
        if type(other).__eq__ is object.__eq__ or other is None:
            return F.zeros(self.shape, dtype=np.bool_)
        return _compare(F.equal, self, other)

    def __ne__(self, other):
        from . import _functions as F
        if type(other).__eq__ is object.__eq__ or other is None:
            return F.ones(self.shape, dtype=np.bool_)
        return _compare(F.not_equal, self, other)

    def __lt__(self, other):
        from . import _functions as F
        return _compare(F.less, self, other)

    def __le__(self, other):
        from . import _functions as F
        return _compare(F.less_equal, self, other)

    def __gt__(self, other):
        from . import _functions as F
        return _compare(F.greater, self, other)

    def __ge__(self, other):
        from . import _functions as F
        return _compare(F.greater_equal, self, other)

    def __neg__(self):
        return _unary("negative", self)

    def __pos__(self):
        return _unary("positive", self)

    def __abs__(self):
        return _unary("absolute", self)

    def __invert__(self):
        return _unary("invert", self)

    def __pow__(self, other, modulo=None):
        return _binary("power", self, other)

    def __rpow__(self, other):
        return _binary("power", other, self)

    def __ipow__(self, other):
        return _inplace("power", self, other)

    def __matmul__(self, other):
        from . import _functions as F
        return F.matmul(self, other) if not _foreign(other) else NotImplemented

    def __rmatmul__(self, other):
        from . import _functions as F
        return F.matmul(other, self) if not _foreign(other) else NotImplemented


_COMPARISONS = ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal")


def _foreign(x) -> bool:
    """Not something CuPy's operators take (they return NotImplemented for it)."""
    return not (type(x) in _PY_SCALARS or isinstance(x, (ndarray, np.ndarray, np.generic)))


def _compare(fn, a, b):
    if _foreign(b):
        return NotImplemented
    if isinstance(b, np.ndarray) and b.ndim == 0:
        b = b.item()
    return fn(a, b)


def _unary(name: str, a):
    from . import _functions as F
    return F.BY_NAME[name](a)


def _binary(name: str, a, b):
    if _foreign(b if type(a) is ndarray else a):
        return NotImplemented
    from . import _functions as F
    return F.BY_NAME[name](a, b)


def _inplace(name: str, a, b):
    if _foreign(b):
        return NotImplemented
    from . import _functions as F
    return F.BY_NAME[name](a, b, out=a)


def _operator(name: str, numpy_name: str):
    setattr(ndarray, f"__{name}__", lambda self, other: _binary(numpy_name, self, other))
    setattr(ndarray, f"__r{name}__", lambda self, other: _binary(numpy_name, other, self))
    setattr(ndarray, f"__i{name}__", lambda self, other: _inplace(numpy_name, self, other))


for _name, _np_name in (("add", "add"), ("sub", "subtract"), ("mul", "multiply"),
                        ("truediv", "true_divide"), ("floordiv", "floor_divide"),
                        ("mod", "remainder"), ("and", "bitwise_and"), ("or", "bitwise_or"),
                        ("xor", "bitwise_xor"), ("lshift", "left_shift"),
                        ("rshift", "right_shift")):
    _operator(_name, _np_name)

ndarray.__module__ = "cupy"
