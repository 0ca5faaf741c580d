"""The backend: CuPy on a CUDA GPU, or NumPy plus the CUDA-on-CPU runtime everywhere else.

Code above this module is written once against `backend.xp` and `backend.launch`:

    be = get_backend()                       # auto, or SPLAT_LION_BACKEND=cuda|cpu
    out = be.empty((n, 3), np.float32, tag="projection")
    be.launch(kernel, grid, block, (x, out, np.int64(n)))

Choice: `cuda` when CuPy imports and sees a device, else `cpu`. Forcing `cuda` where it cannot
work is an error that says how to fix it. Every allocation names what it is for (a tag from
TAGS, DESIGN §7) and is counted under it while it lives: `be.memory` (a Ledger,
splat_lion/ledger.py) holds the bytes per tag now and at peak; `be.track(a, tag=...)` counts an array made with
`xp` directly.
"""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np

from . import cuda_cpu
from .cuda_cpu.builder import compiler, sanitize_mode
from .ledger import Ledger, check_tag

BACKENDS = ("cuda", "cpu")
ENV_VAR = "SPLAT_LION_BACKEND"

INSTALL_HINT = (
    "install the GPU extra matching your CUDA driver: pip install 'splat-lion[cuda12]' "
    "(CUDA 12) or pip install 'splat-lion[cuda13]' (CUDA 13)"
)


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run on this machine: `reason`, then how to fix it."""

    def __init__(self, reason: str, fix: str):
        super().__init__(f"{reason}: {fix}")
        self.reason = reason


class Backend:
    """Array module, allocation, kernel launch and a few array primitives for one device kind."""

    name: str
    xp: Any

    def __init__(self) -> None:
        self.launch_count = 0  # kernel launches so far (tests count launches per step)
        self._tables: dict[tuple, Any] = {}
        self.memory = Ledger()  # bytes per tag of the arrays alive now, and at peak

    # -- allocation --------------------------------------------------------------------
    def empty(self, shape, dtype=np.float32, *, tag: str):
        check_tag(tag)
        return self.memory.add(self.xp.empty(shape, dtype=dtype), tag)

    def zeros(self, shape, dtype=np.float32, *, tag: str):
        check_tag(tag)
        return self.memory.add(self.xp.zeros(shape, dtype=dtype), tag)

    def asarray(self, a, dtype=None, *, tag: str):
        """`a` as a C-contiguous array on this backend (copied only when needed). Counted
        under `tag` unless counted already or a view of another array's memory."""
        check_tag(tag)
        return self.memory.adopt(self.xp.ascontiguousarray(self.xp.asarray(a, dtype=dtype)), tag)

    def track(self, a, *, tag: str):
        """`a`, an array made with `xp` directly (e.g. `keys[order]`), counted under `tag`
        while it lives, unless counted already or a view of another array's memory."""
        check_tag(tag)
        return self.memory.adopt(a, tag)

    def table(self, host: np.ndarray):
        """A small read-only table (kernel parameters: segments, learning rates) on this
        backend; the device copy of each distinct content is made once and reused (counted
        under "scratch" while cached)."""
        host = np.ascontiguousarray(host)
        key = (host.dtype.str, host.shape, host.tobytes())
        if key not in self._tables:
            if len(self._tables) >= 256:
                self._tables.pop(next(iter(self._tables)))
            # a copy: later edits of host cannot leak in
            self._tables[key] = self.memory.add(self.xp.array(host), "scratch")
        return self._tables[key]

    # -- kernels -----------------------------------------------------------------------
    def raw_module(self, code: str, options: tuple[str, ...]):
        raise NotImplementedError

    def launch(self, kernel, grid, block, args, shared_bytes: int = 0, *,
               ordered: bool = False) -> None:
        """Launch `kernel` (from splat_lion.kernels) over `grid` blocks of `block` threads.
        `ordered=True` marks a kernel whose blocks add floats atomically into shared outputs:
        the CPU backend then runs its blocks in index order, so its results are the same bit
        for bit on every run (GPU atomics are unordered: there it changes nothing)."""
        self.launch_count += 1
        kernel(tuple(grid), tuple(block), tuple(args), shared_mem=int(shared_bytes))

    # -- array primitives --------------------------------------------------------------
    def argsort(self, keys, *, tag: str = "scratch"):
        """Stable ascending argsort of a 1-D array (radix sort on the GPU); the result is
        counted under `tag`."""
        check_tag(tag)
        return self.memory.add(self._argsort(keys), tag)

    def _argsort(self, keys):
        return self.xp.argsort(keys, kind="stable")

    def cumsum(self, a, dtype=None, *, tag: str = "scratch"):
        """Inclusive prefix sum of a 1-D array, counted under `tag`."""
        check_tag(tag)
        return self.memory.add(self.xp.cumsum(a, dtype=dtype), tag)

    def to_numpy(self, a) -> np.ndarray:
        return np.asarray(a)

    def synchronize(self) -> None:
        pass

    def describe(self) -> dict[str, str]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<splat_lion backend {self.name}>"


