"""cupy.cuda of the stand-in: one pretend device, its runtime queries, events that measure
wall time, NVRTC's version. Nothing here touches a GPU; the numbers say so where they can
(the device's name)."""

from __future__ import annotations

import time

from . import _counters as C
from ._core import POOL

DEVICE_NAME = "CuPy stand-in (splat-lion tests; kernels on the CPU runtime)"
TOTAL_BYTES = 16 * 2**30  # what memGetInfo reports as the device's memory
CONTEXT_BYTES = 256 * 2**20  # held by the CUDA context and other processes, as on a GPU
COMPUTE_CAPABILITY = (9, 0)
CUDA_VERSION = 12090  # runtimeGetVersion / driverGetVersion: CUDA 12.9
NVRTC_VERSION = (12, 9)


class CUDARuntimeError(RuntimeError):
    """cupy.cuda.runtime.CUDARuntimeError."""


class _Runtime:
    """cupy.cuda.runtime: the functions splat-lion calls."""

    CUDARuntimeError = CUDARuntimeError

    @staticmethod
    def getDeviceCount():  # noqa: N802 (CUDA's names)
        return 1

    @staticmethod
    def getDevice():  # noqa: N802
        return 0

    @staticmethod
    def deviceSynchronize():  # noqa: N802
        C.explicit_sync()

    @staticmethod
    def memGetInfo():  # noqa: N802
        """(free, total) bytes: the pool's blocks and a context's share are in use."""
        return TOTAL_BYTES - CONTEXT_BYTES - POOL.total_bytes(), TOTAL_BYTES

    @staticmethod
    def getDeviceProperties(device):  # noqa: N802
        _check_device(device)
        major, minor = COMPUTE_CAPABILITY
        return {
            "name": DEVICE_NAME.encode(), "totalGlobalMem": TOTAL_BYTES, "major": major,
            "minor": minor, "multiProcessorCount": 1, "warpSize": 32,
            "maxThreadsPerBlock": 1024, "maxThreadsDim": (1024, 1024, 64),
            "maxGridSize": (2**31 - 1, 65535, 65535), "sharedMemPerBlock": 48 * 1024,
            "sharedMemPerBlockOptin": 48 * 1024, "regsPerBlock": 65536,
            "l2CacheSize": 0, "clockRate": 0, "memoryClockRate": 0, "memoryBusWidth": 0,
        }

    @staticmethod
    def runtimeGetVersion():  # noqa: N802
        return CUDA_VERSION

    @staticmethod
    def driverGetVersion():  # noqa: N802
        return CUDA_VERSION


class _Nvrtc:
    """cupy.cuda.nvrtc."""

    @staticmethod
    def getVersion():  # noqa: N802
        return NVRTC_VERSION


def _check_device(device) -> int:
    device = 0 if device is None else int(device)
    if device != 0:
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
    return device


class Device:
    """cupy.cuda.Device: device 0, the only one."""

    def __init__(self, device=None):
        self._id = _check_device(device)

    id = property(lambda self: self._id)
    compute_capability = property(lambda self: "".join(map(str, COMPUTE_CAPABILITY)))
    mem_info = property(lambda self: _Runtime.memGetInfo())

    def synchronize(self):
        C.explicit_sync()

    def use(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def __repr__(self):
        return f"<CUDA Device {self._id}>"


class Event:
    """cupy.cuda.Event: record() notes the wall time (the stand-in runs every operation at
    once, so wall time is all there is); synchronize() counts as an explicit sync."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self._disable_timing = disable_timing
        self._time: float | None = None

    def record(self, stream=None):
        self._time = time.perf_counter()

    def synchronize(self):
        C.explicit_sync()

    done = property(lambda self: True)


def get_elapsed_time(start_event, end_event):
    """Milliseconds between two recorded events (wall time under the stand-in)."""
    for e in (start_event, end_event):
        if e._time is None or e._disable_timing:
            raise CUDARuntimeError("cudaErrorInvalidResourceHandle: the event was not recorded "
                                   "or has timing disabled")
    return (end_event._time - start_event._time) * 1e3


def is_available():
    return True


runtime = _Runtime()
nvrtc = _Nvrtc()
