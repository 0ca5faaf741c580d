"""A strict CuPy stand-in for splat-lion's tests: the CUDA path without a GPU.

    import cupy_standin                      # tests/ is on sys.path under pytest
    cupy_standin.install()                   # `import cupy` now gives the stand-in
    be = splat_lion.get_backend("cuda")      # a CudaBackend on it
    with cupy_standin.counting() as c:
        ...                                  # then c.syncs, c.sync_sites, c.ops,
                                             # c.allocations, c.launches

It behaves like CuPy 14.2 where the project could get CuPy wrong, and counts what a GPU run
would pay for:
- device arrays (`_core.ndarray`) wrap NumPy arrays and refuse implicit conversion to NumPy
  (`np.asarray`, `np.testing`, mixing with host arrays in operators), with CuPy's messages;
  reductions return 0-d device arrays;
- every device -> host read (float, int, bool, .item, .get, .tolist, cupy.asnumpy, printing,
  and the waits hidden in boolean-mask indexing and nonzero) is a sync, recorded with its
  call site; device operations (views excluded), allocations and RawKernel launches are
  counted;
- RawModule / RawKernel compile the same .cu text with splat_lion.cuda_cpu and launch it
  with CuPy's argument rules (stricter where CuPy would pass the wrong bytes);
- cupy.cuda.runtime, Device, Event, nvrtc.getVersion, get_default_memory_pool: what the
  project calls, with numbers that name the stand-in.
Every function, method and keyword is checked against the real CuPy's signatures in
cupy_api.json (make_api_table.py makes it; tests/test_standin.py checks).

Under pytest: SPLAT_LION_TEST_STANDIN=1 installs it before splat_lion makes a backend
(tests/conftest.py); `cuda` is then available and, with SPLAT_LION_BACKEND unset, the
automatic choice, as on a machine with a GPU. The CLI or a script under it:
python tests/cupy_standin/run.py splat-lion info (or fit, render, profile), python
tests/cupy_standin/run.py benchmarks/gpu_check.py --quick. Code that must tell the stand-in
from CuPy reads `cupy.IS_STANDIN` (absent from the real one).

It lives under tests/ and is not part of the installed package.
"""

from __future__ import annotations

import sys

from ._core import IMPLICIT_MESSAGE, POOL, ndarray
from ._counters import TOTALS, Counting, counting
from .namespace import VERSION, module, modules

__all__ = ["install", "uninstall", "installed", "counting", "Counting", "module", "ndarray",
           "IMPLICIT_MESSAGE", "POOL", "TOTALS", "VERSION", "ENV_VAR"]

# tests/conftest.py installs the stand-in when this is set (to anything but "" or "0")
ENV_VAR = "SPLAT_LION_TEST_STANDIN"


def install():
    """Make `import cupy` (and cupy.cuda, cupy.cuda.runtime, cupy.cuda.nvrtc, cupy.linalg)
    give the stand-in in this process; returns the stand-in's `cupy`. Install before
    splat_lion creates its cuda backend (it imports cupy then)."""
    for name, m in modules().items():
        sys.modules[name] = m
    return module()


def uninstall() -> None:
    """Undo install() (a real CuPy imported before is not restored)."""
    for name, m in modules().items():
        if sys.modules.get(name) is m:
            del sys.modules[name]


def installed() -> bool:
    return sys.modules.get("cupy") is module()
