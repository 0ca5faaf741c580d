"""The backend: CuPy on a CUDA GPU, or NumPy plus the CUDA-on-CPU runtime everywhere else.

Code above this module is written once against `backend.xp` and `backend.launch`:

    be = get_backend()                       # auto, or SPLAT_LION_BACKEND=cuda|cpu
    out = be.empty((n, 3), np.float32, tag="projection")
    be.launch(kernel, grid, block, (x, out, np.int64(n)))

Choice: `cuda` when the cuda probe passes, else `cpu`. The probe runs once per process
(`cuda_probe()`): CuPy imports, sees a device, and compiles and runs a self-test kernel and one
of CuPy's own kernels, with results checked against NumPy (CuPy installed without the CUDA
headers and NVRTC it compiles with fails there, not at the first fit step). When CuPy is
installed but the probe fails, the automatic choice takes `cpu` with one
BackendFallbackWarning naming the reason and the fix; SPLAT_LION_BACKEND=cuda (or
`get_backend("cuda")`) raises BackendUnavailable with the same message. The probe's kernel
half is `selftest.probe`, which needs the kernel loader above this module: the package wires
it in (`cuda_kernel_check`, set in splat_lion/__init__.py). Tests replace `probe_cuda`.

Every allocation names what it is for (a tag from
TAGS, DESIGN §7) and is counted under it while it lives: `be.memory` (a Ledger,
splat_lion/ledger.py) holds the bytes per tag now and at peak; `be.track(a, tag=...)` counts an array made with
`xp` directly.

Per-step scratch (binning's sort buffers, the backward pass's intermediates) comes from
`be.workspace(key, shape, dtype, tag=...)`: a view of a buffer kept for `key` between calls and
grown to the largest size asked, so a fit step allocates nothing once its sizes have been seen
(Workspaces below). The buffers are counted under their tag while they are kept.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import cuda_cpu
from .cuda_cpu.builder import compiler, sanitize_mode
from .errors import BackendError, ConfigError
from .ledger import Ledger, check_tag

BACKENDS = ("cuda", "cpu")
ENV_VAR = "SPLAT_LION_BACKEND"

INSTALL_HINT = (
    "install the GPU extra matching your NVIDIA driver (nvidia-smi shows its CUDA version): "
    "pip install 'splat-lion[cuda12]' (CUDA 12) or pip install 'splat-lion[cuda13]' (CUDA 13); "
    f"or use {ENV_VAR}=cpu"
)
# CuPy is there but cannot compile: on a machine with only the driver, CuPy 14 finds neither
# the CUDA headers nor NVRTC unless its [ctk] extra brought them (the GPU extras do).
COMPILE_FIX = (
    "reinstall with the GPU extra, which brings the CUDA headers and NVRTC CuPy compiles with "
    "(cupy-cuda12x[ctk]): pip install 'splat-lion[cuda12]' (or [cuda13] for a CUDA 13 driver); "
    f"or set CUDA_PATH to a CUDA toolkit; or use {ENV_VAR}=cpu"
)
# A kernel compiled but did not run: typically a driver older than the CUDA the extra installed.
RUN_FIX = (
    "update the NVIDIA driver, or install the extra of the CUDA version nvidia-smi shows "
    f"(pip install 'splat-lion[cuda12]' for CUDA 12); or use {ENV_VAR}=cpu"
)
WRONG_RESULTS_FIX = (
    f"please report it with the output of `splat-lion info`; use {ENV_VAR}=cpu meanwhile"
)


class BackendUnavailable(BackendError):
    """The requested backend cannot run on this machine: `reason`, then how to fix it."""

    def __init__(self, reason: str, fix: str):
        super().__init__(f"{reason}: {fix}")
        self.reason = reason
        self.fix = fix


class BackendFallbackWarning(UserWarning):
    """CuPy is installed, yet the automatic choice runs on the CPU: the cuda probe failed."""


class Workspaces:
    """Buffers kept between calls for per-step scratch, one list of buffers per key.

    `get(key, shape, dtype, tag=...)` returns a [shape] view of a kept buffer of the key that
    nothing else holds any more (no view of it is alive outside this object: the previous
    step's outputs were dropped), growing it when it is too small; when every kept buffer of
    the key is still held (two renders alive at once), another one is made, and kept if the
    key has fewer than SLOTS. So a view handed out is never handed out again while it is alive,
    and a fit step, which drops its outputs before the next, allocates nothing after warm-up.
    Growth is to max(size asked, 5/4 x the old size): sizes that creep up from step to step
    (intersections per view) settle after a few growths. With `zeros=True` new buffers start
    zeroed (a key's users may keep them zero between uses, as the sort's counters do); their
    contents are otherwise whatever the last user left.

    "Held" is read from reference counts: a view keeps its buffer alive (NumPy, CuPy and the
    CuPy stand-in all point a view's `base` at the buffer that owns the memory), so a buffer
    whose only reference is this object's list is free.
    """

    SLOTS = 2  # buffers kept per key; beyond that, one is made per call and not kept

    def __init__(self, backend: "Backend") -> None:
        self._backend = backend
        self._slots: dict[str, list] = {}
        self._kinds: dict[str, tuple] = {}  # key -> (dtype, tag, zeros)

    def get(self, key: str, shape, dtype, *, tag: str, zeros: bool = False):
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
        dtype = np.dtype(dtype)
        kind = (dtype, tag, bool(zeros))
        if self._kinds.setdefault(key, kind) != kind:
            raise ValueError(f"workspace {key!r}: asked as {kind}, made as {self._kinds[key]}")
        size = math.prod(shape)
        slots = self._slots.setdefault(key, [])
        for i in range(len(slots)):
            if not self._held(slots, i):
                if slots[i].size < size:
                    old = slots.pop(i).size  # the old buffer goes before the new one is made
                    slots.insert(i, self._make(max(size, old * 5 // 4), kind))
                return slots[i][:size].reshape(shape)
        buf = self._make(size, kind)
        if len(slots) < self.SLOTS:
            slots.append(buf)
        return buf[:size].reshape(shape)

    def drop(self, prefix: str = "", *, keep: str | None = None) -> None:
        """Let go of the kept buffers whose key starts with `prefix` (all by default), but
        those of key `keep`: a free one is freed, a held one lives on with its holder and is
        forgotten here."""
        for key in [k for k in self._slots if k.startswith(prefix) and k != keep]:
            del self._slots[key]

    def buffers(self) -> list:
        """Every kept buffer (tests, memory accounting)."""
        return [b for slots in self._slots.values() for b in slots]

    def _make(self, size: int, kind):
        dtype, tag, zeros = kind
        make = self._backend.zeros if zeros else self._backend.empty
        return make((size,), dtype, tag=tag)

    @staticmethod
    def _held(slots: list, i: int) -> bool:
        # references: the list's, and getrefcount's argument; any more are views alive
        return sys.getrefcount(slots[i]) > 2


class Backend:
    """Array module, allocation, kernel launch and a few array primitives for one device kind."""

    name: str
    xp: Any

    def __init__(self) -> None:
        self.launch_count = 0  # kernel launches so far (tests count launches per step)
        self._tables: dict[tuple, Any] = {}
        self.memory = Ledger()  # bytes per tag of the arrays alive now, and at peak
        self.workspaces = Workspaces(self)  # per-step scratch kept between calls

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

    def workspace(self, key: str, shape, dtype=np.float32, *, tag: str, zeros: bool = False):
        """A [shape] view of a buffer kept for `key` between calls, grown to the largest size
        asked and counted under `tag` while kept; never one a live view still uses
        (Workspaces). zeros=True: made zeroed (the caller keeps it zero between uses)."""
        check_tag(tag)
        return self.workspaces.get(key, shape, dtype, tag=tag, zeros=zeros)

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

    def cumsum(self, a, dtype=None, *, tag: str = "scratch", out=None):
        """Inclusive prefix sum of a 1-D array, counted under `tag`; into `out` (a 1-D array
        of a's size, counted already) when given."""
        check_tag(tag)
        if out is not None:
            return self.xp.cumsum(a, dtype=dtype, out=out)
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
    """CuPy on the current CUDA device. Made by the cuda probe (probe_cuda), which checks that
    kernels compile and run before the backend is handed out."""

    name = "cuda"

    def __init__(self) -> None:
        super().__init__()
        cupy = import_cupy()
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


def import_cupy():
    """The cupy module, or BackendUnavailable saying how to install it."""
    try:
        import cupy
    except ImportError as e:
        raise BackendUnavailable(f"CuPy is not installed ({e})", INSTALL_HINT) from None
    except Exception as e:  # a broken install: e.g. a CUDA library it loads at import is missing
        raise BackendUnavailable(f"CuPy does not import ({type(e).__name__}: {_first_line(e)})",
                                 INSTALL_HINT) from None
    return cupy


def _first_line(e: BaseException, limit: int = 300) -> str:
    text = (str(e).strip().splitlines() or [""])[0]
    return text if len(text) <= limit else text[:limit - 3] + "..."


def cuda_failure(e: BaseException, doing: str) -> BackendUnavailable:
    """BackendUnavailable for an exception CuPy raised while `doing` (e.g. "compiling
    selftest_saxpy"): the CUDA driver and runtime's errors call for a driver update, any other
    (a missing header, NVRTC not found, a compile error) for the CUDA components."""
    kind = type(e).__name__
    fix = RUN_FIX if ("Driver" in kind or "Runtime" in kind) and kind != "RuntimeError" \
        else COMPILE_FIX
    return BackendUnavailable(f"CuPy failed {doing} ({kind}: {_first_line(e)})", fix)


@dataclass(frozen=True)
class CudaProbe:
    """What the cuda probe found (probe_cuda)."""

    # True when CuPy imports, sees a device, and compiles and runs kernels correctly
    ok: bool
    # passed: the device and what ran; failed: what went wrong
    reason: str
    # how to make it pass ("" when it passed)
    fix: str = ""
    # whether CuPy imported: the automatic choice warns about a failure only then
    cupy_installed: bool = False

    def summary(self) -> str:
        """One line for `splat-lion info`."""
        return f"passed: {self.reason}" if self.ok else f"failed: {self.reason}; fix: {self.fix}"


# The kernel half of the probe: compiles and runs kernels on a fresh CudaBackend, returns what
# ran, raises BackendUnavailable on a failure. It needs the kernel loader (kernels.py), which
# sits above this module, so the package sets it (splat_lion/__init__.py: selftest.probe).
cuda_kernel_check: Callable[[Backend], str] | None = None


def probe_cuda() -> CudaProbe:
    """Can the cuda backend run here? CuPy imports, sees a device, and `cuda_kernel_check`
    compiles and runs kernels on it correctly. Runs the checks every call: use cuda_probe(),
    which runs it once per process. On success the probed backend is the one handed out."""
    try:
        import_cupy()
    except BackendUnavailable as e:
        return CudaProbe(False, e.reason, e.fix, cupy_installed=False)
    try:
        be = CudaBackend()
        if cuda_kernel_check is None:
            raise BackendUnavailable("the kernel check of the cuda probe is not installed",
                                     "import splat_lion (its __init__ installs it)")
        ran = cuda_kernel_check(be)
    except BackendUnavailable as e:
        return CudaProbe(False, e.reason, e.fix, cupy_installed=True)
    except Exception as e:  # noqa: BLE001 - whatever CuPy raises, the probe reports it
        e = cuda_failure(e, "the kernel check")
        return CudaProbe(False, e.reason, e.fix, cupy_installed=True)
    _cache["cuda"] = be
    return CudaProbe(True, f"{be.describe()['device']}; {ran}", cupy_installed=True)


_cache: dict[str, Backend] = {}
_probe: CudaProbe | None = None  # the probe's result, once run
_warned = False  # the automatic choice's fallback warning, given once per process


def cuda_probe() -> CudaProbe:
    """The cuda probe's result: run on the first call, then remembered for the process."""
    global _probe
    if _probe is None:
        _probe = probe_cuda()
    return _probe


def _make(name: str) -> Backend:
    if name == "cuda":
        probe = cuda_probe()
        if not probe.ok:
            raise BackendUnavailable(probe.reason, probe.fix)
        if "cuda" not in _cache:  # a probe stubbed by a test hands out no backend
            _cache["cuda"] = CudaBackend()
    elif name not in _cache:
        _cache[name] = CpuBackend()
    return _cache[name]


def get_backend(name: str | None = None) -> Backend:
    """The backend named `name`, else $SPLAT_LION_BACKEND, else cuda if the cuda probe passes,
    else cpu (with one BackendFallbackWarning when CuPy is installed). Any other name is a
    ConfigError naming the choices (and SPLAT_LION_BACKEND when the name came from it)."""
    global _warned
    from_env = name is None
    if from_env:
        name = os.environ.get(ENV_VAR, "").strip().lower() or "auto"
    if name == "auto":
        probe = cuda_probe()
        if probe.ok:
            return _make("cuda")
        if probe.cupy_installed and not _warned:
            _warned = True
            warnings.warn(f"splat-lion runs on the CPU: the cuda backend is unusable: "
                          f"{probe.reason}: {probe.fix}", BackendFallbackWarning, stacklevel=2)
        return _make("cpu")
    if name not in BACKENDS:
        where = f"{ENV_VAR}={os.environ.get(ENV_VAR, '').strip()!r}" if from_env else \
            f"backend {name!r}"
        raise ConfigError(f"{where} is not a backend: choose cuda, cpu or auto"
                          + (f" (or unset {ENV_VAR}: auto)" if from_env else ""))
    return _make(name)


def backend_of(a) -> Backend:
    """The backend an array lives on: cuda for a CuPy array, else cpu."""
    return get_backend("cuda" if type(a).__module__.startswith("cupy") else "cpu")


def why_chosen(be: Backend) -> str:
    """One line on how `be` came to be the backend."""
    forced = os.environ.get(ENV_VAR, "").strip().lower()
    if forced and forced != "auto":
        return f"forced by {ENV_VAR}={forced}"
    if _probe is None:
        return "auto"
    if be.name == "cuda":
        return "auto: the cuda probe passed"
    return f"auto: cuda probe failed: {_probe.reason}"