class CpuBackend(Backend):
    name = "cpu"
    xp = np

    def raw_module(self, code, options):
        return cuda_cpu.RawModule(code, options)

    def launch(self, kernel, grid, block, args, shared_bytes: int = 0, *,
               ordered: bool = False) -> None:
        self.launch_count += 1
        kernel(tuple(grid), tuple(block), tuple(args), shared_mem=int(shared_bytes),
               ordered=ordered)

    def describe(self) -> dict[str, str]:
        cpu = platform.processor() or platform.machine()
        try:
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        threads = os.environ.get("SPLAT_LION_CPU_THREADS") or str(os.cpu_count())
        info = {
            "device": f"CPU: {cpu}, {os.cpu_count()} cores ({threads} threads for kernels)",
            "compiler": compiler()[1],
        }
        if sanitize_mode():
            info["sanitizer"] = "AddressSanitizer (SPLAT_LION_CPU_SANITIZE=address)"
        return info


class CudaBackend(Backend):
    name = "cuda"

    def __init__(self) -> None:
        super().__init__()
        try:
            import cupy
        except ImportError as e:
            raise BackendUnavailable(f"CuPy is not installed ({e})", INSTALL_HINT) from None
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # CUDARuntimeError without a driver or device
            raise BackendUnavailable(f"CuPy cannot reach a CUDA device ({e})",
                                     f"check the NVIDIA driver (nvidia-smi), or use {ENV_VAR}=cpu"
                                     ) from None
        if count == 0:
            raise BackendUnavailable("CuPy sees no CUDA device", f"use {ENV_VAR}=cpu")
        self.xp = cupy

    def raw_module(self, code, options):
        return self.xp.RawModule(code=code, options=options)

    def _argsort(self, keys):
        return self.xp.argsort(keys)  # CuPy's argsort is a stable radix sort

    def to_numpy(self, a) -> np.ndarray:
        return self.xp.asnumpy(a)

    def synchronize(self) -> None:
        self.xp.cuda.runtime.deviceSynchronize()

    def describe(self) -> dict[str, str]:
        cp = self.xp
        dev = cp.cuda.Device()
        props = cp.cuda.runtime.getDeviceProperties(dev.id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        free, total = cp.cuda.runtime.memGetInfo()
        nvrtc = ".".join(map(str, cp.cuda.nvrtc.getVersion()))
        return {
            "device": f"GPU {dev.id}: {name}, compute capability {props['major']}.{props['minor']}, "
                      f"{total / 2**30:.1f} GiB ({free / 2**30:.1f} GiB free)",
            "compiler": f"NVRTC {nvrtc} (CUDA runtime {cp.cuda.runtime.runtimeGetVersion()}, "
                        f"driver {cp.cuda.runtime.driverGetVersion()})",
        }


_cache: dict[str, Backend] = {}
_why_auto = ""


def _make(name: str) -> Backend:
    if name not in _cache:
        _cache[name] = CudaBackend() if name == "cuda" else CpuBackend()
    return _cache[name]


def get_backend(name: str | None = None) -> Backend:
    """The backend named `name`, else $SPLAT_LION_BACKEND, else cuda if usable, else cpu."""
    global _why_auto
    if name is None:
        name = os.environ.get(ENV_VAR, "").strip().lower() or "auto"
    if name == "auto":
        try:
            return _make("cuda")
        except BackendUnavailable as e:
            _why_auto = e.reason
            return _make("cpu")
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r} ({ENV_VAR}?): choose cuda, cpu or auto")
    return _make(name)


def backend_of(a) -> Backend:
    """The backend an array lives on: cuda for a CuPy array, else cpu."""
    return get_backend("cuda" if type(a).__module__.startswith("cupy") else "cpu")


def why_chosen(be: Backend) -> str:
    """One line on how `be` came to be the backend."""
    forced = os.environ.get(ENV_VAR, "").strip().lower()
    if forced and forced != "auto":
        return f"forced by {ENV_VAR}={forced}"
    if be.name == "cuda":
        return "auto: CuPy sees a CUDA device"
    return f"auto: {_why_auto}" if _why_auto else "auto"
