"""What every benchmark shares: the path set-up, timing, result checks, the machine's load,
and the results JSON (its opening fields and where it is written).

    from bench_common import make_timer, result_fields, write_result   # first import: it puts
                                                                       # the checkout on sys.path

Results go to benchmarks/results/<date>-<backend>-<device>-<name>[-quick].json (README.md).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from splat_lion.report import strict_json  # noqa: E402  (after the path set-up)

RESULTS_DIR = HERE / "results"

# Slowest / fastest repeat above which a case's times are flagged as noisy.
NOISY_SPREAD = 1.25
# Share of all CPUs other processes may keep busy during the run before it is flagged as noisy.
OTHER_LOAD_MAX = 0.05


class WrongResult(RuntimeError):
    """A kernel's output differs from the NumPy reference beyond its tolerance."""


# -- timing ------------------------------------------------------------------------------

def make_timer(be) -> Callable[[Callable[[], object]], float]:
    """A function that runs `fn` once and returns its duration in ms, device work included."""
    if be.name == "cuda":
        cp = be.xp

        def timed(fn):
            start, end = cp.cuda.Event(), cp.cuda.Event()
            be.synchronize()
            start.record()
            fn()
            end.record()
            end.synchronize()
            return float(cp.cuda.get_elapsed_time(start, end))
    else:
        def timed(fn):
            be.synchronize()
            t0 = time.perf_counter()
            fn()
            be.synchronize()
            return (time.perf_counter() - t0) * 1e3
    return timed


class PhaseTimer:
    """Times named phases: CUDA events on a GPU (read after the step), else the wall clock
    around a synchronize. Accumulates into `spans` (name -> ms)."""

    def __init__(self, be, spans: dict) -> None:
        self.be, self.spans, self.pending = be, spans, []

    @contextlib.contextmanager
    def phase(self, name: str):
        if self.be.name == "cuda":
            start, end = self.be.xp.cuda.Event(), self.be.xp.cuda.Event()
            start.record()
            yield
            end.record()
            self.pending.append((name, start, end))
        else:
            t0 = time.perf_counter()
            yield
            self.spans[name] = self.spans.get(name, 0.0) + (time.perf_counter() - t0) * 1e3

    def collect(self) -> None:
        for name, start, end in self.pending:
            end.synchronize()
            ms = float(self.be.xp.cuda.get_elapsed_time(start, end))
            self.spans[name] = self.spans.get(name, 0.0) + ms
        self.pending.clear()


def repeat(timed, fn, repeats: int) -> list[float]:
    return [timed(fn) for _ in range(repeats)]


def check_close(case: str, got: np.ndarray, want: np.ndarray,
                tol: np.ndarray | float) -> tuple[float, float]:
    """Raise WrongResult unless |got - want| <= tol everywhere; returns (max error, max tol)."""
    err = np.abs(got.astype(np.float64) - want)
    bad = ~(err <= tol)  # NaN (an unwritten output) counts as bad
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        t = tol[j] if isinstance(tol, np.ndarray) else tol
        raise WrongResult(
            f"{case}: {int(bad.sum())} of {got.size} outputs wrong; first at [{j}]: kernel "
            f"{got[j]!r}, NumPy float64 {want[j]!r}, |error| {err[j]:.3e} > tolerance {t:.3e}"
        )
    return float(err.max()), float(np.max(tol))


# -- the machine and the results file ----------------------------------------------------

def device_slug(device: str) -> str:
    """A short file-name slug of a device string: 'amd-epyc', 'nvidia-h100-80gb-hbm3'."""
    name = re.sub(r"^(CPU|GPU \d+):\s*", "", device).split(",")[0]
    name = re.sub(r"\((R|TM|tm|r)\)|\bCPU\b|\bProcessor\b|@.*$|\d+-Core", " ", name)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:40].rstrip("-") or "unknown"


def busy_cpu_s() -> float | None:
    """CPU seconds all processes have spent busy since boot (Linux /proc/stat), else None."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
        return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def git_state() -> dict[str, object]:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO,
                                capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}
    if commit.returncode != 0:
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit.stdout.strip(),
            "git_dirty": bool(dirty.stdout.strip()) if dirty.returncode == 0 else None}


class OtherLoad:
    """Measures the share of all CPUs other processes keep busy from now until share()."""

    def __init__(self) -> None:
        self.busy0, self.own0, self.wall0 = busy_cpu_s(), own_cpu_s(), time.perf_counter()

    def share(self) -> float | None:
        busy1, wall1 = busy_cpu_s(), time.perf_counter()
        if self.busy0 is None or busy1 is None:
            return None
        other_s = (busy1 - self.busy0) - (own_cpu_s() - self.own0)
        return max(0.0, other_s / ((wall1 - self.wall0) * (os.cpu_count() or 1)))


def print_noise(other_share: float | None, noisy: list[tuple[str, list[float]]],
                digits: int) -> bool:
    """Print how busy other processes kept the CPUs (NOISY above OTHER_LOAD_MAX) and a NOISY
    line for each (label, repeat times in ms) of `noisy`; True when the machine was busy."""
    busy = other_share is not None and other_share > OTHER_LOAD_MAX
    if other_share is not None:
        print(f"{'NOISY: ' if busy else ''}other processes kept {100 * other_share:.0f}% of the "
              f"CPUs busy during the run{'; rerun when the machine is quiet' if busy else ''}")
    for label, times in noisy:
        print(f"NOISY: {label}: repeats ranged {min(times):.{digits}f} to {max(times):.{digits}f}"
              f" ms ({max(times) / max(min(times), 1e-12):.2f}x); is another process using the "
              "machine? Rerun when it is quiet before trusting these numbers.")
    return busy


def result_fields(benchmark: str, backend: str, info: dict) -> dict:
    """The fields every results JSON opens with: what ran, when, where, and from which commit."""
    now = _dt.datetime.now(_dt.timezone.utc)
    return {"benchmark": benchmark, "date": _dt.date.today().isoformat(),
            "timestamp": now.isoformat(timespec="seconds"), "backend": backend, **info,
            **git_state()}


def write_result(result: dict, name: str, backend: str, device: str, quick: bool = False,
                 out: Path | None = None) -> Path:
    """Write a benchmark's JSON to `out`, or to results/<date>-<backend>-<device>-<name>
    [-quick].json; print where."""
    out = out or RESULTS_DIR / (f"{_dt.date.today().isoformat()}-{backend}-{device_slug(device)}"
                                f"-{name}{'-quick' if quick else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(strict_json(result))  # JSON has no Infinity: an infinite PSNR is null
    print(f"wrote {out}")
    return out
